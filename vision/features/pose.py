"""Head pose by aligning MediaPipe's canonical face to the landmarks (weighted Procrustes).

The canonical face (``vision/model_files/canonical_face.npz``, extracted from the pinned .task by
``scripts/extract_canonical_face.py``) is in centimetres with x towards the image's right, y up
and z towards the camera. Landmarks are brought into the same axes (image y and MediaPipe's z
point the other way) and a rotation is fitted with the weights MediaPipe itself uses for its
face transform. Orthographic, so it ignores perspective: it agrees with MediaPipe's
perspective-camera transform within a few degrees.

Angles, in degrees, for a face looking into the camera all 0:
    yaw   > 0: the nose turns towards the image's right (the subject turns to their left)
    pitch > 0: the nose turns up (looking up)
    roll  > 0: the face turns counter-clockwise as seen in the image
"""

from __future__ import annotations

import numpy as np

from vision.models import model_path

_MODEL = np.load(model_path("canonical_face.npz"))
CANONICAL = _MODEL["vertices"].astype(np.float64)  # [468, 3] cm
PROCRUSTES_IDS = _MODEL["procrustes_ids"]  # [K] landmark indices
PROCRUSTES_WEIGHTS = (_MODEL["procrustes_weights"] / _MODEL["procrustes_weights"].sum()).astype(np.float64)
_FLIP = np.array([1.0, -1.0, -1.0])  # image axes (x right, y down, z away) -> canonical axes


def to_pixel_space(landmarks: np.ndarray, width: np.ndarray | float, height: np.ndarray | float) -> np.ndarray:
    """[N, 478, 3] normalised landmarks -> [N, 478, 3] pixel units (x*w, y*h, z*w): the form Mojo
    clients send, with equal units on every axis."""
    lm = np.asarray(landmarks, dtype=np.float32)
    w = np.broadcast_to(np.asarray(width, np.float32), (lm.shape[0],))
    h = np.broadcast_to(np.asarray(height, np.float32), (lm.shape[0],))
    scale = np.stack([w, h, w], axis=1)[:, None, :]
    return lm * scale


def rotation_to_face(points_px: np.ndarray) -> np.ndarray:
    """[N, 478|468, 3] pixel-space landmarks -> [N, 3, 3] rotation R with points ~ s R c + t.

    Weighted Kabsch/Umeyama: one batched SVD, no loop over faces.
    """
    p = np.asarray(points_px, dtype=np.float64)[:, PROCRUSTES_IDS, :] * _FLIP
    c = CANONICAL[PROCRUSTES_IDS]
    w = PROCRUSTES_WEIGHTS[None, :, None]
    pc = p - (w * p).sum(axis=1, keepdims=True)
    cc = c - (PROCRUSTES_WEIGHTS[:, None] * c).sum(axis=0)
    h = np.einsum("nki,kj->nij", w * pc, cc)  # sum_k w_k p_k c_k^T
    u, _, vt = np.linalg.svd(h)
    d = np.sign(np.linalg.det(u @ vt))
    fix = np.ones((len(p), 3))
    fix[:, 2] = d
    return (u * fix[:, None, :]) @ vt


def angles_from_matrix(r: np.ndarray) -> np.ndarray:
    """[N, 3, 3] rotations (canonical face -> camera, y up, z towards the camera) -> [N, 3] yaw,
    pitch, roll in degrees, R = Ry(yaw) Rx(-pitch) Rz(roll). Works on MediaPipe's own
    facial transformation matrices too (their upper-left 3x3, after removing scale)."""
    r = np.asarray(r, dtype=np.float64)
    r = r / np.cbrt(np.abs(np.linalg.det(r)))[:, None, None]  # drop uniform scale
    yaw = np.arctan2(r[:, 0, 2], r[:, 2, 2])
    pitch = np.arcsin(np.clip(r[:, 1, 2], -1.0, 1.0))
    roll = np.arctan2(r[:, 1, 0], r[:, 1, 1])
    return np.degrees(np.stack([yaw, pitch, roll], axis=1)).astype(np.float32)


def head_pose(points_px: np.ndarray) -> np.ndarray:
    """[N, 478, 3] pixel-space landmarks -> [N, 3] yaw, pitch, roll in degrees."""
    if len(points_px) == 0:
        return np.zeros((0, 3), np.float32)
    return angles_from_matrix(rotation_to_face(points_px))
