"""The gateway forwards each face's frame once (pure bookkeeping)."""

from sinks.gateway.once import OncePerFrame


def test_repeats_after_a_restart_are_dropped_and_new_frames_pass():
    once = OncePerFrame()
    assert [once.first("s/0", n) for n in (0, 1, 2)] == [True, True, True]
    # The worker restarted and replays frames 1-2, then goes on.
    assert [once.first("s/0", n) for n in (1, 2, 3, 4)] == [False, False, True, True]
    assert once.first("s/1", 1) and once.repeats == 2


def test_frames_out_of_order_are_each_forwarded_once():
    once = OncePerFrame()
    assert [once.first("s/0", n) for n in (0, 2, 1, 3, 1, 2)] == [True, True, True, True, False, False]


def test_memory_is_bounded_per_face_and_in_faces():
    once = OncePerFrame(window=10, max_faces=3)
    for n in range(1000):
        assert once.first("a", n)
    assert not once.first("a", 500)  # older than the window: a late replay
    assert len(once._faces["a"].recent) <= 20
    for face in "bcd":
        once.first(face, 5)
    assert len(once) == 3 and once.first("a", 999)  # "a" was forgotten: bounded over perfect recall
