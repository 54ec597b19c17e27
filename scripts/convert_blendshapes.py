"""Convert MediaPipe's face blendshape model (face_blendshapes.tflite) to ONNX, batched.

Reads the model out of the pinned face_landmarker.task, parses the TFLite flatbuffer (the
`tflite` package) and rebuilds the same graph with onnx.helper, op by op:

    MEAN/SUM -> ReduceMean/ReduceSum   CONV_2D (1x1, NHWC) -> MatMul + Add (+ Relu)
    DEQUANTIZE of float16 weights -> float32 initializers
    RESHAPE/STRIDED_SLICE -> Reshape/Slice with the batch axis left free
    CONCATENATION with a constant (the class token) -> Expand to the batch, then Concat

The TFLite graph is written for batch 1; here axis 0 is a free batch axis, so one onnxruntime
call scores many faces: input `landmarks` [batch, 146, 2] (pixel coordinates of the 146 chosen
landmarks), output `blendshapes` [batch, 52]. The output is deterministic (same bytes each run).

    python scripts/convert_blendshapes.py [--task PATH] [--out vision/model_files/face_blendshapes.onnx]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import zipfile
from pathlib import Path

import numpy as np
import onnx
import tflite
from onnx import TensorProto, helper, numpy_helper

OPSET = 17
ROOT = Path(__file__).resolve().parents[1]
OPS = {v: k for k, v in vars(tflite.BuiltinOperator).items() if not k.startswith("_")}
ACTIVATIONS = {0: None, 1: "Relu"}
BIG = np.iinfo(np.int64).max


class Converter:
    def __init__(self, model_bytes: bytes) -> None:
        self.m = tflite.Model.GetRootAsModel(model_bytes, 0)
        self.g = self.m.Subgraphs(0)
        self.nodes: list[onnx.NodeProto] = []
        self.inits: dict[str, onnx.TensorProto] = {}
        self.consts: dict[int, np.ndarray] = {}  # tflite tensor index -> folded constant
        self.n = 0

    # -- helpers ---------------------------------------------------------------------------
    def tensor_const(self, t: int) -> np.ndarray | None:
        if t in self.consts:
            return self.consts[t]
        T = self.g.Tensors(t)
        data = self.m.Buffers(T.Buffer()).DataAsNumpy()
        if isinstance(data, int):  # no buffer: an activation
            return None
        dtype = {tflite.TensorType.FLOAT32: np.float32, tflite.TensorType.FLOAT16: np.float16,
                 tflite.TensorType.INT32: np.int32}[T.Type()]
        shape = tuple(T.ShapeAsNumpy()) if T.ShapeLength() else ()
        return np.frombuffer(data.tobytes(), dtype=dtype).reshape(shape)

    def name(self, t: int) -> str:
        """ONNX name of tflite tensor t; constants become initializers on first use."""
        if t == self.g.Inputs(0):
            return "landmarks"
        c = self.tensor_const(t)
        if c is not None:
            key = f"c{t}"
            if key not in self.inits:
                self.inits[key] = numpy_helper.from_array(np.ascontiguousarray(c), key)
            return key
        return f"t{t}"

    def const(self, value: np.ndarray, hint: str) -> str:
        self.n += 1
        key = f"{hint}_{self.n}"
        self.inits[key] = numpy_helper.from_array(np.ascontiguousarray(value), key)
        return key

    def node(self, op: str, inputs: list[str], outputs: list[str], **attrs: object) -> None:
        self.nodes.append(helper.make_node(op, inputs, outputs, **attrs))

    def tmp(self) -> str:
        self.n += 1
        return f"tmp_{self.n}"

    def activation(self, act: int, x: str, out: str) -> None:
        if act not in ACTIVATIONS:
            raise NotImplementedError(f"fused activation {act}")
        if ACTIVATIONS[act] is None:
            self.node("Identity", [x], [out])
        else:
            self.node(ACTIVATIONS[act], [x], [out])

    @staticmethod
    def options(op: tflite.Operator, cls: type) -> object:
        o = cls()
        tab = op.BuiltinOptions()
        o.Init(tab.Bytes, tab.Pos)
        return o

    # -- ops -------------------------------------------------------------------------------
    def convert(self) -> onnx.ModelProto:
        g = self.g
        for i in range(g.OperatorsLength()):
            op = g.Operators(i)
            code = self.m.OperatorCodes(op.OpcodeIndex())
            kind = OPS[max(code.BuiltinCode(), code.DeprecatedBuiltinCode())]
            ins = [op.Inputs(j) for j in range(op.InputsLength())]
            out = op.Outputs(0)
            getattr(self, f"op_{kind.lower()}")(op, ins, out)
        final = g.Outputs(0)
        self.node("Identity", [self.name(final)], ["blendshapes"])
        graph = helper.make_graph(
            self.nodes, "face_blendshapes",
            [helper.make_tensor_value_info("landmarks", TensorProto.FLOAT, ["batch", 146, 2])],
            [helper.make_tensor_value_info("blendshapes", TensorProto.FLOAT, ["batch", 52])],
            initializer=[self.inits[k] for k in sorted(self.inits)],
        )
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                                  producer_name="facestream/scripts/convert_blendshapes.py")
        model.ir_version = 8
        onnx.checker.check_model(model)
        return model

    def op_dequantize(self, op, ins, out) -> None:
        c = self.tensor_const(ins[0])
        if c is None:
            raise NotImplementedError("DEQUANTIZE of a non-constant tensor")
        self.consts[out] = c.astype(np.float32)

    def _reduce(self, onnx_op: str, op, ins, out) -> None:
        o = self.options(op, tflite.ReducerOptions)
        axes = np.atleast_1d(self.tensor_const(ins[1])).astype(np.int64)
        if onnx_op == "ReduceMean":  # opset 17: axes attribute
            self.node(onnx_op, [self.name(ins[0])], [self.name(out)], axes=axes.tolist(),
                      keepdims=int(o.KeepDims()))
        else:  # ReduceSum takes axes as an input since opset 13
            self.node(onnx_op, [self.name(ins[0]), self.const(axes, "axes")], [self.name(out)],
                      keepdims=int(o.KeepDims()))

    def op_mean(self, op, ins, out) -> None:
        self._reduce("ReduceMean", op, ins, out)

    def op_sum(self, op, ins, out) -> None:
        self._reduce("ReduceSum", op, ins, out)

    def _binary(self, onnx_op: str, cls: type, op, ins, out) -> None:
        act = self.options(op, cls).FusedActivationFunction()
        raw = self.tmp()
        self.node(onnx_op, [self.name(ins[0]), self.name(ins[1])], [raw])
        self.activation(act, raw, self.name(out))

    def op_add(self, op, ins, out) -> None:
        self._binary("Add", tflite.AddOptions, op, ins, out)

    def op_sub(self, op, ins, out) -> None:
        self._binary("Sub", tflite.SubOptions, op, ins, out)

    def op_mul(self, op, ins, out) -> None:
        self._binary("Mul", tflite.MulOptions, op, ins, out)

    def op_div(self, op, ins, out) -> None:
        self._binary("Div", tflite.DivOptions, op, ins, out)

    def op_squared_difference(self, op, ins, out) -> None:
        d = self.tmp()
        self.node("Sub", [self.name(ins[0]), self.name(ins[1])], [d])
        self.node("Mul", [d, d], [self.name(out)])

    def op_sqrt(self, op, ins, out) -> None:
        self.node("Sqrt", [self.name(ins[0])], [self.name(out)])

    def op_rsqrt(self, op, ins, out) -> None:
        s = self.tmp()
        self.node("Sqrt", [self.name(ins[0])], [s])
        self.node("Reciprocal", [s], [self.name(out)])

    def op_neg(self, op, ins, out) -> None:
        self.node("Neg", [self.name(ins[0])], [self.name(out)])

    def op_logistic(self, op, ins, out) -> None:
        self.node("Sigmoid", [self.name(ins[0])], [self.name(out)])

    def op_transpose(self, op, ins, out) -> None:
        perm = self.tensor_const(ins[1]).astype(int).tolist()
        if perm[0] != 0:
            raise NotImplementedError("a transpose that moves the batch axis")
        self.node("Transpose", [self.name(ins[0])], [self.name(out)], perm=perm)

    def op_reshape(self, op, ins, out) -> None:
        shape = self.tensor_const(ins[1]).astype(np.int64).copy()
        shape[0] = -1  # the batch axis is free
        self.node("Reshape", [self.name(ins[0]), self.const(shape, "shape")], [self.name(out)])

    def op_strided_slice(self, op, ins, out) -> None:
        o = self.options(op, tflite.StridedSliceOptions)
        if o.EllipsisMask() or o.NewAxisMask():
            raise NotImplementedError("strided slice with ellipsis or new axes")
        begin, end, strides = (self.tensor_const(t).astype(np.int64) for t in ins[1:4])
        if o.ShrinkAxisMask() == 1 and len(begin) == 2:
            # The final [1, 52] -> [52] squeeze of the batch-1 graph: keep the batch axis.
            self.node("Identity", [self.name(ins[0])], [self.name(out)])
            return
        if o.ShrinkAxisMask():
            raise NotImplementedError("strided slice that shrinks a non-batch axis")
        starts, ends = [], []
        for axis in range(len(begin)):
            b = 0 if axis == 0 or o.BeginMask() >> axis & 1 else int(begin[axis])
            e = BIG if axis == 0 or o.EndMask() >> axis & 1 else int(end[axis])
            starts.append(b)
            ends.append(e)
        self.node("Slice", [self.name(ins[0]), self.const(np.array(starts), "starts"),
                            self.const(np.array(ends), "ends"),
                            self.const(np.arange(len(begin), dtype=np.int64), "axes"),
                            self.const(strides, "steps")], [self.name(out)])

    def op_concatenation(self, op, ins, out) -> None:
        o = self.options(op, tflite.ConcatenationOptions)
        variable = next(self.name(t) for t in ins if self.tensor_const(t) is None)
        parts = []
        for t in ins:
            c = self.tensor_const(t)
            if c is None:
                parts.append(self.name(t))
                continue
            # A constant with batch 1: repeat it along the batch of the variable input.
            batch = self.tmp()
            self.node("Shape", [variable], [batch], start=0, end=1)
            shape = self.tmp()
            self.node("Concat", [batch, self.const(np.array(c.shape[1:], np.int64), "rest")], [shape], axis=0)
            expanded = self.tmp()
            self.node("Expand", [self.name(t), shape], [expanded])
            parts.append(expanded)
        raw = self.tmp()
        self.node("Concat", parts, [raw], axis=o.Axis())
        self.activation(o.FusedActivationFunction(), raw, self.name(out))

    def op_conv_2d(self, op, ins, out) -> None:
        o = self.options(op, tflite.Conv2DOptions)
        w = self.tensor_const(ins[1])
        if w is None or w.shape[1:3] != (1, 1) or o.StrideW() != 1 or o.StrideH() != 1:
            raise NotImplementedError("only 1x1, stride-1 convolutions (dense layers) are supported")
        # NHWC 1x1 convolution == a dense layer over the channel axis.
        mm = self.tmp()
        self.node("MatMul", [self.name(ins[0]), self.const(w[:, 0, 0, :].T.astype(np.float32), "w")], [mm])
        raw = mm
        if len(ins) > 2 and ins[2] >= 0:
            raw = self.tmp()
            self.node("Add", [mm, self.name(ins[2])], [raw])
        self.activation(o.FusedActivationFunction(), raw, self.name(out))


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--task", type=Path, help="face_landmarker.task (default: the pinned, cached one)")
    ap.add_argument("--out", type=Path, default=ROOT / "vision/model_files/face_blendshapes.onnx")
    args = ap.parse_args()
    if args.task is None:
        from infra import assets

        args.task = assets.landmarker_model()
    task_bytes = args.task.read_bytes()
    with zipfile.ZipFile(args.task) as zf:
        tfl = zf.read("face_blendshapes.tflite")
    model = Converter(tfl).convert()
    data = model.SerializeToString(deterministic=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_bytes(data)
    provenance = {
        "model": "MediaPipe face blendshapes (face_landmarker.task v1, float16)",
        "licence": "Apache-2.0 (MediaPipe models)",
        "source_task_sha256": sha256(task_bytes),
        "source_tflite_member": "face_blendshapes.tflite",
        "source_tflite_sha256": sha256(tfl),
        "converter": "scripts/convert_blendshapes.py",
        "onnx_sha256": sha256(data),
        "onnx_opset": OPSET,
        "input": "landmarks [batch, 146, 2] float32: the 146 landmarks of kLandmarksSubsetIdxs "
                 "(vision/features/blendshapes.py) in pixel coordinates (x * width, y * height)",
        "output": "blendshapes [batch, 52] float32 in MediaPipe's category order",
    }
    args.out.with_suffix(".json").write_text(json.dumps(provenance, indent=2) + "\n")
    print(f"wrote {args.out} ({len(data)} bytes) sha256 {provenance['onnx_sha256']}")


if __name__ == "__main__":
    main()
