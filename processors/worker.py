"""The stream worker: frames topic -> per-face sessions -> results, summaries and dead letters.

A plain aiokafka consumer group with a batch loop (``getmany``), not Faust's per-event streams:
on this machine a Faust agent that only decodes reached ~0.26 of the raw aiokafka consume rate
on the same topic (README, "Results"), below the 0.5 the processor should reach with all its work
included. What Faust gave us is kept, explicitly:

* State: a session per face in memory, made durable in a changelog topic (``processors.state``),
  restored for each partition the worker is assigned before its frames are read.
* At-least-once: a batch's results, dead letters and changelog writes are acknowledged by the
  broker before its offsets are committed. A crash replays the uncommitted frames; the pipeline
  re-emits results for frames it already counted without advancing state, and sinks deduplicate
  on (face_key, seq).
* Sessions close after ``session_gap_s`` without frames (processing time, with the same grace
  after every rebalance, so a restarted worker reading a backlog does not close live sessions),
  emitting a ``SessionSummary`` and a changelog tombstone.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import time
from collections import deque
from collections.abc import Iterable

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import CommitFailedError, IllegalStateError, KafkaError
from aiokafka.partitioner import DefaultPartitioner

from infra import membership, metrics
from infra.pacing import Pacer, paced_getmany
from infra.settings import Settings
from infra.topics import changelog_topic, ensure_topics
from processors.cues import CueParams
from processors.pipeline import FrameProcessor
from processors.state import SessionStore
from schemas import LandmarkFrame, PayloadError
from schemas.errors import Oversized

log = logging.getLogger(__name__)


def _now_ms() -> int:
    return int(time.time() * 1000)


_PARTITIONER = DefaultPartitioner()
MAX_INFLIGHT = 4  # batches processed ahead of their acknowledgement


class DeliveryError(RuntimeError):
    """Results could not be written to Kafka: the batch stays uncommitted and is reprocessed."""


class _Rebalance(ConsumerRebalanceListener):
    def __init__(self, worker: "Worker") -> None:
        self.worker = worker

    async def on_partitions_revoked(self, revoked: Iterable[TopicPartition]) -> None:
        # Writes the changed sessions and commits what was processed before the partitions move;
        # state is kept until the new assignment is known, so partitions that stay need no restore.
        async with self.worker.lock:
            self.worker.generation += 1
            await self.worker.flush()
            await self.worker.drain()

    async def on_partitions_assigned(self, assigned: Iterable[TopicPartition]) -> None:
        async with self.worker.lock:
            await self.worker.assign({tp.partition for tp in assigned})


class Worker:
    """One worker process's consumer loop. ``run`` returns when ``stop`` is set."""

    def __init__(self, settings: Settings, processor: FrameProcessor | None = None) -> None:
        self.s = settings
        self.processor = processor
        self.store = SessionStore()
        self.lock = asyncio.Lock()  # a batch, a sweep and a rebalance never interleave
        self.generation = 0  # bumped by every revocation: fetched records before it are stale
        self.changelog = changelog_topic(settings.app_id)
        self.ready = asyncio.Event()
        self._rebalanced_ms = _now_ms()
        self._positions: dict[TopicPartition, int] = {}  # next offset to process, per partition
        # Batches sent but not yet acknowledged and committed, oldest first: the next batch is
        # processed while the broker acknowledges the previous ones.
        self._inflight: deque[asyncio.Task] = deque()
        self._partitions: dict[str, list[int]] = {}  # topic -> its partitions, for _send_keyed
        self._uncommitted: dict[TopicPartition, int] = {}  # processed, not yet committed
        self._next_flush = 0.0
        self._consumer: AIOKafkaConsumer | None = None
        self._producer: AIOKafkaProducer | None = None
        self._reader: AIOKafkaConsumer | None = None

    # -- lifecycle ---------------------------------------------------------------------------------
    async def run(self, stop: asyncio.Event) -> None:
        s = self.s
        if self.processor is None:
            self.processor = FrameProcessor(CueParams(), onnx_threads=s.onnx_threads)
        self._producer = AIOKafkaProducer(
            bootstrap_servers=s.bootstrap, client_id=f"{s.app_id}-worker", acks="all",
            # Idempotence off: after a broker restart kafka-python's and aiokafka's idempotent
            # producers can give up on a batch; duplicates are absorbed by the sinks instead.
            enable_idempotence=False, linger_ms=2, max_batch_size=1 << 20, max_request_size=16 << 20,
        )
        self._reader = AIOKafkaConsumer(bootstrap_servers=s.bootstrap, group_id=None, enable_auto_commit=False,
                                        client_id=f"{s.app_id}-restore", max_partition_fetch_bytes=16 << 20)
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=s.bootstrap, group_id=s.app_id, client_id=f"{s.app_id}-worker",
            group_instance_id=s.worker_instance_id, enable_auto_commit=False, auto_offset_reset="earliest",
            session_timeout_ms=int(s.consumer_session_timeout_s * 1000),
            heartbeat_interval_ms=int(min(3.0, s.consumer_session_timeout_s / 3) * 1000),
            max_partition_fetch_bytes=16 << 20, fetch_max_bytes=64 << 20,
        )
        await self._producer.start()
        try:
            await self._reader.start()
            await self._consumer.start()
            self._consumer.subscribe([s.frames_topic], listener=_Rebalance(self))
            await self._loop(stop)
        finally:
            await self._shutdown()

    async def _shutdown(self) -> None:
        for client in (self._consumer, self._reader, self._producer):
            if client is not None:
                try:
                    await client.stop()
                except KafkaError as exc:  # the broker may be gone; nothing is left to lose
                    log.warning("closing a Kafka client: %s", exc)

    async def assign(self, partitions: set[int]) -> None:
        """Keep the state of partitions still ours, restore newly assigned ones from the changelog."""
        assert self._consumer is not None
        self._rebalanced_ms = _now_ms()
        self._positions.clear()
        missing = self.store.keep_only(partitions)
        t0 = time.monotonic()
        restored = await self._restore(sorted(missing)) if missing else 0
        metrics.ACTIVE_SESSIONS.set(len(self.store))
        log.info("assigned %s partitions %s: restored %d sessions of %s in %.2f s",
                 self.s.frames_topic, sorted(partitions), restored, sorted(missing), time.monotonic() - t0)
        if not self.ready.is_set():
            self.ready.set()
            log.info("Ready: worker of group %s", self.s.app_id)

    async def _restore(self, partitions: list[int]) -> int:
        assert self._reader is not None
        tps = [TopicPartition(self.changelog, p) for p in partitions]
        self._reader.assign(tps)
        await self._reader.seek_to_beginning(*tps)
        end = await self._reader.end_offsets(tps)
        records: dict[int, list[tuple[bytes, bytes | None]]] = {p: [] for p in partitions}
        waiting = {tp for tp in tps if end[tp] > 0}
        while waiting:
            batch = await self._reader.getmany(*waiting, timeout_ms=1000, max_records=10_000)
            for tp, msgs in batch.items():
                records[tp.partition].extend((m.key or b"", m.value) for m in msgs if m.offset < end[tp])
            for tp in list(waiting):
                if await self._reader.position(tp) >= end[tp]:
                    waiting.discard(tp)
        self._reader.unsubscribe()
        return sum(self.store.restore(p, recs) for p, recs in records.items())

    # -- the loop ----------------------------------------------------------------------------------
    async def _loop(self, stop: asyncio.Event) -> None:
        assert self._consumer is not None
        s = self.s
        next_sweep = time.monotonic() + s.sweep_interval_s
        pacer = Pacer(max_pause_s=s.fetch_idle_max_s)
        stopping = asyncio.ensure_future(stop.wait())
        try:
            while not stop.is_set():
                generation = self.generation
                fetch = asyncio.ensure_future(paced_getmany(self._consumer, pacer, s.batch_size))
                await asyncio.wait({fetch, stopping}, return_when=asyncio.FIRST_COMPLETED)
                if not fetch.done():
                    fetch.cancel()
                    break
                batch = fetch.result()
                async with self.lock:
                    if generation != self.generation:
                        self._refetch(batch)
                    elif batch:
                        await self._process(batch)
                    if time.monotonic() >= self._next_flush:
                        await self.flush()
                    if time.monotonic() >= next_sweep:
                        await self._sweep()
                        next_sweep = time.monotonic() + s.sweep_interval_s
        finally:
            stopping.cancel()
            async with self.lock:
                await self.flush()
                await self.drain()

    def _refetch(self, batch: dict[TopicPartition, list]) -> None:
        """A rebalance came while these records were fetched: they may belong to state that was
        restored after them. Rewind the partitions still ours so they are read again, in order."""
        assert self._consumer is not None
        assigned = self._consumer.assignment()
        for tp, records in batch.items():
            if tp in assigned and records:
                self._consumer.seek(tp, records[0].offset)

    async def _process(self, batch: dict[TopicPartition, list]) -> None:
        assert self._consumer is not None and self._producer is not None and self.processor is not None
        s = self.s
        frames: list[LandmarkFrame] = []
        partition_of: dict[str, int] = {}
        pending = []
        offsets: dict[TopicPartition, int] = {}
        for tp, records in batch.items():
            offsets[tp] = records[-1].offset + 1
            for m in records:
                payload = m.value
                try:
                    if payload is not None and len(payload) > s.max_frame_bytes:
                        raise Oversized(f"message of {len(payload)} bytes is over the {s.max_frame_bytes} "
                                        "accepted for one face-frame (FACESTREAM_MAX_FRAME_BYTES)")
                    frame = LandmarkFrame.decode(payload)
                except PayloadError as exc:
                    pending.append(await self._dead_letter(payload, exc))
                    continue
                frames.append(frame)
                partition_of[frame.key] = tp.partition
        if frames:
            current = {k: self.store.sessions(p).get(k) for k, p in partition_of.items()}
            out = self.processor.process(frames, current)
            for key, session in out.sessions.items():
                self.store.put(partition_of[key], key, session)
            pending.extend(await self._send_keyed(s.results_topic, [(r.session_id.encode(), r.encode())
                                                                    for r in out.results]))
            metrics.STALE_FRAMES.inc(out.stale)
        self._uncommitted.update(offsets)
        await self._settle_later(pending, None)
        if frames:
            metrics.FRAMES_IN.labels("worker").inc(len(frames))
            metrics.RESULTS_OUT.labels("worker").inc(len(out.results))
            for r in out.results:
                metrics.LATENCY.observe(max(0.0, (r.processed_ms - r.capture_ms) / 1000.0))
            metrics.ACTIVE_SESSIONS.set(len(self.store))

    async def flush(self) -> None:
        """Write the changed (and closed) sessions to the changelog, then (once they and everything
        sent before are acknowledged) commit the offsets processed so far: the committed offsets and
        the changelog always describe the same point of the stream."""
        writes = self.store.take_writes()
        if not writes and not self._uncommitted:
            return
        pending = [await self._changelog_write(w) for w in writes]
        offsets, self._uncommitted = self._uncommitted, {}
        await self._settle_later(pending, offsets)
        self._next_flush = time.monotonic() + self.s.commit_interval_s

    async def _settle_later(self, pending: list[asyncio.Future], offsets: dict[TopicPartition, int] | None) -> None:
        """Await ``pending`` in the background, then commit ``offsets`` (if any) after every earlier
        batch is settled. At most ``MAX_INFLIGHT`` batches wait; a failed delivery stops the worker."""
        while self._inflight and self._inflight[0].done():
            self._inflight.popleft().result()  # raises DeliveryError
        if len(self._inflight) >= MAX_INFLIGHT:
            await self._inflight.popleft()
        prev = self._inflight[-1] if self._inflight else None
        self._inflight.append(asyncio.ensure_future(self._settle(prev, pending, offsets)))

    async def _settle(self, prev: asyncio.Task | None, pending: list[asyncio.Future],
                      offsets: dict[TopicPartition, int] | None) -> None:
        if prev is not None:
            await asyncio.shield(prev)  # its outcome is the loop's to report
        await self._delivered(pending)
        if offsets:
            await self._commit(offsets)
            self._positions.update(offsets)
            self._report_lag()

    async def drain(self) -> None:
        """Wait until every batch sent is acknowledged and committed."""
        while self._inflight:
            await self._inflight.popleft()

    async def _send_keyed(self, topic: str, records: list[tuple[bytes, bytes]]) -> list[asyncio.Future]:
        """Send (key, value) records as one producer batch per partition, each key to the partition
        Kafka's default partitioner picks: a ``send()`` per message costs more than computing a
        result."""
        assert self._producer is not None
        parts = self._partitions.get(topic)
        if parts is None:
            parts = self._partitions[topic] = sorted(await self._producer.partitions_for(topic))
        by_partition: dict[int, list[tuple[bytes, bytes]]] = {}
        chosen: dict[bytes, int] = {}
        for key, value in records:
            p = chosen.get(key)
            if p is None:
                p = chosen[key] = _PARTITIONER(key, parts, parts)
            by_partition.setdefault(p, []).append((key, value))
        futures = []
        for p, recs in by_partition.items():
            batch = self._producer.create_batch()
            for key, value in recs:
                if batch.append(key=key, value=value, timestamp=None) is None:  # full
                    futures.append(await self._producer.send_batch(batch, topic, partition=p))
                    batch = self._producer.create_batch()
                    batch.append(key=key, value=value, timestamp=None)
            futures.append(await self._producer.send_batch(batch, topic, partition=p))
        return futures

    async def _dead_letter(self, payload: bytes | None, exc: PayloadError) -> asyncio.Future:
        assert self._producer is not None
        metrics.DEAD_LETTERS.labels("worker", exc.reason).inc()
        log.warning("refused a frame: %s", exc.reason)  # the reason only: never landmarks in logs
        return await self._producer.send(
            self.s.dead_letter_topic, (payload or b"")[: self.s.max_frame_bytes],
            headers=[("reason", exc.reason.encode()), ("error", str(exc).encode()[:1000]), ("source", b"worker")])

    async def _changelog_write(self, write: tuple[int, bytes, bytes | None]) -> asyncio.Future:
        assert self._producer is not None
        partition, key, value = write
        return await self._producer.send(self.changelog, value, key=key, partition=partition)

    async def _delivered(self, pending: list[asyncio.Future]) -> None:
        try:
            await asyncio.gather(*pending)
        except KafkaError as exc:
            raise DeliveryError(
                f"could not write to Kafka at {self.s.bootstrap} ({type(exc).__name__}: {exc}); the batch "
                "was not committed and is reprocessed when the worker restarts") from exc

    async def _commit(self, offsets: dict[TopicPartition, int]) -> None:
        assert self._consumer is not None
        if not offsets:
            return
        try:
            await self._consumer.commit(offsets)
        except (CommitFailedError, IllegalStateError) as exc:
            # The partitions moved during the batch: its frames are redelivered to their new
            # owner, which re-emits results the sinks deduplicate.
            log.warning("offset commit refused after a rebalance (%s); frames will be redelivered", exc)

    async def _sweep(self) -> None:
        """Close sessions idle for ``session_gap_s``: summary out, tombstone to the changelog."""
        assert self._producer is not None
        now = _now_ms()
        gap_ms = int(self.s.session_gap_s * 1000)
        if now - self._rebalanced_ms < gap_ms:
            return
        idle = [(p, k, sess) for p, k, sess in self.store.items() if now - sess.last_seen_ms > gap_ms]
        if not idle:
            return
        pending = []
        for p, key, session in idle:
            summary = session.summary(now)
            log.info("session %s closed after %d frames", summary.face_key, summary.frames)
            pending.append(await self._producer.send(self.s.summaries_topic, summary.encode(),
                                                     key=summary.session_id.encode()))
            self.store.delete(p, key)
        await self._settle_later(pending, None)
        await self.flush()  # the tombstones, with the offsets they belong to
        metrics.ACTIVE_SESSIONS.set(len(self.store))

    def _report_lag(self) -> None:
        """Frames between this worker's position and the end of the partitions it reads."""
        assert self._consumer is not None
        lag = 0
        for tp, pos in self._positions.items():
            end = self._consumer.highwater(tp)
            if end is not None:
                lag += max(0, end - pos)
        metrics.CONSUMER_LAG.labels("worker").set(lag)


def run_worker(settings: Settings | None = None) -> None:
    """Run one worker in this process until SIGINT or SIGTERM (a clean stop: the batch in flight
    is finished and committed, and a dynamic member leaves its group at once)."""
    s = settings or Settings()
    ensure_topics(s)
    member = None
    if s.static_membership:
        # Held until this process ends, however it ends: a restart gets the same id back.
        member = membership.claim("worker", s.app_id, s.cache_dir / "members", s.worker_instance_id)
        s = s.model_copy(update={"worker_instance_id": member.instance_id})
        log.info("static member %s of group %s", member.instance_id, s.app_id)
    else:
        s = s.model_copy(update={"worker_instance_id": None})
    metrics.serve(s.worker_metrics_port, s.metrics_host)

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await Worker(s).run(stop)
        log.info("worker stopped")

    try:
        asyncio.run(main())
    finally:
        if member is not None:
            member.release()
