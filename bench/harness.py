"""What every benchmark section shares: a figure, the machine and commit it was measured on, a
fresh broker per section, the real landmark stream, and the results files."""

from __future__ import annotations

import json
import os
import platform
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from infra import assets
from infra.embedded import free_port, start_broker, stop_broker  # noqa: F401  (free_port: for the sections)
from infra.settings import Settings
from schemas import LandmarkFrame

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "bench" / "results"


def machine() -> dict:
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                   if line.startswith("model name"))
    except (OSError, StopIteration):
        cpu = platform.processor()
    commit = subprocess.run(["git", "describe", "--always"], capture_output=True, text=True,
                            cwd=ROOT).stdout.strip() or "unknown"
    # Uncommitted code changes make a figure unattributable; the results files themselves do not.
    changed = subprocess.run(["git", "status", "--porcelain", "--", ".", ":!bench/results"], capture_output=True,
                             text=True, cwd=ROOT).stdout.strip()
    commit += "-dirty" if changed else ""
    return {"cpu": cpu, "cores": os.cpu_count(), "python": platform.python_version(), "commit": commit,
            "broker": "noida-db 0.2.3 (embedded)", "date": datetime.now(timezone.utc).isoformat(timespec="seconds")}


@dataclass
class Figure:
    section: str
    name: str
    value: float
    unit: str
    target: str = ""
    met: bool | None = None
    note: str = ""


# -- 2. processor throughput ------------------------------------------------------------------------
def real_frames() -> list[LandmarkFrame]:
    from producers.publish import ProduceStats, extract
    from producers.sources import VideoSource
    from vision.landmarker import Landmarker

    out: list[LandmarkFrame] = []
    with Landmarker(max_faces=2) as lm:
        for fs in extract(VideoSource(assets.media("WolfgangLanger_Pexels.mp4")), lm, "bench", "bench",
                          int(time.time() * 1000), ProduceStats()):
            out.extend(fs)
    return out


def topic_settings(base: Settings, tag: str, partitions: int = 4) -> Settings:
    return base.model_copy(update=dict(
        frames_topic=f"bench-{tag}.frames", results_topic=f"bench-{tag}.results",
        summaries_topic=f"bench-{tag}.sessions", dead_letter_topic=f"bench-{tag}.dead", app_id=f"bench-{tag}",
        worker_metrics_port=0, partitions=partitions, session_gap_s=60.0,
        data_dir=base.data_dir / f"worker-{tag}"))


def _shortfall(f: dict) -> str:
    """How far a missed figure is from its target, e.g. " (0.62x the target)"."""
    m = re.match(r"\s*[<>]=\s*([\d,.]+)", f["target"])
    if not m or not f["value"]:
        return ""
    return f" ({f['value'] / float(m.group(1).replace(',', '')):.2f}x the target)"


def py_spy(pid: int, out: Path, duration_s: int | None = None) -> subprocess.Popen | None:
    """py-spy sampling a process until it exits (or for ``duration_s``), folded stacks to ``out``;
    None where py-spy is missing."""
    exe = Path(sys.executable).parent / "py-spy"
    if not exe.exists():
        return None
    # --nonblocking: sample without pausing the worker, which would slow what is being measured.
    limit = ["--duration", str(duration_s)] if duration_s else []
    return subprocess.Popen([str(exe), "record", "--nonblocking", "--pid", str(pid), "--rate", "200", "--format", "raw",
                             "--output", str(out), *limit], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def write_spy(spy: subprocess.Popen | None, folded: Path, target: Path) -> None:
    """Wait for a ``py_spy`` run to end and write its summary to ``target`` (or why there is none)."""
    if spy is None:
        return
    try:
        spy.wait(60)
        target.write_text(summarize_spy(folded) + "\n")
    except (subprocess.TimeoutExpired, OSError, ValueError) as exc:
        target.write_text(f"py-spy gave no profile: {exc}\n")
    folded.unlink(missing_ok=True)


def summarize_spy(folded: Path, top: int = 14) -> str:
    """Where a process spent its samples: functions by own time, and facestream's by inclusive time."""
    own: dict[str, int] = {}
    inclusive: dict[str, int] = {}
    total = 0
    for line in folded.read_text().splitlines():
        if not line.strip():
            continue
        stack, count = line.rsplit(" ", 1)
        frames, n = stack.split(";"), int(count)
        total += n
        own[frames[-1]] = own.get(frames[-1], 0) + n
        for f in set(frames):
            inclusive[f] = inclusive.get(f, 0) + n
    ours = {f: v for f, v in inclusive.items() if any(p in f for p in ("processors/", "schemas/", "sinks/", "infra/pacing"))}
    lines = [f"{total} samples", "", "own time:"]
    lines += [f"  {100 * v / total:5.1f}%  {f}" for f, v in sorted(own.items(), key=lambda x: -x[1])[:top]]
    lines += ["", "facestream code, inclusive:"]
    lines += [f"  {100 * v / total:5.1f}%  {f}" for f, v in sorted(ours.items(), key=lambda x: -x[1])[:top]]
    return "\n".join(lines)


def write(figures: list[Figure], machine: dict, profile: str | None, sections: tuple[str, ...]) -> Path:
    """Write this run's sections as JSON, then the README table from every section's latest JSON
    (so running one section keeps the others' figures, each with its own machine and commit)."""
    OUT.mkdir(parents=True, exist_ok=True)
    by_section: dict[str, list[dict]] = {}
    for f in figures:
        f.value, f.met = float(f.value), None if f.met is None else bool(f.met)
        by_section.setdefault(f.section, []).append(f.__dict__)
    for section, rows in by_section.items():
        (OUT / f"{section}.json").write_text(json.dumps({"machine": machine, "figures": rows}, indent=2) + "\n")
    if profile:
        (OUT / "profile.txt").write_text(profile)
    lines = ["# Benchmark", "", "| section | figure | value | target | met | note | run |",
             "|---|---|---|---|---|---|---|"]
    runs: dict[str, dict] = {}
    for section in sections:
        path = OUT / f"{section}.json"
        if not path.exists():
            continue
        data = json.loads(path.read_text())
        m = data["machine"]
        runs[f"{m['date']} {m['commit']}"] = m
        for f in data["figures"]:
            met = "" if f["met"] is None else ("yes" if f["met"] else f"**no**{_shortfall(f)}")
            value = f"{f['value']:,.2f}" if abs(f["value"]) >= 1 or f["value"] == 0 else f"{f['value']:.3g}"
            lines.append(f"| {section} | {f['name']} | {value} {f['unit']} | {f['target']} | {met} | "
                         f"{f['note']} | {m['date']} `{m['commit']}` |")
    lines += ["", "Runs: " + "; ".join(f"{k}: {m['cpu']}, {m['cores']} cores, broker {m['broker']}"
                                       for k, m in runs.items())]
    if (OUT / "NOTES.md").exists():  # what the tables cannot say, written by hand with its commit
        lines += ["", (OUT / "NOTES.md").read_text().strip()]
    for spy in sorted(OUT.glob("worker-profile-*.txt")):
        lines += ["", f"## py-spy: one worker process through the paths run ({spy.stem.split('-', 2)[2]})", "",
                  "```", spy.read_text().strip(), "```"]
    for spy in sorted(OUT.glob("latency-profile-*.txt")):
        role, faces = spy.stem.split("-", 3)[2:]
        lines += ["", f"## py-spy: the {role} through the latency run ({faces.replace('-', ' ')} x 30 Hz)", "",
                  "```", spy.read_text().strip(), "```"]
    if (OUT / "profile.txt").exists():
        lines += ["", "## Profile: a landmark-only batch of 256 frames through FrameProcessor.process (x5)", "",
                  "```", (OUT / "profile.txt").read_text().strip(), "```", ""]
    md = OUT / "README.md"
    md.write_text("\n".join(lines) + "\n")
    return md


@contextmanager
def fresh_broker(root: Path) -> Iterator[Settings]:
    """An embedded broker on an empty data directory, for one section. noida-db holding earlier
    sections' topics was measured using most of a core while idle, which the next section would
    pay for."""
    base = Settings(embedded_kafka_port=free_port(), data_dir=root, kafka_bootstrap_servers=None)
    shutil.rmtree(root / "broker", ignore_errors=True)
    st = start_broker(base)
    try:
        yield base.model_copy(update={"kafka_bootstrap_servers": st.address})
    finally:
        stop_broker(base)
        shutil.rmtree(root / "broker", ignore_errors=True)
