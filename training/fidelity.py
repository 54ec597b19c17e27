"""How far what the worker reports moves when its blendshapes come from the distilled network
instead of MediaPipe's: the same frames through the same pipeline both ways, compared.

* ``video_fidelity``: frames of one or more face videos, each face a session, stepped through
  ``FrameProcessor.process`` in order: the session cues (amusement, surprise, confusion,
  attention, engagement) and the 7 emotions, per frame.
* ``still_fidelity``: single photos (landmarks, image sizes): the per-frame evidence behind the
  cues and the 7 emotions (a still has no session to smooth over).

Each returns mean absolute differences per output and the largest of them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

from processors.pipeline import FrameProcessor
from schemas import LandmarkFrame
from schemas.vocabulary import EMOTIONS

SESSION_CUES = ("amusement", "surprise", "confusion", "attention", "engagement")
EVIDENCE = ("amusement", "surprise", "confusion", "attention")


def _summary(diffs: dict[str, np.ndarray], frames: int) -> dict:
    mad = {k: float(np.mean(v)) for k, v in diffs.items()}
    cues = {k: v for k, v in mad.items() if not k.startswith("emotion:")}
    emotions = {k.removeprefix("emotion:"): v for k, v in mad.items() if k.startswith("emotion:")}
    return {"frames": frames, "cues": cues, "emotions": emotions,
            "max_cue": max(cues.values()) if cues else 0.0, "max_emotion": max(emotions.values()) if emotions else 0.0}


def video_fidelity(frames: Sequence[LandmarkFrame], exact: FrameProcessor, distilled: FrameProcessor,
                   batch: int = 64) -> dict:
    """Frames (in capture order; their own blendshapes are dropped so both processors compute
    them) -> mean absolute differences of the session cues and the emotions, per output."""
    bare = [dataclasses.replace(f, blendshapes=None) for f in frames]
    outs = []
    for fp in (exact, distilled):
        sessions: dict = {}
        results = []
        for i in range(0, len(bare), batch):
            out = fp.process(bare[i:i + batch], sessions, now_ms=bare[min(i + batch, len(bare)) - 1].capture_ms)
            sessions.update(out.sessions)
            results.extend(out.results)
        outs.append(results)
    a, b = outs
    diffs = {c: np.abs(np.array([getattr(r, c) for r in a]) - np.array([getattr(r, c) for r in b]))
             for c in SESSION_CUES}
    ea, eb = np.array([r.emotions for r in a]), np.array([r.emotions for r in b])
    diffs.update({f"emotion:{e}": np.abs(ea[:, j] - eb[:, j]) for j, e in enumerate(EMOTIONS)})
    return _summary(diffs, len(frames))


def still_fidelity(landmarks: np.ndarray, width: np.ndarray, height: np.ndarray, exact: FrameProcessor,
                   distilled: FrameProcessor, batch: int = 512) -> dict:
    """Photos: landmarks [N, 478, 3] normalised, sizes [N] -> mean absolute differences of the
    per-frame cue evidence and the emotions, per output."""
    frames = [LandmarkFrame(session_id="still", device_id="still", track_id=i, seq=0, capture_ms=0,
                            width=int(w), height=int(h), landmarks=lm)
              for i, (lm, w, h) in enumerate(zip(landmarks, width, height))]
    ev, em = [], []
    for fp in (exact, distilled):
        parts = [fp.features(frames[i:i + batch]) for i in range(0, len(frames), batch)]
        ev.append(np.concatenate([p.evidence for p in parts]))
        em.append(np.concatenate([p.emotions for p in parts]))
    diffs = {c: np.abs(ev[0][:, j] - ev[1][:, j]) for j, c in enumerate(EVIDENCE)}
    diffs.update({f"emotion:{e}": np.abs(em[0][:, j] - em[1][:, j]) for j, e in enumerate(EMOTIONS)})
    return _summary(diffs, len(frames))
