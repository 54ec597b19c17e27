"""Prometheus metrics shared by the services (prometheus_client's default registry).

Each service exposes them: the worker and the sink on ``FACESTREAM_*_METRICS_PORT`` (127.0.0.1 by
default), the gateway at ``GET /metrics``.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram, start_http_server

FRAMES_IN = Counter("facestream_frames_in_total", "Face-frames accepted for processing", ["service"])
RESULTS_OUT = Counter("facestream_results_out_total", "Results produced or delivered", ["service"])
FRAMES_REFUSED = Counter("facestream_frames_refused_total", "Frames not accepted because the broker did not take "
                         "them in time (the client was told)", ["service", "reason"])
DEAD_LETTERS = Counter("facestream_dead_letters_total", "Refused inputs, by reason", ["service", "reason"])
STALE_FRAMES = Counter("facestream_stale_frames_total", "Duplicate or out-of-order frames (re-emitted, "
                       "state not advanced)")
REPEATS_SUPPRESSED = Counter("facestream_repeats_suppressed_total", "Results of frames already delivered to a live "
                             "client (redelivered after a worker restart), not sent again", ["service"])
ENGINE_REPAIRS = Counter("facestream_engine_repairs_total", "Frames the stream engine delivered twice (dropped) "
                         "or skipped (read back from Kafka)", ["kind"])
BATCH_RETRIES = Counter("facestream_batch_retries_total", "Batches of frames the worker tried again after a "
                        "failure (the broker or a read-back timing out)")
ACTIVE_SESSIONS = Gauge("facestream_active_sessions", "Open face sessions held by this worker")
CONSUMER_LAG = Gauge("facestream_consumer_lag", "Messages behind the end of the input topic", ["service"])
LATENCY = Histogram("facestream_end_to_end_latency_seconds", "Capture time to result produced",
                    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30))
ROWS_WRITTEN = Counter("facestream_store_rows_total", "Rows written by the store sink", ["table", "outcome"])
AUTH_THROTTLED = Counter("facestream_auth_throttled_total", "Key checks refused because their address failed too "
                         "often (429)")
IMAGES_THROTTLED = Counter("facestream_images_throttled_total", "Image uploads refused with 429 (a key's rate, "
                           "or the images being analysed at once)")
RETENTION_DROPPED = Counter("facestream_retention_partitions_dropped_total", "Days of face_results dropped "
                            "by the store's retention")
SINK_REJOINS = Counter("facestream_sink_rejoins_total", "Store-sink consumers started afresh after a group join "
                       "open for FACESTREAM_SINK_REJOIN_TIMEOUT_S")
DB_RETRIES = Counter("facestream_store_retries_total", "Batches retried because PostgreSQL was unavailable")


def serve(port: int, host: str = "127.0.0.1") -> None:
    """Expose the metrics on http://host:port/metrics (0 disables)."""
    if port:
        start_http_server(port, addr=host)
