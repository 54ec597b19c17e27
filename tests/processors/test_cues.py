"""Pure-logic tests of the cue formulas and state machines (synthetic features)."""

import numpy as np
import pytest

from processors.cues import CueParams, frame_evidence, step
from schemas.vocabulary import BLENDSHAPE_INDEX as B

FRONTAL = np.zeros((1, 3), np.float32)
STRAIGHT = np.zeros((1, 2), np.float32)


def bs(**scores: float) -> np.ndarray:
    out = np.zeros((1, 52), np.float32)
    for name, v in scores.items():
        out[0, B[name]] = v
    return out


def ev(blend: np.ndarray, pose=FRONTAL, gaze=STRAIGHT) -> np.ndarray:
    return frame_evidence(blend, pose, gaze)[0]


def test_evidence_shape_and_range():
    rng = np.random.default_rng(1)
    e = frame_evidence(rng.random((64, 52)), rng.normal(0, 60, (64, 3)), rng.normal(0, 1, (64, 2)))
    assert e.shape == (64, 4) and e.dtype == np.float32
    assert (e >= 0).all() and (e <= 1).all()
    assert frame_evidence(np.zeros((0, 52)), np.zeros((0, 3)), np.zeros((0, 2))).shape == (0, 4)


def test_open_smile_is_amusing_but_crying_mouth_is_not():
    laugh = ev(bs(mouthSmileLeft=0.8, mouthSmileRight=0.8, mouthUpperUpLeft=0.7, mouthUpperUpRight=0.7))
    cry = ev(bs(mouthSmileLeft=0.6, mouthSmileRight=0.6, browInnerUp=0.4))
    assert laugh[0] > 0.7 and cry[0] < 0.3


def test_raised_brows_and_dropped_jaw_are_surprise_unless_smiling():
    surprised = ev(bs(browInnerUp=0.5, browOuterUpLeft=0.4, browOuterUpRight=0.4, jawOpen=0.5))
    laughing = ev(bs(browInnerUp=0.5, browOuterUpLeft=0.4, browOuterUpRight=0.4, jawOpen=0.5,
                     mouthSmileLeft=0.9, mouthSmileRight=0.9))
    assert surprised[1] > 0.8 and laughing[1] < 0.1
    assert ev(bs())[1] == 0.0


def test_knitted_asymmetric_brows_and_pressed_lips_are_confusion():
    assert ev(bs(browDownLeft=0.5, browDownRight=0.2, mouthPressLeft=0.3, mouthPressRight=0.3))[2] > 0.7
    assert ev(bs())[2] == 0.0


@pytest.mark.parametrize("pose, gaze, blink, expected", [
    ((0, 0, 0), (0, 0), 0.0, (0.99, 1.0)),
    ((60, 0, 0), (0, 0), 0.0, (0.0, 0.2)),
    ((0, 0, 0), (0.9, 0), 0.0, (0.0, 0.3)),
    ((0, 0, 0), (0, 0), 0.9, (0.0, 0.0)),
])
def test_attention_falls_with_head_turn_gaze_and_closed_eyes(pose, gaze, blink, expected):
    a = ev(bs(eyeBlinkLeft=blink, eyeBlinkRight=blink), np.array([pose], np.float32),
           np.array([gaze], np.float32))[3]
    assert expected[0] <= a <= expected[1]


def run(att: list[float], dt_ms: int = 100, p: CueParams = CueParams()):
    state, out = None, []
    for i, a in enumerate(att):
        state, _ = step(state, np.array([0, 0, 0, a], np.float32), 0.0, i * dt_ms, p)
        out.append(state)
    return out


def test_engagement_phases_follow_sustained_attention():
    states = run([1.0] * 60)  # 6 s of full attention at 10 Hz
    phases = [s.phase for s in states]
    assert phases[0] == "idle"
    assert "engaging" in phases and phases[-1] == "engaged"
    assert phases.index("engaging") < phases.index("engaged")
    assert states[-1].status == "ready"
    assert [s.status for s in states if s.phase == "engaging"][0] == "possible"


def test_interruptions_are_short_then_long_then_idle():
    states = run([1.0] * 60 + [0.0] * 100)  # then 10 s looking away
    start = next(i for i in range(60, len(states)) if states[i].interrupted_ms is not None)
    assert start - 60 <= 5, "attention loss is noticed within half a second"
    away = states[start:]
    t0 = away[0].interrupted_ms
    for s in away:
        dt = (s.t_ms - t0) / 1000
        if s.interrupted_ms is None:
            assert s.status == "idle" and dt >= 8.0
        elif dt < 3.0:
            assert s.status == "in_short_interruption"
        else:
            assert s.status == "in_long_interruption"
    statuses = [s.status for s in away]
    assert statuses[-1] == "idle"
    assert {"in_short_interruption", "in_long_interruption"} <= set(statuses)


def test_a_short_glance_away_returns_to_ready():
    states = run([1.0] * 60 + [0.0] * 5 + [1.0] * 20)
    assert states[62].status == "in_short_interruption"
    assert states[-1].status == "ready"


def test_smoothing_uses_time_not_frame_count():
    fast = run([1.0] * 30, dt_ms=33)[-1]  # 1 s at 30 Hz
    slow = run([1.0] * 10, dt_ms=100)[-1]  # 1 s at 10 Hz
    assert abs(fast.engagement - slow.engagement) < 0.05


def test_blinks_are_counted_once_each():
    p = CueParams()
    state = None
    blink_seq = [0.0, 0.8, 0.9, 0.1, 0.0, 0.0, 0.7, 0.1, 0.0]
    ended = []
    for i, b in enumerate(blink_seq):
        state, blinked = step(state, np.zeros(4, np.float32), b, i * 50, p)
        ended.append(blinked)
    assert state.blinks == 2 and sum(ended) == 2
    # A closure longer than max_blink_s is not a blink.
    state = None
    for i, b in enumerate([0.9] * 30 + [0.0]):
        state, _ = step(state, np.zeros(4, np.float32), b, i * 50, p)
    assert state.blinks == 0
