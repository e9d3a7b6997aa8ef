-- Releasing held runs (DESIGN.md §3 Dispatch) in one statement. The decision for a company must
-- be serialised (two releases must not both fill its last slot), so it takes the company's
-- dispatch lock; as a function called on its own (autocommit), the lock is held only while the
-- function runs inside the server, never across client round trips. Each statement below takes
-- a fresh snapshot after the lock is granted, so it sees every release committed before.
-- Returns the released run ids; the caller writes their run requests (a crash in between is
-- covered by the stale-pending sweep).

CREATE FUNCTION release_held_runs(p_company_id uuid, p_cap integer) RETURNS SETOF uuid
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
        WHERE s.company_id = p_company_id AND s.done_at IS NULL
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

-- Rows of runs change on every turn (the event sequence, the time owned); leave room on each
-- page so those updates stay in place (HOT) instead of touching every index of the table.
ALTER TABLE eval_runs SET (fillfactor = 80);
