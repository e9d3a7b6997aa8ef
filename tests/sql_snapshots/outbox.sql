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

-- _MARK_SENT
WITH published AS (
    DELETE FROM outbox_pending AS pending
    USING unnest($1::bigint[], $2::int[], $3::bigint[]) AS p (id, part, pos)
    WHERE pending.id = p.id
    RETURNING p.id, p.part, p.pos
)
UPDATE outbox AS o SET published_partition = published.part, published_offset = published.pos
FROM published
WHERE o.id = published.id AND o.type = 'agent_eval.run.requested'

-- _PURGE_SENT
DELETE FROM outbox WHERE id IN (
    SELECT o.id FROM outbox AS o
    WHERE o.created_at < now() - make_interval(secs => $1)
      AND NOT EXISTS (SELECT 1 FROM outbox_pending AS p WHERE p.id = o.id)
    LIMIT $2)

-- _SELECT_RUN_EVENTS
SELECT payload::text FROM outbox WHERE run_id = $1 AND sequence > $2 ORDER BY sequence

-- _SELECT_RUN_EVENT_PAGE
SELECT sequence, type, payload::text AS payload FROM outbox
WHERE run_id = $1 AND sequence > $2 ORDER BY sequence LIMIT $3

-- _SELECT_UNSENT
SELECT o.id, o.event_id, o.topic, o.key, o.type, o.run_id, o.sequence, o.payload::text AS payload,
       o.traceparent, o.created_at
FROM outbox_pending AS p JOIN outbox AS o ON o.id = p.id ORDER BY p.id LIMIT $1

-- _UNSENT_STATS
SELECT count(*) AS n, min(o.created_at) AS oldest FROM outbox_pending AS p JOIN outbox AS o ON o.id = p.id
