"""Fit the landmark emotion student and the Mojo cue heads to people's labels; export to ONNX.

Data: ``training.dataset`` datasets (photos that people labelled: 8 emotion classes, and/or
smile yes/no). Every model reads the same landmark-only features
(``vision.features.expression.student_features``: the aligned 468-point mesh and the 52
blendshapes), projected onto the mesh's first ``COMPONENTS`` principal components (the
blendshapes pass through), standardised, then:

* ``emotion``: 7-way softmax, fitted to ``alpha`` x the human label + (1 - alpha) x the image
  teacher's probabilities, each labelled row weighted by the inverse frequency of its class so
  sadness and disgust count as much as neutral and happy (rows without an emotion label teach
  only through the teacher, when alpha < 1);
* ``joy``: P(people see joy: a happy label or a smile), balanced classes;
* ``surprise``: P(people label the face surprised), balanced classes.

Heads are linear (``hidden=0``) or one ReLU layer, fitted by L-BFGS (scipy) on the cross-entropy
with L2 weight decay. Training rows are augmented in landmark space: random 3D head rotations,
scale, shift and jitter, after which the blendshapes are recomputed from the moved landmarks by
the same ONNX model the processor uses.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper
from scipy.optimize import minimize

from schemas.vocabulary import EMOTIONS, NUM_BLENDSHAPES
from training.dataset import LabelledDataset
from vision.features.blendshapes import BlendshapeModel
from vision.features.expression import NUM_FEATURES, aligned_mesh, student_features
from vision.features.pose import rotation_to_face, to_pixel_space

COMPONENTS = 120
MESH_DIMS = NUM_FEATURES - NUM_BLENDSHAPES
MAX_ITER = 250


@dataclass(frozen=True)
class HeadParams:
    hidden: int = 0
    l2: float = 1e-3
    max_iter: int = MAX_ITER


@dataclass(frozen=True)
class TrainParams:
    """What ``facestream train`` fits; the model card compares the alternatives."""

    emotion: HeadParams = HeadParams(hidden=0, l2=1e-3)
    alpha: float = 1.0  # weight of the human label against the teacher's soft label
    joy: HeadParams = HeadParams(hidden=0, l2=1e-3)
    surprise: HeadParams = HeadParams(hidden=0, l2=1e-2)
    components: int = COMPONENTS
    copies: int = 1  # augmented copies per training row
    seed: int = 0


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



def featurise(points_px: np.ndarray, blendshapes: np.ndarray) -> np.ndarray:
    """[N, 478, 3] pixel-space landmarks, [N, 52] blendshapes -> [N, 1456] student features."""
    return student_features(aligned_mesh(points_px, rotation_to_face(points_px) if len(points_px) else None),
                            blendshapes)


def features_of(ds: LabelledDataset, model: BlendshapeModel, rng: np.random.Generator | None = None,
                aug: Augment | None = None, copies: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Student features [M, 1456] and the row of ``ds`` each came from [M]: the rows themselves,
    then ``copies`` moved copies of each whose blendshapes are recomputed."""
    px = to_pixel_space(ds.landmarks, ds.width, ds.height)
    feats, rows = [featurise(px, ds.blendshapes)], [np.arange(len(ds))]
    for _ in range(copies):
        assert rng is not None and aug is not None
        moved = augment_landmarks(px, ds.width, ds.height, rng, aug)
        scale = np.stack([ds.width, ds.height, ds.width], 1)[:, None, :]
        feats.append(featurise(moved, model.predict(moved / scale, ds.width, ds.height)))
        rows.append(np.arange(len(ds)))
    return np.concatenate(feats), np.concatenate(rows)


def compact_features(x: np.ndarray) -> np.ndarray:
    """[N, 1456] -> [N, 172]: the 40 expression-bearing points of ``SHAPE_POINTS`` and the
    blendshapes, the smaller feature set the card compares against."""
    from vision.features.expression import MESH_POINTS, SHAPE_POINTS

    pos = np.searchsorted(MESH_POINTS, SHAPE_POINTS)
    cols = (3 * pos[:, None] + np.arange(3)).ravel()
    return np.concatenate([x[:, cols], x[:, MESH_DIMS:]], axis=1)


@dataclass(frozen=True)
class Projection:
    """The mesh part of the features onto its principal components; blendshapes unchanged."""

    mean: np.ndarray  # [1404]
    basis: np.ndarray  # [1404, C]

    @classmethod
    def fit(cls, x: np.ndarray, components: int) -> "Projection":
        mesh = x[:, :MESH_DIMS].astype(np.float64)
        mean = mesh.mean(axis=0)
        _, _, vt = np.linalg.svd(mesh - mean, full_matrices=False)
        return cls(mean.astype(np.float32), vt[:components].T.astype(np.float32))

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """[N, 1456] -> [N, C + 52]."""
        return np.concatenate([(x[:, :MESH_DIMS] - self.mean) @ self.basis, x[:, MESH_DIMS:]], axis=1)


@dataclass
class Head:
    """A fitted softmax head: standardisation, optional ReLU layer, output layer."""

    mean: np.ndarray  # [D]
    std: np.ndarray  # [D]
    w2: np.ndarray  # [H or D, K]
    b2: np.ndarray  # [K]
    w1: np.ndarray | None = None  # [D, H]
    b1: np.ndarray | None = None  # [H]

    def predict(self, x: np.ndarray) -> np.ndarray:
        """[N, D] -> [N, K] probabilities (numpy; the ONNX export computes the same)."""
        h = (x - self.mean) / self.std
        if self.w1 is not None:
            h = np.maximum(h @ self.w1 + self.b1, 0.0)
        z = h @ self.w2 + self.b2
        z = np.exp(z - z.max(axis=1, keepdims=True))
        return z / z.sum(axis=1, keepdims=True)


def fit(x: np.ndarray, target: np.ndarray, weight: np.ndarray, p: HeadParams = HeadParams(),
        seed: int = 0) -> Head:
    """Minimise sum_i weight_i * CE(target_i, softmax(net(x_i))) / sum(weight) + l2 * |W|^2.

    x [N, D], target [N, K] (rows are distributions), weight [N] >= 0."""
    mean = x.mean(axis=0)
    std = x.std(axis=0) + 1e-3
    xs = ((x - mean) / std).astype(np.float64)
    n, d = xs.shape
    k, h = target.shape[1], p.hidden
    wn = (weight / weight.sum())[:, None]
    rng = np.random.default_rng(seed)
    shapes = [(d, h), (h,), (h, k), (k,)] if h else [(d, k), (k,)]
    theta0 = np.concatenate([rng.normal(0, np.sqrt(2.0 / d), d * h), np.zeros(h),
                             rng.normal(0, np.sqrt(1.0 / h), h * k), np.zeros(k)]) if h else np.zeros(d * k + k)

    def unpack(theta: np.ndarray) -> list[np.ndarray]:
        out, i = [], 0
        for shape in shapes:
            size = int(np.prod(shape))
            out.append(theta[i:i + size].reshape(shape))
            i += size
        return out

    def loss(theta: np.ndarray) -> tuple[float, np.ndarray]:
        parts = unpack(theta)
        if h:
            w1, b1, w2, b2 = parts
            a = xs @ w1 + b1
            hid = np.maximum(a, 0.0)
        else:
            w2, b2 = parts
            hid = xs
        z = hid @ w2 + b2
        z -= z.max(axis=1, keepdims=True)
        logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
        dz = wn * (np.exp(logp) * target.sum(axis=1, keepdims=True) - target)
        grads = [hid.T @ dz + 2 * p.l2 * w2, dz.sum(0)]
        value = -(wn * target * logp).sum() + p.l2 * (w2**2).sum()
        if h:
            da = (dz @ w2.T) * (a > 0)
            grads = [xs.T @ da + 2 * p.l2 * w1, da.sum(0)] + grads
            value += p.l2 * (w1**2).sum()
        return value, np.concatenate([g.ravel() for g in grads])

    res = minimize(loss, theta0, jac=True, method="L-BFGS-B", options={"maxiter": p.max_iter})
    f32 = [a.astype(np.float32) for a in unpack(res.x)]
    if h:
        w1, b1, w2, b2 = f32
        return Head(mean.astype(np.float32), std.astype(np.float32), w2, b2, w1, b1)
    w2, b2 = f32
    return Head(mean.astype(np.float32), std.astype(np.float32), w2, b2)


def balanced_weights(labels: np.ndarray, k: int) -> np.ndarray:
    """[N] class indices (-1: unlabelled) -> [N] weights n / (k_present * n_class); 0 unlabelled."""
    has = labels >= 0
    counts = np.bincount(labels[has], minlength=k).astype(np.float64)
    present = max(int((counts > 0).sum()), 1)
    per_class = np.where(counts > 0, has.sum() / (present * np.maximum(counts, 1)), 0.0)
    return np.where(has, per_class[np.maximum(labels, 0)], 0.0)


def emotion_targets(ds: LabelledDataset, alpha: float) -> tuple[np.ndarray, np.ndarray]:
    """Soft targets [N, 7] and weights [N]: labelled rows alpha x one-hot + (1 - alpha) x
    teacher, class-balanced; unlabelled rows the teacher alone at weight 1 (0 when alpha is 1)."""
    y = ds.label_index()
    has = y >= 0
    onehot = np.zeros((len(ds), len(EMOTIONS)))
    onehot[has, y[has]] = 1.0
    target = np.where(has[:, None], alpha * onehot + (1 - alpha) * ds.teacher, ds.teacher)
    weight = np.where(has, balanced_weights(y, len(EMOTIONS)), 0.0 if alpha >= 1 else 1.0)
    return target, weight


def binary_targets(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """[N] 1 / 0 / -1 -> targets [N, 2] (no, yes) and balanced weights [N] (0 where unknown)."""
    yes = (labels == 1).astype(np.float64)
    return np.stack([1 - yes, yes], axis=1), balanced_weights(labels, 2)


def surprise_labels(ds: LabelledDataset) -> np.ndarray:
    """[N] 1 surprised, 0 another emotion, -1 no emotion label."""
    y = ds.label_index()
    return np.where(y >= 0, (y == EMOTIONS.index("surprise")).astype(np.int64), -1)


@dataclass
class Models:
    """Everything ``facestream train`` writes: one projection, three heads."""

    projection: Projection
    emotion: Head
    joy: Head
    surprise: Head
    meta: dict = field(default_factory=dict)

    def predict(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """[N, 1456] -> emotions [N, 7], P(joy) [N], P(surprise) [N]."""
        z = self.projection(x)
        return self.emotion.predict(z), self.joy.predict(z)[:, 1], self.surprise.predict(z)[:, 1]


def fit_models(x: np.ndarray, rows: np.ndarray, ds: LabelledDataset, p: TrainParams = TrainParams()) -> Models:
    """Fit the projection and the three heads on features ``x`` [M, 1456] of rows ``rows`` [M] of ``ds``."""
    proj = Projection.fit(x, p.components)
    z = proj(x)
    heads = {}
    for name, (target, weight), hp in (
        ("emotion", emotion_targets(ds, p.alpha), p.emotion),
        ("joy", binary_targets(ds.joy()), p.joy),
        ("surprise", binary_targets(surprise_labels(ds)), p.surprise),
    ):
        keep = weight[rows] > 0
        heads[name] = fit(z[keep], target[rows][keep], weight[rows][keep], hp, seed=p.seed)
    return Models(proj, heads["emotion"], heads["joy"], heads["surprise"])


def train(ds: LabelledDataset, p: TrainParams = TrainParams(), aug: Augment = Augment(),
          model: BlendshapeModel | None = None) -> tuple[Models, np.ndarray]:
    """Augment, featurise and fit on all of ``ds``: the student and its cue heads. Also returns
    the features [len(ds), 1456] of the rows themselves (the image head reads them too)."""
    x, rows = features_of(ds, model or BlendshapeModel(), np.random.default_rng(p.seed), aug, p.copies)
    return fit_models(x, rows, ds, p), x[: len(ds)]


def _head_nodes(head: Head, x: str, name: str, out: str, init: list) -> list[onnx.NodeProto]:
    """Nodes computing ``head.predict`` of tensor ``x`` into ``out`` (softmax probabilities)."""
    c = numpy_helper.from_array
    init += [c(head.mean, f"{name}/mean"), c(head.std, f"{name}/std"), c(head.w2, f"{name}/w2"),
             c(head.b2, f"{name}/b2")]
    nodes = [helper.make_node("Sub", [x, f"{name}/mean"], [f"{name}/centred"]),
             helper.make_node("Div", [f"{name}/centred", f"{name}/std"], [f"{name}/standard"])]
    h = f"{name}/standard"
    if head.w1 is not None:
        init += [c(head.w1, f"{name}/w1"), c(head.b1, f"{name}/b1")]
        nodes += [helper.make_node("Gemm", [h, f"{name}/w1", f"{name}/b1"], [f"{name}/hidden_pre"]),
                  helper.make_node("Relu", [f"{name}/hidden_pre"], [f"{name}/hidden"])]
        h = f"{name}/hidden"
    nodes += [helper.make_node("Gemm", [h, f"{name}/w2", f"{name}/b2"], [f"{name}/logits"]),
              helper.make_node("Softmax", [f"{name}/logits"], [out], axis=1)]
    return nodes


def _projection_nodes(p: Projection, x: str, out: str, init: list) -> list[onnx.NodeProto]:
    """Nodes computing ``p(x)`` as one affine map: mesh columns onto the components,
    blendshapes through."""
    c = numpy_helper.from_array
    k = p.basis.shape[1]
    basis = np.zeros((NUM_FEATURES, k + 52), np.float32)
    basis[:MESH_DIMS, :k] = p.basis
    basis[MESH_DIMS:, k:] = np.eye(52, dtype=np.float32)
    init += [c(basis, f"{out}/basis"), c(np.concatenate([p.mean, np.zeros(52, np.float32)]), f"{out}/mean")]
    return [helper.make_node("Sub", [x, f"{out}/mean"], [f"{out}/centred"]),
            helper.make_node("MatMul", [f"{out}/centred", f"{out}/basis"], [out])]


def to_onnx(m: Models) -> onnx.ModelProto:
    """features [batch, 1456] -> probabilities [batch, 7] (EMOTIONS order), joy [batch],
    surprise [batch]."""
    init = [numpy_helper.from_array(np.array(1, np.int64), "yes")]
    nodes = _projection_nodes(m.projection, "features", "projected", init)
    nodes += _head_nodes(m.emotion, "projected", "emotion", "probabilities", init)
    for name in ("joy", "surprise"):
        nodes += _head_nodes(getattr(m, name), "projected", name, f"{name}/both", init)
        # A scalar index drops the class axis: [batch, 2] -> [batch], P(yes).
        nodes.append(helper.make_node("Gather", [f"{name}/both", "yes"], [name], axis=1))
    f = TensorProto.FLOAT
    graph = helper.make_graph(
        nodes, "emotion_student",
        [helper.make_tensor_value_info("features", f, ["batch", NUM_FEATURES])],
        [helper.make_tensor_value_info("probabilities", f, ["batch", len(EMOTIONS)]),
         helper.make_tensor_value_info("joy", f, ["batch"]),
         helper.make_tensor_value_info("surprise", f, ["batch"])],
        init)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)],
                              producer_name="facestream train",
                              doc_string="landmark emotion student and cue heads; classes: " + ", ".join(EMOTIONS))
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def save(models: Models, out: Path, provenance: dict) -> None:
    """Write ``<out>.onnx`` and ``<out>.json`` (provenance and what the heads are)."""
    model = to_onnx(models)
    out.parent.mkdir(parents=True, exist_ok=True)
    onnx_path = out.with_suffix(".onnx")
    onnx_path.write_bytes(model.SerializeToString())
    meta = dict(provenance)
    meta.update({"onnx_sha256": hashlib.sha256(onnx_path.read_bytes()).hexdigest(),
                 "classes": list(EMOTIONS), "features": NUM_FEATURES,
                 "components": int(models.projection.basis.shape[1]),
                 "outputs": {"probabilities": "7 emotions", "joy": "P(people see joy: happy or smiling)",
                             "surprise": "P(people label the face surprised)"}})
    out.with_suffix(".json").write_text(json.dumps(meta, indent=2) + "\n")
