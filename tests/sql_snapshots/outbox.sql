-- _APPEND_RUN_EVENTS
WITH run AS (
    UPDATE eval_runs SET last_event_seq = last_event_seq + cardinality($2::uuid[])
    WHERE id = $1
    RETURNING id, company_id, last_event_seq
)

INSERT INTO outbox (event_id, topic, key, type, company_id, run_id, sequence, payload, traceparent,
                    created_at)
SELECT e.event_id, e.topic, run.id::text, e.type, run.company_id, run.id, run.last_event_seq - cardinality($2::uuid[]) + e.ord,
       e.payload || jsonb_build_object('sequence', run.last_event_seq - cardinality($2::uuid[]) + e.ord, 'company_id', run.company_id), e.traceparent, e.created_at
FROM run, unnest($2::uuid[], $3::text[], $4::text[], $5::jsonb[], $6::text[],
                 $7::timestamptz[])
          WITH ORDINALITY AS e (event_id, topic, type, payload, traceparent, created_at, ord)

RETURNING company_id, sequence

-- _INSERT
INSERT INTO outbox (event_id, topic, key, type, company_id, run_id, sequence, payload, traceparent,
                    created_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)

-- _SELECT_RUN_EVENTS
SELECT payload::text FROM outbox WHERE run_id = $1 AND sequence > $2 ORDER BY sequence

-- _SELECT_RUN_EVENT_PAGE
SELECT sequence, type, payload::text AS payload FROM outbox
WHERE run_id = $1 AND sequence > $2 ORDER BY sequence LIMIT $3
