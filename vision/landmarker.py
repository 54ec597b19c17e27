"""MediaPipe FaceLandmarker on the edge device: pixels in, landmarks out.

Uses MediaPipe's Tasks API with the pinned ``face_landmarker.task``. The BlazeFace detector inside
the same .task file supplies a real detection score per face (FaceLandmarker exposes none); faces
are matched to detections by box overlap.
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from infra import assets
from vision.boxes import iou


@dataclass(frozen=True)
class FaceObservation:
    """One face in one frame.

    landmarks:   [478, 3] float32, MediaPipe normalised coordinates (x / width, y / height,
                 z on the same scale as x).
    blendshapes: [52] float32 scores in MediaPipe's category order, or None.
    transform:   [4, 4] float32 face pose (canonical face -> camera, cm), or None.
    box:         (x, y, w, h) normalised, the landmarks' extent.
    score:       detector confidence in [0, 1], or None when no detection overlapped.
    detection_box: (x, y, w, h) normalised, the full-range detector's box (``producers.
                 full_range``), or None.
    """

    landmarks: np.ndarray
    blendshapes: np.ndarray | None
    transform: np.ndarray | None
    box: tuple[float, float, float, float]
    score: float | None
    detection_box: tuple[float, float, float, float] | None = None


def box_of(lm: np.ndarray) -> tuple[float, float, float, float]:
    x0, y0 = lm[:, 0].min(), lm[:, 1].min()
    x1, y1 = lm[:, 0].max(), lm[:, 1].max()
    return float(x0), float(y0), float(x1 - x0), float(y1 - y0)


class Landmarker:
    """Face landmarks for a stream of RGB frames (``video=True``) or unrelated images.

    In video mode timestamps must increase; MediaPipe then tracks faces between frames.
    """

    def __init__(
        self,
        model_path: Path | None = None,
        *,
        max_faces: int = 4,
        video: bool = True,
        blendshapes: bool = True,
        transforms: bool = True,
        detector: bool = True,
        min_confidence: float = 0.5,
    ) -> None:
        from mediapipe.tasks.python import BaseOptions, vision

        path = Path(model_path) if model_path else assets.landmarker_model()
        task_bytes = path.read_bytes()
        mode = vision.RunningMode.VIDEO if video else vision.RunningMode.IMAGE
        self._video = video
        self._landmarker = vision.FaceLandmarker.create_from_options(
            vision.FaceLandmarkerOptions(
                base_options=BaseOptions(model_asset_buffer=task_bytes),
                running_mode=mode,
                num_faces=max_faces,
                min_face_detection_confidence=min_confidence,
                min_face_presence_confidence=min_confidence,
                min_tracking_confidence=min_confidence,
                output_face_blendshapes=blendshapes,
                output_facial_transformation_matrixes=transforms,
            )
        )
        self._detector = None
        if detector:
            with zipfile.ZipFile(path) as zf:
                det_bytes = zf.read("face_detector.tflite")
            self._detector = vision.FaceDetector.create_from_options(
                vision.FaceDetectorOptions(
                    base_options=BaseOptions(model_asset_buffer=det_bytes),
                    running_mode=mode,
                    min_detection_confidence=min_confidence,
                )
            )

    def detect(self, rgb: np.ndarray, timestamp_ms: int = 0) -> list[FaceObservation]:
        """Faces in one RGB uint8 image [H, W, 3]."""
        import mediapipe as mp

        h, w = rgb.shape[:2]
        image = mp.Image(image_format=mp.ImageFormat.SRGB, data=np.ascontiguousarray(rgb))
        if self._video:
            result = self._landmarker.detect_for_video(image, int(timestamp_ms))
        else:
            result = self._landmarker.detect(image)
        detections: list[tuple[tuple[float, float, float, float], float]] = []
        if self._detector is not None and result.face_landmarks:
            det = (self._detector.detect_for_video(image, int(timestamp_ms)) if self._video
                   else self._detector.detect(image))
            for d in det.detections:
                bb = d.bounding_box
                detections.append(((bb.origin_x / w, bb.origin_y / h, bb.width / w, bb.height / h),
                                   float(d.categories[0].score)))
        faces = []
        for i, pts in enumerate(result.face_landmarks):
            lm = np.array([(p.x, p.y, p.z) for p in pts], dtype=np.float32)
            bs = None
            if result.face_blendshapes:
                bs = np.array([c.score for c in result.face_blendshapes[i]], dtype=np.float32)
            tf = None
            if result.facial_transformation_matrixes:
                tf = np.asarray(result.facial_transformation_matrixes[i], dtype=np.float32)
            box = box_of(lm)
            score = None
            if detections:
                best = max(detections, key=lambda d: iou(box, d[0]))
                if iou(box, best[0]) > 0.3:
                    score = best[1]
            faces.append(FaceObservation(lm, bs, tf, box, score))
        return faces

    def close(self) -> None:
        self._landmarker.close()
        if self._detector is not None:
            self._detector.close()

    def __enter__(self) -> "Landmarker":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
