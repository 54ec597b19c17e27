"""API keys (stored hashed in PostgreSQL) and the signed tokens Mojo clients connect with.

An API key reads ``fsk_<key_id>_<secret>``: ``key_id`` is public (listings, logs), the 32-byte
random ``secret`` is shown once at creation and only its SHA-256 is stored. A plain hash is
enough for a random 256-bit secret (nothing to brute-force), and lets a lookup by key_id be
checked in constant time.

A key has scopes (``SCOPES``: ``ingest`` for Mojo clients and edge producers, ``read`` for
dashboards, analytics and the image API, ``admin`` for keys and deletion, which implies the
others), belongs to a tenant (whose sessions it may see), may expire, and records when it was
last used. Creating and revoking a key writes an audit line (logger ``facestream.audit``).

Tokens are HS256 JWTs: ``ns`` (the key's Socket.IO namespace), ``exp``, ``iat`` and, for a
live subscription to an edge producer's session, ``sess`` with the tenant whose results it may
receive (``ten``, or ``all`` for an admin key).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

import jwt
import psycopg

from infra.settings import Settings

DEFAULT_SECRET = "facestream-development-secret-not-for-production"
PREFIX = "fsk"
SCOPES = ("ingest", "read", "admin")
audit = logging.getLogger("facestream.audit")


class AuthError(Exception):
    """A refused credential. ``reason`` is one of: missing, unknown_key, revoked, expired,
    invalid, wrong_namespace (all answered 401), forbidden (a valid key without the scope: 403)."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason

    @property
    def status(self) -> int:
        return 403 if self.reason == "forbidden" else 401


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
    created: datetime
    revoked: datetime | None
    scopes: tuple[str, ...] = ("ingest",)
    tenant: str = ""
    expires: datetime | None = None
    last_used: datetime | None = None

    def allows(self, scope: str) -> bool:
        """Whether this key may do what ``scope`` covers (admin covers every scope)."""
        return scope in self.scopes or "admin" in self.scopes

    @property
    def sees(self) -> str | None:
        """The tenant whose sessions this key may see; None: every tenant's (an admin key)."""
        return None if "admin" in self.scopes else self.tenant


_COLUMNS = "key_id, name, namespace, created, revoked, scopes, tenant, expires, last_used"


def _key(row: tuple) -> ApiKey:
    return ApiKey(*row[:5], tuple(row[5]), *row[6:9])


def create_key(conn: psycopg.Connection, name: str, scopes: Iterable[str] = ("ingest",), tenant: str | None = None,
               expires_in: timedelta | None = None) -> tuple[str, ApiKey]:
    """A new key: returns the full key string (shown once) and its record. ``tenant`` defaults to
    the key's name; ``expires_in`` None: the key does not expire."""
    scopes = tuple(dict.fromkeys(scopes))
    unknown = [sc for sc in scopes if sc not in SCOPES]
    if unknown or not scopes:
        raise ValueError(f"scopes must be some of {', '.join(SCOPES)}; got {', '.join(scopes) or 'none'}")
    if expires_in is not None and expires_in <= timedelta(0):
        raise ValueError(f"a key must expire in the future, not in {expires_in}")
    key_id, secret, namespace = secrets.token_hex(6), secrets.token_urlsafe(32), secrets.token_hex(16)
    expires = None if expires_in is None else datetime.now(timezone.utc) + expires_in
    with conn.transaction():
        row = conn.execute(
            "INSERT INTO api_keys (key_id, name, key_hash, namespace, scopes, tenant, expires) "
            f"VALUES (%s, %s, %s, %s, %s, %s, %s) RETURNING {_COLUMNS}",
            (key_id, name, _hash(secret), namespace, list(scopes), tenant or name, expires)).fetchone()
    key = _key(row)
    audit.info("api key %s created: name %s, tenant %s, scopes %s, expires %s", key.key_id, key.name, key.tenant,
               ",".join(key.scopes), key.expires.isoformat() if key.expires else "never")
    return f"{PREFIX}_{key_id}_{secret}", key


def list_keys(conn: psycopg.Connection) -> list[ApiKey]:
    return [_key(r) for r in conn.execute(f"SELECT {_COLUMNS} FROM api_keys ORDER BY created").fetchall()]


def revoke_key(conn: psycopg.Connection, key_id: str) -> bool:
    with conn.transaction():
        cur = conn.execute("UPDATE api_keys SET revoked = now() WHERE key_id = %s AND revoked IS NULL", (key_id,))
    if cur.rowcount == 1:
        audit.info("api key %s revoked", key_id)
    return cur.rowcount == 1


def _check_usable(row: tuple, expired: bool) -> None:
    """AuthError for a key row (``_COLUMNS``) that was revoked, or ``expired`` (the database's
    ``expires <= now()``)."""
    if row[4] is not None:
        raise AuthError("revoked", f"API key {row[0]} was revoked")
    if expired:
        raise AuthError("expired", f"API key {row[0]} expired at {row[7].isoformat()}")


def require(key: ApiKey, scope: str) -> ApiKey:
    """``key`` if it carries ``scope``; AuthError("forbidden") (403) otherwise."""
    if not key.allows(scope):
        raise AuthError("forbidden", f"API key {key.key_id} lacks the {scope!r} scope (it has "
                                     f"{', '.join(key.scopes)}); create one with `facestream keys create "
                                     f"--scope {scope}`")
    return key


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
    row = conn.execute(f"SELECT {_COLUMNS}, key_hash, expires <= now() FROM api_keys WHERE key_id = %s",
                       (parts[1],)).fetchone()
    # Compare even when the id is unknown, so timing does not reveal which ids exist.
    stored = row[9] if row else _hash("")
    if not hmac.compare_digest(stored, _hash(parts[2])) or row is None:
        raise AuthError("unknown_key", "unknown API key")
    _check_usable(row[:9], expired=row[10])
    # Last use to the minute: one write per key and minute, not one per request.
    with conn.transaction():
        conn.execute("UPDATE api_keys SET last_used = now() WHERE key_id = %s "
                     "AND (last_used IS NULL OR last_used < now() - interval '1 minute')", (row[0],))
    return _key(row[:9])


def key_by_id(conn: psycopg.Connection, key_id: str) -> ApiKey:
    """The key ``key_id`` if it is still usable (a dashboard session names its key: revoking the
    key ends the session); AuthError saying why not otherwise."""
    row = conn.execute(f"SELECT {_COLUMNS}, expires <= now() FROM api_keys WHERE key_id = %s", (key_id,)).fetchone()
    if row is None:
        raise AuthError("unknown_key", "unknown API key")
    _check_usable(row[:9], expired=row[9])
    return _key(row[:9])


DASHBOARD_COOKIE = "facestream_session"


def issue_dashboard_session(s: Settings, key: ApiKey, lifetime_s: float, now: float | None = None) -> str:
    """The dashboard's session cookie value: a signed token naming the key (never the key itself)."""
    now = time.time() if now is None else now
    return jwt.encode({"kid": key.key_id, "typ": "dashboard", "iat": int(now), "exp": int(now + lifetime_s)},
                      s.jwt_secret, algorithm="HS256")


def dashboard_key_id(s: Settings, cookie: str | None) -> str:
    """The key id a dashboard session cookie names; AuthError when it is missing, forged or old."""
    if not cookie:
        raise AuthError("missing", "no API key and no dashboard session: send a key with the read scope in "
                                   "the Authorization header, or sign in at /dashboard/login")
    try:
        claims = jwt.decode(cookie, s.jwt_secret, algorithms=["HS256"], options={"require": ["exp", "kid", "typ"]})
    except jwt.ExpiredSignatureError:
        raise AuthError("expired", "the dashboard session expired: sign in again at /dashboard/login") from None
    except jwt.InvalidTokenError as exc:
        raise AuthError("invalid", f"invalid dashboard session ({exc}): sign in again") from None
    if claims["typ"] != "dashboard":
        raise AuthError("invalid", "not a dashboard session: sign in at /dashboard/login")
    return str(claims["kid"])


def issue_token(s: Settings, namespace: str, expiration_s: float, session: str | None = None,
                now: float | None = None, tenant: str | None = None) -> str:
    """A Mojo client's token; with ``session``, a token that follows that session's results as
    ``tenant`` sees them (None: every tenant, for an admin key)."""
    now = time.time() if now is None else now
    claims: dict[str, object] = {"ns": namespace, "iat": int(now), "exp": int(now + expiration_s)}
    if session:
        claims["sess"] = session
        claims.update({"ten": tenant} if tenant is not None else {"all": True})
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
    if "sess" in claims and not isinstance(claims.get("ten"), str) and claims.get("all") is not True:
        raise AuthError("invalid", "this token follows a session but names no tenant (it predates tenants): "
                                   "ask PUT /mojo_perception_api/user for a new one")
    return claims
