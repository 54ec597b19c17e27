"""A small version of `facestream evaluate` on real faces: the card's format and ranges."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from facestream import assets
from processors.evaluation import agreement, confusion, ece, evaluate, model_card, total_variation, write
from processors.training import Augment
from producers.dataset import Dataset, Item, build
from schemas.records import EMOTIONS


def test_metrics_on_known_inputs():
    t = np.eye(7, dtype=np.float32)[[0, 1, 2, 3]]
    p = np.eye(7, dtype=np.float32)[[0, 1, 2, 4]]
    assert agreement(p, t) == 0.75
    assert np.allclose(total_variation(p, t), [0, 0, 0, 1])
    m = confusion(p, t)
    assert m.sum() == 4 and m[3, 4] == 1 and np.trace(m) == 3
    assert ece(p, t) == pytest.approx(0.25)  # confidence 1 everywhere, right 3 times in 4


@pytest.fixture(scope="module")
def small_dataset(tmp_path_factory) -> tuple[Dataset, object]:
    m = assets.media
    items = [Item(m("WolfgangLanger_Pexels.mp4"), "actress", True, every=12),
             Item(m("single_face.mp4"), "man", True, every=6),
             Item(m("0-f1-su-ph.jpg"), "f1", False), Item(m("0-f15-hao-ph.jpg"), "f15", False),
             Item(m("15-f13-anc-ph.jpg"), "f13", False), Item(m("single_face.jpg"), "jpg", False)]
    path = tmp_path_factory.mktemp("ds") / "small.npz"
    counts = build(items, path)
    assert set(counts) == {"actress", "man", "f1", "f15", "f13", "jpg"}
    assert counts["f1"] == 2  # the image and its mirror
    return Dataset.load(path), path


def test_dataset_rows_are_consistent(small_dataset):
    ds, _ = small_dataset
    n = len(ds)
    assert ds.landmarks.shape == (n, 478, 3) and ds.blendshapes.shape == (n, 52) and ds.pose.shape == (n, 3)
    assert np.allclose(ds.teacher.sum(1), 1, atol=1e-4)
    video = ds.person == "actress"
    assert (np.diff(ds.frame[video]) == 12).all()  # every 12th frame, in order
    assert ds.mirrored[ds.person == "f1"].tolist() == [False, True]


def test_small_evaluation_writes_a_complete_card(small_dataset, tmp_path):
    ds, path = small_dataset
    f = evaluate(ds, path, Augment(copies=1), max_iter=60)
    md, js = write(f, tmp_path)
    card = md.read_text()
    for heading in ("## Agreement with the teacher on people it never saw", "### Confusion, student",
                    "### Confusion, rules baseline", "## Latency", "## Mojo cue calibration",
                    "## Data it was trained and judged on", "## What it must not be used for"):
        assert heading in card
    assert "accuracy" not in card.lower().replace('claims of "accuracy"', "").replace("not accuracy", "")
    data = json.loads(js.read_text())
    assert data == json.loads(json.dumps(f))
    for model in ("student", "rules_baseline"):
        r = data[model]
        assert 0 <= r["top1_agreement"] <= 1 and 0 <= r["mean_total_variation"] <= 1 and 0 <= r["ece"] <= 1
        assert np.array(r["confusion"]).shape == (7, 7) and np.array(r["confusion"]).sum() == len(ds)
        assert 0 <= r["stability_tv"] <= 1
    assert set(data["student"]["per_person_top1"]) == {"actress", "man", "f1", "f15", "f13", "jpg"}
    lat = data["latency"]
    assert 0 < lat["batched_ms_per_frame"] < lat["unbatched_ms_per_frame"]
    assert data["dataset"]["rows"] == len(ds) and sum(data["dataset"]["teacher_top1_counts"].values()) == len(ds)
    # The card shows the JSON's numbers.
    assert f"| student | {data['student']['top1_agreement']:.3f} |" in card
    assert re.search(r"\| batched \(256 frames\) \| unbatched \|", card)
    assert list(EMOTIONS) == data["classes"]
    assert model_card(f) == card
