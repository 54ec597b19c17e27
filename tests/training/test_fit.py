"""Training maths on synthetic data (pure logic), and the exports' equivalence."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest

from training.fit import (
    Augment,
    Head,
    HeadParams,
    Models,
    Projection,
    augment_landmarks,
    balanced_weights,
    fit,
    to_onnx,
)
from training.image_head import fit_image_head, image_head_onnx
from vision.features.expression import NUM_FEATURES


def _toy(n: int = 600, d: int = 40, seed: int = 0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d)).astype(np.float32)
    logits = np.zeros((n, 7))
    logits[:, 0] = 3 * x[:, 0]
    logits[:, 1] = 3 * x[:, 1] - 3 * x[:, 2]
    logits[:, 3] = 2 * np.abs(x[:, 3])
    p = np.exp(logits - logits.max(1, keepdims=True))
    return x, (p / p.sum(1, keepdims=True)).astype(np.float32)


@pytest.mark.parametrize("hidden", [0, 16])
def test_fit_learns_soft_targets_it_was_not_shown(hidden):
    x, p = _toy()
    s = fit(x[:500], p[:500], np.ones(500), HeadParams(hidden=hidden, max_iter=200))
    q = s.predict(x[500:])
    assert (q.argmax(1) == p[500:].argmax(1)).mean() > (0.75 if hidden == 0 else 0.8)
    assert (s.w1 is None) == (hidden == 0)


def test_balanced_weights_give_every_class_the_same_total():
    y = np.array([0] * 90 + [1] * 10 + [-1] * 5)
    w = balanced_weights(y, 7)
    assert np.isclose(w[y == 0].sum(), w[y == 1].sum()) and (w[y == -1] == 0).all()
    assert np.isclose(w[y >= 0].sum(), 100)


def test_onnx_export_computes_what_numpy_does():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(300, NUM_FEATURES)).astype(np.float32)
    proj = Projection.fit(x, 12)
    z = proj(x)
    _, p = _toy(300, z.shape[1])
    yes = (z[:, 0] > 0).astype(np.float32)
    two = np.stack([1 - yes, yes], 1)
    m = Models(proj, fit(z, p, np.ones(300), HeadParams(hidden=8, max_iter=20)),
               fit(z, two, np.ones(300), HeadParams(max_iter=20)), fit(z, two, np.ones(300), HeadParams(max_iter=20)))
    sess = ort.InferenceSession(to_onnx(m).SerializeToString(), providers=["CPUExecutionProvider"])
    for rows in (slice(0, 300), slice(0, 1)):  # a batch of one keeps its batch axis
        got = sess.run(["probabilities", "joy", "surprise"], {"features": x[rows]})
        want = m.predict(x[rows])
        for g, w in zip(got, want):
            assert g.shape == w.shape and np.abs(g - w).max() < 1e-4


def test_image_head_export_blends_head_and_teacher(tmp_path):
    from training.dataset import LabelledDataset

    rng = np.random.default_rng(4)
    n = 60
    teacher = rng.dirichlet(np.ones(7), n).astype(np.float32)
    emotion = np.array(["neutral", "happy", "sad"] * 20)
    f32 = np.float32
    ds = LabelledDataset(
        landmarks=np.zeros((n, 478, 3), f32), blendshapes=np.zeros((n, 52), f32), teacher=teacher,
        embedding=rng.normal(size=(n, 256)).astype(f32), width=np.ones(n, f32), height=np.ones(n, f32),
        padded=np.zeros(n, bool), dataset=np.full(n, "toy"), person=np.arange(n).astype(str),
        filename=np.arange(n).astype(str), emotion=emotion, smile=np.full(n, -1, np.int8),
        age=np.full(n, np.nan, f32), sex=np.full(n, ""))
    features = rng.normal(size=(n, NUM_FEATURES)).astype(f32)
    head = fit_image_head(ds, features, HeadParams(max_iter=10))
    sess = ort.InferenceSession(image_head_onnx(head).SerializeToString(), providers=["CPUExecutionProvider"])
    got = sess.run(["probabilities"], {"embedding": ds.embedding, "features": features, "teacher": teacher})[0]
    assert np.abs(got - head.blend(ds.embedding, features, teacher)).max() < 1e-4
    assert np.allclose(got.sum(1), 1, atol=1e-5)


def test_head_prediction_is_a_distribution():
    h = Head(np.zeros(3, np.float32), np.ones(3, np.float32), np.eye(3, dtype=np.float32), np.zeros(3, np.float32))
    p = h.predict(np.array([[5.0, 0, 0]], np.float32))
    assert p.argmax() == 0 and np.isclose(p.sum(), 1)


def test_augmented_faces_stay_in_the_image_and_keep_their_size_range():
    rng = np.random.default_rng(2)
    pts = rng.uniform(200, 300, size=(50, 478, 3)).astype(np.float32)
    w, h = np.full(50, 640, np.float32), np.full(50, 480, np.float32)
    moved = augment_landmarks(pts, w, h, rng, Augment())
    assert moved.shape == pts.shape
    assert (moved[:, :, 0] >= 0).all() and (moved[:, :, 0] <= 640).all()
    assert (moved[:, :, 1] >= 0).all() and (moved[:, :, 1] <= 480).all()
    assert not np.allclose(moved, pts)
