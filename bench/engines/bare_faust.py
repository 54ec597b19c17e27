"""A bare Faust agent on the frames topic, consuming and acknowledging only: Faust's ceiling here.

``python -m bench.engines.bare_faust N [K]`` with the settings of the environment: N records, each
carrying K faces (1 by default; the rate is reported in faces). Same batching (``take_events``),
raw values and loggers as the worker, no work per record.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
import time

import faust

from infra.settings import Settings
from processors.worker import quiet_engine


def main(n: int, faces_per_record: int = 1) -> None:
    s = Settings()
    logging.basicConfig(level=logging.WARNING)
    quiet_engine(logging.WARNING)
    (s.data_dir / "faust-bare").mkdir(parents=True, exist_ok=True)
    app = faust.App(f"{s.app_id}-bare", broker=f"kafka://{s.bootstrap}", store="memory://",
                    datadir=str(s.data_dir / "faust-bare"), web_enabled=False, topic_partitions=s.partitions,
                    consumer_auto_offset_reset="earliest", broker_commit_interval=s.commit_interval_s,
                    consumer_max_fetch_size=16 << 20)
    frames = app.topic(s.frames_topic, key_type=bytes, value_type=bytes, key_serializer="raw",
                       value_serializer="raw")
    seen = {"n": 0, "t0": 0.0}

    @app.agent(frames)
    async def consume(stream: faust.StreamT) -> None:
        async for events in stream.take_events(s.batch_size, within=s.batch_within_s):
            if not seen["n"]:
                seen["t0"] = time.perf_counter()
            seen["n"] += len(events)
            if seen["n"] >= n:
                print(json.dumps({"frames": seen["n"] * faces_per_record,
                                  "seconds": time.perf_counter() - seen["t0"]}), flush=True)
                os.kill(os.getpid(), signal.SIGTERM)

    worker = faust.Worker(app, loglevel="warning", quiet=True, override_logging=False, redirect_stdouts=False)
    worker.spinner = None
    worker.execute_from_commandline()


if __name__ == "__main__":
    main(*(int(a) for a in sys.argv[1:3]))
