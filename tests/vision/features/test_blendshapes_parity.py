"""The ONNX conversion of MediaPipe's blendshape model against MediaPipe itself, on real faces."""

import numpy as np

from vision.features.blendshapes import BlendshapeModel, to_model_input


def test_onnx_blendshapes_match_mediapipe_within_1e_4(real_faces):
    model = BlendshapeModel()
    f = real_faces
    assert len(f.landmarks) >= 60, "enough real faces to mean something"
    batched = model.predict(f.landmarks, f.width, f.height)
    assert batched.shape == (len(f.landmarks), 52)
    assert np.abs(batched - f.blendshapes).max() <= 1e-4
    one_by_one = np.concatenate([model.predict(f.landmarks[i:i + 1], f.width[i], f.height[i])
                                 for i in range(len(f.landmarks))])
    assert np.abs(one_by_one - f.blendshapes).max() <= 1e-4
    assert np.abs(one_by_one - batched).max() <= 1e-4


def test_model_input_is_the_146_point_subset_in_pixels():
    lm = np.random.default_rng(0).random((3, 478, 3), dtype=np.float32)
    x = to_model_input(lm, np.array([640, 320, 100]), np.array([360, 240, 100]))
    assert x.shape == (3, 146, 2) and x.dtype == np.float32
    assert np.allclose(x[0, 0], lm[0, 0, :2] * [640, 360])
    assert np.allclose(x[1, -1], lm[1, 477, :2] * [320, 240])


def test_empty_batch():
    assert BlendshapeModel().predict(np.zeros((0, 478, 3)), 1, 1).shape == (0, 52)
