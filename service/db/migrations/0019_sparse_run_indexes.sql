-- Runs outside a suite and runs without labels are not entered in the suite, suite-run and label
-- indexes. Every update of a run that cannot be HOT (a status or queue change: ~8 per run) adds
-- an entry to each index that covers the row; a run triggered from a case had three entries per
-- update that no query can find (NULL suite ids, an empty label set: GIN's "empty item"), and the
-- GIN entries went to its pending list, merged later by the inserting backend. Queries filter
-- with `suite_id = $n`, `suite_run_id = $n` (which imply NOT NULL) and, for labels, add
-- `labels <> '{}'` beside `labels @> $n` (service/db/run_lists.py), so the planner can use them.
-- Built in this migration's transaction: writes to eval_runs wait while the three are built.
CREATE INDEX eval_runs_suite_sparse ON eval_runs (suite_id, id DESC) WHERE suite_id IS NOT NULL;
CREATE INDEX eval_runs_suite_run_sparse ON eval_runs (suite_run_id, position) WHERE suite_run_id IS NOT NULL;
CREATE INDEX eval_runs_labels_sparse ON eval_runs USING gin (labels jsonb_path_ops) WHERE labels <> '{}'::jsonb;
DROP INDEX eval_runs_suite;
DROP INDEX eval_runs_suite_run;
DROP INDEX eval_runs_labels;
ALTER INDEX eval_runs_suite_sparse RENAME TO eval_runs_suite;
ALTER INDEX eval_runs_suite_run_sparse RENAME TO eval_runs_suite_run;
ALTER INDEX eval_runs_labels_sparse RENAME TO eval_runs_labels;
