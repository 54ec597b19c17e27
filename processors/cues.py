"""Mojo-style cues from per-frame face features: transparent functions, then per-face smoothing.

Two layers, both pure:

1. ``frame_evidence`` (vectorised over a batch) turns one frame's features into instantaneous
   evidence in [0, 1] for amusement, surprise, confusion and attention. Each is a short, documented
   formula of MediaPipe blendshapes and head/gaze geometry, so a user can see why a value is high.
2. ``step`` (one face, one frame, in capture-time order) smooths the evidence with time-constant
   exponential averages (robust to uneven frame rates), derives engagement as a slower average of
   attention, and runs the engagement-phase and interaction-status state machines whose timings
   follow the Mojo documentation (short interruption < 3 s, long interruption 3-8 s).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace

import numpy as np

from schemas.vocabulary import BLENDSHAPE_INDEX as B
from schemas.vocabulary import EMOTIONS, Phase, Status


def _mean(bs: np.ndarray, *names: str) -> np.ndarray:
    return bs[:, [B[n] for n in names]].mean(axis=1)


def frame_evidence(blendshapes: np.ndarray, pose: np.ndarray, gaze: np.ndarray) -> np.ndarray:
    """Instantaneous cue evidence for a batch of face-frames.

    blendshapes: [N, 52] MediaPipe scores in [0, 1].
    pose:        [N, 3] yaw, pitch, roll in degrees (0, 0, 0 = facing the camera).
    gaze:        [N, 2] iris offset (horizontal, vertical), about [-1, 1], 0 = straight ahead.
    returns:     [N, 4] amusement, surprise, confusion, attention, each in [0, 1].

    (The pipeline replaces amusement and surprise by heads fitted to people's labels, see
    ``learned_evidence``; these transparent versions are the rules baseline the card compares.)

    amusement = smile x (0.35 + 0.65 x upper-lip raise): an open, teeth-showing smile counts fully,
        a closed-mouth smile about a third. The gate matters: MediaPipe's mouthSmile also fires on
        the stretched mouth of crying, where the upper lip stays down.
    surprise  = (1.4 x brow raise + 0.8 x jaw drop + 2 x eye widening) x (1 - smile), shifted so a
        resting face (brows are often slightly raised at rest) scores near 0; a smile vetoes it
        because raised brows are common in laughter.
    confusion = (1.2 x brow lowering + 1.5 x brow asymmetry + 0.8 x lip press + 0.5 x mouth roll
        - 0.1) / 0.9, brow lowering counted above its resting level (browDown 0.25, rescaled to
        [0, 1]): the knitted-brow, pressed-lip look. No people's labels exist for it; it cannot
        tell confusion from concentration or anger.
    attention = head factor x gaze factor x eyes-open factor: Gaussian fall-off with yaw
        (sigma 30 deg) and pitch (sigma 25 deg), with gaze offset (sigma 0.5), and 0 once the eyes
        are closed (blink score >= 0.75).
    """
    bs = np.asarray(blendshapes, dtype=np.float32)
    smile = _mean(bs, "mouthSmileLeft", "mouthSmileRight")
    upper_lip = _mean(bs, "mouthUpperUpLeft", "mouthUpperUpRight")
    amusement = smile * (0.35 + 0.65 * np.clip(1.5 * upper_lip, 0.0, 1.0))

    brow_raise = _mean(bs, "browInnerUp", "browOuterUpLeft", "browOuterUpRight")
    eye_wide = _mean(bs, "eyeWideLeft", "eyeWideRight")
    jaw = bs[:, B["jawOpen"]]
    surprise = ((1.4 * brow_raise + 0.8 * jaw + 2.0 * eye_wide) * (1.0 - smile) - 0.3) / 0.7

    # Brows rest at browDown ~0.2 on many neutral faces: only lowering beyond 0.25 counts.
    brow_down = np.clip((_mean(bs, "browDownLeft", "browDownRight") - 0.25) / 0.75, 0.0, 1.0)
    asym = np.abs(bs[:, B["browDownLeft"]] - bs[:, B["browDownRight"]])
    press = _mean(bs, "mouthPressLeft", "mouthPressRight")
    roll = _mean(bs, "mouthRollLower", "mouthRollUpper")
    confusion = (1.2 * brow_down + 1.5 * asym + 0.8 * press + 0.5 * roll - 0.1) / 0.9

    pose = np.asarray(pose, dtype=np.float32)
    gaze = np.asarray(gaze, dtype=np.float32)
    head = np.exp(-0.5 * ((pose[:, 0] / 30.0) ** 2 + (pose[:, 1] / 25.0) ** 2))
    look = np.exp(-0.5 * (gaze**2).sum(axis=1) / 0.5**2)
    blink = _mean(bs, "eyeBlinkLeft", "eyeBlinkRight")
    eyes = np.clip((0.75 - blink) / 0.45, 0.0, 1.0)
    attention = head * look * eyes

    out = np.stack([amusement, surprise, confusion, attention], axis=1)
    return np.clip(np.nan_to_num(out, nan=0.0), 0.0, 1.0).astype(np.float32)


_HAPPY, _SAD, _NEUTRAL = EMOTIONS.index("happy"), EMOTIONS.index("sad"), EMOTIONS.index("neutral")


def learned_evidence(evidence: np.ndarray, joy: np.ndarray, surprise: np.ndarray,
                     emotions: np.ndarray) -> np.ndarray:
    """Amusement and surprise from the heads fitted to people's labels (``processors.emotions``).

    evidence: [N, 4] ``frame_evidence`` (its confusion and attention columns are kept).
    joy:      [N] P(people see joy: a happy label or a smile) from the landmarks.
    surprise: [N] P(people label the face surprised).
    emotions: [N, 7] the student's emotion probabilities (EMOTIONS order).
    returns:  [N, 4] with
        amusement = P(joy) x (P(happy) / (P(happy) + P(sad)))^2 x (1 - P(neutral)): the smile
            detector, vetoed as the student reads the face as sad rather than happy, or as neutral.
            The mouth of crying looks like a smile to landmarks (and to MediaPipe's smile scores);
            the student tells the two apart by the rest of the face. Squared so that a face read
            as mostly sad is not amused.
        surprise  = P(surprise).
    """
    e = np.asarray(emotions, np.float32)
    share = e[:, _HAPPY] / np.maximum(e[:, _HAPPY] + e[:, _SAD], 1e-6)
    out = np.array(evidence, np.float32, copy=True)
    out[:, 0] = np.clip(np.asarray(joy, np.float32) * share**2 * (1.0 - e[:, _NEUTRAL]), 0.0, 1.0)
    out[:, 1] = np.clip(np.asarray(surprise, np.float32), 0.0, 1.0)
    return out


def blink_score(blendshapes: np.ndarray) -> np.ndarray:
    """[N, 52] -> [N] eye closure in [0, 1] (mean of MediaPipe's eyeBlinkLeft/Right)."""
    return _mean(np.asarray(blendshapes, dtype=np.float32), "eyeBlinkLeft", "eyeBlinkRight")


@dataclass(frozen=True)
class CueParams:
    """Time constants (s) and thresholds of the smoothing and state machines."""

    tau_expression_s: float = 0.25
    tau_attention_s: float = 0.4
    tau_engagement_s: float = 1.5
    engaging_on: float = 0.3  # engagement above this and rising: the person is engaging
    engaged_on: float = 0.6  # engagement above this: engaged
    ready_attention: float = 0.5  # smoothed attention needed for "ready"
    short_interruption_s: float = 3.0
    long_interruption_s: float = 8.0  # after this an interruption becomes idle
    blink_closed: float = 0.5  # eyes count as closed above this blink score...
    blink_open: float = 0.3  # ...and as open again below this one
    max_blink_s: float = 0.6  # longer closures are not blinks


@dataclass(frozen=True)
class CueState:
    """Smoothed cues and state-machine state of one face. JSON-serialisable via ``asdict``."""

    t_ms: int
    amusement: float
    surprise: float
    confusion: float
    attention: float
    engagement: float
    phase: str = Phase.IDLE
    status: str = Status.IDLE
    interrupted_ms: int | None = None  # when the current interruption began
    eyes_closed_ms: int | None = None  # when the eyes closed, while they are closed
    blinks: int = 0

    def to_dict(self) -> dict:
        return asdict(self)


def _ema(prev: float, x: float, dt_s: float, tau_s: float) -> float:
    a = 1.0 - math.exp(-dt_s / tau_s) if dt_s > 0 else 0.0
    return prev + a * (x - prev)


def step(
    state: CueState | None,
    evidence: np.ndarray,
    blink: float,
    t_ms: int,
    p: CueParams = CueParams(),
) -> tuple[CueState, bool]:
    """Advance one face by one frame.

    state:    the face's previous state, or None for its first frame.
    evidence: [4] this frame's ``frame_evidence`` row.
    blink:    this frame's ``blink_score``.
    t_ms:     capture time; must not precede ``state.t_ms`` (callers drop stale frames).
    returns:  (new state, whether a blink ended at this frame).
    """
    am, su, co, at = (float(v) for v in evidence)
    if state is None:
        state = CueState(t_ms, am, su, co, at, engagement=0.0)
        dt = 0.0
    else:
        dt = (t_ms - state.t_ms) / 1000.0
    e_prev = state.engagement
    am = _ema(state.amusement, am, dt, p.tau_expression_s)
    su = _ema(state.surprise, su, dt, p.tau_expression_s)
    co = _ema(state.confusion, co, dt, p.tau_expression_s)
    at = _ema(state.attention, at, dt, p.tau_attention_s)
    # Engagement follows attention more slowly: a glance away does not end an engagement.
    en = _ema(e_prev, at, dt, p.tau_engagement_s)

    # Blinks: a closure (hysteresis on the blink score) that reopens within max_blink_s.
    closed_ms, blinks, blinked = state.eyes_closed_ms, state.blinks, False
    if closed_ms is None and blink >= p.blink_closed:
        closed_ms = t_ms
    elif closed_ms is not None and blink <= p.blink_open:
        if t_ms - closed_ms <= p.max_blink_s * 1000:
            blinks, blinked = blinks + 1, True
        closed_ms = None

    phase, status, interrupted = state.phase, state.status, state.interrupted_ms
    was_engaged = phase in (Phase.ENGAGED, Phase.DISENGAGING)
    if en >= p.engaged_on and at >= p.ready_attention:
        phase, status, interrupted = Phase.ENGAGED, Status.READY, None
    elif was_engaged:
        # Engaged but attention lost, or engagement decaying: an interruption.
        interrupted = t_ms if interrupted is None else interrupted
        away_s = (t_ms - interrupted) / 1000.0
        if away_s >= p.long_interruption_s:
            phase, status, interrupted = Phase.IDLE, Status.IDLE, None
        else:
            phase = Phase.ENGAGED if en >= p.engaged_on else Phase.DISENGAGING
            status = Status.SHORT_INTERRUPTION if away_s < p.short_interruption_s else Status.LONG_INTERRUPTION
    elif en >= p.engaging_on and (en > e_prev or phase == Phase.ENGAGING):
        phase, status = Phase.ENGAGING, Status.POSSIBLE
    else:
        phase, status = Phase.IDLE, Status.IDLE

    return replace(
        state, t_ms=t_ms, amusement=am, surprise=su, confusion=co, attention=at, engagement=en,
        phase=phase, status=status, interrupted_ms=interrupted, eyes_closed_ms=closed_ms,
        blinks=blinks,
    ), blinked
