"""What the Faust agent does with a batch of frame events, and how idle sessions close.

The agent (``processors.app``) hands each ``stream.take_events`` batch to ``FrameBatches.handle``:
decode (refusals to the dead letters), the pure pipeline over the whole batch, every result sent
at once and the producer flushed, then one Table write per face (Faust turns it into a changelog
record). Faust commits offsets only after flushing its producer, so a result, its session's
changelog record and the offset that covers its frame are always written in that order:
at-least-once, and a replayed frame re-emits its result without advancing the session (sinks
deduplicate on (face_key, seq)).

``handle`` never raises. Faust acknowledges a batch's events when the agent leaves the batch,
however it leaves it (``take_events`` acks in a ``finally``), and then commits past them: a batch
that raised was lost, and so were the events its restarted agent never saw. So a batch that fails
(the broker, or a read-back, timing out under load) is tried again from the state it started from
until it succeeds; one left unfinished (the worker stopping meanwhile) has its events' acks
withheld, so its offsets stay uncommitted for the next worker.
"""

from __future__ import annotations

import asyncio
import copy
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, MutableMapping, Sequence
from dataclasses import dataclass, field

from aiokafka.partitioner import DefaultPartitioner
from faust.types import EventT, ProducerT

from infra import metrics
from infra.backoff import retry_delay_s
from infra.settings import Settings
from processors.gaps import GapReader, OffsetGuard
from processors.pipeline import FrameProcessor
from processors.session import FaceSession
from schemas import LandmarkFrame, PayloadError
from schemas.errors import Oversized

log = logging.getLogger(__name__)

_PARTITIONER = DefaultPartitioner()


def now_ms() -> int:
    return int(time.time() * 1000)


def quiet_partitions(progress: dict[int, tuple[int | None, int | None]]) -> set[int]:
    """The partitions whose idle sessions may close: ``progress`` maps each owned partition to
    (its end offset, the next offset this worker will process), either None when unknown. The
    next offset is the one after the last frame processed or, before any since the last
    rebalance, the group's committed offset (where the partition resumes).

    A session looks idle when no frame of it was processed for a gap, but its frames may be
    waiting in the partition (a worker restarted behind a backlog): only a partition with nothing
    waiting is quiet, however long a restarted worker takes to reach it (the chaos run found
    sessions closed under a frame stream that never paused: an overloaded worker had read
    nothing of their partition for the 30 s this used to wait)."""
    return {partition for partition, (end, nxt) in progress.items()
            if end is not None and nxt is not None and end <= nxt}


def partition_of(key: bytes, partitions: int) -> int:
    """The partition Kafka's default partitioner (murmur2, as every client uses) gives ``key``:
    a face's frames, its Table entry and its changelog record all live in this partition."""
    parts = list(range(partitions))
    return _PARTITIONER(key, parts, parts)


class DeliveryError(RuntimeError):
    """Results could not be written to Kafka: the batch is tried again (``FrameBatches.handle``)."""


@dataclass
class FrameBatches:
    """The agent's work. ``sessions`` is the Faust Table (face key bytes -> FaceSession)."""

    s: Settings
    sessions: MutableMapping[bytes, FaceSession | None]
    producer: Callable[[], ProducerT]  # Faust's producer, once the app has started it
    processor: FrameProcessor
    guard: OffsetGuard = field(default_factory=OffsetGuard)
    # Tells the stream engine that offsets it skipped were read back and processed (their results
    # delivered), so it may commit past them: ``processors.app`` gives Faust's consumer the acks.
    acknowledge: Callable[[int, range], None] = lambda partition, offsets: None
    # Keeps the stream engine from acknowledging a batch left unfinished, so that it never commits
    # past its frames (``processors.app.withhold_acks``).
    withhold: Callable[[Sequence[EventT]], None] = lambda events: None
    # Where a partition resumes after a (re)assignment: its group's committed offset (None: unknown).
    committed: Callable[[int], Awaitable[int | None]] | None = None
    gaps: GapReader = field(init=False)
    # Face keys of the batch in hand: their sessions in the Table are older than its frames until
    # its results are out, and idle-session closing must not take them meanwhile.
    busy: set[bytes] = field(default_factory=set)

    def __post_init__(self) -> None:
        self.gaps = GapReader(self.s.bootstrap, self.s.frames_topic)

    async def _payloads(self, events: Sequence[EventT],
                        read_back: list[tuple[int, range]]) -> list[bytes | None]:
        """The batch's frame payloads in offset order per partition: repeats dropped, gaps read back
        (``processors.gaps``; each gap read is appended to ``read_back``)."""
        out: list[bytes | None] = []
        for event in events:
            m = event.message
            if self.committed is not None and m.partition not in self.guard.expected:
                self.guard.start_at(m.partition, await self.committed(m.partition))
            fresh, missing = self.guard.admit(m.partition, m.offset)
            if missing:
                metrics.ENGINE_REPAIRS.labels("gap").inc(len(missing))
                values = await self.gaps.read(m.partition, missing)
                log.warning("the stream engine skipped offsets %d-%d of %s partition %d: read %d back from Kafka",
                            missing.start, missing.stop - 1, m.topic, m.partition, len(values))
                out.extend(values)
                read_back.append((m.partition, missing))
            if fresh:
                out.append(event.value)
            else:
                metrics.ENGINE_REPAIRS.labels("repeat").inc()
        return out

    async def handle(self, events: Sequence[EventT]) -> None:
        """Process one batch of frame events; a failure is retried, never raised (module docstring)."""
        done = False
        attempt = 0
        try:
            while not done:
                expected = dict(self.guard.expected)
                try:
                    await self._handle(events)
                    done = True
                except Exception as exc:  # noqa: BLE001 - raising here loses the batch (module docstring)
                    self.guard.expected = expected  # the batch's offsets are taken again, read-backs too
                    attempt += 1
                    delay = retry_delay_s(attempt)
                    metrics.BATCH_RETRIES.inc()
                    log.error("a batch of %d frames failed (%s: %s); trying it again in %.1f s (attempt %d). Its "
                              "offsets are not committed until it succeeds", len(events), type(exc).__name__, exc,
                              delay, attempt + 1)
                    await asyncio.sleep(delay)
        finally:
            if not done:
                self.withhold(events)

    async def _handle(self, events: Sequence[EventT]) -> None:
        s = self.s
        frames: list[LandmarkFrame] = []
        pending: list[asyncio.Future] = []
        read_back: list[tuple[int, range]] = []
        for payload in await self._payloads(events, read_back):
            try:
                if payload is not None and len(payload) > s.max_frame_bytes:
                    raise Oversized(f"message of {len(payload)} bytes is over the {s.max_frame_bytes} accepted "
                                    "for one face-frame (FACESTREAM_MAX_FRAME_BYTES)")
                frames.append(LandmarkFrame.decode(payload))
            except PayloadError as exc:
                pending.append(await self._dead_letter(payload, exc))
        if frames:
            keys = {f.key for f in frames}
            # Copies: the pipeline advances sessions in place, and the Table keeps the ones the batch
            # started from until its results are out (a failed batch is tried again from them).
            current = {k: copy.copy(self.sessions.get(k.encode())) for k in keys}
            out = self.processor.process(frames, current)
            self.busy = {k.encode() for k in keys}
            pending.extend(await self._send(s.results_topic, ((r.session_id.encode(), r.encode())
                                                              for r in out.results)))
        try:
            await self._delivered(pending)
            if frames:
                for key, session in out.sessions.items():
                    self.sessions[key.encode()] = session  # one changelog record per face per batch
        finally:
            self.busy = set()
        for partition, offsets in read_back:  # their results are out: the engine may commit past them
            self.acknowledge(partition, offsets)
        if frames:
            metrics.STALE_FRAMES.inc(out.stale)
            metrics.FRAMES_IN.labels("worker").inc(len(frames))
            metrics.RESULTS_OUT.labels("worker").inc(len(out.results))
            for r in out.results:
                metrics.LATENCY.observe(max(0.0, (r.processed_ms - r.capture_ms) / 1000.0))

    async def close_idle(self, quiet: set[int], now: int, rebalanced_ms: int) -> int:
        """Close the sessions idle for ``session_gap_s`` on the ``quiet`` partitions (nothing of
        theirs waiting to be processed: ``quiet_partitions``): summary out, then a tombstone.
        Nothing closes within one gap of the last rebalance. Returns the number closed."""
        gap_ms = int(self.s.session_gap_s * 1000)
        if now - rebalanced_ms < gap_ms:
            return 0
        idle: list[tuple[bytes, FaceSession]] = []
        for key, session in list(self.sessions.items()):
            if session is None or now - session.last_seen_ms <= gap_ms or key in self.busy:
                continue
            if partition_of(key, self.s.partitions) not in quiet:
                continue  # frames of it may be waiting, or a copy of a partition another worker owns now
            idle.append((key, session))
        if not idle:
            return 0
        # Summaries are acknowledged before the tombstones are written: a crash in between closes
        # the restored session again (a repeated summary, which the store keeps once), never none.
        summaries = [session.summary(now) for _, session in idle]
        await self._delivered(await self._send(self.s.summaries_topic,
                                               ((m.session_id.encode(), m.encode()) for m in summaries)))
        closed = 0
        for key, session in idle:
            if self.sessions.get(key) is session and session.last_seen_ms <= now - gap_ms and key not in self.busy:
                del self.sessions[key]
                closed += 1
                log.info("session %s closed after %d frames", session.face_key, session.frames)
        return closed

    async def _send(self, topic: str, records: Iterable[tuple[bytes, bytes]]) -> list[asyncio.Future]:
        """Queue every record with the producer (its own ``send``, not ``Topic.send``, whose
        per-message bookkeeping costs more than computing a result); returns delivery futures."""
        producer = self.producer()
        return [await producer.send(topic, key, value, None, None, None) for key, value in records]

    async def _dead_letter(self, payload: bytes | None, exc: PayloadError) -> asyncio.Future:
        metrics.DEAD_LETTERS.labels("worker", exc.reason).inc()
        log.warning("refused a frame: %s", exc.reason)  # the reason only: never landmarks in logs
        return await self.producer().send(
            self.s.dead_letter_topic, None, (payload or b"")[: self.s.max_frame_bytes], None, None,
            [("reason", exc.reason.encode()), ("error", str(exc).encode()[:1000]), ("source", b"worker")])

    async def _delivered(self, pending: list[asyncio.Future]) -> None:
        if not pending:
            return
        try:
            await self.producer().flush()
            await asyncio.gather(*pending)
        except Exception as exc:  # aiokafka's KafkaError, or Faust's ProducerSendError around it
            raise DeliveryError(f"could not write to Kafka at {self.s.bootstrap} ({type(exc).__name__}: {exc}); "
                                "nothing is acknowledged until it is written") from exc
