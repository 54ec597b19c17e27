"""The Mojo wire protocol's payloads, converted to and from facestream records. Pure functions.

Client -> server ``facemesh``::

    {"facemesh": [[x*w, y*h, z*w], ... 478] | [], "timestamp": ISO-8601, "output": [cue, ...]}

Server -> client ``calculation``: the requested cues only. Value forms (docs/socketio.md):

    amusement, surprise, confusion, attention: float in [0, 1]
    engagement:  {"value": float in [0, 1], "status": engaging | engaged | disengaging | idle}
    interaction: {"status": idle | possible | ready | in_short_interruption | in_long_interruption}
    emotions:    {neutral, happy, sad, surprise, angry, fear, disgust: float}  (facestream extension)
    emotion:     the most probable of the 7                                     (facestream extension)
"""

from __future__ import annotations

import math
import time
from datetime import datetime, timezone
from typing import Any

import numpy as np

from schemas import FaceResult, LandmarkFrame
from schemas.vocabulary import EMOTIONS, FRAME_CUES, NUM_LANDMARKS
from schemas.vocabulary import MOJO_OUTPUTS as CUES

EXTRA = ("emotions", "emotion")
OUTPUTS = CUES + EXTRA


class EventError(ValueError):
    """A facemesh event the gateway cannot use; the message says what to fix."""


def parse_timestamp(value: Any, now_ms: int | None = None) -> int:
    """ISO-8601 (or epoch milliseconds) -> epoch ms; missing -> now."""
    if value is None:
        return int(time.time() * 1000) if now_ms is None else now_ms
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        return int(value)
    if not isinstance(value, str):
        raise EventError(f"timestamp must be an ISO-8601 string, got {type(value).__name__}")
    try:
        dt = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise EventError(f"timestamp {value[:40]!r} is not ISO-8601 (e.g. 2024-05-01T12:00:00.000Z)") from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return int(dt.timestamp() * 1000)


def parse_outputs(value: Any) -> tuple[str, ...]:
    if value is None:
        return CUES
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise EventError("output must be a list of cue names")
    unknown = [v for v in value if v not in OUTPUTS]
    if unknown:
        raise EventError(f"unknown outputs {unknown[:5]}; known: {', '.join(OUTPUTS)}")
    return tuple(dict.fromkeys(value))


def facemesh_points(value: Any) -> np.ndarray | None:
    """The 478 pixel-unit points as [478, 3] float32, or None for ``[]`` (no face)."""
    if not isinstance(value, list):
        raise EventError(f"facemesh must be a list of {NUM_LANDMARKS} [x, y, z] points, got {type(value).__name__}")
    if not value:
        return None
    if len(value) != NUM_LANDMARKS:
        raise EventError(f"facemesh has {len(value)} points, expected {NUM_LANDMARKS} (or [] for no face)")
    try:
        pts = np.array(value, dtype=np.float32)
    except (TypeError, ValueError):
        raise EventError("facemesh points must be numbers") from None
    if pts.shape not in ((NUM_LANDMARKS, 3), (NUM_LANDMARKS, 2)):
        raise EventError(f"facemesh points must be [x, y, z] triples, got shape {pts.shape}")
    if pts.shape[1] == 2:
        pts = np.concatenate([pts, np.zeros((NUM_LANDMARKS, 1), np.float32)], axis=1)
    if not np.isfinite(pts).all():
        raise EventError("facemesh contains NaN or infinite coordinates")
    return pts


def to_frame(points_px: np.ndarray, *, session_id: str, namespace: str, seq: int, capture_ms: int,
             width: int | None = None, height: int | None = None) -> LandmarkFrame:
    """A LandmarkFrame from Mojo's pixel-unit points. Without the image size, a square frame just
    large enough for the points is assumed: the features are invariant to that choice (the
    blendshape model and the pose alignment see the same pixel geometry)."""
    if width is None or height is None:
        side = int(max(1.0, math.ceil(float(np.abs(points_px[:, :2]).max())) + 1))
        width = height = side
    norm = points_px / np.array([width, height, width], np.float32)
    return LandmarkFrame(session_id=session_id, device_id=namespace, track_id=0, seq=seq,
                         capture_ms=capture_ms, width=width, height=height, landmarks=norm)


def calculation(r: FaceResult, outputs: tuple[str, ...]) -> dict[str, Any]:
    """The ``calculation`` event for one result: exactly the requested outputs."""
    out: dict[str, Any] = {}
    for name in outputs:
        if name in FRAME_CUES:
            out[name] = round(float(getattr(r, name)), 4)
        elif name == "engagement":
            out[name] = {"value": round(float(r.engagement), 4), "status": r.engagement_phase}
        elif name == "interaction":
            out[name] = {"status": r.interaction_status}
        elif name == "emotions":
            out[name] = {e: round(float(p), 4) for e, p in zip(EMOTIONS, r.emotions)}
        elif name == "emotion":
            out[name] = r.emotion
    return out
