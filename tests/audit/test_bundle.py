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


def _anchor_then_more(lx, calls=2):
    """An anchor published mid-history, then more history after it."""
    from commands import messages as m
    from tests.audit.scenario import at, simple_call

    ids = populate(lx, calls=calls)
    anchor = head(lx)
    ids.append(simple_call(lx.commands, "after-anchor", "1001", 5000))
    lx.commands.handle(m.MakeNotReady(employee_no="1001", reason="break", occurred_at=at(6000)))
    return ids, anchor


def test_verify_bundle_checks_anchors_anywhere_in_its_range(lianxin, tmp_path):
    calls, (old_pos, old_hash) = _anchor_then_more(lianxin)
    new_pos, new_hash = head(lianxin)
    assert old_pos < new_pos
    for name, sel in (("all", None), ("call", select(lianxin, call=str(calls[0])))):
        bundle = tmp_path / f"{name}.zip"
        manifest = export(lianxin, bundle, selection=sel)
        assert manifest["start"]["position"] < old_pos < manifest["end"]["position"] == new_pos
        check = verify_bundle(bundle, anchors=[(old_pos, old_hash), (new_pos, new_hash)])
        assert check.ok, (name, check.problems)
        assert [a["ok"] for a in check.anchors] == [True, True]
        wrong = verify_bundle(bundle, anchors=[(old_pos, "ab" * 32)])
        assert not wrong.ok and any(f"anchor {old_pos}" in p for p in wrong.problems), name
    outside = verify_bundle(tmp_path / "call.zip", anchors=[(new_pos + 10, new_hash)])
    assert not outside.ok and "outside the bundle's range" in outside.anchors[0]["detail"]
    # Two different hashes for one position: not "the last one wins".
    twice = verify_bundle(tmp_path / "all.zip", anchors=[(old_pos, "ab" * 32), (old_pos, old_hash)])
    assert not twice.ok and any("two different anchors" in p for p in twice.problems)


def test_a_time_range_export_can_end_at_an_anchor(lianxin, tmp_path):
    """--from INSTANT --to POSITION: the records of a time range, in a bundle
    that ends at the anchored position, so that the old anchor checks it."""
    from lianxin.http.audit import _range as parse_range  # the CLI parses --from/--to alike

    _calls, (old_pos, old_hash) = _anchor_then_more(lianxin)
    start, stop, since, until = parse_range("2026-11-23T09:02:00+00:00", str(old_pos))
    assert (start, stop, since, until) == (None, old_pos, "2026-11-23T09:02:00+00:00", None)
    sel = select(lianxin, since=since, until=until)
    assert max(sel.positions) > old_pos  # the range holds records after the anchor too
    manifest = export(lianxin, tmp_path / "t.zip", start=start, stop=stop, selection=sel)
    assert manifest["end"] == {"position": old_pos, "chain_hash": old_hash}
    assert manifest["last_position"] <= old_pos
    check = verify_bundle(tmp_path / "t.zip", head=old_hash, anchors=[(old_pos, old_hash)])
    assert check.ok, check.problems
    with zipfile.ZipFile(tmp_path / "t.zip") as zf:
        times = [json.loads(x)["occurred_at"] for x in zf.read("events.jsonl").decode().splitlines()]
    assert times and all(t >= "2026-11-23T09:02:00" for t in times)


def test_cli_and_http_time_range_to_a_position_and_verify_bundle_anchor(sqlite_lianxin, tmp_path,
                                                                         monkeypatch):
    from fastapi.testclient import TestClient

    from lianxin.cli import app
    from lianxin.http import create_app

    _calls, (old_pos, old_hash) = _anchor_then_more(sqlite_lianxin)
    resp = TestClient(create_app(sqlite_lianxin)).post(
        "/audit/exports", json={"from": "2026-11-23T09:02:00+00:00", "to": old_pos,
                                "reason": "case 9"}, headers={"X-Actor": "liaison"})
    assert resp.status_code == 200 and resp.headers["X-Chain-End-Hash"] == old_hash
    sqlite_lianxin.close()
    monkeypatch.setenv("LIANXIN_HOME", str(sqlite_lianxin.settings.home))
    monkeypatch.setenv("LIANXIN_PSEUDONYM_KEY", "test-key")
    runner = CliRunner()
    bundle = tmp_path / "t.zip"
    out = runner.invoke(app, ["audit", "export", "--from", "2026-11-23T09:02:00+00:00",
                              "--to", str(old_pos), "--output", str(bundle)])
    assert out.exit_code == 0, out.output
    assert f"end chain hash {old_hash} at position {old_pos}" in out.output
    monkeypatch.setenv("LIANXIN_HOME", str(tmp_path / "nowhere"))
    ok = runner.invoke(app, ["audit", "verify-bundle", str(bundle), "--anchor",
                             f"{old_pos}:{old_hash}", "--anchor", f"{old_pos - 3}:" + "0" * 64])
    assert ok.exit_code == 3 and f"anchor {old_pos - 3}" in ok.output
    anchors = tmp_path / "anchors.jsonl"
    anchors.write_text(json.dumps({"position": old_pos, "chain_hash": old_hash}) + "\n")
    ok = runner.invoke(app, ["audit", "verify-bundle", str(bundle), "--anchors", str(anchors)])
    assert ok.exit_code == 0, ok.output
    assert f"anchor {old_pos}: the chain at position {old_pos} matches the anchor" in ok.output
    bad = runner.invoke(app, ["audit", "verify-bundle", str(bundle), "--anchor", "12:nothex"])
    assert bad.exit_code == 2 and "POSITION:HASH" in bad.output


def test_work_order_export_cli_and_http(sqlite_lianxin, tmp_path, monkeypatch):
    from fastapi.testclient import TestClient

    from commands import messages as m
    from lianxin.cli import app
    from lianxin.http import create_app
    from tests.audit.scenario import at

    populate(sqlite_lianxin, calls=2)
    svc = sqlite_lianxin.commands
    wo = svc.handle(m.OpenWorkOrder(type="complaint", summary="meter reads wrong",
                                    occurred_at=at(400))).aggregate_id
    # Another aggregate's record between the work order's: it travels as a link.
    svc.handle(m.OfferCall(external_id="between", dialed_number="95598", occurred_at=at(450)))
    svc.handle(m.DispatchWorkOrder(work_order_id=wo, department="metering", occurred_at=at(500)))
    published_at, published = head(sqlite_lianxin)
    n_events = len(sqlite_lianxin.app.recorder.select_events(wo))
    resp = TestClient(create_app(sqlite_lianxin)).post(
        "/audit/exports", json={"work_order": str(wo), "reason": "ombudsman 4"},
        headers={"X-Actor": "liaison"})
    assert resp.status_code == 200
    (tmp_path / "http.zip").write_bytes(resp.content)
    sqlite_lianxin.close()
    monkeypatch.setenv("LIANXIN_HOME", str(sqlite_lianxin.settings.home))
    monkeypatch.setenv("LIANXIN_PSEUDONYM_KEY", "test-key")
    runner = CliRunner()
    # The HTTP export was recorded after that head: end the CLI's bundle there too.
    out = runner.invoke(app, ["audit", "export", "--work-order", str(wo), "--to",
                              str(published_at), "--output", str(tmp_path / "cli.zip")])
    assert out.exit_code == 0, out.output
    for name in ("http.zip", "cli.zip"):
        with zipfile.ZipFile(tmp_path / name) as zf:
            manifest = json.loads(zf.read("manifest.json"))
            lines = [json.loads(x) for x in zf.read("events.jsonl").decode().splitlines()]
        assert manifest["selection"] == {"kind": "work_order", "value": str(wo)}, name
        assert {x["aggregate_id"] for x in lines} == {wo.hex} and len(lines) == n_events, name
        assert manifest["counts"]["links"] >= 1, name  # the call offered in between
        assert manifest["end"]["chain_hash"] == published, name
        ok = runner.invoke(app, ["audit", "verify-bundle", str(tmp_path / name),
                                 "--head", published])
        assert ok.exit_code == 0 and "matches the published head" in ok.output, name


def test_a_bundle_with_lines_out_of_order_is_rejected(lianxin, tmp_path):
    """Swapping two exported lines (and fixing the manifest's digest, as a
    careful forger would) leaves every record hashing correctly once sorted:
    the file order itself must be the exported order."""
    import hashlib

    populate(lianxin, calls=2)
    good = tmp_path / "all.zip"
    export(lianxin, good)
    with zipfile.ZipFile(good) as zf:
        files = {n: zf.read(n) for n in zf.namelist()}
    lines = files["events.jsonl"].decode().splitlines()
    lines[5], lines[6] = lines[6], lines[5]
    files["events.jsonl"] = ("\n".join(lines) + "\n").encode()
    manifest = json.loads(files["manifest.json"])
    manifest["files"]["events.jsonl"] = hashlib.sha256(files["events.jsonl"]).hexdigest()
    files["manifest.json"] = json.dumps(manifest).encode()
    with zipfile.ZipFile(tmp_path / "swapped.zip", "w") as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    check = verify_bundle(tmp_path / "swapped.zip")
    assert not check.ok
    assert any("line 7" in p and "out of order" in p for p in check.problems), check.problems


def test_a_manifest_without_its_ends_is_a_clear_failure(lianxin, tmp_path, monkeypatch):
    from lianxin.cli import app

    populate(lianxin, calls=1)
    good = tmp_path / "all.zip"
    export(lianxin, good)
    for missing in ("start", "end"):
        def drop(name, data, missing=missing):
            if name != "manifest.json":
                return data
            manifest = json.loads(data)
            del manifest[missing]
            return json.dumps(manifest).encode()

        _rezip(good, tmp_path / f"no-{missing}.zip", drop)
        check = verify_bundle(tmp_path / f"no-{missing}.zip")
        assert not check.ok and f"lacks {missing}.position" in check.problems[0], check.problems
        out = CliRunner().invoke(app, ["audit", "verify-bundle", str(tmp_path / f"no-{missing}.zip")])
        assert out.exit_code == 3 and f"lacks {missing}.position" in out.output
        assert not isinstance(out.exception, KeyError)
