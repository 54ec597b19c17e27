"""The edge device's command: landmarks from a video, images or a camera onto the frames topic."""

from __future__ import annotations

from pathlib import Path

import click

from facestream.cli.common import console, ensure_broker, err, settings
from facestream.cli.main import main


@main.command()
@click.option("--video", type=click.Path(dir_okay=False, path_type=Path), help="a video file")
@click.option("--images", type=click.Path(file_okay=False, path_type=Path), help="a folder of JPG/PNG images")
@click.option("--camera", type=int, help="a camera index")
@click.option("--realtime", is_flag=True, help="pace a video at its frame rate")
@click.option("--session-id", help="session id (default: random)")
@click.option("--no-progress", is_flag=True)
@click.option("--teacher", is_flag=True,
              help="attach the on-device image teacher's 7 emotion probabilities to each frame (distillation data)")
@click.option("--detector", type=click.Choice(["short", "full"]), default="short", show_default=True,
              help="short: MediaPipe's own (faces near the camera); full: the full-range detector, for room "
                   "cameras with several small faces (slower per frame)")
def produce(video: Path | None, images: Path | None, camera: int | None, realtime: bool,
            session_id: str | None, no_progress: bool, teacher: bool, detector: str) -> None:
    """Extract landmarks on this device and publish them to the frames topic."""
    from producers.publish import produce as run
    from producers.sources import CameraSource, ImageFolderSource, SourceError, VideoSource

    if sum(x is not None for x in (video, images, camera)) != 1:
        raise click.UsageError("give exactly one of --video, --images, --camera")
    s = settings()
    try:
        source = (VideoSource(video) if video else ImageFolderSource(images) if images
                  else CameraSource(camera))  # type: ignore[arg-type]
    except SourceError as exc:
        raise click.ClickException(str(exc)) from exc
    ensure_broker(s)
    sid, st = run(source, s, session_id=session_id, realtime=realtime, show_progress=not no_progress,
                  console=err, teacher=teacher, full_range=detector == "full")
    console.print(
        f"session {sid}: {st.frames} frames, {st.face_frames} face-frames, {len(st.tracks)} faces, "
        f"{st.fps:.1f} fps, landmarks {st.landmark_ms_per_frame:.1f} ms/frame"
    )
