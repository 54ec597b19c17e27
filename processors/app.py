"""The stream processor as a Faust app: frames topic -> per-face sessions -> results.

* One agent over the frames topic (raw values), taking batches with ``stream.take_events`` and
  handing them to ``processors.agent.FrameBatches`` (the same pure pipeline as everywhere).
* Face sessions in a changelog-backed Faust Table keyed by face key, like the frames topic. Faust
  co-partitions the Table with the frames topic, so the worker given frames partition ``p`` recovers
  changelog partition ``p`` before its agent reads a frame. The agent writes the Table from batches
  that mix partitions, so the Table uses the producer's partitioner (``use_partitioner=True``):
  murmur2 of the key, the same partition the face's frames are in.
* Faust has no session windows: a timer closes sessions idle for ``session_gap_s``.

``facestream worker`` runs this app (``processors.worker``); so does
``faust -A processors.app worker -l info``, with the settings of the environment.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

import faust
from faust.types import EventT

from infra import allocator, metrics
from infra.settings import Settings
from infra.topics import SESSIONS_TABLE
from processors import codec
from processors.agent import FrameBatches, now_ms, quiet_partitions
from processors.gaps import CommittedOffsets
from processors.pipeline import FrameProcessor

log = logging.getLogger(__name__)


def create_app(s: Settings, processor: FrameProcessor | None = None) -> faust.App:
    """The app for settings ``s``; ``processor`` (the models, slow to load) is built here unless
    given, before the worker starts: loading it on the first batch would block the event loop
    while Faust's consumer is already fetching."""
    codec.register()
    s.data_dir.mkdir(parents=True, exist_ok=True)
    app = faust.App(
        s.app_id,
        broker=[f"kafka://{h.strip()}" for h in s.bootstrap.split(",")],
        store="memory://",
        datadir=str(s.data_dir / "faust"),
        topic_partitions=s.partitions,
        topic_replication_factor=s.replication_factor,
        processing_guarantee="at_least_once",
        producer_acks=-1,
        # After a broker restart an idempotent producer can give up on a batch; duplicates are
        # absorbed by the sinks instead.
        producer_enable_idempotence=False,
        producer_linger_ms=s.producer_linger_ms,
        producer_max_batch_size=1 << 20,
        producer_max_request_size=16 << 20,
        consumer_max_fetch_size=16 << 20,
        consumer_auto_offset_reset="earliest",
        consumer_group_instance_id=s.worker_instance_id,
        broker_commit_interval=s.commit_interval_s,
        broker_session_timeout=s.consumer_session_timeout_s,
        broker_heartbeat_interval=min(3.0, s.consumer_session_timeout_s / 3),
        web_enabled=False,
    )
    frames = app.topic(s.frames_topic, key_type=bytes, value_type=bytes, key_serializer="raw",
                       value_serializer="raw", partitions=s.partitions)
    sessions = app.Table(
        SESSIONS_TABLE, default=None, key_type=bytes, value_type=codec.SessionValue,
        partitions=s.partitions, use_partitioner=True,
        help="Per-face session state (processors.session.FaceSession)",
    )
    processor = processor or FrameProcessor(onnx_threads=s.onnx_threads, blendshapes=s.blendshapes)
    committed = CommittedOffsets(s.bootstrap, s.app_id, s.frames_topic)

    async def committed_offset(partition: int) -> int | None:
        return await asyncio.to_thread(committed.get, partition)

    batches = FrameBatches(s, sessions, lambda: app.producer, processor,
                           acknowledge=lambda part, offsets: ack_read_back(app, s.frames_topic, part, offsets),
                           withhold=withhold_acks,
                           committed=committed_offset)
    rebalanced = {"ms": now_ms(), "ready": False}
    metrics.CONSUMER_LAG.labels("worker").set(0)  # exposed from the start, updated by the timer

    def count_sessions() -> None:
        metrics.ACTIVE_SESSIONS.set(sum(1 for v in sessions.values() if v is not None))

    @app.on_partitions_revoked.connect
    async def _revoked(sender: object, revoked: object, **kwargs: object) -> None:
        batches.guard.forget()  # after a rebalance the stream restarts from committed offsets

    @app.on_rebalance_complete.connect
    async def _recovered(sender: object, **kwargs: object) -> None:
        # Sent once the Table is recovered for the new assignment: only now may frames be read.
        rebalanced["ms"] = now_ms()
        count_sessions()
        if not rebalanced["ready"]:
            rebalanced["ready"] = True
            log.info("Ready: worker of group %s", s.app_id)

    @app.agent(frames, name="face-frames")
    async def process_frames(stream: faust.StreamT) -> None:
        async for events in stream.take_events(s.batch_size, within=s.batch_within_s):
            await batches.handle(events)

    if s.malloc_trim_interval_s > 0:
        @app.timer(s.malloc_trim_interval_s, name="give-memory-back")
        async def give_memory_back() -> None:
            # A catch-up's records leave free pages between live blocks of the heap (infra.allocator).
            await asyncio.to_thread(allocator.give_back)

    @app.timer(s.sweep_interval_s, name="close-idle-sessions")
    async def close_idle_sessions() -> None:
        if app.rebalancing:
            return
        try:
            await sweep()
        except Exception as exc:  # noqa: BLE001 - a Faust timer that raises crashes the whole worker
            # Nothing is lost: a session is deleted only after its summary is delivered, so the
            # next sweep closes it again.
            log.warning("closing idle sessions failed (%s: %s); trying again in %.0f s", type(exc).__name__, exc,
                        s.sweep_interval_s)

    async def sweep() -> None:
        owned = [tp.partition for tp in app.consumer.assignment() if tp.topic == s.frames_topic]
        # Per partition: its end, and the next offset this worker will process (before any since
        # the rebalance: the committed offset, where it resumes). The end is asked of the broker:
        # the consumer's own (from its last fetch) is as old as a stall, and a worker that woke
        # from one (frozen, starved of CPU, dropped by its group) saw its faces idle and their
        # partitions quiet before it had fetched what came meanwhile, and closed every session.
        ends = await asyncio.to_thread(committed.ends, owned) if owned else {}
        progress = {}
        for partition in owned:
            nxt = batches.guard.expected.get(partition)
            progress[partition] = (ends.get(partition),
                                   nxt if nxt is not None else await committed_offset(partition))
        now = now_ms()
        quiet = quiet_partitions(progress)
        if await batches.close_idle(quiet, now, rebalanced["ms"]):
            count_sessions()
        lag = sum(max(0, end - done) for end, done in progress.values() if end is not None and done is not None)
        metrics.CONSUMER_LAG.labels("worker").set(lag)

    return app


def ack_read_back(app: faust.App, topic: str, partition: int, offsets: range) -> None:
    """Mark ``offsets`` of ``topic[partition]`` acknowledged in Faust's consumer, as its own
    ``Consumer.ack`` does for an event. They are offsets its stream skipped (after a restart the
    first event it delivers may lie past the committed offset) and ``FrameBatches`` read back and
    processed; without this Faust never commits past them (its commit offset waits for them
    forever, found by the chaos run). Faust has no public call for it: this uses the same
    bookkeeping (``_acked``, ``_acked_index``) under the same lock, for the pinned faust-streaming."""
    from faust.types.tuples import TP, ack_lock

    consumer = app.consumer
    tp = TP(topic, partition)
    with ack_lock:
        committed = consumer._committed_offset[tp]
        index, acked = consumer._acked_index[tp], consumer._acked[tp]
        for offset in offsets:
            if (committed is None or offset >= committed) and offset not in index:
                index.add(offset)
                acked.append(offset)
                consumer._n_acked += 1


def withhold_acks(events: Sequence[EventT]) -> None:
    """Keep Faust from acknowledging ``events``: their batch was left unfinished (the worker is
    stopping), and Faust acks a batch's events whenever the agent leaves it, then commits past them
    (``processors.agent``). A message marked acked is skipped by ``Message.ack``, so its offset never
    reaches the consumer's acked list, and no commit passes it. Faust has no public call for it:
    this sets the same flag under the same lock, for the pinned faust-streaming."""
    from faust.types.tuples import ack_lock

    with ack_lock:
        for event in events:
            event.message.acked = True


def __getattr__(name: str) -> faust.App:
    # ``faust -A processors.app`` imports ``app``: built on first use from the environment, so
    # importing this module has no side effects.
    if name == "app":
        global app
        app = create_app(Settings())
        return app
    raise AttributeError(name)
