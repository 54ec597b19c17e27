"""``python -m bench [SECTION ...]``: run the sections (all by default), each on a fresh broker."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

from bench.harness import ROOT, Figure, fresh_broker, machine, real_frames, write
from bench.sections import SECTIONS
from infra.settings import Settings


def run(sections: tuple[str, ...], log: Callable[[str], None] = print) -> Path:
    from bench.sections.edge import bench_edge
    from bench.sections.faces import bench_detector, bench_images
    from bench.sections.latency import bench_latency
    from bench.sections.memory import bench_memory
    from bench.sections.paths import bench_paths
    from bench.sections.processor import bench_processor, bench_scaling, profile_pipeline
    from bench.sections.store import bench_store
    from sinks.store.db import database_url, stop_embedded

    measured_on = machine()
    root = ROOT / ".facestream" / "bench"
    figures: list[Figure] = []
    db_settings = Settings(data_dir=root, kafka_bootstrap_servers=None)
    try:
        log("extracting the real landmark stream (WolfgangLanger_Pexels.mp4)")
        frames = real_frames()
        profile = profile_pipeline(frames)
        db = database_url(db_settings)
        steps: dict[str, Callable[[Settings], list[Figure]]] = {
            "edge": lambda base: bench_edge(),
            "processor": lambda base: bench_processor(base, frames),
            "paths": lambda base: bench_paths(base, frames),
            "latency": lambda base: bench_latency(base, frames, db),
            "store": lambda base: bench_store(db, frames),
            "memory": lambda base: bench_memory(base, frames),
            "scaling": lambda base: bench_scaling(base, frames),
            "detector": lambda base: bench_detector(),
            "images": lambda base: bench_images(),
        }
        assert set(steps) == set(SECTIONS)
        for name in sections:
            log(f"{name} ...")
            with fresh_broker(root) as base:
                got = steps[name](base)
            for f in got:
                log(f"  {f.name}: {f.value:,.2f} {f.unit} {f.note}")
            figures += got
            write(figures, measured_on, profile, SECTIONS)
    finally:
        stop_embedded(db_settings)
    return write(figures, measured_on, profile, SECTIONS)


def main() -> None:
    ap = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    ap.add_argument("sections", nargs="*", metavar="SECTION", help=f"any of {', '.join(SECTIONS)} (default: all)")
    args = ap.parse_args()
    unknown = sorted(set(args.sections) - set(SECTIONS))
    if unknown:
        ap.error(f"unknown section(s) {', '.join(unknown)}: choose from {', '.join(SECTIONS)}")
    print(f"wrote {run(tuple(args.sections) or SECTIONS)}")


if __name__ == "__main__":
    main()
