"""The performance figures, measured side by side in one run (``make bench``, or
``python -m bench [SECTION ...]`` from the repository). Not part of the installed package nor of
the tests: shared machines are noisy, so ratios measured in the same run matter more than
absolute numbers. Writes ``bench/results/<section>.json`` and ``bench/results/README.md``."""
