"""`lianxin demo` (the README's main command) and `lianxin telephony run`."""

from __future__ import annotations

import re

import pytest
from typer.testing import CliRunner

from lianxin.cli import app

pytestmark = pytest.mark.timeout(120)


def test_demo_runs_a_short_day_and_summarises_it(tmp_path, monkeypatch):
    monkeypatch.setenv("LIANXIN_HOME", str(tmp_path / "var"))
    monkeypatch.setenv("LIANXIN_PSEUDONYM_KEY", "test-key")
    result = CliRunner().invoke(app, ["demo", "--hours", "0.25", "--speed", "120",
                                      "--start-hour", "10", "--port", "0", "--every", "1"])
    assert result.exit_code == 0, result.output
    out = result.output
    assert re.search(r"wallboard\s+http://127\.0\.0\.1:\d+/wallboard", out)
    assert "/docs" in out and "lianxin wallboard" in out
    assert re.search(r"^\[10:\d\d\] calls \d+", out, re.M), out  # live lines
    summary = re.search(r"calls placed (\d+), connected to an agent (\d+), abandoned (\d+)", out)
    assert summary, out
    placed, connected, abandoned = map(int, summary.groups())
    assert placed > 0 and connected > 0 and connected + abandoned <= placed
    # the day is in the store: the events are there for the wallboard and KPIs
    from lianxin.settings import Settings
    from lianxin.wiring import build

    lx = build(Settings.from_env())
    try:
        topics = [n.topic for n in lx.app.recorder.select_notifications(start=1, limit=100000)]
    finally:
        lx.close()
    assert sum(t.endswith("Call.Answered") for t in topics) >= connected
    assert sum(t.endswith("Call.Offered") for t in topics) == placed


def test_demo_refuses_a_busy_port(tmp_path, monkeypatch):
    import socket

    monkeypatch.setenv("LIANXIN_HOME", str(tmp_path / "var"))
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        result = CliRunner().invoke(app, ["demo", "--hours", "0.05", "--port", str(port)])
    assert result.exit_code == 2
    assert "--port" in result.output


@pytest.mark.parametrize("args, message", [
    (["--ari-url", "pbx:8088"], "--ari-url"),
    (["--ari-url", "http://127.0.0.1:9", "--config-dir", "/nonexistent"], "--config-dir"),
])
def test_telephony_run_names_the_bad_option(tmp_path, monkeypatch, args, message):
    monkeypatch.setenv("LIANXIN_HOME", str(tmp_path / "var"))
    result = CliRunner().invoke(app, ["telephony", "run", "--user", "u", "--password", "p",
                                      *args])
    assert result.exit_code == 2
    assert message in result.output


async def test_telephony_run_connects_to_asterisk_and_takes_calls(sqlite_lianxin):
    import asyncio

    from lianxin.cli.telephony import _serve_asterisk
    from telephony_adapter.simulator import run_simulator
    from telephony_adapter.stasis.config import load
    from tests.telephony.stack import Stack

    async with run_simulator() as sim:
        task = asyncio.create_task(_serve_asterisk(sqlite_lianxin, load(), sim.base_url, sim.app,
                                                   sim.username, sim.password, "127.0.0.1",
                                                   None))
        await sim.wait_for_app()
        s = Stack(sim, sqlite_lianxin.parts["telephony"], None, sqlite_lianxin)
        ch = sim.place_call()
        await s.call_state(ch, "ivr")
        sim.hangup(ch)
        await s.call_state(ch, "abandoned")
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert "telephony" not in sqlite_lianxin.parts


async def test_telephony_run_reports_a_refused_login(sqlite_lianxin):
    import typer

    from lianxin.cli.telephony import _serve_asterisk
    from telephony_adapter.simulator import run_simulator
    from telephony_adapter.stasis.config import load

    async with run_simulator() as sim:
        with pytest.raises(typer.Exit) as exit_:
            await _serve_asterisk(sqlite_lianxin, load(), sim.base_url, sim.app, sim.username,
                                  "wrong", "127.0.0.1", None)
    assert exit_.value.exit_code == 1


async def test_calls_left_open_by_a_stopped_adapter_are_closed_at_start(sqlite_lianxin):
    import asyncio

    from lianxin.cli.telephony import _serve_asterisk
    from telephony_adapter.simulator import run_simulator
    from telephony_adapter.stasis.config import load
    from tests.telephony.stack import Stack

    lx = sqlite_lianxin
    async with run_simulator() as sim:
        first = asyncio.create_task(_serve_asterisk(lx, load(), sim.base_url, sim.app,
                                                    sim.username, sim.password, "127.0.0.1",
                                                    None))
        await sim.wait_for_app()
        s = Stack(sim, lx.parts["telephony"], None, lx)
        ch = sim.place_call()
        await s.call_state(ch, "ivr")
        first.cancel()  # the adapter stops with the call open ...
        with pytest.raises(asyncio.CancelledError):
            await first
        sim.hangup(ch)  # ... and the caller leaves meanwhile
        second = asyncio.create_task(_serve_asterisk(lx, load(), sim.base_url, sim.app,
                                                     sim.username, sim.password, "127.0.0.1",
                                                     None))
        call = await s.call_state(ch, "ended", "abandoned")
        second.cancel()
        with pytest.raises(asyncio.CancelledError):
            await second
    assert call.hung_up_by == "system"
