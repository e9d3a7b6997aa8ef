-- Suite runs that run (issue 11): iterations, the count of finished runs (which orders their
-- ends and decides, under the suite run's row lock, which end is the last), re-runs, cancels.

ALTER TABLE suite_runs
    ADD COLUMN iterations          integer NOT NULL DEFAULT 1 CHECK (iterations BETWEEN 1 AND 50),
    ADD COLUMN done_runs           integer NOT NULL DEFAULT 0 CHECK (done_runs >= 0),
    ADD COLUMN rerun_of            uuid REFERENCES suite_runs (id),
    ADD COLUMN cancel_requested_at timestamptz,
    ADD CONSTRAINT suite_runs_done_within_total CHECK (done_runs <= total_runs);

ALTER TABLE eval_runs
    ADD COLUMN iteration integer CHECK (iteration >= 1),
    -- The order in which the suite run's runs became done (1 = first): SSE ids of a suite stream.
    ADD COLUMN suite_seq integer CHECK (suite_seq >= 1);
CREATE UNIQUE INDEX eval_runs_suite_seq ON eval_runs (suite_run_id, suite_seq) WHERE suite_seq IS NOT NULL;

-- A suite run being cancelled releases nothing more: its held runs are cancelled where they are
-- (the one change from 0009 is `cancel_requested_at IS NULL`).
CREATE OR REPLACE FUNCTION release_held_runs(p_company_id uuid, p_cap integer) RETURNS SETOF uuid
LANGUAGE plpgsql AS $$
DECLARE
    v_free integer;
BEGIN
    PERFORM pg_advisory_xact_lock(7301, hashtext(p_company_id::text));
    SELECT p_cap - count(*) INTO v_free FROM eval_runs
    WHERE company_id = p_company_id AND released_at IS NOT NULL AND status IN ('queued', 'running');
    IF v_free <= 0 THEN
        RETURN;
    END IF;
    RETURN QUERY
    WITH held AS (
        SELECT id, suite_run_id,
               row_number() OVER (PARTITION BY suite_run_id ORDER BY position, id) AS rank
        FROM eval_runs
        WHERE company_id = p_company_id AND released_at IS NULL AND status = 'queued'
    ), room AS (
        SELECT s.id, s.parallelism - count(r.id) FILTER (
                   WHERE r.released_at IS NOT NULL AND r.status IN ('queued', 'running')) AS free
        FROM suite_runs s JOIN eval_runs r ON r.suite_run_id = s.id
        WHERE s.company_id = p_company_id AND s.done_at IS NULL AND s.cancel_requested_at IS NULL
        GROUP BY s.id
    ), chosen AS (
        SELECT held.id FROM held LEFT JOIN room ON room.id = held.suite_run_id
        WHERE held.suite_run_id IS NULL OR held.rank <= room.free
        ORDER BY held.id
        LIMIT v_free
    )
    UPDATE eval_runs AS r SET released_at = now(), dispatched_at = now(), updated_at = now()
    FROM chosen
    WHERE r.id = chosen.id AND r.released_at IS NULL AND r.status = 'queued'
    RETURNING r.id;
END
$$;
