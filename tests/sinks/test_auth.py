"""API keys in a real PostgreSQL: scopes, tenants, expiry, last use, audit lines, and the upgrade
of keys made before scopes existed."""

from __future__ import annotations

import logging
from datetime import timedelta

import psycopg
import pytest

from sinks.gateway import auth
from sinks.store.db import connect, migrate, migrations


@pytest.fixture
def conn(database_url):
    with connect(database_url) as c:
        migrate(c)
        yield c


def test_a_key_carries_scopes_tenant_and_expiry(conn):
    secret, key = auth.create_key(conn, "kiosk", ("ingest", "read"), tenant="acme", expires_in=timedelta(days=2))
    assert key.scopes == ("ingest", "read") and key.tenant == "acme" and key.expires is not None
    assert key.last_used is None
    got = auth.verify_key(conn, f"Bearer {secret}")
    assert (got.key_id, got.scopes, got.tenant) == (key.key_id, ("ingest", "read"), "acme")
    (listed,) = auth.list_keys(conn)
    assert listed.last_used is not None  # verify_key recorded the use
    # The tenant defaults to the key's name; the scope to ingest only.
    _, plain = auth.create_key(conn, "edge-1")
    assert plain.tenant == "edge-1" and plain.scopes == ("ingest",) and plain.expires is None


def test_scopes_are_enforced_and_admin_covers_all(conn):
    _, reader = auth.create_key(conn, "dash", ("read",))
    _, admin = auth.create_key(conn, "ops", ("admin",))
    assert auth.require(reader, "read") is reader
    with pytest.raises(auth.AuthError) as refused:
        auth.require(reader, "ingest")
    assert refused.value.reason == "forbidden" and refused.value.status == 403
    assert "--scope ingest" in str(refused.value)
    for scope in auth.SCOPES:
        assert auth.require(admin, scope) is admin
    assert reader.sees == "dash" and admin.sees is None  # a tenant's sessions; admin: every tenant's


def test_a_follow_token_names_the_tenant_it_may_see():
    from infra.settings import Settings

    s = Settings()
    for tenant, claim in (("acme", {"ten": "acme"}), (None, {"all": True})):
        claims = auth.verify_token(s, auth.issue_token(s, "ns1", 60, session="sess-1", tenant=tenant), "ns1")
        assert claims["sess"] == "sess-1" and {k: claims[k] for k in claim} == claim
    # A follow token without a tenant (minted before tenants existed) is refused, not read as "all".
    import jwt

    old = jwt.encode({"ns": "ns1", "exp": 2**31, "sess": "sess-1"}, s.jwt_secret, algorithm="HS256")
    with pytest.raises(auth.AuthError, match="names no tenant") as refused:
        auth.verify_token(s, old, "ns1")
    assert refused.value.reason == "invalid"
    # A Mojo client's own token needs none.
    assert "ten" not in auth.verify_token(s, auth.issue_token(s, "ns1", 60), "ns1")


def test_expired_and_revoked_keys_are_refused_with_their_reason(conn):
    secret, key = auth.create_key(conn, "short", expires_in=timedelta(days=1))
    conn.execute("UPDATE api_keys SET expires = now() - interval '1 second' WHERE key_id = %s", (key.key_id,))
    conn.commit()
    with pytest.raises(auth.AuthError) as expired:
        auth.verify_key(conn, secret)
    assert expired.value.reason == "expired" and expired.value.status == 401
    secret2, key2 = auth.create_key(conn, "gone")
    assert auth.revoke_key(conn, key2.key_id) and not auth.revoke_key(conn, key2.key_id)
    with pytest.raises(auth.AuthError, match="revoked"):
        auth.verify_key(conn, secret2)


def test_bad_scopes_and_past_expiry_are_refused(conn):
    with pytest.raises(ValueError, match="ingest, read, admin"):
        auth.create_key(conn, "x", ("write",))
    with pytest.raises(ValueError, match="future"):
        auth.create_key(conn, "x", expires_in=timedelta(0))
    with pytest.raises(psycopg.errors.CheckViolation):  # the database holds the same rule
        with conn.transaction():
            conn.execute("INSERT INTO api_keys (key_id, name, key_hash, namespace, scopes, tenant) "
                         "VALUES ('k', 'n', 'h', 'ns', ARRAY['write'], 't')")


def test_creation_and_revocation_are_audited_without_the_secret(conn, caplog):
    with caplog.at_level(logging.INFO, logger="facestream.audit"):
        secret, key = auth.create_key(conn, "audited", ("read",), tenant="acme")
        auth.revoke_key(conn, key.key_id)
    lines = [r.getMessage() for r in caplog.records if r.name == "facestream.audit"]
    assert any(f"api key {key.key_id} created" in ln and "tenant acme" in ln and "scopes read" in ln for ln in lines)
    assert any(f"api key {key.key_id} revoked" in ln for ln in lines)
    assert not any(secret.split("_", 2)[2] in ln for ln in lines)


def test_keys_made_before_scopes_keep_what_they_could_do(database_url):
    with connect(database_url) as c:
        with c.transaction():
            c.execute("CREATE TABLE schema_migrations (version integer PRIMARY KEY, name text NOT NULL, "
                      "applied timestamptz NOT NULL DEFAULT now())")
            for version, name, sql in migrations():
                if version < 3:
                    c.execute(sql)
                    c.execute("INSERT INTO schema_migrations (version, name) VALUES (%s, %s)", (version, name))
            c.execute("INSERT INTO api_keys (key_id, name, key_hash, namespace) VALUES ('old1', 'old', %s, 'ns1')",
                      (auth._hash("s3cret"),))
        assert "003_key_scopes.sql" in migrate(c)
        key = auth.verify_key(c, "fsk_old1_s3cret")
    assert key.scopes == ("ingest", "read") and key.tenant == "ns1"
