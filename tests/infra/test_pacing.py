"""Paced polling: idle consumers pause fetching, and nothing is missed because of it."""

from __future__ import annotations

import asyncio
import time
import uuid

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from infra.pacing import Pacer, paced_getmany


def test_pause_doubles_while_idle_and_resets_on_data():
    p = Pacer(min_pause_s=0.001, max_pause_s=0.01)
    assert [p.empty() for _ in range(6)] == [0.001, 0.002, 0.004, 0.008, 0.01, 0.01]
    assert p.data(full=False) == 0.001, "a trickle still pauses briefly"
    assert p.empty() == 0.001, "data resets the doubling"
    assert p.data(full=True) == 0.0, "a full batch: more is waiting, no pause"


@pytest.mark.integration
def test_records_sent_while_paused_are_delivered_in_order(bootstrap):
    topic = f"pacing-{uuid.uuid4().hex[:8]}"

    async def run() -> list[bytes]:
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
        consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=None,
                                    auto_offset_reset="earliest")
        await producer.start()
        await producer.send_and_wait(topic, b"first")
        await consumer.start()
        pacer = Pacer(max_pause_s=0.05)
        got: list[bytes] = []
        try:
            for i in range(200):
                batch = await paced_getmany(consumer, pacer, 100)
                got += [m.value for recs in batch.values() for m in recs]
                if i % 20 == 5:  # some arrive while the consumer idles between polls
                    await producer.send_and_wait(topic, f"m{i}".encode())
                if len(got) == 11:
                    break
        finally:
            await consumer.stop()
            await producer.stop()
        return got

    got = asyncio.run(run())
    assert got == [b"first"] + [f"m{i}".encode() for i in range(5, 200, 20)][:10]


@pytest.mark.integration
def test_paced_poll_delivers_what_arrives_while_paused(bootstrap):
    from kafka import KafkaConsumer, KafkaProducer

    from infra.pacing import paced_poll

    topic = f"pacing-sync-{uuid.uuid4().hex[:8]}"
    producer = KafkaProducer(bootstrap_servers=bootstrap)
    producer.send(topic, b"first").get(30)
    consumer = KafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=None, auto_offset_reset="earliest")
    pacer = Pacer(max_pause_s=0.05)
    got: list[bytes] = []
    try:
        for i in range(400):
            got += [m.value for recs in paced_poll(consumer, pacer, 100, 100).values() for m in recs]
            if i % 40 == 5:
                producer.send(topic, f"m{i}".encode()).get(30)
            if len(got) == 6:
                break
    finally:
        consumer.close()
        producer.close()
    assert got == [b"first"] + [f"m{i}".encode() for i in range(5, 400, 40)][:5]


@pytest.mark.integration
def test_held_empty_fetches_stop_the_spin_and_deliver_everything(bootstrap):
    """The consumer inside Faust is not ours to poll: its fetcher waits after empty responses."""
    from aiokafka.consumer import fetcher

    from infra.pacing import hold_empty_fetches

    hold_empty_fetches(0.01)
    hold_empty_fetches(0.01)  # once per process, however often asked
    paced = fetcher.Fetcher._proc_fetch_request
    calls = [0]

    async def counted(self, *args):  # type: ignore[no-untyped-def]
        calls[0] += 1
        return await paced(self, *args)

    fetcher.Fetcher._proc_fetch_request = counted
    topic = f"held-{uuid.uuid4().hex[:8]}"

    async def run() -> tuple[int, list[bytes]]:
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
        consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=None, auto_offset_reset="earliest")
        await producer.start()
        await producer.send_and_wait(topic, b"first")
        await consumer.start()
        try:
            fetched = await consumer.getmany(timeout_ms=5000)
            got = [m.value for m in fetched.get(next(iter(consumer.assignment())), [])]
            calls[0] = 0
            await asyncio.sleep(1.0)  # idle: the broker answers every fetch at once
            idle_fetches = calls[0]
            for i in range(300):
                await producer.send(topic, f"{i}".encode())
            await producer.flush()
            while len(got) < 301:
                for records in (await consumer.getmany(timeout_ms=2000)).values():
                    got.extend(m.value for m in records)
            return idle_fetches, got
        finally:
            await consumer.stop()
            await producer.stop()

    try:
        idle_fetches, got = asyncio.run(asyncio.wait_for(run(), 60))
    finally:
        fetcher.Fetcher._proc_fetch_request = paced
    # Unpaced, an idle aiokafka consumer asked the embedded broker ~2,000 times a second.
    assert idle_fetches < 300, f"{idle_fetches} fetches in an idle second"
    assert got == [b"first"] + [f"{i}".encode() for i in range(300)], "everything, in order"


@pytest.mark.integration
def test_paced_poll_lets_a_group_join_complete(bootstrap):
    """Two members of one group, polled the paced way, settle on a split of the partitions: a
    join that needs the other member (seconds) outlasts many one-millisecond polls, and one that
    completes between two of them is not left behind (infra.joins). Without it the two rebalanced
    for the whole 30 s."""
    from kafka import KafkaConsumer
    from kafka.admin import KafkaAdminClient, NewTopic

    from infra.joins import JoinTracker
    from infra.pacing import paced_poll

    topic, group = f"pacing-join-{uuid.uuid4().hex[:8]}", f"pacing-join-{uuid.uuid4().hex[:8]}"
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    admin.create_topics([NewTopic(topic, num_partitions=4, replication_factor=1)])
    admin.close()
    members = [KafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False,
                             heartbeat_interval_ms=500) for _ in range(2)]
    pacers = [Pacer(max_pause_s=0.01) for _ in members]
    joins = [JoinTracker() for _ in members]
    for c, tracker in zip(members, joins):
        c.subscribe([topic], listener=tracker)
    settled_since: float | None = None
    deadline = time.monotonic() + 30
    try:
        while time.monotonic() < deadline:
            for c, pacer, tracker in zip(members, pacers, joins):
                paced_poll(c, pacer, 100, 200, tracker)
            split = [c.assignment() for c in members]
            if all(split) and len(set().union(*split)) == 4:
                settled_since = settled_since or time.monotonic()
                if time.monotonic() - settled_since > 3:
                    break
            else:
                settled_since = None
    finally:
        for c in members:
            c.close(autocommit=False, timeout_ms=2000)  # the embedded broker is slow to answer LeaveGroup
    assert settled_since is not None and time.monotonic() - settled_since > 3, \
        f"the group never settled on a split: {split}"
