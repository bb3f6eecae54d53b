"""The `lianxin` CLI: commands, queries and errors naming the field."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from lianxin.cli import app


@pytest.fixture
def cli(tmp_path, monkeypatch):
    monkeypatch.setenv("LIANXIN_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("LIANXIN_STORE", "sqlite")
    monkeypatch.setenv("LIANXIN_PSEUDONYM_KEY", "test-key")
    runner = CliRunner()

    def run(*args: str, code: int = 0) -> str:
        result = runner.invoke(app, list(args))
        assert result.exit_code == code, (args, result.output, result.exception)
        return result.output

    return run


def test_agent_commands_and_board(cli):
    out = json.loads(cli("agent", "register", "1001", "--name", "Li Na", "--team", "A",
                         "--skill", "power=3", "--at", "2026-11-23T10:00:00+08:00"))
    assert out["new_events"] == 1
    cli("agent", "login", "1001", "--endpoint", "PJSIP/1001")
    first = json.loads(cli("agent", "not-ready", "1001", "--reason", "meal", "--key", "k-1"))
    again = json.loads(cli("agent", "not-ready", "1001", "--reason", "meal", "--key", "k-1"))
    assert again["duplicate"] and again["position"] == first["position"]
    shown = json.loads(cli("agent", "show", "1001"))
    assert (shown["state"], shown["reason"], shown["skills"]) == ("not_ready", "meal",
                                                                  {"power": 3})
    cli("agent", "ready", "1001")
    assert [a["state"] for a in json.loads(cli("agent", "list", "--team", "A"))] == ["ready"]
    board = json.loads(cli("wallboard"))
    assert board["agents"]["by_state"]["ready"] == 1
    status = json.loads(cli("projections", "status"))
    assert status["behind"] == 0 and status["position"] == status["head"] == 4


def test_work_order_commands(cli):
    opened = json.loads(cli("work-orders", "open", "--type", "complaint", "--summary", "rude",
                            "--key", "wo-cli-1"))
    wid = opened["aggregate_id"]
    again = json.loads(cli("work-orders", "open", "--type", "complaint", "--summary", "rude",
                           "--key", "wo-cli-1"))
    assert again["duplicate"] and again["aggregate_id"] == wid
    cli("work-orders", "dispatch", wid, "--department", "service")
    cli("work-orders", "accept", wid, "--department", "service")
    cli("work-orders", "resolve", wid, "--resolution", "apologised")
    cli("work-orders", "close", wid)
    cli("work-orders", "reopen", wid, "--reason", "caller not satisfied")


def test_errors_exit_non_zero_naming_the_field(cli):
    out = cli("agent", "register", "1001", "--name", "X", "--skill", "power", code=2)
    assert "--skill" in out
    out = cli("agent", "register", "1001", "--name", "X", "--skill", "power=42", code=1)
    assert "skills" in out
    out = cli("agent", "ready", "9999", code=1)
    assert "not found" in out
    cli("agent", "register", "1001", "--name", "X")
    out = cli("agent", "ready", "1001", code=1)
    assert "logged_out" in out
    out = cli("agent", "login", "1001", "--endpoint", "P/1", "--at", "yesterday", code=2)
    assert "--at" in out
    out = cli("work-orders", "open", "--type", "gossip", "--summary", "x", code=1)
    assert out.startswith("error: type:")
    out = cli("work-orders", "close", "not-an-id", code=2)
    assert "work_order_id" in out
    out = cli("call", "show", "not-an-id", code=1)
    assert "call_id" in out
    out = cli("call", "show", "00000000-0000-0000-0000-000000000000", code=1)
    assert "not found" in out
    cli("projections", "rebuild", code=2)
    assert "applied" in cli("projections", "rebuild", "--yes")
