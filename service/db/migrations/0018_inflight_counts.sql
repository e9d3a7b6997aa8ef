-- How many of a company's runs are in flight (released and not yet ended), kept as two counts
-- instead of counted on every release (issue 16). The count visited every in-flight run's row
-- and the chain of versions its rounds leave behind: ~2 ms of server time per release at 500 in
-- flight, the most expensive statement of a run. In flight = entered - left.
--
-- Two rows per company, not one, so the two kinds of writer never wait on each other: a release
-- adds to `entered` under the company's dispatch lock (0014: committed without waiting for a
-- flush), and a run's end adds to `left`, which is held to its commit's flush like the
-- company row a charge locks. The triggers are deferred to the commit, so an ending transaction
-- takes the `left` row last and holds it only while it commits (an executor's ending batch takes
-- it once for all its runs). A reader may see `left` behind by ends that have not committed: it
-- then sees fewer free slots, never more, and each end hands its slot on after its commit.
--
-- The triggers fire on every change of a run's in-flight state (created released, released,
-- ended, deleted), so the counts equal the count they replace (`bench.chaos` checks it).

CREATE TABLE inflight_entered (
    company_id uuid PRIMARY KEY,
    runs       bigint NOT NULL
);

CREATE TABLE inflight_left (
    company_id uuid PRIMARY KEY,
    runs       bigint NOT NULL
);

CREATE FUNCTION count_inflight_change() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    v_row eval_runs%ROWTYPE;
BEGIN
    IF TG_OP = 'DELETE' THEN
        v_row := OLD;
    ELSE
        v_row := NEW;
    END IF;
    IF TG_OP <> 'DELETE' AND NEW.released_at IS NOT NULL AND NEW.status IN ('queued', 'running') THEN
        INSERT INTO inflight_entered AS c (company_id, runs) VALUES (v_row.company_id, 1)
        ON CONFLICT (company_id) DO UPDATE SET runs = c.runs + 1;
    ELSE
        INSERT INTO inflight_left AS c (company_id, runs) VALUES (v_row.company_id, 1)
        ON CONFLICT (company_id) DO UPDATE SET runs = c.runs + 1;
    END IF;
    RETURN NULL;
END
$$;

-- No writes to runs while the triggers are created and the counts taken: they start exact.
LOCK TABLE eval_runs IN SHARE ROW EXCLUSIVE MODE;

CREATE CONSTRAINT TRIGGER eval_runs_inflight_created AFTER INSERT ON eval_runs
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW
    WHEN (NEW.released_at IS NOT NULL AND NEW.status IN ('queued', 'running'))
    EXECUTE FUNCTION count_inflight_change();

CREATE CONSTRAINT TRIGGER eval_runs_inflight_changed AFTER UPDATE OF released_at, status ON eval_runs
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW
    WHEN ((OLD.released_at IS NOT NULL AND OLD.status IN ('queued', 'running'))
          IS DISTINCT FROM (NEW.released_at IS NOT NULL AND NEW.status IN ('queued', 'running')))
    EXECUTE FUNCTION count_inflight_change();

CREATE CONSTRAINT TRIGGER eval_runs_inflight_deleted AFTER DELETE ON eval_runs
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW
    WHEN (OLD.released_at IS NOT NULL AND OLD.status IN ('queued', 'running'))
    EXECUTE FUNCTION count_inflight_change();

INSERT INTO inflight_entered (company_id, runs)
SELECT company_id, count(*) FROM eval_runs
WHERE released_at IS NOT NULL AND status IN ('queued', 'running')
GROUP BY company_id;

CREATE OR REPLACE FUNCTION inflight_runs(p_company_id uuid) RETURNS bigint
LANGUAGE sql STABLE AS $$
    SELECT coalesce((SELECT runs FROM inflight_entered WHERE company_id = p_company_id), 0)
         - coalesce((SELECT runs FROM inflight_left WHERE company_id = p_company_id), 0)
$$;

-- 0014's function, reading the counts instead of counting the runs.
CREATE OR REPLACE FUNCTION release_held_runs(p_company_id uuid, p_cap integer) RETURNS SETOF uuid
LANGUAGE plpgsql AS $$
DECLARE
    v_free integer;
BEGIN
    PERFORM set_config('synchronous_commit', 'off', true);
    PERFORM pg_advisory_xact_lock(7301, hashtext(p_company_id::text));
    v_free := p_cap - inflight_runs(p_company_id);
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
