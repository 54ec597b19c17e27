"""Topic creation and removal against a real broker."""

from __future__ import annotations

import time

import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import ConfigResource, ConfigResourceType, KafkaAdminClient, NewTopic
from kafka.errors import TopicAlreadyExistsError
from kafka.structs import OffsetAndMetadata

from infra.settings import Settings
from infra.topics import changelog_topic, ensure_topics, owned_prefixes, remove_topics, segment_ms, topic_specs

pytestmark = pytest.mark.integration


def _topics(bootstrap: str) -> set[str]:
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        return set(admin.list_topics())
    finally:
        admin.close()


def test_ensure_topics_creates_what_is_missing_once(make_settings):
    s = make_settings()  # creates them
    assert set(topic_specs(s)) <= _topics(s.bootstrap)
    assert ensure_topics(s) == []


def test_remove_topics_deletes_one_runs_topics_and_offsets_and_nothing_else(make_settings):
    s, other = make_settings(), make_settings()
    producer = KafkaProducer(bootstrap_servers=s.bootstrap)
    for _ in range(20):
        producer.send(s.frames_topic, b"x" * 1000, partition=0)
    producer.flush()
    producer.close()
    tp = TopicPartition(s.frames_topic, 0)
    consumer = KafkaConsumer(bootstrap_servers=s.bootstrap, group_id=s.app_id, enable_auto_commit=False)
    consumer.commit({tp: OffsetAndMetadata(10, "", -1)})
    assert consumer.committed(tp) == 10
    consumer.close()

    removed = remove_topics(s.bootstrap, owned_prefixes(s), [s.app_id])

    assert set(removed) == set(topic_specs(s)) and changelog_topic(s.app_id) in removed
    left = _topics(s.bootstrap)
    assert not {t for t in left if t.startswith(owned_prefixes(s))}
    assert set(topic_specs(other)) <= left  # another run's topics stay
    consumer = KafkaConsumer(bootstrap_servers=s.bootstrap, group_id=s.app_id, enable_auto_commit=False)
    assert consumer.committed(tp) is None  # the group's offsets went with it
    consumer.close()
    assert remove_topics(s.bootstrap, owned_prefixes(s), [s.app_id]) == []  # nothing left: a no-op


def test_segments_close_within_a_sixth_of_the_retention():
    assert segment_ms(6 * 3600 * 1000) == 3600 * 1000
    assert segment_ms(600) == 1000, "at least a second"
    for cfg in topic_specs(Settings()).values():
        if "retention.ms" in cfg:
            assert int(cfg["segment.ms"]) == segment_ms(int(cfg["retention.ms"]))
    forever = topic_specs(Settings(frames_retention_ms=-1))[Settings().frames_topic]
    assert forever == {"retention.ms": "-1"}, "kept for ever: the broker's own segments"


def test_a_frames_topic_forgets_what_is_older_than_its_retention(make_settings):
    """Found while looking into the chaos run's broker: retention.ms alone deleted nothing (a broker
    deletes closed segments only, and none closed); the embedded broker carried every frame."""
    s = make_settings(frames_retention_ms=2000)
    tp = TopicPartition(s.frames_topic, 0)
    producer = KafkaProducer(bootstrap_servers=s.bootstrap)
    for _ in range(50):
        producer.send(s.frames_topic, b"x" * 1000, partition=0)
    producer.flush()
    consumer = KafkaConsumer(bootstrap_servers=s.bootstrap)
    try:
        assert consumer.beginning_offsets([tp])[tp] == 0
        deadline = time.monotonic() + 30
        while consumer.beginning_offsets([tp])[tp] < 50 and time.monotonic() < deadline:
            producer.send(s.frames_topic, b"tick", partition=0)  # a broker may roll on the next write
            producer.flush()
            time.sleep(1.0)
        assert consumer.beginning_offsets([tp])[tp] >= 50, "frames older than the retention are gone"
    finally:
        consumer.close()
        producer.close()


def _readable(bootstrap: str, topic: str) -> int:
    """How many records a reader from the start of partition 0 gets: what a recovering worker replays."""
    tp = TopicPartition(topic, 0)
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, auto_offset_reset="earliest", enable_auto_commit=False,
                             consumer_timeout_ms=1500)
    try:
        consumer.assign([tp])
        consumer.seek_to_beginning(tp)
        return sum(1 for _ in consumer)
    finally:
        consumer.close()


def test_the_session_changelog_is_compacted_while_the_worker_writes_it(make_settings):
    """Found by the chaos run: with cleanup.policy=compact alone nothing was compacted (a broker
    compacts closed segments only, and none closed), so a restarted worker replayed every session
    write since the topic began, and its restarts took longer the longer it had run."""
    s = make_settings(changelog_segment_ms=1000)
    topic = changelog_topic(s.app_id)
    producer = KafkaProducer(bootstrap_servers=s.bootstrap)
    try:
        written = 0
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            for _ in range(10):  # ten faces, one write each per batch, as the worker does
                producer.send(topic, f"session state {written}".encode(), key=f"face-{written % 10}".encode(),
                              partition=0)
                written += 1
            producer.flush()
            time.sleep(0.01)
            if written >= 3000 and written % 500 == 0 and _readable(s.bootstrap, topic) < written // 2:
                break
        assert written >= 3000
        assert _readable(s.bootstrap, topic) < written // 2, f"all {written} writes would be replayed"
    finally:
        producer.close()


def test_an_existing_changelog_made_without_a_segment_time_gets_it(make_settings):
    """A deployment whose changelog was created before segment.ms was set would never compact it."""
    s = make_settings()
    topic = changelog_topic(s.app_id)
    admin = KafkaAdminClient(bootstrap_servers=s.bootstrap)
    try:
        admin.delete_topics([topic])
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:  # made again as before segment.ms was set
            try:
                admin.create_topics([NewTopic(topic, s.partitions, 1, topic_configs={"cleanup.policy": "compact"})])
                break
            except TopicAlreadyExistsError:
                time.sleep(0.2)

        def segment_ms_now() -> str | None:
            got = admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic)])["topic"][topic]
            return got.get("segment.ms", {}).get("value")

        assert segment_ms_now() is None, "the old topic, as created before"
        assert ensure_topics(s) == []
        assert segment_ms_now() == str(s.changelog_segment_ms)
    finally:
        admin.close()
