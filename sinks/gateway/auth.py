"""API keys (stored hashed in PostgreSQL) and the signed tokens Mojo clients connect with.

An API key reads ``fsk_<key_id>_<secret>``: ``key_id`` is public (listings, logs), the 32-byte
random ``secret`` is shown once at creation and only its SHA-256 is stored. A plain hash is
enough for a random 256-bit secret (nothing to brute-force), and lets a lookup by key_id be
checked in constant time.

Tokens are HS256 JWTs: ``ns`` (the key's Socket.IO namespace), ``exp``, ``iat`` and, for a
live subscription to an edge producer's session, ``sess``.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass

import jwt
import psycopg

from infra.settings import Settings

DEFAULT_SECRET = "facestream-development-secret-not-for-production"
PREFIX = "fsk"


class AuthError(Exception):
    """A refused credential. ``reason`` is one of: missing, unknown_key, revoked, expired,
    invalid, wrong_namespace."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


def check_secret(s: Settings) -> None:
    """Refuse to run outside development with the well-known default secret."""
    if s.environment != "development" and (s.jwt_secret == DEFAULT_SECRET or len(s.jwt_secret) < 32):
        raise RuntimeError(
            "FACESTREAM_JWT_SECRET is the development default or shorter than 32 characters while "
            f"FACESTREAM_ENVIRONMENT={s.environment}: set a long random secret, e.g. "
            "`python -c 'import secrets; print(secrets.token_urlsafe(48))'`.")


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


@dataclass(frozen=True)
class ApiKey:
    key_id: str
    name: str
    namespace: str
    created: object
    revoked: object | None


def create_key(conn: psycopg.Connection, name: str) -> tuple[str, ApiKey]:
    """A new key: returns the full key string (shown once) and its record."""
    key_id, secret, namespace = secrets.token_hex(6), secrets.token_urlsafe(32), secrets.token_hex(16)
    with conn.transaction():
        row = conn.execute(
            "INSERT INTO api_keys (key_id, name, key_hash, namespace) VALUES (%s, %s, %s, %s) "
            "RETURNING key_id, name, namespace, created, revoked",
            (key_id, name, _hash(secret), namespace)).fetchone()
    return f"{PREFIX}_{key_id}_{secret}", ApiKey(*row)


def list_keys(conn: psycopg.Connection) -> list[ApiKey]:
    rows = conn.execute("SELECT key_id, name, namespace, created, revoked FROM api_keys ORDER BY created").fetchall()
    return [ApiKey(*r) for r in rows]


def revoke_key(conn: psycopg.Connection, key_id: str) -> bool:
    with conn.transaction():
        cur = conn.execute("UPDATE api_keys SET revoked = now() WHERE key_id = %s AND revoked IS NULL", (key_id,))
    return cur.rowcount == 1


def verify_key(conn: psycopg.Connection, presented: str | None) -> ApiKey:
    """The key record for an ``Authorization`` header value (``fsk_...``, optionally 'Bearer ')."""
    if not presented:
        raise AuthError("missing", "no API key: send it in the Authorization header")
    value = presented.strip()
    if value.lower().startswith("bearer "):
        value = value[7:].strip()
    parts = value.split("_", 2)
    if len(parts) != 3 or parts[0] != PREFIX:
        raise AuthError("unknown_key", "not a facestream API key (expected fsk_<id>_<secret>)")
    row = conn.execute("SELECT key_id, name, namespace, created, revoked, key_hash FROM api_keys "
                       "WHERE key_id = %s", (parts[1],)).fetchone()
    # Compare even when the id is unknown, so timing does not reveal which ids exist.
    stored = row[5] if row else _hash("")
    if not hmac.compare_digest(stored, _hash(parts[2])) or row is None:
        raise AuthError("unknown_key", "unknown API key")
    if row[4] is not None:
        raise AuthError("revoked", f"API key {row[0]} was revoked")
    return ApiKey(*row[:5])


def issue_token(s: Settings, namespace: str, expiration_s: float, session: str | None = None,
                now: float | None = None) -> str:
    now = time.time() if now is None else now
    claims: dict[str, object] = {"ns": namespace, "iat": int(now), "exp": int(now + expiration_s)}
    if session:
        claims["sess"] = session
    return jwt.encode(claims, s.jwt_secret, algorithm="HS256")


def verify_token(s: Settings, token: str | None, namespace: str) -> dict:
    """The token's claims if it is valid for ``namespace``; AuthError saying why not otherwise."""
    if not token:
        raise AuthError("missing", "no token: connect with auth={'token': <auth_token>}")
    try:
        claims = jwt.decode(token, s.jwt_secret, algorithms=["HS256"], options={"require": ["exp", "ns"]})
    except jwt.ExpiredSignatureError:
        raise AuthError("expired", "JsonWebTokenError: token expired; ask PUT /mojo_perception_api/user "
                                   "for a new one") from None
    except jwt.InvalidTokenError as exc:
        raise AuthError("invalid", f"JsonWebTokenError: invalid token ({exc})") from None
    if claims["ns"] != namespace:
        raise AuthError("wrong_namespace", f"this token is for namespace /{claims['ns']}, not /{namespace}")
    return claims
