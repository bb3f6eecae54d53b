"""`lianxin audit verify / anchor / check-anchor` from the terminal, the
export endpoint, and anchors published to NATS JetStream."""

from __future__ import annotations

import asyncio
import io
import json
import zipfile

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from lianxin.cli import app
from queries.audit_bundle import verify_bundle
from queries.audit_trail import head
from tests.audit.scenario import edit_payload, populate, raw_store
from tests.conftest import NATS_URL, require_nats


@pytest.fixture
def cli_home(sqlite_lianxin, monkeypatch):
    calls = populate(sqlite_lianxin, calls=2)
    monkeypatch.setenv("LIANXIN_HOME", str(sqlite_lianxin.settings.home))
    monkeypatch.setenv("LIANXIN_PSEUDONYM_KEY", "test-key")
    return sqlite_lianxin, calls


def test_cli_verify_reports_range_and_head_then_the_first_bad_position(cli_home):
    lx, _ = cli_home
    position, chain_hash = head(lx)
    runner = CliRunner()
    ok = runner.invoke(app, ["audit", "verify"])
    assert ok.exit_code == 0, ok.output
    assert f"verified positions 1..{position}" in ok.output and chain_hash in ok.output
    part = runner.invoke(app, ["audit", "verify", "--from", "3", "--to", "7", "--json"])
    assert json.loads(part.output)["records"] == 5
    with raw_store(lx) as (db, events, _chain, pos):
        edit_payload(db, events, pos, 6, b'"actor":null', b'"actor":"x"')
    broken = runner.invoke(app, ["audit", "verify"])
    assert broken.exit_code == 3
    assert "BROKEN at position 6: altered" in broken.output
    assert "positions 1..5 verified before it" in broken.output
    bad_range = runner.invoke(app, ["audit", "verify", "--from", "9", "--to", "3"])
    assert bad_range.exit_code == 2 and "--to" in bad_range.output
    refused = runner.invoke(app, ["audit", "export", "--output", str(lx.settings.home / "b.zip")])
    assert refused.exit_code == 3 and "broken at position 6" in refused.output
    assert not (lx.settings.home / "b.zip").exists()
    mixed = runner.invoke(app, ["audit", "export", "--from", "3", "--to", "2026-11-23T10:00:00Z",
                                "--output", str(lx.settings.home / "b.zip")])
    assert mixed.exit_code == 2 and "from" in mixed.output


def test_cli_anchor_file_then_check_anchor(cli_home, tmp_path):
    lx, _ = cli_home
    anchors = tmp_path / "anchors.jsonl"
    runner = CliRunner()
    out = runner.invoke(app, ["audit", "anchor", "--to-file", str(anchors), "--every", "0.1",
                              "--count", "2"])
    assert out.exit_code == 0, out.output
    lines = [json.loads(x) for x in anchors.read_text().splitlines()]
    position, chain_hash = head(lx)
    assert [(a["position"], a["chain_hash"]) for a in lines] == [(position, chain_hash)] * 2
    assert out.output.count("lianxin audit anchor position=") == 2
    ok = runner.invoke(app, ["audit", "check-anchor", "--file", str(anchors)])
    assert ok.exit_code == 0 and "unchanged" in ok.output
    with raw_store(lx) as (db, events, _chain, pos):
        edit_payload(db, events, pos, 2, b'"actor":null', b'"actor":"x"')
    failed = runner.invoke(app, ["audit", "check-anchor", "--position", str(position),
                                 "--hash", chain_hash])
    assert failed.exit_code == 3 and "broken at position 2" in failed.output
    refused = runner.invoke(app, ["audit", "anchor", "--to-file", str(anchors)])
    assert refused.exit_code == 3 and "not anchoring a broken chain" in refused.output
    assert len(anchors.read_text().splitlines()) == 2  # nothing appended
    junk = tmp_path / "junk.jsonl"
    junk.write_text("not json\n")
    bad = runner.invoke(app, ["audit", "check-anchor", "--file", str(junk)])
    assert bad.exit_code == 2 and "line 1" in bad.output


def test_http_export_returns_a_verifiable_bundle_and_records_the_access(lianxin, tmp_path):
    from domain.access_log import access_log_id_for
    from lianxin.http import create_app

    calls = populate(lianxin, calls=2)
    client = TestClient(create_app(lianxin))
    refused = client.post("/audit/exports", json={"call": str(calls[0])})
    assert refused.status_code == 422 and refused.json()["field"] == "X-Actor"
    mixed = client.post("/audit/exports", json={"from": 1, "to": "2026-11-23T10:00:00+00:00",
                                                "reason": "r"}, headers={"X-Actor": "reg"})
    assert mixed.status_code == 422
    resp = client.post("/audit/exports", json={"call": str(calls[0]), "reason": "inquiry 3"},
                       headers={"X-Actor": "liaison-1"})
    assert resp.status_code == 200 and resp.headers["content-type"] == "application/zip"
    path = io.BytesIO(resp.content)
    with zipfile.ZipFile(path) as zf:
        manifest = json.loads(zf.read("manifest.json"))
    assert manifest["selection"] == {"kind": "call", "value": str(calls[0])}
    head_now = client.get("/audit/head").json()
    # The export itself was recorded after the bundle's end: the bundle still
    # verifies against the head published at its end position.
    assert head_now["position"] > manifest["end"]["position"]
    bundle = tmp_path / "got.zip"
    bundle.write_bytes(resp.content)
    assert verify_bundle(bundle, head=resp.headers["X-Chain-End-Hash"]).ok
    log = lianxin.app.repository.get(access_log_id_for("call", str(calls[0])))
    assert [(a["actor"], a["resource_kind"]) for a in log.accesses] == [("liaison-1", "export")]


@pytest.mark.nats
def test_anchor_published_to_nats_jetstream(sqlite_lianxin):
    require_nats()
    import nats

    from queries.audit_anchors import NATS_STREAM, NATS_SUBJECT, make_anchor, publish_nats

    populate(sqlite_lianxin, calls=1)
    anchor = make_anchor(sqlite_lianxin)

    async def roundtrip():
        seq = await publish_nats(anchor, NATS_URL)
        nc = await nats.connect(NATS_URL)
        try:
            js = nc.jetstream()
            msg = await js.get_msg(NATS_STREAM, seq)
            return msg.subject, json.loads(msg.data)
        finally:
            await nc.close()

    subject, got = asyncio.run(roundtrip())
    assert subject == NATS_SUBJECT
    assert (got["position"], got["chain_hash"]) == head(sqlite_lianxin)


def test_serve_writes_periodic_anchors_when_enabled(sqlite_lianxin, tmp_path, monkeypatch):
    import time

    from queries.audit_anchors import anchor_service, check_anchors, read_anchors

    populate(sqlite_lianxin, calls=1)
    assert type(anchor_service(sqlite_lianxin)).__name__ == "_Idle"
    path = tmp_path / "anchors.jsonl"
    monkeypatch.setenv("LIANXIN_AUDIT_ANCHOR_EVERY", "0.05")
    monkeypatch.setenv("LIANXIN_AUDIT_ANCHOR_FILE", str(path))
    service = anchor_service(sqlite_lianxin)
    service.start()
    try:
        deadline = time.monotonic() + 10
        while service.written < 2 and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        service.stop()
    anchors = read_anchors(path)
    assert len(anchors) >= 2
    assert all(r.ok for r in check_anchors(sqlite_lianxin, anchors))
    monkeypatch.setenv("LIANXIN_AUDIT_ANCHOR_EVERY", "soon")
    with pytest.raises(Exception) as e:
        anchor_service(sqlite_lianxin)
    assert "LIANXIN_AUDIT_ANCHOR_EVERY" in str(e.value)


@pytest.mark.nats
def test_cli_anchor_to_nats(cli_home):
    require_nats()
    runner = CliRunner()
    out = runner.invoke(app, ["audit", "anchor", "--nats", "--nats-url", NATS_URL])
    assert out.exit_code == 0, out.output
    unreachable = runner.invoke(app, ["audit", "anchor", "--nats", "--nats-url",
                                      "nats://127.0.0.1:1"])
    assert unreachable.exit_code == 1 and "could not publish" in unreachable.output
