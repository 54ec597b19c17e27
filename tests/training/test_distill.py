"""The blendshape distillation: its input normalisation, its ONNX export, the held-out split and
a small fit on real faces."""

import numpy as np
import onnxruntime as ort

from training.distill import (
    Corpus,
    DistillParams,
    Student,
    corpus_of_faces,
    fidelity,
    fit,
    held_out,
    normalise,
    to_onnx,
)
from vision.features.blendshapes import BlendshapeModel


def test_normalise_removes_shift_and_scale():
    rng = np.random.default_rng(0)
    x = rng.random((4, 146, 2), dtype=np.float32) * 300
    moved = x * 2.5 + np.array([40.0, -7.0], np.float32)
    z = normalise(x)
    assert z.shape == (4, 292)
    assert np.allclose(z, normalise(moved), atol=1e-5)
    # Unit RMS distance from the centre.
    assert np.allclose((z.reshape(4, 146, 2) ** 2).sum(axis=2).mean(axis=1), 1.0, atol=1e-5)


def test_onnx_export_computes_what_the_student_computes():
    rng = np.random.default_rng(1)
    shapes = [(292, 16), (16, 8), (8, 52)]
    s = Student(mean=rng.normal(size=292).astype(np.float32), std=rng.uniform(0.5, 2, 292).astype(np.float32),
                layers=[(rng.normal(0, 0.3, a).astype(np.float32), rng.normal(0, 0.1, a[1]).astype(np.float32))
                        for a in shapes])
    x = (rng.random((5, 146, 2), dtype=np.float32) * 500).astype(np.float32)
    sess = ort.InferenceSession(to_onnx(s).SerializeToString(), providers=["CPUExecutionProvider"])
    (out,) = sess.run(["blendshapes"], {"landmarks": x})
    assert out.shape == (5, 52)
    assert np.allclose(out, s.predict(x), atol=1e-4)
    assert out.min() >= 0.0 and out.max() <= 1.0


def test_held_out_people_are_a_fixed_fifth():
    people = np.array([f"set/{i}" for i in range(5000)])
    a = held_out(people)
    assert np.array_equal(a, held_out(people[::-1])[::-1])  # by person, not by position
    assert 0.17 < a.mean() < 0.23


def test_a_small_fit_on_real_faces_beats_the_mean_on_faces_it_never_saw(real_faces):
    f = real_faces
    n = len(f.landmarks)
    person = np.array([f"p{i}" for i in range(n)])
    exact = BlendshapeModel("exact")
    train = np.arange(n) % 4 != 0
    rng = np.random.default_rng(0)
    c = corpus_of_faces(f.landmarks[train], f.width[train], f.height[train], person[train], exact, copies=7, rng=rng)
    test = corpus_of_faces(f.landmarks[~train], f.width[~train], f.height[~train], person[~train], exact)
    assert isinstance(c, Corpus) and len(c.x) == 8 * train.sum()
    # The targets are MediaPipe's network on exactly these landmarks: on the faces themselves
    # they are MediaPipe's own blendshapes.
    assert np.abs(test.y - f.blendshapes[~train]).max() < 1e-4
    s = fit(c, DistillParams(hidden=(64,), batch_size=32, max_epochs=150))
    ours = fidelity(s.predict(test.x), test.y)["mean_abs_diff"]
    mean_guess = fidelity(np.broadcast_to(c.y.mean(axis=0), test.y.shape), test.y)["mean_abs_diff"]
    assert ours < 0.6 * mean_guess, (ours, mean_guess)
