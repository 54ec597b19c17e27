"""Faults, each bounded in time, every server on 127.0.0.1: nothing acknowledged is lost, nothing
is stored twice, face sessions resume from their changelog.

Every test records what it saw in docs/RELIABILITY.md (tests/faults/report.py).
"""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import pytest

from infra.embedded import start_broker, stop_broker
from infra.settings import Settings
from infra.topics import ensure_topics
from tests.conftest import _free_port
from tests.faults import report
from tests.faults.conftest import publish, relabel, rows, session_frames, wait_for

pytestmark = pytest.mark.integration
NOIDA = not os.environ.get("FACESTREAM_TEST_KAFKA_BOOTSTRAP")


def _check(url: str, frames: list) -> tuple[int, int]:
    """(lost, duplicated) of ``frames`` in face_results."""
    stored = rows(url)
    want = {(f.key, f.seq) for f in frames}
    lost = len(want - set(stored))
    duplicated = sum(n - 1 for n in stored.values()) + len(set(stored) - want)
    return lost, duplicated


def _no_reset(url: str, face_key: str, n: int) -> bool:
    """The face's session index never goes back: the session was resumed, not restarted."""
    idx = session_frames(url, face_key)
    return len(idx) == n and all(b >= a for a, b in zip(idx, idx[1:])) and idx[-1] >= 0.95 * (n - 1)


def test_worker_sigkill_mid_stream(make_settings, start_worker, sink_thread, database_url, wolfgang_frames):
    s = make_settings(worker_instance_id="worker-a", session_gap_s=30)
    frames = relabel(wolfgang_frames, f"kill-{time.time_ns()}")
    worker = start_worker(s)
    sink_thread(s, database_url)
    sent: list[int] = []
    pub = threading.Thread(target=publish, args=(s, frames, 150.0, sent))
    pub.start()
    assert wait_for(lambda: sum(rows(database_url).values()) >= 150, 60)
    in_flight = len(sent) - sum(rows(database_url).values())
    worker.kill(signal.SIGKILL)
    start_worker(s)  # same instance id: takes its partitions back at once
    pub.join()
    assert wait_for(lambda: len(rows(database_url)) >= len(frames), 120)
    lost, dup = _check(database_url, frames)
    report.record("fault", "worker SIGKILL mid-stream, restarted", in_flight,
                  "session resumed from changelog" if _no_reset(database_url, frames[0].key, len(frames))
                  else "SESSION RESET", lost, dup)
    assert (lost, dup) == (0, 0)
    assert _no_reset(database_url, frames[0].key, len(frames))


@pytest.mark.parametrize("how", [
    pytest.param("SIGTERM", marks=pytest.mark.skipif(NOIDA, reason=(
        "the embedded noida-db cannot run this: after a dynamic member of a two-worker group leaves "
        "(SIGTERM), the survivor's offset commits are refused (IllegalGeneration, then UnknownMemberId) "
        "and it rejoins forever. Run with FACESTREAM_TEST_KAFKA_BOOTSTRAP=<Apache Kafka>."))),
    "SIGKILL",
])
def test_two_workers_one_stopped(how, make_settings, start_worker, sink_thread, database_url, wolfgang_frames):
    """SIGTERM: the worker leaves the group and the survivor takes its partitions. SIGKILL: the
    embedded broker never evicts a dead member (real Kafka does, after the session timeout), so
    the worker is replaced by a new process with the same static member id, as an orchestrator
    would; either way the other worker keeps running and nothing is lost."""
    s = make_settings(session_gap_s=30, consumer_session_timeout_s=6)
    # Static members do not leave the group on a clean stop (KIP-345): the SIGTERM case uses
    # dynamic membership, the SIGKILL case static ids so the replacement takes over at once.
    static = how == "SIGKILL"
    w1 = start_worker(s.model_copy(update={"worker_instance_id": "w1" if static else None, "static_membership": static}))
    w2 = start_worker(s.model_copy(update={"worker_instance_id": "w2" if static else None, "static_membership": static}))
    sink_thread(s, database_url)
    sessions = [relabel(wolfgang_frames[:200], f"two-{i}-{time.time_ns()}") for i in range(4)]
    everything = [f for group in sessions for f in group]
    interleaved = [f for batch in zip(*sessions) for f in batch]
    sent: list[int] = []
    pub = threading.Thread(target=publish, args=(s, interleaved, 300.0, sent))
    pub.start()
    assert wait_for(lambda: sum(rows(database_url).values()) >= 200, 60)
    in_flight = len(sent) - sum(rows(database_url).values())
    if how == "SIGTERM":
        w1.kill(signal.SIGTERM)
    else:
        w1.kill(signal.SIGKILL)
        time.sleep(3)
        start_worker(s.model_copy(update={"worker_instance_id": "w1"}))
    pub.join()
    assert wait_for(lambda: len(rows(database_url)) >= len(everything), 120), (
        f"{len(rows(database_url))} of {len(everything)} rows; survivor's log:\n{w2.output()[-3000:]}")
    lost, dup = _check(database_url, everything)
    outcome = ("its partitions moved to the other worker" if how == "SIGTERM"
               else "replaced (same member id) while the other kept running")
    report.record("fault", f"two workers, one {how}ed", in_flight, outcome, lost, dup)
    assert (lost, dup) == (0, 0)
    for group in sessions:
        assert _no_reset(database_url, group[0].key, len(group))


@pytest.mark.skipif(NOIDA, reason=(
    "the embedded noida-db loses acknowledged writes across a stop and start (consumers then see "
    "'Fetch offset N is out of range' on the frames topic), even when stopped with SIGINT. "
    "Run with FACESTREAM_TEST_KAFKA_BOOTSTRAP=<Apache Kafka>; the test starts its own noida-db only as "
    "a target to stop, so point it at a Kafka you may restart."))
def test_broker_stopped_and_restarted_mid_stream(tmp_path: Path, make_settings, start_worker, sink_thread,
                                                 database_url, wolfgang_frames):
    base = Settings(embedded_kafka_port=_free_port(), data_dir=tmp_path / "own-broker", kafka_bootstrap_servers=None)
    st = start_broker(base)
    try:
        s = make_settings(kafka_bootstrap_servers=st.address, session_gap_s=60, worker_instance_id="wb")
        ensure_topics(s)
        start_worker(s)
        sink_thread(s, database_url)
        frames = relabel(wolfgang_frames[:300], f"broker-{time.time_ns()}")
        sent: list[int] = []
        errors: list[BaseException] = []

        def run() -> None:
            try:
                publish(s, frames, 60.0, sent)
            except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
                errors.append(exc)

        pub = threading.Thread(target=run)
        pub.start()
        assert wait_for(lambda: len(sent) >= 100, 30)
        stop_broker(base)  # SIGTERM: the broker flushes what it acknowledged
        in_flight = len(frames) - len(sent)
        time.sleep(5)  # producers keep trying; nothing is dropped meanwhile
        start_broker(base)
        pub.join(180)
        assert not errors, f"the producer gave up: {errors}"
        assert wait_for(lambda: len(rows(database_url)) >= len(frames), 120)
        lost, dup = _check(database_url, frames)
        report.record("fault", "broker stopped 5 s and restarted mid-stream", in_flight,
                      "producer blocked and retried", lost, dup)
        assert (lost, dup) == (0, 0)
    finally:
        stop_broker(base)


def test_postgres_unreachable_for_30_s(tmp_path: Path, make_settings, start_worker, sink_thread, wolfgang_frames):
    import pgserver

    from sinks.store.db import _system_user

    pgdata = tmp_path / "pg"
    server = pgserver.get_server(pgdata, cleanup_mode="stop")
    url = server.get_uri("postgres")
    try:
        _postgres_outage(pgdata, url, make_settings, start_worker, sink_thread, wolfgang_frames)
    finally:  # we restarted it by hand, so pgserver's own clean-up no longer knows it: stop it here
        if (pgdata / "postmaster.pid").exists():
            pgserver.pg_ctl(["-w", "-m", "fast", "stop"], pgdata=pgdata, user=_system_user())


def _postgres_outage(pgdata: Path, url: str, make_settings, start_worker, sink_thread, wolfgang_frames) -> None:
    import pgserver

    from sinks.store.db import _system_user

    s = make_settings(session_gap_s=60, sink_batch_size=50)
    start_worker(s)
    sink = sink_thread(s, url)
    frames = relabel(wolfgang_frames[:400], f"pg-{time.time_ns()}")
    pub = threading.Thread(target=publish, args=(s, frames, 20.0))
    pub.start()
    assert wait_for(lambda: len(rows(url)) >= 60, 60)
    written_before = len(rows(url))
    pgserver.pg_ctl(["-w", "-m", "fast", "stop"], pgdata=pgdata, user=_system_user())
    time.sleep(30)
    retries = sink.sink.stats.db_retries
    socket_dir = url.split("host=")[1]
    pgserver.pg_ctl(["-w", "-o", '-h ""', "-o", f"-k {socket_dir}", "-l", str(pgdata / "log"), "start"],
                    pgdata=pgdata, user=_system_user())
    pub.join()
    assert wait_for(lambda: len(rows(url)) >= len(frames), 120)
    lost, dup = _check(url, frames)
    report.record("fault", "PostgreSQL down 30 s", len(frames) - written_before,
                  f"sink backed off ({retries} retries), caught up", lost, dup)
    assert retries >= 3, "the sink noticed and backed off"
    assert (lost, dup) == (0, 0)


def test_gateway_dies_clients_reconnect(make_settings, start_worker, start_gateway, database_url, wolfgang_frames):
    from tests.sinks.test_gateway import MojoClient, _key, _token

    s = make_settings()
    key, ns = _key(database_url, "reconnect")
    start_worker(s)
    g1, g2 = start_gateway(s, database_url), start_gateway(s, database_url)
    token = _token(g1.url, key)["auth_token"]
    client = MojoClient(g1.url, ns, token)
    client.send(wolfgang_frames[300:330])
    assert wait_for(lambda: len(client.calculations) >= 30, 30)
    g1.kill(signal.SIGKILL)
    assert wait_for(lambda: not client.sio.connected, 10)
    again = MojoClient(g2.url, ns, token)  # the same token, the surviving process
    again.send(wolfgang_frames[330:360])
    assert wait_for(lambda: len(again.calculations) >= 30, 30)
    time.sleep(1)
    lost = 30 - len(again.calculations)
    dup = max(0, len(again.calculations) - 30)
    report.record("fault", "gateway process SIGKILLed; client reconnects with the same token", 0,
                  "calculations continue on the other process", lost, dup)
    assert (lost, dup) == (0, 0)
    again.close()


def test_a_stalled_broker_tells_the_gateways_clients_and_holds_nothing_back(tmp_path: Path, make_settings,
                                                                           start_gateway, database_url,
                                                                           wolfgang_frames):
    """Found by the chaos run: while the broker stalled, the gateway queued a task per facemesh
    event (its memory doubled) and frames the broker never took were dropped without a word."""
    from tests.sinks.test_gateway import MojoClient, _key, _token

    base = Settings(embedded_kafka_port=_free_port(), data_dir=tmp_path / "own-broker", kafka_bootstrap_servers=None)
    st = start_broker(base)
    try:
        s = make_settings(kafka_bootstrap_servers=st.address, gateway_send_timeout_s=2.0)
        ensure_topics(s)
        key, ns = _key(database_url, "stall")
        gw = start_gateway(s, database_url)
        client = MojoClient(gw.url, ns, _token(gw.url, key)["auth_token"])
        client.send(wolfgang_frames[:10])
        time.sleep(1.0)
        assert client.errors == []
        os.kill(st.pid, signal.SIGSTOP)  # the broker stops answering (our own broker, by its pid)
        try:
            t0 = time.monotonic()
            client.send(wolfgang_frames[10:13], fps=100)
            assert wait_for(lambda: len(client.errors) == 3, 30), client.errors
            waited = time.monotonic() - t0
        finally:
            os.kill(st.pid, signal.SIGCONT)
        assert {e["reason"] for e in client.errors} == {"unavailable"}
        assert [e["seq"] for e in client.errors] == [10, 11, 12]
        assert waited >= 3 * 2.0 - 0.5, "one frame at a time: each waited its own timeout"
        client.send(wolfgang_frames[13:20])
        time.sleep(2.0)
        assert len(client.errors) == 3, "the broker is back: frames are accepted again"
        report.record("fault", "broker stalled (SIGSTOP) under a Mojo client; gateway send timeout 2 s", 3,
                      "`error` event (reason `unavailable`) per frame not taken; connection kept", 0, 0)
        client.close()
    finally:
        stop_broker(base)
