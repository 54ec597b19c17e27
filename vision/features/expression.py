"""Landmark-only inputs of the emotion student, and the transparent rules baseline.

Pure functions; shapes are documented per function. The student sees, per face-frame:

* ``mesh``: the 468 face-mesh landmarks after removing head rotation, position and size (aligned
  to MediaPipe's canonical face), minus the canonical face's own points: how this face deviates
  from a neutral face, in canonical-face units;
* the 52 blendshapes.

Both are defined for a single still image, so the student reads a photo and a video frame the
same way (it is trained on photos that people labelled).
"""

from __future__ import annotations

import numpy as np

from schemas.vocabulary import BLENDSHAPE_INDEX as B
from schemas.vocabulary import EMOTIONS, NUM_BLENDSHAPES
from vision.features.pose import _FLIP, CANONICAL, rotation_to_face

# Brows (10), eyes (8), nose (4), lips (14), chin and cheeks (4): the compact feature set the
# model card compares against the whole mesh.
SHAPE_POINTS = np.array([
    70, 63, 105, 66, 107, 336, 296, 334, 293, 300,
    33, 133, 159, 145, 263, 362, 386, 374,
    1, 4, 98, 327,
    61, 291, 0, 17, 13, 14, 78, 308, 82, 312, 87, 317, 40, 270,
    152, 205, 425, 199,
], dtype=np.int64)
MESH_POINTS = np.arange(len(CANONICAL), dtype=np.int64)  # 468: the irises carry no expression
NUM_FEATURES = 3 * len(MESH_POINTS) + NUM_BLENDSHAPES


def _normalised(points: np.ndarray) -> np.ndarray:
    """[..., K, 3] -> centred and scaled to unit RMS radius."""
    c = points - points.mean(axis=-2, keepdims=True)
    # A degenerate cloud (all points equal) has no scale: leave it at zero rather than NaN.
    radius = np.maximum(np.sqrt((c**2).sum(axis=-1).mean(axis=-1)), 1e-9)
    return c / radius[..., None, None]


_CANONICAL_SHAPES: dict[bytes, np.ndarray] = {}


def aligned_shape(points_px: np.ndarray, rotation: np.ndarray | None = None,
                  points: np.ndarray = SHAPE_POINTS) -> np.ndarray:
    """[N, 478, 3] pixel-space landmarks (and their [N, 3, 3] face rotation, if already known)
    -> [N, 3K]: the K ``points`` in the canonical face's frame, unit RMS radius, minus the
    canonical face's own points."""
    p = np.asarray(points_px, dtype=np.float64)
    if len(p) == 0:
        return np.zeros((0, 3 * len(points)), np.float32)
    key = points.tobytes()
    if key not in _CANONICAL_SHAPES:
        _CANONICAL_SHAPES[key] = _normalised(CANONICAL[points])
    r = rotation_to_face(p) if rotation is None else rotation
    q = p[:, points, :] * _FLIP
    # points ~ s R c + t, so with row vectors c ~ (p - t) R / s.
    local = np.einsum("nki,nij->nkj", q - q.mean(axis=1, keepdims=True), r)
    return (_normalised(local) - _CANONICAL_SHAPES[key]).reshape(len(p), -1).astype(np.float32)


def aligned_mesh(points_px: np.ndarray, rotation: np.ndarray | None = None) -> np.ndarray:
    """[N, 478, 3] pixel-space landmarks -> [N, 1404]: ``aligned_shape`` of all 468 mesh points."""
    return aligned_shape(points_px, rotation, MESH_POINTS)


def student_features(mesh: np.ndarray, blendshapes: np.ndarray) -> np.ndarray:
    """[N, 1404] aligned mesh, [N, 52] blendshapes -> [N, 1456] float32."""
    return np.concatenate([mesh, blendshapes], axis=1).astype(np.float32)


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
