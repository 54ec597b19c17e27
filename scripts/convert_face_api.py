"""Port face-api.js's expression and age/gender networks to ONNX.

Reads the tfjs weights manifests and shards shipped in npm ``@vladmandic/face-api@1.7.15`` (MIT),
dequantises the uint8 weights exactly as tfjs does (``q * scale + min`` in double precision,
stored as float32) and rebuilds each network with onnx.helper, following the package's own
sources (``src/faceFeatureExtractor/denseBlock.ts``, ``src/xception/TinyXception.ts``):

* ``face_expression.onnx``: FaceFeatureExtractor (4 dense blocks of depthwise-separable convs)
  -> 7x7 average pool -> fully connected 256x7 -> softmax. Classes, in face-api's order:
  neutral, happy, sad, angry, fearful, disgusted, surprised.
* ``age_gender.onnx``: TinyXception with 2 middle blocks -> 7x7 average pool -> ``age`` (years,
  a regression) and ``gender`` (softmax over male, female).

Both take ``image`` [batch, 112, 112, 3] float32 RGB in 0..255: the face crop after face-api's
``toBatchTensor(112, true)`` (pad to a centred square, resize). The normalisation (subtract the
mean RGB, divide by 255) is inside the graph. tfjs's ``'same'`` padding puts the odd pixel at the
bottom/right; the pads below are computed the same way. Output is deterministic.

    python scripts/convert_face_api.py [--out-dir vision/model_files]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import sys
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from infra.assets import FACE_API, npm_member, npm_tarball, sha256_of  # noqa: E402

OPSET = 17
SIZE = 112
MEAN_RGB = np.array([122.782, 117.001, 104.298], np.float32)


def load_weights(model: str) -> dict[str, np.ndarray]:
    """Read ``model/<model>-weights_manifest.json`` and its shards; dequantise like tfjs."""
    manifest = json.loads(npm_member(FACE_API, f"model/{model}-weights_manifest.json"))
    weights: dict[str, np.ndarray] = {}
    for group in manifest:
        buf = b"".join(npm_member(FACE_API, f"model/{p}") for p in group["paths"])
        offset = 0
        for spec in group["weights"]:
            size = math.prod(spec["shape"])
            q = spec.get("quantization")
            if q:
                if q["dtype"] != "uint8":
                    raise ValueError(f"{spec['name']}: unsupported quantisation {q['dtype']}")
                raw = np.frombuffer(buf, np.uint8, size, offset)
                offset += size
                value = (raw.astype(np.float64) * q["scale"] + q["min"]).astype(np.float32)
            else:
                value = np.frombuffer(buf, "<f4", size, offset).copy()
                offset += 4 * size
            weights[spec["name"]] = value.reshape(spec["shape"])
        if offset != len(buf):
            raise ValueError(f"{model}: manifest describes {offset} bytes, shards hold {len(buf)}")
    return weights


def same_pads(size: int, k: int, stride: int) -> list[int]:
    """tfjs 'same' padding for a square input: [top, left, bottom, right], extra at the end."""
    out = math.ceil(size / stride)
    total = max(0, (out - 1) * stride + k - size)
    lo = total // 2
    return [lo, lo, total - lo, total - lo]


class Graph:
    """A tiny NCHW graph builder; ``size`` tracks the spatial side of the current tensor."""

    def __init__(self, weights: dict[str, np.ndarray]) -> None:
        self.w = weights
        self.used: set[str] = set()
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[onnx.TensorProto] = []
        self.n = 0

    def tmp(self, hint: str) -> str:
        self.n += 1
        return f"{hint}_{self.n}"

    def const(self, name: str, value: np.ndarray) -> str:
        self.inits.append(numpy_helper.from_array(np.ascontiguousarray(value), name))
        return name

    def weight(self, key: str) -> np.ndarray:
        self.used.add(key)
        return self.w[key]

    def op(self, op: str, inputs: list[str], hint: str, **attrs: object) -> str:
        out = self.tmp(hint)
        self.nodes.append(helper.make_node(op, inputs, [out], name=out, **attrs))
        return out

    def conv(self, x: str, key: str, size: int, stride: int) -> str:
        """tf.conv2d(x, filters [kh,kw,in,out], stride, 'same') + bias."""
        f = self.weight(f"{key}/filters")
        w = self.const(f"{key}/filters", f.transpose(3, 2, 0, 1))
        b = self.const(f"{key}/bias", self.weight(f"{key}/bias"))
        return self.op("Conv", [x, w, b], key.replace("/", "_"), kernel_shape=list(f.shape[:2]),
                       strides=[stride, stride], pads=same_pads(size, f.shape[0], stride))

    def separable(self, x: str, key: str, size: int, stride: int) -> str:
        """tf.separableConv2d(x, depthwise [kh,kw,C,1], pointwise [1,1,C,out], stride, 'same') + bias."""
        dw = self.weight(f"{key}/depthwise_filter")
        pw = self.weight(f"{key}/pointwise_filter")
        c = dw.shape[2]
        dwn = self.const(f"{key}/depthwise_filter", dw.transpose(2, 3, 0, 1))  # [C,1,kh,kw]
        y = self.op("Conv", [x, dwn], key.replace("/", "_") + "_dw", group=c,
                    kernel_shape=list(dw.shape[:2]), strides=[stride, stride],
                    pads=same_pads(size, dw.shape[0], stride))
        pwn = self.const(f"{key}/pointwise_filter", pw.transpose(3, 2, 0, 1))
        b = self.const(f"{key}/bias", self.weight(f"{key}/bias"))
        return self.op("Conv", [y, pwn, b], key.replace("/", "_") + "_pw", kernel_shape=[1, 1])

    def relu(self, x: str) -> str:
        return self.op("Relu", [x], "relu")

    def add(self, *xs: str) -> str:
        # tfjs nests the sums right to left: add(a, add(b, add(c, d))); keep that order.
        out = xs[-1]
        for x in reversed(xs[:-1]):
            out = self.op("Add", [x, out], "add")
        return out

    def fc(self, x: str, key: str) -> str:
        return self.op("Gemm", [x, self.const(f"{key}/weights", self.weight(f"{key}/weights")),
                                self.const(f"{key}/bias", self.weight(f"{key}/bias"))], "fc")

    def preprocess(self) -> str:
        x = self.op("Transpose", ["image"], "nchw", perm=[0, 3, 1, 2])
        x = self.op("Sub", [x, self.const("mean_rgb", MEAN_RGB.reshape(1, 3, 1, 1))], "centred")
        return self.op("Div", [x, self.const("scale", np.array(255.0, np.float32))], "normalised")

    def pooled(self, x: str) -> str:
        """tf.avgPool(x, [7,7], [2,2], 'valid') on a 7x7 map, flattened to [N, C]."""
        x = self.op("AveragePool", [x], "avgpool", kernel_shape=[7, 7], strides=[2, 2])
        return self.op("Flatten", [x], "flat", axis=1)

    def model(self, name: str, outputs: list[onnx.ValueInfoProto], doc: str) -> onnx.ModelProto:
        unused = set(self.w) - self.used
        if unused:
            raise ValueError(f"{name}: weights not used by the rebuilt graph: {sorted(unused)}")
        graph = helper.make_graph(
            self.nodes, name,
            [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["batch", SIZE, SIZE, 3])],
            outputs, self.inits)
        m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                              producer_name="facestream scripts/convert_face_api.py", doc_string=doc)
        m.ir_version = 8
        onnx.checker.check_model(m, full_check=True)
        return m


def expression_model() -> onnx.ModelProto:
    g = Graph(load_weights("face_expression_model"))
    x, size = g.preprocess(), SIZE
    for block in range(4):
        key = f"dense{block}"
        if block == 0:  # first layer: a plain conv, stride 2
            out1 = g.relu(g.conv(x, f"{key}/conv0", size, 2))
        else:
            out1 = g.relu(g.separable(x, f"{key}/conv0", size, 2))
        size = math.ceil(size / 2)
        out2 = g.separable(out1, f"{key}/conv1", size, 1)
        out3 = g.separable(g.relu(g.add(out1, out2)), f"{key}/conv2", size, 1)
        out4 = g.separable(g.relu(g.add(out1, out2, out3)), f"{key}/conv3", size, 1)
        x = g.relu(g.add(out1, out2, out3, out4))
    logits = g.fc(g.pooled(x), "fc")
    g.nodes.append(helper.make_node("Softmax", [logits], ["probabilities"], name="softmax", axis=1))
    return g.model("face_expression", [helper.make_tensor_value_info(
        "probabilities", TensorProto.FLOAT, ["batch", 7])],
        "face-api.js FaceExpressionNet: neutral, happy, sad, angry, fearful, disgusted, surprised")


def age_gender_model() -> onnx.ModelProto:
    g = Graph(load_weights("age_gender_model"))

    def reduction(x: str, key: str, size: int, activate: bool = True) -> str:
        out = g.relu(x) if activate else x
        out = g.separable(out, f"{key}/separable_conv0", size, 1)
        out = g.separable(g.relu(out), f"{key}/separable_conv1", size, 1)
        out = g.op("MaxPool", [out], "maxpool", kernel_shape=[3, 3], strides=[2, 2],
                   pads=same_pads(size, 3, 2))
        return g.op("Add", [out, g.conv(x, f"{key}/expansion_conv", size, 2)], "add")

    def main(x: str, key: str, size: int) -> str:
        out = g.separable(g.relu(x), f"{key}/separable_conv0", size, 1)
        out = g.separable(g.relu(out), f"{key}/separable_conv1", size, 1)
        out = g.separable(g.relu(out), f"{key}/separable_conv2", size, 1)
        return g.op("Add", [out, x], "add")

    x = g.relu(g.conv(g.preprocess(), "entry_flow/conv_in", SIZE, 2))  # 56
    x = reduction(x, "entry_flow/reduction_block_0", 56, activate=False)  # 28
    x = reduction(x, "entry_flow/reduction_block_1", 28)  # 14
    for i in range(2):
        x = main(x, f"middle_flow/main_block_{i}", 14)
    x = reduction(x, "exit_flow/reduction_block", 14)  # 7
    x = g.relu(g.separable(x, "exit_flow/separable_conv", 7, 1))
    pooled = g.pooled(x)
    age = g.fc(pooled, "fc/age")
    g.nodes.append(helper.make_node("Reshape", [age, g.const("age_shape", np.array([-1], np.int64))],
                                    ["age"], name="age"))
    gender = g.fc(pooled, "fc/gender")
    g.nodes.append(helper.make_node("Softmax", [gender], ["gender"], name="gender_softmax", axis=1))
    return g.model("age_gender", [
        helper.make_tensor_value_info("age", TensorProto.FLOAT, ["batch"]),
        helper.make_tensor_value_info("gender", TensorProto.FLOAT, ["batch", 2]),
    ], "face-api.js AgeGenderNet (TinyXception, 2 middle blocks): age in years; gender = softmax [male, female]")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out-dir", type=Path, default=ROOT / "vision" / "model_files")
    args = ap.parse_args()
    args.out_dir.mkdir(parents=True, exist_ok=True)
    tarball = npm_tarball(FACE_API)
    for name, build, source in (("face_expression", expression_model, "face_expression_model"),
                                ("age_gender", age_gender_model, "age_gender_model")):
        model = build()
        path = args.out_dir / f"{name}.onnx"
        path.write_bytes(model.SerializeToString())
        shard = npm_member(FACE_API, f"model/{source}.bin")
        provenance = {
            "model": f"face-api.js {source} (npm {FACE_API.name}@{FACE_API.version})",
            "licence": "MIT (face-api.js, Vladimir Mandic and Vincent Muehler)",
            "source_tarball": FACE_API.url,
            "source_tarball_sha256": FACE_API.sha256,
            "source_weights": f"model/{source}-weights_manifest.json + model/{source}.bin",
            "source_weights_sha256": hashlib.sha256(shard).hexdigest(),
            "converter": "scripts/convert_face_api.py",
            "onnx_sha256": sha256_of(path),
            "onnx_opset": OPSET,
            "input": "image [batch, 112, 112, 3] float32 RGB 0..255 (face crop padded to a centred square)",
            "outputs": {o.name: [d.dim_param or d.dim_value for d in o.type.tensor_type.shape.dim]
                        for o in model.graph.output},
        }
        path.with_suffix(".json").write_text(json.dumps(provenance, indent=2) + "\n")
        print(f"{path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}: "
              f"{path.stat().st_size} bytes, sha256 {provenance['onnx_sha256']} (from {tarball.name})")


if __name__ == "__main__":
    main()
