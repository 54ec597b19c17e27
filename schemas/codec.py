"""Avro encoding with a small header that names the record kind and schema version.

Wire format (all messages on facestream topics)::

    byte 0      0xFA        magic: "a facestream record follows"
    byte 1      kind        1 LandmarkFrame, 2 FaceResult, 3 SessionSummary
    bytes 2-3   version     schema version, unsigned big-endian
    bytes 4-    Avro binary body written with ``<kind>.v<version>.avsc``

Readers decode any known version into the newest schema of its kind (Avro schema
resolution), so writers can move to a new version while old messages remain readable.
"""

from __future__ import annotations

import io
import json
import struct
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import fastavro
from fastavro.types import Schema

from schemas.errors import (
    BadHeader,
    CorruptBody,
    EmptyPayload,
    InvalidRecord,
    UnknownRecordKind,
    UnknownSchemaVersion,
)

MAGIC = 0xFA
HEADER = struct.Struct(">BBH")
SCHEMA_DIR = Path(__file__).parent


@dataclass(frozen=True)
class RecordKind:
    code: int
    name: str  # file stem, e.g. "landmark_frame"
    directory: Path = SCHEMA_DIR

    @cached_property
    def versions(self) -> dict[int, Schema]:
        """Every schema version shipped for this kind, parsed."""
        out: dict[int, Schema] = {}
        for path in self.directory.glob(f"{self.name}.v*.avsc"):
            version = int(path.stem.rsplit(".v", 1)[1])
            out[version] = fastavro.parse_schema(json.loads(path.read_text()))
        if not out:
            raise RuntimeError(f"no schema files {self.name}.v*.avsc in {self.directory}")
        return out

    @property
    def latest(self) -> int:
        return max(self.versions)


LANDMARK_FRAME = RecordKind(1, "landmark_frame")
FACE_RESULT = RecordKind(2, "face_result")
SESSION_SUMMARY = RecordKind(3, "session_summary")
KINDS = {k.code: k for k in (LANDMARK_FRAME, FACE_RESULT, SESSION_SUMMARY)}


def encode(kind: RecordKind, record: dict[str, Any], version: int | None = None) -> bytes:
    """Avro-encode ``record`` with the given (default: newest) schema version of ``kind``."""
    version = kind.latest if version is None else version
    try:
        schema = kind.versions[version]
    except KeyError:
        raise UnknownSchemaVersion(f"{kind.name} has no schema version {version}") from None
    buf = io.BytesIO()
    buf.write(HEADER.pack(MAGIC, kind.code, version))
    try:
        fastavro.schemaless_writer(buf, schema, record)
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        raise InvalidRecord(f"cannot encode {kind.name} v{version}: {exc}") from exc
    return buf.getvalue()


def peek_header(payload: bytes, kinds: dict[int, RecordKind] = KINDS) -> tuple[RecordKind, int]:
    """The kind and schema version a payload declares; raises a PayloadError if unusable."""
    if not payload:
        raise EmptyPayload("empty message: expected a facestream Avro record")
    if len(payload) < HEADER.size:
        raise BadHeader(f"message of {len(payload)} bytes is shorter than the 4-byte header")
    magic, code, version = HEADER.unpack_from(payload)
    if magic != MAGIC:
        raise BadHeader(
            f"first byte is 0x{magic:02x}, expected 0x{MAGIC:02x}: not a facestream record "
            "(was it written by another producer or with another serializer?)"
        )
    kind = kinds.get(code)
    if kind is None:
        raise UnknownRecordKind(f"record kind {code} is unknown; known: {sorted(kinds)}")
    if version not in kind.versions:
        raise UnknownSchemaVersion(
            f"{kind.name} schema version {version} is unknown to this reader (knows "
            f"{sorted(kind.versions)}); upgrade facestream to read it"
        )
    return kind, version


def decode(payload: bytes, expect: RecordKind | None = None) -> dict[str, Any]:
    """Decode a payload into a dict in the newest schema of its kind."""
    kind, version = peek_header(payload, KINDS if expect is None else {**KINDS, expect.code: expect})
    if expect is not None and kind != expect:
        raise UnknownRecordKind(f"expected a {expect.name} record, got a {kind.name}")
    buf = io.BytesIO(payload)
    buf.seek(HEADER.size)
    try:
        record = fastavro.schemaless_reader(buf, kind.versions[version], kind.versions[kind.latest])
    except (EOFError, ValueError, TypeError, IndexError, KeyError, OverflowError, UnicodeDecodeError,
            MemoryError) as exc:
        raise CorruptBody(f"{kind.name} v{version} body does not decode: {type(exc).__name__}: {exc}") from exc
    if buf.tell() != len(payload):
        raise CorruptBody(
            f"{kind.name} v{version} body has {len(payload) - buf.tell()} trailing bytes: "
            "truncated or concatenated messages?"
        )
    return record
