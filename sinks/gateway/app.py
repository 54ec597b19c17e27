"""The gateway: one ASGI service with the Mojo-compatible Socket.IO server and the HTTP routes.

* ``PUT /mojo_perception_api/user``: an API key buys a token for the key's namespace.
* Socket.IO namespace ``/<user_namespace>`` with ``auth={"token": ...}``:
  ``facemesh`` events become LandmarkFrames on the frames topic (session = the connection,
  device = the namespace); the processor's results come back as ``calculation`` events.
  A token minted for an edge producer's session (``session_id`` in the token request) joins
  that session's room instead and receives its results as ``result`` events.
* ``POST /v1/faces``: the image API (``sinks.gateway.faces``).

Several gateway processes can serve one address: each consumes every partition of the results
topic from its start (no consumer group) and delivers only to the clients connected to itself,
so each result reaches its client exactly once whichever process holds the connection.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import socketio
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.errors import KafkaError
from aiokafka.structs import ConsumerRecord
from fastapi import FastAPI, Header, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse, PlainTextResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException

from infra import metrics
from infra.pacing import Pacer, paced_getmany
from infra.settings import Settings
from schemas import FaceResult
from schemas.errors import PayloadError
from sinks.gateway import auth, dashboard, fastjson, mojo
from sinks.gateway.access import Access, client_address
from sinks.gateway.buckets import Buckets
from sinks.gateway.dashboard import LiveBuffer
from sinks.gateway.faces import make_router
from sinks.gateway.once import OncePerFrame
from sinks.store.db import connect, migrate

log = logging.getLogger(__name__)


def error_response(code: int, message: str) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=code)


class TokenRequest(BaseModel):
    datetime: str | None = Field(None, description="the client's current time, ISO-8601 (informative)")
    expiration: float = Field(..., gt=0, description="token lifetime in seconds")
    session_id: str | None = Field(None, description="facestream extension: subscribe to the live "
                                   "results of this edge-producer session")


class TokenResponse(BaseModel):
    user_namespace: str
    auth_token: str
    host_name: str
    port: str


@dataclass
class Connection:
    namespace: str  # without the leading "/"
    session_id: str
    subscription: str | None  # an edge session this socket follows, or None for a Mojo client
    tenant: str | None = None  # a follower sees the results of this tenant's devices (None: all)
    outputs: tuple[str, ...] = mojo.CUES
    seq: int = 0


@dataclass
class GatewayStats:
    frames_in: int = 0
    calculations_out: int = 0
    results_out: int = 0
    refused_connections: dict[str, int] = field(default_factory=dict)
    event_errors: dict[str, int] = field(default_factory=dict)


class Gateway:
    def __init__(self, settings: Settings, database_url: str) -> None:
        self.s = settings
        self.url = database_url
        origins = [o.strip() for o in settings.cors_origins.split(",") if o.strip()]
        # A connection's events are handled one after another on its own read loop (not one task
        # each): a client that sends faster than the broker takes its frames is slowed by TCP,
        # instead of piling up tasks and memory in the gateway (found by the chaos run).
        self.sio = socketio.AsyncServer(async_mode="asgi", namespaces="*", cors_allowed_origins=origins or None,
                                        max_http_buffer_size=settings.max_event_bytes, logger=False,
                                        engineio_logger=False, json=fastjson, async_handlers=False)
        self.conns: dict[str, Connection] = {}  # socket sid -> connection
        self.sessions: dict[str, str] = {}  # Mojo session id -> socket sid
        self.followers: dict[str, int] = {}  # edge session id -> local subscribers
        self.stats = GatewayStats()
        self.live = LiveBuffer()
        self.access = Access(settings, database_url, self.live)
        self.once = OncePerFrame()
        # At most max_fps_per_token facemesh events per second per connection, bursts of one second.
        self.frame_rate = Buckets(settings.max_fps_per_token)
        self.producer: AIOKafkaProducer | None = None
        self._deliver_task: asyncio.Task | None = None
        self.sio.on("connect", self.on_connect, namespace="*")
        self.sio.on("disconnect", self.on_disconnect, namespace="*")
        self.sio.on("facemesh", self.on_facemesh, namespace="*")

    # -- lifecycle -------------------------------------------------------------------------
    async def start(self) -> None:
        await run_in_threadpool(self._migrate)
        self.producer = AIOKafkaProducer(bootstrap_servers=self.s.bootstrap, acks="all", linger_ms=2,
                                         client_id="facestream-gateway",
                                         request_timeout_ms=int(self.s.gateway_send_timeout_s * 1000))
        await self.producer.start()
        consumer = AIOKafkaConsumer(self.s.results_topic, bootstrap_servers=self.s.bootstrap, group_id=None,
                                    auto_offset_reset="latest", client_id="facestream-gateway")
        await consumer.start()
        # Be positioned before the first client can send a frame, so no result is missed.
        while not consumer.assignment():
            await asyncio.sleep(0.05)
        for tp in consumer.assignment():
            await consumer.position(tp)
        self._deliver_task = asyncio.create_task(self._deliver(consumer))

    async def stop(self) -> None:
        if self._deliver_task:
            self._deliver_task.cancel()
            try:
                await self._deliver_task
            except (asyncio.CancelledError, Exception):  # noqa: BLE001 - shutting down
                pass
        if self.producer:
            await self.producer.stop()

    def _migrate(self) -> None:
        with connect(self.url) as conn:
            migrate(conn)

    # -- tokens ------------------------------------------------------------------------------
    async def token(self, body: TokenRequest, authorization: str | None, address: str) -> TokenResponse:
        # Sending frames is ingest; following an edge session's results live is reading them.
        key = await self.access.authorized(authorization, address, "read" if body.session_id else "ingest")
        if body.session_id:
            await self.access.check_followable(key, body.session_id)
        lifetime = min(body.expiration, self.s.token_max_expiration_s)
        token = auth.issue_token(self.s, key.namespace, lifetime, session=body.session_id, tenant=key.sees)
        return TokenResponse(user_namespace=key.namespace, auth_token=token,
                             host_name=self.s.public_host or self.s.gateway_host, port=str(self.s.gateway_port))

    # -- Socket.IO -----------------------------------------------------------------------------
    async def on_connect(self, namespace: str, sid: str, environ: dict, auth_data: Any = None) -> None:
        ns = namespace.lstrip("/")
        token = auth_data.get("token") if isinstance(auth_data, dict) else None
        try:
            claims = auth.verify_token(self.s, token, ns)
        except auth.AuthError as exc:
            self.stats.refused_connections[exc.reason] = self.stats.refused_connections.get(exc.reason, 0) + 1
            raise socketio.exceptions.ConnectionRefusedError(str(exc)) from None
        follow = claims.get("sess")
        conn = Connection(namespace=ns, session_id=uuid.uuid4().hex, subscription=follow, tenant=claims.get("ten"))
        self.conns[sid] = conn
        if follow:
            await self.access.owners.fresh()  # the follower's results are checked against it
            await self.sio.enter_room(sid, _room(follow, conn.tenant), namespace=namespace)
            self.followers[follow] = self.followers.get(follow, 0) + 1
        else:
            self.sessions[conn.session_id] = sid

    async def on_disconnect(self, namespace: str, sid: str, reason: Any = None) -> None:
        conn = self.conns.pop(sid, None)
        self.frame_rate.drop(sid)
        if conn is None:
            return
        # Why a client left (its own goodbye, a ping it did not answer, a broken transport) tells
        # an operator whether calculations it missed were the client's doing or the gateway's.
        log.info("%s %s left: %s", "follower of" if conn.subscription else "Mojo session",
                 conn.subscription or conn.session_id, reason or "unknown")
        if conn.subscription:
            left = self.followers.get(conn.subscription, 1) - 1
            if left > 0:
                self.followers[conn.subscription] = left
            else:
                self.followers.pop(conn.subscription, None)
        else:
            self.sessions.pop(conn.session_id, None)

    async def _refuse(self, namespace: str, sid: str, reason: str, message: str, event: Any = None) -> None:
        self.stats.event_errors[reason] = self.stats.event_errors.get(reason, 0) + 1
        await self.sio.emit("error", {"error": message, "reason": reason}, to=sid, namespace=namespace)
        await self.dead_letter(reason, {"error": message, "namespace": namespace.lstrip("/"), "event": event})

    async def dead_letter(self, reason: str, record: dict) -> None:
        """Keep a refused input, with its reason, on the dead-letter topic (never in the logs)."""
        metrics.DEAD_LETTERS.labels("gateway", reason).inc()
        if self.producer is None:
            return
        value = json.dumps(record, default=str).encode()[: self.s.max_event_bytes]
        await self.producer.send_and_wait(self.s.dead_letter_topic, value=value,
                                          headers=[("reason", reason.encode()), ("source", b"gateway")])

    async def on_facemesh(self, namespace: str, sid: str, data: Any = None) -> None:
        conn = self.conns.get(sid)
        if conn is None:
            return
        if conn.subscription:
            await self._refuse(namespace, sid, "subscriber", "this token follows a session; it cannot send frames")
            return
        if self.frame_rate.take(sid, time.monotonic()):
            await self._refuse(namespace, sid, "rate_limited",
                               f"more than {self.s.max_fps_per_token:g} facemesh events per second; frame dropped")
            return
        try:
            if not isinstance(data, dict):
                raise mojo.EventError("facemesh event must be an object {facemesh, timestamp, output}")
            conn.outputs = mojo.parse_outputs(data.get("output"))
            points = mojo.facemesh_points(data.get("facemesh"))
            capture_ms = mojo.parse_timestamp(data.get("timestamp"))
            seq = conn.seq
            conn.seq += 1
            if points is None:
                return  # no face in this frame
            frame = mojo.to_frame(points, session_id=conn.session_id, namespace=conn.namespace, seq=seq,
                                  capture_ms=capture_ms, width=data.get("width"), height=data.get("height"))
            frame.validate()
        except (mojo.EventError, PayloadError) as exc:
            await self._refuse(namespace, sid, exc.reason if isinstance(exc, PayloadError) else "bad_event",
                               str(exc), data)
            return
        assert self.producer is not None
        try:
            await self.producer.send_and_wait(self.s.frames_topic, key=frame.key.encode(), value=frame.encode())
        except KafkaError as exc:
            # Not accepted: the client is told (the frame, not the connection, is lost), never silence.
            self.stats.event_errors["unavailable"] = self.stats.event_errors.get("unavailable", 0) + 1
            metrics.FRAMES_REFUSED.labels("gateway", "unavailable").inc()
            log.warning("frame %d of session %s not accepted by the broker: %s", seq, conn.session_id,
                        type(exc).__name__)
            await self.sio.emit("error", {"error": f"frame {seq} was not accepted: the broker did not take it within "
                                                   f"{self.s.gateway_send_timeout_s:g} s ({type(exc).__name__})",
                                          "reason": "unavailable", "seq": seq}, to=sid, namespace=namespace)
            return
        self.stats.frames_in += 1
        metrics.FRAMES_IN.labels("gateway").inc()

    async def _deliver(self, consumer: AIOKafkaConsumer) -> None:
        pacer = Pacer(max_pause_s=self.s.fetch_idle_max_s)
        try:
            while True:
                for records in (await paced_getmany(consumer, pacer, 1000)).values():
                    for msg in records:
                        await self._deliver_one(msg)
        finally:
            await consumer.stop()

    async def _deliver_one(self, msg: ConsumerRecord) -> None:
        session = (msg.key or b"").decode(errors="replace")
        sid = self.sessions.get(session)
        followed = session in self.followers
        if sid is None and not followed and not self.s.dashboard_enabled:
            return  # another process's client, or nobody's
        try:
            r = FaceResult.decode(msg.value)
        except PayloadError as exc:
            log.error("undecodable result at %s[%d]@%d: %s", msg.topic, msg.partition, msg.offset, exc)
            return
        if not self.once.first(r.face_key, r.seq):
            metrics.REPEATS_SUPPRESSED.labels("gateway").inc()
            return  # redelivered after a worker restart: this client has it already
        if self.s.dashboard_enabled:
            self.live.add(r)
        if sid is not None and (conn := self.conns.get(sid)) is not None:
            await self.sio.emit("calculation", mojo.calculation(r, conn.outputs), to=sid,
                                namespace=f"/{conn.namespace}")
            self.stats.calculations_out += 1
            metrics.RESULTS_OUT.labels("gateway").inc()
        if followed:
            # Each follower's tenant must own the device: a session id guessed or reused on
            # another tenant's device delivers nothing.
            for ns, tenant in {(c.namespace, c.tenant) for c in self.conns.values() if c.subscription == session}:
                if await self.access.owners.check(tenant, r.device_id):
                    await self.sio.emit("result", r.to_avro(), room=_room(session, tenant), namespace=f"/{ns}")
                    self.stats.results_out += 1


def _room(session: str, tenant: str | None) -> str:
    """The Socket.IO room of a session's followers of one tenant (``*``: admin keys)."""
    return f"session:{session}:{'*' if tenant is None else tenant}"


def install_error_handlers(api: FastAPI) -> None:
    """Every error as {"error": {"code", "message"}}."""

    @api.exception_handler(HTTPException)
    async def http_error(_: Request, exc: HTTPException) -> JSONResponse:
        response = error_response(exc.status_code, str(exc.detail))
        response.headers.update(exc.headers or {})  # Retry-After on 429
        return response

    @api.exception_handler(RequestValidationError)
    async def validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()))
        return error_response(400, f"invalid request: {where}: {first.get('msg', 'malformed')}")

    @api.exception_handler(auth.AuthError)
    async def auth_error(_: Request, exc: auth.AuthError) -> JSONResponse:
        return error_response(exc.status, str(exc))


def create_app(settings: Settings, database_url: str) -> socketio.ASGIApp:
    """The ASGI application (Socket.IO in front of FastAPI)."""
    auth.check_secret(settings)
    gw = Gateway(settings, database_url)

    @asynccontextmanager
    async def lifespan(_: FastAPI):
        await gw.start()
        try:
            yield
        finally:
            await gw.stop()

    api = FastAPI(title="facestream gateway", version="1", lifespan=lifespan,
                  description="Mojo-compatible token endpoint and Socket.IO server; image API.")
    api.state.gateway = gw
    origins = [o.strip() for o in settings.cors_origins.split(",") if o.strip()]
    if origins:  # closed unless configured
        api.add_middleware(CORSMiddleware, allow_origins=origins, allow_methods=["GET", "PUT", "POST"],
                           allow_headers=["Authorization", "Content-Type"])

    install_error_handlers(api)

    @api.put("/mojo_perception_api/user", response_model=TokenResponse, summary="Token for a Mojo client",
             responses={401: {"description": "missing, unknown, revoked or expired API key"},
                        403: {"description": "a key without the ingest scope (read, to follow a session)"},
                        429: {"description": "too many failed key checks from this address (Retry-After)"}})
    async def user(body: TokenRequest, request: Request, authorization: str | None = Header(None)) -> TokenResponse:
        return await gw.token(body, authorization, client_address(request))

    api.include_router(make_router(settings, on_refused=gw.dead_letter, authorize=gw.access.reader))
    if settings.dashboard_enabled:
        api.include_router(dashboard.make_router(database_url, gw.access.visible_live, gw.access.viewer,
                                                 gw.access.sign_in, settings))

    if not settings.gateway_metrics_port:  # else on their own address: facestream.cli.services.gateway
        @api.get("/metrics", summary="Prometheus metrics", response_class=PlainTextResponse)
        async def prometheus() -> PlainTextResponse:
            return PlainTextResponse(generate_latest().decode(), media_type=CONTENT_TYPE_LATEST)

    @api.get("/healthz", summary="Liveness")
    async def healthz() -> dict[str, Any]:
        return {"status": "ok", "connections": len(gw.conns)}

    return socketio.ASGIApp(gw.sio, other_asgi_app=api)
