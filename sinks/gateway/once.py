"""One calculation per frame for live clients, whatever the worker redelivers.

Processing is at-least-once: after a worker restart or a rebalance, the frames since the last
commit are processed again and their results published again. The store absorbs these on
``(face_key, seq)``; a live client would see them twice. So the gateway remembers, per face, the
frame numbers it forwarded within the last ``window`` frames (results may arrive slightly out of
order: the gateway's own frame events are handled concurrently), and treats anything older than
that window as already forwarded. Pure bookkeeping, bounded: ``window`` numbers per face, and
the faces seen longest ago are forgotten first.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field


@dataclass
class _Face:
    highest: int
    recent: set[int] = field(default_factory=set)


class OncePerFrame:
    def __init__(self, window: int = 1024, max_faces: int = 100_000) -> None:
        self.window = window
        self.max_faces = max_faces
        self._faces: OrderedDict[str, _Face] = OrderedDict()
        self.repeats = 0

    def first(self, face_key: str, seq: int) -> bool:
        """True the first time this face's frame ``seq`` is seen; False for a repeat (or for a
        frame older than the window, which can only be a late replay)."""
        face = self._faces.get(face_key)
        if face is None:
            face = self._faces[face_key] = _Face(seq)
            if len(self._faces) > self.max_faces:
                self._faces.popitem(last=False)
        elif seq in face.recent or seq <= face.highest - self.window:
            self.repeats += 1
            return False
        self._faces.move_to_end(face_key)
        face.recent.add(seq)
        if seq > face.highest:
            face.highest = seq
            if len(face.recent) > 2 * self.window:
                face.recent = {n for n in face.recent if n > face.highest - self.window}
        return True

    def __len__(self) -> int:
        return len(self._faces)
