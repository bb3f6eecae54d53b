"""Who is the agent on a queue_log line?

The agent field holds either a member *interface* (``PJSIP/1001``,
``SIP/1001``, ``Local/1001@from-queue/n``, ``Agent/1001``) or a member
*name* (``Li Na``): app_queue writes the member name on call lines and the
interface on membership and pause lines, unless ``log_membername_as_agent``
makes it write the name there too. Both must land on one Lianxin agent, named
by an employee number.

An explicit map (CSV ``agent,employee_no[,name]`` or JSON) wins. Without one,
an interface's resource is the employee number when it is numeric (the usual
extension-equals-employee-number plan) or the resource text otherwise; a
plain number is itself; a name ending in a number in brackets (``Li Na
(1001)``) gives that number; any other name is its own employee number, so
that a center whose member names are not numbers must supply the map to join
name lines and interface lines.
"""

from __future__ import annotations

import csv
import io
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from domain.errors import InvalidValue

_INTERFACE = re.compile(r"^([A-Za-z][A-Za-z0-9_]*)/(.+)$")
_CHANNEL_SUFFIX = re.compile(r"-[0-9a-fA-F]{6,}(;\d)?$")
_BRACKETED_NO = re.compile(r"^(.*?)[\s]*[(\[<]\s*(\d+)\s*[)\]>]\s*$")


@dataclass(frozen=True)
class AgentRef:
    employee_no: str
    name: str
    endpoint: str  # the interface when the log shows one


def _resource(interface: str) -> tuple[str, str] | None:
    m = _INTERFACE.match(interface)
    if not m:
        return None
    tech, rest = m.group(1), m.group(2)
    rest = _CHANNEL_SUFFIX.sub("", rest)
    if tech.lower() == "local":
        rest = rest.split("@", 1)[0]
    rest = rest.split("/", 1)[0].split("@", 1)[0]
    return tech, rest


class AgentDirectory:
    def __init__(self, mapping: dict[str, tuple[str, str | None]] | None = None) -> None:
        self._map = {k.strip(): v for k, v in (mapping or {}).items()}
        self._cache: dict[str, AgentRef | None] = {}

    def resolve(self, field: str) -> AgentRef | None:
        raw = (field or "").strip()
        if raw.upper() in ("", "NONE"):
            return None
        if raw not in self._cache:
            self._cache[raw] = self._resolve(raw)
        return self._cache[raw]

    def _resolve(self, raw: str) -> AgentRef:
        parts = _resource(raw)
        endpoint = raw if parts else ""
        if raw in self._map:
            employee_no, name = self._map[raw]
            return AgentRef(employee_no, name or raw, endpoint)
        if parts:
            _, resource = parts
            return AgentRef(resource, raw, endpoint)
        m = _BRACKETED_NO.match(raw)
        if m:
            return AgentRef(m.group(2), m.group(1) or raw, "")
        return AgentRef(raw, raw, "")


def load_agent_map(source: str | Path, text: str | None = None) -> dict[str, tuple[str, str | None]]:
    """Read an agent map: JSON ``{"PJSIP/1001": "1001"}`` or
    ``{"Li Na": {"employee_no": "1001", "name": "Li Na"}}``, or CSV rows
    ``agent,employee_no[,name]`` (a header row is allowed)."""
    body = Path(source).read_text(encoding="utf-8") if text is None else text
    label = str(source)
    stripped = body.lstrip()
    mapping: dict[str, tuple[str, str | None]] = {}
    if stripped.startswith("{"):
        try:
            data: Any = json.loads(body)
        except json.JSONDecodeError as exc:
            raise InvalidValue(f"{label}: not valid JSON ({exc.msg} at line {exc.lineno})",
                               field="agent_map") from None
        for key, value in data.items():
            if isinstance(value, str) and value.strip():
                mapping[key] = (value.strip(), None)
            elif isinstance(value, dict) and str(value.get("employee_no", "")).strip():
                mapping[key] = (str(value["employee_no"]).strip(), value.get("name"))
            else:
                raise InvalidValue(f"{label}: entry {key!r} has no employee number",
                                   field="agent_map")
        return mapping
    for n, row in enumerate(csv.reader(io.StringIO(body)), start=1):
        if not row or not "".join(row).strip() or row[0].lstrip().startswith("#"):
            continue
        if n == 1 and row[0].strip().lower() == "agent":
            continue
        if len(row) < 2 or not row[0].strip() or not row[1].strip():
            raise InvalidValue(f"{label} line {n}: expected agent,employee_no[,name]",
                               field="agent_map", line=n)
        name = row[2].strip() if len(row) > 2 and row[2].strip() else None
        mapping[row[0].strip()] = (row[1].strip(), name)
    return mapping
