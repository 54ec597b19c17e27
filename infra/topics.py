"""Explicit topic creation: partition counts and retention are chosen, never auto-created."""

from __future__ import annotations

import logging

from kafka.admin import KafkaAdminClient, NewTopic
from kafka.errors import KafkaError, TopicAlreadyExistsError

from infra.settings import Settings

log = logging.getLogger(__name__)


SESSIONS_TABLE = "face-sessions"  # the worker's Faust Table of face sessions


def changelog_topic(app_id: str) -> str:
    """The changelog Faust keeps for the worker's session Table (Faust's naming)."""
    return f"{app_id}-{SESSIONS_TABLE}-changelog"


def topic_specs(s: Settings) -> dict[str, dict[str, str]]:
    """Topic name -> topic configs for every topic facestream writes."""
    return {
        s.frames_topic: {"retention.ms": str(s.frames_retention_ms)},
        s.results_topic: {"retention.ms": str(s.results_retention_ms)},
        s.summaries_topic: {"retention.ms": str(s.results_retention_ms)},
        s.dead_letter_topic: {"retention.ms": str(s.results_retention_ms)},
        # The worker's session state: one value per face, so compaction keeps it small.
        changelog_topic(s.app_id): {"cleanup.policy": "compact"},
    }


def ensure_topics(s: Settings, timeout_s: float = 30.0) -> list[str]:
    """Create the missing facestream topics; return the names created."""
    try:
        admin = KafkaAdminClient(bootstrap_servers=s.bootstrap, client_id="facestream-admin",
                                 request_timeout_ms=int(timeout_s * 1000))
    except KafkaError as exc:
        raise RuntimeError(
            f"cannot reach the Kafka broker at {s.bootstrap} ({exc}). Start it with "
            "`facestream up`, or set KAFKA_BOOTSTRAP_SERVERS to a running broker."
        ) from exc
    try:
        existing = set(admin.list_topics())
        created = []
        for name, configs in topic_specs(s).items():
            if name in existing:
                continue
            try:
                admin.create_topics([NewTopic(name, num_partitions=s.partitions,
                                              replication_factor=s.replication_factor,
                                              topic_configs=configs)])
                created.append(name)
            except TopicAlreadyExistsError:  # created concurrently by another process
                pass
        if created:
            log.info("created topics %s with %d partitions", created, s.partitions)
        return created
    finally:
        admin.close()


def group_lag(s: Settings, group: str, topics: list[str]) -> int | None:
    """Messages the consumer ``group`` has not committed yet on ``topics`` (end offset minus
    committed offset, summed over partitions); None when the broker cannot say."""
    from kafka import KafkaConsumer, TopicPartition

    try:
        # A consumer with the group's id reads its committed offsets without joining the group.
        consumer = KafkaConsumer(bootstrap_servers=s.bootstrap.split(","), group_id=group, enable_auto_commit=False,
                                 client_id="facestream-status", request_timeout_ms=5000)
    except KafkaError:
        return None
    try:
        parts = [TopicPartition(t, p) for t in topics for p in (consumer.partitions_for_topic(t) or ())]
        ends = consumer.end_offsets(parts)
        return sum(max(0, end - (consumer.committed(tp) or 0)) for tp, end in ends.items())
    except KafkaError:
        return None
    finally:
        consumer.close()
