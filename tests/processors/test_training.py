"""Training maths on synthetic data (pure logic), and the export's equivalence."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort

from processors.training import Augment, augment_landmarks, fit, person_weights, platt, to_onnx


def _toy(n: int = 600, seed: int = 0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 224)).astype(np.float32)
    logits = np.zeros((n, 7))
    logits[:, 0] = 3 * x[:, 0]
    logits[:, 1] = 3 * x[:, 1] - 3 * x[:, 2]
    logits[:, 3] = 2 * np.abs(x[:, 3])
    p = np.exp(logits - logits.max(1, keepdims=True))
    return x, (p / p.sum(1, keepdims=True)).astype(np.float32)


def test_fit_learns_soft_targets_it_was_not_shown():
    x, p = _toy()
    s = fit(x[:500], p[:500], np.ones(500), max_iter=200)
    q = s.predict(x[500:])
    assert (q.argmax(1) == p[500:].argmax(1)).mean() > 0.8
    assert 0.5 * np.abs(q - p[500:]).sum(1).mean() < 0.3


def test_onnx_export_computes_what_numpy_does():
    x, p = _toy(200)
    s = fit(x, p, np.ones(200), max_iter=30)
    sess = ort.InferenceSession(to_onnx(s).SerializeToString(), providers=["CPUExecutionProvider"])
    got = sess.run(["probabilities"], {"features": x})[0]
    assert np.abs(got - s.predict(x)).max() < 1e-5


def test_person_weights_balance_people():
    w = person_weights(np.array(["a"] * 100 + ["b"] * 4))
    assert np.isclose(w[:100].sum() / w[100:].sum(), 10 / 2)  # sqrt(100) : sqrt(4)


def test_platt_recovers_a_logistic_map():
    rng = np.random.default_rng(1)
    e = rng.uniform(0, 1, 4000)
    target = 1 / (1 + np.exp(-(6 * e - 3)))
    a, b = platt(e, target)
    assert abs(a - 6) < 0.1 and abs(b + 3) < 0.1


def test_augmented_faces_stay_in_the_image_and_keep_their_size_range():
    rng = np.random.default_rng(2)
    pts = rng.uniform(200, 300, size=(50, 478, 3)).astype(np.float32)
    w, h = np.full(50, 640, np.float32), np.full(50, 480, np.float32)
    moved = augment_landmarks(pts, w, h, rng, Augment())
    assert moved.shape == pts.shape
    assert (moved[:, :, 0] >= 0).all() and (moved[:, :, 0] <= 640).all()
    assert (moved[:, :, 1] >= 0).all() and (moved[:, :, 1] <= 480).all()
    assert not np.allclose(moved, pts)
