"""The face-session Table codec: what goes into the changelog and what comes back."""

from __future__ import annotations

from faust.serializers import codecs

from processors import codec
from processors.codec import dump_session, load_session
from processors.cues import CueState
from processors.session import FaceSession


def _session(frames: int = 3) -> FaceSession:
    return FaceSession(session_id="s", device_id="d", track_id=0, face_key="s/0", started_ms=1,
                       last_capture_ms=2, last_seen_ms=3, last_seq=frames - 1, frames=frames,
                       cues=CueState(t_ms=2, amusement=0.1, surprise=0.2, confusion=0.0,
                                                   attention=0.5, engagement=0.4, blinks=1))


def test_round_trip_keeps_every_field():
    s = _session()
    assert load_session(dump_session(s)) == s


def test_both_tombstone_forms_and_corrupt_values_read_as_no_session():
    assert load_session(None) is None
    assert load_session(b"") is None, "noida-db returns tombstones as empty values"
    assert load_session(b"{not json") is None, "a corrupt record must not stop recovery"
    assert load_session(b'{"unknown": 1}') is None


def test_registered_with_faust_under_its_name():
    codec.register()
    s = _session(7)
    raw = codecs.dumps(codec.NAME, s)
    assert raw == dump_session(s)
    assert codecs.loads(codec.NAME, raw) == s
