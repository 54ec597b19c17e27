"""Human-labelled faces: the edge landmarker and the image teacher over a folder of photos that
people labelled, for training and judging the models against people's own judgement.

A labelled folder holds images (beside it or in ``images/``) and a ``labels.csv`` with the columns ``file``, ``person`` and one
label column: ``emotion`` (or ``label``; a class name such as happy, sad, contempt) and/or ``smile``
(1 or 0). An optional ``people.csv`` (``person`` plus ``age`` and ``sex``) gives attributes to slice
the figures by. ``person`` is what evaluation holds out: never split a person's images.

Each image gives at most one row: its largest face (the labelled one). Images the landmarker
finds no face in are retried once inside a border (tight face crops leave the detector no
context), then counted as missed. Every image's result is cached under its sha256, so a build
can be stopped and resumed, and a rebuild after adding images only processes the new ones.
"""

from __future__ import annotations

import csv
import hashlib
import logging
import os
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from infra import assets
from schemas.vocabulary import EMOTIONS
from vision.teacher import MODELS, Teacher, face_crop

log = logging.getLogger(__name__)

# Label spellings seen in public sets, mapped to our class names. Classes outside EMOTIONS
# (contempt) are kept as labels but no model predicts them.
_SYNONYMS = {"happiness": "happy", "surprised": "surprise", "anger": "angry", "sadness": "sad",
             "disgusted": "disgust", "fearful": "fear", "fear": "fear", "neutrality": "neutral"}
BORDER = 0.5  # retry border, as a fraction of the image's size on each side
CACHE_VERSION = "1"


class LabelsError(ValueError):
    """A labelled folder's labels.csv is missing or malformed; the message says what to fix."""


@dataclass(frozen=True)
class LabelledImage:
    path: Path
    person: str
    emotion: str  # "" when the set has no emotion label
    smile: int  # 1, 0, or -1 when the set has no smile label
    age: float  # nan when unknown
    sex: str  # "" when unknown


def normalise_emotion(label: str) -> str:
    s = label.strip().lower()
    return _SYNONYMS.get(s, s)


def _number(text: str) -> float:
    """A numeric attribute, nan when missing ("", "NA", ...)."""
    try:
        return float(text)
    except ValueError:
        return float("nan")


def read_labels(folder: Path) -> list[LabelledImage]:
    """The images of a labelled folder with their labels (and people.csv attributes)."""
    folder = Path(folder)
    labels = folder / "labels.csv"
    if not labels.exists():
        raise LabelsError(f"{labels} is missing: a labelled folder needs labels.csv with columns "
                          "file, person and emotion (or label) and/or smile")
    people: dict[str, dict[str, str]] = {}
    if (folder / "people.csv").exists():
        with open(folder / "people.csv", newline="") as fh:
            people = {r["person"]: r for r in csv.DictReader(fh)}
    out = []
    with open(labels, newline="") as fh:
        reader = csv.DictReader(fh)
        cols = set(reader.fieldnames or ())
        if not {"file", "person"} <= cols or not cols & {"emotion", "label", "smile"}:
            raise LabelsError(f"{labels} has columns {sorted(cols)}; it needs file, person and "
                              "emotion (or label) and/or smile")
        for line, r in enumerate(reader, start=2):
            path = folder / r["file"]
            if not path.exists() and (folder / "images" / r["file"]).exists():
                path = folder / "images" / r["file"]
            if not path.exists():
                raise LabelsError(f"{labels} line {line}: {r['file']} is in neither {folder} nor {folder / 'images'}")
            emotion = normalise_emotion(r.get("emotion") or r.get("label") or "")
            smile = r.get("smile", "").strip()
            if smile not in ("", "0", "1"):
                raise LabelsError(f"{labels} line {line}: smile must be 0 or 1, got {smile!r}")
            attrs = people.get(r["person"], {})
            out.append(LabelledImage(path, r["person"], emotion, int(smile) if smile else -1,
                                     _number(attrs.get("age", "")), attrs.get("sex", "")))
    return out


@dataclass(frozen=True)
class FaceRow:
    """What the landmarker and teacher say about one image's labelled face (None: no face)."""

    landmarks: np.ndarray  # [478, 3] normalised to the (padded) image
    blendshapes: np.ndarray  # [52]
    teacher: np.ndarray  # [7] EMOTIONS order
    embedding: np.ndarray  # [256] the teacher's pooled features
    width: int
    height: int
    padded: bool


def _pad(rgb: np.ndarray, border: float) -> np.ndarray:
    h, w = rgb.shape[:2]
    bh, bw = int(round(h * border)), int(round(w * border))
    return cv2.copyMakeBorder(rgb, bh, bh, bw, bw, cv2.BORDER_REPLICATE)


class FaceReader:
    """Landmarker (IMAGE mode) and teacher for single labelled photos."""

    def __init__(self) -> None:
        from vision.landmarker import Landmarker

        self.landmarker = Landmarker(video=False, max_faces=4, detector=False)
        self.teacher = Teacher(age_gender=False)

    def read(self, path: Path) -> FaceRow | None:
        bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if bgr is None:
            raise ValueError(f"cannot decode image {path}")
        rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        for padded, img in ((False, rgb), (True, None)):
            img = _pad(rgb, BORDER) if padded else img
            faces = self.landmarker.detect(img)
            if faces:
                face = max(faces, key=lambda f: f.box[2] * f.box[3])
                probs, emb = self.teacher.expressions_and_embedding(face_crop(img, face.landmarks)[None])
                return FaceRow(face.landmarks, face.blendshapes, probs[0], emb[0], img.shape[1], img.shape[0], padded)
        return None


def cache_key() -> str:
    """Changes whenever the landmarker or teacher weights change, so stale rows are never reused."""
    h = hashlib.sha256(CACHE_VERSION.encode())
    h.update(assets.LANDMARKER.sha256.encode())
    h.update(assets.sha256_of(MODELS / "face_expression.onnx").encode())
    return h.hexdigest()[:16]


class FaceCache:
    """One small .npz per image, named by the image's sha256 (a marker file when it had no face)."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root) / cache_key()

    def _path(self, digest: str) -> Path:
        return self.root / digest[:2] / f"{digest}.npz"

    def get(self, digest: str) -> FaceRow | None | bool:
        """The cached row, None for a cached miss, False when not cached."""
        p = self._path(digest)
        if not p.exists():
            return False
        with np.load(p) as z:
            if "missed" in z:
                return None
            return FaceRow(z["landmarks"], z["blendshapes"], z["teacher"], z["embedding"],
                           int(z["width"]), int(z["height"]), bool(z["padded"]))

    def put(self, digest: str, row: FaceRow | None) -> None:
        p = self._path(digest)
        p.parent.mkdir(parents=True, exist_ok=True)
        tmp = p.with_name(p.name + ".tmp.npz")
        if row is None:
            np.savez(tmp, missed=np.array(True))
        else:
            np.savez(tmp, landmarks=row.landmarks, blendshapes=row.blendshapes, teacher=row.teacher,
                     embedding=row.embedding, width=row.width, height=row.height, padded=row.padded)
        os.replace(tmp, p)  # atomic: an interrupted build never leaves half a row behind


def file_digest(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


_reader: FaceReader | None = None


def _init_worker() -> None:
    global _reader
    _reader = FaceReader()


def _read_one(path: Path) -> tuple[str, FaceRow | None]:
    assert _reader is not None
    return str(path), _reader.read(path)


def _compute(paths: list[Path], jobs: int) -> Iterator[tuple[str, FaceRow | None]]:
    if not paths:
        return  # everything came from the cache: never load the models
    if jobs <= 1:
        _init_worker()
        for p in paths:
            yield _read_one(p)
        return
    with ProcessPoolExecutor(jobs, initializer=_init_worker) as pool:
        yield from pool.map(_read_one, paths, chunksize=16)


def build_labelled(folders: list[Path], out: Path, cache_dir: Path, *, jobs: int = 1,
                   progress: Callable[[int, int], None] | None = None) -> dict[str, dict[str, int]]:
    """Landmarks, blendshapes, teacher probabilities and embedding, and the human labels, for
    the labelled face of every image in ``folders``; written as one .npz to ``out``.

    ``progress(done, total)`` is called as images are processed (cached ones count at once).
    Returns per folder: images, faces, missed.
    """
    cache = FaceCache(cache_dir)
    items = [(Path(f).name, img) for f in folders for img in read_labels(Path(f))]
    digests = [file_digest(img.path) for _, img in items]
    rows: dict[str, FaceRow | None] = {}
    todo: list[Path] = []
    for (_, img), d in zip(items, digests):
        hit = cache.get(d)
        if hit is False:
            todo.append(img.path)
        else:
            rows[d] = hit  # type: ignore[assignment]
    done = len(items) - len(todo)
    if progress:
        progress(done, len(items))
    digest_of = {str(img.path): d for (_, img), d in zip(items, digests)}
    for path, row in _compute(todo, jobs):
        cache.put(digest_of[path], row)
        rows[digest_of[path]] = row
        done += 1
        if progress:
            progress(done, len(items))

    kept = [(name, img, rows[d]) for (name, img), d in zip(items, digests) if rows[d] is not None]
    if not kept:
        raise ValueError("no faces found in any labelled image")
    stats: dict[str, dict[str, int]] = {}
    for name, _ in items:
        stats.setdefault(name, {"images": 0, "faces": 0, "missed": 0})["images"] += 1
    for name, _, _ in kept:
        stats[name]["faces"] += 1
    for s in stats.values():
        s["missed"] = s["images"] - s["faces"]
    f32 = np.float32
    out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(
        out,
        landmarks=np.stack([r.landmarks for _, _, r in kept]).astype(f32),
        blendshapes=np.stack([r.blendshapes for _, _, r in kept]).astype(f32),
        teacher=np.stack([r.teacher for _, _, r in kept]).astype(f32),
        embedding=np.stack([r.embedding for _, _, r in kept]).astype(f32),
        width=np.array([r.width for _, _, r in kept], f32),
        height=np.array([r.height for _, _, r in kept], f32),
        padded=np.array([r.padded for _, _, r in kept]),
        dataset=np.array([n for n, _, _ in kept]),
        person=np.array([f"{n}/{i.person}" for n, i, _ in kept]),
        filename=np.array([i.path.name for _, i, _ in kept]),
        emotion=np.array([i.emotion for _, i, _ in kept]),
        smile=np.array([i.smile for _, i, _ in kept], np.int8),
        age=np.array([i.age for _, i, _ in kept], f32),
        sex=np.array([i.sex for _, i, _ in kept]),
        stats=np.array(repr(stats)),
    )
    return stats


@dataclass(frozen=True)
class LabelledDataset:
    """A loaded labelled dataset; every array has one row per face (one per image)."""

    landmarks: np.ndarray  # [N, 478, 3]
    blendshapes: np.ndarray  # [N, 52]
    teacher: np.ndarray  # [N, 7]
    embedding: np.ndarray  # [N, 256]
    width: np.ndarray  # [N]
    height: np.ndarray  # [N]
    padded: np.ndarray  # [N] bool
    dataset: np.ndarray  # [N] folder name
    person: np.ndarray  # [N] "<folder>/<person>"
    filename: np.ndarray  # [N]
    emotion: np.ndarray  # [N] class name or ""
    smile: np.ndarray  # [N] 1 / 0 / -1
    age: np.ndarray  # [N] years or nan
    sex: np.ndarray  # [N] or ""

    @classmethod
    def load(cls, path: Path) -> "LabelledDataset":
        if not Path(path).exists():
            raise FileNotFoundError(f"{path} does not exist: build it with "
                                    "`facestream dataset build --labelled DIR`")
        with np.load(path) as z:
            return cls(**{k: z[k] for k in cls.__dataclass_fields__})

    def __len__(self) -> int:
        return len(self.person)

    def subset(self, mask: np.ndarray) -> "LabelledDataset":
        return LabelledDataset(**{k: getattr(self, k)[mask] for k in self.__dataclass_fields__})

    def label_index(self) -> np.ndarray:
        """[N] index into EMOTIONS of each row's human label, -1 where none (or contempt)."""
        lookup = {e: i for i, e in enumerate(EMOTIONS)}
        return np.array([lookup.get(e, -1) for e in self.emotion.tolist()], np.int64)

    def joy(self) -> np.ndarray:
        """[N] 1 where people saw joy (a happy label or a smile), 0 where they saw none, -1 unknown."""
        out = np.where(self.smile >= 0, self.smile, -1).astype(np.int64)
        has = self.emotion != ""
        out[has & (self.emotion == "happy")] = 1
        out[has & (self.emotion != "happy") & (out < 1)] = 0
        return out


