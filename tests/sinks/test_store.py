"""The PostgreSQL store: migrations, idempotent COPY writes, the sink end to end, analytics."""

from __future__ import annotations

import dataclasses
import threading
import time
import uuid

import numpy as np
import psycopg
import pytest

from infra import assets
from processors.pipeline import FrameProcessor
from producers.publish import produce
from producers.sources import VideoSource
from sinks.store import queries
from sinks.store.db import connect, migrate, migrations
from sinks.store.writer import StoreSink, StoreWriter


@pytest.fixture(scope="module")
def real_results(wolfgang_frames):
    """FaceResults of the actress video, computed by the real processor (no Kafka)."""
    frames = wolfgang_frames[:120]
    out = FrameProcessor().process(frames, {})
    return out.results, [s.summary(int(time.time() * 1000)) for s in out.sessions.values()]


def _count(url: str, table: str) -> int:
    with psycopg.connect(url) as conn:
        return conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]


def test_migrations_apply_once_and_are_recorded(database_url):
    with connect(database_url) as conn:
        assert migrate(conn) == [name for _, name, _ in migrations()]
        assert migrate(conn) == []  # idempotent: a second service start applies nothing
        versions = [v for (v,) in conn.execute("SELECT version FROM schema_migrations ORDER BY 1")]
        assert versions == [v for v, _, _ in migrations()]
        kind = conn.execute("SELECT relkind FROM pg_class WHERE relname = 'face_results'").fetchone()[0]
        assert kind == "p", "face_results is partitioned"


def test_writer_is_idempotent_under_redelivery(database_url, real_results):
    results, summaries = real_results
    with connect(database_url) as conn:
        migrate(conn)
        w = StoreWriter(conn)
        first = w.write(results[:70], [])
        second = w.write(results[50:], summaries)  # overlaps the first batch by 20
        again = w.write(results, summaries)  # everything redelivered
    assert first.results_written == 70 and second.results_written == len(results) - 70
    assert again.results_written == 0 and again.summaries_written == 0
    assert _count(database_url, "face_results") == len(results)
    assert _count(database_url, "session_summaries") == len(summaries) == 1
    with psycopg.connect(database_url) as conn:
        row = conn.execute("SELECT amusement, p_happy, emotion, blendshapes, session_frame, capture_time "
                           "FROM face_results WHERE face_key = %s AND seq = %s",
                           (results[10].face_key, results[10].seq)).fetchone()
        sess = conn.execute("SELECT first_capture, last_capture FROM sessions").fetchall()
    r = results[10]
    assert row[0] == pytest.approx(r.amusement, abs=1e-6) and row[1] == pytest.approx(r.emotions[1], abs=1e-6)
    assert row[2] == r.emotion and np.allclose(row[3], r.blendshapes, atol=1e-6) and row[4] == r.session_frame
    assert int(row[5].timestamp() * 1000) == r.capture_ms
    assert len(sess) == 1
    assert int(sess[0][0].timestamp() * 1000) == min(x.capture_ms for x in results)


@pytest.mark.integration
def test_results_topic_to_postgres_end_to_end(make_settings, start_worker, collect, database_url):
    s = make_settings(session_gap_s=1.0, sink_group=f"sink-{uuid.uuid4().hex[:6]}")
    start_worker(s)
    sid, stats = produce(VideoSource(assets.media("single_face.mp4")), s, show_progress=False)
    results, _ = collect(s, lambda r, sm: any(x.session_id == sid for x in sm), timeout_s=120)
    assert len(results) == stats.face_frames == 72

    sink = StoreSink(s, database_url)
    thread = threading.Thread(target=sink.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and (_count(database_url, "face_results") < 72
                                           or _count(database_url, "session_summaries") < 1):
        time.sleep(0.2)
    sink.stop.set()
    thread.join(30)
    with psycopg.connect(database_url) as conn:
        stored = {(k, q): (a, e) for k, q, a, e in conn.execute(
            "SELECT face_key, seq, attention, engagement_phase FROM face_results")}
    assert stored == {(r.face_key, r.seq): (pytest.approx(r.attention, abs=1e-6), r.engagement_phase)
                      for r in results}, "one row per produced result, with its values"

    # A second sink in a new consumer group re-reads the whole topic: nothing is duplicated.
    again = StoreSink(s.model_copy(update={"sink_group": f"replay-{uuid.uuid4().hex[:6]}"}), database_url)
    t2 = threading.Thread(target=again.run, daemon=True)
    t2.start()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and again.stats.results_duplicate < 72:
        time.sleep(0.2)
    again.stop.set()
    t2.join(30)
    assert again.stats.results_duplicate == 72 and again.stats.results_written == 0
    assert _count(database_url, "face_results") == 72 and _count(database_url, "session_summaries") == 1

    with psycopg.connect(database_url) as conn:
        (summary,) = queries.session_summary(conn, sid)
        assert summary["frames"] == 72 and summary["face_key"] == f"{sid}/0"
        assert summary["dominant_emotion"] in ("happy", "neutral")
        timeline = queries.timeline(conn, sid)
        assert sum(t["frames"] for t in timeline) == 72 and 0 <= timeline[0]["attention"] <= 1
        dist = queries.distribution(conn, "engagement", device=s.device_id)
        assert sum(d["frames"] for d in dist) == 72 and all(1 <= d["bucket"] <= 10 for d in dist)
        assert [x["session_id"] for x in queries.sessions(conn, device=s.device_id)] == [sid]
        assert queries.sessions(conn, device="another-device") == []
        with pytest.raises(ValueError, match="engagement or attention"):
            queries.distribution(conn, "amusement; DROP TABLE face_results")


def test_embedded_postgres_is_the_default_without_database_url(tmp_path):
    """No DATABASE_URL: a real PostgreSQL from the pgserver wheel, started and stopped by us."""
    from infra.settings import Settings
    from sinks.store.db import database_url, stop_embedded

    s = Settings(database_url=None, data_dir=tmp_path)
    url = database_url(s)
    try:
        with connect(url) as conn:
            assert migrate(conn)
            assert conn.execute("SHOW server_version").fetchone()[0].startswith("16")
    finally:
        assert stop_embedded(s)
    assert not stop_embedded(s)


def test_keys_cli_creates_lists_and_revokes(database_url):
    from click.testing import CliRunner

    from facestream.cli import main

    runner = CliRunner()
    env = {"DATABASE_URL": database_url}
    created = runner.invoke(main, ["keys", "create", "kiosk"], env=env)
    assert created.exit_code == 0, created.output
    secret = next(w for w in created.output.split() if w.startswith("fsk_"))
    key_id = secret.split("_")[1]
    listed = runner.invoke(main, ["keys", "list"], env=env)
    assert key_id in listed.output and secret.split("_", 2)[2] not in listed.output
    with psycopg.connect(database_url) as conn:
        stored = conn.execute("SELECT key_hash FROM api_keys").fetchone()[0]
    assert secret.split("_", 2)[2] not in stored, "only a hash is stored"
    assert runner.invoke(main, ["keys", "revoke", key_id], env=env).exit_code == 0
    again = runner.invoke(main, ["keys", "revoke", key_id], env=env)
    assert again.exit_code != 0 and "no active key" in again.output
    # Scopes, tenant and expiry at creation; shown in the listing.
    dash = runner.invoke(main, ["keys", "create", "dash", "--scope", "read", "--tenant", "acme",
                                "--expires-days", "2"], env=env)
    assert dash.exit_code == 0 and "tenant acme, scopes read" in dash.output and "expires" in dash.output
    wrong = runner.invoke(main, ["keys", "create", "x", "--scope", "write"], env=env)
    assert wrong.exit_code != 0 and "'ingest', 'read', 'admin'" in wrong.output
    with psycopg.connect(database_url) as conn:
        row = conn.execute("SELECT scopes, tenant, expires > now() + interval '47 hours' FROM api_keys "
                           "WHERE name = 'dash'").fetchone()
    assert row == (["read"], "acme", True)


@pytest.fixture
def service_url(database_url):
    """The URL of a login role with the services' rights only (``facestream db grant``)."""
    from psycopg import sql
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    from sinks.store.db import grant_runtime_role

    role = f"facestream_app_{uuid.uuid4().hex[:8]}"
    with connect(database_url, autocommit=True) as owner:
        migrate(owner)
        owner.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(role)))
    try:
        with connect(database_url) as owner:
            grant_runtime_role(owner, role)
        yield make_conninfo(**{**conninfo_to_dict(database_url), "user": role})
    finally:
        with connect(database_url, autocommit=True) as owner:
            owner.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(role)))
            owner.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))


def test_the_service_role_cannot_change_the_schema(service_url, real_results):
    """Migrations by the owner; the services run as a role that can write data (and create the
    day's partition through the vetted function) but cannot alter, create or drop anything."""
    results, summaries = real_results
    with connect(service_url) as conn:
        assert migrate(conn) == []  # nothing pending: starts without DDL rights
        written = StoreWriter(conn).write(results[:10], summaries)
        assert written.results_written == 10
        for ddl in ("ALTER TABLE face_results ADD COLUMN sneaky int", "CREATE TABLE sneaky (x int)",
                    "DROP TABLE api_keys", "CREATE INDEX sneaky ON face_results (seq)",
                    "DELETE FROM face_results", "DROP TABLE face_results_" + time.strftime("%Y%m%d", time.gmtime())):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                with conn.transaction():
                    conn.execute(ddl)


def _aged(results, summaries, name: str, days: float):
    """Copies of a session's results and summary as if captured ``days`` ago, as session ``name``."""
    shift = int(days * 86_400_000)
    rs = [dataclasses.replace(r, session_id=name, face_key=f"{name}/0", capture_ms=r.capture_ms - shift)
          for r in results]
    ss = [dataclasses.replace(s, session_id=name, face_key=f"{name}/0", started_ms=s.started_ms - shift,
                              ended_ms=s.ended_ms - shift, closed_ms=s.closed_ms - shift) for s in summaries]
    return rs, ss


def _partitions(url: str) -> set[str]:
    with psycopg.connect(url) as conn:
        return {n for (n,) in conn.execute("SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
                                           "JOIN pg_class p ON p.oid = i.inhparent WHERE p.relname = 'face_results'")}


def test_the_sink_drops_days_past_the_retention_as_the_services_role(service_url, database_url, real_results,
                                                                     make_settings, sink_thread):
    from infra import metrics
    from sinks.store.retention import partition_day

    results, summaries = real_results
    old, old_summaries = _aged(results[:20], summaries, "old", 40)  # past 30 days: goes
    recent, recent_summaries = _aged(results[:20], summaries, "recent", 28)  # within: stays
    with connect(service_url) as conn:
        StoreWriter(conn).write(old + recent + results[:20], old_summaries + recent_summaries + summaries)
    before = _partitions(database_url)
    dropped_before = metrics.RETENTION_DROPPED._value.get()
    sink = sink_thread(make_settings(retention_days=30), service_url)  # as the services' role
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and _partitions(database_url) == before:
        time.sleep(0.2)
    sink.stop()
    (gone,) = before - _partitions(database_url)
    assert partition_day(gone).isoformat() == time.strftime("%Y-%m-%d", time.gmtime(old[0].capture_ms / 1000))
    assert metrics.RETENTION_DROPPED._value.get() - dropped_before == 1
    with psycopg.connect(database_url) as conn:
        for table in ("face_results", "sessions", "session_summaries"):
            by_session = dict(conn.execute(f"SELECT session_id, count(*) FROM {table} GROUP BY 1").fetchall())
            assert "old" not in by_session, table
            assert by_session["recent"] > 0 and by_session[results[0].session_id] > 0, table
    # A late result for a dropped day gets its partition back rather than failing the batch.
    with connect(service_url) as conn:
        assert StoreWriter(conn).write(old[:1], []).results_written == 1
    with pytest.raises(ValueError, match="at least 1"):
        with connect(database_url) as conn:
            from sinks.store.retention import apply_retention

            apply_retention(conn, 0)


def test_queries_see_only_a_tenants_devices(database_url, real_results):
    from sinks.gateway import auth
    from sinks.store.tenants import assign_device, assigned_devices, owners, unassign_device

    results, summaries = real_results
    acme, _ = _aged(results[:30], summaries, "acme-run", 0)
    globex = [dataclasses.replace(r, device_id="globex-cam") for r in _aged(results[:30], summaries, "globex-run", 0)[0]]
    acme = [dataclasses.replace(r, device_id="acme-cam") for r in acme]
    with connect(database_url) as conn:
        migrate(conn)
        StoreWriter(conn).write(acme + globex, [])
        assign_device(conn, "acme-cam", "acme")
        assign_device(conn, "globex-cam", "globex")
        _, mojo_key = auth.create_key(conn, "acme-kiosk", tenant="acme")
        with pytest.raises(ValueError, match="namespace"):
            assign_device(conn, mojo_key.namespace, "globex")  # a key's namespace is its tenant's
        assert owners(conn) == {"acme-cam": "acme", "globex-cam": "globex", mojo_key.namespace: "acme"}
        assert [d.device_id for d in assigned_devices(conn, "acme")] == ["acme-cam"]

        assert [r["session_id"] for r in queries.sessions(conn, tenant="acme")] == ["acme-run"]
        assert {r["session_id"] for r in queries.sessions(conn)} == {"acme-run", "globex-run"}  # the owner's CLI
        assert queries.session_summary(conn, "globex-run", tenant="acme") == []
        assert queries.timeline(conn, "globex-run", tenant="acme") == []
        assert queries.series(conn, "globex-run", tenant="acme") == []
        assert len(queries.session_summary(conn, "globex-run", tenant="globex")) == 1
        assert queries.timeline(conn, "acme-run", tenant="acme") and queries.series(conn, "acme-run", tenant="acme")
        assert sum(b["frames"] for b in queries.distribution(conn, "attention", tenant="acme")) == 30
        assert sum(b["frames"] for b in queries.distribution(conn, "attention", tenant="nobody")) == 0
        # A device taken from its tenant is seen by nobody but the owner's queries (and admin keys).
        assert unassign_device(conn, "globex-cam") and not unassign_device(conn, "globex-cam")
        assert queries.sessions(conn, tenant="globex") == []


def test_forget_erases_a_session_from_every_table_and_the_changelog(database_url, real_results, make_settings):
    from click.testing import CliRunner
    from kafka import KafkaConsumer, KafkaProducer, TopicPartition

    from facestream.cli import main
    from infra.settings import settings_env
    from infra.topics import changelog_topic, ensure_topics

    results, summaries = real_results
    # The session to forget ends now (so it may be live); the one to keep ended a day ago.
    results, summaries = _aged(results, summaries, "gone", (results[-1].capture_ms - time.time() * 1000) / 86_400_000)
    gone_sid, gone_key = "gone", "gone/0"
    kept = _aged(results[:5], [], "kept", 1)[0]
    with connect(database_url) as conn:
        migrate(conn)
        StoreWriter(conn).write(results + kept, summaries)
    s = make_settings()
    ensure_topics(s)
    topic = changelog_topic(s.app_id)
    p = KafkaProducer(bootstrap_servers=s.bootstrap)
    for key in (gone_key, "kept/0"):  # the worker's latest state of each face
        p.send(topic, key=key.encode(), value=b'{"state": "of a face"}')
    p.flush()
    p.close()

    runner = CliRunner()
    env = {**settings_env(s), "DATABASE_URL": database_url}
    both = runner.invoke(main, ["forget", "--session", gone_sid, "--device", "x"], env=env)
    assert both.exit_code != 0 and "exactly one" in both.output
    # The session's frames are minutes old at most: it may still be live, so forget wants --force.
    live = runner.invoke(main, ["forget", "--session", gone_sid], env=env)
    assert live.exit_code != 0 and "may still be live" in live.output and "--force" in live.output
    with psycopg.connect(database_url) as conn:
        assert conn.execute("SELECT count(*) FROM face_results WHERE session_id = %s", (gone_sid,)).fetchone()[0]
    out = runner.invoke(main, ["forget", "--session", gone_sid, "--force"], env=env)
    assert out.exit_code == 0, out.output
    assert f"{len(results)} from face_results" in out.output and "1 face state(s) tombstoned" in out.output

    with psycopg.connect(database_url) as conn:
        for table in ("face_results", "session_summaries", "sessions"):
            assert conn.execute(f"SELECT count(*) FROM {table} WHERE session_id = %s",
                                (gone_sid,)).fetchone()[0] == 0, table
        assert conn.execute("SELECT count(*) FROM face_results WHERE session_id = 'kept'").fetchone()[0] == 5
    c = KafkaConsumer(bootstrap_servers=s.bootstrap, enable_auto_commit=False, consumer_timeout_ms=3000)
    parts = [TopicPartition(topic, i) for i in c.partitions_for_topic(topic)]
    c.assign(parts)
    c.seek_to_beginning(*parts)
    latest = {}
    for m in c:
        latest[m.key.decode()] = m.value
    c.close()
    assert latest[gone_key] is None, "the forgotten face's latest changelog value is a tombstone"
    assert latest["kept/0"] is not None


def test_a_sink_started_while_the_database_is_away_waits_for_it(database_url, database_away, make_settings,
                                                               real_results):
    """Found by the chaos run: a sink restarted while PostgreSQL was frozen exited at start
    ("cannot connect"), and stayed down. It now waits, as it does for a batch."""
    from infra.topics import ensure_topics

    url, come_back = database_away
    s = make_settings()
    ensure_topics(s)
    sink = StoreSink(s, url)
    t = threading.Thread(target=sink.run, daemon=True)
    t.start()  # nothing listens on the port yet: the database is away
    time.sleep(3.0)
    assert t.is_alive() and sink.stats.db_retries >= 2

    come_back()
    try:
        from kafka import KafkaProducer as Producer

        results, _ = real_results
        p = Producer(bootstrap_servers=s.bootstrap)
        for r in results[:20]:
            p.send(s.results_topic, key=r.session_id.encode(), value=r.encode())
        p.flush()
        p.close()
        def stored() -> int:  # the tables appear once the sink has reached the database
            try:
                return _count(database_url, "face_results")
            except psycopg.errors.UndefinedTable:
                return 0

        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and stored() < 20:
            time.sleep(0.2)
        assert stored() == 20
    finally:
        sink.stop.set()
        t.join(30)
