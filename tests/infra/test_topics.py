"""Topic creation and removal against a real broker."""

from __future__ import annotations

import time

import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import KafkaAdminClient
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
