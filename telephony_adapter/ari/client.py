"""Async ARI client: REST under ``/ari`` with httpx, events over the WebSocket with websockets.

One client per Stasis application. ``events()`` is the only place that knows the socket
can drop: it reconnects with exponential backoff (with jitter, so a fleet of adapters does
not hammer a restarting Asterisk in lockstep) and yields a ``Reconnected`` marker carrying a
``GET /channels`` / ``GET /bridges`` snapshot so the application reconciles. Both the
snapshot and the marker come after the new socket is open, so anything that happens
meanwhile is already buffered on the socket and not lost.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from datetime import datetime, timezone
from typing import Any, AsyncIterator, Iterable, Optional, Union
from urllib.parse import quote, urlencode, urlsplit, urlunsplit

import httpx
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus

from telephony_adapter.ari.errors import AriAuthError, AriConnectionError, AriHttpError
from telephony_adapter.ari.models import (
    Bridge,
    Channel,
    Event,
    LiveRecording,
    Playback,
    Reconnected,
    StoredRecording,
    parse_event,
)

Params = Optional[dict[str, Any]]


def _seg(value: str) -> str:
    # Channel ids contain dots, recording names may contain slashes: quote everything.
    return quote(str(value), safe="")


def _clean(params: Params) -> dict[str, str]:
    out: dict[str, str] = {}
    for key, value in (params or {}).items():
        if value is None:
            continue
        if isinstance(value, bool):
            out[key] = "true" if value else "false"
        elif isinstance(value, (list, tuple)):
            out[key] = ",".join(str(v) for v in value)
        else:
            out[key] = str(value)
    return out


class AriClient:
    def __init__(self, base_url: str, app: str, username: str, password: str, *,
                 subscribe_all: bool = False, timeout: float = 10.0,
                 backoff_initial: float = 0.1, backoff_max: float = 10.0,
                 backoff_factor: float = 2.0, ping_interval: float | None = 20.0,
                 snapshot_on_reconnect: bool = True) -> None:
        base = base_url.rstrip("/")
        if base.endswith("/ari"):
            base = base[: -len("/ari")]
        self.base_url = base
        self.app = app
        self.username = username
        self.subscribe_all = subscribe_all
        self.backoff_initial = backoff_initial
        self.backoff_max = backoff_max
        self.backoff_factor = backoff_factor
        self.ping_interval = ping_interval
        self.snapshot_on_reconnect = snapshot_on_reconnect
        self._password = password
        self._http = httpx.AsyncClient(base_url=f"{base}/ari", auth=(username, password),
                                       timeout=timeout)
        self._ws: Any = None
        self._closed = False
        self.connected = asyncio.Event()
        self.reconnects = 0

    # --- plumbing ------------------------------------------------------------------

    @property
    def events_url(self) -> str:
        parts = urlsplit(self.base_url)
        scheme = "wss" if parts.scheme == "https" else "ws"
        query = {"app": self.app, "api_key": f"{self.username}:{self._password}"}
        if self.subscribe_all:
            query["subscribeAll"] = "true"
        return urlunsplit((scheme, parts.netloc, f"{parts.path}/ari/events", urlencode(query), ""))

    async def request(self, method: str, path: str, *, params: Params = None,
                      json: Any = None) -> Any:
        """One ARI call; parsed JSON body, or None for 204/empty bodies."""
        if not path.startswith("/"):
            path = "/" + path
        try:
            response = await self._http.request(method.upper(), path, params=_clean(params),
                                                json=json)
        except httpx.TransportError as exc:
            raise AriConnectionError(f"{method} {path}: {exc!r}") from exc
        if response.status_code >= 400:
            message = response.reason_phrase
            try:
                body = response.json()
                if isinstance(body, dict) and body.get("message"):
                    message = str(body["message"])
            except ValueError:
                if response.text:
                    message = response.text
            raise AriHttpError.for_status(response.status_code, message, method=method.upper(),
                                          path=path)
        if response.status_code == 204 or not response.content:
            return None
        ctype = response.headers.get("content-type", "")
        if "json" not in ctype:
            return response.content
        return response.json()

    async def close(self) -> None:
        self._closed = True
        ws = self._ws
        if ws is not None:
            await ws.close()
        await self._http.aclose()

    async def __aenter__(self) -> "AriClient":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # --- events --------------------------------------------------------------------

    async def events(self, *, raw: bool = False) -> AsyncIterator[Union[Event, dict]]:
        """Parsed events forever (until close()); dicts when ``raw`` is true.

        A rejected login (401/403) is raised, not retried: it will not fix itself.
        """
        delay = self.backoff_initial
        attempts = 0
        first = True
        lost_at: float | None = None
        reason = ""
        while not self._closed:
            try:
                async with ws_connect(self.events_url, ping_interval=self.ping_interval,
                                      max_size=None, open_timeout=10) as ws:
                    self._ws = ws
                    if self._closed:  # close() ran during the handshake
                        return
                    self.connected.set()
                    if not first:
                        self.reconnects += 1
                        marker = Reconnected(
                            timestamp=datetime.now(timezone.utc).isoformat(),
                            application=self.app, attempts=attempts, reason=reason,
                            disconnected_for=time.monotonic() - (lost_at or time.monotonic()))
                        if self.snapshot_on_reconnect:
                            marker.channels, marker.bridges = await self._snapshot()
                        marker._raw = marker.model_dump(mode="json")
                        yield marker.raw if raw else marker
                    first = False
                    delay, attempts = self.backoff_initial, 0
                    async for message in ws:
                        data = json.loads(message)
                        yield data if raw else parse_event(data)
                    reason = f"closed by server (code {ws.close_code})"
            except InvalidStatus as exc:
                status = exc.response.status_code
                if status in (401, 403):
                    raise AriAuthError(status, "WebSocket login refused",
                                       method="GET", path="/ari/events") from exc
                reason = f"handshake refused ({status})"
            except (OSError, ConnectionClosed, InvalidHandshake, asyncio.TimeoutError) as exc:
                reason = f"{type(exc).__name__}: {exc}"
            finally:
                self._ws = None
                self.connected.clear()
            if self._closed:
                return
            if lost_at is None or attempts == 0:
                lost_at = time.monotonic()
            attempts += 1
            # Jitter spreads a fleet's reconnects after an Asterisk restart.
            await self._pause(random.uniform(delay / 2, delay))
            delay = min(delay * self.backoff_factor, self.backoff_max)

    async def _snapshot(self) -> tuple[list[Channel] | None, list[Bridge] | None]:
        try:
            return await self.list_channels(), await self.list_bridges()
        except (AriHttpError, AriConnectionError):
            return None, None

    async def _pause(self, seconds: float) -> None:
        await asyncio.sleep(seconds)

    # --- asterisk --------------------------------------------------------------------

    async def asterisk_info(self) -> dict[str, Any]:
        return await self.request("GET", "/asterisk/info")

    # --- channels ------------------------------------------------------------------

    async def list_channels(self) -> list[Channel]:
        return [Channel.model_validate(c) for c in await self.request("GET", "/channels")]

    async def get_channel(self, channel_id: str) -> Channel:
        return Channel.model_validate(await self.request("GET", f"/channels/{_seg(channel_id)}"))

    async def originate(self, endpoint: str, *, app: str | None = None,
                        app_args: Union[str, Iterable[str], None] = None,
                        channel_id: str | None = None, other_channel_id: str | None = None,
                        caller_id: str | None = None, timeout: int | None = None,
                        context: str | None = None, extension: str | None = None,
                        priority: int | None = None, originator: str | None = None,
                        variables: dict[str, str] | None = None) -> Channel:
        """``POST /channels``; with ``app`` the answered channel enters our Stasis app."""
        params = {"endpoint": endpoint, "app": app, "appArgs": _args(app_args),
                  "channelId": channel_id, "otherChannelId": other_channel_id,
                  "callerId": caller_id, "timeout": timeout, "context": context,
                  "extension": extension, "priority": priority, "originator": originator}
        body = {"variables": variables} if variables else None
        return Channel.model_validate(await self.request("POST", "/channels", params=params,
                                                         json=body))

    async def create_channel(self, endpoint: str, *, app: str,
                             app_args: Union[str, Iterable[str], None] = None,
                             channel_id: str | None = None, other_channel_id: str | None = None,
                             originator: str | None = None,
                             variables: dict[str, str] | None = None) -> Channel:
        """``POST /channels/create``: a channel that is not dialled until ``dial()``."""
        params = {"endpoint": endpoint, "app": app, "appArgs": _args(app_args),
                  "channelId": channel_id, "otherChannelId": other_channel_id,
                  "originator": originator}
        body = {"variables": variables} if variables else None
        return Channel.model_validate(await self.request("POST", "/channels/create",
                                                         params=params, json=body))

    async def dial(self, channel_id: str, *, caller: str | None = None,
                   timeout: int | None = None) -> None:
        await self.request("POST", f"/channels/{_seg(channel_id)}/dial",
                           params={"caller": caller, "timeout": timeout})

    async def answer(self, channel_id: str) -> None:
        await self.request("POST", f"/channels/{_seg(channel_id)}/answer")

    async def ring(self, channel_id: str) -> None:
        await self.request("POST", f"/channels/{_seg(channel_id)}/ring")

    async def ring_stop(self, channel_id: str) -> None:
        await self.request("DELETE", f"/channels/{_seg(channel_id)}/ring")

    async def hangup(self, channel_id: str, reason: str | None = None, *,
                     reason_code: int | None = None) -> None:
        """``reason``: normal, busy, congestion, no_answer, answered_elsewhere..."""
        await self.request("DELETE", f"/channels/{_seg(channel_id)}",
                           params={"reason": reason, "reason_code": reason_code})

    async def play(self, channel_id: str, media: Union[str, Iterable[str]],
                   playback_id: str | None = None, *, lang: str | None = None) -> Playback:
        path = f"/channels/{_seg(channel_id)}/play"
        if playback_id:
            path += f"/{_seg(playback_id)}"
        return Playback.model_validate(await self.request(
            "POST", path, params={"media": _media(media), "lang": lang}))

    async def play_on_bridge(self, bridge_id: str, media: Union[str, Iterable[str]],
                             playback_id: str | None = None, *,
                             lang: str | None = None) -> Playback:
        path = f"/bridges/{_seg(bridge_id)}/play"
        if playback_id:
            path += f"/{_seg(playback_id)}"
        return Playback.model_validate(await self.request(
            "POST", path, params={"media": _media(media), "lang": lang}))

    async def stop_playback(self, playback_id: str) -> None:
        await self.request("DELETE", f"/playbacks/{_seg(playback_id)}")

    async def get_playback(self, playback_id: str) -> Playback:
        return Playback.model_validate(await self.request("GET", f"/playbacks/{_seg(playback_id)}"))

    async def send_dtmf(self, channel_id: str, dtmf: str, *, before: int | None = None,
                        between: int | None = None, duration: int | None = None,
                        after: int | None = None) -> None:
        await self.request("POST", f"/channels/{_seg(channel_id)}/dtmf",
                           params={"dtmf": dtmf, "before": before, "between": between,
                                   "duration": duration, "after": after})

    async def hold(self, channel_id: str) -> None:
        """Indicates hold to the far end; Asterisk emits no ChannelHold for this."""
        await self.request("POST", f"/channels/{_seg(channel_id)}/hold")

    async def unhold(self, channel_id: str) -> None:
        await self.request("DELETE", f"/channels/{_seg(channel_id)}/hold")

    async def start_moh(self, channel_id: str, moh_class: str | None = None) -> None:
        await self.request("POST", f"/channels/{_seg(channel_id)}/moh",
                           params={"mohClass": moh_class})

    async def stop_moh(self, channel_id: str) -> None:
        await self.request("DELETE", f"/channels/{_seg(channel_id)}/moh")

    async def mute(self, channel_id: str, direction: str = "both") -> None:
        await self.request("POST", f"/channels/{_seg(channel_id)}/mute",
                           params={"direction": direction})

    async def unmute(self, channel_id: str, direction: str = "both") -> None:
        await self.request("DELETE", f"/channels/{_seg(channel_id)}/mute",
                           params={"direction": direction})

    async def snoop(self, channel_id: str, app: str, *, spy: str = "none", whisper: str = "none",
                    app_args: Union[str, Iterable[str], None] = None,
                    snoop_id: str | None = None) -> Channel:
        """Supervisor listen (``spy``) / coach (``whisper``): in, out, both or none."""
        return Channel.model_validate(await self.request(
            "POST", f"/channels/{_seg(channel_id)}/snoop",
            params={"spy": spy, "whisper": whisper, "app": app, "appArgs": _args(app_args),
                    "snoopId": snoop_id}))

    async def redirect(self, channel_id: str, endpoint: str) -> None:
        await self.request("POST", f"/channels/{_seg(channel_id)}/redirect",
                           params={"endpoint": endpoint})

    async def continue_in_dialplan(self, channel_id: str, *, context: str | None = None,
                                   extension: str | None = None, priority: int | None = None,
                                   label: str | None = None) -> None:
        await self.request("POST", f"/channels/{_seg(channel_id)}/continue",
                           params={"context": context, "extension": extension,
                                   "priority": priority, "label": label})

    async def record_channel(self, channel_id: str, name: str, *, format: str = "wav",
                             if_exists: str | None = None, max_duration_seconds: int | None = None,
                             max_silence_seconds: int | None = None, beep: bool | None = None,
                             terminate_on: str | None = None) -> LiveRecording:
        return LiveRecording.model_validate(await self.request(
            "POST", f"/channels/{_seg(channel_id)}/record",
            params=_record_params(name, format, if_exists, max_duration_seconds,
                                  max_silence_seconds, beep, terminate_on)))

    async def set_variable(self, channel_id: str, variable: str, value: str | None = None) -> None:
        await self.request("POST", f"/channels/{_seg(channel_id)}/variable",
                           params={"variable": variable, "value": value})

    async def get_variable(self, channel_id: str, variable: str) -> str:
        body = await self.request("GET", f"/channels/{_seg(channel_id)}/variable",
                                  params={"variable": variable})
        return str((body or {}).get("value", ""))

    async def transfer_progress(self, channel_id: str, states: str) -> None:
        await self.request("POST", f"/channels/{_seg(channel_id)}/transfer_progress",
                           params={"states": states})

    # --- bridges -------------------------------------------------------------------

    async def list_bridges(self) -> list[Bridge]:
        return [Bridge.model_validate(b) for b in await self.request("GET", "/bridges")]

    async def get_bridge(self, bridge_id: str) -> Bridge:
        return Bridge.model_validate(await self.request("GET", f"/bridges/{_seg(bridge_id)}"))

    async def create_bridge(self, bridge_type: str = "mixing", *, bridge_id: str | None = None,
                            name: str | None = None) -> Bridge:
        return Bridge.model_validate(await self.request(
            "POST", "/bridges", params={"type": bridge_type, "bridgeId": bridge_id, "name": name}))

    async def destroy_bridge(self, bridge_id: str) -> None:
        await self.request("DELETE", f"/bridges/{_seg(bridge_id)}")

    async def add_channel(self, bridge_id: str, channel: Union[str, Iterable[str]], *,
                          role: str | None = None, absorb_dtmf: bool | None = None,
                          mute: bool | None = None) -> None:
        await self.request("POST", f"/bridges/{_seg(bridge_id)}/addChannel",
                           params={"channel": _args(channel), "role": role,
                                   "absorbDTMF": absorb_dtmf, "mute": mute})

    async def remove_channel(self, bridge_id: str, channel: Union[str, Iterable[str]]) -> None:
        await self.request("POST", f"/bridges/{_seg(bridge_id)}/removeChannel",
                           params={"channel": _args(channel)})

    async def start_bridge_moh(self, bridge_id: str, moh_class: str | None = None) -> None:
        await self.request("POST", f"/bridges/{_seg(bridge_id)}/moh",
                           params={"mohClass": moh_class})

    async def stop_bridge_moh(self, bridge_id: str) -> None:
        await self.request("DELETE", f"/bridges/{_seg(bridge_id)}/moh")

    async def record_bridge(self, bridge_id: str, name: str, *, format: str = "wav",
                            if_exists: str | None = None, max_duration_seconds: int | None = None,
                            max_silence_seconds: int | None = None, beep: bool | None = None,
                            terminate_on: str | None = None) -> LiveRecording:
        return LiveRecording.model_validate(await self.request(
            "POST", f"/bridges/{_seg(bridge_id)}/record",
            params=_record_params(name, format, if_exists, max_duration_seconds,
                                  max_silence_seconds, beep, terminate_on)))

    # --- recordings ----------------------------------------------------------------

    async def get_live_recording(self, name: str) -> LiveRecording:
        return LiveRecording.model_validate(
            await self.request("GET", f"/recordings/live/{_seg(name)}"))

    async def stop_recording(self, name: str) -> None:
        await self.request("POST", f"/recordings/live/{_seg(name)}/stop")

    async def cancel_recording(self, name: str) -> None:
        """Stops and discards the recording."""
        await self.request("DELETE", f"/recordings/live/{_seg(name)}")

    async def list_stored_recordings(self) -> list[StoredRecording]:
        return [StoredRecording.model_validate(r)
                for r in await self.request("GET", "/recordings/stored")]

    async def get_stored_recording(self, name: str) -> StoredRecording:
        return StoredRecording.model_validate(
            await self.request("GET", f"/recordings/stored/{_seg(name)}"))

    async def get_stored_recording_file(self, name: str) -> bytes:
        return await self.request("GET", f"/recordings/stored/{_seg(name)}/file")

    async def delete_stored_recording(self, name: str) -> None:
        await self.request("DELETE", f"/recordings/stored/{_seg(name)}")


def _args(value: Union[str, Iterable[str], None]) -> Optional[str]:
    if value is None or isinstance(value, str):
        return value
    return ",".join(value)


def _media(value: Union[str, Iterable[str]]) -> str:
    return value if isinstance(value, str) else ",".join(value)


def _record_params(name: str, format: str, if_exists: str | None, max_duration: int | None,
                   max_silence: int | None, beep: bool | None,
                   terminate_on: str | None) -> dict[str, Any]:
    return {"name": name, "format": format, "ifExists": if_exists,
            "maxDurationSeconds": max_duration, "maxSilenceSeconds": max_silence,
            "beep": beep, "terminateOn": terminate_on}
