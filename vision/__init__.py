"""The face models, used by the edge, the image API, the stream processor and training: their
files and ONNX sessions (``vision.models``), MediaPipe's landmarker, the full-range detector and
the image teacher. Imports only ``infra`` and ``schemas``."""
