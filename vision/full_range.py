"""Landmarks for every face in the picture: the full-range detector finds the faces, then the
landmarker reads each one on a crop around it.

FaceLandmarker alone only finds faces that fill a good part of the frame (its detector is the
short-range model). Here each face the full-range detector found is cut out as a square around
its box (``CROP_SCALE`` times the box, so the face fills the crop the way a selfie fills the
frame), scaled to ``CROP_PX`` (small faces are enlarged), and the landmarker runs on that crop;
its points are mapped back to the whole image. A detection in which the landmarker finds no
face, or a different one, is reported as unread: the landmarker doubles as a check on the
detector. Same interface as ``vision.landmarker.Landmarker``.
"""

from __future__ import annotations

from dataclasses import replace

import cv2
import numpy as np

from vision.boxes import iou
from vision.detector import Detection, FaceDetector
from vision.landmarker import FaceObservation, Landmarker, box_of

CROP_SCALE = 2.2
CROP_PX = 256
MAX_FACES = 50  # per image or frame: bounds the work one upload can cause
MIN_FACE_PX = 8  # smaller boxes carry too few pixels for landmarks


def crop_around(rgb: np.ndarray, det: Detection, scale: float = CROP_SCALE,
                size: int = CROP_PX) -> tuple[np.ndarray, float, float, float]:
    """([size, size, 3] crop, x0, y0, side): a square of ``scale`` x the box's longer side
    centred on it, black outside the image; crop pixel (u, v) is image pixel
    (x0 + u * side / size, y0 + v * side / size)."""
    bx0, by0, bx1, by1 = det.box
    side = scale * max(bx1 - bx0, by1 - by0)
    x0, y0 = (bx0 + bx1) / 2 - side / 2, (by0 + by1) / 2 - side / 2
    s = size / side
    m = np.array([[s, 0, -s * x0], [0, s, -s * y0]], np.float32)
    interp = cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR
    crop = cv2.warpAffine(rgb, m, (size, size), flags=interp, borderMode=cv2.BORDER_CONSTANT, borderValue=(0, 0, 0))
    return crop, x0, y0, side


def to_image(landmarks: np.ndarray, x0: float, y0: float, side: float, width: int, height: int) -> np.ndarray:
    """[478, 3] landmarks normalised to a crop -> normalised to the whole image (z keeps
    MediaPipe's convention: the same scale as x)."""
    out = np.empty_like(landmarks)
    out[:, 0] = (x0 + landmarks[:, 0] * side) / width
    out[:, 1] = (y0 + landmarks[:, 1] * side) / height
    out[:, 2] = landmarks[:, 2] * side / width
    return out


class FullRangeLandmarker:
    """Full-range detection, then landmarks (and blendshapes) per detected face.

    The landmarker first reads the whole image as it always did (faces large enough for its own
    detector keep exactly the landmarks they had); only the faces the full-range detector found
    beyond those are read on crops.
    """

    def __init__(self, *, max_faces: int = MAX_FACES, min_confidence: float = 0.5,
                 detector: FaceDetector | None = None) -> None:
        self.max_faces = max_faces
        self._detector = detector or FaceDetector(min_score=min_confidence)
        self._whole = Landmarker(video=False, max_faces=max_faces, detector=False, min_confidence=min_confidence)
        self._crops = Landmarker(video=False, max_faces=1, detector=False, min_confidence=min_confidence)

    def detect(self, rgb: np.ndarray, timestamp_ms: int = 0) -> list[FaceObservation]:
        """Faces in one RGB uint8 image [H, W, 3]. ``timestamp_ms`` is accepted for the
        Landmarker interface: every image is read as a still."""
        return self.detect_all(rgb)[0]

    def detect_all(self, rgb: np.ndarray) -> tuple[list[FaceObservation], list[Detection]]:
        """(faces with landmarks, detections the landmarker could not read: strong profiles,
        heavy occlusion, or too small)."""
        h, w = rgb.shape[:2]
        whole = self._whole.detect(rgb)
        faces: list[FaceObservation] = []
        unread: list[Detection] = []
        for det in self._detector.detect(rgb, max_faces=self.max_faces):
            det_box = (det.box[0] / w, det.box[1] / h, (det.box[2] - det.box[0]) / w, (det.box[3] - det.box[1]) / h)
            same = [i for i, f in enumerate(whole) if _inside(f.box, det_box) and iou(f.box, det_box) > 0.3]
            if same:
                face = whole.pop(same[0])
            else:
                face = self._read_crop(rgb, det, det_box)
                if face is None:
                    unread.append(det)
                    continue
            if not _valid(face, w, h):
                unread.append(det)
                continue
            if any(iou(face.box, f.box) > 0.5 for f in faces):
                continue  # the same face, found twice
            faces.append(replace(face, score=det.score, detection_box=det_box))
        # Faces the landmarker found that the detector missed are kept, with its own box.
        faces += [f for f in whole if _valid(f, w, h) and not any(iou(f.box, g.box) > 0.5 for g in faces)]
        return faces[: self.max_faces], unread

    def _read_crop(self, rgb: np.ndarray, det: Detection, det_box: tuple) -> FaceObservation | None:
        """The landmarker on a crop around ``det``: the detected face's landmarks in image
        coordinates, or None when it reads no face there, or a different one."""
        if det.height < MIN_FACE_PX:
            return None
        h, w = rgb.shape[:2]
        crop, x0, y0, side = crop_around(rgb, det)
        found = self._crops.detect(crop)
        if not found:
            return None
        lm = to_image(found[0].landmarks, x0, y0, side, w, h)
        box = box_of(lm)
        if not _inside(box, det_box):
            return None
        # The crop's face transform places the face in the crop's camera, not the image's: dropped.
        return replace(found[0], landmarks=lm, box=box, transform=None)

    def close(self) -> None:
        self._whole.close()
        self._crops.close()

    def __enter__(self) -> "FullRangeLandmarker":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _valid(face: FaceObservation, width: int, height: int) -> bool:
    """Whether a face's geometry can be handed to a model: finite landmarks and blendshapes, a
    box of at least MIN_FACE_PX on each side that overlaps the image."""
    x, y, w, h = face.box
    return (bool(np.isfinite(face.landmarks).all()) and face.blendshapes is not None
            and bool(np.isfinite(face.blendshapes).all()) and w * width >= MIN_FACE_PX
            and h * height >= MIN_FACE_PX and x < 1 and y < 1 and x + w > 0 and y + h > 0)


def _inside(box: tuple, outer: tuple) -> bool:
    """Whether the centre of (x, y, w, h) ``box`` lies in ``outer``."""
    cx, cy = box[0] + box[2] / 2, box[1] + box[3] / 2
    return outer[0] <= cx <= outer[0] + outer[2] and outer[1] <= cy <= outer[1] + outer[3]
