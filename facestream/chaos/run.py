"""A chaos run, in order: its own topics, database and processes; the traffic; a warm-up; the
seeded faults, each in a thread of its own (they may overlap); a quiet stretch in which the lag
must recover; the end of the traffic, the drain, the sessions closing; the verdict."""

from __future__ import annotations

import contextlib
import logging
import statistics
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from facestream.chaos.load import EdgeLoad, MojoLoad
from facestream.chaos.parts import Parts, process_tree, rss_bytes
from facestream.chaos.plan import Fault, PlanParams, describe, plan
from facestream.chaos.streams import load_stream
from facestream.chaos.usage import CpuMeter, listener_pid
from facestream.chaos.verdict import Observer, Verdict, judge
from infra.settings import Settings

log = logging.getLogger("facestream.chaos")


@dataclass(frozen=True)
class ChaosParams:
    minutes: float = 5.0
    faces: int = 50  # half Mojo clients through the gateways, half edge producers to Kafka
    fps: float = 30.0
    per_kind: int = 5  # faults of each kind
    seed: int | None = None  # None: from the clock (the run logs it, to replay the schedule)
    warmup_s: float = 20.0
    quiet_s: float = 40.0  # after the last fault ends, before the traffic stops
    lag_target_s: float = 10.0  # the lag must be back within this after the last fault
    keep_topics: bool = False  # False: the run's topics and consumer groups are deleted at its end
    # After the traffic, how long the worker and the sink get to finish and the sessions to close.
    drain_timeout_s: float = 300.0


@dataclass(frozen=True)
class Drained:
    """How the drain ended: ``seconds`` it took, or None when it gave up with work left."""

    seconds: float | None
    worker_lag: int  # frames the worker group had not committed when it ended
    sink_lag: int  # results and summaries the sink group had not committed
    open_sessions: int  # faces with rows but no summary yet


@dataclass
class FaultRecord:
    fault: Fault
    in_flight: int = 0  # messages not yet processed (or Mojo frames unanswered) when it struck
    recovery_s: float | None = None  # from the part's return to its first progress (None: never seen)
    error: str = ""


@dataclass
class ChaosResult:
    params: ChaosParams
    seed: int
    settings: Settings
    records: list[FaultRecord] = field(default_factory=list)
    verdict: Verdict = field(default_factory=Verdict)
    lag_recovery_s: float | None = None
    lag_threshold: int = 0
    drained: Drained | None = None  # how the wait for the worker and the sink to finish ended
    rss: dict[str, tuple[int, int]] = field(default_factory=dict)  # process -> (after warm-up, at the end)
    cpu: dict[str, float] = field(default_factory=dict)  # part -> CPU seconds while the traffic ran
    machine_cpu: tuple[float, float] = (0.0, 0.0)  # (busy, available) CPU seconds of the machine, same span
    not_run: list[str] = field(default_factory=list)
    broker: str = ""
    real_kafka: bool = False  # False: the embedded broker (noida-db), with what it cannot host or honour
    edge_sent: int = 0
    mojo_hung: int = 0  # Mojo connect/disconnect calls the harness gave up after a timeout
    traffic_s: float = 0.0  # how long the traffic ran
    seconds: float = 0.0

    @property
    def rss_growth(self) -> dict[str, float]:
        return {k: (end / warm - 1.0) if warm else float("nan") for k, (warm, end) in self.rss.items()}

    @property
    def ok(self) -> bool:
        return (self.verdict.ok and self.drained is not None and self.drained.seconds is not None
                and self.lag_recovery_s is not None and self.lag_recovery_s <= self.params.lag_target_s
                and all(abs(g) <= 0.2 for g in self.rss_growth.values())
                and not any(r.error for r in self.records))


def _run_settings(base: Settings, run_id: str, data_dir: Path) -> Settings:
    return base.model_copy(update={
        "data_dir": data_dir, "frames_topic": f"chaos-{run_id}.frames", "results_topic": f"chaos-{run_id}.results",
        "summaries_topic": f"chaos-{run_id}.sessions", "dead_letter_topic": f"chaos-{run_id}.dead",
        "app_id": f"facestream-chaos-{run_id}", "sink_group": f"facestream-chaos-{run_id}-store",
        "device_id": f"chaos-{run_id}", "worker_metrics_port": 0, "sink_metrics_port": 0})


class _Faults:
    """Carries out the plan: each fault in a thread of its own, started at its moment."""

    def __init__(self, parts: Parts, obs: Observer, mojo: MojoLoad, t0: float, timeout_s: float = 120.0) -> None:
        self.parts, self.obs, self.mojo, self.t0 = parts, obs, mojo, t0
        self.timeout_s = timeout_s  # a part not seen recovering this long after its fault: "never"
        self.obs_lock = threading.Lock()  # the Kafka observer's consumers are not thread-safe

    def lagged(self, fn) -> int:
        with self.obs_lock:
            return fn()

    def committed(self, group: str, topics: list[str]) -> int:
        with self.obs_lock:
            return self.obs.committed(group, topics)

    def _progress_after(self, group: str, topics: list[str], since: float) -> float | None:
        """Seconds from ``since`` until ``group`` commits past where it was at ``since``."""
        start = self.committed(group, topics)
        while time.monotonic() - since < self.timeout_s:
            if self.committed(group, topics) > start:
                return time.monotonic() - since
            time.sleep(0.1)
        return None

    def apply(self, f: Fault, rec: FaultRecord) -> None:
        s = self.parts.s
        try:
            time.sleep(max(0.0, self.t0 + f.at_s - time.monotonic()))
            log.info("fault at %.1f s: %s #%d for %.1f s", time.monotonic() - self.t0, f.kind, f.target, f.down_s)
            if f.kind in ("worker", "sink"):
                name = f"worker-{f.target}" if f.kind == "worker" else "sink"
                rec.in_flight = self.lagged(self.obs.worker_lag if f.kind == "worker" else self.obs.sink_lag)
                self.parts.kill(name)
                time.sleep(f.down_s)
                self.parts.start(name)
                group, topics = ((s.app_id, [s.frames_topic]) if f.kind == "worker"
                                 else (s.sink_group, [s.results_topic, s.summaries_topic]))
                rec.recovery_s = self._progress_after(group, topics, time.monotonic())
            elif f.kind == "gateway":
                name = f"gateway-{f.target}"
                hit = [c for c in list(self.mojo.connections) if c.gateway == f.target and c.closed is None]
                rec.in_flight = sum(c.gaps for c in hit)
                for c in hit:  # what the client believes of its connection does not decide this
                    c.killed = True
                # Noted before the kill: its clients may be back on the other gateway before the
                # dead process is reaped (the kernel closes its sockets first), and a connection
                # opened then is a new one all the same.
                killed = time.monotonic()
                self.parts.kill(name)
                time.sleep(f.down_s)
                self.parts.start(name)
                # Recovered when every client it held gets calculations again, on either gateway.
                clients = {c.client for c in hit}
                while time.monotonic() - killed < self.timeout_s:
                    back = {c.client for c in list(self.mojo.connections) if c.opened > killed and c.received > 0}
                    if clients <= back:
                        rec.recovery_s = time.monotonic() - killed
                        break
                    time.sleep(0.1)
            elif f.kind == "postgres":
                rec.in_flight = self.lagged(self.obs.sink_lag)
                pids = self.parts.freeze_database()
                try:
                    time.sleep(f.down_s)
                finally:
                    self.parts.thaw_database(pids)
                rec.recovery_s = self._progress_after(s.sink_group, [s.results_topic, s.summaries_topic],
                                                      time.monotonic())
        except Exception as exc:  # noqa: BLE001 - a fault that could not be carried out is a finding
            rec.error = f"{type(exc).__name__}: {exc}"
            log.exception("fault %s failed", f)


def run(base: Settings, p: ChaosParams, *, work_dir: Path, database_url: str | None = None,
        gateway_ports: tuple[int, int] | None = None, real_kafka: bool | None = None, progress=print) -> ChaosResult:
    """One chaos run. ``database_url`` None: an embedded PostgreSQL of its own under ``work_dir``
    (frozen by the postgres faults); a given database is used as is and never frozen.
    ``real_kafka``: whether the broker can rebalance a two-worker group (None: unless it is the
    embedded one); without, one worker, and the run says which faults it could not host."""
    from infra.embedded import broker_status, free_port, start_broker, stop_broker
    from infra.topics import ensure_topics
    from sinks.gateway import auth
    from sinks.store.db import connect, embedded_postmaster, embedded_url, migrate, stop_embedded

    seed = p.seed if p.seed is not None else int(time.time())
    run_id = f"{seed}-{uuid.uuid4().hex[:4]}"
    s = _run_settings(base, run_id, work_dir)
    real_kafka = (not s.embedded) if real_kafka is None else real_kafka
    own_db = database_url is None
    workers = 2 if real_kafka else 1
    kinds = tuple(k for k in ("worker", "sink", "gateway", "postgres") if own_db or k != "postgres")
    window_end = p.minutes * 60 - p.quiet_s
    # PostgreSQL is frozen 10-30 s; a short run draws from what its window can hold.
    pg_hold = (10.0, max(10.0, min(30.0, (window_end - p.warmup_s - 5) / p.per_kind - PlanParams.settle_s)))
    # Drawn before anything starts: a schedule the window cannot hold fails here, leaving nothing behind.
    faults = plan(seed, p.warmup_s + 5, window_end, p.per_kind, kinds,
                  PlanParams(postgres_stop_s=pg_hold, workers=workers))
    result = ChaosResult(params=p, seed=seed, settings=s)
    result.broker = f"Kafka at {s.bootstrap}" if real_kafka else f"noida-db at {s.bootstrap}"
    result.real_kafka = real_kafka
    if not real_kafka:
        result.not_run += ["two workers, one killed (a partition move): the embedded broker (noida-db) cannot "
                           "rebalance a two-worker group; run with KAFKA_BOOTSTRAP_SERVERS of a real Kafka",
                           "broker restart: the embedded broker loses acknowledged writes across a restart; "
                           "a real Kafka's brokers are restarted by their operator, not by this run"]
    else:
        result.not_run.append("broker restart: the brokers are not this run's to restart")
    if not own_db:
        result.not_run.append("PostgreSQL stopped: the database is not this run's (it only freezes its own)")
    started = time.monotonic()
    # Whatever the run starts is stopped on the way out, in reverse order, however it ends.
    with contextlib.ExitStack() as cleanup:
        if s.embedded and not broker_status(s).running:
            start_broker(s)
            cleanup.callback(stop_broker, s)
        ensure_topics(s)
        if not p.keep_topics:
            cleanup.callback(_remove_topics, s, progress)
        url = embedded_url(s) if own_db else database_url
        if own_db:
            cleanup.callback(stop_embedded, s)
        with connect(url) as conn:
            migrate(conn)
            token_key, key = auth.create_key(conn, f"chaos-{run_id}", ("ingest",))
        parts = Parts(s, url, embedded_postmaster(s) if own_db else None, work_dir / "logs",
                      gateway_ports or (free_port(), free_port()), workers=workers)
        progress(f"chaos run {run_id}: {p.faces} faces x {p.fps:g} Hz for {p.minutes:g} min, seed {seed}, "
                 f"{len(faults)} faults; logs under {work_dir / 'logs'}\n{describe(faults)}")
        cleanup.callback(parts.stop_all)
        obs = Observer(s)
        cleanup.callback(obs.close)
        parts.start_all()
        stream = load_stream(s.cache_dir)
        import httpx

        token = httpx.put(f"{parts.gateway_urls[0]}/mojo_perception_api/user", headers={"Authorization": token_key},
                          json={"expiration": p.minutes * 60 + 3600}).json()["auth_token"]
        host, _, port = s.bootstrap.split(",")[0].rpartition(":")
        broker_pid = listener_pid("127.0.0.1", int(port)) if host in ("127.0.0.1", "localhost") else None
        meter = CpuMeter(lambda: _part_pids(parts, broker_pid))
        edge = EdgeLoad(s, stream, p.faces // 2, run_id, p.fps)
        mojo = MojoLoad(parts.gateway_urls, f"/{key.namespace}", token, stream, p.faces - p.faces // 2, p.fps)
        t0 = time.monotonic()
        meter.start()
        edge.start()
        cleanup.callback(edge.stop)
        mojo.start()
        cleanup.callback(mojo.stop)
        cleanup.callback(lambda: setattr(result, "seconds", time.monotonic() - started))
        time.sleep(p.warmup_s)
        watched = [n for n in parts.services if n != "sink"]
        warm = {n: rss_bytes(parts.pid(n) or 0) for n in watched}
        progress(f"warmed up: {edge.sent + mojo.sent} frames sent; faults begin")
        carrier = _Faults(parts, obs, mojo, t0)
        result.records = [FaultRecord(f) for f in faults]
        threads = [threading.Thread(target=carrier.apply, args=(r.fault, r), daemon=True) for r in result.records]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        last = time.monotonic()
        progress(f"faults done at {last - t0:.0f} s: {edge.sent + mojo.sent} frames sent")
        # The lag is back when what is left is at most a commit's and a batch's worth of frames.
        result.lag_threshold = int(p.faces * p.fps * (s.commit_interval_s + s.sink_batch_within_s + 0.5))
        while time.monotonic() - last < 120:
            if carrier.lagged(obs.worker_lag) <= result.lag_threshold and carrier.lagged(obs.sink_lag) <= \
                    result.lag_threshold:
                result.lag_recovery_s = time.monotonic() - last
                break
            time.sleep(0.25)
        time.sleep(max(0.0, t0 + p.minutes * 60 - time.monotonic()))
        result.rss = {n: (warm[n], rss_bytes(parts.pid(n) or 0)) for n in watched}
        result.traffic_s = time.monotonic() - t0
        meter.stop()
        result.cpu, result.machine_cpu = meter.seconds(), meter.machine()
        edge.stop()
        mojo.stop()
        result.edge_sent = edge.sent
        result.mojo_hung = mojo.hung
        progress(f"traffic stopped: {edge.sent} edge frames, {mojo.sent} Mojo frames; draining")
        result.drained = _drain(obs, s, url, p.drain_timeout_s)
        if result.drained.seconds is None:
            progress(f"the drain gave up after {p.drain_timeout_s:g} s: worker lag {result.drained.worker_lag:,}, "
                     f"sink lag {result.drained.sink_lag:,}, {result.drained.open_sessions} sessions open")
        result.verdict = judge(s, url, edge.acked, mojo.connections,
                               committed=(obs.committed_offsets(s.app_id, s.frames_topic),
                                          obs.committed_offsets(s.sink_group, s.results_topic)))
        for err in edge.errors:
            result.verdict.problems.append(f"edge producer: {err}")
    return result


def _remove_topics(s: Settings, progress) -> None:
    """Delete the run's topics and consumer groups: the verdict is in, and a run leaves gigabytes
    that a broker keeps for their retention (the embedded one rewrites them with every change)."""
    from infra.topics import owned_prefixes, remove_topics

    try:
        removed = remove_topics(s.bootstrap, owned_prefixes(s), [s.app_id, s.sink_group])
    except Exception as exc:  # the verdict stands; what is left is only disk
        log.warning("the run's topics were not deleted (%s); delete the topics named chaos-<run id>.*", exc)
        return
    progress(f"deleted the run's {len(removed)} topics and its consumer groups (--keep-topics keeps them)")


def _part_pids(parts: Parts, broker_pid: int | None) -> dict[str, list[int]]:
    """The live processes of each part of the run, for the CPU meter."""
    import os

    out: dict[str, list[int]] = {"worker": [], "sink": [], "gateways": []}
    for name in parts.services:
        pid = parts.pid(name)
        if pid is not None:
            part = "worker" if name.startswith("worker") else "gateways" if name.startswith("gateway") else name
            out[part].append(pid)
    if parts.postmaster is not None:
        out["PostgreSQL"] = process_tree(parts.postmaster)
    if broker_pid is not None:
        out["broker"] = [broker_pid]
    out["harness"] = [os.getpid()]  # the faces' traffic, the observer and the fault loop
    return out


def _drain(obs: Observer, s: Settings, url: str, timeout_s: float) -> Drained:
    """Wait until the worker and the sink have everything and every session has closed."""
    import psycopg

    started = time.monotonic()
    deadline = started + timeout_s
    while time.monotonic() < deadline and (obs.worker_lag() or obs.sink_lag()):
        time.sleep(0.5)
    # Sessions close after session_gap_s without frames (the sweep runs every sweep_interval_s).
    time.sleep(s.session_gap_s + s.sweep_interval_s)
    while True:
        with psycopg.connect(url) as conn:
            open_faces = conn.execute("SELECT count(*) FROM sessions x WHERE NOT EXISTS "
                                      "(SELECT 1 FROM session_summaries y WHERE y.face_key = x.face_key)").fetchone()[0]
        worker_lag, sink_lag = obs.worker_lag(), obs.sink_lag()
        if not open_faces and not worker_lag and not sink_lag:
            return Drained(time.monotonic() - started, 0, 0, 0)
        if time.monotonic() >= deadline:
            return Drained(None, worker_lag, sink_lag, open_faces)
        time.sleep(0.5)


def in_flight_stats(records: list[FaultRecord], kind: str) -> tuple[int, int, int, float | None]:
    """(faults, max in flight, median in flight, longest recovery) of one kind."""
    rs = [r for r in records if r.fault.kind == kind]
    if not rs:
        return 0, 0, 0, None
    flights = [r.in_flight for r in rs]
    recs = [r.recovery_s for r in rs if r.recovery_s is not None]
    return len(rs), max(flights), int(statistics.median(flights)), max(recs) if len(recs) == len(rs) else None
