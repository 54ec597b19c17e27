"""Typed errors for payloads that cannot be accepted. ``reason`` is a stable code (for
dead-letter records and metrics); the message says what was wrong and what to do."""

from __future__ import annotations


class PayloadError(ValueError):
    reason = "invalid"

    def __init__(self, message: str) -> None:
        super().__init__(message)


class EmptyPayload(PayloadError):
    reason = "empty"


class BadHeader(PayloadError):
    reason = "bad_header"


class UnknownRecordKind(PayloadError):
    reason = "unknown_kind"


class UnknownSchemaVersion(PayloadError):
    reason = "unknown_version"


class CorruptBody(PayloadError):
    reason = "corrupt_body"


class InvalidRecord(PayloadError):
    reason = "invalid_record"


class WrongShape(InvalidRecord):
    """Wrong number of landmarks, blendshapes or transform values."""

    reason = "wrong_shape"


class NonFinite(InvalidRecord):
    reason = "non_finite"


class OutOfRange(InvalidRecord):
    """Coordinates, sizes or scores outside what a real face-frame can have."""

    reason = "out_of_range"


class BadTimestamp(InvalidRecord):
    reason = "bad_timestamp"


class Oversized(PayloadError):
    reason = "oversized"
