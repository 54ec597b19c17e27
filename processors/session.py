"""Per-face session state: what the processor keeps in its changelog-backed table.

A face session opens on a face's first frame and closes after ``session_gap_s`` without frames;
closing emits a ``SessionSummary``. The state is a small JSON-able dict (well under 1 KB), so the
changelog stays cheap and a restarted worker resumes the session where it was.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from processors.cues import CueState
from schemas import SessionSummary


@dataclass
class FaceSession:
    session_id: str
    device_id: str
    track_id: int
    face_key: str
    started_ms: int  # capture time of the first frame
    last_capture_ms: int
    last_seen_ms: int  # wall-clock time the last frame was processed (drives inactivity)
    last_seq: int
    frames: int = 0
    engaged_ms: int = 0
    sums: list[float] = field(default_factory=lambda: [0.0] * 5)  # amusement..engagement
    maxes: list[float] = field(default_factory=lambda: [0.0] * 3)  # amusement, surprise, confusion
    cues: CueState | None = None

    def to_dict(self) -> dict:
        d = asdict(self)
        d["cues"] = None if self.cues is None else self.cues.to_dict()
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "FaceSession":
        d = dict(d)
        # Sessions written before the student read only still-image features carried this.
        d.pop("bs_average", None)
        cues = d.pop("cues", None)
        return cls(**d, cues=None if cues is None else CueState(**cues))

    def record(self, cues: CueState, prev_t_ms: int | None) -> None:
        """Fold one processed frame into the running aggregates."""
        self.frames += 1
        vals = (cues.amusement, cues.surprise, cues.confusion, cues.attention, cues.engagement)
        self.sums = [s + v for s, v in zip(self.sums, vals)]
        self.maxes = [max(m, v) for m, v in zip(self.maxes, vals[:3])]
        if prev_t_ms is not None and cues.phase == "engaged":
            self.engaged_ms += max(0, cues.t_ms - prev_t_ms)

    def summary(self, closed_ms: int, reason: str = "inactivity") -> SessionSummary:
        n = max(self.frames, 1)
        means = [s / n for s in self.sums]
        return SessionSummary(
            session_id=self.session_id, device_id=self.device_id, track_id=self.track_id,
            face_key=self.face_key, started_ms=self.started_ms, ended_ms=self.last_capture_ms,
            closed_ms=closed_ms, frames=self.frames,
            blinks=self.cues.blinks if self.cues else 0, engaged_s=self.engaged_ms / 1000.0,
            mean_amusement=means[0], mean_surprise=means[1], mean_confusion=means[2],
            mean_attention=means[3], mean_engagement=means[4],
            max_amusement=self.maxes[0], max_surprise=self.maxes[1], max_confusion=self.maxes[2],
            closed_reason=reason,
        )
