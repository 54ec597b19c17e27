"""Explicit topic creation (partition counts and retention are chosen, never auto-created) and
removal of what a finished run leaves behind."""

from __future__ import annotations

import logging
from collections.abc import Iterable

from kafka.admin import ConfigResource, ConfigResourceType, KafkaAdminClient, NewTopic
from kafka.errors import GroupIdNotFoundError, KafkaError, TopicAlreadyExistsError

from infra.settings import Settings

log = logging.getLogger(__name__)


SESSIONS_TABLE = "face-sessions"  # the worker's Faust Table of face sessions


def changelog_topic(app_id: str) -> str:
    """The changelog Faust keeps for the worker's session Table (Faust's naming)."""
    return f"{app_id}-{SESSIONS_TABLE}-changelog"


def segment_ms(retention_ms: int) -> int:
    """How long a log segment stays open for a topic kept ``retention_ms``: a sixth of it (at
    least a second). A broker deletes only closed segments, and by default one closes after 7
    days or 1 GB, so without this a topic kept 6 hours that takes in less than 1 GB a week keeps
    everything for 7 days (and the embedded broker, which rewrites all it holds as it changes,
    would carry it all). With it, records go at most a sixth of the retention late."""
    return max(1000, retention_ms // 6)


def _kept(retention_ms: int) -> dict[str, str]:
    if retention_ms < 0:  # kept for ever: the broker's own segment size is right
        return {"retention.ms": str(retention_ms)}
    return {"retention.ms": str(retention_ms), "segment.ms": str(segment_ms(retention_ms))}


def topic_specs(s: Settings) -> dict[str, dict[str, str]]:
    """Topic name -> topic configs for every topic facestream writes."""
    return {
        s.frames_topic: _kept(s.frames_retention_ms),
        s.results_topic: _kept(s.results_retention_ms),
        s.summaries_topic: _kept(s.results_retention_ms),
        s.dead_letter_topic: _kept(s.results_retention_ms),
        # The worker's session state: one value per face once compacted, and compacted only when
        # its segments close; a restarted worker replays all of it before reading a frame.
        changelog_topic(s.app_id): {"cleanup.policy": "compact", "segment.ms": str(s.changelog_segment_ms)},
    }


def owned_prefixes(s: Settings) -> tuple[str, ...]:
    """Name prefixes of every topic a deployment with settings ``s`` writes: its own topics, and
    the ones Faust names after the app id (the session changelog, the assignor's topic)."""
    return (*topic_specs(s), f"{s.app_id}-")


def _admin(bootstrap: str, timeout_s: float) -> KafkaAdminClient:
    try:
        return KafkaAdminClient(bootstrap_servers=bootstrap, client_id="facestream-admin",
                                request_timeout_ms=int(timeout_s * 1000))
    except KafkaError as exc:
        raise RuntimeError(
            f"cannot reach the Kafka broker at {bootstrap} ({exc}). Start it with "
            "`facestream up`, or set KAFKA_BOOTSTRAP_SERVERS to a running broker."
        ) from exc


def ensure_topics(s: Settings, timeout_s: float = 30.0) -> list[str]:
    """Create the missing facestream topics; return the names created."""
    admin = _admin(s.bootstrap, timeout_s)
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
        if changelog_topic(s.app_id) in existing:
            _keep_changelog_configs(admin, s)
        return created
    finally:
        admin.close()


def _keep_changelog_configs(admin: KafkaAdminClient, s: Settings) -> None:
    """Give an existing session changelog the configs it is created with. It is the worker's own
    state, so a deployment made before one of them (segment.ms: without it nothing is compacted) gets
    it here; the other topics' retention may have been changed by an operator, and is left alone."""
    name = changelog_topic(s.app_id)
    want = topic_specs(s)[name]
    try:
        described = admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, name)])
        have = {k: v.get("value") for k, v in described.get("topic", {}).get(name, {}).items()}
        changed = {k: v for k, v in want.items() if have.get(k) != v}
        if changed:
            admin.alter_configs([ConfigResource(ConfigResourceType.TOPIC, name, configs=changed)])
            log.info("set %s on the existing session changelog %s", changed, name)
    except KafkaError as exc:
        log.warning("could not check the configs of the session changelog %s (%s); set them with "
                    "kafka-configs --alter --entity-type topics --entity-name %s --add-config %s",
                    name, exc, name, ",".join(f"{k}={v}" for k, v in want.items()))


def remove_topics(bootstrap: str, prefixes: Iterable[str], groups: Iterable[str] = (),
                  timeout_s: float = 30.0) -> list[str]:
    """Delete every topic whose name starts with one of ``prefixes`` and the committed offsets of
    the consumer ``groups``: what a finished test or chaos run leaves on a broker. Returns the
    topics deleted. A group the broker will not delete (still has members, or the broker does
    not know the request) is logged and left; the topics are what hold the data.

    Why it matters: the embedded broker keeps its whole state in one file that it rewrites as
    the state changes, so every record left behind costs CPU on every later write."""
    prefixes = tuple(prefixes)
    admin = _admin(bootstrap, timeout_s)
    try:
        doomed = sorted(t for t in admin.list_topics() if t.startswith(prefixes))
        if doomed:
            admin.delete_topics(doomed, timeout_ms=int(timeout_s * 1000))
        groups = list(groups)
        if groups:
            try:
                for group, outcome in admin.delete_groups(groups).items():
                    if outcome not in ("OK", GroupIdNotFoundError.__name__):
                        log.warning("consumer group %s not deleted: %s", group, outcome)
            except KafkaError as exc:
                log.warning("consumer groups %s not deleted: %s", groups, exc)
        return doomed
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
