"""The edge producer: frames -> MediaPipe landmarks -> LandmarkFrames on the frames topic.

Only landmarks leave the device. Frames are keyed by face (``session_id/track_id``) so each
face's frames stay in order on one partition; the producer waits for all in-sync replicas
(acks=all), compresses, and blocks rather than drops when the broker is slow or away.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from kafka import KafkaProducer
from kafka.errors import KafkaError
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from infra.embedded import port_open
from infra.settings import Settings
from producers.sources import Source
from producers.tracker import FaceTracker
from schemas import LandmarkFrame
from vision.full_range import FullRangeLandmarker
from vision.landmarker import Landmarker
from vision.teacher import Teacher, teach

log = logging.getLogger(__name__)


@dataclass
class ProduceStats:
    frames: int = 0  # source frames read
    face_frames: int = 0  # LandmarkFrames published (one per face per frame)
    tracks: set[int] = field(default_factory=set)
    landmark_s: float = 0.0  # time spent in MediaPipe
    seconds: float = 0.0  # wall time of the whole run

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds else 0.0

    @property
    def landmark_ms_per_frame(self) -> float:
        return 1000.0 * self.landmark_s / self.frames if self.frames else 0.0


def extract(
    source: Source,
    landmarker: Landmarker | FullRangeLandmarker,
    session_id: str,
    device_id: str,
    start_ms: int,
    stats: ProduceStats,
    realtime: bool = False,
    teacher: Teacher | None = None,
) -> Iterator[list[LandmarkFrame]]:
    """One list of LandmarkFrames per source frame (empty when no face is visible). With a
    ``teacher``, each frame also carries the image teacher's 7 probabilities (no pixels)."""
    tracker = FaceTracker()
    t0 = time.monotonic()
    for frame in source:
        if realtime and source.video:
            delay = t0 + frame.offset_ms / 1000.0 - time.monotonic()
            if delay > 0:
                time.sleep(delay)
        h, w = frame.rgb.shape[:2]
        # Video: media time from the source's start; stills: when they were processed.
        capture_ms = start_ms + int(frame.offset_ms) if source.video else int(time.time() * 1000)
        t = time.perf_counter()
        faces = landmarker.detect(frame.rgb, timestamp_ms=int(frame.offset_ms) if source.video else 0)
        stats.landmark_s += time.perf_counter() - t
        ids = tracker.update([f.box for f in faces]) if source.video else list(range(len(faces)))
        stats.frames += 1
        probs = teach(teacher, frame.rgb, [f.landmarks for f in faces]) if teacher else [None] * len(faces)
        out = []
        for track_id, face, p in zip(ids, faces, probs):
            out.append(LandmarkFrame(
                session_id=session_id, device_id=device_id, track_id=track_id, seq=frame.index,
                capture_ms=capture_ms, width=w, height=h, landmarks=face.landmarks,
                blendshapes=face.blendshapes, transform=face.transform, box=face.box,
                detection_score=face.score, teacher=p,
            ))
            stats.tracks.add(track_id)
        yield out


class BrokerUnavailable(RuntimeError):
    pass


class Publisher:
    """kafka-python producer for LandmarkFrames; raises if any send failed."""

    def __init__(self, settings: Settings, compression: str = "gzip") -> None:
        self.topic = settings.frames_topic
        self.errors: list[Exception] = []
        hosts = [h.strip().rpartition(":") for h in settings.bootstrap.split(",")]
        if not any(port_open(host, int(port), timeout=3.0) for host, _, port in hosts):
            raise BrokerUnavailable(
                f"no Kafka broker answers at {settings.bootstrap}. Start the embedded one with "
                "`facestream up`, or set KAFKA_BOOTSTRAP_SERVERS to a running broker."
            )
        self._producer = KafkaProducer(
            bootstrap_servers=settings.bootstrap.split(","),
            client_id=f"facestream-producer-{settings.device_id}",
            acks="all",
            compression_type=compression,
            linger_ms=5,
            retries=2**31 - 1,  # retry until delivery_timeout_ms: block, don't drop
            max_block_ms=120_000,
            max_in_flight_requests_per_connection=1,  # retries keep per-face order
            # Idempotence would turn a broker restart that forgets producer state into
            # OutOfOrderSequenceNumber failures (frames given up). Without it a retry may write a
            # frame twice, which the processor and the sinks absorb (unique by face and seq).
            enable_idempotence=False,
        )

    def send(self, frame: LandmarkFrame, on_ack: Callable[[LandmarkFrame], None] | None = None) -> None:
        """Queue ``frame``; ``on_ack(frame)`` runs (on the producer's thread) once the broker has it."""
        fut = self._producer.send(self.topic, key=frame.key.encode(), value=frame.encode())
        fut.add_errback(self.errors.append)
        if on_ack is not None:
            fut.add_callback(lambda _: on_ack(frame))

    def flush(self, timeout_s: float | None = None) -> None:
        self._producer.flush(timeout=timeout_s)
        if self.errors:
            raise KafkaError(f"{len(self.errors)} frames were not acknowledged; first: {self.errors[0]!r}")

    def close(self) -> None:
        self._producer.close()


def produce(
    source: Source,
    settings: Settings,
    *,
    session_id: str | None = None,
    realtime: bool = False,
    show_progress: bool = True,
    console: Console | None = None,
    teacher: bool = False,
    full_range: bool = False,
) -> tuple[str, ProduceStats]:
    """Replay ``source`` through MediaPipe onto the frames topic; returns (session_id, stats).
    With ``full_range``, faces come from the full-range detector and are read on crops around
    each (room cameras with several small faces)."""
    session_id = session_id or uuid.uuid4().hex[:12]
    stats = ProduceStats()
    console = console or Console(stderr=True)
    publisher = Publisher(settings)
    t0 = time.perf_counter()
    progress = Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
        TextColumn("{task.fields[faces]} face-frames  {task.fields[fps]:.1f} fps"),
        TimeElapsedColumn(), console=console, disable=not show_progress, transient=False,
    )
    try:
        landmarks = (FullRangeLandmarker(max_faces=settings.max_faces) if full_range
                     else Landmarker(max_faces=settings.max_faces, video=source.video))
        with progress, landmarks as landmarker:
            task = progress.add_task(source.name, total=source.total, faces=0, fps=0.0)
            for frames in extract(source, landmarker, session_id, settings.device_id,
                                  int(time.time() * 1000), stats, realtime,
                                  Teacher(age_gender=False) if teacher else None):
                for f in frames:
                    publisher.send(f)
                stats.face_frames += len(frames)
                elapsed = time.perf_counter() - t0
                progress.update(task, advance=1, faces=stats.face_frames,
                                fps=stats.frames / elapsed if elapsed else 0.0)
        publisher.flush()
    finally:
        publisher.close()
        stats.seconds = time.perf_counter() - t0
    return session_id, stats
