"""The CLI and HTTP faces of the warehouse: formats, metadata, bad input."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from lianxin.cli import app as cli_app
from tests.warehouse.helpers import cli_env

DAY = ["--from", "2026-03-02", "--to", "2026-03-02"]


@pytest.fixture(scope="module")
def cli(small_day_sqlite):
    lx, _ = small_day_sqlite
    runner = CliRunner()
    env = {k: v for k, v in cli_env(lx.settings.home).items() if k.startswith("LIANXIN_")}

    def invoke(*args: str):
        return runner.invoke(cli_app, list(args), env=env)
    return invoke, lx


def test_kpi_list_prints_every_definition(cli):
    invoke, _ = cli
    out = invoke("kpi", "list", "--format", "json")
    assert out.exit_code == 0, out.output
    items = {k["id"]: k for k in json.loads(out.output)}
    assert {"service_level", "occupancy", "utilization", "repeat_caller_rate", "aht_s"} <= set(items)
    assert items["service_level"]["params"]["denominator"]["choices"] == [
        "answered", "answered_abandoned", "answered_abandoned_minus_short"]
    assert all(k["version"] >= 1 and k["formula"] and k["description"] for k in items.values())
    text = invoke("kpi", "list")
    assert "occupancy (v1, agent)" in text.output


def test_report_json_has_kpi_columns_and_meta(cli):
    invoke, lx = cli
    out = invoke("kpi", "report", "--by", "queue", "--kpi", "offered,service_level,asa_s",
                 "--param", "service_level.threshold_s=60", "--format", "json", *DAY)
    assert out.exit_code == 0, out.output
    doc = json.loads(out.output)
    assert doc["columns"] == ["queue", "offered", "service_level", "asa_s"]
    power = next(r for r in doc["rows"] if r["queue"] == "power")
    assert power["offered"] == 6
    assert doc["meta"]["kpis"]["service_level"]["params"]["threshold_s"] == 60
    assert doc["meta"]["as_of"]["position"] == lx.app.max_position()


def test_report_table_states_versions_and_as_of(cli):
    invoke, lx = cli
    out = invoke("kpi", "report", "--by", "queue", "--interval", "day", "--kpi",
                 "offered,service_level", "--param", "service_level.denominator=answered", *DAY)
    assert out.exit_code == 0, out.output
    assert f"as of position {lx.app.max_position()}" in out.output
    line = next(x for x in out.output.splitlines() if x.startswith("# service_level v2"))
    assert "threshold_s=20" in line and "denominator=answered," in line
    assert "power" in out.output and "water" in out.output


def test_report_csv_and_parquet(cli, tmp_path: Path):
    invoke, _ = cli
    target = tmp_path / "r.csv"
    out = invoke("kpi", "report", "--interval", "day", "--kpi", "offered,answered",
                 "--format", "csv", "--output", str(target), *DAY)
    assert out.exit_code == 0, out.output
    rows = list(csv.DictReader(io.StringIO(target.read_text())))
    assert rows[0]["offered"] == "10" and rows[0]["answered"] == "3"
    assert json.loads(Path(str(target) + ".meta.json").read_text())["interval"] == "day"
    pq_path = tmp_path / "r.parquet"
    out = invoke("kpi", "report", "--kpi", "offered", "--format", "parquet", "--output",
                 str(pq_path), *DAY)
    assert out.exit_code == 0, out.output
    table = pq.read_table(pq_path)
    assert table.column("offered").to_pylist() == [10]
    assert b"lianxin.report" in table.schema.metadata


@pytest.mark.parametrize("args, needle", [
    (["--kpi", "offered,bogus"], "--kpi"),
    (["--kpi", "service_level", "--param", "service_level.threshold_s=abc"], "--param"),
    (["--kpi", "service_level", "--param", "nonsense"], "--param"),
    (["--by", "galaxy"], "--by"),
    (["--interval", "7m"], "--interval"),
    (["--from", "2026-02-30"], "--from"),
    (["--format", "xml"], "--format"),
    (["--format", "parquet"], "--output"),
])
def test_bad_report_options_exit_nonzero_naming_the_option(cli, args, needle):
    invoke, _ = cli
    out = invoke("kpi", "report", *args)
    assert out.exit_code == 2
    assert needle in out.output


def test_report_before_any_load_says_so(tmp_path: Path):
    out = CliRunner().invoke(cli_app, ["kpi", "report"],
                             env={"LIANXIN_HOME": str(tmp_path / "empty")})
    assert out.exit_code == 1
    assert "warehouse load" in out.output


# -- HTTP -------------------------------------------------------------------------
@pytest.fixture(scope="module")
def http(small_day_sqlite):
    from lianxin.http import create_app

    lx, _ = small_day_sqlite
    return TestClient(create_app(lx)), lx


def test_http_list_report_and_status(http):
    client, lx = http
    assert {k["id"] for k in client.get("/kpis").json()} >= {"offered", "occupancy"}
    assert client.get("/kpis/service_level").json()["version"] == 2
    r = client.get("/kpis/report", params={"kpi": "offered,abandon_rate", "by": "queue",
                                           "from": "2026-03-02", "to": "2026-03-02",
                                           "param": "abandon_rate.exclude_short=true"})
    assert r.status_code == 200
    body = r.json()
    assert body["meta"]["kpis"]["abandon_rate"]["params"]["exclude_short"] == "true"
    assert {row["queue"]: row["offered"] for row in body["rows"]} == {
        "(none)": 3, "power": 6, "water": 1}
    status = client.get("/warehouse/status").json()
    assert status["as_of_position"] == lx.app.max_position() and status["lag_events"] == 0
    assert status["rows"]["fact_call"] == 10


def test_http_report_as_csv_with_its_meta_in_headers(http):
    client, lx = http
    r = client.get("/kpis/report", params={"kpi": "offered,service_level", "by": "queue",
                                           "from": "2026-03-02", "to": "2026-03-02",
                                           "param": "service_level.threshold_s=60",
                                           "format": "csv"})
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/csv")
    assert 'filename="kpis.csv"' in r.headers["content-disposition"]
    rows = {row["queue"]: row for row in csv.DictReader(io.StringIO(r.text))}
    assert rows["power"]["offered"] == "6" and list(rows["power"]) == ["queue", "offered",
                                                                       "service_level"]
    meta = json.loads(r.headers["lianxin-report-meta"])
    assert meta["kpis"]["service_level"]["params"]["threshold_s"] == 60
    assert meta["kpis"]["service_level"]["version"] == 2
    assert int(r.headers["lianxin-as-of-position"]) == meta["as_of"]["position"]


def test_http_report_as_parquet_carries_its_meta_inside(http):
    client, _ = http
    r = client.get("/kpis/report", params={"kpi": "offered,answered", "interval": "day",
                                           "from": "2026-03-02", "to": "2026-03-02",
                                           "format": "parquet"})
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "application/vnd.apache.parquet"
    table = pq.read_table(io.BytesIO(r.content))
    assert table.column("offered").to_pylist() == [10]
    assert table.column("answered").to_pylist() == [3]
    inside = json.loads(table.schema.metadata[b"lianxin.report"])
    assert inside == json.loads(r.headers["lianxin-report-meta"])
    assert inside["interval"] == "day"


def test_http_month_over_month_comparison(http):
    client, _ = http
    # Work orders by month: wo3 opened 26 Feb, wo1 and wo2 on 2 Mar.
    r = client.get("/kpis/report", params={"kpi": "work_orders", "interval": "month",
                                           "compare": "mom", "from": "2026-03-01",
                                           "to": "2026-03-31"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["columns"] == ["interval_start", "work_orders", "work_orders_prev",
                               "work_orders_change"]
    assert body["rows"] == [{"interval_start": "2026-03-01T00:00:00", "work_orders": 2,
                             "work_orders_prev": 1, "work_orders_change": 1}]
    assert body["meta"]["compare"] == "mom"
    r = client.get("/kpis/report", params={"kpi": "offered", "interval": "day",
                                           "compare": "yoy", "format": "csv",
                                           "from": "2026-03-02", "to": "2026-03-02"})
    assert r.status_code == 200
    row = next(csv.DictReader(io.StringIO(r.text)))
    assert (row["offered"], row["offered_prev"], row["offered_change"]) == ("10", "", "")


@pytest.mark.parametrize("params, status, field", [
    ({"kpi": "offered,nope"}, 422, "kpi"),
    ({"kpi": "service_level", "param": "service_level.threshold_s=-3"}, 422, "param"),
    ({"kpi": "service_level", "param": "service_level.colour=red"}, 422, "param"),
    ({"kpi": "service_level", "param": "garbage"}, 422, "param"),
    ({"kpi": "occupancy", "by": "queue"}, 422, "by"),
    ({"kpi": "offered", "from": "yesterday"}, 422, "from"),
    ({"kpi": "offered", "format": "xlsx"}, 422, "format"),
    ({"kpi": "service_level", "param": ["service_level.abandons_within_threshold=met",
                                        "service_level.denominator=answered"]}, 422, "param"),
])
def test_http_bad_requests_are_problems(http, params, status, field):
    client, _ = http
    r = client.get("/kpis/report", params=params)
    assert r.status_code == status
    assert r.headers["content-type"].startswith("application/problem+json")
    assert r.json()["field"] == field and r.json()["status"] == status


def test_http_unknown_kpi_is_404(http):
    client, _ = http
    r = client.get("/kpis/nope")
    assert r.status_code == 404 and r.headers["content-type"].startswith("application/problem+json")


def test_http_load_is_incremental(http):
    from commands import messages as m

    client, lx = http
    before = client.get("/warehouse/status").json()["rows"]["fact_call"]
    lx.commands.handle(m.OfferCall(external_id="late-1", dialed_number="95598"))
    assert client.get("/warehouse/status").json()["lag_events"] == 1
    r = client.post("/warehouse/load")
    assert r.status_code == 200 and r.json()["events"] == 1
    after = client.get("/warehouse/status").json()
    assert after["rows"]["fact_call"] == before + 1 and after["lag_events"] == 0
