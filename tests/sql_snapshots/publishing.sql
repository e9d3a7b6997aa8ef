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

-- _SELECT_UNSENT
SELECT o.id, o.event_id, o.topic, o.key, o.type, o.run_id, o.sequence, o.payload::text AS payload,
       o.traceparent, o.created_at
FROM (SELECT id FROM outbox_pending ORDER BY id LIMIT $1) AS p
CROSS JOIN LATERAL (SELECT * FROM outbox WHERE outbox.id = p.id LIMIT 1) AS o
ORDER BY p.id

-- _SET_SLEEPING
UPDATE relay_state SET sleeping = $1

-- _UNSENT_STATS
SELECT count(*) AS n, min(o.created_at) AS oldest FROM outbox_pending AS p
CROSS JOIN LATERAL (SELECT created_at FROM outbox WHERE outbox.id = p.id LIMIT 1) AS o
