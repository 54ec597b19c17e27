from producers.tracker import FaceTracker
from vision.boxes import iou


def test_iou():
    assert iou((0, 0, 1, 1), (0, 0, 1, 1)) == 1.0
    assert iou((0, 0, 1, 1), (2, 2, 1, 1)) == 0.0
    assert abs(iou((0, 0, 2, 1), (1, 0, 2, 1)) - 1 / 3) < 1e-9


def test_ids_follow_faces_whatever_order_they_come_in():
    t = FaceTracker()
    left, right = (0.1, 0.1, 0.2, 0.2), (0.6, 0.1, 0.2, 0.2)
    assert t.update([left, right]) == [0, 1]
    moved_left, moved_right = (0.12, 0.1, 0.2, 0.2), (0.58, 0.12, 0.2, 0.2)
    assert t.update([moved_right, moved_left]) == [1, 0]


def test_a_track_survives_brief_misses_then_expires():
    t = FaceTracker(max_missed=2)
    face = (0.1, 0.1, 0.2, 0.2)
    assert t.update([face]) == [0]
    assert t.update([]) == []
    assert t.update([face]) == [0]
    for _ in range(3):
        t.update([])
    assert t.update([face]) == [1]


def test_new_faces_get_new_ids():
    t = FaceTracker()
    assert t.update([(0.1, 0.1, 0.2, 0.2)]) == [0]
    assert t.update([(0.1, 0.1, 0.2, 0.2), (0.7, 0.7, 0.2, 0.2)]) == [0, 1]
