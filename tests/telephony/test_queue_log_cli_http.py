"""`lianxin import queue-log` and `POST /imports/queue-log`, as an operator uses them."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from lianxin.cli import app as cli
from lianxin.http import create_app
from lianxin.settings import Settings
from lianxin.wiring import build

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "queue_log"


@pytest.fixture
def home(tmp_path, monkeypatch):
    path = tmp_path / "home"
    monkeypatch.setenv("LIANXIN_HOME", str(path))
    monkeypatch.setenv("LIANXIN_STORE", "sqlite")
    monkeypatch.setenv("LIANXIN_PSEUDONYM_KEY", "test-key")
    return path


def stored_events(home: Path) -> int:
    if not (home / "events.sqlite").exists():
        return 0
    lx = build(Settings.from_env())
    try:
        return lx.app.max_position()
    finally:
        lx.close()


def test_cli_imports_a_file_and_a_second_run_adds_nothing(home):
    runner = CliRunner()
    first = runner.invoke(cli, ["import", "queue-log", str(FIXTURES / "small_day.log")])
    assert first.exit_code == 0, first.output
    assert "created: 10 calls, 2 agents" in first.output
    head = stored_events(home)
    assert head > 0
    again = runner.invoke(cli, ["import", "queue-log", str(FIXTURES / "small_day.log"), "--json"])
    assert again.exit_code == 0
    summary = json.loads(again.output)
    assert (summary["events_created"], summary["calls_created"], summary["ok"]) == (0, 0, True)
    assert stored_events(home) == head


def test_cli_names_bad_lines_and_exits_non_zero_after_importing_the_rest(home):
    result = CliRunner().invoke(cli, ["import", "queue-log", str(FIXTURES / "with_errors.log")])
    assert result.exit_code == 1
    assert "line 4: CONNECT: CONNECT: holdtime must be a whole number" in result.output
    assert "line 6: ENTERQUEUE: time must be" in result.output
    assert "created: 3 calls" in result.output
    assert stored_events(home) > 0


def test_cli_reads_gzip_rotated_logs_and_standard_input(home, tmp_path):
    rotated = tmp_path / "queue_log.1.gz"
    rotated.write_bytes(gzip.compress((FIXTURES / "small_day.log").read_bytes()))
    result = CliRunner().invoke(cli, ["import", "queue-log", str(rotated)])
    assert result.exit_code == 0, result.output
    assert "created: 10 calls" in result.output
    piped = CliRunner().invoke(cli, ["import", "queue-log", "-"],
                               input=(FIXTURES / "with_errors.log").read_text())
    assert piped.exit_code == 1 and "created: 3 calls" in piped.output


def test_cli_dry_run_writes_nothing(home):
    result = CliRunner().invoke(cli, ["import", "queue-log", "--dry-run",
                                      str(FIXTURES / "full_day.log"),
                                      "--agent-map", str(FIXTURES / "agents.csv")])
    assert result.exit_code == 0, result.output
    assert "would create: 14 calls, 4 agents" in result.output
    assert not (home / "events.sqlite").exists()


@pytest.mark.parametrize("args, message", [
    (["/no/such/queue_log"], "No such file"),
    (["{fixtures}/small_day.log", "--timezone", "Mars/Olympus"], "--timezone: unknown time zone"),
    (["{fixtures}/small_day.log", "--agent-map", "{fixtures}/small_day.md"], "--agent-map"),
])
def test_cli_refuses_unusable_input_with_exit_code_2(home, args, message):
    args = [a.format(fixtures=FIXTURES) for a in args]
    result = CliRunner().invoke(cli, ["import", "queue-log", *args])
    assert result.exit_code == 2
    assert message in result.output
    assert stored_events(home) == 0


@pytest.fixture
def client(sqlite_lianxin):
    with TestClient(create_app(sqlite_lianxin)) as c:
        yield c


def test_http_upload_imports_and_reports_the_summary(client, sqlite_lianxin):
    body = (FIXTURES / "full_day.log").read_bytes()
    agents = (FIXTURES / "agents.csv").read_bytes()
    r = client.post("/imports/queue-log", files={"file": ("queue_log", body, "text/plain"),
                                                 "agent_map": ("agents.csv", agents, "text/csv")})
    assert r.status_code == 200, r.text
    assert (r.json()["calls_created"], r.json()["agents_created"], r.json()["ok"]) == (14, 4, True)
    head = sqlite_lianxin.app.max_position()
    again = client.post("/imports/queue-log", files={"file": ("queue_log", body, "text/plain"),
                                                     "agent_map": ("agents.csv", agents, "text/csv")})
    assert again.status_code == 200 and again.json()["events_created"] == 0
    assert sqlite_lianxin.app.max_position() == head


def test_http_accepts_a_gzip_body(client):
    body = gzip.compress((FIXTURES / "small_day.log").read_bytes())
    r = client.post("/imports/queue-log", content=body,
                    headers={"content-type": "application/octet-stream"})
    assert r.status_code == 200 and r.json()["calls_created"] == 10


def test_http_partial_import_lists_skipped_lines(client):
    r = client.post("/imports/queue-log", content=(FIXTURES / "with_errors.log").read_bytes(),
                    headers={"content-type": "text/plain"})
    assert r.status_code == 200
    body = r.json()
    assert body["ok"] is False and [s["line"] for s in body["skipped"]] == [3, 4, 6, 9, 10]


@pytest.mark.parametrize("kwargs, status, code, field", [
    ({"content": b"", "headers": {"content-type": "text/plain"}}, 400, "empty-upload", "file"),
    ({"content": b"1795132800|NONE|NONE|NONE|QUEUESTART|\n\xff\xfe",
      "headers": {"content-type": "text/plain"}}, 400, "not-utf8", "file"),
    ({"files": {"other": ("x", b"1|2", "text/plain")}}, 400, "missing-file", "file"),
    ({"content": b"\x1f\x8bnot really gzip", "headers": {"content-type": "text/plain"}}, 400,
     "corrupt-gzip", "file"),
    ({"content": b"hello\nworld\n", "headers": {"content-type": "text/plain"}}, 422,
     "no-queue-log-lines", "file"),
    ({"content": b"1795132800|NONE|NONE|NONE|QUEUESTART|", "headers": {"content-type": "text/plain"},
      "params": {"timezone": "Mars/Olympus"}}, 422, "invalid-value", "timezone"),
    ({"files": {"file": ("q", b"1795132800|NONE|NONE|NONE|QUEUESTART|", "text/plain"),
                "agent_map": ("m.csv", b"agent,employee_no\nWang Wei,\n", "text/csv")}},
     422, "invalid-value", "agent_map"),
])
def test_http_bad_uploads_are_problems_and_store_nothing(client, sqlite_lianxin, kwargs, status,
                                                         code, field):
    r = client.post("/imports/queue-log", **kwargs)
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    problem = r.json()
    assert (problem["status"], problem["code"], problem["field"]) == (status, code, field)
    assert sqlite_lianxin.app.max_position() == 0
