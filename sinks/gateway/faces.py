"""The image API: ``POST /v1/faces``, answering what SmartClick and Coqnitics answer.

Upload a JPG/JPEG/PNG (multipart field ``image`` or ``file``, or the raw body) up to 1920x1080;
get every face, left to right, with both services' fields. Inference runs in-process: the
full-range face detector, MediaPipe's landmarker on each face (``vision.full_range``), then face-api.js's expression and age/gender networks (ONNX) on
each face crop, the expressions averaged with a head fitted to people's labels (model card). ``make_router(settings)`` returns the router; the gateway mounts it.
"""

from __future__ import annotations

import asyncio
import hashlib
import struct
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Literal

import cv2
import numpy as np
from fastapi import APIRouter, HTTPException, Query, Request
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from infra import metrics
from infra.settings import Settings
from schemas.vocabulary import EMOTIONS
from sinks.gateway.buckets import Buckets
from vision.features.expression import aligned_mesh, student_features
from vision.features.pose import to_pixel_space
from vision.full_range import MAX_FACES, FullRangeLandmarker
from vision.teacher import Teacher, face_crop

MAX_W, MAX_H = 1920, 1080
# Mesh points for the 5 Coqnitics landmarks (MediaPipe's numbering).
IRIS_A, IRIS_B, NOSE_TIP, MOUTH_A, MOUTH_B = 468, 473, 1, 61, 291
SENTIMENT_ORDER = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")


class Box(BaseModel):
    x: int
    y: int
    w: int
    h: int


class Rectangle(BaseModel):
    left: float
    top: float
    right: float
    bottom: float


class Emotion(BaseModel):
    value: str = Field(description="the most probable emotion")
    probability: float
    sentiments: dict[str, float] = Field(description="angry, disgust, fear, happy, sad, surprise, neutral")


class Gender(BaseModel):
    value: Literal["Male", "Female"]
    confidence: float = Field(description="0..100")


class Landmark(BaseModel):
    type: Literal["eyeLeft", "eyeRight", "nose", "lipLeft", "lipRight"]
    x: int
    y: int


class Face(BaseModel):
    faceConfidence: float = Field(description="detector confidence that this is a face (Coqnitics)")
    probability: float = Field(description="the same confidence (SmartClick)")
    boundingBox: Box
    rectangle: Rectangle
    emotion: Emotion
    emotions: dict[str, float]
    age: int
    gender: Gender
    landmarks: list[Landmark]
    mesh: list[list[float]] | None = Field(None, description="all 478 points [x, y] in pixels, with ?landmarks=all")


class UnreadFace(BaseModel):
    faceConfidence: float
    boundingBox: Box
    reason: str = Field(description="why it has no landmarks, emotion, age or gender")


class FacesResponse(BaseModel):
    faces: list[Face]
    unreadFaces: list[UnreadFace] | None = Field(
        None, description="faces the detector found but the landmarker could not read (strong profiles, "
                          "heavy occlusion); absent when there are none")


class ImageError(HTTPException):
    """An upload the API refuses; the gateway renders it as {"error": {"code", "message"}}."""


def image_size(data: bytes) -> tuple[str, int, int]:
    """(format, width, height) from the PNG or JPEG header, without decoding the pixels, so a
    decompression bomb is refused before it costs memory."""
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        if len(data) < 24 or data[12:16] != b"IHDR":
            raise ImageError(422, "truncated PNG: no IHDR header")
        w, h = struct.unpack(">II", data[16:24])
        return "png", w, h
    if data[:3] == b"\xff\xd8\xff":
        i = 2
        while i + 9 < len(data):
            if data[i] != 0xFF:
                i += 1
                continue
            marker = data[i + 1]
            if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7 or marker == 0xFF:
                i += 1 if marker == 0xFF else 2
                continue
            length = struct.unpack(">H", data[i + 2:i + 4])[0]
            if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):  # SOFn
                h, w = struct.unpack(">HH", data[i + 5:i + 9])
                return "jpeg", w, h
            i += 2 + length
        raise ImageError(422, "truncated or corrupt JPEG: no frame header found")
    raise ImageError(415, "only JPG/JPEG and PNG images are accepted (by content, not by name)")


def decode(data: bytes) -> np.ndarray:
    """Bytes -> RGB uint8 [H, W, 3], after the size check; ImageError on anything unusable."""
    if not data:
        raise ImageError(400, "empty body: send the image as the request body or a multipart field 'image'")
    fmt, w, h = image_size(data)
    if w == 0 or h == 0:
        raise ImageError(422, f"the {fmt.upper()} header says {w}x{h} pixels")
    if not ((w <= MAX_W and h <= MAX_H) or (w <= MAX_H and h <= MAX_W)):
        raise ImageError(422, f"image is {w}x{h}; the largest accepted is {MAX_W}x{MAX_H}: resize it first")
    # The end-of-image marker after the scan data; anything may follow it (phones append clips).
    sos = data.find(b"\xff\xda") if fmt == "jpeg" else 0
    if fmt == "jpeg" and (sos == -1 or data.find(b"\xff\xd9", sos) == -1):
        raise ImageError(422, "truncated JPEG (no end-of-image marker): upload the whole file")
    img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)  # 8-bit BGR whatever the input
    # OpenCV applies EXIF orientation, so a rotated phone photo comes out as (w, h).
    if img is None or img.shape[:2] not in ((h, w), (w, h)):
        raise ImageError(422, f"the {fmt.upper()} data does not decode (corrupt or truncated)")
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


class FaceAnalyzer:
    """Full-range detector, landmarker per face, the teacher networks; thread-safe (MediaPipe
    graphs are not: one lock)."""

    def __init__(self, max_faces: int = MAX_FACES) -> None:
        self._landmarker = FullRangeLandmarker(max_faces=max_faces)
        self._teacher = Teacher(human_head=True)
        self._lock = threading.Lock()

    def analyze(self, rgb: np.ndarray, mesh: bool = False) -> FacesResponse:
        with self._lock:
            faces, unread = self._landmarker.detect_all(rgb)
        left_to_right = sorted(faces, key=lambda f: f.box[0])
        unread_faces = [UnreadFace(faceConfidence=d.score, boundingBox=_box(*d.box),
                                   reason="no landmarks: turned away, covered, or too small")
                        for d in sorted(unread, key=lambda d: d.box[0])]
        return FacesResponse(faces=self._faces(rgb, left_to_right, mesh), unreadFaces=unread_faces or None)

    def _faces(self, rgb: np.ndarray, faces: list, mesh: bool) -> list[Face]:
        h, w = rgb.shape[:2]
        if not faces:
            return []
        crops = np.stack([face_crop(rgb, f.landmarks) for f in faces])
        points = to_pixel_space(np.stack([f.landmarks for f in faces]), float(w), float(h))  # [F, 478, 3]
        bs = np.stack([f.blendshapes for f in faces])
        probs = self._teacher.judged_expressions(crops, student_features(aligned_mesh(points), bs))
        ages, p_male = self._teacher.age_gender(crops)
        out = []
        for f, face_points, p, age, male in zip(faces, points, probs, ages, p_male):
            px = face_points[:, :2]
            # The detector's box (brows to chin) where it found the face, else the mesh's extent.
            bx, by, bw, bh = f.detection_box or f.box
            x0, y0, x1, y1 = max(0.0, bx * w), max(0.0, by * h), min(float(w), (bx + bw) * w), min(float(h), (by + bh) * h)
            sentiments = {e: float(p[EMOTIONS.index(e)]) for e in SENTIMENT_ORDER}
            best = max(sentiments, key=sentiments.get)
            # A face only the landmarker found has no detector score: its own threshold (0.5).
            conf = float(f.score) if f.score is not None else 0.5
            is_male = float(male) > 0.5
            out.append(Face(
                faceConfidence=conf, probability=conf,
                boundingBox=_box(x0, y0, x1, y1),
                rectangle=Rectangle(left=float(x0), top=float(y0), right=float(x1), bottom=float(y1)),
                emotion=Emotion(value=best, probability=sentiments[best], sentiments=sentiments),
                emotions=sentiments, age=int(round(float(age))),
                gender=Gender(value="Male" if is_male else "Female",
                              confidence=round(100 * (float(male) if is_male else 1 - float(male)), 2)),
                landmarks=_five(px), mesh=px.round(2).tolist() if mesh else None,
            ))
        return out


def _box(x0: float, y0: float, x1: float, y1: float) -> Box:
    return Box(x=int(round(x0)), y=int(round(y0)), w=int(round(x1 - x0)), h=int(round(y1 - y0)))


def _five(px: np.ndarray) -> list[Landmark]:
    """eyeLeft/eyeRight and lipLeft/lipRight are the ones on the image's left/right side."""
    eyes = sorted((px[IRIS_A], px[IRIS_B]), key=lambda p: p[0])
    lips = sorted((px[MOUTH_A], px[MOUTH_B]), key=lambda p: p[0])
    points = {"eyeLeft": eyes[0], "eyeRight": eyes[1], "nose": px[NOSE_TIP], "lipLeft": lips[0], "lipRight": lips[1]}
    return [Landmark(type=k, x=int(round(float(v[0]))), y=int(round(float(v[1])))) for k, v in points.items()]


async def _read_upload(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit + 64 * 1024:
        raise ImageError(413, f"{declared} bytes is more than the {limit} accepted: send a smaller image")
    ctype = request.headers.get("content-type", "")
    if ctype.startswith("multipart/form-data"):
        form = await request.form(max_files=2, max_fields=10)
        upload = form.get("image") or form.get("file")
        if upload is None or isinstance(upload, str):
            raise ImageError(400, "multipart body without an 'image' (or 'file') file field")
        data = await upload.read(limit + 1)
    else:
        data = bytearray()
        async for chunk in request.stream():
            data += chunk
            if len(data) > limit:
                break
        data = bytes(data)
    if len(data) > limit:
        raise ImageError(413, f"image is more than the {limit} bytes accepted: send a smaller image")
    return data


def _busy(message: str, wait_s: float) -> HTTPException:
    metrics.IMAGES_THROTTLED.inc()
    return HTTPException(429, f"{message}; retry in {wait_s:.1f} s",
                         headers={"Retry-After": str(max(1, round(wait_s)))})


REASONS = {400: "empty_or_unreadable", 413: "too_large_bytes", 415: "not_jpg_or_png", 422: "undecodable_or_too_large"}


def make_router(settings: Settings, analyzer: FaceAnalyzer | None = None,
                on_refused: Callable[[str, dict], Awaitable[None]] | None = None,
                authorize: Callable[[Request], Awaitable[str]] | None = None) -> APIRouter:
    """The ``/v1/faces`` router; the analyzer (models) is created on first use unless given.
    ``on_refused(reason, details)`` is awaited for every refused upload (dead letters, metrics);
    the details never include pixels. ``authorize(request)`` returns the caller's key id or raises
    (the gateway passes one that wants a key with the ``read`` scope); each key id may send
    ``image_rate_per_key`` images per second, and at most ``image_max_concurrent`` images are
    worked on at once: past either, 429 with Retry-After. Without ``authorize`` (tests of the
    image handling alone) every caller shares one bucket."""
    router = APIRouter()
    holder: dict[str, FaceAnalyzer] = {}
    init = threading.Lock()
    buckets = Buckets(settings.image_rate_per_key)
    working = asyncio.Semaphore(settings.image_max_concurrent)

    def get() -> FaceAnalyzer:
        with init:
            if "a" not in holder:
                holder["a"] = analyzer or FaceAnalyzer()
            return holder["a"]

    @router.post(
        "/v1/faces", response_model=FacesResponse, response_model_exclude_none=True,
        summary="Detect every face in an image and estimate emotion, age and gender",
        description="JPG/JPEG or PNG, at most 1920x1080, as multipart field `image` (or `file`) or as "
                    "the raw body. `?landmarks=all` adds the 478 mesh points of each face.",
        responses={400: {"description": "empty or unreadable body"}, 401: {"description": "no valid API key"},
                   403: {"description": "a key without the read scope"}, 413: {"description": "too many bytes"},
                   415: {"description": "not a JPG or PNG"}, 422: {"description": "too large or undecodable"},
                   429: {"description": "past this key's rate or the concurrent images (Retry-After)"}},
    )
    async def faces(request: Request, landmarks: Literal["five", "all"] = Query("five")) -> FacesResponse:
        key_id = await authorize(request) if authorize is not None else ""
        if wait := buckets.take(key_id, time.monotonic()):
            raise _busy(f"more than {settings.image_rate_per_key:g} images per second with this key "
                        "(FACESTREAM_IMAGE_RATE_PER_KEY)", wait)
        if working.locked():
            raise _busy(f"{settings.image_max_concurrent} images are being analysed already "
                        "(FACESTREAM_IMAGE_MAX_CONCURRENT)", 1.0)
        async with working:
            data = b""
            try:
                data = await _read_upload(request, settings.max_image_bytes)
                rgb = decode(data)
            except ImageError as exc:
                reason = REASONS.get(exc.status_code, "refused")
                metrics.DEAD_LETTERS.labels("images", reason).inc()
                if on_refused is not None:
                    await on_refused(reason, {"status": exc.status_code, "error": exc.detail, "bytes": len(data),
                                              "content_type": request.headers.get("content-type", ""),
                                              "sha256": hashlib.sha256(data).hexdigest()})
                raise
            return await run_in_threadpool(lambda: get().analyze(rgb, mesh=landmarks == "all"))

    return router
