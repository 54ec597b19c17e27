"""Commands that run or inspect the stack: the embedded services, the worker, the gateway, the
store sink, the live console."""

from __future__ import annotations

import logging
import signal

import click
from rich.table import Table

from facestream.cli.common import console, database, ensure_broker, err, settings
from facestream.cli.main import main
from infra import allocator
from infra.settings import env_names


@main.command()
@click.option("--all", "everything", is_flag=True,
              help="also start a worker, the store sink and the gateway in the background (`facestream down` stops them)")
def up(everything: bool) -> None:
    """Start the embedded broker and database (where none is configured); create topics and tables.
    With --all, the whole product (`facestream status` shows every part and its log)."""
    s = settings()
    if everything:
        from facestream.stack import Stack, StackError

        stack = Stack(s)
        try:
            stack.start(detach=True)
        except StackError as exc:
            stack.stop()
            raise click.ClickException(str(exc)) from exc
        console.print(f"running: broker, database, worker, sink, gateway; dashboard {stack.gateway_url}/dashboard; "
                      f"logs in {s.data_dir / 'logs'}")
        return
    ensure_broker(s)
    url = database(s)
    if not s.database_url:
        err.print(f"embedded PostgreSQL: {url}")


@main.command()
def down() -> None:
    """Stop everything `up` started: the services, then the embedded database and broker (their
    data is kept)."""
    from facestream.stack import stop_services
    from infra.embedded import stop_broker
    from sinks.store.db import stop_embedded

    s = settings()
    stopped = stop_services(s)
    err.print(f"stopped: {', '.join(stopped)}" if stopped else "no worker, sink or gateway was running")
    err.print("stopped the embedded PostgreSQL" if stop_embedded(s) else "no embedded PostgreSQL was running")
    err.print("stopped the embedded broker" if stop_broker(s) else "no embedded broker was running")


@main.command()
def status() -> None:
    """Every part of the stack: whether it runs, how far behind it is, and where its log is."""
    import httpx

    from facestream.stack import log_path, pid_of
    from infra.embedded import broker_status, port_open
    from infra.topics import group_lag
    from sinks.store.db import StoreError, connect, database_url, embedded_running

    s = settings()
    t = Table("part", "state", "where", "log")
    if s.embedded:
        st = broker_status(s)
        t.add_row("broker", f"running, pid {st.pid}" if st.running else "stopped", st.address, str(st.log))
        broker_up = st.running
    else:
        host, _, port = s.bootstrap.split(",")[0].rpartition(":")
        broker_up = port_open(host, int(port))
        t.add_row("broker", "reachable" if broker_up else "unreachable", s.bootstrap, "(external)")
    embedded_db = not s.database_url
    running_db = not embedded_db or embedded_running(s)
    db_state = "stopped"
    if running_db:
        try:
            with connect(database_url(s), timeout_s=3):
                db_state = "answers"
        except StoreError:
            db_state = "does not answer"
    t.add_row("database", db_state, "embedded, " + str(s.data_dir / "postgres") if embedded_db else "DATABASE_URL",
              str(s.data_dir / "postgres") if embedded_db else "(external)")
    for service, group, topics in (("worker", s.app_id, [s.frames_topic]),
                                   ("sink", s.sink_group, [s.results_topic, s.summaries_topic])):
        pid = pid_of(s, service)
        lag = group_lag(s, group, topics) if broker_up else None
        state = (f"running, pid {pid}" if pid else "not started here") + (f", lag {lag}" if lag is not None else "")
        t.add_row(service, state, f"group {group}", str(log_path(s, service)))
    pid = pid_of(s, "gateway")
    url = f"http://{s.gateway_host}:{s.gateway_port}"
    try:
        healthy = httpx.get(f"{url}/healthz", timeout=2).status_code == 200
    except httpx.HTTPError:
        healthy = False
    t.add_row("gateway", ("answers" if healthy else "does not answer") + (f", pid {pid}" if pid else ""),
              f"{url}/dashboard", str(log_path(s, "gateway")))
    console.print(t)


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
    from processors.worker import quiet_engine, run_worker

    logging.getLogger().setLevel(loglevel.upper())
    quiet_engine(logging.getLogger().level)
    s = settings()
    ensure_broker(s)
    run_worker(s)


@main.command()
@click.option("--host", help="bind address (default: FACESTREAM_GATEWAY_HOST)")
@click.option("--port", type=int, help="port (default: FACESTREAM_GATEWAY_PORT)")
def gateway(host: str | None, port: int | None) -> None:
    """Serve the Mojo-compatible Socket.IO gateway, the token endpoint and the image API."""
    import uvicorn

    from infra import metrics
    from sinks.gateway.app import create_app
    from sinks.gateway.auth import check_secret

    s = settings()
    allocator.fix_mmap_threshold(s.malloc_mmap_threshold)
    if host or port:
        s = s.model_copy(update={k: v for k, v in (("gateway_host", host), ("gateway_port", port)) if v})
    try:
        check_secret(s)
    except RuntimeError as exc:
        raise click.ClickException(str(exc)) from exc
    ensure_broker(s)
    try:
        app = create_app(s, database(s, wait=True))  # a gateway restarted in a database outage waits
    except RuntimeError as exc:
        raise click.ClickException(str(exc)) from exc
    metrics.serve(s.gateway_metrics_port, s.metrics_host)
    err.print(f"gateway on http://{s.gateway_host}:{s.gateway_port}" + (
        f", metrics on http://{s.metrics_host}:{s.gateway_metrics_port}/metrics" if s.gateway_metrics_port else ""))
    uvicorn.run(app, host=s.gateway_host, port=s.gateway_port, log_level="warning", ws="wsproto")


@main.command()
def sink() -> None:
    """Write results and session summaries to PostgreSQL (COPY batches, idempotent)."""
    from sinks.store.writer import StoreSink

    s = settings()
    allocator.fix_mmap_threshold(s.malloc_mmap_threshold)
    ensure_broker(s)
    store = StoreSink(s, database(s, migrate=False))  # the sink waits for the database itself
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
