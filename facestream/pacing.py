"""Polling that does not spin on brokers without fetch long-polling.

Kafka holds an empty fetch request for ``fetch.max.wait.ms``; noida-db (the embedded broker)
answers it at once, so aiokafka's background fetcher asks again immediately: an idle worker made
~2,100 fetch requests a second, used ~90 % of a core, and kept the broker as busy (measured on
this 2-core machine, where that CPU is what the pipeline needs). After a poll that found nothing,
the consumer's partitions are paused (the fetcher stops asking) for a pause that doubles on every
empty poll, from ``min_pause_s`` up to ``max_pause_s``; any data resets it. On Kafka, whose fetches
wait at the broker, this only adds at most ``max_pause_s`` to an idle consumer's wake-up.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.structs import ConsumerRecord

WINDOW_MS = 2  # how long a poll waits for a fetch in flight: a few local round trips


@dataclass
class Pacer:
    """The pause after empty polls: doubles while idle, reset by data."""

    min_pause_s: float = 0.001
    max_pause_s: float = 0.01
    _pause_s: float = field(default=0.0, init=False)

    def data(self) -> None:
        self._pause_s = 0.0

    def empty(self) -> float:
        """Record an empty poll; return how long to pause."""
        self._pause_s = min(self.max_pause_s, max(self.min_pause_s, self._pause_s * 2))
        return self._pause_s


async def paced_getmany(consumer: AIOKafkaConsumer, pacer: Pacer, max_records: int,
                        ) -> dict[TopicPartition, list[ConsumerRecord]]:
    """``consumer.getmany`` that, when nothing came, pauses fetching before returning ``{}``."""
    if pacer.max_pause_s <= 0:  # pacing off: the broker holds empty fetches itself
        return await consumer.getmany(timeout_ms=100, max_records=max_records)
    batch = await consumer.getmany(timeout_ms=WINDOW_MS, max_records=max_records)
    if batch:
        pacer.data()
        return batch
    pause = pacer.empty()
    tps = consumer.assignment()
    consumer.pause(*tps)
    try:
        await asyncio.sleep(pause)
    finally:
        # Only what is still assigned and paused: a rebalance may have come meanwhile.
        consumer.resume(*(consumer.paused() & consumer.assignment()))
    return batch
