-- _ROUNDS
WITH input AS (
    SELECT * FROM unnest($1::uuid[], $2::text[], $3::int[], $4::int[], $5::int[])
        AS i (run_id, executor, attempt, active_ms, events)
), locked AS MATERIALIZED (
    SELECT r.id FROM input AS i
    CROSS JOIN LATERAL (
        SELECT id FROM eval_runs
        WHERE id = i.run_id AND claimed_by = i.executor AND attempt = i.attempt
          AND status = 'running' 
        LIMIT 1 FOR NO KEY UPDATE
    ) AS r
), run AS (
    UPDATE eval_runs AS r
    SET active_ms = greatest(r.active_ms, i.active_ms), last_event_seq = r.last_event_seq + i.events,
        updated_at = now()
    FROM input AS i, locked AS l
    WHERE r.id = i.run_id AND l.id = r.id  -- locked under the fence in this statement: it still holds
    RETURNING r.id, r.company_id, r.last_event_seq, i.events, r.cancel_requested_at
), written AS (
    INSERT INTO eval_run_turns (id, run_id, turn_number, role, text, tool_calls, tool_result,
                                flow_event, model, input_tokens, output_tokens, cost_microcents,
                                rate_card_version, latency_ms, attempt, created_at)
    SELECT t.id, t.run_id, t.turn_number, t.role, t.text, t.tool_calls::jsonb, t.tool_result::jsonb,
           t.flow_event::jsonb, t.model, t.input_tokens, t.output_tokens, t.cost_microcents,
           t.rate_card_version, t.latency_ms, t.attempt, t.created_at
    FROM unnest($14::uuid[], $15::uuid[], $16::int[], $17::text[], $18::text[], $19::text[], $20::text[], $21::text[], $22::text[], $23::int[], $24::int[], $25::bigint[], $26::text[], $27::int[], $28::int[], $29::timestamptz[])
         AS t (id, run_id, turn_number, role, text, tool_calls, tool_result, flow_event, model, input_tokens,
               output_tokens, cost_microcents, rate_card_version, latency_ms, attempt, created_at)
    WHERE t.run_id IN (SELECT id FROM run)
), events AS (
    INSERT INTO outbox (event_id, topic, key, type, company_id, run_id, sequence, payload, traceparent,
                        created_at)
    SELECT e.event_id, e.topic, run.id::text, e.type, run.company_id, run.id,
           run.last_event_seq - run.events + e.ord,
           e.payload || jsonb_build_object('sequence', run.last_event_seq - run.events + e.ord,
                                           'company_id', run.company_id),
           e.traceparent, e.created_at
    FROM unnest($6::uuid[], $7::int[], $8::uuid[], $9::text[], $10::text[], $11::jsonb[], $12::text[],
                $13::timestamptz[])
         AS e (run_id, ord, event_id, topic, type, payload, traceparent, created_at)
    JOIN run ON run.id = e.run_id
)
SELECT id, company_id, cancel_requested_at IS NOT NULL AS cancel_requested FROM run

-- _ROUNDS_UNLESS_CANCELLED
WITH input AS (
    SELECT * FROM unnest($1::uuid[], $2::text[], $3::int[], $4::int[], $5::int[])
        AS i (run_id, executor, attempt, active_ms, events)
), locked AS MATERIALIZED (
    SELECT r.id FROM input AS i
    CROSS JOIN LATERAL (
        SELECT id FROM eval_runs
        WHERE id = i.run_id AND claimed_by = i.executor AND attempt = i.attempt
          AND status = 'running' AND cancel_requested_at IS NULL
        LIMIT 1 FOR NO KEY UPDATE
    ) AS r
), run AS (
    UPDATE eval_runs AS r
    SET active_ms = greatest(r.active_ms, i.active_ms), last_event_seq = r.last_event_seq + i.events,
        updated_at = now()
    FROM input AS i, locked AS l
    WHERE r.id = i.run_id AND l.id = r.id  -- locked under the fence in this statement: it still holds
    RETURNING r.id, r.company_id, r.last_event_seq, i.events, r.cancel_requested_at
), written AS (
    INSERT INTO eval_run_turns (id, run_id, turn_number, role, text, tool_calls, tool_result,
                                flow_event, model, input_tokens, output_tokens, cost_microcents,
                                rate_card_version, latency_ms, attempt, created_at)
    SELECT t.id, t.run_id, t.turn_number, t.role, t.text, t.tool_calls::jsonb, t.tool_result::jsonb,
           t.flow_event::jsonb, t.model, t.input_tokens, t.output_tokens, t.cost_microcents,
           t.rate_card_version, t.latency_ms, t.attempt, t.created_at
    FROM unnest($14::uuid[], $15::uuid[], $16::int[], $17::text[], $18::text[], $19::text[], $20::text[], $21::text[], $22::text[], $23::int[], $24::int[], $25::bigint[], $26::text[], $27::int[], $28::int[], $29::timestamptz[])
         AS t (id, run_id, turn_number, role, text, tool_calls, tool_result, flow_event, model, input_tokens,
               output_tokens, cost_microcents, rate_card_version, latency_ms, attempt, created_at)
    WHERE t.run_id IN (SELECT id FROM run)
), events AS (
    INSERT INTO outbox (event_id, topic, key, type, company_id, run_id, sequence, payload, traceparent,
                        created_at)
    SELECT e.event_id, e.topic, run.id::text, e.type, run.company_id, run.id,
           run.last_event_seq - run.events + e.ord,
           e.payload || jsonb_build_object('sequence', run.last_event_seq - run.events + e.ord,
                                           'company_id', run.company_id),
           e.traceparent, e.created_at
    FROM unnest($6::uuid[], $7::int[], $8::uuid[], $9::text[], $10::text[], $11::jsonb[], $12::text[],
                $13::timestamptz[])
         AS e (run_id, ord, event_id, topic, type, payload, traceparent, created_at)
    JOIN run ON run.id = e.run_id
)
SELECT id, company_id, cancel_requested_at IS NOT NULL AS cancel_requested FROM run
