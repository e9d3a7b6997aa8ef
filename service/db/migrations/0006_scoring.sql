-- Scoring and billing: judge calls are priced on the run (they are not transcript rows), and the
-- finalisation sweep remembers when it last nudged a run so a stuck pipeline is not flooded.

ALTER TABLE eval_runs
    ADD COLUMN judge_cost_microcents   bigint NOT NULL DEFAULT 0 CHECK (judge_cost_microcents >= 0),
    ADD COLUMN judge_rate_card_version text,
    ADD COLUMN scored_at               timestamptz,
    ADD COLUMN last_swept_at           timestamptz;
