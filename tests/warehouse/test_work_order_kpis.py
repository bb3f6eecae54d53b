"""Work-order KPIs judged against the deadlines recorded in the events, worked
out by hand from the policy in lianxin/config/work_order_policy.toml and the
2026 calendar (中秋 25-27 Sep, 国庆 1-7 Oct, Sat 10 Oct worked). All times are
Asia/Shanghai; "due D" means 24:00 of day D. As-of: Fri 16 Oct 12:00.

fault_repair (dispatch 5 min, resolve 24 h):
  F1 opened 28 Sep 09:00, dispatched 09:04 (on time) to repair-east, resolved
     28 Sep 15:00 (on time); callback due 29 Sep, reached 29 Sep 10:00 (on time).
  F2 opened 28 Sep 10:00, dispatched 10:08 (late) to repair-west, resolved
     30 Sep 12:00 (late, deadline 29 Sep 10:00); callback due 8 Oct (after the
     holiday): no answer 8 Oct, reached 9 Oct (late).
  F3 opened 16 Oct 11:58, nothing else: dispatch deadline 12:03 not come yet,
     so it is in no rate.
complaint (dispatch 1 h, resolve 5 working days):
  C1 opened Mon 21 Sep 10:00, due 29 Sep (22, 23, 24, 28, 29); dispatched 10:30
     to metering, resolved 24 Sep 16:00 (on time); callback due 28 Sep, never
     attempted: missed at the as-of time.
  C2 opened Wed 30 Sep 10:00, due 13 Oct; dispatched 11:20 (late) to metering,
     resolved 14 Oct 09:00 (late, across the holiday); callback due 15 Oct,
     reached 15 Oct 09:00 (on time).
  C3 opened 30 Sep 11:00, due 13 Oct; dispatched 11:30 to metering, resolved
     12 Oct 15:00: on time by the recorded promise (a fixed 72 h would say
     late); callback due 13 Oct, refused 13 Oct 09:00 (not reached).
  O1 opened Fri 9 Oct 09:00, due 15 Oct (10, 12, 13, 14, 15); dispatched 09:30
     to billing; still open at the as-of time: overdue.
  P1 opened 28 Sep 09:00, due 10 Oct (29, 30, 8, 9, 10); dispatched 09:30 to
     billing; clock paused 9 Oct 10:00, still paused: not overdue, undecided.
  P2 opened 21 Sep 09:00, due 29 Sep; dispatched 09:30 to metering; paused
     8 Oct 10:00, after its deadline: a missed deadline stays missed.
  H1 imported history (no DeadlinesSet, no callback task): opened 1 Sep 09:00,
     dispatched 09:20 to archive, resolved 3 Sep 10:00 (49 h): the fallback
     parameters judge it (30 min, 72 h by default).
consultation (no dispatch, resolve 1 working day):
  Q1 opened 16 Oct 09:00, resolved 10:00 (due 19 Oct: on time); callback due
     19 Oct, pending: undecided.
"""

from __future__ import annotations

import contextlib
import json
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Iterator

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from commands import messages as m
from commands import work_order_messages as wm
from domain.work_order import WorkOrder
from lianxin.cli import app as cli_app
from lianxin.wiring import build
from tests.conftest import fresh_pg_database, make_settings
from tests.warehouse.helpers import cli_env, table_differences
from warehouse import kpis
from warehouse.loader import Loader
from warehouse.service import load

CST = timezone(timedelta(hours=8))
KPIS = ["work_orders", "dispatched_within", "resolved_within_deadline", "overdue",
        "overdue_open", "callback_tasks", "callback_within_deadline"]


def at(month: int, day: int, h: int, mi: int = 0) -> datetime:
    return datetime(2026, month, day, h, mi, tzinfo=CST)


class Orders:
    """The orders of the module docstring, built through the command service
    in two parts (before and from 30 Sep 12:00) so a test can load between."""

    def __init__(self, lx: Any) -> None:
        self.lx = lx
        self.ids: dict[str, Any] = {}

    def do(self, cmd: m.Command) -> Any:
        return self.lx.commands.handle(cmd).aggregate_id

    def open(self, name: str, type: str, when: datetime, **kw: Any) -> None:
        self.ids[name] = self.do(m.OpenWorkOrder(type=type, summary=f"{name} summary",
                                                 occurred_at=when, **kw))

    def dispatch(self, name: str, dept: str, when: datetime) -> None:
        self.do(m.DispatchWorkOrder(work_order_id=self.ids[name], department=dept, occurred_at=when))

    def resolve(self, name: str, when: datetime) -> None:
        self.do(m.ResolveWorkOrder(work_order_id=self.ids[name], resolution="done", occurred_at=when))

    def callback(self, name: str, result: str, when: datetime, **kw: Any) -> None:
        self.do(wm.RecordCallbackAttempt(work_order_id=self.ids[name], result=result,
                                         occurred_at=when, **kw))

    def pause(self, name: str, when: datetime) -> None:
        self.do(wm.PauseClock(work_order_id=self.ids[name], reason="waiting for the customer",
                              occurred_at=when))

    def first_part(self) -> None:
        # H1: history imported from before deadlines were recorded (no handler
        # ran, so no DeadlinesSet and no callback task).
        h1 = WorkOrder.open(type="complaint", category="", channel="phone", summary="old",
                            occurred_at=at(9, 1, 9), key="import:H1", actor="import")
        h1.dispatch("archive", at(9, 1, 9, 20))
        h1.resolve("done", at(9, 3, 10))
        self.lx.app.save(h1)
        self.ids["H1"] = h1.id
        self.open("C1", "complaint", at(9, 21, 10))
        self.dispatch("C1", "metering", at(9, 21, 10, 30))
        self.open("P2", "complaint", at(9, 21, 9))
        self.dispatch("P2", "metering", at(9, 21, 9, 30))
        self.resolve("C1", at(9, 24, 16))
        self.open("F1", "fault_repair", at(9, 28, 9), location={"feeder": "F1"})
        self.dispatch("F1", "repair-east", at(9, 28, 9, 4))
        self.open("P1", "complaint", at(9, 28, 9))
        self.dispatch("P1", "billing", at(9, 28, 9, 30))
        self.open("F2", "fault_repair", at(9, 28, 10), location={"feeder": "F2"})
        self.dispatch("F2", "repair-west", at(9, 28, 10, 8))
        self.resolve("F1", at(9, 28, 15))
        self.callback("F1", "reached", at(9, 29, 10), satisfaction=5)
        self.open("C2", "complaint", at(9, 30, 10))
        self.open("C3", "complaint", at(9, 30, 11))
        self.dispatch("C2", "metering", at(9, 30, 11, 20))
        self.dispatch("C3", "metering", at(9, 30, 11, 30))

    def second_part(self) -> None:
        self.resolve("F2", at(9, 30, 12))
        self.callback("F2", "no_answer", at(10, 8, 10))
        self.pause("P2", at(10, 8, 10))
        self.callback("F2", "reached", at(10, 9, 10), satisfaction=3)
        self.open("O1", "complaint", at(10, 9, 9))
        self.dispatch("O1", "billing", at(10, 9, 9, 30))
        self.pause("P1", at(10, 9, 10))
        self.resolve("C3", at(10, 12, 15))
        self.callback("C3", "refused", at(10, 13, 9), reason="does not want to talk")
        self.resolve("C2", at(10, 14, 9))
        self.callback("C2", "reached", at(10, 15, 9), satisfaction=4)
        self.open("Q1", "consultation", at(10, 16, 9))
        self.resolve("Q1", at(10, 16, 10))
        self.open("F3", "fault_repair", at(10, 16, 11, 58), location={"feeder": "F3"})
        # Sets the as-of time (the latest source time loaded) without touching orders.
        self.do(m.RegisterAgent(employee_no="9001", name="as-of marker", team="ops", skills={},
                                occurred_at=at(10, 16, 12)))


def build_orders(lx: Any) -> dict[str, Any]:
    o = Orders(lx)
    o.first_part()
    o.second_part()
    return o.ids


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def orders(request: pytest.FixtureRequest,
           tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Any, dict[str, Any]]]:
    home = tmp_path_factory.mktemp("wo_kpis") / "home"
    with contextlib.ExitStack() as stack:
        if request.param == "postgres":
            settings = make_settings(home, "postgres", stack.enter_context(fresh_pg_database("lianxin_wok")))
        else:
            settings = make_settings(home)
        lx = build(settings)
        stack.callback(lx.close)
        ids = build_orders(lx)
        load(lx, batch_size=9)
        yield lx, ids


def by(lx: Any, dim: str, **kw: Any) -> dict[str, dict[str, Any]]:
    df = kpis(KPIS, by=dim, directory=lx.settings.warehouse_dir, **kw)
    return {r[dim]: r for r in df.to_dicts()}


EXPECTED_BY_TYPE = {
    # work_orders, dispatched_within, resolved_within_deadline, overdue, overdue_open,
    # callback_tasks, callback_within_deadline
    "fault_repair": (3, 1 / 2, 1 / 2, 1, 0, 2, 1 / 2),
    "complaint": (7, 6 / 7, 3 / 6, 3, 2, 3, 1 / 3),
    "consultation": (1, None, 1.0, 0, 0, 1, None),
}
EXPECTED_BY_DEPARTMENT = {
    "repair-east": (1, 1.0, 1.0, 0, 0, 1, 1.0),
    "repair-west": (1, 0.0, 0.0, 1, 0, 1, 0.0),
    "metering": (4, 3 / 4, 2 / 4, 2, 1, 3, 1 / 3),
    "billing": (2, 1.0, 0.0, 1, 1, 0, None),
    "archive": (1, 1.0, 1.0, 0, 0, 0, None),
    "(none)": (2, None, 1.0, 0, 0, 1, None),
}


def _check(rows: dict[str, dict[str, Any]], expected: dict[str, tuple]) -> None:
    assert set(rows) == set(expected)
    for key, values in expected.items():
        got = tuple(rows[key][k] for k in KPIS)
        assert got == pytest.approx(values), key


def test_by_type_against_recorded_deadlines(orders):
    lx, _ = orders
    _check(by(lx, "work_order_type"), EXPECTED_BY_TYPE)


def test_by_department(orders):
    lx, _ = orders
    _check(by(lx, "department"), EXPECTED_BY_DEPARTMENT)


def test_fact_holds_the_recorded_promises(orders):
    lx, ids = orders
    import duckdb

    con = duckdb.connect(str(lx.settings.warehouse_dir / "catalog.duckdb"), read_only=True)
    try:
        rows = {str(r[0]): r[1:] for r in con.execute(
            "SELECT work_order_id, dispatch_deadline_at, deadline_at, policy_version, paused_at, "
            "callback_tasks, callbacks_reached_on_time, callback_pending_due_at "
            "FROM fact_work_order").fetchall()}
    finally:
        con.close()
    c2 = rows[str(ids["C2"])]
    assert c2[0] == at(9, 30, 11) and c2[1] == at(10, 14, 0)   # due 24:00 on 13 Oct
    assert c2[2] == "95598-2026.1" and c2[3] is None and c2[4:] == (1, 1, None)
    assert rows[str(ids["P1"])][3] == at(10, 9, 10) and rows[str(ids["P1"])][1] == at(10, 11, 0)
    assert rows[str(ids["C1"])][4:] == (1, 0, at(9, 29, 0))     # never called back
    assert rows[str(ids["Q1"])][0] is None                      # no dispatch promised
    assert rows[str(ids["Q1"])][6] == at(10, 20, 0)
    assert rows[str(ids["H1"])][:3] == (None, None, None)       # imported: no promise
    for name in ("C2", "P1", "O1", "F2"):                       # as the aggregate has them
        wo = lx.app.repository.get(ids[name])
        assert rows[str(ids[name])][1] == wo.deadlines["resolve"], name


def test_fallback_parameters_only_touch_orders_without_a_promise(orders):
    lx, _ = orders
    rows = by(lx, "work_order_type", params={"dispatched_within.minutes": 10,
                                             "resolved_within_deadline.default_deadline_h": 24,
                                             "overdue.default_deadline_h": 24})
    # H1 (20 min, 49 h) is now late on both counts; nothing else moves.
    assert rows["complaint"]["dispatched_within"] == pytest.approx(5 / 7)
    assert rows["complaint"]["resolved_within_deadline"] == pytest.approx(2 / 6)
    assert rows["complaint"]["overdue"] == 4
    assert rows["fault_repair"]["dispatched_within"] == pytest.approx(1 / 2)
    assert rows["fault_repair"]["resolved_within_deadline"] == pytest.approx(1 / 2)


@pytest.mark.parametrize("minutes, fault_repair, complaint", [
    # Minutes from opening to first dispatch: F1 4, F2 8 (F3 waits 2 at the
    # as-of time: undecided); H1 20, C1 C3 P1 P2 O1 30, C2 80. Q1 was resolved
    # without a dispatch (none promised): left out, so consultation is None.
    (30, 2 / 2, 6 / 7),
    (5, 1 / 2, 0 / 7),
    (29, 2 / 2, 1 / 7),
    (80, 2 / 2, 7 / 7),
])
def test_share_dispatched_within_n_minutes(orders, minutes, fault_repair, complaint):
    """Not the recorded deadline (dispatched_within: fault repair 5 min,
    complaint 1 h) but the same N minutes for every order."""
    lx, _ = orders
    df = kpis(["dispatched_within_minutes", "dispatched_within"], by="work_order_type",
              directory=lx.settings.warehouse_dir,
              params={"dispatched_within_minutes.minutes": minutes})
    rows = {r["work_order_type"]: r for r in df.to_dicts()}
    assert rows["fault_repair"]["dispatched_within_minutes"] == pytest.approx(fault_repair)
    assert rows["complaint"]["dispatched_within_minutes"] == pytest.approx(complaint)
    assert rows["consultation"]["dispatched_within_minutes"] is None
    # The promise-based KPI does not move with N.
    assert rows["complaint"]["dispatched_within"] == pytest.approx(6 / 7)


def test_an_order_still_waiting_for_dispatch_counts_once_n_minutes_have_passed(tmp_path: Path):
    lx = build(make_settings(tmp_path / "home"))
    try:
        o = Orders(lx)
        o.open("W1", "complaint", at(10, 12, 9))  # never dispatched
        o.do(m.RegisterAgent(employee_no="9001", name="as-of marker", team="ops", skills={},
                             occurred_at=at(10, 12, 11)))
        load(lx)

        def share(minutes: int) -> Any:
            return kpis(["dispatched_within_minutes"], directory=lx.settings.warehouse_dir,
                        params={"minutes": minutes})["dispatched_within_minutes"][0]
        assert share(30) == 0.0      # two hours without a dispatch: missed
        assert share(180) is None    # three hours have not passed yet: undecided
    finally:
        lx.close()


def test_versions_are_stated(orders):
    lx, _ = orders
    _, meta = kpis(KPIS, directory=lx.settings.warehouse_dir, with_meta=True)
    versions = {k: v["version"] for k, v in meta["kpis"].items()}
    assert versions == {"work_orders": 1, "dispatched_within": 2, "resolved_within_deadline": 2,
                        "overdue": 2, "overdue_open": 1, "callback_tasks": 1,
                        "callback_within_deadline": 1}


def _by_key(doc: dict[str, Any], dim: str) -> dict[str, dict[str, Any]]:
    return {r[dim]: r for r in doc["rows"]}


def test_cli_report_by_work_order_type(orders):
    lx, _ = orders
    # The report reads the published catalog under LIANXIN_HOME, whatever the store.
    env = {k: v for k, v in cli_env(lx.settings.home).items() if k.startswith("LIANXIN_")}
    out = CliRunner().invoke(cli_app, ["kpi", "report", "--by", "work_order_type", "--kpi",
                                       ",".join(KPIS), "--format", "json"], env=env)
    assert out.exit_code == 0, out.output
    doc = json.loads(out.output)
    assert doc["meta"]["kpis"]["callback_within_deadline"]["version"] == 1
    _check(_by_key(doc, "work_order_type"), EXPECTED_BY_TYPE)
    out = CliRunner().invoke(cli_app, ["kpi", "report", "--by", "department", "--kpi",
                                       ",".join(KPIS), "--format", "json"], env=env)
    assert out.exit_code == 0, out.output
    _check(_by_key(json.loads(out.output), "department"), EXPECTED_BY_DEPARTMENT)


def test_http_report_by_type_and_department(orders):
    lx, _ = orders
    from lianxin.http import create_app

    client = TestClient(create_app(lx))
    for dim, expected in (("work_order_type", EXPECTED_BY_TYPE),
                          ("department", EXPECTED_BY_DEPARTMENT)):
        r = client.get("/kpis/report", params={"kpi": ",".join(KPIS), "by": dim})
        assert r.status_code == 200, r.text
        _check(_by_key(r.json(), dim), expected)
    r = client.get("/kpis/report", params={"kpi": "callback_within_deadline", "by": "queue"})
    assert r.status_code == 422
    assert r.headers["content-type"].startswith("application/problem+json")


def test_loading_in_two_steps_equals_a_rebuild(tmp_path: Path):
    """Orders touched again after a first load (resolved, called back, paused)
    are recomputed from all their events: same tables as one clean rebuild."""
    lx = build(make_settings(tmp_path / "home"))
    try:
        o = Orders(lx)
        o.first_part()
        load(lx, batch_size=4)
        early = by(lx, "work_order_type")
        # As of 30 Sep 11:30: F1 called back in time, F2 dispatched late, C1 on
        # time, P2 past its 29 Sep deadline and C2 dispatched late.
        assert early["fault_repair"]["callback_within_deadline"] == 1.0
        assert early["fault_repair"]["dispatched_within"] == pytest.approx(1 / 2)
        assert early["complaint"]["overdue_open"] == 1
        assert early["complaint"]["dispatched_within"] == pytest.approx(5 / 6)
        o.second_part()
        load(lx, batch_size=4)
        _check(by(lx, "work_order_type"), EXPECTED_BY_TYPE)
        clean = tmp_path / "clean"
        loader = Loader(lx.app.recorder, clean, mapper=lx.app.mapper)
        loader.rebuild(batch_size=5)
        loader.close()
        assert table_differences(lx.settings.warehouse_dir / "loader.duckdb",
                                 clean / "loader.duckdb") == {}
    finally:
        lx.close()


def test_a_reopened_order_is_judged_by_its_new_promise(tmp_path: Path):
    """R1, a complaint opened Mon 12 Oct 09:00 (13, 14, 15, 16, 19 -> due
    19 Oct), resolved 13 Oct 10:00; its callback (due 14 Oct)
    reaches the customer 13 Oct 15:00, who reopens it: a new promise of 5
    working days from the reopening (14, 15, 16, 19, 20 -> due 20 Oct).
    Resolved again 20 Oct 10:00: on time by the new promise, late by the old
    one. The second callback task (due 21 Oct) is still pending at the as-of
    time (20 Oct 12:00): undecided."""
    lx = build(make_settings(tmp_path / "home"))
    try:
        o = Orders(lx)
        o.open("R1", "complaint", at(10, 12, 9))
        o.dispatch("R1", "metering", at(10, 12, 9, 30))
        o.resolve("R1", at(10, 13, 10))
        o.callback("R1", "reached", at(10, 13, 15), satisfaction=1, reopen=True,
                   reopen_reason="not fixed")
        o.resolve("R1", at(10, 20, 10))
        o.do(m.RegisterAgent(employee_no="9001", name="as-of marker", team="ops", skills={},
                             occurred_at=at(10, 20, 12)))
        load(lx)
        row = by(lx, "work_order_type")["complaint"]
        assert (row["resolved_within_deadline"], row["overdue"], row["overdue_open"]) == (1.0, 0, 0)
        assert (row["callback_tasks"], row["callback_within_deadline"]) == (2, 1.0)
        import duckdb

        con = duckdb.connect(str(lx.settings.warehouse_dir / "catalog.duckdb"), read_only=True)
        try:
            deadline, pending = con.execute(
                "SELECT deadline_at, callback_pending_due_at FROM fact_work_order").fetchall()[0]
        finally:
            con.close()
        assert deadline == at(10, 21, 0) and pending == at(10, 22, 0)
    finally:
        lx.close()
