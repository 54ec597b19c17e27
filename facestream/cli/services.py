"""Commands that run or inspect the stack: the embedded services, the worker, the gateway, the
store sink, the live console."""

from __future__ import annotations

import logging
import signal

import click
from rich.table import Table

from facestream.cli.common import console, database, ensure_broker, err, settings
from facestream.cli.main import main
from infra.settings import env_names


@main.command()
def up() -> None:
    """Start the embedded broker and database (where none is configured); create topics and tables."""
    s = settings()
    ensure_broker(s)
    url = database(s)
    if not s.database_url:
        err.print(f"embedded PostgreSQL: {url}")


@main.command()
def down() -> None:
    """Stop the embedded broker and database started by `up` (their data is kept)."""
    from infra.embedded import stop_broker
    from sinks.store.db import stop_embedded

    s = settings()
    err.print("stopped the embedded broker" if stop_broker(s) else "no embedded broker was running")
    err.print("stopped the embedded PostgreSQL" if stop_embedded(s) else "no embedded PostgreSQL was running")


@main.command()
def status() -> None:
    """Show where the broker is and whether it answers."""
    from infra.embedded import broker_status, port_open

    s = settings()
    if s.embedded:
        st = broker_status(s)
        console.print(f"embedded broker {st.address}: {'running, pid %d' % st.pid if st.running else 'stopped'}")
    else:
        host, _, port = s.bootstrap.split(",")[0].rpartition(":")
        console.print(f"external broker {s.bootstrap}: {'reachable' if port_open(host, int(port)) else 'unreachable'}")


@main.command("settings")
def show_settings() -> None:
    """Print the effective settings and the variables that set them."""
    s = settings()
    t = Table("variable", "value")
    for name in type(s).model_fields:
        t.add_row(env_names(name)[0], str(getattr(s, name)))
    console.print(t)


@main.command()
@click.option("--loglevel", default="info", show_default=True,
              type=click.Choice(["debug", "info", "warning", "error"]), help="log level of the worker")
def worker(loglevel: str) -> None:
    """Run a stream-processing worker (per-face sessions, cues, results)."""
    from processors.worker import run_worker

    logging.getLogger().setLevel(loglevel.upper())
    s = settings()
    ensure_broker(s)
    run_worker(s)


@main.command()
@click.option("--host", help="bind address (default: FACESTREAM_GATEWAY_HOST)")
@click.option("--port", type=int, help="port (default: FACESTREAM_GATEWAY_PORT)")
def gateway(host: str | None, port: int | None) -> None:
    """Serve the Mojo-compatible Socket.IO gateway, the token endpoint and the image API."""
    import uvicorn

    from sinks.gateway.app import create_app
    from sinks.gateway.auth import check_secret

    s = settings()
    if host or port:
        s = s.model_copy(update={k: v for k, v in (("gateway_host", host), ("gateway_port", port)) if v})
    try:
        check_secret(s)
    except RuntimeError as exc:
        raise click.ClickException(str(exc)) from exc
    ensure_broker(s)
    try:
        app = create_app(s, database(s))
    except RuntimeError as exc:
        raise click.ClickException(str(exc)) from exc
    err.print(f"gateway on http://{s.gateway_host}:{s.gateway_port}")
    uvicorn.run(app, host=s.gateway_host, port=s.gateway_port, log_level="warning", ws="wsproto")


@main.command()
def sink() -> None:
    """Write results and session summaries to PostgreSQL (COPY batches, idempotent)."""
    from sinks.store.writer import StoreSink

    s = settings()
    ensure_broker(s)
    store = StoreSink(s, database(s))
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


@main.command()
@click.option("--session-id", help="only this session")
@click.option("--from-beginning", is_flag=True)
def watch(session_id: str | None, from_beginning: bool) -> None:
    """Print live results: one line per face per second, and session summaries."""
    from sinks.console import watch as run

    try:
        run(settings(), session_id=session_id, from_beginning=from_beginning, console=console)
    except KeyboardInterrupt:
        pass
