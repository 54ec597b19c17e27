"""Shared infrastructure under the stream stages: settings, Kafka topics and pacing, embedded
services, metrics, pinned assets and ONNX sessions. Imports nothing above ``schemas``."""
