"""The chaos verdict: its session checks on rows written to a real PostgreSQL, and who lost a frame,
judged from a real broker's topics."""

from __future__ import annotations

import time

import pytest

from facestream.chaos.verdict import session_checks
from schemas import FaceResult, SessionSummary
from sinks.store.db import connect, migrate
from sinks.store.writer import StoreWriter

GAP_S = 2.0
T0 = int(time.time() * 1000) - 60_000


def _row(face: str, seq: int, at_ms: int, started_ms: int, frame: int) -> FaceResult:
    return FaceResult(session_id=face, device_id="d", track_id=0, face_key=f"{face}/0", seq=seq, capture_ms=at_ms,
                      processed_ms=at_ms + 5, session_started_ms=started_ms, session_frame=frame,
                      blendshapes=[0.0] * 52, yaw=0.0, pitch=0.0, roll=0.0, gaze_x=0.0, gaze_y=0.0,
                      eye_openness=0.3, blink=False, blinks=0, amusement=0.0, surprise=0.0, confusion=0.0,
                      attention=0.5, engagement=0.5, engagement_phase="engaged", interaction_status="possible")


def _session(face: str, first_seq: int, n: int, start_ms: int, skip_at: int | None = None) -> list[FaceResult]:
    return [_row(face, first_seq + i, start_ms + 100 * i, start_ms, i + (1 if skip_at is not None and i >= skip_at
                                                                         else 0)) for i in range(n)]


def _summary(rows: list[FaceResult], frames: int | None = None) -> SessionSummary:
    first, last = rows[0], rows[-1]
    return SessionSummary(session_id=first.session_id, device_id="d", track_id=0, face_key=first.face_key,
                          started_ms=first.session_started_ms, ended_ms=last.capture_ms, closed_ms=last.capture_ms + 1,
                          frames=len(rows) if frames is None else frames, blinks=0, engaged_s=0.0,
                          mean_amusement=0.0, mean_surprise=0.0, mean_confusion=0.0, mean_attention=0.5,
                          mean_engagement=0.5, max_amusement=0.0, max_surprise=0.0, max_confusion=0.0)


@pytest.mark.integration
def test_sessions_are_judged_against_gaps_in_their_frames(database_url):
    steady = _session("steady", 0, 5, T0)
    reset_a = _session("reset", 0, 5, T0)
    reset_b = _session("reset", 5, 5, T0 + 500)  # the next frame, 100 ms on: a reset
    paused_a = _session("paused", 0, 3, T0)
    paused_b = _session("paused", 3, 3, T0 + 200 + int(GAP_S * 1000) + 100)  # after a gap: a new session
    skipping = _session("skipping", 0, 6, T0, skip_at=3)  # session_frame jumps by one at the fourth row
    with connect(database_url) as conn:
        migrate(conn)
        StoreWriter(conn).write(steady + reset_a + reset_b + paused_a + paused_b + skipping,
                                [_summary(steady), _summary(reset_a), _summary(paused_a),
                                 _summary(paused_b, frames=2), _summary(skipping)])
        checks = session_checks(conn, GAP_S)
    assert checks.sessions == 6
    assert checks.resets == 1, "reset: its second session began 100 ms after the first ended"
    assert checks.input_gaps == 1, "paused: its frames stopped for more than a gap"
    assert checks.skips == 3
    assert checks.summaries_missing == 1, "reset's second session"
    assert checks.summaries_inconsistent == 1, "paused's second session: 2 frames said, 3 stored"
    named = "\n".join(checks.examples)
    assert len(checks.examples) == 3, named  # paused's second, reset's second, skipping
    assert "face reset/0" in named and "from seq 5, 5 rows, begun 0.100 s after the face's previous session, " \
        "no summary" in named, named
    assert "face skipping/0" in named and "3 rows out of count" in named, named
    assert "summary says 2 frames" in named, named


def test_lost_frames_are_told_as_runs_of_offsets_per_partition():
    from facestream.chaos.verdict import offset_runs

    assert offset_runs([]) == []
    assert offset_runs([(1, 7), (0, 3), (1, 5), (1, 6), (0, 4), (1, 9)]) == [(0, 3, 4), (1, 5, 7), (1, 9, 9)]


@pytest.mark.integration
def test_a_frame_without_a_row_is_put_down_to_the_part_that_committed_past_it(
        make_settings, database_url, wolfgang_frames):
    from kafka import KafkaProducer

    from facestream.chaos.verdict import judge

    s = make_settings(partitions=1)
    frames = [f for f in wolfgang_frames if f.track_id == 0][:3]
    results = [_row(f.session_id, f.seq, f.capture_ms, frames[0].capture_ms, i) for i, f in enumerate(frames)]
    assert [r.face_key for r in results] == [f.key for f in frames]
    producer = KafkaProducer(bootstrap_servers=s.bootstrap, acks="all")
    for f in frames:  # all three acknowledged (offsets 0-2) ...
        producer.send(s.frames_topic, key=f.key.encode(), value=f.encode())
    for r in results[:2]:  # ... the worker delivered two results (offsets 0-1) ...
        producer.send(s.results_topic, key=r.session_id.encode(), value=r.encode())
    producer.flush()
    producer.close()
    with connect(database_url) as conn:  # ... and the store kept the first
        migrate(conn)
        StoreWriter(conn).write(results[:1], [])

    done = judge(s, database_url, {}, [], committed=({0: 3}, {0: 2}))
    assert (done.frames, done.rows, done.lost, done.lost_by_sink, done.pending) == (3, 1, 2, 1, 0)
    assert any("1 lost by the worker (no result on the results topic), 1 by the sink" in p for p in done.problems), \
        done.problems

    # Nobody committed past the second and third: they were still on their way, not lost.
    behind = judge(s, database_url, {}, [], committed=({0: 2}, {0: 1}))
    assert (behind.lost, behind.lost_by_sink, behind.pending) == (0, 0, 2)
