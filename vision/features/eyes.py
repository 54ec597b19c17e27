"""Eye openness and gaze from MediaPipe's eye and iris landmarks.

"Left" and "right" are the subject's: the subject's right eye appears on the image's left.
Index sets are from MediaPipe's face mesh topology (eye contours) and iris model (468-477).
"""

from __future__ import annotations

import numpy as np

# (outer corner, inner corner, upper-lid points, lower-lid points facing them), per eye.
RIGHT_EYE = (33, 133, (160, 158), (144, 153))
LEFT_EYE = (263, 362, (387, 385), (373, 380))
RIGHT_IRIS = 468  # centre of the iris inside the RIGHT_EYE contour
LEFT_IRIS = 473


def _openness(p: np.ndarray, eye: tuple) -> np.ndarray:
    outer, inner, upper, lower = eye
    width = np.linalg.norm(p[:, outer, :2] - p[:, inner, :2], axis=1)
    gaps = np.linalg.norm(p[:, list(upper), :2] - p[:, list(lower), :2], axis=2).mean(axis=1)
    return gaps / np.maximum(width, 1e-6)


def eye_openness(points_px: np.ndarray) -> np.ndarray:
    """[N, 478, 3] pixel-space landmarks -> [N, 2] eye aspect ratio (left, right): lid gap over
    eye width; about 0.25-0.35 open, under 0.1 closed."""
    p = np.asarray(points_px, dtype=np.float32)
    return np.stack([_openness(p, LEFT_EYE), _openness(p, RIGHT_EYE)], axis=1).astype(np.float32)


def _iris_offset(p: np.ndarray, eye: tuple, iris: int) -> np.ndarray:
    outer, inner = eye[0], eye[1]
    a, b = p[:, outer, :2], p[:, inner, :2]
    # Eye axis from the image-left corner to the image-right corner, so x > 0 means image right.
    left_to_right = np.where((b[:, 0] > a[:, 0])[:, None], b - a, a - b)
    half = np.linalg.norm(left_to_right, axis=1, keepdims=True) / 2
    axis = left_to_right / np.maximum(2 * half, 1e-6)
    up = np.stack([axis[:, 1], -axis[:, 0]], axis=1)  # perpendicular, pointing up in the image
    d = p[:, iris, :2] - (a + b) / 2
    return np.stack([(d * axis).sum(1), (d * up).sum(1)], axis=1) / np.maximum(half, 1e-6)


def gaze(points_px: np.ndarray) -> np.ndarray:
    """[N, 478, 3] pixel-space landmarks -> [N, 2] iris offset (horizontal, vertical) from the eye
    centre in half eye-widths, averaged over both eyes: x > 0 towards the image's right, y > 0
    up; 0 looks straight ahead of the head (not necessarily at the camera)."""
    p = np.asarray(points_px, dtype=np.float32)
    off = (_iris_offset(p, RIGHT_EYE, RIGHT_IRIS) + _iris_offset(p, LEFT_EYE, LEFT_IRIS)) / 2
    return off.astype(np.float32)
