"""Fit the landmark-only emotion student to the image teacher's probabilities; export to ONNX.

The student is a one-hidden-layer network (224 -> 32 ReLU -> 7 softmax) over
``processors.features.expression.student_features``, fitted by L-BFGS (scipy) to minimise the
cross-entropy to the teacher's soft labels, with L2 weight decay. Each person's rows weigh
1/sqrt(rows of that person) so one long video does not drown everyone else. Training rows are
augmented in landmark space: random 3D head rotations, scale, shift and jitter, after which the
blendshapes are recomputed from the moved landmarks by the same ONNX model the processor uses.

The cues amusement and surprise are calibrated against the teacher: a logistic map per cue from
its transparent evidence to the teacher's happy / surprise probability (Platt scaling).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper
from scipy.optimize import minimize

from processors import cues as cue_fns
from processors.features.blendshapes import BlendshapeModel
from processors.features.expression import NUM_FEATURES, aligned_shape, sequence_deltas, student_features
from processors.features.eyes import gaze
from processors.features.pose import head_pose, to_pixel_space
from producers.dataset import Dataset
from schemas.records import EMOTIONS

HIDDEN = 32
L2 = 1e-3
MAX_ITER = 300


@dataclass(frozen=True)
class Augment:
    copies: int = 4  # augmented copies per training row (the original is kept too)
    yaw_deg: float = 25.0
    pitch_deg: float = 15.0
    roll_deg: float = 20.0
    scale: tuple[float, float] = (0.6, 1.4)
    jitter: float = 0.004  # landmark noise, as a fraction of the face's width


def _rotation(yaw: np.ndarray, pitch: np.ndarray, roll: np.ndarray) -> np.ndarray:
    """[N] angles in radians -> [N, 3, 3] rotations in image axes."""
    cy, sy, cp, sp, cr, sr = np.cos(yaw), np.sin(yaw), np.cos(pitch), np.sin(pitch), np.cos(roll), np.sin(roll)
    one, zero = np.ones_like(yaw), np.zeros_like(yaw)
    ry = np.stack([cy, zero, sy, zero, one, zero, -sy, zero, cy], -1).reshape(-1, 3, 3)
    rx = np.stack([one, zero, zero, zero, cp, -sp, zero, sp, cp], -1).reshape(-1, 3, 3)
    rz = np.stack([cr, -sr, zero, sr, cr, zero, zero, zero, one], -1).reshape(-1, 3, 3)
    return ry @ rx @ rz


def augment_landmarks(points_px: np.ndarray, width: np.ndarray, height: np.ndarray,
                      rng: np.random.Generator, aug: Augment) -> np.ndarray:
    """[N, 478, 3] pixel-space landmarks -> [N, 478, 3] moved copies (rotated about the face's
    centre, scaled, shifted, jittered), kept inside the image."""
    n = len(points_px)
    centre = points_px.mean(axis=1, keepdims=True)
    r = _rotation(np.radians(rng.uniform(-aug.yaw_deg, aug.yaw_deg, n)),
                  np.radians(rng.uniform(-aug.pitch_deg, aug.pitch_deg, n)),
                  np.radians(rng.uniform(-aug.roll_deg, aug.roll_deg, n)))
    s = rng.uniform(*aug.scale, n)[:, None, None]
    moved = np.einsum("nij,nkj->nki", r, points_px - centre) * s
    face_w = np.ptp(moved[:, :, 0], axis=1)[:, None, None]
    moved += rng.normal(0.0, aug.jitter, moved.shape) * face_w
    # New centre anywhere the face still fits in the image.
    half = np.abs(moved[:, :, :2]).max(axis=1)
    lo, hi = half, np.stack([width, height], 1) - half
    c = rng.uniform(np.minimum(lo, hi), np.maximum(lo, hi))
    moved[:, :, :2] += c[:, None, :]
    return moved.astype(np.float32)


def deltas_of(ds: Dataset) -> np.ndarray:
    """[N, 52] temporal deltas of each row within its video sequence (0 for stills)."""
    out = np.zeros_like(ds.blendshapes)
    for seq in np.unique(ds.sequence):
        idx = np.flatnonzero(ds.sequence == seq)
        if len(idx) > 1:
            idx = idx[np.argsort(ds.frame[idx])]
            out[idx] = sequence_deltas(ds.blendshapes[idx], ds.time_ms[idx])
    return out


def features_of(ds: Dataset, model: BlendshapeModel, rng: np.random.Generator | None = None,
                aug: Augment | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Student features [M, 224] and the row of ``ds`` each came from [M]. With ``aug``, each
    row also yields ``aug.copies`` moved copies whose blendshapes are recomputed."""
    px = to_pixel_space(ds.landmarks, ds.width, ds.height)
    delta = deltas_of(ds)
    feats = [student_features(aligned_shape(px), ds.blendshapes, delta)]
    rows = [np.arange(len(ds))]
    if aug is not None and aug.copies:
        assert rng is not None
        for _ in range(aug.copies):
            moved = augment_landmarks(px, ds.width, ds.height, rng, aug)
            scale = np.stack([ds.width, ds.height, ds.width], 1)[:, None, :]
            bs = model.predict(moved / scale, ds.width, ds.height)
            feats.append(student_features(aligned_shape(moved), bs, delta))
            rows.append(np.arange(len(ds)))
    return np.concatenate(feats), np.concatenate(rows)


@dataclass
class Student:
    """Weights of the fitted network and the input standardisation."""

    mean: np.ndarray  # [224]
    std: np.ndarray  # [224]
    w1: np.ndarray  # [224, H]
    b1: np.ndarray  # [H]
    w2: np.ndarray  # [H, 7]
    b2: np.ndarray  # [7]

    def predict(self, x: np.ndarray) -> np.ndarray:
        """[N, 224] features -> [N, 7] probabilities (numpy; the ONNX export computes the same)."""
        h = np.maximum((x - self.mean) / self.std @ self.w1 + self.b1, 0.0)
        z = h @ self.w2 + self.b2
        z = np.exp(z - z.max(axis=1, keepdims=True))
        return z / z.sum(axis=1, keepdims=True)


def _unpack(theta: np.ndarray, d: int, h: int, k: int):
    i = 0
    w1 = theta[i:i + d * h].reshape(d, h); i += d * h
    b1 = theta[i:i + h]; i += h
    w2 = theta[i:i + h * k].reshape(h, k); i += h * k
    return w1, b1, w2, theta[i:i + k]


def fit(x: np.ndarray, target: np.ndarray, weight: np.ndarray, seed: int = 0,
        hidden: int = HIDDEN, l2: float = L2, max_iter: int = MAX_ITER) -> Student:
    """Minimise sum_i weight_i * CE(target_i, softmax(net(x_i))) / sum(weight) + l2 * |W|^2."""
    mean = x.mean(axis=0)
    std = x.std(axis=0) + 1e-3
    xs = ((x - mean) / std).astype(np.float64)
    n, d = xs.shape
    k = target.shape[1]
    wn = (weight / weight.sum())[:, None]
    rng = np.random.default_rng(seed)
    theta0 = np.concatenate([rng.normal(0, np.sqrt(2.0 / d), d * hidden), np.zeros(hidden),
                             rng.normal(0, np.sqrt(1.0 / hidden), hidden * k), np.zeros(k)])

    def loss(theta: np.ndarray) -> tuple[float, np.ndarray]:
        w1, b1, w2, b2 = _unpack(theta, d, hidden, k)
        a = xs @ w1 + b1
        h = np.maximum(a, 0.0)
        z = h @ w2 + b2
        z -= z.max(axis=1, keepdims=True)
        logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
        value = -(wn * target * logp).sum() + l2 * ((w1**2).sum() + (w2**2).sum())
        dz = wn * (np.exp(logp) * target.sum(axis=1, keepdims=True) - target)
        dw2 = h.T @ dz + 2 * l2 * w2
        da = (dz @ w2.T) * (a > 0)
        dw1 = xs.T @ da + 2 * l2 * w1
        return value, np.concatenate([dw1.ravel(), da.sum(0), dw2.ravel(), dz.sum(0)])

    res = minimize(loss, theta0, jac=True, method="L-BFGS-B", options={"maxiter": max_iter})
    w1, b1, w2, b2 = _unpack(res.x, d, hidden, k)
    f32 = np.float32
    return Student(mean.astype(f32), std.astype(f32), w1.astype(f32), b1.astype(f32), w2.astype(f32), b2.astype(f32))


def person_weights(person: np.ndarray) -> np.ndarray:
    _, inverse, counts = np.unique(person, return_inverse=True, return_counts=True)
    return 1.0 / np.sqrt(counts[inverse])


def train(ds: Dataset, seed: int = 0, aug: Augment = Augment(), model: BlendshapeModel | None = None) -> Student:
    """Augment, featurise and fit on all of ``ds``."""
    model = model or BlendshapeModel()
    x, rows = features_of(ds, model, np.random.default_rng(seed), aug)
    return fit(x, ds.teacher[rows], person_weights(ds.person)[rows], seed=seed)


def to_onnx(s: Student) -> onnx.ModelProto:
    """features [batch, 224] -> probabilities [batch, 7] (EMOTIONS order)."""
    c = numpy_helper.from_array
    nodes = [
        helper.make_node("Sub", ["features", "mean"], ["centred"]),
        helper.make_node("Div", ["centred", "std"], ["standard"]),
        helper.make_node("Gemm", ["standard", "w1", "b1"], ["hidden_pre"]),
        helper.make_node("Relu", ["hidden_pre"], ["hidden"]),
        helper.make_node("Gemm", ["hidden", "w2", "b2"], ["logits"]),
        helper.make_node("Softmax", ["logits"], ["probabilities"], axis=1),
    ]
    graph = helper.make_graph(
        nodes, "emotion_student",
        [helper.make_tensor_value_info("features", TensorProto.FLOAT, ["batch", NUM_FEATURES])],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["batch", len(EMOTIONS)])],
        [c(s.mean, "mean"), c(s.std, "std"), c(s.w1, "w1"), c(s.b1, "b1"), c(s.w2, "w2"), c(s.b2, "b2")])
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)],
                          producer_name="facestream train", doc_string="landmark emotion student; "
                          "classes: " + ", ".join(EMOTIONS))
    m.ir_version = 8
    onnx.checker.check_model(m)
    return m


def cue_evidence(ds: Dataset) -> np.ndarray:
    """[N, 4] the transparent per-frame cue evidence (amusement, surprise, confusion, attention)."""
    px = to_pixel_space(ds.landmarks, ds.width, ds.height)
    return cue_fns.frame_evidence(ds.blendshapes, head_pose(px), gaze(px))


def platt(evidence: np.ndarray, target: np.ndarray, weight: np.ndarray | None = None) -> tuple[float, float]:
    """(a, b) minimising the weighted cross-entropy of sigmoid(a * evidence + b) to soft targets
    in [0, 1]."""
    w = np.ones_like(evidence) if weight is None else weight
    w = w / w.sum()

    def loss(p: np.ndarray) -> tuple[float, np.ndarray]:
        z = p[0] * evidence + p[1]
        q = 1.0 / (1.0 + np.exp(-z))
        eps = 1e-7
        v = -(w * (target * np.log(q + eps) + (1 - target) * np.log(1 - q + eps))).sum()
        g = w * (q - target)
        return v, np.array([(g * evidence).sum(), g.sum()])

    res = minimize(loss, np.array([4.0, -2.0]), jac=True, method="L-BFGS-B")
    return float(res.x[0]), float(res.x[1])


def calibration(ds: Dataset) -> dict[str, dict[str, float]]:
    """Platt maps from amusement / surprise evidence to the teacher's happy / surprise, each
    person weighted as in training."""
    ev = cue_evidence(ds)
    weight = person_weights(ds.person)
    out = {}
    for cue, col, emotion in (("amusement", 0, "happy"), ("surprise", 1, "surprise")):
        a, b = platt(ev[:, col], ds.teacher[:, EMOTIONS.index(emotion)], weight)
        out[cue] = {"a": a, "b": b, "teacher_class": emotion}
    return out


def save(student: Student, calib: dict, out: Path, provenance: dict) -> None:
    """Write ``<out>.onnx`` and ``<out>.json`` (calibration and provenance)."""
    import hashlib

    model = to_onnx(student)
    out.parent.mkdir(parents=True, exist_ok=True)
    onnx_path = out.with_suffix(".onnx")
    onnx_path.write_bytes(model.SerializeToString())
    meta = dict(provenance)
    meta.update({"onnx_sha256": hashlib.sha256(onnx_path.read_bytes()).hexdigest(),
                 "classes": list(EMOTIONS), "features": NUM_FEATURES, "hidden": int(student.w1.shape[1]),
                 "cue_calibration": calib})
    out.with_suffix(".json").write_text(json.dumps(meta, indent=2) + "\n")
