"""Anchors: the chain head written outside the database, so that someone
who kept an old head can later check that history up to it is unchanged.

A chain alone cannot catch an intruder who rewrites a record *and* every
chain value after it; an anchor held elsewhere (a file on other storage, a
log shipped off the machine, a NATS stream) can. An anchor is one JSON
object: ``{"position", "chain_hash", "anchored_at", "records"}``.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable

from domain.errors import InvalidValue
from queries.audit_trail import chain_source, verify

log = logging.getLogger("lianxin.audit.anchor")

NATS_SUBJECT = "lianxin.audit.anchor"
NATS_STREAM = "LIANXIN_AUDIT_ANCHORS"


def make_anchor(lianxin: Any) -> dict[str, Any]:
    """The verified head: the chain is checked before it is vouched for."""
    check = verify(lianxin)
    if not check.ok:
        assert check.finding is not None
        raise InvalidValue(f"not anchoring a broken chain: position {check.finding.position} "
                           f"({check.finding.kind}): {check.finding.detail}", field="chain")
    return {"position": check.last, "chain_hash": check.head,
            "anchored_at": datetime.now(timezone.utc).isoformat(), "records": check.records}


def append_to_file(anchor: dict[str, Any], path: Path | str) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as f:
        f.write(json.dumps(anchor, sort_keys=True) + "\n")


def log_line(anchor: dict[str, Any]) -> str:
    line = (f"lianxin audit anchor position={anchor['position']} "
            f"chain_hash={anchor['chain_hash']} at={anchor['anchored_at']}")
    log.info(line)
    return line


async def publish_nats(anchor: dict[str, Any], url: str, subject: str = NATS_SUBJECT) -> int:
    """Publish to a JetStream stream (created if missing); returns its sequence."""
    import asyncio

    import nats

    async def quiet(exc: Exception) -> None:
        log.debug("nats: %s", exc)

    # nats-py retries an initial connection failure without end: bound it.
    nc = await asyncio.wait_for(nats.connect(url, connect_timeout=3, max_reconnect_attempts=1,
                                             reconnect_time_wait=0.2, error_cb=quiet),
                                timeout=8)
    try:
        js = nc.jetstream()
        try:
            await js.stream_info(NATS_STREAM)
        except Exception:  # noqa: BLE001 - not found: create it
            await js.add_stream(name=NATS_STREAM, subjects=[subject])
        ack = await js.publish(subject, json.dumps(anchor, sort_keys=True).encode())
        return ack.seq
    finally:
        await nc.close()


def read_anchors(path: Path | str) -> list[dict[str, Any]]:
    out = []
    for n, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
            out.append({"position": int(item["position"]),
                        "chain_hash": str(item["chain_hash"]).lower(),
                        "anchored_at": item.get("anchored_at")})
        except (ValueError, KeyError, TypeError) as exc:
            raise InvalidValue(f"{path} line {n}: not an anchor ({exc})", field="anchors") from None
    if not out:
        raise InvalidValue(f"{path} holds no anchors", field="anchors")
    return out


@dataclass
class AnchorCheck:
    position: int
    chain_hash: str
    ok: bool
    detail: str


def check_anchors(lianxin: Any, anchors: Iterable[dict[str, Any]]) -> list[AnchorCheck]:
    """Recompute the chain from the first record to the latest anchor and
    compare it with each anchor."""
    anchors = sorted(anchors, key=lambda a: a["position"])
    top = anchors[-1]["position"]
    src = chain_source(lianxin)
    try:
        ev_max, ch_max = src.bounds()
        stop = min(top, max(ev_max, ch_max))
        check = verify(src.params, 1, stop) if stop >= 1 else None
        stored = {a["position"]: src.chain_at_or_before(a["position"]) for a in anchors}
    finally:
        src.close()
    results = []
    for a in anchors:
        pos, want = a["position"], a["chain_hash"]
        if check is not None and not check.ok and check.finding is not None \
                and check.finding.position <= pos:
            results.append(AnchorCheck(pos, want, False,
                                       f"the chain is broken at position {check.finding.position} "
                                       f"({check.finding.kind}) before this anchor"))
            continue
        at, value = stored[pos]
        if at != pos:
            results.append(AnchorCheck(pos, want, False,
                                       f"position {pos} is no longer in the log (it ends at "
                                       f"{max(ev_max, ch_max)}): history was shortened"))
        elif value.hex() != want:
            results.append(AnchorCheck(pos, want, False,
                                       f"the chain at position {pos} is {value.hex()}, the anchor "
                                       "says otherwise: history up to it was rewritten"))
        else:
            results.append(AnchorCheck(pos, want, True, "history up to this anchor is unchanged"))
    return results


class AnchorService:
    """Writes an anchor every ``every`` seconds while ``lianxin serve`` runs
    (enabled by LIANXIN_AUDIT_ANCHOR_EVERY; file LIANXIN_AUDIT_ANCHOR_FILE,
    default $LIANXIN_HOME/audit-anchors.jsonl; NATS URL LIANXIN_AUDIT_ANCHOR_NATS)."""

    def __init__(self, lianxin: Any, every: float, path: Path | None,
                 nats_url: str | None = None) -> None:
        import threading

        self.lianxin, self.every, self.path, self.nats_url = lianxin, every, path, nats_url
        self._stop = threading.Event()
        self._thread: Any = None
        self.written = 0

    def anchor_once(self) -> dict[str, Any] | None:
        try:
            anchor = make_anchor(self.lianxin)
        except InvalidValue as exc:
            # A broken chain is the news: say it loudly, vouch for nothing.
            log.error("audit anchor refused: %s", exc.message)
            return None
        if self.path is not None:
            append_to_file(anchor, self.path)
        if self.nats_url:
            import asyncio

            try:
                asyncio.run(publish_nats(anchor, self.nats_url))
            except Exception:  # noqa: BLE001 - the file and log anchors still stand
                log.exception("publishing the audit anchor to %s failed", self.nats_url)
        log_line(anchor)
        self.written += 1
        return anchor

    def start(self) -> None:
        import threading

        def loop() -> None:
            while not self._stop.wait(self.every):
                try:
                    self.anchor_once()
                except Exception:  # noqa: BLE001 - keep anchoring
                    log.exception("audit anchor failed")

        self._thread = threading.Thread(target=loop, name="audit-anchor", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None


class _Idle:
    def start(self) -> None:
        pass

    def stop(self) -> None:
        pass


def anchor_service(lianxin: Any) -> Any:
    """Factory for ``lianxin.wiring.register_service``: idle unless enabled."""
    import os

    every = os.environ.get("LIANXIN_AUDIT_ANCHOR_EVERY", "").strip()
    if not every:
        return _Idle()
    try:
        seconds = float(every)
    except ValueError:
        raise InvalidValue(f"LIANXIN_AUDIT_ANCHOR_EVERY must be seconds, not {every!r}",
                           field="LIANXIN_AUDIT_ANCHOR_EVERY") from None
    if seconds <= 0:
        raise InvalidValue("LIANXIN_AUDIT_ANCHOR_EVERY must be positive",
                           field="LIANXIN_AUDIT_ANCHOR_EVERY")
    path = os.environ.get("LIANXIN_AUDIT_ANCHOR_FILE") or str(
        Path(lianxin.settings.home) / "audit-anchors.jsonl")
    return AnchorService(lianxin, seconds, Path(path),
                         os.environ.get("LIANXIN_AUDIT_ANCHOR_NATS") or None)
