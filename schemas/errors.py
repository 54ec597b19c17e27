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
