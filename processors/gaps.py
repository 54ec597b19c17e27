"""What Faust delivered, per frames partition, checked against what Kafka holds.

On this machine faust-streaming 0.15.3 (with or without its compiled stream iterator) now and then
hands the agent a frame twice and skips the one after it while a restarted worker catches up on
its backlog: the skipped frame is never processed, yet its offset is committed (the worker SIGKILL
fault test lost one frame in about every third restart). Faust cannot be asked for one record again,
so the worker checks offsets itself: a partition's offsets must follow each other; a repeat is
dropped (its result is already out), and a gap is read back from Kafka with a plain consumer and
processed in its place. Kafka offsets can legitimately jump (transaction markers, compaction): then
the read-back finds fewer records; it asks once more, then logs what did not come back.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from dataclasses import dataclass, field

from aiokafka import AIOKafkaConsumer, TopicPartition

log = logging.getLogger(__name__)


@dataclass
class OffsetGuard:
    """Per partition, the next offset expected. Pure bookkeeping."""

    expected: dict[int, int] = field(default_factory=dict)

    def admit(self, partition: int, offset: int) -> tuple[bool, range]:
        """(process this record?, the offsets missing before it: empty when none)."""
        nxt = self.expected.get(partition)
        if nxt is not None and offset < nxt:
            return False, range(0)
        self.expected[partition] = offset + 1
        return True, range(offset if nxt is None else nxt, offset)

    def forget(self) -> None:
        """After a rebalance a partition restarts from its committed offset: expect anything
        until ``start_at`` says where that is."""
        self.expected.clear()

    def start_at(self, partition: int, committed: int | None) -> None:
        """The partition resumes at ``committed`` (its group's committed offset): a first record
        past it reveals the records the engine skipped (found by the chaos run: after a restart
        Faust's first record of a partition lay past the committed offset, and nothing noticed)."""
        if committed is not None and partition not in self.expected:
            self.expected[partition] = committed


class CommittedOffsets:
    """The worker group's committed offsets of the frames topic, asked of the group coordinator
    without joining the group (kafka-python's ``committed``), and the topic's ends, asked of the
    brokers (blocking: call them in a thread)."""

    def __init__(self, bootstrap: str, group: str, topic: str) -> None:
        self.bootstrap, self.group, self.topic = bootstrap, group, topic
        self._consumer = None
        self._lock = threading.Lock()  # asked from several threads; a kafka-python client is not thread-safe

    def _client(self):
        from kafka import KafkaConsumer

        if self._consumer is None:
            self._consumer = KafkaConsumer(bootstrap_servers=self.bootstrap.split(","), group_id=self.group,
                                           enable_auto_commit=False, client_id="facestream-committed",
                                           request_timeout_ms=10_000)
        return self._consumer

    def get(self, partition: int) -> int | None:
        from kafka import TopicPartition as KafkaTP

        with self._lock:
            return self._client().committed(KafkaTP(self.topic, partition))

    def ends(self, partitions: list[int]) -> dict[int, int]:
        """The offset after each partition's last record, as the broker has it now."""
        from kafka import TopicPartition as KafkaTP

        with self._lock:
            got = self._client().end_offsets([KafkaTP(self.topic, p) for p in partitions])
        return {tp.partition: offset for tp, offset in got.items()}

    def close(self) -> None:
        with self._lock:
            if self._consumer is not None:
                self._consumer.close()
                self._consumer = None


@dataclass
class GapReader:
    """Reads ranges of a topic's records back from Kafka (values only, in offset order)."""

    bootstrap: str
    topic: str
    timeout_s: float = 10.0
    _consumer: AIOKafkaConsumer | None = None

    async def read(self, partition: int, offsets: range) -> list[bytes | None]:
        """The values at ``offsets`` of ``partition``, in offset order. Offsets that do not come
        back are read once more; any still missing then are logged as an error (on the frames topic,
        which nobody compacts or writes transactionally, a record missing here is a frame lost)."""
        if self._consumer is None:
            # earliest: offsets below the log's start are gone (retention), read from where it starts.
            self._consumer = AIOKafkaConsumer(bootstrap_servers=self.bootstrap, group_id=None,
                                              enable_auto_commit=False, client_id="facestream-gap-reader",
                                              max_partition_fetch_bytes=16 << 20, auto_offset_reset="earliest")
            await self._consumer.start()
        tp = TopicPartition(self.topic, partition)
        self._consumer.assign([tp])
        self._consumer.seek(tp, offsets.start)
        got: dict[int, bytes | None] = {}
        retried = False
        deadline = time.monotonic() + self.timeout_s
        while time.monotonic() < deadline:
            batch = await self._consumer.getmany(tp, timeout_ms=500, max_records=len(offsets))
            for m in batch.get(tp, []):
                if m.offset in offsets:
                    got.setdefault(m.offset, m.value)
            if await self._consumer.position(tp) < offsets.stop:
                continue
            missing = [o for o in offsets if o not in got]
            if missing and not retried:
                retried = True
                self._consumer.seek(tp, missing[0])
                continue
            if missing:
                log.error("%d of offsets %d-%d of %s did not come back from %s (first %d); they are not processed",
                          len(missing), offsets.start, offsets.stop - 1, tp, self.bootstrap, missing[0])
            return [got[o] for o in sorted(got)]
        raise asyncio.TimeoutError(f"could not read offsets {offsets.start}-{offsets.stop - 1} of {tp} back "
                                   f"from {self.bootstrap} in {self.timeout_s:.0f} s")

    async def close(self) -> None:
        if self._consumer is not None:
            await self._consumer.stop()
            self._consumer = None
