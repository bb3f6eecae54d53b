"""The IVR tree from its configuration file, and a caller's walk through it."""

import asyncio
from pathlib import Path

import pytest

from domain.errors import InvalidValue
from domain.ivr import Chosen, Entered, IvrSession, IvrTree, Lookup, Play, ToQueue
from telephony_adapter.stasis import config as telconfig
from telephony_adapter.stasis.selfservice import SelfServiceDesk


@pytest.fixture(scope="module")
def tree() -> IvrTree:
    return telconfig.load().ivr


def kinds(steps):
    return [type(s).__name__ for s in steps]


def test_the_shipped_configuration_loads_and_every_menu_target_exists():
    cfg = telconfig.load()
    assert cfg.ivr.root == "main"
    assert cfg.ivr.queues() <= {q.name for q in cfg.queues}
    for menu in cfg.ivr.menus.values():
        assert all(sound and " " not in sound for sound in menu.prompt)


def test_start_enters_the_root_menu_and_plays_its_prompt(tree):
    steps = IvrSession(tree).start()
    assert steps[0] == Entered("main")
    assert isinstance(steps[1], Play) and steps[1].sounds == tree.menus["main"].prompt


def test_digits_lead_to_a_sub_menu_then_a_queue(tree):
    s = IvrSession(tree)
    s.start()
    steps = s.digit("1")
    assert kinds(steps) == ["Chosen", "Entered", "Play"]
    assert steps[1] == Entered("repair")
    steps = s.digit("1")
    assert steps[0] == Chosen("repair", "1", steps[0].option)
    assert steps[-1] == ToQueue("repair", "choice")
    assert s.done and s.digit("1") == []  # later digits no longer move the menu


def test_zero_reaches_an_agent_from_any_menu(tree):
    s = IvrSession(tree)
    s.start()
    s.digit("2")
    assert s.digit("0")[-1] == ToQueue(tree.agent_queue, "agent")


def test_invalid_digits_replay_the_menu_then_hand_over_to_an_agent(tree):
    s = IvrSession(tree)
    s.start()
    first = s.digit("7")
    assert kinds(first) == ["Play"]
    assert first[0].sounds[: len(tree.invalid_prompt)] == tree.invalid_prompt
    assert kinds(s.timeout()) == ["Play"]  # silence counts as a retry too
    assert s.digit("8") == [ToQueue(tree.agent_queue, "retries_exhausted")]


def test_self_service_collects_a_number_until_hash(tree):
    s = IvrSession(tree)
    s.start()
    s.digit("2")
    steps = s.digit("1")
    assert steps[0].option.target == "work_order_status"
    assert isinstance(steps[-1], Play)
    for d in "2026":
        assert s.digit(d) == []
    assert s.digit("#") == [Lookup("work_order_status", "2026")]
    back = s.resume()
    assert back[0].menu == "selfservice"


def test_a_digit_timeout_after_some_digits_submits_them(tree):
    s = IvrSession(tree)
    s.start()
    s.digit("2")
    s.digit("2")  # outage info: area code
    s.digit("3")
    s.digit("1")
    assert s.timeout() == [Lookup("outage_info", "31")]


def test_star_restarts_the_number(tree):
    s = IvrSession(tree)
    s.start()
    s.digit("2")
    s.digit("1")
    s.digit("9")
    s.digit("*")
    s.digit("4")
    assert s.digit("#") == [Lookup("work_order_status", "4")]


def test_max_digits_ends_collection_without_hash(tree):
    s = IvrSession(tree)
    s.start()
    s.digit("2")
    s.digit("2")
    out = []
    for d in "123456":
        out = s.digit(d)
    assert out == [Lookup("outage_info", "123456")]


def _write(tmp_path: Path, ivr: str) -> Path:
    (tmp_path / "ivr.toml").write_text(ivr)
    (tmp_path / "queues.toml").write_text((telconfig.CONFIG_DIR / "queues.toml").read_text())
    return tmp_path


@pytest.mark.parametrize("ivr, message", [
    ('[ivr]\nroot="x"\nagent_queue="general"\n', "root menu x"),
    ('[ivr]\nroot="m"\nagent_queue="general"\n[menus.m]\nprompt="p"\n[menus.m.options]\n1={action="menu",target="nope"}\n',
     "no menu nope"),
    ('[ivr]\nroot="m"\nagent_queue="general"\n[menus.m]\nprompt="p"\n[menus.m.options]\n1={action="fly"}\n',
     "unknown action"),
    ('[ivr]\nroot="m"\nagent_queue="nowhere"\n[menus.m]\nprompt="p"\n', "undefined queue"),
    ('[ivr]\nroot="m"\n', "lacks 'agent_queue'"),
    ('[ivr\n', "ivr.toml"),
])
def test_a_broken_configuration_names_what_is_wrong(tmp_path, ivr, message):
    with pytest.raises(InvalidValue, match=message):
        telconfig.load(_write(tmp_path, ivr))


def test_self_service_uses_the_work_orders_queries_interface():
    seen = []

    def work_order_status(lianxin, number):
        seen.append((lianxin, number))
        return {"number": number, "status": "dispatched"} if number == "42" else None

    def outage_info(lianxin, area):
        return [{"kind": "planned", "area": area}] if area == "31" else []

    desk = SelfServiceDesk("LX", lookups={"work_order_status": work_order_status,
                                          "outage_info": outage_info})
    found = asyncio.run(desk("work_order_status", "42"))
    assert found.result == "dispatched" and "custom/status-dispatched" in found.sounds
    assert asyncio.run(desk("work_order_status", "7")).result == "not_found"
    assert seen == [("LX", "42"), ("LX", "7")]
    outage = asyncio.run(desk("outage_info", "31"))
    assert outage.result.startswith("1 outage") and "digits:1" in outage.sounds
    assert asyncio.run(desk("outage_info", "99")).result == "no_outage"


def test_a_failing_lookup_is_heard_as_unavailable():
    def broken(lianxin, number):
        raise RuntimeError("read model missing")

    desk = SelfServiceDesk(None, lookups={"work_order_status": broken})
    assert asyncio.run(desk("work_order_status", "1")).result.startswith("unavailable")
    assert asyncio.run(desk("outage_info", "1")).result == "unavailable"


def test_the_work_orders_queries_are_used_when_present(sqlite_lianxin):
    desk = SelfServiceDesk(sqlite_lianxin)
    assert set(desk.lookups) == {"work_order_status", "outage_info"}
    # nothing filed yet: an unknown number and an area without outages
    assert asyncio.run(desk("work_order_status", "12345")).result == "not_found"
    assert asyncio.run(desk("outage_info", "31")).result == "no_outage"
