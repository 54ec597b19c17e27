import json
import struct
import time
from pathlib import Path

import numpy as np
import pytest

from schemas import FaceResult, LandmarkFrame, SessionSummary
from schemas.codec import LANDMARK_FRAME, MAGIC, RecordKind, decode, encode
from schemas.errors import (
    BadHeader,
    CorruptBody,
    EmptyPayload,
    InvalidRecord,
    PayloadError,
    UnknownRecordKind,
    UnknownSchemaVersion,
)


def frame(**kw) -> LandmarkFrame:
    rng = np.random.default_rng(0)
    base = dict(session_id="s1", device_id="dev", track_id=2, seq=7, capture_ms=int(time.time() * 1000),
                width=640, height=360, landmarks=rng.random((478, 3), dtype=np.float32),
                blendshapes=rng.random(52, dtype=np.float32), transform=np.eye(4, dtype=np.float32),
                box=(0.25, 0.5, 0.125, 0.25), detection_score=0.5)
    base.update(kw)
    return LandmarkFrame(**base)


def test_landmark_frame_round_trip_is_exact():
    f = frame()
    g = LandmarkFrame.decode(f.encode())
    assert np.array_equal(g.landmarks, f.landmarks)
    assert np.array_equal(g.blendshapes, f.blendshapes)
    assert np.array_equal(g.transform, f.transform)
    assert (g.session_id, g.track_id, g.seq, g.capture_ms, g.box, g.detection_score) == (
        "s1", 2, 7, f.capture_ms, (0.25, 0.5, 0.125, 0.25), 0.5)
    assert g.key == "s1/2"


def test_landmark_frame_optional_fields_may_be_absent():
    f = frame(blendshapes=None, transform=None, box=None, detection_score=None)
    g = LandmarkFrame.decode(f.encode())
    assert g.blendshapes is None and g.transform is None and g.box is None and g.detection_score is None


def test_landmarks_are_compact():
    # 478 x 3 float32 plus a few dozen bytes of header and metadata, without optional fields.
    assert len(frame(blendshapes=None, transform=None).encode()) < 478 * 3 * 4 + 120


def test_result_and_summary_round_trip():
    r = FaceResult(session_id="s", device_id="d", track_id=0, face_key="s/0", seq=1, capture_ms=1,
                   processed_ms=2, session_started_ms=1, session_frame=0, blendshapes=[0.5] * 52,
                   yaw=1.5, pitch=-2.5, roll=0.0, gaze_x=0.25, gaze_y=0.0, eye_openness=0.25,
                   blink=True, blinks=3, amusement=0.5, surprise=0.25, confusion=0.0, attention=1.0,
                   engagement=0.5, engagement_phase="engaging", interaction_status="possible")
    assert FaceResult.decode(r.encode()) == r
    s = SessionSummary(session_id="s", device_id="d", track_id=0, face_key="s/0", started_ms=1,
                       ended_ms=2, closed_ms=3, frames=4, blinks=1, engaged_s=0.5, mean_amusement=0.5,
                       mean_surprise=0.25, mean_confusion=0.0, mean_attention=1.0, mean_engagement=0.5,
                       max_amusement=1.0, max_surprise=0.5, max_confusion=0.0)
    assert SessionSummary.decode(s.encode()) == s


def test_header_names_kind_and_version():
    payload = frame().encode()
    assert payload[0] == MAGIC
    assert struct.unpack(">BH", payload[1:4]) == (LANDMARK_FRAME.code, LANDMARK_FRAME.latest)


@pytest.mark.parametrize(
    "payload, error, words",
    [
        (b"", EmptyPayload, "empty"),
        (b"\xfa\x01", BadHeader, "shorter than the 4-byte header"),
        (b"{\"json\": true}", BadHeader, "not a facestream record"),
        (bytes([MAGIC, 9, 0, 1]) + b"xx", UnknownRecordKind, "kind 9"),
        (bytes([MAGIC, 1, 0, 99]) + b"xx", UnknownSchemaVersion, "version 99"),
    ],
)
def test_bad_headers_are_refused_with_a_reason(payload, error, words):
    with pytest.raises(error, match=words):
        LandmarkFrame.decode(payload)


def test_truncated_body_is_refused():
    payload = frame().encode()
    with pytest.raises(PayloadError) as exc:
        LandmarkFrame.decode(payload[: len(payload) // 2])
    assert exc.value.reason in {"corrupt_body", "invalid_record"}


def test_trailing_bytes_are_refused():
    with pytest.raises(CorruptBody, match="trailing"):
        LandmarkFrame.decode(frame().encode() + b"\x00\x01")


def test_wrong_record_kind_is_refused():
    s = SessionSummary(session_id="s", device_id="d", track_id=0, face_key="s/0", started_ms=1,
                       ended_ms=2, closed_ms=3, frames=4, blinks=1, engaged_s=0.5, mean_amusement=0.5,
                       mean_surprise=0.25, mean_confusion=0.0, mean_attention=1.0, mean_engagement=0.5,
                       max_amusement=1.0, max_surprise=0.5, max_confusion=0.0)
    with pytest.raises(UnknownRecordKind, match="expected a landmark_frame record, got a session_summary"):
        LandmarkFrame.decode(s.encode())


def _with_landmark_bytes(raw: bytes) -> bytes:
    rec = frame().to_avro()
    rec["landmarks"] = raw
    return encode(LANDMARK_FRAME, rec)


def test_wrong_landmark_count_is_refused():
    with pytest.raises(InvalidRecord, match="expected 5736"):
        LandmarkFrame.decode(_with_landmark_bytes(np.zeros((468, 3), "<f4").tobytes()))


@pytest.mark.parametrize("bad, words", [(np.nan, "NaN or infinite"), (np.inf, "NaN or infinite"),
                                        (640.0, "pixel coordinates")])
def test_non_finite_or_absurd_coordinates_are_refused(bad, words):
    lm = np.full((478, 3), 0.5, "<f4")
    lm[10, 0] = bad
    with pytest.raises(InvalidRecord, match=words):
        LandmarkFrame.decode(_with_landmark_bytes(lm.tobytes()))


def test_implausible_timestamps_are_refused():
    future = frame(capture_ms=int(time.time() * 1000) + 24 * 3600 * 1000)
    with pytest.raises(InvalidRecord, match="capture_ms"):
        LandmarkFrame.decode(future.encode())
    seconds_not_ms = frame(capture_ms=int(time.time()))
    with pytest.raises(InvalidRecord, match="milliseconds"):
        LandmarkFrame.decode(seconds_not_ms.encode())


def test_unencodable_record_is_a_typed_error():
    rec = frame().to_avro()
    rec["track_id"] = "two"
    with pytest.raises(InvalidRecord, match="cannot encode landmark_frame"):
        encode(LANDMARK_FRAME, rec)


def test_old_versions_stay_readable_after_a_schema_evolves():
    """v1 LandmarkFrames (no teacher) and FaceResults (no emotions) decode with today's v2."""
    assert LANDMARK_FRAME.latest == 2
    old = encode(LANDMARK_FRAME, {k: v for k, v in frame().to_avro().items() if k != "teacher"}, version=1)
    rec = LandmarkFrame.decode(old)
    assert rec.teacher is None and rec.session_id == "s1"
    new = LandmarkFrame(**{**frame().__dict__, "teacher": np.full(7, 1 / 7, np.float32)}).encode()
    assert np.allclose(LandmarkFrame.decode(new).teacher, 1 / 7)


def test_a_newer_version_than_the_reader_knows_is_refused(tmp_path: Path):
    v2 = json.loads((Path(LANDMARK_FRAME.directory) / "landmark_frame.v2.avsc").read_text())
    v3 = json.loads(json.dumps(v2))
    v3["fields"].append({"name": "extra", "type": ["null", "string"], "default": None})
    for version, schema in ((2, v2), (3, v3)):
        (tmp_path / f"landmark_frame.v{version}.avsc").write_text(json.dumps(schema))
    evolved = RecordKind(LANDMARK_FRAME.code, "landmark_frame", tmp_path)
    new = encode(evolved, {**frame().to_avro(), "extra": "x"})
    assert decode(new, expect=evolved)["extra"] == "x"
    with pytest.raises(UnknownSchemaVersion, match="upgrade facestream"):
        decode(new)  # today's reader does not know v3
