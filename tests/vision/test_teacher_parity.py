"""The ONNX port of face-api.js matches face-api.js itself on real face crops.

The reference was recorded once by face-api.js 1.7.15 under node
(``scripts/record_face_api_reference.py``); CI only reads it.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from vision.teacher import FACE_API_CLASSES, Teacher

DATA = Path(__file__).resolve().parents[1] / "data"


@pytest.fixture(scope="module")
def recorded():
    crops = np.load(DATA / "face_api_crops.npz")["crops"].astype(np.float32)
    ref = json.loads((DATA / "face_api_reference.json").read_text())
    assert ref["face_api"] == "1.7.15" and tuple(ref["labels"]) == FACE_API_CLASSES
    assert len(ref["results"]) == len(crops) >= 15
    return crops, ref["results"]


@pytest.fixture(scope="module")
def teacher():
    return Teacher()


def test_expressions_match_face_api(recorded, teacher):
    crops, ref = recorded
    want = np.array([r["expressions"] for r in ref], np.float32)
    got = teacher.face_api_expressions(crops)
    assert np.abs(got - want).max() <= 1e-4
    # The crops are real and varied: the teacher does not say the same thing for all of them.
    assert len(set(want.argmax(1))) >= 3


def test_age_and_gender_match_face_api(recorded, teacher):
    crops, ref = recorded
    age, male = teacher.age_gender(crops)
    assert np.abs(age - np.array([r["age"] for r in ref])).max() <= 1e-3  # years
    assert np.abs(male - np.array([r["p_male"] for r in ref])).max() <= 1e-4


def test_batched_equals_one_by_one(recorded, teacher):
    crops, _ = recorded
    batched = teacher.face_api_expressions(crops)
    single = np.concatenate([teacher.face_api_expressions(crops[i:i + 1]) for i in range(len(crops))])
    assert np.abs(batched - single).max() <= 1e-5


def test_rejects_wrong_crop_shape(teacher):
    with pytest.raises(ValueError, match=r"\[N, 112, 112, 3\]"):
        teacher.expressions(np.zeros((2, 64, 64, 3), np.float32))


def test_converter_reproduces_the_committed_models(tmp_path):
    """scripts/convert_face_api.py rebuilds both models byte for byte from the pinned tarball."""
    import subprocess
    import sys

    from infra.assets import sha256_of

    root = Path(__file__).resolve().parents[2]
    subprocess.run([sys.executable, str(root / "scripts" / "convert_face_api.py"), "--out-dir", str(tmp_path)],
                   check=True, capture_output=True)
    for name in ("face_expression", "age_gender"):
        committed = json.loads((root / "vision" / "model_files" / f"{name}.json").read_text())
        assert sha256_of(tmp_path / f"{name}.onnx") == committed["onnx_sha256"]
        assert sha256_of(root / "vision" / "model_files" / f"{name}.onnx") == committed["onnx_sha256"]
