-- The services may run as a role that cannot change the schema. The one DDL the sink needs at
-- run time, creating the day's partition of face_results, goes through this function, which runs
-- with its owner's rights and can create nothing else.
CREATE FUNCTION facestream_ensure_partition(day date) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public AS $$
BEGIN
    EXECUTE format('CREATE TABLE IF NOT EXISTS %I PARTITION OF face_results FOR VALUES FROM (%L) TO (%L)',
                   'face_results_' || to_char(day, 'YYYYMMDD'),
                   (day::timestamp AT TIME ZONE 'UTC'), ((day + 1)::timestamp AT TIME ZONE 'UTC'));
END
$$;
REVOKE ALL ON FUNCTION facestream_ensure_partition(date) FROM PUBLIC;
