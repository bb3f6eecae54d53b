"""Export bundles for regulators, and their offline verification.

A bundle is one zip file:

* ``manifest.json``: format, what was exported (filter), the position range
  ``(start.position, end.position]`` it covers, the chain hash at both ends,
  counts, the first/last exported position and the sha256 of every other file;
* ``events.jsonl``: the exported records in log order, one JSON object per
  line: position, aggregate_id, version, topic, occurred_at, the payload
  text exactly as stored, and the record's chain hash;
* ``links.bin``: for every record of the range that is *not* exported, 40
  bytes: its position (8 bytes, big-endian) and its leaf digest
  sha256(canonical bytes) - enough to carry the chain across it without
  revealing its content;
* ``event-types.json``: the definition of every event type (fields and
  types, from the domain classes).

``verify_bundle`` needs only this file: it rebuilds every record's canonical
bytes (commands/event_store.py), merges them with the links, recomputes the
chain from ``start.chain_hash`` and checks each exported record's chain hash,
the end hash, the counts and the file digests. Given a head hash published
earlier for ``end.position`` (``--head``), a match proves the exported
records are exactly those in the chain that produced that head: a full or a
partial export verifies the same way. Anchors (``--anchor POS:HASH``) are
checked the same way at any position of the range, since the chain is
recomputed at every position. The lines and links must each be in position
order, as written: the file is the export, not a set of records to sort.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import io
import json
import struct
import zipfile
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable
from uuid import UUID

from commands.event_store import (
    GENESIS,
    canonical,
    id_text,
    leaf_of,
    link,
    occurred_at_text,
)
from domain.errors import InvalidValue, NotFound
from queries.audit_trail import chain_source, verify

FORMAT = "lianxin-audit-bundle/1"
LINK = struct.Struct(">Q32s")


# -- event type definitions ----------------------------------------------------
def _event_classes(extra_topics: Iterable[str] = ()) -> dict[str, type]:
    from eventsourcing.utils import get_topic, resolve_topic

    from commands.application import CallCenter

    found: dict[str, type] = {}
    for agg in CallCenter.aggregate_types:
        for value in vars(agg).values():
            if isinstance(value, type) and issubclass(value, agg.Event) and value is not agg.Event \
                    and dataclasses.is_dataclass(value) and value.__qualname__.startswith(agg.__name__):
                found[get_topic(value)] = value
    for topic in extra_topics:
        if topic not in found:
            try:
                found[topic] = resolve_topic(topic)
            except Exception:  # noqa: BLE001 - reported as undefined below
                pass
    return found


def event_definitions(topics: Iterable[str] = ()) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for topic, cls in sorted(_event_classes(topics).items()):
        fields = []
        for f in dataclasses.fields(cls):
            t = f.type if isinstance(f.type, str) else getattr(f.type, "__name__", str(f.type))
            fields.append({"name": f.name, "type": t,
                           "personal_data": f.name == "pii"})
        out[topic] = {
            "class": cls.__qualname__,
            "class_version": getattr(cls, "class_version", 1),
            "fields": fields,
            "upcasters": sorted(n for n in dir(cls) if n.startswith("upcast_v")),
        }
    return out


# -- export --------------------------------------------------------------------
@dataclasses.dataclass
class Selection:
    kind: str  # all | call | agent | work_order | time
    value: str | None = None
    positions: list[int] | None = None  # None: every record of the range


def _time_us(text: str, field: str) -> int:
    from commands.event_store import occurred_us
    from queries.point_in_time import parse_instant

    when = parse_instant(text, field)
    value = occurred_us(when.isoformat())
    assert value is not None
    return value


def _as_position(text: str | int | None) -> int | None:
    if text is None:
        return None
    if isinstance(text, int):
        return text
    return int(text) if text.strip().isdigit() else None


def select(lianxin: Any, *, call: str | None = None, agent: str | None = None,
           work_order: str | None = None, since: str | None = None,
           until: str | None = None) -> Selection:
    chosen = [k for k, v in (("call", call), ("agent", agent), ("work_order", work_order))
              if v is not None]
    if len(chosen) > 1:
        raise InvalidValue("choose at most one of --call, --agent, --work-order",
                           field=chosen[1])
    src = chain_source(lianxin)
    try:
        if call is not None:
            from domain.access_log import access_log_id_for

            cid = _uuid(call, "call")
            positions = src.positions_of([cid, access_log_id_for("call", str(cid))])
            sel = Selection("call", str(cid), positions)
        elif agent is not None:
            from domain.agent import agent_id_for

            sel = Selection("agent", agent, src.positions_of([agent_id_for(agent)]))
        elif work_order is not None:
            wid = _uuid(work_order, "work_order")
            sel = Selection("work_order", str(wid), src.positions_of([wid]))
        else:
            sel = Selection("all")
        if since is not None or until is not None:
            lo = _time_us(since, "from") if since is not None else None
            hi = _time_us(until, "to") if until is not None else None
            if lo is not None and hi is not None and hi <= lo:
                raise InvalidValue("--to must be after --from", field="to")
            in_time = set(src.positions_between_times(lo, hi))
            span = f"{since or ''}/{until or ''}"
            if sel.positions is None:
                sel = Selection("time", span, sorted(in_time))
            else:
                sel = Selection(sel.kind, f"{sel.value} {span}",
                                [p for p in sel.positions if p in in_time])
    finally:
        src.close()
    if sel.positions is not None and not sel.positions:
        raise NotFound(f"nothing to export for {sel.kind} {sel.value}")
    return sel


def _uuid(text: str, field: str) -> UUID:
    try:
        return UUID(text)
    except (TypeError, ValueError):
        raise InvalidValue(f"{text!r} is not a valid id", field=field) from None


def _up_to(selection: Selection, stop: int | None) -> Selection:
    """The selected records at or before ``stop``: a bundle that ends at an
    anchor's position exports what was selected up to it."""
    if stop is None or selection.positions is None:
        return selection
    kept = [p for p in selection.positions if p <= stop]
    if not kept:
        raise NotFound(f"nothing to export for {selection.kind} {selection.value} up to "
                       f"position {stop}")
    return dataclasses.replace(selection, positions=kept)


def export(lianxin: Any, output: Path | str, *, start: int | None = None,
           stop: int | None = None, selection: Selection | None = None) -> dict[str, Any]:
    """Write a bundle of positions ``start..stop`` (default: from the first
    selected record, or 1, to the head), exporting the selected records."""
    selection = _up_to(selection or Selection("all"), stop)
    src = chain_source(lianxin)
    try:
        ev_max, ch_max = src.bounds()
        head_pos = min(ev_max, ch_max)
        lo = start if start is not None else (selection.positions[0]
                                              if selection.positions else 1)
        hi = stop if stop is not None else head_pos
        if lo < 1:
            raise InvalidValue("--from must be a position of at least 1", field="from")
        if hi > head_pos:
            raise InvalidValue(f"--to is past the end of the log (position {head_pos})",
                               field="to")
        if hi < lo:
            raise InvalidValue("--to must not be before --from", field="to")
        check = verify(src.params, lo, hi)
        if not check.ok:
            assert check.finding is not None
            raise InvalidValue(f"the chain is broken at position {check.finding.position} "
                               f"({check.finding.kind}): {check.finding.detail}; not exporting",
                               field="chain")
        wanted = None if selection.positions is None else set(selection.positions)
        start_pos, start_hash = src.chain_at_or_before(lo - 1)
        end_pos, end_hash = src.chain_at_or_before(hi)
        events_buf, links_buf = io.StringIO(), io.BytesIO()
        counts: dict[str, int] = {}
        n_records = n_links = 0
        first = last = None
        h = start_hash
        cursor = lo - 1
        while cursor < hi:
            page_hi = min(cursor + 5000, hi)
            page = src.records(cursor, page_hi)
            chain = dict(src.chain_between(cursor, page_hi))
            for rec in page:
                pos, oid, version, topic, state = rec
                leaf = leaf_of(canonical(*rec))
                h = link(h, leaf)
                if wanted is None or pos in wanted:
                    line = {"position": pos, "aggregate_id": id_text(oid), "version": version,
                            "topic": topic, "occurred_at": occurred_at_text(state).decode()}
                    try:
                        line["payload"] = state.decode("utf-8")
                    except UnicodeDecodeError:
                        line["payload_base64"] = base64.b64encode(state).decode()
                    line["chain_hash"] = chain[pos].hex()
                    events_buf.write(json.dumps(line, ensure_ascii=False) + "\n")
                    counts[topic] = counts.get(topic, 0) + 1
                    n_records += 1
                    first = first or pos
                    last = pos
                else:
                    links_buf.write(LINK.pack(pos, leaf))
                    n_links += 1
            cursor = page_hi
        if h != end_hash:
            raise InvalidValue("the chain changed while exporting; try again", field="chain")
    finally:
        src.close()
    files = {
        "events.jsonl": events_buf.getvalue().encode("utf-8"),
        "links.bin": links_buf.getvalue(),
        "event-types.json": json.dumps(event_definitions(counts), indent=2,
                                       ensure_ascii=False).encode("utf-8"),
    }
    manifest = {
        "format": FORMAT,
        "created_at": datetime.now(timezone.utc).isoformat(),
        "store": lianxin.settings.store,
        "selection": {"kind": selection.kind, "value": selection.value},
        "range": {"from": lo, "to": hi},
        "start": {"position": start_pos, "chain_hash": start_hash.hex()},
        "end": {"position": end_pos, "chain_hash": end_hash.hex()},
        "counts": {"records": n_records, "links": n_links, "by_topic": counts},
        "first_position": first,
        "last_position": last,
        "files": {name: hashlib.sha256(data).hexdigest() for name, data in files.items()},
        "construction": (
            "leaf = sha256(position 0x1F aggregate_id 0x1F version 0x1F topic 0x1F occurred_at "
            "0x1F payload); chain = sha256(previous chain || leaf), starting from "
            "start.chain_hash; records not exported appear in links.bin as (position u64 "
            "big-endian, leaf 32 bytes). See docs/audit.md."),
    }
    out = Path(output)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".part")
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("manifest.json", json.dumps(manifest, indent=2, ensure_ascii=False))
        for name, data in files.items():
            zf.writestr(name, data)
    tmp.replace(out)
    return manifest


# -- offline verification ------------------------------------------------------
@dataclasses.dataclass
class BundleCheck:
    ok: bool
    problems: list[str]
    records: int = 0
    links: int = 0
    start: int = 0
    end: int = 0
    end_hash: str = ""
    first_bad_position: int | None = None
    anchors: list[dict[str, Any]] = dataclasses.field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def parse_anchor(text: str) -> tuple[int, str]:
    """``POS:HASH`` (a position and the 64-hex chain hash published for it)."""
    pos, sep, digest = str(text).strip().partition(":")
    digest = digest.strip().lower()
    if not sep or not pos.strip().isdigit() or int(pos) < 1 or len(digest) != 64 \
            or any(c not in "0123456789abcdef" for c in digest):
        raise InvalidValue(f"{text!r} is not POSITION:HASH (a position >= 1 and 64 hex digits)",
                           field="anchor")
    return int(pos), digest


def verify_bundle(path: Path | str, head: str | None = None,
                  anchors: Iterable[tuple[int, str]] = ()) -> BundleCheck:
    """Check a bundle with nothing but the file (no database, no network).

    ``head``: the chain hash published for the bundle's end position.
    ``anchors``: (position, chain hash) pairs published earlier, each for a
    position of the bundle's range: the chain is recomputed at every position
    anyway, so an anchor anywhere in the range is checked where it lies."""
    opened = _open_bundle(path)
    if isinstance(opened, BundleCheck):
        return opened
    manifest, files = opened
    problems = _file_problems(manifest, files)
    items = _event_items(files.get("events.jsonl", b""), problems)
    items += _link_items(files.get("links.bin", b""), problems)
    # Exported lines and links were each written in position order; merge them.
    items.sort(key=lambda t: t[0])
    start, end = manifest["start"], manifest["end"]
    try:
        h = bytes.fromhex(start["chain_hash"]) if start["position"] else GENESIS
    except ValueError:
        return BundleCheck(False, problems + ["start.chain_hash is not hex"])
    wanted: dict[int, str] = {}
    for pos, digest in anchors:
        digest = digest.strip().lower()
        if wanted.setdefault(pos, digest) != digest:
            problems.append(f"two different anchors were given for position {pos}")
    seen: dict[int, str] = {start["position"]: h.hex()}
    h, first_bad = _walk(items, h, start["position"], end["position"], problems, seen, wanted)
    records = sum(1 for _, _, line in items if line is not None)
    n_links = len(items) - records
    counts = manifest.get("counts", {})
    if counts.get("records") != records or counts.get("links") != n_links:
        problems.append(f"counts differ from the manifest: {records} records and {n_links} "
                        f"links, manifest says {counts.get('records')} and {counts.get('links')}")
    if h.hex() != end["chain_hash"]:
        problems.append(f"the recomputed chain ends at {h.hex()}, the manifest says "
                        f"{end['chain_hash']}")
    if head is not None and h.hex() != head.strip().lower():
        problems.append(f"the recomputed chain at position {end['position']} is {h.hex()}, "
                        f"not the published head {head}")
    anchor_results = _check_anchors(wanted, seen, start["position"], end["position"], problems)
    defined = json.loads(files.get("event-types.json", b"{}") or b"{}")
    missing = sorted({line["topic"] for _, _, line in items if line is not None} - set(defined))
    if missing:
        problems.append(f"event types without a definition: {', '.join(missing)}")
    return BundleCheck(not problems, problems, records, n_links, start["position"],
                       end["position"], h.hex(), first_bad, anchor_results)


def _open_bundle(path: Path | str) -> tuple[dict[str, Any], dict[str, bytes]] | BundleCheck:
    """(manifest, files), or a failed check saying why the bundle cannot be read."""
    try:
        zf = zipfile.ZipFile(path)
    except (OSError, zipfile.BadZipFile) as exc:
        return BundleCheck(False, [f"not a readable bundle: {exc}"])
    with zf:
        try:
            manifest = json.loads(zf.read("manifest.json"))
            files = {name: zf.read(name) for name in manifest["files"]}
        except (KeyError, ValueError, TypeError) as exc:
            return BundleCheck(False, [f"manifest or file missing or unreadable: {exc}"])
    missing = _manifest_gaps(manifest)
    if missing:
        return BundleCheck(False, [f"manifest.json lacks {', '.join(missing)}: not a "
                                   f"{FORMAT} manifest"])
    return manifest, files


def _manifest_gaps(manifest: Any) -> list[str]:
    """The fields the check cannot do without, where they are missing or mistyped."""
    gaps = []
    for end in ("start", "end"):
        value = manifest.get(end) if isinstance(manifest, dict) else None
        if not isinstance(value, dict) or not isinstance(value.get("position"), int) \
                or isinstance(value.get("position"), bool) \
                or not isinstance(value.get("chain_hash"), str):
            gaps.append(f"{end}.position/{end}.chain_hash")
    return gaps


def _file_problems(manifest: dict[str, Any], files: dict[str, bytes]) -> list[str]:
    problems = []
    if manifest.get("format") != FORMAT:
        problems.append(f"unknown format {manifest.get('format')!r}")
    for name, digest in manifest["files"].items():
        if hashlib.sha256(files[name]).hexdigest() != digest:
            problems.append(f"{name}: its sha256 does not match the manifest")
    return problems


Item = tuple[int, bytes, "dict[str, Any] | None"]  # position, leaf, exported line (None: a link)


def _event_items(data: bytes, problems: list[str]) -> list[Item]:
    """The exported records' leaves, rebuilt from their lines. Lines must be
    in position order, as exported: a reordered file is not the export."""
    items: list[Item] = []
    previous = 0
    for n, raw in enumerate(data.decode("utf-8").splitlines(), 1):
        try:
            line = json.loads(raw)
            state = (line["payload"].encode("utf-8") if "payload" in line
                     else base64.b64decode(line["payload_base64"]))
            rec = (int(line["position"]), line["aggregate_id"], int(line["version"]),
                   line["topic"], state)
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            problems.append(f"events.jsonl line {n}: unreadable ({exc})")
            continue
        if rec[0] <= previous:
            problems.append(f"events.jsonl line {n}: position {rec[0]} is not after the "
                            f"previous line's {previous}: lines are out of order")
        previous = max(previous, rec[0])
        if line.get("occurred_at", "") != occurred_at_text(state).decode():
            problems.append(f"events.jsonl line {n} (position {rec[0]}): occurred_at does not "
                            "match the payload")
        items.append((rec[0], leaf_of(canonical(*rec)), line))
    return items


def _link_items(links: bytes, problems: list[str]) -> list[Item]:
    if len(links) % LINK.size:
        problems.append("links.bin: truncated")
    items: list[Item] = []
    previous = 0
    for i in range(0, len(links) - len(links) % LINK.size, LINK.size):
        pos, leaf = LINK.unpack_from(links, i)
        if pos <= previous:
            problems.append(f"links.bin entry {i // LINK.size + 1}: position {pos} is not after "
                            f"the previous entry's {previous}: entries are out of order")
        previous = max(previous, pos)
        items.append((pos, leaf, None))
    return items


def _walk(items: list[Item], h: bytes, previous: int, end: int, problems: list[str],
          seen: dict[int, str], wanted: dict[int, str]) -> tuple[bytes, int | None]:
    """Recompute the chain over the merged items; check each exported record's
    chain hash, note the chain at every anchored position. Returns the head
    and the first bad position."""
    first_bad = None
    for pos, leaf, line in items:
        if pos <= previous:
            problems.append(f"position {pos} appears twice or out of order")
            first_bad = first_bad or pos
            break
        if pos > end:
            problems.append(f"position {pos} lies after the bundle's end {end}")
            first_bad = first_bad or pos
            break
        h = link(h, leaf)
        previous = pos
        if pos in wanted:
            seen[pos] = h.hex()
        if line is not None and line.get("chain_hash") != h.hex() and first_bad is None:
            first_bad = pos
            problems.append(f"position {pos}: the record does not match its chain hash "
                            "(altered, or records before it were removed, added or reordered)")
    return h, first_bad


def _check_anchors(wanted: dict[int, str], seen: dict[int, str], start: int, end: int,
                   problems: list[str]) -> list[dict[str, Any]]:
    """Each anchor against the chain recomputed at its position. An anchor
    outside the bundle's range cannot be checked by it, and says so."""
    out = []
    for pos in sorted(wanted):
        want = wanted[pos]
        if not start <= pos <= end:
            ok, detail = False, (f"position {pos} is outside the bundle's range "
                                 f"{start + 1}..{end}: this bundle cannot check it")
        elif pos not in seen:
            ok, detail = False, f"the bundle holds no record at position {pos}"
        elif seen[pos] != want:
            ok, detail = False, (f"the recomputed chain at position {pos} is {seen[pos]}, not "
                                 f"the anchored {want}")
        else:
            ok, detail = True, f"the chain at position {pos} matches the anchor"
        if not ok:
            problems.append(f"anchor {pos}: {detail}")
        out.append({"position": pos, "chain_hash": want, "ok": ok, "detail": detail})
    return out
