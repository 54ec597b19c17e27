"""Typed records for the three Avro contracts, with their validation.

The Avro schemas in this package are the contract; these classes are the Python view of it.
Landmarks travel as 478 x 3 float32 bytes and are exposed as numpy arrays.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from schemas.codec import FACE_RESULT, LANDMARK_FRAME, SESSION_SUMMARY, RecordKind, decode, encode
from schemas.errors import BadTimestamp, InvalidRecord, NonFinite, OutOfRange, WrongShape
from schemas.vocabulary import EMOTIONS, NUM_BLENDSHAPES, NUM_LANDMARKS

LANDMARK_BYTES = NUM_LANDMARKS * 3 * 4
# Normalised coordinates of a face partly outside the image may leave [0, 1] a little;
# anything far outside is a unit error (pixels sent as normalised) or garbage.
COORD_LIMIT = 4.0
# Frames from the future beyond clock skew, or from before 2001, are refused.
MAX_FUTURE_MS = 5 * 60 * 1000
MIN_CAPTURE_MS = 978307200000
MAX_SIDE = 16384


def face_key(session_id: str, track_id: int) -> str:
    """The per-face session key: partitioning key of frames and key of processor state."""
    return f"{session_id}/{track_id}"


@dataclass
class LandmarkFrame:
    session_id: str
    device_id: str
    track_id: int
    seq: int
    capture_ms: int
    width: int
    height: int
    landmarks: np.ndarray  # [478, 3] float32, normalised
    blendshapes: np.ndarray | None = None  # [52] float32
    transform: np.ndarray | None = None  # [4, 4] float32
    box: tuple[float, float, float, float] | None = None  # x, y, w, h normalised
    detection_score: float | None = None
    teacher: np.ndarray | None = None  # [7] image-teacher probabilities, EMOTIONS order

    kind: ClassVar[RecordKind] = LANDMARK_FRAME

    @property
    def key(self) -> str:
        return face_key(self.session_id, self.track_id)

    def validate(self, now_ms: int | None = None) -> "LandmarkFrame":
        """Raise InvalidRecord naming the first problem found; return self if valid."""
        if not self.session_id:
            raise InvalidRecord("session_id is empty")
        if self.track_id < 0 or self.seq < 0:
            raise InvalidRecord(f"track_id ({self.track_id}) and seq ({self.seq}) must be >= 0")
        if not (0 < self.width <= MAX_SIDE and 0 < self.height <= MAX_SIDE):
            raise OutOfRange(f"image size {self.width}x{self.height} is outside 1..{MAX_SIDE}")
        now_ms = int(time.time() * 1000) if now_ms is None else now_ms
        if not MIN_CAPTURE_MS <= self.capture_ms <= now_ms + MAX_FUTURE_MS:
            raise BadTimestamp(
                f"capture_ms {self.capture_ms} is not a plausible epoch-milliseconds time "
                f"(now is {now_ms}); send milliseconds since 1970-01-01 UTC"
            )
        lm = self.landmarks
        if lm.shape != (NUM_LANDMARKS, 3):
            raise WrongShape(f"landmarks have shape {lm.shape}, expected ({NUM_LANDMARKS}, 3)")
        if not np.isfinite(lm).all():
            raise NonFinite("landmarks contain NaN or infinite values")
        if np.abs(lm).max() > COORD_LIMIT:
            raise OutOfRange(
                f"landmark coordinate {float(np.abs(lm).max()):.3g} is far outside the normalised "
                "range [0, 1]: were pixel coordinates sent without dividing by width/height?"
            )
        if self.blendshapes is not None:
            bs = self.blendshapes
            if bs.shape != (NUM_BLENDSHAPES,) or not np.isfinite(bs).all():
                raise WrongShape(f"blendshapes must be {NUM_BLENDSHAPES} finite scores, got shape {bs.shape}")
        if self.transform is not None and (self.transform.shape != (4, 4) or not np.isfinite(self.transform).all()):
            raise WrongShape("transform must be a finite 4x4 matrix")
        if self.detection_score is not None and not (0.0 <= self.detection_score <= 1.0):
            raise OutOfRange(f"detection_score {self.detection_score} is outside [0, 1]")
        if self.teacher is not None:
            t = self.teacher
            if t.shape != (len(EMOTIONS),) or not np.isfinite(t).all() or (t < 0).any() or abs(float(t.sum()) - 1) > 1e-3:
                raise InvalidRecord(f"teacher must be {len(EMOTIONS)} probabilities summing to 1 "
                                    f"({', '.join(EMOTIONS)})")
        return self

    def to_avro(self) -> dict[str, Any]:
        return {
            "session_id": self.session_id,
            "device_id": self.device_id,
            "track_id": int(self.track_id),
            "seq": int(self.seq),
            "capture_ms": int(self.capture_ms),
            "width": int(self.width),
            "height": int(self.height),
            "landmarks": np.ascontiguousarray(self.landmarks, dtype="<f4").tobytes(),
            "blendshapes": None if self.blendshapes is None else self.blendshapes.astype(float).tolist(),
            "transform": None if self.transform is None else self.transform.reshape(-1).astype(float).tolist(),
            "box": None if self.box is None else dict(zip("xywh", map(float, self.box))),
            "detection_score": None if self.detection_score is None else float(self.detection_score),
            "teacher": None if self.teacher is None else self.teacher.astype(float).tolist(),
        }

    @classmethod
    def from_avro(cls, rec: dict[str, Any]) -> "LandmarkFrame":
        raw = rec["landmarks"]
        if len(raw) != LANDMARK_BYTES:
            raise WrongShape(
                f"landmarks field has {len(raw)} bytes, expected {LANDMARK_BYTES} "
                f"({NUM_LANDMARKS} points x 3 float32)"
            )
        bs, tf, box = rec.get("blendshapes"), rec.get("transform"), rec.get("box")
        if tf is not None and len(tf) != 16:
            raise WrongShape(f"transform has {len(tf)} values, expected 16")
        if bs is not None and len(bs) != NUM_BLENDSHAPES:
            raise WrongShape(f"blendshapes has {len(bs)} values, expected {NUM_BLENDSHAPES}")
        return cls(
            session_id=rec["session_id"],
            device_id=rec["device_id"],
            track_id=rec["track_id"],
            seq=rec["seq"],
            capture_ms=rec["capture_ms"],
            width=rec["width"],
            height=rec["height"],
            landmarks=np.frombuffer(raw, dtype="<f4").reshape(NUM_LANDMARKS, 3),
            blendshapes=None if bs is None else np.asarray(bs, dtype=np.float32),
            transform=None if tf is None else np.asarray(tf, dtype=np.float32).reshape(4, 4),
            box=None if box is None else (box["x"], box["y"], box["w"], box["h"]),
            detection_score=rec.get("detection_score"),
            teacher=None if rec.get("teacher") is None else np.asarray(rec["teacher"], dtype=np.float32),
        )

    def encode(self) -> bytes:
        return encode(LANDMARK_FRAME, self.to_avro())

    @classmethod
    def decode(cls, payload: bytes, *, validate: bool = True) -> "LandmarkFrame":
        frame = cls.from_avro(decode(payload, expect=LANDMARK_FRAME))
        return frame.validate() if validate else frame


@dataclass
class _DictRecord:
    """Records whose fields map 1:1 to their Avro schema."""

    kind: ClassVar[RecordKind]

    def to_avro(self) -> dict[str, Any]:
        return dict(self.__dict__)

    def encode(self) -> bytes:
        return encode(self.kind, self.to_avro())

    @classmethod
    def decode(cls, payload: bytes):  # -> Self
        return cls(**decode(payload, expect=cls.kind))


@dataclass
class FaceResult(_DictRecord):
    session_id: str
    device_id: str
    track_id: int
    face_key: str
    seq: int
    capture_ms: int
    processed_ms: int
    session_started_ms: int
    session_frame: int
    blendshapes: list[float]
    yaw: float
    pitch: float
    roll: float
    gaze_x: float
    gaze_y: float
    eye_openness: float
    blink: bool
    blinks: int
    amusement: float
    surprise: float
    confusion: float
    attention: float
    engagement: float
    engagement_phase: str
    interaction_status: str
    emotions: list[float] = field(default_factory=list)  # 7, EMOTIONS order ([] in v1 records)
    emotion: str = ""
    teacher: list[float] | None = None

    kind: ClassVar[RecordKind] = FACE_RESULT


@dataclass
class SessionSummary(_DictRecord):
    session_id: str
    device_id: str
    track_id: int
    face_key: str
    started_ms: int
    ended_ms: int
    closed_ms: int
    frames: int
    blinks: int
    engaged_s: float
    mean_amusement: float
    mean_surprise: float
    mean_confusion: float
    mean_attention: float
    mean_engagement: float
    max_amusement: float
    max_surprise: float
    max_confusion: float
    closed_reason: str = "inactivity"

    kind: ClassVar[RecordKind] = SESSION_SUMMARY
