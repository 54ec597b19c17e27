"""Landmark-only inputs of the emotion student, and the transparent rules baseline.

Pure functions; shapes are documented per function. The student sees, per face-frame:

* ``shape``: 40 expression-bearing landmarks (brows, eyes, nose, lips, chin) after removing head
  rotation, position and size (aligned to MediaPipe's canonical face), minus the canonical
  face's own points: how this face deviates from a neutral face, in canonical-face units.
* the 52 blendshapes;
* ``delta``: blendshapes minus their exponential moving average over the face's recent frames
  (time constant ``DELTA_TAU_S``): what is changing now. Zero for a still image.
"""

from __future__ import annotations

import numpy as np

from processors.cues import B
from processors.features.pose import _FLIP, CANONICAL, rotation_to_face
from schemas.records import EMOTIONS

# Brows (10), eyes (8), nose (4), lips (14), chin and cheeks (4).
SHAPE_POINTS = np.array([
    70, 63, 105, 66, 107, 336, 296, 334, 293, 300,
    33, 133, 159, 145, 263, 362, 386, 374,
    1, 4, 98, 327,
    61, 291, 0, 17, 13, 14, 78, 308, 82, 312, 87, 317, 40, 270,
    152, 205, 425, 199,
], dtype=np.int64)
DELTA_TAU_S = 0.3
NUM_FEATURES = 3 * len(SHAPE_POINTS) + 52 + 52


def _normalised(points: np.ndarray) -> np.ndarray:
    """[..., K, 3] -> centred and scaled to unit RMS radius."""
    c = points - points.mean(axis=-2, keepdims=True)
    # A degenerate cloud (all points equal) has no scale: leave it at zero rather than NaN.
    radius = np.maximum(np.sqrt((c**2).sum(axis=-1).mean(axis=-1)), 1e-9)
    return c / radius[..., None, None]


_CANONICAL_SHAPE = _normalised(CANONICAL[SHAPE_POINTS])


def aligned_shape(points_px: np.ndarray, rotation: np.ndarray | None = None) -> np.ndarray:
    """[N, 478, 3] pixel-space landmarks (and their [N, 3, 3] face rotation, if already known)
    -> [N, 120]: the SHAPE_POINTS in the canonical face's frame, unit RMS radius, minus the
    canonical face's own points."""
    p = np.asarray(points_px, dtype=np.float64)
    if len(p) == 0:
        return np.zeros((0, 3 * len(SHAPE_POINTS)), np.float32)
    r = rotation_to_face(p) if rotation is None else rotation
    q = p[:, SHAPE_POINTS, :] * _FLIP
    # points ~ s R c + t, so with row vectors c ~ (p - t) R / s.
    local = np.einsum("nki,nij->nkj", q - q.mean(axis=1, keepdims=True), r)
    return (_normalised(local) - _CANONICAL_SHAPE).reshape(len(p), -1).astype(np.float32)


def update_average(average: np.ndarray | None, blendshapes: np.ndarray, dt_s: float,
                   tau_s: float = DELTA_TAU_S) -> np.ndarray:
    """One step of a face's blendshape moving average ([52] each); the first frame starts it."""
    if average is None:
        return np.asarray(blendshapes, np.float32).copy()
    a = 1.0 - np.exp(-max(dt_s, 0.0) / tau_s)
    return (average + a * (blendshapes - average)).astype(np.float32)


def sequence_deltas(blendshapes: np.ndarray, times_ms: np.ndarray, tau_s: float = DELTA_TAU_S) -> np.ndarray:
    """[T, 52] blendshapes of one face's frames in time order, [T] capture times -> [T, 52]
    blendshapes minus their moving average *before* each frame (0 for the first frame)."""
    out = np.zeros_like(blendshapes, dtype=np.float32)
    avg = None
    prev_t = None
    for i, (bs, t) in enumerate(zip(blendshapes, times_ms)):
        if avg is not None:
            out[i] = bs - avg
        avg = update_average(avg, bs, 0.0 if prev_t is None else (t - prev_t) / 1000.0, tau_s)
        prev_t = t
    return out


def student_features(shape: np.ndarray, blendshapes: np.ndarray, delta: np.ndarray) -> np.ndarray:
    """[N, 120] aligned shape, [N, 52] blendshapes, [N, 52] deltas -> [N, 224] float32."""
    return np.concatenate([shape, blendshapes, delta], axis=1).astype(np.float32)


def _m(bs: np.ndarray, *names: str) -> np.ndarray:
    return bs[:, [B[n] for n in names]].mean(axis=1)


def rules_baseline(blendshapes: np.ndarray) -> np.ndarray:
    """[N, 52] -> [N, 7] probabilities in EMOTIONS order, from hand-written FACS-style rules.

    Each emotion gets an evidence score in [0, 1] from the action units usually associated with
    it (happy: smile and cheek squint; sad: mouth-corner frown and inner-brow raise; surprise:
    brows up, eyes wide, jaw drop; angry: brows down, lips pressed; fear: inner brows up, eyes
    wide, mouth stretched; disgust: nose sneer, upper lip raised); neutral is 1 - the largest.
    The scores are normalised to sum to 1. It is the baseline the student must beat.
    """
    bs = np.asarray(blendshapes, np.float32)
    happy = np.clip(1.2 * _m(bs, "mouthSmileLeft", "mouthSmileRight") + 0.3 * _m(bs, "cheekSquintLeft", "cheekSquintRight"), 0, 1)
    sad = np.clip(1.5 * _m(bs, "mouthFrownLeft", "mouthFrownRight") + 0.6 * bs[:, B["browInnerUp"]]
                  + 0.5 * _m(bs, "mouthPressLeft", "mouthPressRight"), 0, 1) * (1 - happy)
    surprise = np.clip(0.8 * _m(bs, "browOuterUpLeft", "browOuterUpRight") + 1.5 * _m(bs, "eyeWideLeft", "eyeWideRight")
                       + 0.7 * bs[:, B["jawOpen"]], 0, 1) * (1 - happy)
    angry = np.clip(1.5 * _m(bs, "browDownLeft", "browDownRight") + 0.5 * _m(bs, "mouthPressLeft", "mouthPressRight"), 0, 1)
    fear = np.clip(0.6 * bs[:, B["browInnerUp"]] + 0.8 * _m(bs, "eyeWideLeft", "eyeWideRight")
                   + 0.8 * _m(bs, "mouthStretchLeft", "mouthStretchRight"), 0, 1) * (1 - happy)
    disgust = np.clip(1.5 * _m(bs, "noseSneerLeft", "noseSneerRight") + 1.0 * _m(bs, "mouthUpperUpLeft", "mouthUpperUpRight"), 0, 1) * (1 - happy)
    scores = np.stack([np.zeros(len(bs)), happy, sad, surprise, angry, fear, disgust], axis=1)
    scores[:, 0] = 1.0 - scores[:, 1:].max(axis=1)
    scores = np.clip(scores, 1e-3, None)
    assert scores.shape[1] == len(EMOTIONS)
    return (scores / scores.sum(axis=1, keepdims=True)).astype(np.float32)
