"""The ``facestream`` command line: one umbrella group (``main``); each module of this package
registers the commands of one concern on it."""

from facestream.cli import chaos, demo, edge, models, services, store  # noqa: F401  (they register their commands)
from facestream.cli.main import main

__all__ = ["main"]
