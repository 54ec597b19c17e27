"""The Faust stream processor: frames topic -> per-face sessions -> results and summaries.

Faust has no session windows, so a face session lives in a changelog-backed table keyed by the
face key (``session_id/track_id``, the frames' partitioning key). The table uses the producer's
key partitioner (``use_partitioner=True``): a batch from ``stream.take`` may mix partitions, and
the changelog partition must follow the key, not whichever event happens to be current. Because
Kafka's default partitioner is murmur2 everywhere, a key's changelog partition equals its frames
partition, so the worker that owns a face's frames also recovers its session.

Sessions close by inactivity in a timer (no frame for ``session_gap_s`` of processing time,
with the same grace after every rebalance so a restarted worker reading a backlog does not close
live sessions), emitting a ``SessionSummary``. Processing is at-least-once; sinks deduplicate on
(face_key, seq).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import Counter

import faust

from facestream import metrics
from facestream.settings import Settings, get_settings
from facestream.topics import partition_for
from processors.cues import CueParams
from processors.pipeline import FrameProcessor
from processors.session import FaceSession
from schemas import LandmarkFrame, PayloadError
from schemas.errors import Oversized

log = logging.getLogger(__name__)


def _now_ms() -> int:
    return int(time.time() * 1000)


def _load_session(raw: bytes | None) -> FaceSession | None:
    """A table value -> FaceSession. Empty means deleted: some Kafka-compatible brokers (noida-db
    among them) return a tombstone as b"" rather than null."""
    return FaceSession.from_dict(json.loads(raw)) if raw else None


def _dump_session(session: FaceSession) -> bytes:
    return json.dumps(session.to_dict(), separators=(",", ":")).encode()


def create_app(settings: Settings | None = None) -> faust.App:
    s = settings or get_settings()
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
        consumer_auto_offset_reset="earliest",
        broker_session_timeout=s.consumer_session_timeout_s,
        consumer_group_instance_id=s.worker_instance_id,
        broker_heartbeat_interval=min(3.0, s.consumer_session_timeout_s / 3),
        web_enabled=s.worker_web_enabled,
        web_host="127.0.0.1",
        web_port=s.worker_web_port,
        web_bind="127.0.0.1",
        # Bigger fetches and buffers: the profile showed the consumer thread busy sending small
        # fetch requests while the agent waited.
        broker_max_poll_records=s.batch_size * 8,
        stream_buffer_maxsize=s.batch_size * 64,
        consumer_max_fetch_size=16 * 1024 * 1024,
    )
    raw = {"key_serializer": "raw", "value_serializer": "raw", "partitions": s.partitions}
    frames_topic = app.topic(s.frames_topic, key_type=bytes, value_type=bytes, **raw)
    summaries_topic = app.topic(s.summaries_topic, **raw)
    dead_letters = app.topic(s.dead_letter_topic, **raw)
    # Keys and values are bytes (raw codec): values are JSON we encode ourselves, so a tombstone
    # or a malformed value can never make faust's decoder raise during changelog recovery
    # (which would silently abort the recovery).
    sessions = app.Table(
        "face-sessions", default=None, partitions=s.partitions, use_partitioner=True,
        key_type=bytes, value_type=bytes,
        help="Per-face session state (processors.session.FaceSession).",
    )
    gap_ms = int(s.session_gap_s * 1000)
    lock = asyncio.Lock()  # the sweep and the agent both read-modify-write sessions
    state = {"processor": None, "rebalanced_ms": _now_ms()}
    app.facestream_counters = counters = Counter()  # type: ignore[attr-defined]
    positions: dict = {}  # TP -> next offset the agent will process

    def report_lag() -> None:
        """Frames between this worker's position and the end of the partitions it reads."""
        lag = 0
        for tp, pos in positions.items():
            try:
                end = app.consumer.highwater(tp)
            except Exception:  # noqa: BLE001 - a gauge must never stop the agent
                continue
            if end is not None:
                lag += max(0, end - pos)
        metrics.CONSUMER_LAG.labels("worker").set(lag)

    def processor() -> FrameProcessor:
        # Loaded lazily: the ONNX session is not needed by `--help` or by the web views.
        if state["processor"] is None:
            state["processor"] = FrameProcessor(CueParams(), onnx_threads=s.onnx_threads)
        return state["processor"]

    @app.on_rebalance_complete.connect
    async def _rebalanced(sender: object, **kwargs: object) -> None:
        state["rebalanced_ms"] = _now_ms()
        positions.clear()  # partitions may have moved

    @app.agent(frames_topic)
    async def process_frames(stream: faust.StreamT) -> None:
        async for events in stream.take_events(s.batch_size, within=s.batch_within_s):
            payloads = [e.value for e in events]
            for e in events:  # for the lag gauge: the next offset to process, per partition
                positions[e.message.tp] = max(positions.get(e.message.tp, 0), e.message.offset + 1)
            frames: list[LandmarkFrame] = []
            for payload in payloads:
                try:
                    if payload is not None and len(payload) > s.max_frame_bytes:
                        raise Oversized(f"message of {len(payload)} bytes is over the {s.max_frame_bytes} "
                                        "accepted for one face-frame (FACESTREAM_MAX_FRAME_BYTES)")
                    frames.append(LandmarkFrame.decode(payload))
                except PayloadError as exc:
                    counters[f"dead_letter:{exc.reason}"] += 1
                    metrics.DEAD_LETTERS.labels("worker", exc.reason).inc()
                    # The reason only: never the payload (landmarks) in the logs.
                    log.warning("refused a frame: %s", exc.reason)
                    await dead_letters.send(
                        value=(payload or b"")[: s.max_frame_bytes],
                        headers={"reason": exc.reason.encode(), "error": str(exc).encode()[:1000],
                                 "source": b"worker"})
            if not frames:
                continue
            async with lock:
                keys = {f.key for f in frames}
                current = {}
                for k in keys:
                    sess = _load_session(sessions.get(k.encode()))
                    if sess is not None:
                        current[k] = sess
                out = processor().process(frames, current)
                for k, sess in out.sessions.items():
                    sessions[k.encode()] = _dump_session(sess)
            counters["frames_in"] += len(frames)
            counters["stale_frames"] += out.stale
            metrics.FRAMES_IN.labels("worker").inc(len(frames))
            metrics.STALE_FRAMES.inc(out.stale)
            # Straight to the producer, one future per result, awaited together: faust's per-message
            # Topic.send machinery costs more than the whole feature pipeline per frame. Awaiting
            # delivery before the next batch keeps at-least-once (offsets follow acked results).
            pending = [await app.producer.send(s.results_topic, r.session_id.encode(), r.encode(),
                                               partition=None, timestamp=None, headers=None)
                       for r in out.results]
            await asyncio.gather(*pending)
            for r in out.results:
                metrics.LATENCY.observe(max(0.0, (r.processed_ms - r.capture_ms) / 1000.0))
            counters["results_out"] += len(out.results)
            metrics.RESULTS_OUT.labels("worker").inc(len(out.results))
            metrics.ACTIVE_SESSIONS.set(len(sessions))
            report_lag()

    @app.timer(s.sweep_interval_s)
    async def close_idle_sessions() -> None:
        now = _now_ms()
        if app.rebalancing or now - state["rebalanced_ms"] < gap_ms:
            return
        owned = {tp.partition for tp in app.assignor.assigned_actives()
                 if tp.topic == s.frames_topic}
        summaries = []
        async with lock:
            for key, raw in list(sessions.items()):
                sess = _load_session(raw)
                if sess is None:
                    sessions.data.pop(key, None)  # a recovered deletion: forget it locally
                    continue
                if now - sess.last_seen_ms <= gap_ms:
                    continue
                if partition_for(key, s.partitions) not in owned:
                    continue  # a stale local copy of a partition another worker owns now
                summaries.append(sess.summary(now))
                del sessions[key]
        for summary in summaries:
            log.info("session %s closed after %d frames", summary.face_key, summary.frames)
            await summaries_topic.send(key=summary.session_id.encode(), value=summary.encode())
        counters["sessions_closed"] += len(summaries)
        metrics.ACTIVE_SESSIONS.set(sum(1 for v in sessions.values() if v))

    return app


def run_worker(settings: Settings | None = None, loglevel: str = "info") -> None:
    """Run one Faust worker in this process until interrupted."""
    from facestream.topics import ensure_topics

    s = settings or get_settings()
    ensure_topics(s)
    metrics.serve(s.worker_metrics_port, s.metrics_host)
    app = create_app(s)
    worker = faust.Worker(app, loglevel=loglevel)
    worker.execute_from_commandline()
