"""Where the face models' files are, and one way to open an ONNX model.

Every model of the project is a file in ``vision/model_files/`` (converted or trained by the
scripts and commands that name them, each with a .json of provenance beside it). Every model
runs inside a process that has other work (a stream worker's consumer, a gateway's event loop),
so each session gets ``threads`` intra-op threads and one inter-op thread instead of
onnxruntime's default of every core.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # onnxruntime is imported when a session is opened
    import onnxruntime as ort

MODEL_FILES = Path(__file__).resolve().parent / "model_files"


def model_path(name: str) -> Path:
    """``vision/model_files/<name>`` (it may not exist yet: ``open_session`` says how to make it)."""
    return MODEL_FILES / name


def open_session(model: Path | bytes, threads: int = 1, *, how_to_make: str = "") -> "ort.InferenceSession":
    """A CPU session for a model file (or serialised model bytes). A missing file raises
    FileNotFoundError saying ``how_to_make`` it."""
    if isinstance(model, Path) and not model.exists():
        raise FileNotFoundError(f"{model} is missing" + (f": {how_to_make}" if how_to_make else ""))
    import onnxruntime as ort  # here, so that finding a model's path stays cheap (the CLI does)

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    source = str(model) if isinstance(model, Path) else model
    return ort.InferenceSession(source, opts, providers=["CPUExecutionProvider"])
