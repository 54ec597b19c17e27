"""The emotion student at run time: 7 emotion probabilities per face-frame from landmark-only
features, and the calibration of the amusement / surprise cues against the teacher.

Both come from ``processors/models/emotion_student.{onnx,json}``, written by ``facestream train``;
``reports/model_card.md`` says how far to trust them.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnxruntime as ort

from schemas.records import EMOTIONS

STUDENT = Path(__file__).resolve().parent / "models" / "emotion_student"


class EmotionModel:
    """One onnxruntime call per batch."""

    def __init__(self, path: Path = STUDENT, threads: int = 1) -> None:
        onnx_path, meta_path = path.with_suffix(".onnx"), path.with_suffix(".json")
        if not onnx_path.exists() or not meta_path.exists():
            raise FileNotFoundError(f"{onnx_path} or its .json is missing: run `facestream dataset build` "
                                    "then `facestream train`")
        self.meta = json.loads(meta_path.read_text())
        if tuple(self.meta["classes"]) != EMOTIONS:
            raise ValueError(f"{onnx_path} predicts {self.meta['classes']}, expected {list(EMOTIONS)}")
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        self.session = ort.InferenceSession(str(onnx_path), opts, providers=["CPUExecutionProvider"])
        calib = self.meta["cue_calibration"]
        # [2] slopes and offsets for evidence columns 0 (amusement) and 1 (surprise).
        self._a = np.array([calib["amusement"]["a"], calib["surprise"]["a"]], np.float32)
        self._b = np.array([calib["amusement"]["b"], calib["surprise"]["b"]], np.float32)

    def predict(self, features: np.ndarray) -> np.ndarray:
        """[N, F] student features -> [N, 7] probabilities in EMOTIONS order."""
        if len(features) == 0:
            return np.zeros((0, len(EMOTIONS)), np.float32)
        return self.session.run(["probabilities"], {"features": np.ascontiguousarray(features, np.float32)})[0]

    def calibrate(self, evidence: np.ndarray) -> np.ndarray:
        """[N, 4] cue evidence -> the same with amusement and surprise mapped through their
        fitted logistic maps onto the teacher's happy / surprise probability scale."""
        out = np.array(evidence, dtype=np.float32, copy=True)
        out[:, :2] = 1.0 / (1.0 + np.exp(-(self._a * out[:, :2] + self._b)))
        return out
