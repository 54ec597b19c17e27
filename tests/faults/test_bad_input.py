"""Bad input: each kind is refused with a clear reason and a dead-letter record, the pipeline
keeps running, and a counter per reason is exposed (Prometheus)."""

from __future__ import annotations

import json
import time
import urllib.request
from datetime import datetime, timezone

import numpy as np
import pytest
from kafka import KafkaConsumer, KafkaProducer

from schemas import LandmarkFrame
from schemas.codec import HEADER, MAGIC, encode
from schemas.codec import LANDMARK_FRAME as KIND
from tests.conftest import _free_port
from tests.faults import report
from tests.faults.conftest import wait_for

pytestmark = pytest.mark.integration


def _frame(i: int, good, **changes) -> LandmarkFrame:
    return LandmarkFrame(**{**good.__dict__, "session_id": "bad-input", "seq": i,
                            "capture_ms": int(time.time() * 1000), **changes})


def _raw(frame: LandmarkFrame, **avro) -> bytes:
    """Encode without validation, so invalid values reach the wire."""
    return encode(KIND, {**frame.to_avro(), **avro})


def _dead_letters(s, expected: int, timeout_s: float = 60) -> list:
    consumer = KafkaConsumer(s.dead_letter_topic, bootstrap_servers=s.bootstrap, auto_offset_reset="earliest",
                             group_id=None, consumer_timeout_ms=int(timeout_s * 1000))
    out = []
    for m in consumer:
        out.append(m)
        if len(out) >= expected:
            break
    consumer.close()
    return out


def test_bad_frames_go_to_dead_letters_and_the_worker_keeps_going(make_settings, start_worker, collect,
                                                                  wolfgang_frames):
    port = _free_port()
    s = make_settings(worker_metrics_port=port)
    worker = start_worker(s)
    good = wolfgang_frames[300]
    lm = good.landmarks.copy()
    nan, huge = lm.copy(), lm.copy()
    nan[5, 0] = np.nan
    huge[7, 1] = 250.0  # pixels sent as normalised
    now = int(time.time() * 1000)
    future_header = HEADER.pack(MAGIC, KIND.code, 99)
    cases = {
        "malformed Avro": (b"\xfa\x01\x00\x01" + b"\x07" * 40, "corrupt_body"),
        "not a facestream record": (b'{"json": "instead"}', "bad_header"),
        "unknown schema version": (future_header + _raw(_frame(0, good))[4:], "unknown_version"),
        "wrong landmark count": (_raw(_frame(1, good), landmarks=lm[:468].astype("<f4").tobytes()), "wrong_shape"),
        "NaN coordinates": (_raw(_frame(2, good), landmarks=nan.astype("<f4").tobytes()), "non_finite"),
        "absurd coordinates": (_raw(_frame(3, good), landmarks=huge.astype("<f4").tobytes()), "out_of_range"),
        "timestamp far in the future": (_raw(_frame(4, good), capture_ms=now + 86_400_000), "bad_timestamp"),
        "timestamp far in the past": (_raw(_frame(5, good), capture_ms=86_400_000), "bad_timestamp"),
        "oversized message": (_raw(_frame(6, good)) + b"\x00" * (s.max_frame_bytes + 1), "oversized"),
        "empty message": (b"", "empty"),
        "random bytes": (bytes(np.random.default_rng(0).integers(0, 256, 300, dtype=np.uint8)), "bad_header"),
    }
    producer = KafkaProducer(bootstrap_servers=s.bootstrap, max_request_size=1 << 21)
    for payload, _ in cases.values():
        producer.send(s.frames_topic, key=b"bad-input/0", value=payload)
    # Then good frames, a duplicate and an out-of-order one: all get exactly one result each.
    fine = [_frame(10 + i, good) for i in range(3)]
    for f in (fine[0], fine[2], fine[1], fine[2]):
        producer.send(s.frames_topic, key=f.key.encode(), value=f.encode())
    producer.flush()
    producer.close()

    letters = _dead_letters(s, len(cases))
    reasons = [dict(m.headers)["reason"].decode() for m in letters]
    assert sorted(reasons) == sorted(r for _, r in cases.values())
    assert all(dict(m.headers)["error"] for m in letters)
    results, _ = collect(s, lambda r, _: len([x for x in r if x.session_id == "bad-input"]) >= 4, timeout_s=60)
    mine = [r for r in results if r.session_id == "bad-input"]
    assert sorted(r.seq for r in mine) == [10, 11, 12, 12], "duplicates and late frames still answered"
    assert "Traceback" not in worker.output()
    metrics = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    for _, reason in cases.values():
        assert f'facestream_dead_letters_total{{reason="{reason}",service="worker"}}' in metrics
    stale = float(next(line.split()[1] for line in metrics.splitlines()
                       if line.startswith("facestream_stale_frames_total ")))
    assert stale >= 1  # the duplicate; the late frame too unless it arrived in the same batch
    for name in ("facestream_frames_in_total", "facestream_results_out_total", "facestream_active_sessions",
                 'facestream_consumer_lag{service="worker"}', "facestream_end_to_end_latency_seconds_bucket"):
        assert name in metrics, f"{name} is not exposed"
    for case, (_, reason) in cases.items():
        report.record("bad input", f"frame: {case}", 1, f"dead letter `{reason}`", 0, 0)
    report.record("bad input", "frame: duplicate and out-of-order", 2, "answered, state not advanced", 0, 0)


def test_bad_socketio_events(make_settings, start_worker, start_gateway, database_url, wolfgang_frames):
    from tests.sinks.test_gateway import OUTPUT, MojoClient, _key, _mesh, _token

    s = make_settings(max_fps_per_token=20.0)
    key, ns = _key(database_url, "bad")
    start_worker(s)
    gw = start_gateway(s, database_url)
    c = MojoClient(gw.url, ns, _token(gw.url, key)["auth_token"])
    ts = datetime.now(timezone.utc).isoformat()
    mesh = _mesh(wolfgang_frames[300])
    bad = {
        "event not an object": "hello",
        "facemesh not a list": {"facemesh": "x", "output": OUTPUT},
        "wrong point count": {"facemesh": mesh[:100], "output": OUTPUT},
        "points not numbers": {"facemesh": [["a", "b", "c"]] * 478, "output": OUTPUT},
        "NaN point": {"facemesh": [[float("nan"), 1, 1]] + mesh[1:], "output": OUTPUT},
        "bad timestamp": {"facemesh": mesh, "timestamp": "yesterday", "output": OUTPUT},
        "unknown output": {"facemesh": mesh, "timestamp": ts, "output": ["telepathy"]},
    }
    for event in bad.values():
        c.sio.emit("facemesh", event, namespace=c.namespace)
        time.sleep(0.06)
    assert wait_for(lambda: len(c.errors) >= len(bad), 20)
    assert all(e["reason"] in ("bad_event", "non_finite") and e["error"] for e in c.errors)
    # Still usable after all that.
    c.send(wolfgang_frames[300:305], fps=10)
    assert wait_for(lambda: len(c.calculations) >= 5, 30)
    # A burst above the per-token rate: the excess is refused, not queued.
    errors_before = len(c.errors)
    for _ in range(60):
        c.sio.emit("facemesh", {"facemesh": mesh, "timestamp": ts, "output": OUTPUT}, namespace=c.namespace)
    assert wait_for(lambda: any(e["reason"] == "rate_limited" for e in c.errors[errors_before:]), 20)
    # A payload over the size limit closes the connection (Engine.IO's max_http_buffer_size).
    huge = {"facemesh": mesh, "output": OUTPUT, "padding": "x" * (s.max_event_bytes * 2)}
    c.sio.emit("facemesh", huge, namespace=c.namespace)
    assert wait_for(lambda: not c.sio.connected, 20)
    metrics = urllib.request.urlopen(f"{gw.url}/metrics", timeout=5).read().decode()
    assert 'facestream_dead_letters_total{reason="bad_event",service="gateway"}' in metrics
    letters = _dead_letters(s, len(bad))
    assert len(letters) >= len(bad)
    assert {dict(m.headers)["source"] for m in letters} == {b"gateway"}
    assert all(json.loads(m.value)["error"] for m in letters[: len(bad)])
    for case in bad:
        report.record("bad input", f"Socket.IO: {case}", 1, "`error` event + dead letter", 0, 0)
    report.record("bad input", "Socket.IO: burst over the rate limit", 60, "excess refused (`rate_limited`)", 0, 0)
    report.record("bad input", "Socket.IO: event over the size limit", 1, "connection closed", 0, 0)
