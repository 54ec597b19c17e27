"""What survived a chaos run, judged from the topics and PostgreSQL.

* every frame the broker acknowledged (an edge producer's acks, and every frame the gateways put
  on the frames topic) has exactly one row in face_results: ``lost``, ``duplicated``;
* no face's session was reset: a face starts a new session only after a gap of ``session_gap_s``
  in its frames (the input stopped), and each row's ``session_frame`` is its rank by ``seq`` in
  its session (a state restored too old would skip or repeat);
* every session has one summary whose frame count and mean attention match its rows;
* every Mojo connection received a calculation for every frame it sent, except the frames in
  flight when its gateway was killed (counted apart).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import psycopg
from kafka import KafkaConsumer, TopicPartition

from infra.settings import Settings
from schemas import FaceResult, LandmarkFrame


class Observer:
    """Kafka positions of the run's consumer groups, read without joining them."""

    def __init__(self, s: Settings) -> None:
        self.s = s
        self._consumers: dict[str, KafkaConsumer] = {}

    def _consumer(self, group: str | None) -> KafkaConsumer:
        key = group or ""
        if key not in self._consumers:
            self._consumers[key] = KafkaConsumer(bootstrap_servers=self.s.bootstrap.split(","), group_id=group,
                                                 enable_auto_commit=False, client_id="facestream-chaos",
                                                 request_timeout_ms=5000)
        return self._consumers[key]

    def _parts(self, topics: list[str]) -> list[TopicPartition]:
        c = self._consumer(None)
        return [TopicPartition(t, p) for t in topics for p in sorted(c.partitions_for_topic(t) or ())]

    def ends(self, topics: list[str]) -> int:
        return sum(self._consumer(None).end_offsets(self._parts(topics)).values())

    def committed(self, group: str, topics: list[str]) -> int:
        return sum(sum(self.committed_offsets(group, t).values()) for t in topics)

    def committed_offsets(self, group: str, topic: str) -> dict[int, int]:
        """Partition -> the group's committed offset on ``topic`` (0 where it has none)."""
        c = self._consumer(group)
        return {tp.partition: c.committed(tp) or 0 for tp in self._parts([topic])}

    def lag(self, group: str, topics: list[str]) -> int:
        """End offsets minus the group's committed offsets over ``topics``."""
        ends = self._consumer(None).end_offsets(self._parts(topics))
        c = self._consumer(group)
        return sum(max(0, end - (c.committed(tp) or 0)) for tp, end in ends.items())

    def worker_lag(self) -> int:
        return self.lag(self.s.app_id, [self.s.frames_topic])

    def sink_lag(self) -> int:
        return self.lag(self.s.sink_group, [self.s.results_topic, self.s.summaries_topic])

    def close(self) -> None:
        for c in self._consumers.values():
            c.close()


@dataclass
class FramesOnTopic:
    """Every frame on the frames topic, by where it lies: (face key, seq) -> (partition, offset) of
    its first copy (a frame written twice counts once)."""

    where: dict[tuple[str, int], tuple[int, int]] = field(default_factory=dict)

    def seqs(self) -> dict[str, set[int]]:
        """Face key -> its seqs on the topic."""
        out: dict[str, set[int]] = {}
        for key, seq in self.where:
            out.setdefault(key, set()).add(seq)
        return out


def frames_on_topic(s: Settings) -> FramesOnTopic:
    out = FramesOnTopic()

    def keep(partition: int, offset: int, value: bytes) -> None:
        f = LandmarkFrame.decode(value, validate=False)
        out.where.setdefault((f.key, f.seq), (partition, offset))

    asyncio.run(_read_topic(s, s.frames_topic, keep))
    return out


def results_on_topic(s: Settings, wanted: set[tuple[str, int]]) -> dict[tuple[str, int], tuple[int, int]]:
    """Of the (face key, seq) pairs ``wanted``, those with a result on the results topic, each with
    the (partition, offset) of its first copy."""
    found: dict[tuple[str, int], tuple[int, int]] = {}

    def keep(partition: int, offset: int, value: bytes) -> None:
        r = FaceResult.decode(value)
        if (r.face_key, r.seq) in wanted:
            found.setdefault((r.face_key, r.seq), (partition, offset))

    asyncio.run(_read_topic(s, s.results_topic, keep))
    return found


def offset_runs(places: list[tuple[int, int]]) -> list[tuple[int, int, int]]:
    """(partition, offset) pairs -> (partition, first, last) runs of consecutive offsets, in order."""
    runs: list[tuple[int, int, int]] = []
    for partition, offset in sorted(places):
        if runs and runs[-1][0] == partition and runs[-1][2] == offset - 1:
            runs[-1] = (partition, runs[-1][1], offset)
        else:
            runs.append((partition, offset, offset))
    return runs


async def _read_topic(s: Settings, topic: str, keep: Callable[[int, int, bytes], None]) -> None:
    """Every record of ``topic`` from its beginning to (at least) its end as of now, as
    ``keep(partition, offset, value)``."""
    # aiokafka, as the worker's gap reader: kafka-python's consumer, assigned and sought to the
    # beginning of this topic, returned nothing at all on the test broker.
    from aiokafka import AIOKafkaConsumer
    from aiokafka import TopicPartition as ATP

    c = AIOKafkaConsumer(bootstrap_servers=s.bootstrap, group_id=None, enable_auto_commit=False,
                         client_id="facestream-chaos-verdict", auto_offset_reset="earliest")
    await c.start()
    try:
        # One partition at a time: the embedded broker answers a fetch with everything past the
        # position whatever size is asked, and a 50-face run's frames (over 2 GB on 4 partitions)
        # overflowed the response's size field ("readexactly size can not be less than zero").
        for tp in [ATP(topic, p) for p in sorted(c.partitions_for_topic(topic) or ())]:
            c.assign([tp])
            await c.seek_to_beginning(tp)
            end = (await c.end_offsets([tp]))[tp]
            progress = time.monotonic()
            while await c.position(tp) < end:
                for m in (await c.getmany(tp, timeout_ms=1000, max_records=5000)).get(tp, []):
                    progress = time.monotonic()
                    keep(m.partition, m.offset, m.value)
                if time.monotonic() - progress > 60:
                    raise RuntimeError(f"{topic} partition {tp.partition} could not be read to its end (position "
                                       f"{await c.position(tp)}, end {end}): the verdict needs every record")
    finally:
        await c.stop()


@dataclass(frozen=True)
class SessionChecks:
    sessions: int  # (face, session start) pairs among the rows
    resets: int  # a face's session that began less than a gap after its previous one ended
    input_gaps: int  # one that began after the face's frames stopped for a gap or more
    skips: int
    summaries_missing: int
    summaries_inconsistent: int
    examples: tuple[str, ...] = ()  # the first few sessions that failed a check, for the logs to be read against


# Sessions from the rows: a face's next session must follow a gap of at least ``session_gap_s``
# in its frames' capture times (the input stopped: an edge producer whose frames expired unsent,
# a Mojo client reconnecting late), else the session was reset. Every session must have a summary
# (the store keeps one per face and start) that counts its rows and averages their attention.
_SESSIONS = """
WITH r AS (SELECT face_key, session_started, seq, session_frame, capture_time, attention,
                  row_number() OVER (PARTITION BY face_key, session_started ORDER BY seq) - 1 AS rank
           FROM face_results),
     sess AS (SELECT face_key, session_started, min(seq) AS first_seq, min(capture_time) AS first_at,
                     max(capture_time) AS last_at, count(*) AS n, avg(attention) AS attention,
                     count(*) FILTER (WHERE session_frame <> rank) AS skips
              FROM r GROUP BY face_key, session_started),
     chain AS (SELECT *, first_at - lag(last_at) OVER (PARTITION BY face_key ORDER BY first_seq) AS after
               FROM sess),
     s AS (SELECT face_key, started, frames, mean_attention AS attention FROM session_summaries)
"""
_SESSION_CHECKS = _SESSIONS + """
SELECT count(*),
       count(*) FILTER (WHERE chain.after < make_interval(secs => %(gap)s)),
       count(*) FILTER (WHERE chain.after >= make_interval(secs => %(gap)s)),
       coalesce(sum(chain.skips), 0),
       count(*) FILTER (WHERE s.face_key IS NULL),
       count(*) FILTER (WHERE s.frames <> chain.n OR abs(s.attention - chain.attention) > 1e-3)
FROM chain LEFT JOIN s ON s.face_key = chain.face_key AND s.started = chain.session_started
"""


_BROKEN_SESSIONS = _SESSIONS + """
SELECT chain.face_key, chain.session_started, chain.first_seq, chain.n, extract(epoch FROM chain.after),
       chain.skips, s.frames
FROM chain LEFT JOIN s ON s.face_key = chain.face_key AND s.started = chain.session_started
WHERE chain.after < make_interval(secs => %(gap)s) OR chain.skips > 0 OR s.face_key IS NULL
      OR s.frames <> chain.n OR abs(s.attention - chain.attention) > 1e-3
ORDER BY chain.face_key, chain.first_seq LIMIT 5
"""


def session_checks(conn: psycopg.Connection, session_gap_s: float) -> SessionChecks:
    """The sessions in the store, judged against their rows and summaries (``_SESSION_CHECKS``);
    when some fail, the first few of them (``_BROKEN_SESSIONS``, a second pass over the rows)."""
    checks = SessionChecks(*conn.execute(_SESSION_CHECKS, {"gap": session_gap_s}).fetchone())
    if not (checks.resets or checks.skips or checks.summaries_missing or checks.summaries_inconsistent):
        return checks
    return replace(checks, examples=tuple(
        f"face {face} session of {started:%H:%M:%S.%f}"[:-3] + f" from seq {first_seq}, {n} rows"
        + ("" if after is None else f", begun {float(after):.3f} s after the face's previous session")
        + (f", {skips} rows out of count" if skips else "")
        + (", no summary" if summary is None else f", summary says {summary} frames")
        for face, started, first_seq, n, after, skips, summary
        in conn.execute(_BROKEN_SESSIONS, {"gap": session_gap_s})))


@dataclass
class Verdict:
    frames: int = 0  # distinct frames the broker acknowledged (on the frames topic)
    edge_acked: int = 0  # of them, acknowledged to an edge producer
    edge_acked_missing_on_topic: int = 0
    rows: int = 0
    # Acknowledged frames without a row: lost when the part that had them committed past them (the
    # worker, with no result on the results topic; the sink, past the result), else still on their
    # way when the run ended (``pending``: a drain that gave up), neither lost nor stored.
    lost: int = 0
    lost_by_sink: int = 0  # of the lost, those whose result is on the results topic
    pending: int = 0
    lost_at: list[tuple[int, int, int]] = field(default_factory=list)  # lost frames' (partition, first, last offset)
    duplicated: int = 0  # rows beyond one per (face_key, seq)
    faces: int = 0
    sessions: int = 0
    resets: int = 0  # sessions started again although the face's frames went on
    input_gaps: int = 0  # sessions started after a gap in the face's frames (not a fault of the pipeline)
    skips: int = 0  # rows whose session_frame is not their rank by seq in their session
    summaries_missing: int = 0
    summaries_inconsistent: int = 0
    mojo_sent: int = 0
    mojo_received: int = 0
    mojo_refused: int = 0  # frames the gateways answered with an error (not accepted)
    mojo_gaps_at_kills: int = 0  # frames sent on a connection whose gateway was killed, unanswered
    mojo_gaps_other: int = 0  # unanswered frames of every other connection, dropped or not (must be 0)
    # Connections that dropped although their gateway was not killed: reason -> (connections, gaps).
    mojo_drops: dict[str, tuple[int, int]] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def judge(s: Settings, url: str, edge_acked: dict[str, set[int]], mojo_connections: list,
          committed: tuple[dict[int, int], dict[int, int]] | None = None) -> Verdict:
    """``committed``: the worker group's committed offsets of the frames topic and the sink group's
    of the results topic (partition -> offset) when the run ended; None: everything committed."""
    v = Verdict()
    topic = frames_on_topic(s)
    on_topic = topic.seqs()
    v.frames = sum(len(q) for q in on_topic.values())
    v.edge_acked = sum(len(q) for q in edge_acked.values())
    v.edge_acked_missing_on_topic = sum(len(q - on_topic.get(k, set())) for k, q in edge_acked.items())
    with psycopg.connect(url) as conn:
        rows: dict[str, set[int]] = {}
        n = 0
        for key, seq in conn.execute("SELECT face_key, seq FROM face_results"):
            rows.setdefault(key, set()).add(seq)
            n += 1
        v.rows = n
        v.duplicated = n - sum(len(q) for q in rows.values())
        missing = [(k, seq) for k, q in on_topic.items() for seq in q - rows.get(k, set())]
        if missing:  # who had them: read only then, the results topic holds a row's worth per frame
            results = results_on_topic(s, set(missing))
            worker, sink = committed or (None, None)
            by_worker = [x for x in missing if x not in results and _passed(topic.where[x], worker)]
            by_sink = [x for x in missing if x in results and _passed(results[x], sink)]
            v.lost, v.lost_by_sink = len(by_worker) + len(by_sink), len(by_sink)
            v.pending = len(missing) - v.lost
            v.lost_at = offset_runs([topic.where[x] for x in by_worker + by_sink])
        v.faces = len(rows)
        checks = session_checks(conn, s.session_gap_s)
    v.sessions, v.resets, v.input_gaps, v.skips = checks.sessions, checks.resets, checks.input_gaps, checks.skips
    v.summaries_missing, v.summaries_inconsistent = checks.summaries_missing, checks.summaries_inconsistent
    v.mojo_sent = sum(c.sent for c in mojo_connections)
    v.mojo_received = sum(c.received for c in mojo_connections)
    v.mojo_refused = sum(c.refused for c in mojo_connections)
    v.mojo_gaps_at_kills, v.mojo_gaps_other = mojo_gaps(mojo_connections)
    v.mojo_drops = drops_without_kill(mojo_connections)
    for name, value in (("acknowledged frames lost (no row, and committed past)", v.lost),
                        ("acknowledged frames still on their way when the run ended (no row yet)", v.pending),
                        ("duplicated rows", v.duplicated),
                        ("edge frames acknowledged but not on the topic", v.edge_acked_missing_on_topic),
                        ("sessions reset while their face's frames went on", v.resets),
                        ("rows out of their session's count", v.skips),
                        ("sessions without a summary", v.summaries_missing),
                        ("summaries that disagree with their rows", v.summaries_inconsistent),
                        ("unanswered frames on connections whose gateway was not killed", v.mojo_gaps_other)):
        if value:
            v.problems.append(f"{value} {name}")
    if checks.examples:
        v.problems.append("sessions failing a check: " + "; ".join(checks.examples))
    if v.lost_at:  # where: to hold against the worker's log of restarts and read-backs
        runs = ", ".join(f"{p}:{a}-{b}" for p, a, b in v.lost_at[:8])
        more = f" and {len(v.lost_at) - 8} more" if len(v.lost_at) > 8 else ""
        v.problems.append(f"the lost frames lie at partition:offsets {runs}{more}; {v.lost - v.lost_by_sink:,} "
                          f"lost by the worker (no result on the results topic), {v.lost_by_sink:,} by the sink "
                          "(a result it committed past)")
    return v


def mojo_gaps(connections: list) -> tuple[int, int]:
    """Unanswered frames (on connections whose gateway the run killed, on all others). Decided by
    the kills the run carried out, not by what a client saw: a connection an overloaded gateway
    dropped was not killed, and its gaps are not excused."""
    return sum(c.gaps for c in connections if c.killed), sum(c.gaps for c in connections if not c.killed)


def drops_without_kill(connections: list) -> dict[str, tuple[int, int]]:
    """Connections that dropped while their gateway was not killed, by the reason python-socketio
    gave the client (``ping timeout``: the gateway or the client too busy to answer a ping in time;
    ``transport error``/``transport close``: the socket broke): reason -> (connections, their gaps)."""
    out: dict[str, tuple[int, int]] = {}
    for c in connections:
        if c.closed is not None and not c.killed:
            reason = c.reason or "unknown"  # None: the client was never told (it gave up itself)
            n, gaps = out.get(reason, (0, 0))
            out[reason] = (n + 1, gaps + c.gaps)
    return out


def _passed(place: tuple[int, int], committed: dict[int, int] | None) -> bool:
    """Whether a group whose committed offsets are ``committed`` (partition -> offset; None: all)
    committed past ``place`` (partition, offset)."""
    return committed is None or place[1] < committed.get(place[0], 0)
