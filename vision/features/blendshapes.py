"""MediaPipe's 52 blendshapes, computed server-side from landmarks, so clients that send only
landmarks get the same features as devices that send blendshapes.

Two files serve ``BlendshapeModel`` (same input, same output):

* ``exact``: an ONNX conversion of MediaPipe's own network (``scripts/convert_blendshapes.py``),
  an MLP-Mixer that matches MediaPipe to 5e-6 and costs about 64 MFLOP per face;
* ``distilled``: a small MLP trained to reproduce it (``facestream distill``,
  ``training/distill.py``), a few hundred times cheaper; its .json holds its held-out figures.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from schemas.vocabulary import BLENDSHAPES as BLENDSHAPE_NAMES
from vision.models import model_path, open_session

MODEL_PATH = model_path("face_blendshapes.onnx")
DISTILLED_PATH = model_path("blendshapes_distilled.onnx")
MODELS = {"exact": MODEL_PATH, "distilled": DISTILLED_PATH}
_HOW_TO_MAKE = {"exact": "run `python scripts/convert_blendshapes.py`", "distilled": "run `facestream distill`"}

# The 146 landmarks the model reads: kLandmarksSubsetIdxs in MediaPipe's
# mediapipe/tasks/cc/vision/face_landmarker/face_blendshapes_graph.cc.
LANDMARK_SUBSET = np.array([
    0, 1, 4, 5, 6, 7, 8, 10, 13, 14, 17, 21, 33, 37, 39,
    40, 46, 52, 53, 54, 55, 58, 61, 63, 65, 66, 67, 70, 78, 80,
    81, 82, 84, 87, 88, 91, 93, 95, 103, 105, 107, 109, 127, 132, 133,
    136, 144, 145, 146, 148, 149, 150, 152, 153, 154, 155, 157, 158, 159, 160,
    161, 162, 163, 168, 172, 173, 176, 178, 181, 185, 191, 195, 197, 234, 246,
    249, 251, 263, 267, 269, 270, 276, 282, 283, 284, 285, 288, 291, 293, 295,
    296, 297, 300, 308, 310, 311, 312, 314, 317, 318, 321, 323, 324, 332, 334,
    336, 338, 356, 361, 362, 365, 373, 374, 375, 377, 378, 379, 380, 381, 382,
    384, 385, 386, 387, 388, 389, 390, 397, 398, 400, 402, 405, 409, 415, 454,
    466, 468, 469, 470, 471, 472, 473, 474, 475, 476, 477,
], dtype=np.int64)

__all__ = ["BLENDSHAPE_NAMES", "LANDMARK_SUBSET", "MODELS", "BlendshapeModel", "to_model_input"]


def to_model_input(landmarks: np.ndarray, width: np.ndarray | float, height: np.ndarray | float) -> np.ndarray:
    """[N, 478, 2|3] normalised landmarks -> [N, 146, 2] float32 pixel coordinates (x*w, y*h),
    as MediaPipe's blendshape graph feeds its model (z is not used)."""
    lm = np.asarray(landmarks, dtype=np.float32)[:, LANDMARK_SUBSET, :2]
    scale = np.stack(np.broadcast_arrays(np.asarray(width, np.float32), np.asarray(height, np.float32)), -1)
    return np.ascontiguousarray(lm * scale.reshape(-1, 1, 2), dtype=np.float32)


class BlendshapeModel:
    """An ONNX blendshape model on onnxruntime's CPU provider; one call per batch. ``kind`` is a
    key of ``MODELS`` (``exact``: MediaPipe's network; ``distilled``: the small one)."""

    def __init__(self, kind: str = "exact", threads: int = 1, path: Path | None = None) -> None:
        if kind not in MODELS:
            raise ValueError(f"unknown blendshape model {kind!r}; choose one of {', '.join(MODELS)}")
        self.kind = kind
        self.session = open_session(path or MODELS[kind], threads, how_to_make=_HOW_TO_MAKE[kind])

    def predict(self, landmarks: np.ndarray, width: np.ndarray | float, height: np.ndarray | float) -> np.ndarray:
        """[N, 478, 2|3] normalised landmarks, image sizes [N] (or scalars) -> [N, 52] scores."""
        if len(landmarks) == 0:
            return np.zeros((0, len(BLENDSHAPE_NAMES)), np.float32)
        return self.run(to_model_input(landmarks, width, height))

    def run(self, model_input: np.ndarray) -> np.ndarray:
        """[N, 146, 2] float32 model input (``to_model_input``), N >= 1 -> [N, 52] scores."""
        return self.session.run(["blendshapes"], {"landmarks": model_input})[0]
