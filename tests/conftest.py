"""Shared fixtures: a real Kafka-compatible broker, isolated topics, real worker processes,
a real PostgreSQL.

The broker is the embedded noida-db on a free 127.0.0.1 port, unless
FACESTREAM_TEST_KAFKA_BOOTSTRAP names an external one (e.g. Apache Kafka).
PostgreSQL: FACESTREAM_TEST_DATABASE_URL if set (a server where the user may create
databases), else the server on 127.0.0.1:5432 if one answers, else an embedded one (pgserver).
FACESTREAM_TEST_CONTAINERS=1 uses Apache Kafka and PostgreSQL containers instead (testcontainers).
Each test gets a fresh database of its own.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from kafka import KafkaConsumer

from facestream.services import spawn, stop
from infra.embedded import free_port, start_broker, stop_broker
from infra.settings import Settings
from infra.topics import ensure_topics, owned_prefixes, remove_topics
from schemas import FACE_RESULT, SESSION_SUMMARY, FaceResult, SessionSummary, decode, peek_header
from sinks.store.writer import StoreSink

_free_port = free_port
log = logging.getLogger(__name__)


# FACESTREAM_TEST_CONTAINERS=1 runs the integration suite against real Apache Kafka and
# PostgreSQL containers (testcontainers; needs a Docker engine, which these machines lack).
CONTAINERS = os.environ.get("FACESTREAM_TEST_CONTAINERS") == "1"


@pytest.fixture(scope="session")
def bootstrap(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    external = os.environ.get("FACESTREAM_TEST_KAFKA_BOOTSTRAP")
    if external:
        yield external
        return
    if CONTAINERS:
        from testcontainers.kafka import KafkaContainer

        with KafkaContainer("apache/kafka:3.9.0").with_kraft() as kafka:
            yield kafka.get_bootstrap_server()
        return
    s = Settings(embedded_kafka_port=_free_port(), data_dir=tmp_path_factory.mktemp("broker"),
                 kafka_bootstrap_servers=None)
    st = start_broker(s)
    try:
        yield st.address
    finally:
        stop_broker(s)


@pytest.fixture(scope="session")
def postgres_admin_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """URL of a PostgreSQL server's maintenance database, for creating test databases."""
    import psycopg

    external = os.environ.get("FACESTREAM_TEST_DATABASE_URL")
    if external:
        yield external
        return
    if CONTAINERS:
        from testcontainers.postgres import PostgresContainer

        with PostgresContainer("postgres:16", driver=None) as pg:
            yield pg.get_connection_url()
        return
    local = "postgresql://postgres@127.0.0.1:5432/postgres"
    try:
        psycopg.connect(local, connect_timeout=3).close()
        yield local
        return
    except psycopg.OperationalError:
        pass
    import pgserver

    server = pgserver.get_server(tmp_path_factory.mktemp("pgdata"), cleanup_mode="stop")
    yield server.get_uri("postgres")


@pytest.fixture
def database_url(postgres_admin_url: str) -> Iterator[str]:
    """A new, empty database; dropped after the test."""
    import psycopg
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    name = f"facestream_test_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(postgres_admin_url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    url = make_conninfo(**{**conninfo_to_dict(postgres_admin_url), "dbname": name})
    try:
        yield url
    finally:
        with psycopg.connect(postgres_admin_url, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def make_settings(bootstrap: str, tmp_path: Path) -> Iterator[Callable[..., Settings]]:
    """Settings with topics and consumer group of their own, so tests never see each other.

    Both are deleted after the test: the session's broker would otherwise carry every test's
    records to the end of the run, and the embedded one rewrites its whole state as it changes,
    so each later test would pay for them. The process fixtures (start_worker, start_gateway,
    sink_thread) ask for this one so that their processes stop first: pytest tears fixtures
    down in the reverse of the order it set them up."""
    made: list[Settings] = []

    def make(**overrides: object) -> Settings:
        tag = uuid.uuid4().hex[:8]
        base: dict[str, object] = dict(
            kafka_bootstrap_servers=bootstrap, data_dir=tmp_path / f"data-{tag}",
            frames_topic=f"t-{tag}.frames", results_topic=f"t-{tag}.results",
            summaries_topic=f"t-{tag}.sessions", dead_letter_topic=f"t-{tag}.dead",
            app_id=f"facestream-test-{tag}", partitions=4,
            worker_metrics_port=0, sink_metrics_port=0,
        )
        base.update(overrides)
        s = Settings(**base)
        made.append(s)
        ensure_topics(s)
        return s

    yield make
    for s in made:
        try:
            remove_topics(s.bootstrap, owned_prefixes(s), [s.app_id], timeout_s=10.0)
        except Exception as exc:  # a test that took its broker away; nothing left to clean
            log.warning("topics of %s not deleted: %s", s.app_id, exc)


class SinkThread:
    def __init__(self, s: Settings, url: str) -> None:
        self.sink = StoreSink(s, url)
        self.thread = threading.Thread(target=self.sink.run, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.sink.stop.set()
        self.thread.join(60)


@pytest.fixture
def sink_thread(make_settings: Callable[..., Settings]) -> Iterator[Callable[[Settings, str], SinkThread]]:
    """Start a store sink in a thread; every one is stopped after the test (a sink left running
    stays in its consumer group and holds up the next sinks' rebalances)."""
    started: list[SinkThread] = []

    def start(s: Settings, url: str) -> SinkThread:
        t = SinkThread(s, url)
        started.append(t)
        return t

    yield start
    for t in started:
        t.stop()


@dataclass
class WorkerProcess:
    proc: subprocess.Popen
    log: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def kill(self, sig: int = signal.SIGKILL) -> None:
        stop(self.proc, sig)


@pytest.fixture
def start_worker(tmp_path: Path,
                 make_settings: Callable[..., Settings]) -> Iterator[Callable[[Settings], WorkerProcess]]:
    """Start `facestream worker` as a real process; waits until it reports ready (partitions
    assigned, state restored)."""
    started: list[WorkerProcess] = []

    def start(s: Settings, timeout_s: float = 120.0) -> WorkerProcess:
        log = tmp_path / f"worker-{len(started)}.log"
        proc = spawn("worker", s, log=log)
        w = WorkerProcess(proc, log)
        started.append(w)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise AssertionError(f"worker exited with {proc.returncode}:\n{w.output()[-3000:]}")
            if "Ready" in w.output():
                return w
            time.sleep(0.2)
        raise AssertionError(f"worker not ready in {timeout_s} s:\n{w.output()[-3000:]}")

    yield start
    for w in started:
        w.kill(signal.SIGTERM)


@dataclass
class GatewayProcess:
    proc: subprocess.Popen
    log: Path
    url: str

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def kill(self, sig: int = signal.SIGKILL) -> None:
        WorkerProcess.kill(self, sig)  # type: ignore[arg-type]


@pytest.fixture
def start_gateway(tmp_path: Path, make_settings: Callable[..., Settings]) -> Iterator[Callable[..., GatewayProcess]]:
    """Start `facestream gateway` as a real process on a free 127.0.0.1 port; waits for /healthz."""
    import httpx

    started: list[GatewayProcess] = []

    def start(s: Settings, database_url: str, timeout_s: float = 60.0) -> GatewayProcess:
        port = _free_port()
        log = tmp_path / f"gateway-{len(started)}.log"
        proc = spawn("gateway", s, log=log, env={"DATABASE_URL": database_url, "FACESTREAM_GATEWAY_HOST": "127.0.0.1",
                                                 "FACESTREAM_GATEWAY_PORT": str(port)})
        g = GatewayProcess(proc, log, f"http://127.0.0.1:{port}")
        started.append(g)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise AssertionError(f"gateway exited with {proc.returncode}:\n{g.output()[-3000:]}")
            try:
                if httpx.get(f"{g.url}/healthz", timeout=1).status_code == 200:
                    return g
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise AssertionError(f"gateway not up in {timeout_s} s:\n{g.output()[-3000:]}")

    yield start
    for g in started:
        g.kill(signal.SIGTERM)


@pytest.fixture
def collect() -> Callable[..., tuple[list[FaceResult], list[SessionSummary]]]:
    """Read results and summaries from the beginning until ``until`` holds or time runs out."""

    def run(s: Settings, until: Callable[[list[FaceResult], list[SessionSummary]], bool],
            timeout_s: float = 60.0, quiet_s: float = 0.0) -> tuple[list[FaceResult], list[SessionSummary]]:
        consumer = KafkaConsumer(s.results_topic, s.summaries_topic, bootstrap_servers=s.bootstrap,
                                 auto_offset_reset="earliest", enable_auto_commit=False, group_id=None)
        results: list[FaceResult] = []
        summaries: list[SessionSummary] = []
        deadline = time.monotonic() + timeout_s
        done_at = None
        try:
            while time.monotonic() < deadline:
                for records in consumer.poll(timeout_ms=200).values():
                    for m in records:
                        kind, _ = peek_header(m.value)
                        rec = decode(m.value)
                        if kind is FACE_RESULT:
                            results.append(FaceResult(**rec))
                        elif kind is SESSION_SUMMARY:
                            summaries.append(SessionSummary(**rec))
                if done_at is None and until(results, summaries):
                    done_at = time.monotonic()
                if done_at is not None and time.monotonic() - done_at >= quiet_s:
                    break
        finally:
            consumer.close()
        return results, summaries

    return run


@pytest.fixture
def refuse_over() -> Callable[[Settings, str, int], None]:
    """Make the broker refuse records of ``topic`` over ``size`` bytes (``max.message.bytes``): a
    broker that will not take a part's output until the limit is raised again."""
    from kafka import KafkaAdminClient
    from kafka.admin import ConfigResource, ConfigResourceType

    def limit(s: Settings, topic: str, size: int) -> None:
        admin = KafkaAdminClient(bootstrap_servers=s.bootstrap)
        try:
            admin.alter_configs([ConfigResource(ConfigResourceType.TOPIC, topic,
                                                configs={"max.message.bytes": str(size)})])
        finally:
            admin.close()

    return limit


@pytest.fixture(scope="session")
def wolfgang_frames() -> list:
    """LandmarkFrames of WolfgangLanger_Pexels.mp4, extracted once by the real edge code."""
    from infra import assets
    from producers.publish import ProduceStats, extract
    from producers.sources import VideoSource
    from vision.landmarker import Landmarker

    out = []
    with Landmarker(max_faces=2) as lmk:
        for frames in extract(VideoSource(assets.media("WolfgangLanger_Pexels.mp4")), lmk,
                              f"wolfgang-{uuid.uuid4().hex[:6]}", "test-device",
                              int(time.time() * 1000), ProduceStats()):
            out.extend(frames)
    return out


@pytest.fixture(scope="session")
def real_faces():
    """MediaPipe's own landmarks, blendshapes and transforms on real faces (see features_data)."""
    from tests.vision.features.faces_data import mediapipe_faces

    return mediapipe_faces()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Write docs/RELIABILITY.md from what the fault tests recorded (only if they ran)."""
    from tests.faults import report

    report.write()


class TcpRelay:
    """A plain TCP relay on 127.0.0.1:``port`` to ``host``:``target_port``, in a thread of its own:
    a server that "comes back" on a port that had nothing listening."""

    def __init__(self, port: int, host: str, target_port: int) -> None:
        import asyncio

        async def pipe(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
            while data := await r.read(65536):
                w.write(data)
                await w.drain()
            w.close()

        async def relay(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
            ur, uw = await asyncio.open_connection(host, target_port)
            await asyncio.gather(pipe(r, uw), pipe(ur, w), return_exceptions=True)

        self.loop = asyncio.new_event_loop()
        self.server = self.loop.run_until_complete(asyncio.start_server(relay, "127.0.0.1", port))
        threading.Thread(target=self.loop.run_forever, daemon=True).start()

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.server.close)
        self.loop.call_soon_threadsafe(self.loop.stop)


@pytest.fixture
def database_away(database_url: str) -> Iterator[tuple[str, Callable[[], None]]]:
    """(a URL of the test database on a port where nothing listens yet, a call that brings the
    database up there: a TCP relay to the real server)."""
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    target = conninfo_to_dict(database_url)
    if target.get("host", "").startswith("/") or not target.get("host"):
        pytest.skip("the test database is reached over a Unix socket; this test needs TCP")
    port = free_port()
    relays: list[TcpRelay] = []

    def come_back() -> None:
        relays.append(TcpRelay(port, target["host"], int(target.get("port", 5432))))

    yield make_conninfo(**{**target, "host": "127.0.0.1", "port": str(port)}), come_back
    for r in relays:
        r.close()

