-- API keys gain what access control needs: scopes (ingest: Mojo clients and edge producers;
-- read: dashboards, analytics, the image API; admin: keys and deletion), the tenant whose
-- sessions the key may see, an optional expiry, and when the key was last used. Keys made
-- before this keep what they could do: ingest and read, each in a tenant of its own.
ALTER TABLE api_keys
    ADD COLUMN scopes    text[] NOT NULL DEFAULT ARRAY['ingest']::text[],
    ADD COLUMN tenant    text,
    ADD COLUMN expires   timestamptz,
    ADD COLUMN last_used timestamptz;
UPDATE api_keys SET scopes = ARRAY['ingest', 'read']::text[], tenant = namespace;
ALTER TABLE api_keys ALTER COLUMN tenant SET NOT NULL;
ALTER TABLE api_keys ADD CONSTRAINT api_keys_scopes_known
    CHECK (scopes <@ ARRAY['ingest', 'read', 'admin']::text[] AND cardinality(scopes) > 0);
CREATE INDEX api_keys_tenant_idx ON api_keys (tenant);
