"""Pure maths of the emotion student's inputs and of the rules baseline."""

from __future__ import annotations

import numpy as np

from schemas.vocabulary import BLENDSHAPE_INDEX as B
from schemas.vocabulary import EMOTIONS
from training.fit import _rotation
from vision.features.expression import NUM_FEATURES, aligned_mesh, aligned_shape, rules_baseline, student_features
from vision.features.pose import to_pixel_space


def _moved(px: np.ndarray, yaw: float, pitch: float, roll: float, scale: float, shift: float) -> np.ndarray:
    r = _rotation(np.radians([yaw]), np.radians([pitch]), np.radians([roll]))[0]
    c = px.mean(axis=1, keepdims=True)
    return (px - c) @ r.T * scale + c + shift


def test_aligned_shape_ignores_head_rotation_position_and_size(real_faces):
    px = to_pixel_space(real_faces.landmarks[:8], real_faces.width[:8], real_faces.height[:8]).astype(np.float64)
    base = aligned_shape(px)
    moved = aligned_shape(_moved(px, 20, -10, 15, 1.7, 40.0))
    assert base.shape == (8, 120)
    assert np.abs(moved - base).max() < 1e-3
    # ...but not expression: different faces give different shapes.
    assert np.abs(base[0] - base[1:]).max() > 0.02


def test_aligned_mesh_is_every_mesh_point_and_ignores_pose(real_faces):
    px = to_pixel_space(real_faces.landmarks[:4], real_faces.width[:4], real_faces.height[:4]).astype(np.float64)
    base = aligned_mesh(px)
    assert base.shape == (4, 468 * 3)
    assert np.abs(aligned_mesh(_moved(px, -15, 10, -20, 0.6, -25.0)) - base).max() < 1e-3


def test_student_features_layout():
    x = student_features(np.zeros((3, 1404)), np.ones((3, 52)))
    assert x.shape == (3, NUM_FEATURES) and x.dtype == np.float32
    assert (x[:, :1404] == 0).all() and (x[:, 1404:] == 1).all()


def test_rules_baseline_is_a_distribution_and_reads_the_obvious():
    bs = np.zeros((3, 52), np.float32)
    bs[1, [B["mouthSmileLeft"], B["mouthSmileRight"]]] = 0.9
    bs[2, [B["eyeWideLeft"], B["eyeWideRight"], B["browOuterUpLeft"], B["browOuterUpRight"]]] = 0.8
    bs[2, B["jawOpen"]] = 0.6
    p = rules_baseline(bs)
    assert np.allclose(p.sum(1), 1) and (p > 0).all()
    assert [EMOTIONS[i] for i in p.argmax(1)] == ["neutral", "happy", "surprise"]
