"""Export bundles: round trips through ``verify-bundle`` with no database,
partial exports verified against the published head, and tampered bundles
rejected at the right position."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

from typer.testing import CliRunner

from domain.call import call_id_for
from queries.audit_bundle import Selection, export, select, verify_bundle
from queries.audit_trail import head
from tests.audit.scenario import populate


def _rezip(src: Path, dst: Path, change) -> None:
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for name in zin.namelist():
            zout.writestr(name, change(name, zin.read(name)))


def test_full_export_round_trip(lianxin, tmp_path):
    populate(lianxin, calls=2)
    position, published = head(lianxin)
    manifest = export(lianxin, tmp_path / "all.zip")
    assert manifest["counts"]["records"] == position and manifest["counts"]["links"] == 0
    assert (manifest["first_position"], manifest["last_position"]) == (1, position)
    assert manifest["end"] == {"position": position, "chain_hash": published}
    with zipfile.ZipFile(tmp_path / "all.zip") as zf:
        lines = zf.read("events.jsonl").decode().splitlines()
        types = json.loads(zf.read("event-types.json"))
    assert [json.loads(x)["position"] for x in lines] == list(range(1, position + 1))
    offered = types["domain.call:Call.Offered"]
    assert {"external_id", "pii", "occurred_at"} <= {f["name"] for f in offered["fields"]}
    assert [f for f in offered["fields"] if f["name"] == "pii"][0]["personal_data"] is True
    check = verify_bundle(tmp_path / "all.zip", head=published)
    assert check.ok, check.problems


def test_partial_exports_verify_against_the_published_head(lianxin, tmp_path):
    calls = populate(lianxin, calls=3)
    position, published = head(lianxin)
    for name, sel in (("call", select(lianxin, call=str(calls[1]))),
                      ("agent", select(lianxin, agent="1001")),
                      ("time", select(lianxin, since="2026-11-23T09:03:00+00:00",
                                      until="2026-11-23T17:04:00+08:00"))):
        manifest = export(lianxin, tmp_path / f"{name}.zip", selection=sel)
        assert manifest["end"]["chain_hash"] == published
        assert manifest["counts"]["records"] == len(sel.positions) > 0
        assert manifest["counts"]["links"] > 0
        check = verify_bundle(tmp_path / f"{name}.zip", head=published)
        assert check.ok, (name, check.problems)
    with zipfile.ZipFile(tmp_path / "call.zip") as zf:
        lines = [json.loads(x) for x in zf.read("events.jsonl").decode().splitlines()]
    # Only the conversation's own records travel; the others are 40-byte links.
    assert {x["aggregate_id"] for x in lines} == {calls[1].hex}
    with zipfile.ZipFile(tmp_path / "time.zip") as zf:
        times = [json.loads(x)["occurred_at"] for x in zf.read("events.jsonl").decode().splitlines()]
    assert times and all("2026-11-23T09:03:00" <= t < "2026-11-23T09:04:00" for t in times)


def test_tampered_bundles_are_rejected(lianxin, tmp_path):
    calls = populate(lianxin, calls=2)
    _, published = head(lianxin)
    good = tmp_path / "call.zip"
    export(lianxin, good, selection=select(lianxin, call=str(calls[0])))

    def edit_line(name, data):
        if name != "events.jsonl":
            return data
        lines = data.decode().splitlines()
        third = json.loads(lines[2])
        assert '"actor":null' in third["payload"]
        third["payload"] = third["payload"].replace('"actor":null', '"actor":"intruder"')
        lines[2] = json.dumps(third, ensure_ascii=False)
        return ("\n".join(lines) + "\n").encode()

    _rezip(good, tmp_path / "edited.zip", edit_line)
    check = verify_bundle(tmp_path / "edited.zip", head=published)
    third_position = json.loads(zipfile.ZipFile(good).read("events.jsonl").decode()
                                .splitlines()[2])["position"]
    assert not check.ok and check.first_bad_position == third_position
    assert any("sha256 does not match" in p for p in check.problems)

    def drop_line(name, data):
        if name != "events.jsonl":
            return data
        lines = data.decode().splitlines()
        return ("\n".join(lines[:1] + lines[2:]) + "\n").encode()

    _rezip(good, tmp_path / "dropped.zip", drop_line)
    assert not verify_bundle(tmp_path / "dropped.zip").ok
    # A bundle whose content is intact but whose head is not the published one.
    other = verify_bundle(good, head="0" * 64)
    assert not other.ok and any("published head" in p for p in other.problems)
    assert not verify_bundle(tmp_path / "missing.zip").ok


def test_cli_export_and_offline_verification(sqlite_lianxin, tmp_path, monkeypatch):
    from lianxin.cli import app

    calls = populate(sqlite_lianxin, calls=2)
    _, published = head(sqlite_lianxin)
    sqlite_lianxin.close()
    monkeypatch.setenv("LIANXIN_HOME", str(sqlite_lianxin.settings.home))
    monkeypatch.setenv("LIANXIN_PSEUDONYM_KEY", "test-key")
    runner = CliRunner()
    bundle = tmp_path / "b.zip"
    out = runner.invoke(app, ["audit", "export", "--call", str(calls[0]), "--output", str(bundle),
                              "--actor", "regulator-liaison", "--reason", "case 42"])
    assert out.exit_code == 0, out.output
    # No database needed: point the environment at nothing at all.
    monkeypatch.setenv("LIANXIN_HOME", str(tmp_path / "nowhere"))
    ok = runner.invoke(app, ["audit", "verify-bundle", str(bundle), "--head", published])
    assert ok.exit_code == 0 and "matches the published head" in ok.output
    assert not (tmp_path / "nowhere").exists()
    bad = runner.invoke(app, ["audit", "verify-bundle", str(bundle), "--head", "ab" * 32])
    assert bad.exit_code == 3 and "published head" in bad.output
    missing = runner.invoke(app, ["audit", "verify-bundle", str(tmp_path / "nope.zip")])
    assert missing.exit_code == 2 and "BUNDLE" in missing.output


def test_export_refuses_bad_requests(lianxin, tmp_path):
    import pytest

    from domain.errors import InvalidValue, NotFound

    populate(lianxin, calls=1)
    with pytest.raises(InvalidValue) as e:
        export(lianxin, tmp_path / "x.zip", start=5, stop=2)
    assert e.value.context["field"] == "to"
    with pytest.raises(InvalidValue):
        export(lianxin, tmp_path / "x.zip", stop=10_000)
    with pytest.raises(NotFound):
        select(lianxin, call=str(call_id_for("never-offered")))
    with pytest.raises(InvalidValue) as e:
        select(lianxin, call="not-a-uuid")
    assert e.value.context["field"] == "call"
    with pytest.raises(InvalidValue):
        select(lianxin, call=str(call_id_for("x")), agent="1001")
    assert not (tmp_path / "x.zip").exists()
    assert Selection("all").positions is None
