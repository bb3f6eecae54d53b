"""Loads the IVR tree and the queue policies from their TOML files."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from domain.errors import InvalidValue
from domain.ivr import IvrTree
from domain.routing import QueuePolicy

CONFIG_DIR = Path(__file__).resolve().parent.parent / "config"

QUEUE_KEYS = {"priority", "skills", "overflow_after_s", "overflow_to", "ring_timeout_s",
              "announce_first_s", "announce_every_s", "moh_class"}


@dataclass(frozen=True)
class TelephonyConfig:
    ivr: IvrTree
    queues: tuple[QueuePolicy, ...]
    # destination keyed on a phone (REFER / ari-only transfer) -> "queue:x",
    # "agent:1002"; anything unlisted is an external number
    transfer_targets: dict[str, str] = field(default_factory=dict)

    def resolve_transfer(self, destination: str) -> tuple[str, str]:
        """(target_type, target) for a number an agent's phone transferred to."""
        mapped = self.transfer_targets.get(destination)
        if mapped:
            kind, _, target = mapped.partition(":")
            return kind, target
        return "external", destination


def _read(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise InvalidValue(f"{path}: {exc}", field=str(path)) from None


def queues_from_mapping(data: dict[str, Any]) -> tuple[QueuePolicy, ...]:
    defaults = data.get("defaults", {})
    out = []
    for name, q in data.get("queues", {}).items():
        unknown = set(q) - QUEUE_KEYS
        if unknown:
            raise InvalidValue(f"queue {name}: unknown setting(s) {sorted(unknown)}", field=name)
        merged = {k: v for k, v in defaults.items() if k in QUEUE_KEYS}
        merged.update(q)
        out.append(QueuePolicy(name=name, **merged))
    if not out:
        raise InvalidValue("queues configuration defines no queue", field="queues")
    return tuple(out)


def load(config_dir: Path | str | None = None) -> TelephonyConfig:
    base = Path(config_dir) if config_dir else CONFIG_DIR
    ivr = IvrTree.from_mapping(_read(base / "ivr.toml"))
    qdata = _read(base / "queues.toml")
    queues = queues_from_mapping(qdata)
    names = {q.name for q in queues}
    missing = ivr.queues() - names
    if missing:
        raise InvalidValue(f"the IVR leads to undefined queue(s) {sorted(missing)}", field="queues")
    return TelephonyConfig(ivr=ivr, queues=queues,
                           transfer_targets={str(k): str(v)
                                             for k, v in qdata.get("transfer_targets", {}).items()})
