"""The NATS relay against the real JetStream server."""

import asyncio
import json
import uuid

import pytest

from commands import messages as m
from projections.nats_relay import POSITION_HEADER, NatsRelay
from tests.conftest import NATS_URL, require_nats


@pytest.fixture
def stream_name():
    require_nats()
    name = f"LX_TEST_{uuid.uuid4().hex[:10].upper()}"
    yield name
    async def drop():
        import nats

        nc = await nats.connect(NATS_URL)
        try:
            await nc.jetstream().delete_stream(name)
        except Exception:  # noqa: BLE001 - already gone
            pass
        await nc.close()
    asyncio.run(drop())


def offer(svc, n, start=0):
    for i in range(start, start + n):
        cid = svc.handle(m.OfferCall(external_id=f"r-{i}", dialed_number="95598",
                                     caller_number="13800000000")).aggregate_id
        svc.handle(m.QueueCall(call_id=cid, queue="power"))


async def stream_messages(name):
    import nats

    nc = await nats.connect(NATS_URL)
    js = nc.jetstream()
    info = await js.stream_info(name)
    msgs = [await js.get_msg(name, seq) for seq in range(1, info.state.last_seq + 1)]
    await nc.close()
    return msgs


def test_relay_publishes_in_order_without_pii_and_resumes_without_duplicates(
        sqlite_lianxin, stream_name):
    svc = sqlite_lianxin.commands
    offer(svc, 5)

    async def run_relay():
        relay = NatsRelay(sqlite_lianxin.app, NATS_URL, stream=stream_name,
                          prefix=f"t.{stream_name.lower()}")
        await relay.connect()
        sent = await relay.relay_once()
        await relay.close()
        return relay, sent

    relay, sent = asyncio.run(run_relay())
    assert sent == 10 and relay.stats.published == 10

    offer(svc, 3, start=5)
    # A fresh relay (after a crash) finds its place from the stream itself.
    relay2, sent2 = asyncio.run(run_relay())
    assert sent2 == 6 and relay2.stats.duplicates == 0

    msgs = asyncio.run(stream_messages(stream_name))
    positions = [int(msg.headers[POSITION_HEADER]) for msg in msgs]
    assert positions == list(range(1, 17))
    first = json.loads(msgs[0].data)
    assert first["topic"] == "domain.call:Call.Offered" and "pii" not in first
    assert "13800000000" not in b"".join(msg.data for msg in msgs).decode()
    assert msgs[1].subject.endswith(".Call.Queued")


def test_a_resend_of_already_published_positions_is_dropped_by_jetstream(
        sqlite_lianxin, stream_name):
    offer(sqlite_lianxin.commands, 2)

    async def scenario():
        relay = NatsRelay(sqlite_lianxin.app, NATS_URL, stream=stream_name,
                          prefix=f"t.{stream_name.lower()}")
        await relay.connect()
        await relay.relay_once()
        relay.stats.position = 0  # as if the relay lost its place entirely
        await relay.relay_once()
        await relay.close()
        return relay.stats

    stats = asyncio.run(scenario())
    assert stats.published == 4 and stats.duplicates == 4
    assert len(asyncio.run(stream_messages(stream_name))) == 4
