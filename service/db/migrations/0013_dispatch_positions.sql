-- Re-dispatch that tells a run request waiting in the topic from a lost one (issue 15): the relay
-- records where the bus put each row it publishes, and maintenance compares a pending run's last
-- request with the executors' committed offset before it writes another.

ALTER TABLE outbox
    ADD COLUMN published_partition integer CHECK (published_partition >= 0),
    ADD COLUMN published_offset    bigint CHECK (published_offset >= 0),
    ADD CONSTRAINT outbox_position_whole CHECK ((published_partition IS NULL) = (published_offset IS NULL));

-- A run's run requests, newest last: the stale-pending sweep reads the last one of each run.
CREATE INDEX outbox_run_requests ON outbox (run_id, id) WHERE type = 'agent_eval.run.requested';

-- A UUIDv7 made in the database (PostgreSQL 18 has uuidv7(), earlier releases do not), for the
-- events of a statement that chooses its rows itself (the run requests of runs it releases):
-- a random UUID with its first 48 bits replaced by the Unix time in milliseconds, version 7.
CREATE FUNCTION agent_eval_uuid7() RETURNS uuid
LANGUAGE sql VOLATILE PARALLEL SAFE AS $$
    SELECT encode(
        set_bit(set_bit(
            overlay(uuid_send(gen_random_uuid())
                    PLACING substring(int8send(floor(extract(epoch FROM clock_timestamp()) * 1000)::bigint) FROM 3)
                    FROM 1 FOR 6),
            52, 1), 53, 1),
        'hex')::uuid
$$;
