"""The console sink's line per face per second."""

from __future__ import annotations

from processors.pipeline import FrameProcessor
from sinks.console import _Second, format_second


def test_a_second_line_shows_the_dominant_emotion_and_mean_cues(wolfgang_frames):
    results = FrameProcessor().process(wolfgang_frames[400:430], {}).results  # the actress laughing
    sec = _Second()
    for r in results:
        sec.add(r)
    line = format_second(results[0].face_key, sec)
    assert f"{len(results):>3} fr" in line and "happy" in line
    mean_amusement = sum(r.amusement for r in results) / len(results)
    assert f"amuse {mean_amusement:.2f}" in line and f"phase {results[-1].engagement_phase}" in line
