"""The reference: a plain aiokafka loop doing the worker's work, without an engine.

``python -m bench.engines.reference_loop N``: fetch a batch (``getmany``), decode, the same pure
pipeline with sessions in a dict, one changelog record per face per batch, the results sent as
one producer batch per partition, then (once delivered) the offsets committed. The pre-Faust
worker did this with more care (restore on assignment, overlapped batches); this is only the cost
floor the Faust worker is compared with.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.partitioner import DefaultPartitioner

from infra.settings import Settings
from infra.topics import changelog_topic
from processors.codec import dump_session
from processors.pipeline import FrameProcessor
from schemas import LandmarkFrame

_PARTITIONER = DefaultPartitioner()


async def _send(producer: AIOKafkaProducer, topic: str, parts: list[int], records) -> list:
    by_partition: dict[int, list] = {}
    for key, value in records:
        by_partition.setdefault(_PARTITIONER(key, parts, parts), []).append((key, value))
    futures = []
    for p, recs in by_partition.items():
        batch = producer.create_batch()
        for key, value in recs:
            if batch.append(key=key, value=value, timestamp=None) is None:
                futures.append(await producer.send_batch(batch, topic, partition=p))
                batch = producer.create_batch()
                batch.append(key=key, value=value, timestamp=None)
        futures.append(await producer.send_batch(batch, topic, partition=p))
    return futures


async def run(n: int) -> dict:
    s = Settings()
    fp = FrameProcessor(onnx_threads=s.onnx_threads, blendshapes=s.blendshapes)
    sessions: dict = {}
    consumer = AIOKafkaConsumer(s.frames_topic, bootstrap_servers=s.bootstrap, group_id=f"{s.app_id}-ref",
                                enable_auto_commit=False, auto_offset_reset="earliest",
                                max_partition_fetch_bytes=16 << 20, fetch_max_bytes=64 << 20)
    producer = AIOKafkaProducer(bootstrap_servers=s.bootstrap, acks="all", linger_ms=s.producer_linger_ms,
                                max_batch_size=1 << 20, max_request_size=16 << 20)
    await consumer.start()
    await producer.start()
    parts = sorted(await producer.partitions_for(s.results_topic))
    changelog = changelog_topic(f"{s.app_id}-ref")
    got, t0 = 0, 0.0
    try:
        while got < n:
            batch = await consumer.getmany(timeout_ms=1000, max_records=s.batch_size)
            if not batch:
                continue
            t0 = t0 or time.perf_counter()
            frames = [LandmarkFrame.decode(m.value) for recs in batch.values() for m in recs]
            out = fp.process(frames, {f.key: sessions.get(f.key) for f in frames})
            sessions.update(out.sessions)
            pending = [await producer.send(changelog, dump_session(v), key=k.encode())
                       for k, v in out.sessions.items()]
            pending += await _send(producer, s.results_topic, parts,
                                   ((r.session_id.encode(), r.encode()) for r in out.results))
            await asyncio.gather(*pending)
            await consumer.commit({tp: recs[-1].offset + 1 for tp, recs in batch.items()})
            got += len(frames)
    finally:
        await consumer.stop()
        await producer.stop()
    return {"frames": got, "seconds": time.perf_counter() - t0}


if __name__ == "__main__":
    print(json.dumps(asyncio.run(run(int(sys.argv[1])))), flush=True)
