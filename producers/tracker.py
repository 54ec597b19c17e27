"""Stable face track ids across frames: greedy IoU association with a miss budget.

MediaPipe returns faces in no guaranteed order, so ids come from matching each frame's boxes to
the previous ones. Pure logic, no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass

from vision.boxes import Box, iou


@dataclass
class _Track:
    id: int
    box: Box
    missed: int = 0


class FaceTracker:
    """Assigns each box the id of the best-overlapping live track, or a new id.

    iou_threshold: minimum overlap to continue a track.
    max_missed:    frames a track survives without a match (brief occlusions, missed detections).
    """

    def __init__(self, iou_threshold: float = 0.3, max_missed: int = 15) -> None:
        self.iou_threshold = iou_threshold
        self.max_missed = max_missed
        self._tracks: list[_Track] = []
        self._next_id = 0

    def update(self, boxes: list[Box]) -> list[int]:
        """Track ids for this frame's boxes, in the order given."""
        pairs = sorted(
            ((iou(t.box, b), ti, bi) for ti, t in enumerate(self._tracks) for bi, b in enumerate(boxes)),
            reverse=True,
        )
        ids: list[int | None] = [None] * len(boxes)
        used: set[int] = set()
        for overlap, ti, bi in pairs:
            if overlap < self.iou_threshold:
                break
            if ti in used or ids[bi] is not None:
                continue
            used.add(ti)
            ids[bi] = self._tracks[ti].id
            self._tracks[ti].box, self._tracks[ti].missed = boxes[bi], 0
        for ti, t in enumerate(self._tracks):
            if ti not in used:
                t.missed += 1
        self._tracks = [t for t in self._tracks if t.missed <= self.max_missed]
        for bi, b in enumerate(boxes):
            if ids[bi] is None:
                ids[bi] = self._next_id
                self._tracks.append(_Track(self._next_id, b))
                self._next_id += 1
        return [i for i in ids if i is not None]
