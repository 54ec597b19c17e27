"""The emotion student at run time: 7 emotion probabilities per face-frame from landmark-only
features, and the two cue heads fitted to people's labels (joy, surprise).

All three come from ``vision/model_files/emotion_student.{onnx,json}``, written by
``facestream train``; ``reports/model_card.md`` says how far to trust them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from schemas.vocabulary import EMOTIONS
from vision.features.expression import NUM_FEATURES
from vision.models import model_path, open_session

STUDENT = model_path("emotion_student")


@dataclass(frozen=True)
class StudentOutput:
    """Per face-frame: emotions [N, 7] (EMOTIONS order), P(joy) [N], P(surprise) [N]."""

    emotions: np.ndarray
    joy: np.ndarray
    surprise: np.ndarray


class EmotionModel:
    """One onnxruntime call per batch."""

    def __init__(self, path: Path = STUDENT, threads: int = 1) -> None:
        onnx_path, meta_path = path.with_suffix(".onnx"), path.with_suffix(".json")
        if not onnx_path.exists() or not meta_path.exists():
            raise FileNotFoundError(f"{onnx_path} or its .json is missing: run `facestream dataset build "
                                    "--labelled DIR` then `facestream train`")
        self.meta = json.loads(meta_path.read_text())
        if tuple(self.meta["classes"]) != EMOTIONS or self.meta.get("features") != NUM_FEATURES:
            raise ValueError(f"{onnx_path} predicts {self.meta['classes']} from {self.meta.get('features')} "
                             f"features; this version needs {list(EMOTIONS)} from {NUM_FEATURES}: "
                             "retrain with `facestream train`")
        self.session = open_session(onnx_path, threads)

    def predict(self, features: np.ndarray) -> StudentOutput:
        """[N, 1456] student features -> emotions, joy and surprise."""
        if len(features) == 0:
            z = np.zeros(0, np.float32)
            return StudentOutput(np.zeros((0, len(EMOTIONS)), np.float32), z, z)
        p, joy, surprise = self.session.run(["probabilities", "joy", "surprise"],
                                            {"features": np.ascontiguousarray(features, np.float32)})
        return StudentOutput(p, joy.reshape(-1), surprise.reshape(-1))
