"""Frame sources on the edge device: a video file, a folder of images, or a camera."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png"}


class SourceError(RuntimeError):
    """A source cannot be opened or read."""


@dataclass(frozen=True)
class Frame:
    rgb: np.ndarray  # [H, W, 3] uint8
    index: int  # 0-based position in the source
    offset_ms: float  # media time since the source's first frame


class Source:
    """An iterable of Frames. ``fps`` is the source's nominal rate (None for image folders);
    ``total`` the frame count when known; ``video`` whether frames are a time series."""

    fps: float | None = None
    total: int | None = None
    video: bool = True
    name: str = ""

    def __iter__(self) -> Iterator[Frame]:  # pragma: no cover - interface
        raise NotImplementedError


class VideoSource(Source):
    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise SourceError(f"video {self.path} does not exist")
        cap = cv2.VideoCapture(str(self.path))
        if not cap.isOpened():
            raise SourceError(f"cannot decode video {self.path}: not a video OpenCV can read")
        self.fps = cap.get(cv2.CAP_PROP_FPS) or 30.0
        n = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
        self.total = n if n > 0 else None
        self.name = self.path.name
        cap.release()

    def __iter__(self) -> Iterator[Frame]:
        cap = cv2.VideoCapture(str(self.path))
        try:
            i = 0
            while True:
                ok, bgr = cap.read()
                if not ok:
                    return
                yield Frame(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), i, i * 1000.0 / self.fps)
                i += 1
        finally:
            cap.release()


class ImageFolderSource(Source):
    video = False

    def __init__(self, folder: Path | str) -> None:
        self.folder = Path(folder)
        if not self.folder.is_dir():
            raise SourceError(f"image folder {self.folder} does not exist")
        self.paths = sorted(p for p in self.folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not self.paths:
            raise SourceError(f"no .jpg/.jpeg/.png images in {self.folder}")
        self.total = len(self.paths)
        self.name = self.folder.name

    def __iter__(self) -> Iterator[Frame]:
        for i, p in enumerate(self.paths):
            bgr = cv2.imread(str(p), cv2.IMREAD_COLOR)
            if bgr is None:
                raise SourceError(f"cannot decode image {p}")
            yield Frame(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), i, 0.0)


class CameraSource(Source):
    def __init__(self, index: int) -> None:
        self.index = index
        self.name = f"camera {index}"
        cap = cv2.VideoCapture(index)
        if not cap.isOpened():
            raise SourceError(f"camera {index} cannot be opened (is a camera attached and free?)")
        self.fps = cap.get(cv2.CAP_PROP_FPS) or 30.0
        cap.release()

    def __iter__(self) -> Iterator[Frame]:
        cap = cv2.VideoCapture(self.index)
        t0 = time.monotonic()
        try:
            i = 0
            while True:
                ok, bgr = cap.read()
                if not ok:
                    raise SourceError(f"camera {self.index} stopped delivering frames")
                yield Frame(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), i, (time.monotonic() - t0) * 1000)
                i += 1
        finally:
            cap.release()
