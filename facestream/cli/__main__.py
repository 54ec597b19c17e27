"""``python -m facestream.cli ...``: how the services start each other's processes."""

from facestream.cli import main

main()
