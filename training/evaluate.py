"""Person-disjoint evaluation of the emotion student, the cue heads and the image path against
people's own labels.

Every figure of ``reports/model_card.md`` (and its JSON twin) is computed here, from a labelled
dataset that ``facestream dataset build --labelled DIR`` builds. People are split into folds;
every prediction comes from models fitted without that person. We call agreement with the image
teacher *agreement* and agreement with people's labels *recall* / *accuracy*.
"""

from __future__ import annotations

import platform
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from processors import cues as cue_fns
from schemas.vocabulary import EMOTIONS
from training.dataset import LabelledDataset
from training.fit import (
    Augment,
    HeadParams,
    Projection,
    TrainParams,
    compact_features,
    emotion_targets,
    features_of,
    fit,
    fit_models,
    to_onnx,
)
from training.image_head import fit_image_head
from vision.features.blendshapes import BlendshapeModel
from vision.features.expression import rules_baseline
from vision.features.eyes import gaze
from vision.features.pose import head_pose, to_pixel_space
from vision.models import open_session

SIX = ("neutral", "happy", "sad", "surprise", "angry", "disgust")
FOLDS = 5
BOOTSTRAP = 200
# Alternatives the card compares with what ships (feature set, head size, weight of human labels).
VARIANTS = {
    "mesh, linear, human labels (ships)": ("mesh", TrainParams()),
    "mesh, 32 hidden, 0.7 human + 0.3 teacher": ("mesh", TrainParams(emotion=HeadParams(hidden=32, l2=1e-2), alpha=0.7)),
    "compact, linear, human labels": ("compact", TrainParams()),
    "compact, 32 hidden, 0.7 human + 0.3 teacher": ("compact", TrainParams(emotion=HeadParams(hidden=32, l2=1e-2), alpha=0.7)),
    # The simple baseline of DESIGN.md: no blendshapes, no 3D, no augmentation.
    "baseline: 2D-aligned mesh, 60 components, linear": ("2d", TrainParams(components=60)),
}


def aligned_2d(points_px: np.ndarray) -> np.ndarray:
    """[N, 478, 3] pixel-space landmarks -> [N, 936]: the 468 mesh points' x, y similarity-aligned
    (rotation, scale, shift in the image plane) to the canonical face, minus the canonical face."""
    from vision.features.pose import CANONICAL

    c = CANONICAL[:, :2] * np.array([1.0, -1.0])  # canonical y is up, image y is down
    c = c - c.mean(axis=0)
    p = np.asarray(points_px, np.float64)[:, : len(c), :2]
    p = p - p.mean(axis=1, keepdims=True)
    h = np.einsum("nki,kj->nij", p, c)  # sum_k p_k c_k^T
    u, sv, vt = np.linalg.svd(h)
    r = u @ vt  # rotation taking p onto c (row vectors: p @ r)
    scale = sv.sum(axis=1) / (p**2).sum(axis=(1, 2))
    return ((p @ r) * scale[:, None, None] - c).reshape(len(p), -1).astype(np.float32)


def person_folds(person: np.ndarray, k: int = FOLDS, seed: int = 0) -> np.ndarray:
    """[N] fold number of each row; all rows of a person share a fold."""
    people = np.unique(person)
    order = np.random.default_rng(seed).permutation(len(people))
    fold_of = dict(zip(people[order], np.arange(len(people)) % k))
    return np.array([fold_of[p] for p in person], np.int64)


def recalls(p: np.ndarray, y: np.ndarray) -> dict[str, float]:
    """Recall per class in SIX (nan where no row has that label); y = -1 rows are ignored."""
    pred = p.argmax(1)
    out = {}
    for e in SIX:
        m = y == EMOTIONS.index(e)
        out[e] = float((pred[m] == y[m]).mean()) if m.any() else float("nan")
    return out


def mean_recall(p: np.ndarray, y: np.ndarray) -> float:
    r = [v for v in recalls(p, y).values() if v == v]
    return float(np.mean(r)) if r else float("nan")


def accuracy(p: np.ndarray, y: np.ndarray) -> float:
    m = y >= 0
    return float((p[m].argmax(1) == y[m]).mean()) if m.any() else float("nan")


def confusion(p: np.ndarray, y: np.ndarray) -> list[list[int]]:
    """[7, 7] counts: row = people's label, column = the model's top class."""
    m = y >= 0
    out = np.zeros((len(EMOTIONS), len(EMOTIONS)), np.int64)
    np.add.at(out, (y[m], p[m].argmax(1)), 1)
    return out.tolist()


def ece(p: np.ndarray, y: np.ndarray, bins: int = 10) -> float:
    """Expected calibration error of the top-1 confidence against people's label."""
    m = y >= 0
    conf, hit = p[m].max(1), (p[m].argmax(1) == y[m]).astype(float)
    edges = np.linspace(0, 1, bins + 1)
    idx = np.clip(np.digitize(conf, edges[1:-1]), 0, bins - 1)
    return float(sum((idx == b).mean() * abs(conf[idx == b].mean() - hit[idx == b].mean())
                     for b in range(bins) if (idx == b).any()))


def agreement(p: np.ndarray, teacher: np.ndarray) -> float:
    return float((p.argmax(1) == teacher.argmax(1)).mean()) if len(p) else float("nan")


def bootstrap(metric: Callable[[np.ndarray], float], person: np.ndarray, n: int = BOOTSTRAP,
              seed: int = 0) -> tuple[float, float]:
    """95% interval of ``metric(rows)`` over resamples of people (with replacement)."""
    people, inverse = np.unique(person, return_inverse=True)
    rows_of = [np.flatnonzero(inverse == i) for i in range(len(people))]
    rng = np.random.default_rng(seed)
    vals = []
    for _ in range(n):
        pick = rng.integers(0, len(people), len(people))
        vals.append(metric(np.concatenate([rows_of[i] for i in pick])))
    lo, hi = np.nanpercentile(vals, [2.5, 97.5])
    return float(lo), float(hi)


def scores(p: np.ndarray, ds: LabelledDataset) -> dict:
    """Every emotion figure of one model, over the rows with an emotion label."""
    y = ds.label_index()
    return {"mean_recall": mean_recall(p, y),
            "mean_recall_ci95": bootstrap(lambda r: mean_recall(p[r], y[r]), ds.person),
            "accuracy": accuracy(p, y), "accuracy_ci95": bootstrap(lambda r: accuracy(p[r], y[r]), ds.person),
            "recall": recalls(p, y), "ece": ece(p, y) if (y >= 0).any() else float("nan"),
            "confusion": confusion(p, y), "teacher_agreement": agreement(p, ds.teacher),
            "rows": int((y >= 0).sum())}


def smile_accuracy(score: np.ndarray, ds: LabelledDataset) -> dict:
    """Share of faces where score >= 0.5 matches people's smile, per set that labels smiles: a
    smile column (GENKI), or only happy and neutral faces (London). Sets labelled with other
    emotions too (muxspace) say nothing about smiles on their faces."""
    joy = ds.joy()
    out = {}
    for name in np.unique(ds.dataset).tolist():
        in_set = ds.dataset == name
        labels = set(ds.emotion[in_set].tolist()) - {""}
        if not (ds.smile[in_set] >= 0).any() and not labels <= {"happy", "neutral"}:
            continue
        m = in_set & (joy >= 0) & ((ds.smile >= 0) | np.isin(ds.emotion, ("happy", "neutral")))
        if m.any():
            hit = ((score[m] >= 0.5) == (joy[m] == 1)).astype(float)
            out[name] = {"accuracy": float(hit.mean()), "faces": int(m.sum()),
                         "ci95": bootstrap(lambda r: float(hit[r].mean()), ds.person[m])}
    return out


def _predict_folds(x: np.ndarray, rows: np.ndarray, ds: LabelledDataset, folds: np.ndarray,
                   fit_fold: Callable[[np.ndarray, np.ndarray, LabelledDataset], Callable[[np.ndarray], tuple]],
                   progress: Callable[[str], None] | None, name: str) -> list[np.ndarray]:
    """Held-out outputs of ``fit_fold`` for every row, each from models fitted without its person."""
    outs: list[np.ndarray] | None = None
    for f in range(int(folds.max()) + 1):
        train = folds[rows] != f
        sub = np.flatnonzero(folds != f)
        remap = np.full(len(ds), -1)
        remap[sub] = np.arange(len(sub))
        predict = fit_fold(x[train], remap[rows[train]], ds.subset(folds != f))
        test = folds == f
        res = predict(x[: len(ds)][test])  # rows 0..len(ds)-1 of x are the faces themselves
        if outs is None:
            outs = [np.zeros((len(ds),) + r.shape[1:], np.float32) for r in res]
        for o, r in zip(outs, res):
            o[test] = r
        if progress:
            progress(f"{name}: fold {f + 1} of {int(folds.max()) + 1}")
    assert outs is not None
    return outs


def evaluate(ds: LabelledDataset, dataset_path: Path, aug: Augment = Augment(), copies: int = 1, seed: int = 0,
             progress: Callable[[str], None] | None = None) -> dict:
    """All figures of the model card, as a JSON-able dict."""
    folds = person_folds(ds.person, seed=seed)
    x, rows = features_of(ds, BlendshapeModel(), np.random.default_rng(seed), aug, copies)
    compact = compact_features(x)
    flat = aligned_2d(to_pixel_space(ds.landmarks, ds.width, ds.height))
    models: dict[str, dict] = {}
    shipped = None
    fold_models: list = []  # the shipped student of each fold, in fold order
    for name, (feature_set, p) in VARIANTS.items():
        xv = {"mesh": x, "compact": compact, "2d": flat}[feature_set]
        if feature_set == "2d":
            def fit_fold(xt, rt, dt, p=p):
                mean = xt.mean(axis=0)
                basis = np.linalg.svd(xt - mean, full_matrices=False)[2][: p.components].T
                target, weight = emotion_targets(dt, p.alpha)
                keep = weight[rt] > 0
                head = fit(((xt - mean) @ basis)[keep], target[rt][keep], weight[rt][keep], p.emotion, seed=seed)
                return lambda q: (head.predict((q - mean) @ basis),)
            (probs,) = _predict_folds(xv, np.arange(len(ds)), ds, folds, fit_fold, progress, name)
        elif name.endswith("(ships)"):
            def fit_fold(xt, rt, dt, p=p):
                m = fit_models(xt, rt, dt, p)
                fold_models.append(m)
                return lambda q: m.predict(q)
            probs, joy, surprise = _predict_folds(xv, rows, ds, folds, fit_fold, progress, name)
            shipped = (probs, joy, surprise)
        else:
            def fit_fold(xt, rt, dt, p=p, feature_set=feature_set):
                proj = Projection.fit(xt, p.components) if feature_set == "mesh" else None
                z = proj(xt) if proj else xt
                target, weight = emotion_targets(dt, p.alpha)
                keep = weight[rt] > 0
                head = fit(z[keep], target[rt][keep], weight[rt][keep], p.emotion, seed=seed)
                return lambda q: (head.predict(proj(q) if proj else q),)
            (probs,) = _predict_folds(xv, rows, ds, folds, fit_fold, progress, name)
        models[name] = {"features": feature_set, "hidden": p.emotion.hidden, "l2": p.emotion.l2, "alpha": p.alpha,
                        **scores(probs, ds)}
    assert shipped is not None
    probs, joy, surprise = shipped

    # The image path: the teacher alone, and blended with a head fitted on people's labels.
    image = np.zeros_like(ds.teacher)
    originals = x[: len(ds)]
    for f in range(FOLDS):
        head = fit_image_head(ds.subset(folds != f), originals[folds != f], seed=seed)
        m = folds == f
        image[m] = head.blend(ds.embedding[m], originals[m], ds.teacher[m])
    if progress:
        progress("image head")

    px = to_pixel_space(ds.landmarks, ds.width, ds.height)
    rules_ev = cue_fns.frame_evidence(ds.blendshapes, head_pose(px), gaze(px))
    learned = cue_fns.learned_evidence(rules_ev, joy, surprise, probs)
    rules = rules_baseline(ds.blendshapes)
    y = ds.label_index()
    # The same student, given the distilled network's blendshapes instead of MediaPipe's.
    distilled = distilled_figures(ds, folds, fold_models, probs, learned)
    if progress:
        progress("distilled blendshapes")

    def cue_table(ev: np.ndarray) -> dict:
        out = {}
        for col, cue in enumerate(("amusement", "surprise", "confusion")):
            out[cue] = {e: float(ev[ds.emotion == e, col].mean()) for e in SIX if (ds.emotion == e).any()}
            out[cue]["neutral_london"] = float(ev[(ds.emotion == "neutral") & (ds.dataset == "london"), col].mean())
        sur = y == EMOTIONS.index("surprise")
        out["surprise_recall_at_0.5"] = float((ev[sur, 1] >= 0.5).mean())
        out["surprise_false_alarm_at_0.5"] = float((ev[(y >= 0) & ~sur, 1] >= 0.5).mean())
        return out

    per_dataset = {}
    for name in np.unique(ds.dataset).tolist():
        m = ds.dataset == name
        sub = ds.subset(m)
        if (sub.label_index() >= 0).any():
            per_dataset[name] = {"student": scores(probs[m], sub), "image": scores(image[m], sub),
                                 "teacher": scores(ds.teacher[m], sub), "rules": scores(rules[m], sub)}
    slices = {}
    london = ds.dataset == "london"
    if london.any():
        groups = {f"sex {s}": london & (ds.sex == s) for s in np.unique(ds.sex[london]).tolist() if s}
        groups.update({"age < 30": london & (ds.age < 30), "age 30-44": london & (ds.age >= 30) & (ds.age < 45),
                       "age >= 45": london & (ds.age >= 45)})
        for g, m in groups.items():
            if m.any():
                smile = ds.emotion[m] == "happy"
                slices[g] = {"faces": int(m.sum()), "people": int(len(np.unique(ds.person[m]))),
                             "student_smile_accuracy": float(((learned[m, 0] >= 0.5) == smile).mean()),
                             "student_accuracy": accuracy(probs[m], y[m]),
                             "image_accuracy": accuracy(image[m], y[m])}
    people = np.unique(ds.person)
    return {
        "dataset": {"path": str(dataset_path), "faces": len(ds), "people": int(len(people)),
                    "per_dataset": {n: {"faces": int((ds.dataset == n).sum()),
                                        "people": int(len(np.unique(ds.person[ds.dataset == n])))}
                                    for n in np.unique(ds.dataset).tolist()},
                    "labels": {e: int((ds.emotion == e).sum()) for e in np.unique(ds.emotion).tolist() if e},
                    "smiles": {"yes": int((ds.smile == 1).sum()), "no": int((ds.smile == 0).sum())}},
        "folds": FOLDS, "seed": seed, "augment": aug.__dict__, "copies": copies,
        "student": scores(probs, ds), "image": scores(image, ds), "teacher": scores(ds.teacher, ds),
        "rules": scores(rules, ds), "variants": models, "per_dataset": per_dataset,
        "smile": {"student_amusement": smile_accuracy(learned[:, 0], ds),
                  "rules_amusement": smile_accuracy(rules_ev[:, 0], ds),
                  "image_happy": smile_accuracy(image[:, EMOTIONS.index("happy")], ds),
                  "teacher_happy": smile_accuracy(ds.teacher[:, EMOTIONS.index("happy")], ds)},
        "cues": {"learned": cue_table(learned), "rules": cue_table(rules_ev)},
        "london_slices": slices,
        "distilled_blendshapes": distilled,
        "latency": latency_ms(ds),
        "machine": _machine(), "commit": _commit(), "classes": list(EMOTIONS),
    }


def distilled_figures(ds: LabelledDataset, folds: np.ndarray, fold_models: list, probs: np.ndarray,
                      learned: np.ndarray) -> dict:
    """The distilled blendshape network judged on these faces: per blendshape against MediaPipe's
    (on the people it was never trained on, and on all), and the shipped student of each fold fed
    its blendshapes instead of MediaPipe's: the student's figures and how far its emotions and
    cue evidence move (``probs`` [N, 7] and ``learned`` [N, 4] are the same with MediaPipe's)."""
    from training.distill import fidelity, held_out
    from training.fit import featurise
    from vision.features.blendshapes import DISTILLED_PATH

    if not DISTILLED_PATH.exists():
        return {}
    fast = BlendshapeModel("distilled").predict(ds.landmarks, ds.width, ds.height)
    px = to_pixel_space(ds.landmarks, ds.width, ds.height)
    x = featurise(px, fast)
    pf, jf, sf = np.zeros_like(probs), np.zeros(len(ds), np.float32), np.zeros(len(ds), np.float32)
    for f, m in enumerate(fold_models):
        test = folds == f
        pf[test], jf[test], sf[test] = m.predict(x[test])
    lf = cue_fns.learned_evidence(cue_fns.frame_evidence(fast, head_pose(px), gaze(px)), jf, sf, pf)
    out = held_out(ds.person)

    def moved(m: np.ndarray) -> dict:
        return {"faces": int(m.sum()),
                "emotions": {e: float(np.abs(pf[m, j] - probs[m, j]).mean()) for j, e in enumerate(EMOTIONS)},
                "evidence": {c: float(np.abs(lf[m, j] - learned[m, j]).mean())
                             for j, c in enumerate(("amusement", "surprise", "confusion", "attention"))}}

    return {"blendshapes_held_out": fidelity(fast[out], ds.blendshapes[out]),
            "blendshapes_all": fidelity(fast, ds.blendshapes),
            "student": scores(pf, ds), "smile": smile_accuracy(lf[:, 0], ds),
            "moved_held_out": moved(out), "moved_all": moved(np.ones(len(ds), bool))}


def latency_ms(ds: LabelledDataset, batch: int = 256, repeats: int = 20) -> dict[str, float]:
    """Per-frame time of the student's work in the processor (aligned mesh + ONNX), batched and
    one frame at a time; blendshapes are an input (the processor computes them anyway)."""
    from training.fit import featurise

    idx = np.resize(np.arange(len(ds)), batch)
    px = to_pixel_space(ds.landmarks[idx], ds.width[idx], ds.height[idx])
    bs = ds.blendshapes[idx]
    small = ds.subset(np.arange(len(ds)) < 256)
    x, rows = features_of(small, BlendshapeModel())
    model = to_onnx(fit_models(x, rows, small, TrainParams(emotion=HeadParams(max_iter=5), joy=HeadParams(max_iter=5),
                                                         surprise=HeadParams(max_iter=5))))
    sess = open_session(model.SerializeToString())

    def run(lo: int, hi: int) -> None:
        sess.run(None, {"features": featurise(px[lo:hi], bs[lo:hi])})

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
    import os

    try:
        cpu = next(line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                   if line.startswith("model name"))
    except (OSError, StopIteration):
        cpu = platform.processor() or "unknown CPU"
    return f"{cpu}, {os.cpu_count()} logical cores, {platform.system()} {platform.release()}"


def _commit() -> str:
    try:
        return subprocess.run(["git", "describe", "--always", "--dirty"], capture_output=True, text=True,
                              cwd=Path(__file__).parent, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
