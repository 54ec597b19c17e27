"""Distil MediaPipe's blendshape network into a small MLP: the same input (146 landmarks in pixel
coordinates), the same 52 outputs, a few hundred times fewer operations.

Landmark-only clients (Mojo) send no blendshapes, so the server computes them for every face;
MediaPipe's network (an MLP-Mixer) is most of that path's cost. The network here:

    landmarks [N, 146, 2] pixels
      -> centred on their mean, divided by their RMS distance from it   (scale and shift gone)
      -> [N, 292], standardised
      -> Dense(HIDDEN) ReLU -> Dense(HIDDEN) ReLU -> Dense(52) -> clip to [0, 1]

Training rows are the landmarks of every labelled face of the dataset plus ``copies`` moved copies
each (``training.fit.augment_landmarks``: head rotations, scale, shift, jitter: the augmentations
the emotion student uses) and the faces of the project's videos except the held-out demo clip;
every target is MediaPipe's network on exactly those landmarks, standardised per blendshape for
the loss (the emotion student standardises the blendshapes it reads, so an error on a blendshape
that hardly varies moves it as much as a larger one on a lively blendshape). People in ``held_out`` (a fixed
fifth, by a hash of the person id) are never trained on: they, and the demo clip, are what the
network is judged on, per blendshape.
"""

from __future__ import annotations

import hashlib
import json
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from schemas.vocabulary import BLENDSHAPES, NUM_BLENDSHAPES
from training.dataset import LabelledDataset
from training.fit import Augment, augment_landmarks
from vision.features.blendshapes import LANDMARK_SUBSET, BlendshapeModel, to_model_input
from vision.features.pose import to_pixel_space

POINTS = len(LANDMARK_SUBSET)
HELD_OUT_SHARE = 5  # one person in five is held out


@dataclass(frozen=True)
class DistillParams:
    hidden: tuple[int, ...] = (384, 384)
    copies: int = 6  # augmented copies of each training face
    l2: float = 1e-5
    batch_size: int = 256
    learning_rate: float = 1e-3
    max_epochs: int = 150
    patience: int = 10  # epochs without the training loss improving by 1e-7 before stopping
    # Targets are standardised (divided by max(std, target_floor)) so that the loss weighs each
    # blendshape as the emotion student, which standardises its inputs, feels its errors.
    target_floor: float = 0.01
    seed: int = 0


def held_out(person: np.ndarray) -> np.ndarray:
    """[N] person ids -> [N] bool: the fixed fifth of people the distilled network never trains on
    (a hash of the id, so ``facestream evaluate`` finds the same people without a list)."""
    return np.array([int(hashlib.sha256(p.encode()).hexdigest(), 16) % HELD_OUT_SHARE == 0
                     for p in person.tolist()], bool)


def normalise(x: np.ndarray) -> np.ndarray:
    """[N, 146, 2] pixel landmarks -> [N, 292]: centred, divided by the RMS distance from the
    centre (what the ONNX graph computes before its first layer)."""
    x = np.asarray(x, np.float32)
    c = x - x.mean(axis=1, keepdims=True)
    r = np.sqrt((c**2).sum(axis=2).mean(axis=1))
    return (c / np.maximum(r, 1e-6)[:, None, None]).reshape(len(x), -1)


@dataclass
class Student:
    """The fitted network: standardisation and dense layers (``layers[i] = (W [in, out], b [out])``)."""

    mean: np.ndarray  # [292]
    std: np.ndarray  # [292]
    layers: list[tuple[np.ndarray, np.ndarray]]

    def predict(self, model_input: np.ndarray) -> np.ndarray:
        """[N, 146, 2] pixel landmarks -> [N, 52] (numpy; the ONNX export computes the same)."""
        h = (normalise(model_input) - self.mean) / self.std
        for i, (w, b) in enumerate(self.layers):
            h = h @ w + b
            if i < len(self.layers) - 1:
                h = np.maximum(h, 0.0)
        return np.clip(h, 0.0, 1.0)


@dataclass(frozen=True)
class Corpus:
    """Model inputs [M, 146, 2], exact targets [M, 52] and the person of each row [M]."""

    x: np.ndarray
    y: np.ndarray
    person: np.ndarray

    @staticmethod
    def concat(parts: list["Corpus"]) -> "Corpus":
        return Corpus(*(np.concatenate([getattr(p, k) for p in parts]) for k in ("x", "y", "person")))


def _exact(model: BlendshapeModel, x: np.ndarray, chunk: int = 4096) -> np.ndarray:
    return np.concatenate([model.run(x[i:i + chunk]) for i in range(0, len(x), chunk)]) if len(x) \
        else np.zeros((0, NUM_BLENDSHAPES), np.float32)


def corpus_of_faces(landmarks: np.ndarray, width: np.ndarray, height: np.ndarray, person: np.ndarray,
                    model: BlendshapeModel, copies: int = 0, rng: np.random.Generator | None = None,
                    aug: Augment = Augment()) -> Corpus:
    """Faces [N, 478, 3] (normalised), image sizes [N], people [N] -> the faces themselves and
    ``copies`` moved copies of each, with MediaPipe's network's blendshapes as targets."""
    width, height = np.asarray(width, np.float32), np.asarray(height, np.float32)
    px = to_pixel_space(landmarks, width, height)
    scale = np.stack([width, height, width], 1)[:, None, :]
    views = [np.asarray(landmarks, np.float32)]
    for _ in range(copies):
        assert rng is not None
        views.append(augment_landmarks(px, width, height, rng, aug) / scale)
    parts = []
    for v in views:
        x = to_model_input(v, width, height)
        parts.append(Corpus(x, _exact(model, x), np.asarray(person)))
    return Corpus.concat(parts)


def fit(train: Corpus, p: DistillParams = DistillParams(), progress: Callable[[str], None] | None = None) -> Student:
    """Fit the student to MediaPipe's outputs by mean squared error (scikit-learn's MLP, Adam)."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPRegressor

    z = normalise(train.x)
    mean, std = z.mean(axis=0), z.std(axis=0) + 1e-6
    y_mean, y_scale = train.y.mean(axis=0), np.maximum(train.y.std(axis=0), p.target_floor)
    net = MLPRegressor(hidden_layer_sizes=p.hidden, activation="relu", solver="adam", alpha=p.l2,
                       batch_size=p.batch_size, learning_rate_init=p.learning_rate, max_iter=p.max_epochs,
                       # No early stopping on a validation fraction: scikit-learn judges it by R^2
                       # averaged over outputs, which blendshapes that hardly vary (_neutral) dominate.
                       early_stopping=False, n_iter_no_change=p.patience, tol=1e-7, random_state=p.seed)
    with warnings.catch_warnings():
        # Stopping at max_epochs is a choice here, said in the progress line, not a fault.
        warnings.simplefilter("ignore", ConvergenceWarning)
        net.fit(((z - mean) / std).astype(np.float32), ((train.y - y_mean) / y_scale).astype(np.float32))
    if progress:
        progress(f"{net.n_iter_} epochs, training loss {net.loss_:.6f}")
    layers = [(w.astype(np.float32), b.astype(np.float32)) for w, b in zip(net.coefs_, net.intercepts_)]
    # Undo the target standardisation inside the last layer: y = (h W + b) * scale + mean.
    w, b = layers[-1]
    layers[-1] = ((w * y_scale).astype(np.float32), (b * y_scale + y_mean).astype(np.float32))
    return Student(mean.astype(np.float32), std.astype(np.float32), layers)


def fidelity(pred: np.ndarray, exact: np.ndarray) -> dict:
    """Per-blendshape mean absolute difference of [N, 52] predictions from MediaPipe's [N, 52]."""
    mad = np.abs(pred - exact).mean(axis=0)
    worst = np.argsort(mad)[::-1][:5]
    return {"faces": int(len(pred)), "mean_abs_diff": float(mad.mean()), "max_abs_diff_blendshape": float(mad.max()),
            "worst": {BLENDSHAPES[i]: float(mad[i]) for i in worst},
            "per_blendshape": {BLENDSHAPES[i]: float(mad[i]) for i in range(NUM_BLENDSHAPES)}}


def to_onnx(s: Student) -> onnx.ModelProto:
    """landmarks [batch, 146, 2] float32 pixels -> blendshapes [batch, 52]: the exact network's
    input and output names, so either file serves ``BlendshapeModel``."""
    c = numpy_helper.from_array
    init = [c(np.array([-1, POINTS * 2], np.int64), "flat_shape"), c(np.array([1], np.int64), "points_axis"),
            c(np.array([2], np.int64), "xy_axis"), c(np.array(1e-6, np.float32), "eps"),
            c(s.mean, "mean"), c(s.std, "std"), c(np.array(0.0, np.float32), "lo"), c(np.array(1.0, np.float32), "hi")]
    nodes = [
        helper.make_node("ReduceMean", ["landmarks", "points_axis"], ["centre"], keepdims=1),
        helper.make_node("Sub", ["landmarks", "centre"], ["centred"]),
        helper.make_node("Mul", ["centred", "centred"], ["squared"]),
        helper.make_node("ReduceSum", ["squared", "xy_axis"], ["dist2"], keepdims=1),
        helper.make_node("ReduceMean", ["dist2", "points_axis"], ["ms"], keepdims=1),
        helper.make_node("Sqrt", ["ms"], ["rms"]),
        helper.make_node("Max", ["rms", "eps"], ["radius"]),
        helper.make_node("Div", ["centred", "radius"], ["unit"]),
        helper.make_node("Reshape", ["unit", "flat_shape"], ["flat"]),
        helper.make_node("Sub", ["flat", "mean"], ["off"]),
        helper.make_node("Div", ["off", "std"], ["h0"]),
    ]
    h = "h0"
    for i, (w, b) in enumerate(s.layers):
        init += [c(w, f"w{i}"), c(b, f"b{i}")]
        nodes.append(helper.make_node("Gemm", [h, f"w{i}", f"b{i}"], [f"z{i}"]))
        if i < len(s.layers) - 1:
            nodes.append(helper.make_node("Relu", [f"z{i}"], [f"h{i + 1}"]))
            h = f"h{i + 1}"
    nodes.append(helper.make_node("Clip", [f"z{len(s.layers) - 1}", "lo", "hi"], ["blendshapes"]))
    f = TensorProto.FLOAT
    graph = helper.make_graph(nodes, "blendshapes_distilled",
                              [helper.make_tensor_value_info("landmarks", f, ["batch", POINTS, 2])],
                              [helper.make_tensor_value_info("blendshapes", f, ["batch", NUM_BLENDSHAPES])], init)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)], producer_name="facestream distill",
                              doc_string="MediaPipe's face blendshapes, distilled; outputs in MediaPipe's order")
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def flops_per_face(s: Student) -> int:
    return int(sum(2 * w.shape[0] * w.shape[1] for w, _ in s.layers))


def save(s: Student, out: Path, provenance: dict) -> Path:
    """Write ``<out>.onnx`` and ``<out>.json`` (provenance, architecture, held-out figures)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    path = out.with_suffix(".onnx")
    path.write_bytes(to_onnx(s).SerializeToString())
    meta = dict(provenance)
    meta.update({"onnx_sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
                 "input": "landmarks [batch, 146, 2] float32, as face_blendshapes.onnx",
                 "output": "blendshapes [batch, 52] float32 in MediaPipe's category order",
                 "layers": [list(w.shape) for w, _ in s.layers], "flops_per_face": flops_per_face(s)})
    out.with_suffix(".json").write_text(json.dumps(meta, indent=2) + "\n")
    return path


def video_faces(names: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Landmarks [N, 478, 3], widths [N], heights [N] of every face the edge landmarker finds in
    the named project videos (``infra.assets.MEDIA``)."""
    from infra import assets
    from producers.publish import ProduceStats, extract
    from producers.sources import VideoSource
    from vision.landmarker import Landmarker

    lms, ws, hs = [], [], []
    for name in names:
        with Landmarker(max_faces=2) as lm:
            for frames in extract(VideoSource(assets.media(name)), lm, "distill", "distill", 0, ProduceStats()):
                for f in frames:
                    lms.append(f.landmarks)
                    ws.append(f.width)
                    hs.append(f.height)
    return (np.stack(lms).astype(np.float32), np.array(ws, np.float32), np.array(hs, np.float32))


# Videos trained on; the demo clip (WolfgangLanger_Pexels.mp4) is held out and judged on.
TRAIN_VIDEOS = ("single_face.mp4", "face_noface.mov", "noface_face.mov")
JUDGE_VIDEO = "WolfgangLanger_Pexels.mp4"


def distill(ds: LabelledDataset, p: DistillParams = DistillParams(),
            progress: Callable[[str], None] | None = None) -> tuple[Student, dict]:
    """Build the corpus, fit on everyone but the held-out people and the demo clip, and judge
    on those. Returns the student and its figures."""
    say = progress or (lambda _msg: None)
    exact = BlendshapeModel()
    rng = np.random.default_rng(p.seed)
    out = held_out(ds.person)
    train_ds, test_ds = ds.subset(~out), ds.subset(out)
    say(f"targets for {len(train_ds)} faces x {p.copies + 1} views")
    parts = [corpus_of_faces(train_ds.landmarks, train_ds.width, train_ds.height, train_ds.person, exact,
                             p.copies, rng)]
    say("videos")
    lm, w, h = video_faces(TRAIN_VIDEOS)
    parts.append(corpus_of_faces(lm, w, h, np.array(["video"] * len(lm)), exact, p.copies, rng))
    train = Corpus.concat(parts)
    say(f"fitting on {len(train.x)} rows")
    student = fit(train, p, say)
    judged = corpus_of_faces(test_ds.landmarks, test_ds.width, test_ds.height, test_ds.person, exact,
                             p.copies, np.random.default_rng(p.seed + 1))
    n = len(test_ds)
    lm, w, h = video_faces((JUDGE_VIDEO,))
    clip = corpus_of_faces(lm, w, h, np.array(["clip"] * len(lm)), exact)
    figures = {
        "train_rows": int(len(train.x)), "train_people": int(len(np.unique(train_ds.person))),
        "held_out_people": int(len(np.unique(test_ds.person))), "params": asdict(p),
        "held_out_faces": fidelity(student.predict(judged.x[:n]), judged.y[:n]),
        "held_out_moved_copies": fidelity(student.predict(judged.x[n:]), judged.y[n:]),
        "held_out_video": dict(fidelity(student.predict(clip.x), clip.y), video=JUDGE_VIDEO),
    }
    return student, figures
