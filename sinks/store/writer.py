"""The store sink: results and session summaries from Kafka into PostgreSQL, idempotently.

Each batch is COPYed into a temporary staging table and moved with
``INSERT ... ON CONFLICT DO NOTHING``, so a redelivered result (same face and frame) never
becomes a second row. Offsets are committed only after the database transaction commits:
a crash between the two redelivers the batch, which the conflict rule absorbs.

While PostgreSQL is unreachable the sink keeps its one pending batch, stops polling (Kafka holds
the rest: the buffer is bounded by ``sink_batch_size``), retries with exponential backoff, and
catches up once the database is back.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from datetime import date, datetime, timezone

import psycopg
from kafka import KafkaConsumer
from kafka.errors import CommitFailedError, RebalanceInProgressError

from infra import membership, metrics
from infra.backoff import retry_delay_s
from infra.joins import JoinTracker
from infra.pacing import Pacer, paced_poll
from infra.settings import Settings
from schemas import FaceResult, SessionSummary
from schemas.errors import PayloadError
from schemas.vocabulary import EMOTIONS
from sinks.store.db import StoreError, connect, ensure_partitions, first_line, migrate_when_up
from sinks.store.retention import apply_retention

log = logging.getLogger(__name__)

RESULT_COLUMNS = (
    "face_key", "seq", "capture_time", "session_id", "device_id", "track_id", "processed_time",
    "session_started", "session_frame", "amusement", "surprise", "confusion", "attention",
    "engagement", "engagement_phase", "interaction_status", "emotion",
    *(f"p_{e}" for e in EMOTIONS),
    "yaw", "pitch", "roll", "gaze_x", "gaze_y", "eye_openness", "blink", "blinks", "blendshapes", "teacher",
)
# PostgreSQL types of RESULT_COLUMNS, for binary COPY (several times faster than text).
RESULT_TYPES = (
    "text", "int8", "timestamptz", "text", "text", "int4", "timestamptz", "timestamptz", "int8",
    *["float4"] * 5, "text", "text", "text", *["float4"] * len(EMOTIONS),
    *["float4"] * 6, "bool", "int4", "float4[]", "float4[]",
)
SUMMARY_COLUMNS = (
    "face_key", "started", "session_id", "device_id", "track_id", "ended", "closed", "frames", "blinks",
    "engaged_s", "mean_amusement", "mean_surprise", "mean_confusion", "mean_attention", "mean_engagement",
    "max_amusement", "max_surprise", "max_confusion", "closed_reason",
)


def _ts(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000.0, tz=timezone.utc)


def result_row(r: FaceResult) -> tuple:
    """One face_results row (RESULT_COLUMNS order) from a FaceResult."""
    probs = list(r.emotions) if len(r.emotions) == len(EMOTIONS) else [None] * len(EMOTIONS)
    return (
        r.face_key, r.seq, _ts(r.capture_ms), r.session_id, r.device_id, r.track_id, _ts(r.processed_ms),
        _ts(r.session_started_ms), r.session_frame, r.amusement, r.surprise, r.confusion, r.attention,
        r.engagement, r.engagement_phase, r.interaction_status, r.emotion, *probs,
        r.yaw, r.pitch, r.roll, r.gaze_x, r.gaze_y, r.eye_openness, r.blink, r.blinks,
        list(r.blendshapes), None if r.teacher is None else list(r.teacher),
    )


def summary_row(s: SessionSummary) -> tuple:
    return (
        s.face_key, _ts(s.started_ms), s.session_id, s.device_id, s.track_id, _ts(s.ended_ms), _ts(s.closed_ms),
        s.frames, s.blinks, s.engaged_s, s.mean_amusement, s.mean_surprise, s.mean_confusion,
        s.mean_attention, s.mean_engagement, s.max_amusement, s.max_surprise, s.max_confusion, s.closed_reason,
    )


@dataclass
class WriteStats:
    results_in: int = 0  # rows offered
    results_written: int = 0  # rows that were new
    summaries_in: int = 0
    summaries_written: int = 0


class StoreWriter:
    """Writes batches into one connection; creates partitions as days appear."""

    def __init__(self, conn: psycopg.Connection) -> None:
        self.conn = conn
        self._days: set[date] = set()
        with conn.transaction():
            conn.execute("CREATE TEMP TABLE IF NOT EXISTS staging_results "
                         "(LIKE face_results INCLUDING DEFAULTS) ON COMMIT DELETE ROWS")

    def forget_days(self, days: list[date]) -> None:
        """Partitions dropped by the retention: recreate them if a late result needs one."""
        self._days.difference_update(days)

    def write(self, results: list[FaceResult], summaries: list[SessionSummary]) -> WriteStats:
        st = WriteStats(results_in=len(results), summaries_in=len(summaries))
        cols = ", ".join(RESULT_COLUMNS)
        with self.conn.transaction():
            if results:
                ensure_partitions(self.conn, {_ts(r.capture_ms).date() for r in results}, self._days)
                with self.conn.cursor() as cur:
                    with cur.copy(f"COPY staging_results ({cols}) FROM STDIN (FORMAT BINARY)") as copy:
                        copy.set_types(RESULT_TYPES)
                        for r in results:
                            copy.write_row(result_row(r))
                    cur.execute(f"INSERT INTO face_results ({cols}) SELECT {cols} FROM staging_results "
                                "ON CONFLICT DO NOTHING")
                    st.results_written = cur.rowcount
                    cur.execute(
                        "INSERT INTO sessions (face_key, session_id, device_id, track_id, first_capture, last_capture) "
                        "SELECT face_key, min(session_id), min(device_id), min(track_id), min(capture_time), "
                        "max(capture_time) FROM staging_results GROUP BY face_key "
                        "ON CONFLICT (face_key) DO UPDATE SET "
                        "first_capture = LEAST(sessions.first_capture, EXCLUDED.first_capture), "
                        "last_capture = GREATEST(sessions.last_capture, EXCLUDED.last_capture)")
            if summaries:
                sql = (f"INSERT INTO session_summaries ({', '.join(SUMMARY_COLUMNS)}) VALUES "
                       f"({', '.join(['%s'] * len(SUMMARY_COLUMNS))}) ON CONFLICT DO NOTHING")
                with self.conn.cursor() as cur:
                    for summary in summaries:  # a handful per batch: one statement each is fine
                        cur.execute(sql, summary_row(summary))
                        st.summaries_written += cur.rowcount
        return st


@dataclass
class SinkStats:
    batches: int = 0
    results_written: int = 0
    results_duplicate: int = 0
    summaries_written: int = 0
    bad_messages: int = 0
    db_retries: int = 0
    started: float = field(default_factory=time.monotonic)


class StoreSink:
    """Kafka -> PostgreSQL loop. ``run`` returns when ``stop`` is set."""

    def __init__(self, settings: Settings, database_url: str) -> None:
        self.s = settings
        self.url = database_url
        self.stats = SinkStats()
        self.stop = threading.Event()
        # Migrated now when the database answers (callers may rely on the tables); if it is away,
        # ``run`` waits for it.
        self._ready = self._wait_for_database(attempts=1)
        self._conn: psycopg.Connection | None = None
        self._writer: StoreWriter | None = None
        self._retention_due = 0.0  # monotonic time of the next retention pass (0: at start)

    def _consumer(self, instance_id: str | None) -> tuple[KafkaConsumer, JoinTracker]:
        consumer = KafkaConsumer(
            bootstrap_servers=self.s.bootstrap.split(","), group_id=self.s.sink_group, group_instance_id=instance_id,
            client_id=f"facestream-sink-{self.s.device_id}", enable_auto_commit=False,
            auto_offset_reset="earliest", max_poll_records=self.s.sink_batch_size,
            # The loop stops polling while the database is away; don't get evicted meanwhile.
            max_poll_interval_ms=15 * 60 * 1000,
        )
        joins = JoinTracker()
        consumer.subscribe([self.s.results_topic, self.s.summaries_topic], listener=joins)
        return consumer, joins

    def _write(self, results: list[FaceResult], summaries: list[SessionSummary]) -> None:
        """Write one batch, retrying with backoff until it lands or ``stop`` is set."""
        failures = 0
        while not self.stop.is_set():
            try:
                if self._conn is None or self._conn.closed:
                    self._conn = connect(self.url)
                    self._writer = StoreWriter(self._conn)
                assert self._writer is not None
                st = self._writer.write(results, summaries)
                self.stats.results_written += st.results_written
                self.stats.results_duplicate += st.results_in - st.results_written
                self.stats.summaries_written += st.summaries_written
                self.stats.batches += 1
                metrics.ROWS_WRITTEN.labels("face_results", "written").inc(st.results_written)
                metrics.ROWS_WRITTEN.labels("face_results", "duplicate").inc(st.results_in - st.results_written)
                metrics.ROWS_WRITTEN.labels("session_summaries", "written").inc(st.summaries_written)
                return
            except (psycopg.OperationalError, psycopg.InterfaceError, StoreError, OSError) as exc:
                failures += 1
                delay = retry_delay_s(failures)
                self.stats.db_retries += 1
                metrics.DB_RETRIES.inc()
                log.warning("PostgreSQL unavailable (%s); retrying the batch of %d results in %.1f s",
                            first_line(exc),
                            len(results), delay)
                if self._conn is not None:
                    self._conn.close()
                self._conn = None
                self.stop.wait(delay)
        raise InterruptedError("stopped before the batch was written")

    def _retain(self) -> None:
        """Apply the retention when due (``retention_days`` 0: never). A failure is logged and
        retried a minute later: retention must never stop results being stored."""
        if self.s.retention_days == 0 or time.monotonic() < self._retention_due:
            return
        try:
            with connect(self.url) as conn:
                days = apply_retention(conn, self.s.retention_days)
        except (psycopg.Error, OSError) as exc:
            self._retention_due = time.monotonic() + 60.0
            log.error("retention (%d days) failed, retrying in 60 s: %s%s", self.s.retention_days,
                      first_line(exc),
                      " (grant the services' role the runtime rights again: facestream db grant ROLE)"
                      if isinstance(exc, psycopg.errors.InsufficientPrivilege) else "")
            return
        self._retention_due = time.monotonic() + self.s.retention_check_s
        metrics.RETENTION_DROPPED.inc(len(days))
        if self._writer is not None:
            self._writer.forget_days(days)
        if days:
            log.info("retention: dropped %d day(s) of results older than %d days", len(days), self.s.retention_days)

    @staticmethod
    def _report_lag(consumer: KafkaConsumer) -> None:
        """Messages between the sink's position and the end of its partitions (from fetch metadata)."""
        lag = 0
        for tp in consumer.assignment():
            end = consumer.highwater(tp)
            if end is not None:
                lag += max(0, end - consumer.position(tp))
        metrics.CONSUMER_LAG.labels("sink").set(lag)

    def _wait_for_database(self, attempts: int | None = None) -> bool:
        """Wait for PostgreSQL and migrate (``migrate_when_up``). False when stopped first, or
        after ``attempts`` failed tries."""
        def retry(why: str, delay: float | None) -> None:
            self.stats.db_retries += 1
            metrics.DB_RETRIES.inc()
            if delay is None:
                log.warning("PostgreSQL unavailable at start (%s); the sink will wait for it", why)
            else:
                log.warning("PostgreSQL unavailable at start (%s); retrying in %.1f s", why, delay)

        return migrate_when_up(self.url, stop=self.stop, attempts=attempts, on_retry=retry) is not None

    def run(self) -> SinkStats:
        if not self._ready and not self._wait_for_database():
            return self.stats
        # Static membership (infra.membership): a restarted sink takes its partitions back at once.
        member = (membership.claim("sink", self.s.sink_group, self.s.cache_dir / "members", self.s.sink_instance_id)
                  if self.s.static_membership else None)
        try:
            consumer, joins = self._consumer(member.instance_id if member else None)
        except BaseException:
            if member is not None:
                member.release()
            raise
        # Polls are short (infra.pacing); a batch is gathered over several of them.
        pacer = Pacer(max_pause_s=self.s.fetch_idle_max_s)
        results: list[FaceResult] = []
        summaries: list[SessionSummary] = []
        first: float | None = None  # when the batch being gathered got its first record
        try:
            while not self.stop.is_set():
                self._retain()
                if joins.open_for() > self.s.sink_rejoin_timeout_s:
                    # A join that never completes (seen on the embedded broker after a restarted
                    # sink's partitions were revoked again mid-join, found by the chaos run): start
                    # over with a new consumer under the same member id. Nothing is lost: what was
                    # not committed is read again, and the store keeps one row per frame.
                    log.warning("the group join has been open for %.0f s: joining again with a new consumer",
                                joins.open_for())
                    consumer.close(autocommit=False)
                    consumer, joins = self._consumer(member.instance_id if member else None)
                    metrics.SINK_REJOINS.inc()
                polled = paced_poll(consumer, pacer, max(1, self.s.sink_batch_size - len(results) - len(summaries)),
                                    int(self.s.sink_batch_within_s * 1000), joins)
                for tp, messages in polled.items():
                    for m in messages:
                        try:
                            if tp.topic == self.s.results_topic:
                                results.append(FaceResult.decode(m.value))
                            else:
                                summaries.append(SessionSummary.decode(m.value))
                        except PayloadError as exc:
                            # Only the processor writes these topics; a bad record is a bug or a
                            # foreign producer. Skip it loudly rather than block the store.
                            self.stats.bad_messages += 1
                            log.error("skipping undecodable record %s[%d]@%d: %s", tp.topic, tp.partition,
                                      m.offset, exc)
                self._report_lag(consumer)
                if polled:
                    first = first or time.monotonic()
                if first is None or (len(results) + len(summaries) < self.s.sink_batch_size
                                     and time.monotonic() - first < self.s.sink_batch_within_s):
                    continue
                try:
                    self._write(results, summaries)
                except InterruptedError:
                    break  # not committed: the batch is redelivered on restart
                results, summaries, first = [], [], None
                if joins.joining:
                    continue  # commit once the group has settled: what was written is kept
                try:
                    consumer.commit()  # the positions: everything polled is in the batch just written
                except (CommitFailedError, RebalanceInProgressError) as exc:
                    # Our partitions moved (or are moving: a restarted static member rejoining)
                    # while we wrote; whoever owns them next redelivers what we wrote, and the
                    # conflict rule keeps it single. The next poll joins the group again, and no
                    # commit is tried until that join completes: a commit in the middle of it
                    # fails and starts it over (found by the chaos run).
                    log.warning("offset commit failed during a rebalance (%s); records will be redelivered; "
                                "committing again once the group has settled", exc)
        finally:
            consumer.close()
            if self._conn is not None:
                self._conn.close()
            if member is not None:
                member.release()
        return self.stats
