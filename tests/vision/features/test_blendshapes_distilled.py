"""The shipped distilled blendshape network against MediaPipe's own, on real faces: per
blendshape, and through the whole pipeline (cues and emotions) on the demo clip, which it was
never trained on."""

import numpy as np
import pytest

from processors.pipeline import FrameProcessor
from training.fidelity import still_fidelity, video_fidelity
from vision.features.blendshapes import MODELS, BlendshapeModel


def test_distilled_blendshapes_stay_close_to_mediapipes(real_faces):
    f = real_faces
    fast = BlendshapeModel("distilled").predict(f.landmarks, f.width, f.height)
    assert fast.shape == f.blendshapes.shape
    diff = np.abs(fast - f.blendshapes)
    assert diff.mean() <= 0.025
    assert diff.mean(axis=0).max() <= 0.06  # no blendshape far off on average


@pytest.fixture(scope="module")
def processors():
    return FrameProcessor(blendshapes="exact"), FrameProcessor(blendshapes="distilled")


def test_cues_and_emotions_on_the_held_out_clip_stay_within_003(wolfgang_frames, processors):
    fid = video_fidelity(wolfgang_frames, *processors)
    assert fid["frames"] == len(wolfgang_frames) >= 400
    assert fid["max_cue"] <= 0.03, fid["cues"]
    assert fid["max_emotion"] <= 0.03, fid["emotions"]


def test_evidence_and_emotions_on_photos_stay_within_003(real_faces, processors):
    f = real_faces
    fid = still_fidelity(f.landmarks, f.width, f.height, *processors)
    assert fid["max_cue"] <= 0.03, fid["cues"]
    assert fid["max_emotion"] <= 0.03, fid["emotions"]


def test_both_files_take_the_same_input_and_give_the_same_output():
    lm = np.random.default_rng(0).uniform(0.3, 0.7, (3, 478, 3)).astype(np.float32)
    for kind in MODELS:
        m = BlendshapeModel(kind)
        assert m.predict(lm, 640, 480).shape == (3, 52)
        assert m.predict(np.zeros((0, 478, 3)), 1, 1).shape == (0, 52)


def test_an_unknown_kind_says_which_exist():
    with pytest.raises(ValueError, match="distilled"):
        BlendshapeModel("tiny")
