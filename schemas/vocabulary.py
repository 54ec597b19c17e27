"""The words every stage shares: landmark counts, blendshape names, emotion classes, cue names,
engagement phases and interaction statuses. Defined once here, beside the contracts that carry
them; everything else imports them."""

from __future__ import annotations

from enum import StrEnum

NUM_LANDMARKS = 478  # MediaPipe's face mesh (468) and irises (10)
NUM_MESH_POINTS = 468
NUM_BLENDSHAPES = 52

# MediaPipe's 52 blendshape categories, in model output order.
BLENDSHAPES = (
    "_neutral", "browDownLeft", "browDownRight", "browInnerUp", "browOuterUpLeft",
    "browOuterUpRight", "cheekPuff", "cheekSquintLeft", "cheekSquintRight", "eyeBlinkLeft",
    "eyeBlinkRight", "eyeLookDownLeft", "eyeLookDownRight", "eyeLookInLeft", "eyeLookInRight",
    "eyeLookOutLeft", "eyeLookOutRight", "eyeLookUpLeft", "eyeLookUpRight", "eyeSquintLeft",
    "eyeSquintRight", "eyeWideLeft", "eyeWideRight", "jawForward", "jawLeft", "jawOpen",
    "jawRight", "mouthClose", "mouthDimpleLeft", "mouthDimpleRight", "mouthFrownLeft",
    "mouthFrownRight", "mouthFunnel", "mouthLeft", "mouthLowerDownLeft", "mouthLowerDownRight",
    "mouthPressLeft", "mouthPressRight", "mouthPucker", "mouthRight", "mouthRollLower",
    "mouthRollUpper", "mouthShrugLower", "mouthShrugUpper", "mouthSmileLeft", "mouthSmileRight",
    "mouthStretchLeft", "mouthStretchRight", "mouthUpperUpLeft", "mouthUpperUpRight",
    "noseSneerLeft", "noseSneerRight",
)
BLENDSHAPE_INDEX = {name: i for i, name in enumerate(BLENDSHAPES)}
assert len(BLENDSHAPES) == NUM_BLENDSHAPES

# The 7 emotion classes every model outputs, in this order.
EMOTIONS = ("neutral", "happy", "sad", "surprise", "angry", "fear", "disgust")

# Per-frame cue evidence (processors.cues.frame_evidence columns), then what each result carries
# smoothed, then what a Mojo client may ask for in "output".
FRAME_CUES = ("amusement", "surprise", "confusion", "attention")
CUES = FRAME_CUES + ("engagement",)
MOJO_OUTPUTS = CUES + ("interaction",)


class Phase(StrEnum):
    """Engagement phases (Mojo): how a person's connection with the device evolves."""

    IDLE = "idle"
    ENGAGING = "engaging"
    ENGAGED = "engaged"
    DISENGAGING = "disengaging"


class Status(StrEnum):
    """Interaction statuses (Mojo)."""

    IDLE = "idle"
    POSSIBLE = "possible"
    READY = "ready"
    SHORT_INTERRUPTION = "in_short_interruption"
    LONG_INTERRUPTION = "in_long_interruption"


PHASES = tuple(p.value for p in Phase)
STATUSES = tuple(s.value for s in Status)
