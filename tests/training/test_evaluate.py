"""A small version of `facestream evaluate` on real labelled faces: the card's format and ranges."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from schemas.vocabulary import EMOTIONS
from training.dataset import LabelledDataset, build_labelled
from training.evaluate import SIX, accuracy, bootstrap, confusion, ece, evaluate, mean_recall, person_folds, recalls
from training.model_card import model_card, write

LONDON = Path(__file__).resolve().parents[1] / "data" / "london"


def test_metrics_on_known_inputs():
    y = np.array([0, 1, 2, 3, 1, -1])
    p = np.eye(7, dtype=np.float32)[[0, 1, 2, 4, 0, 5]]
    r = recalls(p, y)
    assert r["neutral"] == 1 and r["happy"] == 0.5 and r["surprise"] == 0 and np.isnan(r["angry"])
    assert mean_recall(p, y) == pytest.approx((1 + 0.5 + 1 + 0) / 4)
    assert accuracy(p, y) == pytest.approx(3 / 5)
    m = np.array(confusion(p, y))
    assert m.sum() == 5 and m[3, 4] == 1 and m[1, 0] == 1
    assert ece(p, y) == pytest.approx(0.4)  # confidence 1 everywhere, right 3 times in 5


def test_folds_never_split_a_person():
    person = np.array(["a", "a", "b", "c", "c", "c", "d", "e", "f", "g"])
    folds = person_folds(person, k=3)
    for p in set(person):
        assert len(set(folds[person == p])) == 1
    assert set(folds) == {0, 1, 2}


def test_bootstrap_interval_brackets_the_value():
    person = np.repeat(np.arange(50).astype(str), 2)
    hit = np.random.default_rng(0).random(100) < 0.7
    lo, hi = bootstrap(lambda r: float(hit[r].mean()), person)
    assert lo <= hit.mean() <= hi and hi - lo < 0.4


@pytest.fixture(scope="module")
def london(tmp_path_factory) -> tuple[LabelledDataset, Path]:
    tmp = tmp_path_factory.mktemp("ds")
    build_labelled([LONDON], tmp / "london.npz", tmp / "cache")
    return LabelledDataset.load(tmp / "london.npz"), tmp / "london.npz"


def test_small_evaluation_writes_a_complete_card(london, tmp_path):
    ds, path = london
    f = evaluate(ds, path, copies=1)
    md, js = write(f, tmp_path)
    card = md.read_text()
    for heading in ("## Emotions, all labelled faces", "### Confusion, landmark student", "## Feature sets and model sizes",
                    "## Smiles", "## Mojo cues", "## London Set slices", "## Latency", "## What it must not be used for"):
        assert heading in card
    data = json.loads(js.read_text())
    assert data == json.loads(json.dumps(f))
    assert data["dataset"]["people"] == 12 and data["dataset"]["faces"] == 24
    for model in ("student", "image", "teacher", "rules"):
        r = data[model]
        assert 0 <= r["accuracy"] <= 1 and 0 <= r["ece"] <= 1 and r["rows"] == 24
        lo, hi = r["accuracy_ci95"]
        assert lo <= r["accuracy"] <= hi
        assert np.array(r["confusion"]).shape == (7, 7) and np.array(r["confusion"]).sum() == 24
        assert set(r["recall"]) == set(SIX)
    assert len(data["variants"]) == 5
    assert set(data["london_slices"]) >= {"sex female", "sex male", "age < 30"}
    assert data["smile"]["student_amusement"]["london"]["faces"] == 24
    lat = data["latency"]
    assert 0 < lat["batched_ms_per_frame"] < lat["unbatched_ms_per_frame"]
    assert list(EMOTIONS) == data["classes"]
    assert model_card(f) == card
