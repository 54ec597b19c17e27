-- Tenants own devices, and a key sees only its tenant's sessions. A Mojo client's frames carry
-- its key's namespace as their device id, so those devices belong to the key's tenant by
-- construction; an edge device (which publishes to Kafka without a key) is assigned to a tenant
-- here (`facestream devices assign`). A device nobody owns is seen by admin keys only.
CREATE TABLE device_tenants (
    device_id   text PRIMARY KEY,
    tenant      text NOT NULL,
    assigned    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX device_tenants_tenant_idx ON device_tenants (tenant);

CREATE VIEW device_owners AS
SELECT namespace AS device_id, tenant, 'key' AS via FROM api_keys
UNION ALL
SELECT device_id, tenant, 'assigned' AS via FROM device_tenants;

-- Retention: drop the days of face_results that ended more than `keep_days` ago, and the
-- sessions and summaries that ended before them. Runs with its owner's rights (the services'
-- role cannot drop tables or delete rows) and can drop nothing but face_results' day partitions.
-- Returns the dropped partitions' names.
CREATE FUNCTION facestream_apply_retention(keep_days integer) RETURNS SETOF text
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public AS $$
DECLARE
    cutoff timestamptz;
    part   text;
BEGIN
    IF keep_days IS NULL OR keep_days < 1 THEN
        RAISE EXCEPTION 'keep_days must be at least 1, not %', keep_days;
    END IF;
    -- Whole UTC days only: a partition [D, D+1) goes once D+1 <= the cutoff day.
    cutoff := ((now() AT TIME ZONE 'UTC')::date - keep_days)::timestamp AT TIME ZONE 'UTC';
    FOR part IN
        SELECT c.relname FROM pg_inherits i
        JOIN pg_class c ON c.oid = i.inhrelid
        JOIN pg_class p ON p.oid = i.inhparent
        WHERE p.relname = 'face_results' AND c.relname ~ '^face_results_[0-9]{8}$'
          AND (to_date(substring(c.relname FROM 14), 'YYYYMMDD')::timestamp AT TIME ZONE 'UTC')
              + interval '1 day' <= cutoff
        ORDER BY c.relname
    LOOP
        EXECUTE format('DROP TABLE %I', part);
        RETURN NEXT part;
    END LOOP;
    DELETE FROM session_summaries WHERE ended < cutoff;
    DELETE FROM sessions WHERE last_capture < cutoff;
END
$$;
REVOKE ALL ON FUNCTION facestream_apply_retention(integer) FROM PUBLIC;
