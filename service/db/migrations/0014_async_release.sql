-- The release of held runs commits without waiting for its WAL flush (issue 16). The company's
-- dispatch lock is held until the commit, so a flush wait inside it serialised every trigger and
-- every run ending of a company behind one disk flush each. Losing a release in a crash is safe:
-- the run is held again after recovery and the maintenance job releases it within seconds; a run
-- request published from a lost release finds the run not released and is not claimed (the
-- claim requires `released_at`); and any durable commit made after the release (the claim, the
-- relay's bookkeeping) flushes the WAL up to it, release included. Only the `release_held`
-- statement calls this function, always in a transaction of its own.

CREATE OR REPLACE FUNCTION release_held_runs(p_company_id uuid, p_cap integer) RETURNS SETOF uuid
LANGUAGE plpgsql AS $$
DECLARE
    v_free integer;
BEGIN
    PERFORM set_config('synchronous_commit', 'off', true);
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
