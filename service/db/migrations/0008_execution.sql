-- Execution (DESIGN.md §3): when a run request was last written, so sweeps re-dispatch a stuck
-- run only every so often; how long executors have owned the run (the wall-clock budget counts
-- only that); and how many claims ended in a graceful hand-back (a restarting executor is not a
-- lost one, so those claims do not count against the attempt cap).

ALTER TABLE eval_runs
    ADD COLUMN dispatched_at timestamptz,
    ADD COLUMN active_ms     bigint NOT NULL DEFAULT 0 CHECK (active_ms >= 0),
    ADD COLUMN handed_back   integer NOT NULL DEFAULT 0 CHECK (handed_back >= 0);

-- Lease extension and hand-back touch the runs one executor holds.
CREATE INDEX eval_runs_claimed_by ON eval_runs (claimed_by) WHERE queue_status = 'claimed' AND status = 'running';
-- Lists filtered by status, newest first.
CREATE INDEX eval_runs_company_status ON eval_runs (company_id, status, id DESC);
