"""The face-session Table's value codec: a ``FaceSession`` <-> compact JSON in the changelog.

Registered with Faust as ``face-session``, so the Table holds ``FaceSession`` objects in memory and
only the changelog sees bytes. The format is the one earlier releases wrote, so their changelogs
restore. A deletion is a tombstone: null, or ``b""`` from brokers (noida-db) that return tombstones
as empty values.
"""

from __future__ import annotations

import json
import logging

from faust.serializers import codecs

from processors.session import FaceSession

log = logging.getLogger(__name__)

NAME = "face-session"


def dump_session(session: FaceSession) -> bytes:
    return json.dumps(session.to_dict(), separators=(",", ":")).encode()


def load_session(raw: bytes | None) -> FaceSession | None:
    """A changelog value -> FaceSession; None for a tombstone or a value that cannot be read (a
    corrupt record must not stop a worker from starting: that face then starts a new session)."""
    if not raw:
        return None
    try:
        return FaceSession.from_dict(json.loads(raw))
    except (ValueError, TypeError) as exc:
        log.warning("unreadable face session in the changelog (%s): the face starts a new session", exc)
        return None


class SessionCodec(codecs.Codec):
    def _dumps(self, obj: FaceSession) -> bytes:
        return dump_session(obj)

    def _loads(self, s: bytes) -> FaceSession | None:
        return load_session(s)


class SessionValue:
    """The Table's ``value_type``: Faust takes a Table's value codec from its value type's options,
    and builds values with its ``from_data`` (the codec already returns a FaceSession)."""

    class _options:  # noqa: N801 (Faust's attribute name)
        serializer = NAME

    @staticmethod
    def from_data(data: FaceSession | None, preferred_type: object = None) -> FaceSession | None:
        return data


def register() -> None:
    """Make ``value_serializer="face-session"`` known to Faust (idempotent)."""
    codecs.register(NAME, SessionCodec())
