"""The labelled-dataset builder on real labelled faces (24 London Set portraits in tests/data)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from schemas.vocabulary import EMOTIONS
from training import dataset as labelled
from training.dataset import LabelledDataset, LabelsError, build_labelled, read_labels

LONDON = Path(__file__).resolve().parents[1] / "data" / "london"


def test_labels_are_read_with_people_attributes():
    items = read_labels(LONDON)
    assert len(items) == 24 and {i.emotion for i in items} == {"happy", "neutral"}
    assert all(i.smile == -1 and i.age > 0 and i.sex in ("female", "male") for i in items)


@pytest.mark.parametrize("text, reason", [
    (None, "labels.csv is missing"),
    ("file,who,emotion\na.jpg,p,happy\n", "it needs file, person"),
    ("file,person,smile\nnone.jpg,p,1\n", "none.jpg is in neither"),
    ("file,person,smile\na.jpg,p,yes\n", "smile must be 0 or 1"),
])
def test_malformed_folders_say_what_to_fix(tmp_path, text, reason):
    (tmp_path / "a.jpg").write_bytes(b"")
    if text is not None:
        (tmp_path / "labels.csv").write_text(text)
    with pytest.raises(LabelsError, match=reason):
        read_labels(tmp_path)


def test_emotion_spellings_are_normalised():
    assert labelled.normalise_emotion(" Surprised ") == "surprise"
    assert labelled.normalise_emotion("anger") == "angry"
    assert labelled.normalise_emotion("contempt") == "contempt"


def test_build_caches_every_image_and_resumes_without_the_models(tmp_path, monkeypatch):
    seen = []
    stats = build_labelled([LONDON], tmp_path / "ds.npz", tmp_path / "cache",
                           progress=lambda done, total: seen.append((done, total)))
    assert stats == {"london": {"images": 24, "faces": 24, "missed": 0}}
    assert seen[-1] == (24, 24)
    ds = LabelledDataset.load(tmp_path / "ds.npz")
    assert len(ds) == 24 and ds.landmarks.shape == (24, 478, 3) and ds.embedding.shape == (24, 256)
    assert np.allclose(ds.teacher.sum(1), 1, atol=1e-4)
    assert set(ds.person.tolist()) == {f"london/london{i:03d}" for i in range(1, 13)}
    assert (ds.label_index() >= 0).all() and set(ds.label_index().tolist()) == {EMOTIONS.index("happy"), 0}
    assert (ds.joy() == (ds.emotion == "happy")).all()
    # The teacher, which has seen these faces' pixels, reads the posed smiles as happy.
    happy = ds.emotion == "happy"
    assert (ds.teacher[happy].argmax(1) == EMOTIONS.index("happy")).mean() > 0.75

    # A second build reads every row from the cache: the models are never loaded.
    def no_models() -> None:
        raise AssertionError("the cache should have answered")

    monkeypatch.setattr(labelled, "FaceReader", no_models)
    assert build_labelled([LONDON], tmp_path / "again.npz", tmp_path / "cache") == stats
    again = LabelledDataset.load(tmp_path / "again.npz")
    assert np.array_equal(again.landmarks, ds.landmarks)
