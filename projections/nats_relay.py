"""Relays the notification log to NATS JetStream, in order, exactly once.

Subject: ``<prefix>.<aggregate>.<event>`` (e.g. ``lianxin.events.Call.Answered``).
Each message carries the log position in the ``Nats-Msg-Id`` header, so
JetStream's duplicate window drops anything sent twice, and the relay needs
no position store of its own: on start it reads the position of the last
message in the stream and continues after it. Kill it at any instant and
restart: nothing is lost, nothing is delivered twice.

Personal data stays home: ``pii`` fields are not published. Consumers that
need them must ask the API, where access can be controlled and logged.
"""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass
from typing import Any

from eventsourcing.application import Application

POSITION_HEADER = "Lianxin-Position"
log = logging.getLogger(__name__)


@dataclass
class RelayStats:
    published: int = 0
    duplicates: int = 0
    position: int = 0


def event_message(app: Application, notification: Any) -> tuple[str, bytes]:
    event = app.mapper.to_domain_event(notification)
    topic = notification.topic  # "domain.call:Call.Answered"
    name = topic.split(":", 1)[1]
    body = {k: v for k, v in vars(event).items() if k != "pii"}
    body.update(position=notification.id, topic=topic,
                schema_version=getattr(type(event), "class_version", 1))
    return name, json.dumps(body, default=str, ensure_ascii=False).encode()


class NatsRelay:
    def __init__(self, app: Application, url: str = "nats://127.0.0.1:4222",
                 stream: str = "LIANXIN_EVENTS", prefix: str = "lianxin.events",
                 page: int = 500, duplicate_window_s: float = 600) -> None:
        self.app = app
        self.url = url
        self.stream = stream
        self.prefix = prefix
        self.page = page
        self.duplicate_window_s = duplicate_window_s
        self.stats = RelayStats()
        self._nc: Any = None
        self._js: Any = None

    async def connect(self) -> None:
        import nats
        from nats.js.errors import NotFoundError

        async def quiet(exc: Exception) -> None:  # reconnects are logged by nats-py itself
            log.warning("NATS: %s", exc)

        # A bounded first connect: an unreachable server is an error the
        # operator should see, not an endless retry loop.
        self._nc = await nats.connect(self.url, connect_timeout=2, max_reconnect_attempts=5,
                                      reconnect_time_wait=0.5, error_cb=quiet)
        self._js = self._nc.jetstream()
        try:
            await self._js.stream_info(self.stream)
        except NotFoundError:
            await self._js.add_stream(name=self.stream, subjects=[f"{self.prefix}.>"],
                                      duplicate_window=self.duplicate_window_s)
        self.stats.position = await self.published_position()

    async def published_position(self) -> int:
        """The log position of the last message JetStream holds."""
        info = await self._js.stream_info(self.stream)
        if not info.state.last_seq:
            return 0
        msg = await self._js.get_msg(self.stream, info.state.last_seq)
        return int((msg.headers or {}).get(POSITION_HEADER, 0))

    async def relay_once(self) -> int:
        """Publish everything recorded after the last published position."""
        sent = 0
        while True:
            notifications = await asyncio.to_thread(
                self.app.recorder.select_notifications, self.stats.position, self.page,
                None, (), inclusive_of_start=False)
            if not notifications:
                return sent
            acks = await asyncio.gather(*(
                self._publish(n) for n in notifications))
            self.stats.duplicates += sum(1 for a in acks if a.duplicate)
            self.stats.published += sum(1 for a in acks if not a.duplicate)
            self.stats.position = notifications[-1].id
            sent += len(notifications)

    async def _publish(self, notification: Any) -> Any:
        name, payload = event_message(self.app, notification)
        return await self._js.publish(
            f"{self.prefix}.{name}", payload,
            headers={"Nats-Msg-Id": f"{self.stream}-{notification.id}",
                     POSITION_HEADER: str(notification.id)})

    async def run(self, stop: asyncio.Event, poll_interval: float = 0.2) -> None:
        while not stop.is_set():
            await self.relay_once()
            try:
                await asyncio.wait_for(stop.wait(), poll_interval)
            except asyncio.TimeoutError:
                pass

    async def close(self) -> None:
        if self._nc is not None:
            await self._nc.drain()
            self._nc = None
