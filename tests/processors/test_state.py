"""SessionStore: the worker's in-memory sessions and the changelog writes that mirror them."""

from __future__ import annotations

from processors.session import FaceSession
from processors.state import SessionStore, dump_session, load_session


def _session(key: str, frames: int = 1) -> FaceSession:
    sid, track = key.split("/")
    return FaceSession(session_id=sid, device_id="d", track_id=int(track), face_key=key, started_ms=1,
                       last_capture_ms=2, last_seen_ms=3, last_seq=frames - 1, frames=frames)


def test_writes_mirror_memory_last_write_wins():
    store = SessionStore()
    store.put(0, "a/0", _session("a/0", 1))
    store.put(0, "a/0", _session("a/0", 2))
    store.put(3, "b/1", _session("b/1"))
    writes = {(p, k): v for p, k, v in store.take_writes()}
    assert set(writes) == {(0, b"a/0"), (3, b"b/1")}, "one record per face, in its own partition"
    assert load_session(writes[(0, b"a/0")]).frames == 2
    assert store.take_writes() == [], "taken writes are not repeated"

    store.delete(0, "a/0")
    assert store.take_writes() == [(0, b"a/0", None)], "a deletion is a tombstone"
    assert len(store) == 1


def test_restore_replays_in_order_and_understands_both_tombstone_forms():
    store = SessionStore()
    records = [
        (b"a/0", dump_session(_session("a/0", 5))),
        (b"b/0", dump_session(_session("b/0"))),
        (b"a/0", dump_session(_session("a/0", 9))),
        (b"b/0", None),  # Kafka tombstone
        (b"c/0", dump_session(_session("c/0"))),
        (b"c/0", b""),  # noida-db returns tombstones as empty values
        (b"d/0", b"{not json"),  # corrupt: skipped, the face starts afresh
    ]
    assert store.restore(2, records) == 1
    assert store.sessions(2)["a/0"].frames == 9
    assert store.take_writes() == [], "restoring does not write the changelog back"


def test_keep_only_forgets_moved_partitions_and_names_the_ones_to_restore():
    store = SessionStore()
    store.put(0, "a/0", _session("a/0"))
    store.put(1, "b/0", _session("b/0"))
    assert store.keep_only({1, 2}) == {2}, "partition 1 is kept as it is, 2 must be restored"
    assert store.partitions == {1}
    assert [w[0] for w in store.take_writes()] == [1], "pending writes of a moved partition are dropped"
