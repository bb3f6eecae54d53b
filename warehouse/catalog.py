"""The KPI catalog (``kpis.toml``): definitions, parameters, validation."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

SOURCES = ("call", "leg", "agent", "work_order")


class ReportError(ValueError):
    """A report request the catalog cannot answer (HTTP 422, CLI exit 2)."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


@dataclass(frozen=True)
class Param:
    name: str
    type: str
    default: Any
    doc: str = ""
    min: float | None = None
    max: float | None = None
    choices: dict[str, str] = field(default_factory=dict)

    def parse(self, kpi: str, raw: Any) -> Any:
        where = f"{kpi}.{self.name}"
        if self.type == "choice":
            value = str(raw).lower() if isinstance(raw, bool) else str(raw)
            if value not in self.choices:
                raise ReportError(f"{where} must be one of {sorted(self.choices)}, not {raw!r}",
                                  field="param")
            return value
        try:
            value = float(raw)
        except (TypeError, ValueError):
            raise ReportError(f"{where} must be a number, not {raw!r}", field="param") from None
        if value != value or value in (float("inf"), float("-inf")):
            raise ReportError(f"{where} must be a finite number", field="param")
        if self.min is not None and value < self.min:
            raise ReportError(f"{where} must be >= {self.min:g}", field="param")
        if self.max is not None and value > self.max:
            raise ReportError(f"{where} must be <= {self.max:g}", field="param")
        return int(value) if value.is_integer() else value


@dataclass(frozen=True)
class Kpi:
    id: str
    source: str
    version: int
    description: str
    formula: str
    sql: str
    params: dict[str, Param]
    needs: tuple[str, ...] = ()
    # Parameter combinations refused with a reason: ((param -> value), why).
    refuse: tuple[tuple[tuple[tuple[str, str], ...], str], ...] = ()

    def defaults(self) -> dict[str, Any]:
        return {name: p.default for name, p in self.params.items()}

    def render(self, values: dict[str, Any]) -> str:
        """The aggregate expression with parameters substituted. Values were
        validated (numbers or a choice's own fragment), so no user text ever
        reaches the SQL."""
        numbers = {n: repr(float(v)) for n, v in values.items() if self.params[n].type != "choice"}
        sql = self.sql
        # A choice's fragment may name another choice (service_level's met
        # abandons are those its denominator counts): substitute until none
        # is left; the catalog has no cycles, the bound only guards that.
        for _ in range(len(self.params) + 1):
            before = sql
            for name, p in self.params.items():
                if p.type == "choice":
                    sql = sql.replace("{choice:%s}" % name, "(" + p.choices[values[name]] + ")")
            if sql == before:
                break
        for name, literal in numbers.items():
            sql = sql.replace("{%s}" % name, literal)
        return sql

    def check(self, values: dict[str, Any]) -> None:
        """Refuse parameter values that contradict each other."""
        for when, why in self.refuse:
            if all(values.get(n) == v for n, v in when):
                given = ", ".join(f"{self.id}.{n}={v}" for n, v in when)
                raise ReportError(f"{given}: {why}", field="param")

    def describe(self) -> dict[str, Any]:
        return {
            "id": self.id, "version": self.version, "source": self.source,
            "description": self.description, "formula": self.formula, "sql": self.sql,
            "params": {n: {"type": p.type, "default": p.default, "doc": p.doc,
                           **({"choices": sorted(p.choices)} if p.choices else {}),
                           **({"min": p.min} if p.min is not None else {})}
                       for n, p in self.params.items()},
            **({"refuses": [{"when": dict(w), "why": why} for w, why in self.refuse]}
               if self.refuse else {}),
        }


@lru_cache(maxsize=1)
def catalog() -> dict[str, Kpi]:
    with open(Path(__file__).resolve().parent / "kpis.toml", "rb") as fh:
        data = tomllib.load(fh)
    out: dict[str, Kpi] = {}
    for kid, spec in data["kpi"].items():
        params = {
            name: Param(name=name, type=p["type"], default=p["default"], doc=p.get("doc", ""),
                        min=p.get("min"), max=p.get("max"), choices=dict(p.get("choices", {})))
            for name, p in spec.get("params", {}).items()
        }
        if spec["source"] not in SOURCES:
            raise ValueError(f"kpi {kid}: unknown source {spec['source']}")
        refuse = tuple((tuple(sorted(r["when"].items())), r["why"]) for r in spec.get("refuse", ()))
        for when, _ in refuse:
            for name, value in when:
                if name not in params or value not in params[name].choices:
                    raise ValueError(f"kpi {kid}: refuse names {name}={value}, not a choice")
        out[kid] = Kpi(id=kid, source=spec["source"], version=int(spec["version"]),
                       description=spec["description"], formula=spec["formula"], sql=spec["sql"],
                       params=params, needs=tuple(spec.get("needs", ())), refuse=refuse)
    return out


def resolve_params(kpis: list[Kpi], raw: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """``raw`` maps "kpi.param" (one KPI) or "param" (every requested KPI
    that has it) to a value; the result holds every parameter's value."""
    values = {k.id: k.defaults() for k in kpis}
    by_id = {k.id: k for k in kpis}
    for key, value in raw.items():
        if "." in key:
            kid, name = key.split(".", 1)
            if kid not in catalog():
                raise ReportError(f"unknown KPI {kid!r} in parameter {key!r}", field="param")
            if kid not in by_id:
                raise ReportError(f"parameter {key!r} is for a KPI not in the report", field="param")
            kpi = by_id[kid]
            if name not in kpi.params:
                raise ReportError(f"{kid} has no parameter {name!r} (it has {sorted(kpi.params)})",
                                  field="param")
            values[kid][name] = kpi.params[name].parse(kid, value)
        else:
            takers = [k for k in kpis if key in k.params]
            if not takers:
                raise ReportError(f"no KPI in the report has a parameter {key!r}", field="param")
            for k in takers:
                values[k.id][key] = k.params[key].parse(k.id, value)
    for k in kpis:
        k.check(values[k.id])
    return values


SOURCE_TITLES = {"call": "Calls (`fact_call`)", "leg": "Agent legs (`fact_leg`)",
                 "agent": "Agent time (`fact_agent_state`)",
                 "work_order": "Work orders (`fact_work_order`)"}


def markdown() -> str:
    """The catalog section of docs/kpis.md (a test keeps the two equal)."""
    out: list[str] = []
    for source, title in SOURCE_TITLES.items():
        out.append(f"### {title}\n")
        for k in catalog().values():
            if k.source != source:
                continue
            out.append(f"#### `{k.id}` (v{k.version})\n")
            out.append(f"{k.description}.\n")
            out.append(f"* Formula: {k.formula}.")
            if k.params:
                parts = []
                for n, p in k.params.items():
                    text = f"`{n}` = {p.default!r}"
                    if p.choices:
                        text += f" (one of {', '.join(sorted(p.choices))})"
                    if p.doc:
                        text += f", {p.doc}"
                    parts.append(text)
                out.append(f"* Parameters: {'; '.join(parts)}.")
            for when, why in k.refuse:
                given = " with ".join(f"{n}={v}" for n, v in when)
                out.append(f"* Refused: {given} ({why}).")
            out.append(f"* SQL: `{k.sql}`\n")
    return "\n".join(out) + "\n"
