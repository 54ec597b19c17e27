"""Full-range face detection: MediaPipe's BlazeFace full-range model on onnxruntime, over the whole
image and over overlapping tiles, so small faces anywhere in a large image are found.

FaceLandmarker's built-in detector is the short-range model, made for one face filling a selfie
frame: it misses group and room faces. This one finds faces at any distance; the landmarker then
runs on a crop around each (``producers.faces``). The model comes from a pinned registry wheel,
converted once to ONNX by ``scripts/convert_face_detector.py``.

The model sees 192x192 pixels. One pass over a 1920x1080 image shrinks a 24 px face to 2-3 px,
so besides the whole image, square tiles of ``tile`` px (``overlap`` shared with each neighbour)
are each scaled to 192 and searched; a tile keeps only detections whose centre lies in its own
share of the overlaps, and all detections are merged by MediaPipe's weighted non-maximum
suppression in image coordinates.

Shapes: images are [H, W, 3] uint8 RGB; boxes are pixels (x0, y0, x1, y1).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from vision.models import model_path, open_session

MODEL_PATH = model_path("face_detector_full_range.onnx")
INPUT = 192
GRID = 48  # one anchor per cell of a 48x48 grid (stride 4)
# Keypoints, in the model's order.
KEYPOINTS = ("right_eye", "left_eye", "nose_tip", "mouth", "right_ear", "left_ear")


@dataclass(frozen=True)
class Detection:
    """One face: box (x0, y0, x1, y1) and 6 keypoints [6, 2] in image pixels, score in [0, 1]."""

    box: tuple[float, float, float, float]
    keypoints: np.ndarray
    score: float

    @property
    def height(self) -> float:
        return self.box[3] - self.box[1]


def _anchors() -> np.ndarray:
    """[2304, 2] anchor centres in [0, 1], row-major (y outer)."""
    ys, xs = np.meshgrid(np.arange(GRID, dtype=np.float32), np.arange(GRID, dtype=np.float32), indexing="ij")
    return np.stack([(xs.ravel() + 0.5) / GRID, (ys.ravel() + 0.5) / GRID], axis=1)


ANCHORS = _anchors()


def letterbox(rgb: np.ndarray) -> tuple[np.ndarray, float, int, int]:
    """[H, W, 3] -> ([1, 3, 192, 192] float32 in [-1, 1], side, pad_x, pad_y): the image padded
    to a centred square of ``side`` px with black, then resized (area averaging when shrinking,
    which keeps small faces visible)."""
    h, w = rgb.shape[:2]
    side = max(h, w)
    px, py = (side - w) // 2, (side - h) // 2
    square = cv2.copyMakeBorder(rgb, py, side - h - py, px, side - w - px, cv2.BORDER_CONSTANT, value=0)
    interp = cv2.INTER_AREA if side > INPUT else cv2.INTER_LINEAR
    x = cv2.resize(square, (INPUT, INPUT), interpolation=interp).astype(np.float32) * (1 / 127.5) - 1.0
    return np.ascontiguousarray(x.transpose(2, 0, 1)[None]), float(side), px, py


def decode(regressors: np.ndarray, logits: np.ndarray, min_score: float) -> np.ndarray:
    """Model outputs [1, 2304, 16] and [1, 2304, 1] -> [N, 17]: box (x0, y0, x1, y1), 6 keypoints
    (x, y), score; coordinates in [0, 1] of the 192x192 input."""
    reg = regressors.reshape(-1, 16) / INPUT
    score = 1.0 / (1.0 + np.exp(-np.clip(logits.reshape(-1), -100.0, 100.0)))
    keep = score >= min_score
    r, a = reg[keep], ANCHORS[keep]
    out = np.empty((len(r), 17), np.float32)
    cx, cy = r[:, 0] + a[:, 0], r[:, 1] + a[:, 1]
    out[:, 0], out[:, 1] = cx - r[:, 2] / 2, cy - r[:, 3] / 2
    out[:, 2], out[:, 3] = cx + r[:, 2] / 2, cy + r[:, 3] / 2
    out[:, 4:16:2] = r[:, 4:16:2] + a[:, :1]
    out[:, 5:16:2] = r[:, 5:16:2] + a[:, 1:2]
    out[:, 16] = score[keep]
    return out


def iou(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """[4], [N, 4] (x0, y0, x1, y1) -> [N] intersection over union."""
    w = np.clip(np.minimum(box[2], boxes[:, 2]) - np.maximum(box[0], boxes[:, 0]), 0, None)
    h = np.clip(np.minimum(box[3], boxes[:, 3]) - np.maximum(box[1], boxes[:, 1]), 0, None)
    inter = w * h
    union = (box[2] - box[0]) * (box[3] - box[1]) + (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]) - inter
    return inter / np.maximum(union, 1e-12)


def weighted_nms(dets: np.ndarray, threshold: float = 0.3) -> np.ndarray:
    """[N, 17] -> [M, 17]: MediaPipe's weighted suppression. The best remaining detection and
    every one overlapping it by more than ``threshold`` become one, their coordinates averaged by
    score; the group keeps the best score."""
    rest = dets[np.argsort(-dets[:, 16], kind="stable")]
    out = []
    while len(rest):
        group = iou(rest[0, :4], rest[:, :4]) > threshold
        group[0] = True
        w = rest[group, 16:17]
        merged = rest[0].copy()
        merged[:16] = (rest[group, :16] * w).sum(axis=0) / w.sum()
        out.append(merged)
        rest = rest[~group]
    return np.stack(out) if out else np.zeros((0, 17), np.float32)


def tile_starts(length: int, tile: int, overlap: float) -> list[int]:
    """Offsets of tiles of ``tile`` px covering [0, length) with at least ``overlap`` shared."""
    if length <= tile:
        return [0]
    n = math.ceil((length - tile) / (tile * (1.0 - overlap))) + 1
    step = (length - tile) / (n - 1)
    return [int(round(i * step)) for i in range(n)]


def _core(starts: list[int], i: int, tile: int) -> tuple[float, float]:
    """The part of tile i whose detections it keeps: up to half-way into each shared overlap."""
    lo = (starts[i] + starts[i - 1] + tile) / 2 if i > 0 else -math.inf
    hi = (starts[i + 1] + starts[i] + tile) / 2 if i + 1 < len(starts) else math.inf
    return lo, hi


class FaceDetector:
    """BlazeFace full-range over the whole image and its tiles; one onnxruntime session."""

    def __init__(self, path: Path = MODEL_PATH, *, tile: int = 480, overlap: float = 0.25,
                 min_score: float = 0.5, threads: int = 1) -> None:
        self._session = open_session(path, threads, how_to_make="run `python scripts/convert_face_detector.py`")
        self._input = self._session.get_inputs()[0].name
        self.tile, self.overlap, self.min_score = tile, overlap, min_score

    def _pass(self, rgb: np.ndarray, x0: int, y0: int) -> np.ndarray:
        x, side, px, py = letterbox(rgb)
        reg, cls = self._session.run(["reshaped_regressor_face_4", "reshaped_classifier_face_4"], {self._input: x})
        d = decode(reg, cls, self.min_score)
        d[:, 0:16:2] = d[:, 0:16:2] * side - px + x0
        d[:, 1:16:2] = d[:, 1:16:2] * side - py + y0
        return d

    def raw(self, rgb: np.ndarray) -> np.ndarray:
        """[N, 17] merged detections (box, keypoints, score) in image pixels."""
        h, w = rgb.shape[:2]
        found = [self._pass(rgb, 0, 0)]
        if max(h, w) > self.tile:
            xs, ys = tile_starts(w, self.tile, self.overlap), tile_starts(h, self.tile, self.overlap)
            for iy, y in enumerate(ys):
                for ix, x in enumerate(xs):
                    d = self._pass(rgb[y:y + self.tile, x:x + self.tile], x, y)
                    (cx0, cx1), (cy0, cy1) = _core(xs, ix, self.tile), _core(ys, iy, self.tile)
                    cx, cy = (d[:, 0] + d[:, 2]) / 2, (d[:, 1] + d[:, 3]) / 2
                    found.append(d[(cx >= cx0) & (cx < cx1) & (cy >= cy0) & (cy < cy1)])
        return weighted_nms(np.concatenate(found))

    def detect(self, rgb: np.ndarray, max_faces: int | None = None) -> list[Detection]:
        """Faces in an RGB image, most confident first (at most ``max_faces``), boxes clipped to
        the image."""
        h, w = rgb.shape[:2]
        d = self.raw(rgb)
        if max_faces is not None:
            d = d[:max_faces]
        out = []
        for row in d:
            box = (float(max(row[0], 0)), float(max(row[1], 0)), float(min(row[2], w)), float(min(row[3], h)))
            if box[2] > box[0] and box[3] > box[1]:
                out.append(Detection(box, row[4:16].reshape(6, 2).copy(), float(row[16])))
        return out
