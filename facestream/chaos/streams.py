"""Real landmark streams to replay: one face of a pinned video, run once through the edge
landmarker (the device's own code) and cached, then replayed by every simulated face from its own
offset so no two faces move alike."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

VIDEO = "WolfgangLanger_Pexels.mp4"


@dataclass(frozen=True)
class Stream:
    landmarks: np.ndarray  # [N, 478, 3] float32, normalised
    blendshapes: np.ndarray  # [N, 52] float32 (MediaPipe's, as an edge device sends them)
    transforms: np.ndarray  # [N, 4, 4] float32
    width: int
    height: int

    def __len__(self) -> int:
        return len(self.landmarks)

    def mesh_px(self, i: int) -> list[list[float]]:
        """Frame ``i`` (cyclic) as a Mojo client sends it: 478 points [x*w, y*h, z*w]."""
        p = self.landmarks[i % len(self)] * np.array([self.width, self.height, self.width], np.float32)
        return p.tolist()


def load_stream(cache_dir: Path) -> Stream:
    """The stream of ``VIDEO``'s first face, from the cache or extracted now (a few seconds)."""
    path = cache_dir / "chaos" / f"{Path(VIDEO).stem}-landmarks.npz"
    if not path.exists():
        _extract(path)
    with np.load(path) as z:
        return Stream(z["landmarks"], z["blendshapes"], z["transforms"], int(z["width"]), int(z["height"]))


def _extract(path: Path) -> None:
    from infra import assets
    from producers.publish import ProduceStats, extract
    from producers.sources import VideoSource
    from vision.landmarker import Landmarker

    lm, bs, tf, size = [], [], [], (0, 0)
    with Landmarker(max_faces=1) as lmk:
        for frames in extract(VideoSource(assets.media(VIDEO)), lmk, "chaos", "chaos", 0, ProduceStats()):
            for f in frames[:1]:
                lm.append(f.landmarks)
                bs.append(f.blendshapes)
                tf.append(f.transform)
                size = (f.width, f.height)
    if not lm:
        raise RuntimeError(f"no face found in {VIDEO}: the chaos run has nothing to replay")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.npz")
    np.savez(tmp, landmarks=np.stack(lm), blendshapes=np.stack(bs), transforms=np.stack(tf),
             width=size[0], height=size[1])
    tmp.replace(path)
