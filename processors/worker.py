"""``facestream worker``: one Faust worker process running ``processors.app``.

Adds what a facestream service has around the app: topics created with their partitions and
retention, a static member id claimed for this host (a restarted worker takes its partitions back
at once), the Prometheus endpoint, and quiet engine loggers (debug records that Faust, mode and
aiokafka build and drop cost a noticeable share of a busy worker's time).
"""

from __future__ import annotations

import logging

import faust

from infra import allocator, membership, metrics
from infra.pacing import hold_empty_fetches
from infra.settings import Settings
from infra.topics import ensure_topics
from processors.app import create_app

log = logging.getLogger(__name__)

ENGINE_LOGGERS = ("faust", "mode", "aiokafka", "kafka")


def quiet_engine(level: int) -> None:
    """Engine loggers at WARNING unless the worker itself was asked for more detail (debug)."""
    for name in ENGINE_LOGGERS:
        logging.getLogger(name).setLevel(logging.DEBUG if level <= logging.DEBUG else max(level, logging.WARNING))


def run_worker(settings: Settings | None = None) -> None:
    """Run one worker in this process until SIGINT or SIGTERM (a clean stop: the batch in flight
    is finished, its results flushed and its offsets committed)."""
    s = settings or Settings()
    allocator.fix_mmap_threshold(s.malloc_mmap_threshold)  # before Faust's consumer thread starts
    quiet_engine(logging.getLogger().level)
    ensure_topics(s)
    member = None
    if s.static_membership:
        # Held until this process ends, however it ends: a restart gets the same id back.
        member = membership.claim("worker", s.app_id, s.cache_dir / "members", s.worker_instance_id)
        s = s.model_copy(update={"worker_instance_id": member.instance_id})
        log.info("static member %s of group %s", member.instance_id, s.app_id)
    else:
        s = s.model_copy(update={"worker_instance_id": None})
    metrics.serve(s.worker_metrics_port, s.metrics_host)
    hold_empty_fetches(s.fetch_idle_max_s)
    root = logging.getLogger()
    app = create_app(s)
    # Logging is the CLI's (text or JSON lines); Faust would install its own handlers.
    worker = faust.Worker(app, loglevel=logging.getLevelName(root.level).lower(), quiet=True,
                          override_logging=False, redirect_stdouts=False)
    worker.spinner = None  # a terminal progress spinner: escape codes in log files
    try:
        worker.execute_from_commandline()  # raises SystemExit when the worker stops
    finally:
        if member is not None:
            member.release()
        log.info("worker stopped")
