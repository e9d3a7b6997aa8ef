-- Publishing an event no longer rewrites its outbox row (issue 16). Marking a row sent was an
-- UPDATE of the whole row (payload included) that could never be HOT, because `sent_at` is in two
-- indexes: per run ≈ 17 such updates, a third of the database's WAL. Rows waiting to be published
-- are now listed in `outbox_pending` (an id each, filled by the insert trigger in the inserting
-- statement); the relay deletes what it published, and sets the bus position only on run requests.
--
-- Expand/contract: `sent_at` stays (a later release drops it) and defaults to +infinity, so a
-- relay of the previous release still running during an upgrade sees no new row as unsent (it
-- leaves them to the new relay, which reads `outbox_pending`) and its purge, which deletes rows
-- `sent_at < now() - retention`, never deletes one. Rows unsent at migration time are listed too:
-- an old relay may publish them before a new one does again (at least once, as always).

CREATE TABLE outbox_pending (
    id bigint PRIMARY KEY  -- outbox.id; no foreign key, so a purge never has to look here first
);
INSERT INTO outbox_pending (id) SELECT id FROM outbox WHERE sent_at IS NULL;

ALTER TABLE outbox ALTER COLUMN sent_at SET DEFAULT 'infinity';
DROP INDEX outbox_unsent;
DROP INDEX outbox_sent;
-- The purge finds rows past retention by their creation time (rows are written in time order,
-- so a block-range index is a few pages and costs writers next to nothing).
CREATE INDEX outbox_created ON outbox USING brin (created_at);

-- One trigger call per inserting statement: it lists the statement's rows as pending and wakes
-- the relay (notifications are merged per transaction by PostgreSQL).
CREATE OR REPLACE FUNCTION notify_outbox() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO outbox_pending (id) SELECT id FROM added;
    PERFORM pg_notify('agent_eval_outbox', '');
    RETURN NULL;
END
$$;
DROP TRIGGER outbox_notify ON outbox;
CREATE TRIGGER outbox_notify AFTER INSERT ON outbox REFERENCING NEW TABLE AS added
    FOR EACH STATEMENT EXECUTE FUNCTION notify_outbox();
