-- _INSERT_TURN
INSERT INTO eval_run_turns (id, run_id, turn_number, role, text, tool_calls, tool_result, flow_event, model,
                            input_tokens, output_tokens, cost_microcents, rate_card_version, latency_ms,
                            attempt)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)
RETURNING id, run_id, turn_number, role, text, tool_calls, tool_result, flow_event, model, input_tokens, output_tokens, cost_microcents, rate_card_version, latency_ms, attempt, created_at

-- _INSERT_TURNS
INSERT INTO eval_run_turns (id, run_id, turn_number, role, text, tool_calls, tool_result, flow_event, model,
                            input_tokens, output_tokens, cost_microcents, rate_card_version, latency_ms,
                            attempt, created_at)
SELECT id, run_id, turn_number, role, text, tool_calls::jsonb, tool_result::jsonb, flow_event::jsonb, model,
       input_tokens, output_tokens, cost_microcents, rate_card_version, latency_ms, attempt, created_at
FROM unnest($1::uuid[], $2::uuid[], $3::int[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[],
            $9::text[], $10::int[], $11::int[], $12::bigint[], $13::text[], $14::int[], $15::int[],
            $16::timestamptz[])
     AS t (id, run_id, turn_number, role, text, tool_calls, tool_result, flow_event, model, input_tokens,
           output_tokens, cost_microcents, rate_card_version, latency_ms, attempt, created_at)

-- _SELECT_TURNS
SELECT id, run_id, turn_number, role, text, tool_calls, tool_result, flow_event, model, input_tokens, output_tokens, cost_microcents, rate_card_version, latency_ms, attempt, created_at FROM eval_run_turns WHERE run_id = $1 ORDER BY turn_number

-- _USAGE_OF_RUNS
SELECT run_id, CASE WHEN role = 'flow_event' THEN 'agent' ELSE role END AS role,
       sum(input_tokens)::bigint AS input_tokens, sum(output_tokens)::bigint AS output_tokens,
       sum(cost_microcents)::bigint AS cost_microcents
FROM eval_run_turns WHERE run_id = ANY($1::uuid[]) GROUP BY 1, 2
