"""The image path's head: people's 7 labels from the teacher's embedding beside the face's
landmark geometry, blended with the teacher's own probabilities; exported to ONNX for
``vision.teacher.Teacher.judged_expressions``."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from schemas.vocabulary import EMOTIONS
from training.dataset import LabelledDataset
from training.fit import Head, HeadParams, Projection, _head_nodes, _projection_nodes, emotion_targets, fit
from vision.features.expression import NUM_FEATURES

IMAGE_HEAD = HeadParams(hidden=0, l2=1e-1, max_iter=300)
IMAGE_COMPONENTS = 40
IMAGE_BLEND = 0.7  # weight of the human-label head against the teacher's own probabilities


@dataclass
class ImageHead:
    """People's 7 labels from the teacher's 256-d embedding beside the face's landmark geometry
    (its own principal components of the aligned mesh, and the blendshapes)."""

    projection: Projection
    head: Head

    def inputs(self, embedding: np.ndarray, features: np.ndarray) -> np.ndarray:
        """[N, 256], [N, 1456] -> [N, 256 + C + 52]."""
        return np.concatenate([embedding, self.projection(features)], axis=1)

    def blend(self, embedding: np.ndarray, features: np.ndarray, teacher: np.ndarray) -> np.ndarray:
        """-> [N, 7]: IMAGE_BLEND x head + (1 - IMAGE_BLEND) x teacher."""
        return IMAGE_BLEND * self.head.predict(self.inputs(embedding, features)) + (1 - IMAGE_BLEND) * teacher


def fit_image_head(ds: LabelledDataset, features: np.ndarray, p: HeadParams = IMAGE_HEAD, seed: int = 0) -> ImageHead:
    """Fit on the rows of ``ds`` with an emotion label; ``features`` [len(ds), 1456] are theirs."""
    proj = Projection.fit(features, IMAGE_COMPONENTS)
    target, weight = emotion_targets(ds, 1.0)
    keep = ds.label_index() >= 0
    x = np.concatenate([ds.embedding, proj(features)], axis=1)
    return ImageHead(proj, fit(x[keep], target[keep], weight[keep], p, seed=seed))


def image_head_onnx(m: ImageHead) -> onnx.ModelProto:
    """embedding [batch, 256], features [batch, 1456], teacher [batch, 7] -> probabilities
    [batch, 7] (EMOTIONS order)."""
    c = numpy_helper.from_array
    init = [c(np.array(IMAGE_BLEND, np.float32), "blend"), c(np.array(1 - IMAGE_BLEND, np.float32), "keep")]
    nodes = _projection_nodes(m.projection, "features", "geometry", init)
    nodes.append(helper.make_node("Concat", ["embedding", "geometry"], ["inputs"], axis=1))
    nodes += _head_nodes(m.head, "inputs", "head", "head/probabilities", init)
    nodes += [helper.make_node("Mul", ["head/probabilities", "blend"], ["head/weighted"]),
              helper.make_node("Mul", ["teacher", "keep"], ["teacher/weighted"]),
              helper.make_node("Add", ["head/weighted", "teacher/weighted"], ["probabilities"])]
    f = TensorProto.FLOAT
    graph = helper.make_graph(
        nodes, "image_expression_head",
        [helper.make_tensor_value_info("embedding", f, ["batch", 256]),
         helper.make_tensor_value_info("features", f, ["batch", NUM_FEATURES]),
         helper.make_tensor_value_info("teacher", f, ["batch", len(EMOTIONS)])],
        [helper.make_tensor_value_info("probabilities", f, ["batch", len(EMOTIONS)])], init)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="facestream train",
                              doc_string="human-label head on face-api's expression embedding and the face's "
                                         "landmark geometry, blended with face-api's own probabilities")
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def save_image_head(m: ImageHead, out: Path, provenance: dict) -> None:
    model = image_head_onnx(m)
    onnx_path = out.with_suffix(".onnx")
    onnx_path.write_bytes(model.SerializeToString())
    meta = dict(provenance)
    meta.update({"onnx_sha256": hashlib.sha256(onnx_path.read_bytes()).hexdigest(), "classes": list(EMOTIONS),
                 "features": NUM_FEATURES, "blend": IMAGE_BLEND})
    out.with_suffix(".json").write_text(json.dumps(meta, indent=2) + "\n")
