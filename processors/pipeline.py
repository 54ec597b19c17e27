"""The processor's pure core: a batch of LandmarkFrames plus face sessions in, results out.

No Kafka here, so it is tested and benchmarked directly; ``processors.worker`` wires it to Kafka.
All model and geometry work is vectorised over the batch (one ONNX call per batch); only the
small per-face state machines run frame by frame, in capture order.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from processors import cues as cue_fns
from processors.cues import CueParams, CueState
from processors.emotions import EmotionModel
from processors.session import FaceSession
from schemas import FaceResult, LandmarkFrame
from schemas.vocabulary import EMOTIONS, NUM_BLENDSHAPES, NUM_LANDMARKS
from vision.features.blendshapes import BlendshapeModel
from vision.features.expression import aligned_mesh, student_features
from vision.features.eyes import eye_openness, gaze
from vision.features.pose import angles_from_matrix, rotation_to_face, to_pixel_space


@dataclass
class BatchOutput:
    results: list[FaceResult]
    sessions: dict[str, FaceSession]  # face_key -> updated session (only faces in the batch)
    stale: int  # frames at or before their face's last processed seq (redeliveries)


@dataclass(frozen=True)
class Features:
    """Per-frame features of a batch, row i for frame i.

    blendshapes [N, 52], pose [N, 3] (yaw, pitch, roll deg), gaze [N, 2], eyes [N, 2] (EAR l, r),
    evidence [N, 4] (amusement, surprise, confusion, attention; amusement and surprise from the
    heads fitted to people's labels), blink [N], emotions [N, 7] (the student, EMOTIONS order).
    """

    blendshapes: np.ndarray
    emotions: np.ndarray
    pose: np.ndarray
    gaze: np.ndarray
    eyes: np.ndarray
    evidence: np.ndarray
    blink: np.ndarray


class FrameProcessor:
    def __init__(self, params: CueParams = CueParams(), onnx_threads: int = 1, blendshapes: str = "distilled") -> None:
        """``blendshapes``: the model for frames that arrive without them (``BlendshapeModel`` kinds)."""
        self.params = params
        self.model = BlendshapeModel(blendshapes, threads=onnx_threads)
        self.emotions = EmotionModel(threads=onnx_threads)

    def features(self, frames: Sequence[LandmarkFrame]) -> Features:
        n = len(frames)
        lm = np.stack([f.landmarks for f in frames]) if n else np.zeros((0, NUM_LANDMARKS, 3), np.float32)
        w = np.array([f.width for f in frames], dtype=np.float32)
        h = np.array([f.height for f in frames], dtype=np.float32)
        bs = np.empty((n, NUM_BLENDSHAPES), dtype=np.float32)
        # Devices that computed blendshapes keep theirs; the rest get the same model server-side.
        missing = [i for i, f in enumerate(frames) if f.blendshapes is None]
        for i, f in enumerate(frames):
            if f.blendshapes is not None:
                bs[i] = f.blendshapes
        if missing:
            bs[missing] = self.model.predict(lm[missing], w[missing], h[missing])
        px = to_pixel_space(lm, w, h)
        rotation = rotation_to_face(px) if n else np.zeros((0, 3, 3))
        pose = angles_from_matrix(rotation) if n else np.zeros((0, 3), np.float32)
        gz = gaze(px)
        student = self.emotions.predict(student_features(aligned_mesh(px, rotation), bs))
        return Features(
            blendshapes=bs, emotions=student.emotions, pose=pose, gaze=gz, eyes=eye_openness(px),
            evidence=cue_fns.learned_evidence(cue_fns.frame_evidence(bs, pose, gz), student.joy,
                                              student.surprise, student.emotions),
            blink=cue_fns.blink_score(bs),
        )

    def process(
        self,
        frames: Sequence[LandmarkFrame],
        sessions: Mapping[str, FaceSession | None],
        now_ms: int | None = None,
    ) -> BatchOutput:
        """Features for every frame, then each face's frames in capture order through its state.

        ``sessions`` maps face keys to their state (None or absent: a new session). A frame whose
        seq is not after its face's last processed seq is a redelivery or out of order: it still
        gets a result (sinks are idempotent on (face_key, seq)), computed from the current state
        without advancing it, so replays never double-count.
        """
        now_ms = int(time.time() * 1000) if now_ms is None else now_ms
        feats = self.features(frames)
        order = sorted(range(len(frames)), key=lambda i: (frames[i].capture_ms, frames[i].seq))
        out: dict[str, FaceSession] = {}
        # Per frame, in capture order: (session, cue state, blinked, frame number).
        steps: list[tuple[FaceSession, CueState | None, bool, int] | None] = [None] * len(frames)
        stale = 0
        for i in order:
            f = frames[i]
            key = f.key
            s = out.get(key) or sessions.get(key)
            if s is None:
                s = FaceSession(
                    session_id=f.session_id, device_id=f.device_id, track_id=f.track_id,
                    face_key=key, started_ms=f.capture_ms, last_capture_ms=f.capture_ms,
                    last_seen_ms=now_ms, last_seq=-1,
                )
            if f.seq <= s.last_seq or (s.cues is not None and f.capture_ms < s.cues.t_ms):
                stale += 1
                state, blinked, frame_no = s.cues, False, s.frames - 1
            else:
                prev_t = s.cues.t_ms if s.cues is not None else None
                state, blinked = cue_fns.step(s.cues, feats.evidence[i], float(feats.blink[i]),
                                              f.capture_ms, self.params)
                s.record(state, prev_t)
                s.cues, s.last_seq, s.last_capture_ms = state, f.seq, f.capture_ms
                frame_no = s.frames - 1
            s.last_seen_ms = now_ms
            out[key] = s
            steps[i] = (s, state, blinked, frame_no)
        results = []
        for i, step in enumerate(steps):
            assert step is not None
            results.append(self._result(frames[i], *step, feats, feats.emotions[i], i, now_ms))
        return BatchOutput(results=results, sessions=out, stale=stale)

    @staticmethod
    def _result(f: LandmarkFrame, s: FaceSession, c: CueState | None, blinked: bool, frame_no: int,
                feats: Features, emotions: np.ndarray, i: int, now_ms: int) -> FaceResult:
        assert c is not None  # a stale frame implies an existing state
        yaw, pitch, roll = (float(v) for v in feats.pose[i])
        return FaceResult(
            session_id=f.session_id, device_id=f.device_id, track_id=f.track_id, face_key=f.key,
            seq=f.seq, capture_ms=f.capture_ms, processed_ms=now_ms,
            session_started_ms=s.started_ms, session_frame=max(frame_no, 0),
            blendshapes=feats.blendshapes[i].tolist(), yaw=yaw, pitch=pitch, roll=roll,
            gaze_x=float(feats.gaze[i, 0]), gaze_y=float(feats.gaze[i, 1]),
            eye_openness=float(feats.eyes[i].mean()), blink=blinked, blinks=c.blinks,
            amusement=c.amusement, surprise=c.surprise, confusion=c.confusion,
            attention=c.attention, engagement=c.engagement,
            engagement_phase=c.phase, interaction_status=c.status,
            emotions=emotions.tolist(), emotion=EMOTIONS[int(emotions.argmax())],
            teacher=None if f.teacher is None else f.teacher.tolist(),
        )
