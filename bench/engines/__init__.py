"""Reference consumers for the engine comparison in ``bench.sections.processor``: each runs as its
own process on a pre-filled frames topic and prints ``{"frames": n, "seconds": t}`` when done.
Kept in the bench only; the shipped worker is ``processors.worker`` (Faust)."""
