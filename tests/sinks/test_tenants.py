"""Tenants against a running gateway, worker and store: each key sees only its tenant's faces, on
every route that reads them (live API, history API, dashboard session, Socket.IO follow rooms).
Every answer is recorded in docs/RELIABILITY.md's access table (tests/faults/report.py)."""

from __future__ import annotations

import time

import httpx
import psycopg
import pytest
import socketio

from infra import assets
from producers.publish import produce
from producers.sources import VideoSource
from sinks.gateway import auth
from sinks.store.db import connect, migrate
from sinks.store.tenants import assign_device
from tests.faults import report
from tests.sinks.test_gateway import MojoClient, _token, _wait

pytestmark = pytest.mark.integration


def _stored_sessions(url: str) -> set[str]:
    with psycopg.connect(url) as conn:
        return {s for (s,) in conn.execute("SELECT DISTINCT session_id FROM sessions")}


def test_each_tenant_sees_only_its_own_faces(make_settings, database_url, start_worker, start_gateway, sink_thread,
                                              wolfgang_frames):
    s = make_settings()
    with connect(database_url) as conn:
        migrate(conn)
        made = {
            "read key of tenant acme": auth.create_key(conn, "acme-dash", ("read",), tenant="acme"),
            "read key of tenant globex": auth.create_key(conn, "globex-dash", ("read",), tenant="globex"),
            "admin key": auth.create_key(conn, "ops", ("admin",), tenant="ops"),
            "ingest key of tenant acme": auth.create_key(conn, "acme-kiosk", ("ingest",), tenant="acme"),
        }
        assign_device(conn, "acme-cam", "acme")
        assign_device(conn, "globex-cam", "globex")
    keys = {caller: secret for caller, (secret, _) in made.items()}
    ns = {caller: key.namespace for caller, (_, key) in made.items()}
    kiosk = made["ingest key of tenant acme"][1]
    acme_key, globex_key = keys["read key of tenant acme"], keys["read key of tenant globex"]
    owner = {kiosk.namespace: "acme", "acme-cam": "acme", "globex-cam": "globex"}  # device -> tenant
    start_worker(s)
    gw = start_gateway(s, database_url)
    sink_thread(s, database_url)

    tag = f"{time.time_ns()}"
    acme_edge, globex_edge = f"acme-edge-{tag}", f"globex-edge-{tag}"
    # Followers join before the session starts: acme's own, and globex's with the same (guessed) id.
    follower = MojoClient(gw.url, ns["read key of tenant acme"],
                          _token(gw.url, acme_key, session_id=acme_edge)["auth_token"])
    spy = MojoClient(gw.url, ns["read key of tenant globex"],
                     _token(gw.url, globex_key, session_id=acme_edge)["auth_token"])
    kiosk_client = MojoClient(gw.url, kiosk.namespace, _token(gw.url, keys["ingest key of tenant acme"])["auth_token"])
    try:
        kiosk_client.send(wolfgang_frames[100:130])
        for device, session in (("acme-cam", acme_edge), ("globex-cam", globex_edge)):
            produce(VideoSource(assets.media("single_face.mp4")), s.model_copy(update={"device_id": device}),
                    session_id=session, show_progress=False)
        assert _wait(lambda: len(kiosk_client.calculations) == 30 and len(follower.results) == 72)
        sessions = {acme_edge, globex_edge, kiosk_client_session(gw.url, keys["admin key"], kiosk.namespace)}
        assert _wait(lambda: sessions <= _stored_sessions(database_url))
        time.sleep(1.0)  # anything a spy could receive has had time to arrive
        report.access("Socket.IO follow of acme's session (token asked before it started)",
                      "read key of tenant acme", f"{len(follower.results)} results", 0)
        report.access("Socket.IO follow of acme's session (token asked before it started)",
                      "read key of tenant globex", f"{len(spy.results)} results", len(spy.results))
        assert len(spy.results) == 0, "another tenant's follower received acme's results"
        assert {r["device_id"] for r in follower.results} == {"acme-cam"}
    finally:
        for c in (follower, spy, kiosk_client):
            c.close()

    callers = {"no key": None, **keys}
    # The live API: each tenant its own faces, admin all, nobody without a read key.
    for caller, key in callers.items():
        r = httpx.get(f"{gw.url}/api/live", headers={"Authorization": key} if key else {})
        faces = r.json() if r.status_code == 200 else []
        tenant = _tenant_of(caller)
        leaked = sum(1 for f in faces if tenant and owner[f["device_id"]] != tenant)
        report.access("GET /api/live", caller, _answer(r, f"{len(faces)} faces"), leaked)
        assert leaked == 0
        expected = {"no key": 401, "ingest key of tenant acme": 403}.get(caller, 200)
        assert r.status_code == expected, (caller, r.text)
        if r.status_code == 200:
            want = {d for d, t in owner.items() if tenant is None or t == tenant}
            assert {f["device_id"] for f in faces} == want, caller
    # The history API: another tenant's session is as unknown as a session that never was.
    for session, device in ((acme_edge, "acme-cam"), (globex_edge, "globex-cam")):
        for caller, key in callers.items():
            r = httpx.get(f"{gw.url}/api/sessions/{session}/series", headers={"Authorization": key} if key else {})
            rows = r.json() if r.status_code == 200 else []
            tenant = _tenant_of(caller)
            sees = tenant is None or owner[device] == tenant
            report.access(f"GET /api/sessions/&lt;{owner[device]}'s session&gt;/series", caller,
                          _answer(r, f"{len(rows)} rows"), 0 if sees else len(rows))
            expected = {"no key": 401, "ingest key of tenant acme": 403}.get(caller, 200 if sees else 404)
            assert r.status_code == expected, (caller, session, r.text)
    # The dashboard: signed in as globex, the live API through the cookie shows globex's face only.
    signed = httpx.post(f"{gw.url}/dashboard/login", data={"key": globex_key})
    jar = {"facestream_session": signed.cookies["facestream_session"]}
    faces = httpx.get(f"{gw.url}/api/live", cookies=jar).json()
    leaked = sum(1 for f in faces if owner[f["device_id"]] != "globex")
    report.access("GET /api/live (dashboard session cookie)", "signed in with tenant globex's key",
                  f"200: {len(faces)} faces", leaked)
    assert [f["device_id"] for f in faces] == ["globex-cam"]
    assert httpx.get(f"{gw.url}/api/sessions/{acme_edge}/series", cookies=jar).status_code == 404
    # Asking to follow a known session of another tenant is refused at the token route.
    for caller in ("read key of tenant acme", "read key of tenant globex", "admin key"):
        r = httpx.put(f"{gw.url}/mojo_perception_api/user", headers={"Authorization": keys[caller]},
                      json={"expiration": 60, "session_id": acme_edge})
        report.access("PUT /mojo_perception_api/user (follow acme's running session)", caller, _answer(r, "token"), 0)
        assert r.status_code == (404 if caller == "read key of tenant globex" else 200), (caller, r.text)
    # Socket.IO without a token, or with a token of another namespace, is refused.
    with pytest.raises(socketio.exceptions.ConnectionError):
        MojoClient(gw.url, kiosk.namespace, None)
    with pytest.raises(socketio.exceptions.ConnectionError):
        MojoClient(gw.url, kiosk.namespace, _token(gw.url, globex_key, session_id=globex_edge)["auth_token"])
    report.access("Socket.IO connect to acme's namespace", "no token; globex's token", "refused", 0)
    # The pages and the image API (which stores nothing, so it has no tenant): a key that may read.
    r = httpx.get(f"{gw.url}/dashboard/session/{acme_edge}")
    report.access("GET /dashboard, /dashboard/session/&lt;id&gt;", "no key, not signed in",
                  f"{r.status_code} to {r.headers.get('location')}", 0)
    assert r.status_code == 303 and r.headers["location"] == "/dashboard/login"
    jpg = assets.media("single_face.jpg").read_bytes()
    for caller in ("no key", "ingest key of tenant acme", "read key of tenant globex"):
        key = keys.get(caller)
        r = httpx.post(f"{gw.url}/v1/faces", content=jpg, timeout=120,
                       headers={"Content-Type": "image/jpeg", **({"Authorization": key} if key else {})})
        report.access("POST /v1/faces", caller, _answer(r, f"{len(r.json().get('faces', []))} face"), 0)
        assert r.status_code == {"no key": 401, "ingest key of tenant acme": 403}.get(caller, 200), r.text
    health = httpx.get(f"{gw.url}/healthz")
    report.access("GET /healthz", "no key", f"{health.status_code} (liveness only, no data)", 0)
    assert health.status_code == 200 and set(health.json()) == {"status", "connections"}


def kiosk_client_session(url: str, admin: str, namespace: str) -> str:
    """The session id the gateway gave the Mojo client (the admin key sees every live face)."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        faces = [f for f in httpx.get(f"{url}/api/live", headers={"Authorization": admin}).json()
                 if f["device_id"] == namespace]
        if faces:
            return faces[0]["session_id"]
        time.sleep(0.2)
    raise AssertionError("the Mojo client's face never reached the live API")


def _tenant_of(caller: str) -> str | None:
    return {"read key of tenant acme": "acme", "read key of tenant globex": "globex"}.get(caller)


def _answer(r: httpx.Response, what: str) -> str:
    return f"200: {what}" if r.status_code == 200 else str(r.status_code)
