"""One way to open an ONNX model: onnxruntime's CPU provider with a fixed number of threads.

Every model of the project runs inside a process that has other work (a stream worker's
consumer, a gateway's event loop), so each session gets ``threads`` intra-op threads and one
inter-op thread instead of onnxruntime's default of every core.
"""

from __future__ import annotations

from pathlib import Path

import onnxruntime as ort


def open_session(model: Path | bytes, threads: int = 1, *, how_to_make: str = "") -> ort.InferenceSession:
    """A CPU session for a model file (or serialised model bytes). A missing file raises
    FileNotFoundError saying ``how_to_make`` it."""
    if isinstance(model, Path) and not model.exists():
        raise FileNotFoundError(f"{model} is missing" + (f": {how_to_make}" if how_to_make else ""))
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    source = str(model) if isinstance(model, Path) else model
    return ort.InferenceSession(source, opts, providers=["CPUExecutionProvider"])
