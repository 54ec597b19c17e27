"""The image teacher: face-api.js's expression and age/gender networks, ported to ONNX
(``scripts/convert_face_api.py``), run on a face crop on the device.

Only the teacher's outputs leave the device (7 probabilities per face), never pixels.

Shapes:
    face_crop:  image [H, W, 3] uint8 RGB, landmarks [478, 2|3] normalised -> [112, 112, 3] float32
    Teacher.expressions: crops [N, 112, 112, 3] -> [N, 7] in ``EMOTIONS`` order
    Teacher.age_gender:  crops [N, 112, 112, 3] -> age [N] (years), p_male [N]
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import onnxruntime as ort

from schemas.vocabulary import EMOTIONS
from vision.models import MODEL_FILES, open_session

MODELS = MODEL_FILES
CROP = 112
# face-api's class order, and where each of its classes goes in ours.
FACE_API_CLASSES = ("neutral", "happy", "sad", "angry", "fearful", "disgusted", "surprised")
_FACE_API_NAME = {"fearful": "fear", "disgusted": "disgust", "surprised": "surprise"}
_TO_EMOTIONS = np.array([FACE_API_CLASSES.index(next(k for k in FACE_API_CLASSES
                                                     if _FACE_API_NAME.get(k, k) == e))
                         for e in EMOTIONS])
# face-api's crops come from SSD-MobileNet boxes, which reach past the mesh's extent a little.
CROP_MARGIN = 0.1


def face_crop(image: np.ndarray, landmarks: np.ndarray, margin: float = CROP_MARGIN) -> np.ndarray:
    """The teacher's input for one face: the landmarks' box grown by ``margin`` on each side,
    padded with black to a centred square (face-api's ``padToSquare(isCenterImage=true)``) and
    resized bilinearly to 112x112. Returns float32 RGB in 0..255."""
    h, w = image.shape[:2]
    xs, ys = landmarks[:, 0] * w, landmarks[:, 1] * h
    x0, x1, y0, y1 = xs.min(), xs.max(), ys.min(), ys.max()
    bw, bh = (x1 - x0) * (1 + 2 * margin), (y1 - y0) * (1 + 2 * margin)
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    side = max(bw, bh, 1.0)
    s = CROP / side
    # Map the square [cx - side/2, cx + side/2] onto [0, 112); pixels outside the image are black.
    m = np.array([[s, 0, CROP / 2 - s * cx], [0, s, CROP / 2 - s * cy]], np.float32)
    crop = cv2.warpAffine(image, m, (CROP, CROP), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=(0, 0, 0))
    return crop.astype(np.float32)


# The expression network's pooled features (input of its last Gemm): the teacher's embedding.
EMBEDDING = "flat_76"
EMBEDDING_SIZE = 256


def _session(path: Path, threads: int, extra_output: str | None = None,
             how_to_make: str = "run `python scripts/convert_face_api.py`") -> ort.InferenceSession:
    if extra_output is None or not path.exists():
        return open_session(path, threads, how_to_make=how_to_make)
    import onnx

    # Expose an inner tensor as a second output of the same graph: one pass gives both.
    model = onnx.load(str(path))
    model.graph.output.append(onnx.helper.make_tensor_value_info(extra_output, onnx.TensorProto.FLOAT, None))
    return open_session(model.SerializeToString(), threads)


class Teacher:
    """Both face-api networks on onnxruntime's CPU provider; one call per batch of crops."""

    def __init__(self, models: Path = MODELS, threads: int = 1, age_gender: bool = True,
                 human_head: bool = False) -> None:
        self._expr = _session(models / "face_expression.onnx", threads, extra_output=EMBEDDING)
        self._ag = _session(models / "age_gender.onnx", threads) if age_gender else None
        # The image path's head fitted to people's labels (``facestream train``).
        self._head = (_session(models / "image_expression_head.onnx", threads, how_to_make="run `facestream train`")
                      if human_head else None)

    @staticmethod
    def _batch(crops: np.ndarray | list[np.ndarray]) -> np.ndarray:
        x = np.asarray(crops, dtype=np.float32)
        if x.ndim != 4 or x.shape[1:] != (CROP, CROP, 3):
            raise ValueError(f"crops must be [N, {CROP}, {CROP}, 3], got {x.shape}")
        return np.ascontiguousarray(x)

    def face_api_expressions(self, crops: np.ndarray | list[np.ndarray]) -> np.ndarray:
        """[N, 7] probabilities in face-api's own class order (``FACE_API_CLASSES``)."""
        x = self._batch(crops)
        if len(x) == 0:
            return np.zeros((0, 7), np.float32)
        return self._expr.run(["probabilities"], {"image": x})[0]

    def expressions(self, crops: np.ndarray | list[np.ndarray]) -> np.ndarray:
        """[N, 7] probabilities in ``EMOTIONS`` order."""
        return self.face_api_expressions(crops)[:, _TO_EMOTIONS]

    def expressions_and_embedding(self, crops: np.ndarray | list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """([N, 7] probabilities in ``EMOTIONS`` order, [N, 256] the network's pooled features),
        from one pass: the embedding is what a head trained on human labels reads."""
        x = self._batch(crops)
        if len(x) == 0:
            return np.zeros((0, 7), np.float32), np.zeros((0, EMBEDDING_SIZE), np.float32)
        probs, emb = self._expr.run(["probabilities", EMBEDDING], {"image": x})
        return probs[:, _TO_EMOTIONS], emb.reshape(len(x), -1)

    def judged_expressions(self, crops: np.ndarray | list[np.ndarray], features: np.ndarray) -> np.ndarray:
        """[N, 7] in ``EMOTIONS`` order: the teacher blended with the head fitted to people's
        labels on its embedding and the faces' landmark ``features`` [N, 1456]
        (``vision.features.expression.student_features``); what ``/v1/faces`` answers."""
        if self._head is None:
            raise RuntimeError("this Teacher was created with human_head=False")
        probs, emb = self.expressions_and_embedding(crops)
        if len(probs) == 0:
            return probs
        return self._head.run(["probabilities"], {"embedding": emb, "teacher": probs,
                                                  "features": np.ascontiguousarray(features, np.float32)})[0]

    def age_gender(self, crops: np.ndarray | list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """(age [N] in years, probability of male [N]); face-api calls a face male when > 0.5."""
        if self._ag is None:
            raise RuntimeError("this Teacher was created with age_gender=False")
        x = self._batch(crops)
        if len(x) == 0:
            return np.zeros(0, np.float32), np.zeros(0, np.float32)
        age, gender = self._ag.run(["age", "gender"], {"image": x})
        return age, gender[:, 0]


def teach(teacher: Teacher, image: np.ndarray, landmarks: list[np.ndarray]) -> np.ndarray:
    """Teacher probabilities [F, 7] (EMOTIONS order) for the F faces of one RGB image, one batch."""
    if not landmarks:
        return np.zeros((0, len(EMOTIONS)), np.float32)
    return teacher.expressions(np.stack([face_crop(image, lm) for lm in landmarks]))
