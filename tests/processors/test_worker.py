"""The stream worker as a real process against a real broker, fed by the real edge producer."""

from __future__ import annotations

import signal
import time

import pytest
from kafka import KafkaConsumer, KafkaProducer

from infra import assets
from producers.publish import Publisher, produce
from producers.sources import VideoSource
from schemas.vocabulary import EMOTIONS, PHASES, STATUSES

pytestmark = pytest.mark.integration


def _by_seq(results, session_id):
    return {r.seq: r for r in results if r.session_id == session_id}


def test_video_replay_gives_one_result_per_face_frame_and_a_summary(make_settings, start_worker, collect):
    s = make_settings(session_gap_s=2.0)
    worker = start_worker(s)
    sid, stats = produce(VideoSource(assets.media("WolfgangLanger_Pexels.mp4")), s, show_progress=False)
    assert stats.frames == 472
    assert stats.face_frames >= 460, "MediaPipe finds the actress in nearly every frame"
    assert len(stats.tracks) == 1, "one face, one stable track id"

    results, summaries = collect(s, lambda r, sm: any(x.session_id == sid for x in sm), timeout_s=120)
    mine = [r for r in results if r.session_id == sid]
    assert len(mine) == stats.face_frames
    assert len({(r.face_key, r.seq) for r in mine}) == stats.face_frames, "exactly one result each"
    for r in mine:
        for cue in ("amusement", "surprise", "confusion", "attention", "engagement"):
            assert 0.0 <= getattr(r, cue) <= 1.0, (cue, r.seq)
        assert r.engagement_phase in PHASES and r.interaction_status in STATUSES
        assert len(r.blendshapes) == 52 and all(0.0 <= b <= 1.0 for b in r.blendshapes)
        assert -90 <= r.yaw <= 90 and -90 <= r.pitch <= 90
        assert len(r.emotions) == 7 and abs(sum(r.emotions) - 1) < 1e-3 and min(r.emotions) >= 0
        assert r.emotion == EMOTIONS[max(range(7), key=r.emotions.__getitem__)]
        assert r.processed_ms >= r.capture_ms - 60_000
    # The actress laughs in frames 300-470: the landmark student sees mostly "happy" there.
    laughing = [r.emotion for r in mine if r.seq >= 300]
    assert laughing.count("happy") > 0.6 * len(laughing)
    frames_idx = sorted(r.session_frame for r in mine)
    assert frames_idx == list(range(len(mine))), "session frame index counts every frame once"

    (summary,) = [x for x in summaries if x.session_id == sid]
    assert summary.frames == stats.face_frames
    assert summary.started_ms == min(r.capture_ms for r in mine)
    assert summary.ended_ms == max(r.capture_ms for r in mine)
    assert summary.closed_reason == "inactivity"
    assert abs(summary.mean_attention - sum(r.attention for r in mine) / len(mine)) < 1e-4
    assert "Traceback" not in worker.output()


def test_no_face_video_gives_no_results_and_garbage_goes_to_dead_letters(make_settings, start_worker, collect):
    s = make_settings()
    worker = start_worker(s)
    sid, stats = produce(VideoSource(assets.media("no_face.mp4")), s, show_progress=False)
    assert stats.frames > 0 and stats.face_frames == 0
    producer = KafkaProducer(bootstrap_servers=s.bootstrap)
    producer.send(s.frames_topic, key=b"x/0", value=b"not avro at all").get(30)
    producer.close()

    consumer = KafkaConsumer(s.dead_letter_topic, bootstrap_servers=s.bootstrap,
                             auto_offset_reset="earliest", consumer_timeout_ms=30_000)
    dead = next(iter(consumer))
    consumer.close()
    assert dead.value == b"not avro at all"
    assert dict(dead.headers)["reason"] == b"bad_header"

    results, _ = collect(s, lambda r, sm: False, timeout_s=3)
    assert [r for r in results if r.session_id == sid] == []
    assert worker.proc.poll() is None, "the worker keeps running"
    assert "Traceback" not in worker.output()


def test_killed_worker_resumes_the_face_session_from_the_changelog(
        make_settings, start_worker, collect, wolfgang_frames):
    # Static membership: the replacement takes the killed worker's place at once (without it the
    # group waits for the dead member; noida-db then never completes that rebalance).
    s = make_settings(session_gap_s=120.0, worker_instance_id="worker-0")
    first = start_worker(s)
    frames = [f for f in wolfgang_frames if f.track_id == 0]
    split = 200
    publisher = Publisher(s)
    for f in frames[:split]:
        publisher.send(f)
    publisher.flush()
    sid = frames[0].session_id
    results, _ = collect(s, lambda r, sm: len(_by_seq(r, sid)) >= split, timeout_s=90)
    before = _by_seq(results, sid)
    assert len(before) == split
    time.sleep(2.0)  # let the last changelog writes land before the kill
    first.kill()  # SIGKILL: no clean shutdown, no final commit

    start_worker(s)
    for f in frames[split:]:
        publisher.send(f)
    publisher.flush()
    publisher.close()
    results, _ = collect(s, lambda r, sm: len(_by_seq(r, sid)) >= len(frames), timeout_s=120)
    after = _by_seq(results, sid)
    assert set(after) == {f.seq for f in frames}, "every face-frame has a result"

    resumed = after[frames[split].seq]
    last = before[frames[split - 1].seq]
    assert resumed.session_frame == split, "the session continued, it did not restart at 0"
    assert resumed.session_started_ms == before[frames[0].seq].session_started_ms
    assert resumed.blinks >= last.blinks
    # A fresh session starts its engagement at 0; a resumed one carries on smoothly.
    assert abs(resumed.engagement - last.engagement) < 0.1


def test_stopped_worker_commits_everything_so_a_successor_replays_nothing(
        make_settings, start_worker, collect, wolfgang_frames):
    # A clean stop (SIGTERM) flushes the changelog and commits every processed offset: the next
    # worker neither re-emits results nor loses the session (commits otherwise come every 0.2 s).
    s = make_settings(session_gap_s=120.0, worker_instance_id="worker-0", commit_interval_s=30.0)
    first = start_worker(s)
    frames = [f for f in wolfgang_frames if f.track_id == 0][:120]
    publisher = Publisher(s)
    for f in frames[:100]:
        publisher.send(f)
    publisher.flush()
    sid = frames[0].session_id
    collect(s, lambda r, sm: len(_by_seq(r, sid)) >= 100, timeout_s=90)
    first.kill(signal.SIGTERM)
    assert first.proc.returncode == 0, first.output()[-2000:]

    start_worker(s)
    for f in frames[100:]:
        publisher.send(f)
    publisher.flush()
    publisher.close()
    results, _ = collect(s, lambda r, sm: len(_by_seq(r, sid)) >= len(frames), timeout_s=90, quiet_s=3.0)
    mine = [r for r in results if r.session_id == sid]
    assert len(mine) == len(frames), "no frame was processed twice"
    assert _by_seq(mine, sid)[frames[100].seq].session_frame == 100, "the session went on"


def test_a_summary_the_broker_refuses_is_sent_again_and_the_worker_stays_up(
        make_settings, start_worker, collect, wolfgang_frames, refuse_over):
    """A Faust timer that raises stops the whole worker: the idle-session sweep raised when a
    summary could not be delivered, and every calculation stopped with it."""
    s = make_settings(session_gap_s=2.0)
    worker = start_worker(s)
    refuse_over(s, s.summaries_topic, 100)  # a summary is a few hundred bytes
    frames = [f for f in wolfgang_frames if f.track_id == 0][:30]
    publisher = Publisher(s)
    for f in frames:
        publisher.send(f)
    publisher.close()
    sid = frames[0].session_id
    collect(s, lambda r, sm: len(_by_seq(r, sid)) >= len(frames), timeout_s=60)
    deadline = time.monotonic() + 30
    while worker.output().count("closing idle sessions failed") < 2 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert worker.output().count("closing idle sessions failed") >= 2, worker.output()[-3000:]
    assert worker.proc.poll() is None, "the worker keeps running"
    refuse_over(s, s.summaries_topic, 16 << 20)

    _, summaries = collect(s, lambda r, sm: any(x.session_id == sid for x in sm), timeout_s=30, quiet_s=3.0)
    mine = [x for x in summaries if x.session_id == sid]
    assert len(mine) == 1 and mine[0].frames == len(frames), mine


def test_a_frozen_worker_does_not_close_the_sessions_whose_frames_went_on(make_settings, start_worker, collect,
                                                                          wolfgang_frames):
    """Found by freezing a worker in a chaos run (as a VM pause or a starved process does): when it
    woke, its idle-session sweep ran before it had fetched what came meanwhile, judged its partitions
    quiet by the ends its consumer last fetched, and closed every session; each face started again
    on its next frame."""
    import dataclasses

    s = make_settings(session_gap_s=2.0, consumer_session_timeout_s=6.0)  # the least a broker takes
    worker = start_worker(s)
    face = [f for f in wolfgang_frames if f.track_id == 0]
    publisher = Publisher(s)
    sent = 0

    def stream(seconds: float) -> None:  # the face goes on at 30 Hz, numbered on from where it was
        nonlocal sent
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            publisher.send(dataclasses.replace(face[sent % len(face)], seq=sent,
                                               capture_ms=int(time.time() * 1000)))
            sent += 1
            time.sleep(1 / 30)
        publisher.flush()

    sid = face[0].session_id
    stream(2.0)
    # Longer than a gap and than the group's session timeout (the group drops the worker, which
    # rejoins when it wakes, as the chaos run's starved worker did); the frames keep coming.
    worker.proc.send_signal(signal.SIGSTOP)
    try:
        stream(9.0)
    finally:
        worker.proc.send_signal(signal.SIGCONT)
    stream(3.0)
    publisher.close()
    results, summaries = collect(s, lambda r, sm: len(_by_seq(r, sid)) >= sent, timeout_s=90, quiet_s=1.0)
    got = _by_seq(results, sid)
    assert set(got) == set(range(sent))
    starts = {r.session_started_ms for r in got.values()}
    assert len(starts) == 1, f"the face's session was closed and started again: {len(starts)} sessions"
    assert not [m for m in summaries if m.session_id == sid], "no summary while the face's frames went on"
