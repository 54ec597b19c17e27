"""The offset guard that keeps the worker from losing a frame the stream engine skipped."""

from __future__ import annotations

import asyncio

from kafka import KafkaProducer

from processors.gaps import GapReader, OffsetGuard


def _ten_frames_on_partition_1(s) -> None:
    p = KafkaProducer(bootstrap_servers=s.bootstrap)
    for i in range(10):
        p.send(s.frames_topic, value=f"frame-{i}".encode(), partition=1)
    p.flush()
    p.close()


def _read_back(s, partition: int, offsets: range) -> list:
    async def read() -> list:
        reader = GapReader(s.bootstrap, s.frames_topic)
        try:
            return await reader.read(partition, offsets)
        finally:
            await reader.close()

    return asyncio.run(read())


def test_consecutive_offsets_pass_and_the_first_one_sets_the_start():
    g = OffsetGuard()
    assert g.admit(2, 190) == (True, range(190, 190))
    assert g.admit(2, 191) == (True, range(191, 191))
    assert g.admit(0, 5) == (True, range(5, 5)), "partitions are independent"


def test_a_repeat_is_dropped_and_a_skip_names_the_missing_offsets():
    # What faust-streaming delivered in the SIGKILL fault test: 268, 270, ... 445, 445.
    g = OffsetGuard()
    g.admit(3, 268)
    fresh, missing = g.admit(3, 270)
    assert fresh and list(missing) == [269]
    g.admit(3, 271)
    assert g.admit(3, 271) == (False, range(0)), "delivered twice: processed once"
    assert g.admit(3, 250) == (False, range(0)), "older than what was processed"


def test_after_a_rebalance_any_offset_is_a_new_start():
    g = OffsetGuard()
    g.admit(1, 100)
    g.forget()
    assert g.admit(1, 40) == (True, range(40, 40)), "replayed from the committed offset"


def test_gap_reader_reads_the_missing_records_back_from_the_broker(make_settings):
    s = make_settings()
    _ten_frames_on_partition_1(s)
    assert _read_back(s, 1, range(3, 6)) == [b"frame-3", b"frame-4", b"frame-5"]


def test_gap_reader_reads_what_is_left_of_a_range_and_says_what_did_not_come_back(make_settings, caplog):
    """Records below the log's start are gone (retention): the rest of the range is still read, and
    the missing offsets are logged as an error. The reader used to jump to the end of the partition
    (the consumer's default reset) and return nothing at all, without a word."""
    import logging

    from kafka import KafkaAdminClient, TopicPartition

    s = make_settings()
    _ten_frames_on_partition_1(s)
    admin = KafkaAdminClient(bootstrap_servers=s.bootstrap)
    try:
        admin.delete_records({TopicPartition(s.frames_topic, 1): 4})
    finally:
        admin.close()

    with caplog.at_level(logging.ERROR, logger="processors.gaps"):
        values = _read_back(s, 1, range(2, 8))
    assert values == [b"frame-4", b"frame-5", b"frame-6", b"frame-7"]
    assert "2 of offsets 2-7" in caplog.text and "(first 2)" in caplog.text


def test_a_first_record_past_the_committed_offset_reveals_what_was_skipped():
    """Found by the chaos run: after a restart Faust's first record of a partition lay past the
    committed offset; with nothing expected yet, the guard took it as the start and five
    acknowledged frames were never processed."""
    from processors.gaps import OffsetGuard

    g = OffsetGuard()
    g.start_at(2, 2676)
    assert g.admit(2, 2684) == (True, range(2676, 2684))
    g.start_at(2, 10)  # already placed: a late answer does not move it back
    assert g.admit(2, 2685) == (True, range(2685, 2685))
    g.start_at(3, None)  # unknown (no commit yet): the first record is the start
    assert g.admit(3, 7) == (True, range(7, 7))
