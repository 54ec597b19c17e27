"""Avro contracts between producers, processors and sinks (``*.avsc``), and their codec."""

from schemas.codec import FACE_RESULT, LANDMARK_FRAME, SESSION_SUMMARY, decode, encode, peek_header
from schemas.errors import PayloadError
from schemas.records import FaceResult, LandmarkFrame, SessionSummary, face_key

__all__ = [
    "FACE_RESULT", "LANDMARK_FRAME", "SESSION_SUMMARY", "FaceResult", "LandmarkFrame",
    "PayloadError", "SessionSummary", "decode", "encode", "face_key", "peek_header",
]
