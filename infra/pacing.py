"""Polling that does not spin on brokers without fetch long-polling.

Kafka holds an empty fetch request for ``fetch.max.wait.ms``; noida-db (the embedded broker)
answers it at once, so aiokafka's background fetcher asks again immediately: an idle worker made
~2,100 fetch requests a second, used ~90 % of a core, and kept the broker as busy (measured on
this 2-core machine, where that CPU is what the pipeline needs). After a poll that found nothing,
the consumer's partitions are paused (the fetcher stops asking) for a pause that doubles on every
empty poll, from ``min_pause_s`` up to ``max_pause_s``; a poll that brought less than a full batch
pauses ``min_pause_s`` (a trickle of frames would otherwise keep it spinning just the same), a full
batch not at all. On Kafka, whose fetches wait at the broker, this only delays an idle or lightly
loaded consumer by at most ``max_pause_s``.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.structs import ConsumerRecord
from kafka import KafkaConsumer

from infra.joins import JoinTracker, repair_orphaned_join

WINDOW_MS = 1  # how long a poll waits for a fetch in flight: a local round trip or two


@dataclass
class Pacer:
    """The pause after a poll: doubles while idle, short after a trickle, none after a full batch."""

    min_pause_s: float = 0.002
    max_pause_s: float = 0.01
    resume_at: float = field(default=0.0, init=False)  # time.monotonic() when fetching may resume
    _pause_s: float = field(default=0.0, init=False)

    def data(self, full: bool) -> float:
        """Record a poll that brought records; return how long to pause (0 after a full batch)."""
        self._pause_s = 0.0
        return 0.0 if full else min(self.min_pause_s, self.max_pause_s)

    def empty(self) -> float:
        """Record an empty poll; return how long to pause."""
        self._pause_s = min(self.max_pause_s, max(self.min_pause_s, self._pause_s * 2))
        return self._pause_s

    def wait_s(self) -> float:
        """What is left of the current pause."""
        return max(0.0, self.resume_at - time.monotonic())

    def resume(self, consumer: AIOKafkaConsumer | KafkaConsumer) -> None:
        # Only what is still assigned and paused: a rebalance may have come meanwhile.
        consumer.resume(*(consumer.paused() & consumer.assignment()))

    def after(self, consumer: AIOKafkaConsumer | KafkaConsumer, batch: dict, max_records: int) -> None:
        """Pause fetching as ``batch`` calls for; the pause overlaps the caller's processing."""
        pause = self.data(sum(map(len, batch.values())) >= max_records) if batch else self.empty()
        if pause:
            consumer.pause(*consumer.assignment())
            self.resume_at = time.monotonic() + pause


async def paced_getmany(consumer: AIOKafkaConsumer, pacer: Pacer, max_records: int,
                        ) -> dict[TopicPartition, list[ConsumerRecord]]:
    """``consumer.getmany`` on a paced consumer. Fetching stays paused after the call returns, so
    the pause overlaps the caller's processing; the next call waits out what is left of it."""
    if pacer.max_pause_s <= 0:  # pacing off: the broker holds empty fetches itself
        return await consumer.getmany(timeout_ms=100, max_records=max_records)
    if wait := pacer.wait_s():
        await asyncio.sleep(wait)
    pacer.resume(consumer)
    batch = await consumer.getmany(timeout_ms=WINDOW_MS, max_records=max_records)
    pacer.after(consumer, batch, max_records)
    return batch


def paced_poll(consumer: KafkaConsumer, pacer: Pacer, max_records: int, timeout_ms: int,
               joins: JoinTracker | None = None) -> dict:
    """kafka-python's ``poll`` with the same pacing (the pause is slept in this thread).
    ``timeout_ms`` is used with pacing off, and while a group join is open (``joins``, the
    consumer's rebalance listener: see ``infra.joins``, a join must complete inside one poll)."""
    if joins is not None:
        repair_orphaned_join(consumer)
        if joins.joining:
            return consumer.poll(timeout_ms=timeout_ms, max_records=max_records)
    if pacer.max_pause_s <= 0:
        return consumer.poll(timeout_ms=timeout_ms, max_records=max_records)
    if wait := pacer.wait_s():
        time.sleep(wait)
    pacer.resume(consumer)
    polled = consumer.poll(timeout_ms=WINDOW_MS, max_records=max_records)
    pacer.after(consumer, polled, max_records)
    return polled


def hold_empty_fetches(max_pause_s: float) -> None:
    """For a consumer we do not poll ourselves (Faust's, in a thread of its own): when a fetch
    response brought no records and nothing is left in the fetcher's buffer, aiokafka waits
    ``max_pause_s`` before asking that broker again, as Kafka itself would have held the request
    (``fetch.max.wait.ms``); the embedded broker answers at once, and an idle Faust worker then
    fetched in a tight loop. 0 leaves aiokafka as it is.

    aiokafka has no setting for this, so (once per process) its fetch-response handler is wrapped
    and the records it buffers are counted: ``_proc_fetch_request`` makes a ``FetchResult`` for
    every partition that brought records. With records still buffered (the reader is behind) it
    never waits: a request then covers only the partitions that have nothing to give."""
    from aiokafka.consumer import fetcher

    if max_pause_s <= 0 or getattr(fetcher.Fetcher, "_facestream_paced", False):
        return

    class CountedResult(fetcher.FetchResult):  # type: ignore[misc,valid-type]
        made = 0

        def __init__(self, *args, **kwargs) -> None:  # type: ignore[no-untyped-def]
            CountedResult.made += 1
            super().__init__(*args, **kwargs)

    handle = fetcher.Fetcher._proc_fetch_request

    async def paced(self, assignment, node_id, request):  # type: ignore[no-untyped-def]
        made = CountedResult.made
        wakeup = await handle(self, assignment, node_id, request)
        if CountedResult.made == made and not self._records:
            await asyncio.sleep(max_pause_s)
        return wakeup

    fetcher.FetchResult = CountedResult
    fetcher.Fetcher._proc_fetch_request = paced
    fetcher.Fetcher._facestream_paced = True
