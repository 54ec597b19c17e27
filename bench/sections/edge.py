"""Edge landmarks per frame (MediaPipe's landmarker on the device)."""

from __future__ import annotations

import time

import cv2
import numpy as np

from bench.harness import Figure
from infra import assets


def _canvas_640x480(rgb: np.ndarray, faces: int) -> np.ndarray:
    """One face: the 640x360 video frame letterboxed to 640x480. Three faces: three half-size
    copies of the frame in a 2x2 grid."""
    out = np.zeros((480, 640, 3), np.uint8)
    if faces == 1:
        out[60:420] = rgb
        return out
    small = cv2.resize(rgb, (320, 180))
    for i, (y, x) in enumerate(((30, 0), (30, 320), (270, 160))[:faces]):
        out[y:y + 180, x:x + 320] = small
    return out


def bench_edge(frames: int = 150) -> list[Figure]:
    from producers.sources import VideoSource
    from vision.landmarker import Landmarker

    src = [f.rgb for f, _ in zip(VideoSource(assets.media("WolfgangLanger_Pexels.mp4")), range(frames))]
    out = []
    for n in (1, 3):
        canvases = [_canvas_640x480(rgb, n) for rgb in src]
        found = []
        with Landmarker(max_faces=4) as lm:
            lm.detect(canvases[0], 0)
            t = time.perf_counter()
            for i, c in enumerate(canvases[1:], 1):
                found.append(len(lm.detect(c, int(i * 33.3))))
            dt = (time.perf_counter() - t) / (len(canvases) - 1)
        out.append(Figure("edge", f"landmarks, 640x480, {n} face(s)", 1000 * dt, "ms/frame",
                          note=f"{1 / dt:.0f} fps; faces found per frame: {np.mean(found):.2f}"))
    return out
