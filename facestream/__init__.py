"""facestream: self-hosted facial-expression analytics over Kafka."""

__version__ = "0.1.0"
