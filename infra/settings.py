"""One typed settings object, read from the environment.

Every variable is ``FACESTREAM_<FIELD>`` (e.g. ``FACESTREAM_SESSION_GAP_S``), except the two
that deployments conventionally set by their common names: ``KAFKA_BOOTSTRAP_SERVERS`` and
``DATABASE_URL``. The defaults run the embedded stack on 127.0.0.1.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


def _default_cache_dir() -> Path:
    """$XDG_CACHE_HOME/facestream, else ~/.cache/facestream."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "facestream"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="FACESTREAM_", extra="ignore", populate_by_name=True)

    log_format: str = Field("text", pattern="^(text|json)$", description="text, or json: one object per line")

    # --- broker -----------------------------------------------------------------------------
    kafka_bootstrap_servers: str | None = Field(
        default=None,
        validation_alias=AliasChoices("KAFKA_BOOTSTRAP_SERVERS", "FACESTREAM_KAFKA_BOOTSTRAP_SERVERS"),
        description="host:port[,host:port]. Unset: the embedded broker (noida-db) is used.",
    )
    embedded_kafka_port: int = Field(19092, description="port of the embedded broker")
    data_dir: Path = Field(Path(".facestream"), description="state of the embedded stack")

    # --- topics -----------------------------------------------------------------------------
    frames_topic: str = "facestream.frames"
    results_topic: str = "facestream.results"
    summaries_topic: str = "facestream.sessions"
    dead_letter_topic: str = "facestream.dead-letters"
    partitions: int = Field(4, ge=1, description="partitions of every facestream topic")
    replication_factor: int = Field(1, ge=1)
    frames_retention_ms: int = Field(6 * 3600 * 1000, ge=-1, description="how long the frames topic keeps "
                                     "frames (a stopped worker catches up within it); they are bulky: hours. "
                                     "Given to the topic when it is created; -1: for ever")
    results_retention_ms: int = Field(7 * 24 * 3600 * 1000, ge=-1, description="how long the results, "
                                      "sessions and dead-letter topics keep records. Given to topics when "
                                      "they are created; -1: for ever")
    changelog_segment_ms: int = Field(10_000, ge=1000, description="how often the worker's session changelog "
                                      "closes a log segment. A broker compacts closed segments only, so a "
                                      "restarted worker replays about this long of the Table's writes (one per "
                                      "face per batch) plus one record per face; with the broker's default "
                                      "(7 days or 1 GB) it replays everything written since the topic began. "
                                      "Given to the changelog when it is created, and to an existing one "
                                      "when a worker starts")

    fetch_idle_max_s: float = Field(
        0.01, ge=0, description="longest pause of an idle consumer between fetches (the embedded broker "
        "answers empty fetches at once; pausing keeps idle consumers from spinning). 0: no pauses, "
        "for brokers that hold empty fetches (Kafka)")

    # --- processor --------------------------------------------------------------------------
    app_id: str = Field("facestream", description="consumer group of the workers; names their changelog topic")
    session_gap_s: float = Field(5.0, gt=0, description="inactivity that closes a face session")
    batch_size: int = Field(256, ge=1, description="most frames the worker takes per batch (one model call)")
    batch_within_s: float = Field(0.005, gt=0, description="longest the worker waits to fill a batch")
    producer_linger_ms: int = Field(5, ge=0, description="how long the worker's producer waits to fill a "
                                    "request (more results per request: less broker work per result)")
    commit_interval_s: float = Field(
        0.2, gt=0, description="how often the worker commits offsets (after flushing its results and "
        "session changelog; a crash replays at most this much, without double counting)")
    onnx_threads: int = Field(1, ge=1)
    blendshapes: Literal["distilled", "exact"] = Field(
        "distilled", description="how the worker computes blendshapes for frames that arrive without them "
        "(Mojo clients, landmark-only producers): distilled, a small network trained to reproduce "
        "MediaPipe's (its fidelity on people it never saw: reports/model_card.md); exact, MediaPipe's own "
        "network, for MediaPipe's numbers at many times the CPU per face (bench/results)")
    static_membership: bool = Field(
        True, description="workers and store sinks join their groups as static members (KIP-345) with an "
        "id of their own (<host>-<role>-<slot>, the lowest slot free on this host), so a restarted process "
        "takes its partitions back at once; false: dynamic members, which leave the group on a clean stop")
    worker_instance_id: str | None = Field(
        None, description="this worker's static member id instead of <host>-worker-<slot>; refused while "
        "another live worker on this host holds it")
    consumer_session_timeout_s: float = Field(
        10.0, gt=0, description="a worker silent this long loses its partitions to the others")
    sweep_interval_s: float = Field(1.0, gt=0, description="how often idle sessions are closed")
    max_frame_bytes: int = Field(64 * 1024, gt=0, description="larger frame messages go to the dead letters")
    worker_metrics_port: int = Field(9101, ge=0, description="Prometheus metrics of the worker (0: off)")
    sink_metrics_port: int = Field(9102, ge=0, description="Prometheus metrics of the store sink (0: off)")
    gateway_metrics_port: int = Field(
        0, ge=0, description="Prometheus metrics of the gateway on a port of their own at metrics_host, and "
        "no longer at /metrics on the public port (0: at /metrics on the gateway's port)")
    metrics_host: str = Field("127.0.0.1", description="address the metrics endpoints bind")
    malloc_mmap_threshold: int = Field(
        4 << 20, ge=0, le=32 << 20, description="bytes from which glibc gives the worker, the sink and the "
        "gateway a mapping of its own per allocation, fixed for the process's life, so the megabyte fetch "
        "buffers of a catch-up go back to the system when freed (infra.allocator); 0: glibc's dynamic "
        "threshold, under which a restarted worker keeps its catch-up peak. Much lower costs CPU: every "
        "numpy temporary of a large batch becomes a fresh mapping")
    malloc_trim_interval_s: float = Field(
        2.0, ge=0, description="how often the worker hands the heap's free pages back to the system "
        "(malloc_trim, a few ms in a thread of its own; infra.allocator); 0: never")

    # --- producer ---------------------------------------------------------------------------
    max_faces: int = Field(4, ge=1)
    device_id: str = Field("edge-0", description="who is publishing, stamped on every frame")

    # --- storage ----------------------------------------------------------------------------
    database_url: str | None = Field(
        default=None,
        validation_alias=AliasChoices("DATABASE_URL", "FACESTREAM_DATABASE_URL"),
    )
    cache_dir: Path = Field(default_factory=_default_cache_dir,
                            description="pinned models, media and the labelled-dataset cache")
    sink_batch_size: int = Field(2000, ge=1, description="results per COPY batch")
    sink_batch_within_s: float = Field(0.5, gt=0, description="max wait to fill a COPY batch")
    sink_group: str = Field("facestream-store", description="consumer group of the store sink")
    sink_instance_id: str | None = Field(
        None, description="this sink's static member id instead of <host>-sink-<slot>")
    sink_rejoin_timeout_s: float = Field(30.0, gt=0, description="a store sink whose group join has been "
                                         "open this long starts its consumer afresh (a stuck join)")
    retention_days: int = Field(30, ge=0, description="whole UTC days of results the store keeps: the sink "
                                "drops older days of face_results and the sessions that ended before them; "
                                "0 keeps everything")
    retention_check_s: float = Field(3600.0, gt=0, description="how often the sink applies the retention")

    # --- gateway ----------------------------------------------------------------------------
    environment: str = Field("development", description="development | production; production "
                             "refuses the default JWT secret")
    gateway_host: str = Field("127.0.0.1", description="address the gateway binds")
    gateway_port: int = Field(8000, description="port of the gateway (HTTP + Socket.IO)")
    public_host: str | None = Field(None, description="host name returned to Mojo clients (default: gateway_host)")
    jwt_secret: str = Field("facestream-development-secret-not-for-production", description="HS256 key of the tokens")
    token_max_expiration_s: int = Field(24 * 3600, gt=0, description="longest token a client may ask for")
    auth_failures_per_minute: int = Field(
        10, ge=1, description="failed API-key checks one client address may make per minute; past them "
        "the token route answers 429 with Retry-After")
    cors_origins: str = Field("", description="comma-separated origins allowed by CORS; empty: none")
    max_image_bytes: int = Field(10 * 1024 * 1024, gt=0, description="largest accepted image upload")
    image_rate_per_key: float = Field(5.0, gt=0, description="images per second one API key may send to "
                                      "/v1/faces (bursts of one second); past it 429 with Retry-After")
    image_max_concurrent: int = Field(2, ge=1, description="images the gateway decodes and analyses at once; "
                                      "past it 429 with Retry-After")
    max_event_bytes: int = Field(64 * 1024, gt=0, description="largest accepted Socket.IO event")
    dashboard_session_s: int = Field(8 * 3600, gt=0, description="how long a dashboard sign-in lasts")
    dashboard_enabled: bool = Field(True, description="serve /dashboard and the live and history APIs (to "
                                    "keys with the read scope, or after signing in with one)")
    max_fps_per_token: float = Field(60.0, gt=0, description="facemesh events per second per connection")
    gateway_send_timeout_s: float = Field(40.0, gt=0, description="longest the gateway waits for the broker to "
                                          "take a frame; past it the client gets an error event (reason "
                                          "unavailable) for that frame")

    @field_validator("kafka_bootstrap_servers")
    @classmethod
    def _strip(cls, v: str | None) -> str | None:
        return v.strip() or None if v else None

    @property
    def embedded(self) -> bool:
        """True when no external broker is configured."""
        return self.kafka_bootstrap_servers is None

    @property
    def bootstrap(self) -> str:
        """The broker address clients should use."""
        return self.kafka_bootstrap_servers or f"127.0.0.1:{self.embedded_kafka_port}"


def env_names(field: str) -> list[str]:
    """The environment variables that set ``field``, the preferred one first."""
    f = Settings.model_fields[field]
    if f.validation_alias is not None:
        return [str(a) for a in f.validation_alias.choices]
    return [f"FACESTREAM_{field.upper()}"]


def settings_env(s: Settings) -> dict[str, str]:
    """Environment variables that reproduce ``s`` in another process."""
    env = {}
    for name in type(s).model_fields:
        value = getattr(s, name)
        if value is None:
            continue
        env[env_names(name)[0]] = str(value).lower() if isinstance(value, bool) else str(value)
    return env
