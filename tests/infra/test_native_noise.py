"""Native libraries' lines are dropped at fd 2; ours pass (a real subprocess writing to its fd 2)."""

from __future__ import annotations

import subprocess
import sys

from infra.native_noise import is_native

NATIVE_LINES = [
    b"W0000 00:00:1796052670.070531   29927 inference_runner_litert.cc:1418] Input tensor",
    b"I0000 00:00:1796052669.960188   29918 face_landmarker_graph.cc:181] Sets FaceBlendshapesGraph",
    b"INFO: Created TensorFlow Lite XNNPACK delegate for CPU.",
    b"INFO: [gpu_registry.cc:121] Statically linked GPU accelerator registered.",
    b"WARNING: All log messages before absl::InitializeLog() is called are written to STDERR",
]


def test_the_patterns():
    assert all(is_native(line) for line in NATIVE_LINES)
    for ours in (b"2026-11-30 15:05:19,819 WARNING facestream: the worker exited",
                 b"Error: the worker exited (1); see .facestream/logs/worker.log",
                 b"Traceback (most recent call last):", b"W0000 is not a log line here"):
        assert not is_native(ours)


def test_a_process_under_the_filter_keeps_only_its_own_lines():
    code = ("import os, sys, logging; from infra.native_noise import filtered\n"
            "with filtered():\n"
            f"    os.write(2, b'{NATIVE_LINES[0].decode()}\\n{NATIVE_LINES[2].decode()}\\n')\n"
            "    logging.warning('our own warning')\n"
            "    print('our own error', file=sys.stderr, flush=True)\n"
            "print('after', file=sys.stderr)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=30).stderr
    assert out.splitlines() == [b"WARNING:root:our own warning", b"our own error", b"after"]
