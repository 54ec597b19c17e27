"""The Mojo-compatible gateway as real processes, spoken to by real python-socketio clients.

The clients speak exactly the Mojo protocol (DESIGN.md): token from PUT /mojo_perception_api/user,
namespace /<user_namespace>, auth={"token": ...}, `facemesh` events with 478 pixel-unit points,
`calculation` events back.
"""

from __future__ import annotations

import threading
import time
from datetime import datetime, timezone

import httpx
import jwt
import pytest
import socketio

from infra import assets
from producers.publish import produce
from producers.sources import VideoSource
from sinks.gateway import auth
from sinks.store.db import connect, migrate
from sinks.store.tenants import assign_device

pytestmark = pytest.mark.integration

OUTPUT = ["attention", "confusion", "surprise", "amusement", "engagement", "interaction"]


def _key(database_url: str, name: str, scopes: tuple[str, ...] = ("ingest",)) -> tuple[str, str]:
    with connect(database_url) as conn:
        migrate(conn)
        secret, key = auth.create_key(conn, name, scopes)
    return secret, key.namespace


def _token(url: str, key: str, **extra) -> dict:
    r = httpx.put(f"{url}/mojo_perception_api/user", headers={"Authorization": key},
                  json={"datetime": datetime.now(timezone.utc).isoformat(), "expiration": 360, **extra})
    assert r.status_code == 200, r.text
    return r.json()


def _mesh(frame) -> list[list[float]]:
    """A LandmarkFrame as a Mojo client sends it: pixel units [x*w, y*h, z*w]."""
    w, h = frame.width, frame.height
    return [[float(x * w), float(y * h), float(z * w)] for x, y, z in frame.landmarks]


class MojoClient:
    """A python-socketio client that records what the gateway sends."""

    def __init__(self, url: str, namespace: str, token: str | None) -> None:
        self.calculations: list[dict] = []
        self.results: list[dict] = []
        self.errors: list[dict] = []
        self.sio = socketio.Client(reconnection=False)
        self.sio.on("calculation", self.calculations.append, namespace=f"/{namespace}")
        self.sio.on("result", self.results.append, namespace=f"/{namespace}")
        self.sio.on("error", self.errors.append, namespace=f"/{namespace}")
        self.namespace = f"/{namespace}"
        refusal: list = []
        self.sio.on("connect_error", refusal.append, namespace=self.namespace)
        try:
            self.sio.connect(url, namespaces=[self.namespace], auth={"token": token} if token else None,
                             transports=["websocket"], wait_timeout=10)
        except socketio.exceptions.ConnectionError as exc:
            # The server's reason arrives as the namespace's connect_error event.
            raise socketio.exceptions.ConnectionError(f"{exc}: {refusal}") from None

    def send(self, frames, fps: float = 30.0) -> None:
        for f in frames:
            self.sio.emit("facemesh", {"facemesh": _mesh(f), "output": OUTPUT,
                                       "timestamp": datetime.now(timezone.utc).isoformat()},
                          namespace=self.namespace)
            time.sleep(1.0 / fps)

    def close(self) -> None:
        self.sio.disconnect()


def _wait(cond, timeout_s: float = 60.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.1)
    return cond()


def test_token_endpoint(make_settings, database_url, start_gateway):
    s = make_settings()
    key, ns = _key(database_url, "acme")
    gw = start_gateway(s, database_url)
    body = _token(gw.url, key)
    assert body["user_namespace"] == ns and len(ns) == 32
    assert body["host_name"] == "127.0.0.1" and body["port"] == gw.url.rsplit(":", 1)[1]
    claims = jwt.decode(body["auth_token"], s.jwt_secret, algorithms=["HS256"])
    assert claims["ns"] == ns and 355 <= claims["exp"] - time.time() <= 361
    for headers, why in (({}, "no API key"), ({"Authorization": "fsk_nope_nope"}, "unknown API key"),
                         ({"Authorization": "hello"}, "not a facestream API key")):
        r = httpx.put(f"{gw.url}/mojo_perception_api/user", headers=headers, json={"expiration": 60})
        assert r.status_code == 401 and why in r.json()["error"]["message"]
    r = httpx.put(f"{gw.url}/mojo_perception_api/user", headers={"Authorization": key}, json={"expiration": -1})
    assert r.status_code == 400 and r.json()["error"]["code"] == 400
    with connect(database_url) as conn:
        auth.revoke_key(conn, key.split("_")[1])
    r = httpx.put(f"{gw.url}/mojo_perception_api/user", headers={"Authorization": key}, json={"expiration": 60})
    assert r.status_code == 401 and "revoked" in r.json()["error"]["message"]
    assert "/mojo_perception_api/user" in httpx.get(f"{gw.url}/openapi.json").json()["paths"]
    # Scopes: sending frames needs ingest, following a session's results needs read.
    reader, _ = _key(database_url, "dash", ("read",))
    r = httpx.put(f"{gw.url}/mojo_perception_api/user", headers={"Authorization": reader}, json={"expiration": 60})
    assert r.status_code == 403 and "lacks the 'ingest' scope" in r.json()["error"]["message"]
    ingest, _ = _key(database_url, "kiosk")
    r = httpx.put(f"{gw.url}/mojo_perception_api/user", headers={"Authorization": f"Bearer {ingest}"},
                  json={"expiration": 60, "session_id": "edge-1"})
    assert r.status_code == 403 and "lacks the 'read' scope" in r.json()["error"]["message"]


def test_a_gateway_started_while_the_database_is_away_waits_for_it(make_settings, database_url, database_away,
                                                                   start_gateway):
    """Found by the chaos run: a gateway restarted while PostgreSQL was frozen exited at start
    ("cannot connect") and stayed down, and its Mojo clients with it. It now waits and says so."""
    url, come_back = database_away
    s = make_settings()
    started: list = []
    t = threading.Thread(target=lambda: started.append(start_gateway(s, url, timeout_s=90)), daemon=True)
    t.start()  # nothing listens on the database's port yet
    time.sleep(4.0)
    assert t.is_alive() and not started, "the gateway must not be serving, nor have exited"
    come_back()
    t.join(90)
    assert started, "the gateway did not come up once the database did"
    gw = started[0]
    assert "PostgreSQL unavailable at start" in gw.output()
    key, _ = _key(database_url, "late")
    assert _token(gw.url, key)["auth_token"]


def test_metrics_can_leave_the_public_port(make_settings, database_url, start_gateway):
    from tests.conftest import _free_port

    port = _free_port()
    gw = start_gateway(make_settings(gateway_metrics_port=port), database_url)
    assert httpx.get(f"{gw.url}/metrics").status_code == 404
    assert httpx.get(f"{gw.url}/healthz").status_code == 200  # liveness stays open
    assert "facestream_frames_in_total" in httpx.get(f"http://127.0.0.1:{port}/metrics").text
    assert "/metrics" not in httpx.get(f"{gw.url}/openapi.json").json()["paths"]


def test_guessing_keys_is_throttled_per_address(make_settings, database_url, start_gateway):
    s = make_settings(auth_failures_per_minute=3)
    key, _ = _key(database_url, "real")
    gw = start_gateway(s, database_url)
    url = f"{gw.url}/mojo_perception_api/user"
    for i in range(3):
        r = httpx.put(url, headers={"Authorization": f"fsk_guess{i}_x"}, json={"expiration": 60})
        assert r.status_code == 401
    r = httpx.put(url, headers={"Authorization": "fsk_guess9_x"}, json={"expiration": 60})
    assert r.status_code == 429 and 1 <= int(r.headers["Retry-After"]) <= 60
    assert "too many failed API-key checks" in r.json()["error"]["message"]
    # While throttled, even a valid key from this address waits: guessing gains nothing.
    assert httpx.put(url, headers={"Authorization": key}, json={"expiration": 60}).status_code == 429
    assert "facestream_auth_throttled_total 2.0" in httpx.get(f"{gw.url}/metrics").text


def test_mojo_clients_get_their_own_calculations(make_settings, database_url, start_worker, start_gateway,
                                                 wolfgang_frames):
    s = make_settings()
    key_a, ns_a = _key(database_url, "a")
    key_b, ns_b = _key(database_url, "b")
    start_worker(s)
    gw = start_gateway(s, database_url)

    # Refused at connect, with the reason.
    for token, ns, why in ((None, ns_a, "no token"),
                           (auth.issue_token(s, ns_a, 60, now=time.time() - 3600), ns_a, "expired"),
                           (_token(gw.url, key_b)["auth_token"], ns_a, f"not /{ns_a}"),
                           ("garbage", ns_a, "invalid token")):
        with pytest.raises(socketio.exceptions.ConnectionError, match=why):
            MojoClient(gw.url, ns, token)

    a = MojoClient(gw.url, ns_a, _token(gw.url, key_a)["auth_token"])
    b = MojoClient(gw.url, ns_b, _token(gw.url, key_b)["auth_token"])
    frames_a, frames_b = wolfgang_frames[300:360], wolfgang_frames[:40]
    ta = threading.Thread(target=a.send, args=(frames_a,))
    ta.start()
    b.send(frames_b)
    # No face in this frame: nothing to calculate. Bad events: an error, and the connection lives on.
    b.sio.emit("facemesh", {"facemesh": [], "output": OUTPUT, "timestamp": datetime.now(timezone.utc).isoformat()},
               namespace=b.namespace)
    b.sio.emit("facemesh", {"facemesh": [[1, 2, 3]] * 5, "output": OUTPUT}, namespace=b.namespace)
    b.sio.emit("facemesh", "not an object", namespace=b.namespace)
    ta.join()
    assert _wait(lambda: len(a.calculations) >= len(frames_a) and len(b.calculations) >= len(frames_b))
    time.sleep(1.0)  # anything extra would arrive now
    assert len(a.calculations) == len(frames_a), "one calculation per face frame, none from the other namespace"
    assert len(b.calculations) == len(frames_b)
    assert [e["reason"] for e in b.errors] == ["bad_event", "bad_event"]
    assert "478" in b.errors[0]["error"]
    for c in a.calculations + b.calculations:
        assert set(c) == set(OUTPUT)
        for cue in ("attention", "confusion", "surprise", "amusement"):
            assert 0.0 <= c[cue] <= 1.0
        assert c["engagement"]["status"] in ("idle", "engaging", "engaged", "disengaging")
        assert 0.0 <= c["engagement"]["value"] <= 1.0
        assert c["interaction"]["status"] in ("idle", "possible", "ready", "in_short_interruption",
                                              "in_long_interruption")
    # The laughing segment reads as amusement; the crying one does not.
    assert sum(c["amusement"] for c in a.calculations) / len(a.calculations) > 0.5
    a.close()
    b.close()


def test_two_gateways_deliver_each_result_once_and_live_subscriptions(make_settings, database_url, start_worker,
                                                                      start_gateway, wolfgang_frames):
    s = make_settings()
    key, ns = _key(database_url, "two", ("ingest", "read"))  # sends frames and follows a session
    with connect(database_url) as conn:
        assign_device(conn, s.device_id, "two")  # the edge producer's device: the key's tenant
    start_worker(s)
    g1, g2 = start_gateway(s, database_url), start_gateway(s, database_url)
    c1 = MojoClient(g1.url, ns, _token(g1.url, key)["auth_token"])
    c2 = MojoClient(g2.url, ns, _token(g2.url, key)["auth_token"])  # same namespace, other process
    # A dashboard following an edge producer's session, through the second process.
    edge_session = f"edge-{time.time_ns()}"
    follower = MojoClient(g2.url, ns, _token(g1.url, key, session_id=edge_session)["auth_token"])

    t1 = threading.Thread(target=c1.send, args=(wolfgang_frames[100:150],))
    t1.start()
    c2.send(wolfgang_frames[200:230])
    t1.join()
    _, stats = produce(VideoSource(assets.media("single_face.mp4")), s, session_id=edge_session,
                       show_progress=False)
    assert _wait(lambda: len(c1.calculations) >= 50 and len(c2.calculations) >= 30
                 and len(follower.results) >= stats.face_frames)
    time.sleep(1.0)
    assert (len(c1.calculations), len(c2.calculations)) == (50, 30), "no loss, no duplicate across processes"
    assert len(follower.results) == stats.face_frames == 72
    assert sorted(r["seq"] for r in follower.results) == list(range(72))
    assert {r["session_id"] for r in follower.results} == {edge_session}
    # A follower may not send frames.
    follower.sio.emit("facemesh", {"facemesh": _mesh(wolfgang_frames[0]), "output": OUTPUT},
                      namespace=follower.namespace)
    assert _wait(lambda: follower.errors, 10) and follower.errors[0]["reason"] == "subscriber"
    for c in (c1, c2, follower):
        c.close()


def test_access_controls(make_settings, database_url, start_gateway):
    from click.testing import CliRunner

    from facestream.cli import main

    # Outside development the default (or a short) secret is refused at start.
    for secret in (None, "short"):
        env = {"FACESTREAM_ENVIRONMENT": "production", "DATABASE_URL": database_url}
        if secret:
            env["FACESTREAM_JWT_SECRET"] = secret
        r = CliRunner().invoke(main, ["gateway"], env=env)
        assert r.exit_code != 0 and "FACESTREAM_JWT_SECRET" in r.output
    auth.check_secret(make_settings(environment="production", jwt_secret="x" * 40))  # a real one passes

    s = make_settings()
    key, ns = _key(database_url, "access")
    gw = start_gateway(s, database_url)
    token = _token(gw.url, key)["auth_token"]
    # CORS is closed unless configured: no allow-origin for a foreign page, and Socket.IO refuses it.
    pre = httpx.options(f"{gw.url}/v1/faces", headers={"Origin": "https://evil.example",
                                                       "Access-Control-Request-Method": "POST"})
    assert "access-control-allow-origin" not in pre.headers
    handshake = httpx.get(f"{gw.url}/socket.io/?EIO=4&transport=polling", headers={"Origin": "https://evil.example"})
    assert handshake.status_code == 400
    # Neither the key's secret nor a token ever reaches the logs.
    c = MojoClient(gw.url, ns, token)
    c.sio.emit("facemesh", {"facemesh": [[1, 2, 3]], "output": OUTPUT}, namespace=c.namespace)
    assert _wait(lambda: c.errors, 10)
    c.close()
    log = gw.output()
    assert key.split("_", 2)[2] not in log and token not in log


def test_data_routes_want_a_read_key_or_a_signed_in_dashboard(make_settings, database_url, start_gateway):
    gw = start_gateway(make_settings(), database_url)
    reader, _ = _key(database_url, "dash", ("read",))
    ingest, _ = _key(database_url, "kiosk")
    for route in ("/api/live", "/api/sessions/some-session/series"):
        r = httpx.get(f"{gw.url}{route}")
        assert r.status_code == 401 and "sign in" in r.json()["error"]["message"], route
        assert httpx.get(f"{gw.url}{route}", headers={"Authorization": ingest}).status_code == 403, route
    assert httpx.get(f"{gw.url}/api/live", headers={"Authorization": f"Bearer {reader}"}).json() == []
    assert httpx.get(f"{gw.url}/api/sessions/some-session/series", headers={"Authorization": reader}).status_code == 404
    for page in ("/dashboard", "/dashboard/session/some-session"):
        r = httpx.get(f"{gw.url}{page}")
        assert r.status_code == 303 and r.headers["location"] == "/dashboard/login", page
    assert httpx.get(f"{gw.url}/healthz").status_code == 200
    # Signing in: a wrong key comes back with a reason (never the key) in the URL.
    r = httpx.post(f"{gw.url}/dashboard/login", data={"key": "fsk_nope_nope"})
    assert r.status_code == 303 and r.headers["location"] == "/dashboard/login?failed=unknown_key"
    r = httpx.post(f"{gw.url}/dashboard/login", data={"key": reader})
    assert r.status_code == 303 and r.headers["location"] == "/dashboard"
    cookie = r.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and reader not in cookie
    jar = {"facestream_session": r.cookies["facestream_session"]}
    assert httpx.get(f"{gw.url}/dashboard", cookies=jar).status_code == 200
    assert httpx.get(f"{gw.url}/api/live", cookies=jar).status_code == 200
    # Revoking the key ends its dashboard sessions.
    with connect(database_url) as conn:
        auth.revoke_key(conn, reader.split("_")[1])
    assert httpx.get(f"{gw.url}/api/live", cookies=jar).status_code == 401
    out = httpx.post(f"{gw.url}/dashboard/logout", cookies=jar)
    assert out.status_code == 303 and 'facestream_session=""' in out.headers["set-cookie"]
