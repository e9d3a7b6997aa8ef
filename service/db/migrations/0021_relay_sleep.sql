-- Writers wake the relay only while it sleeps (issue 16). A NOTIFY takes a database-wide lock at
-- commit and holds it until the commit's WAL flush, so every durable transaction that appends
-- to the outbox queued behind every other one's flush: under load two backends on average waited
-- on it, and a release held its company's dispatch lock through that wait. A relay that is busy
-- polls every 20 ms anyway and never needs the wake-up.
--
-- `relay_state.sleeping` says whether the active relay waits on LISTEN (true) or polls (false).
-- The insert trigger notifies unless it reads false. It starts true, and a relay of the previous
-- release (which never writes it) keeps being woken as before. The active relay writes true when
-- it takes the lead and after its polls have found nothing for a while, then polls once more
-- (rows of writers that still read false), and writes false when it finds rows again.

CREATE TABLE relay_state (
    id       boolean PRIMARY KEY DEFAULT true CHECK (id),  -- one row
    sleeping boolean NOT NULL
);
INSERT INTO relay_state (id, sleeping) VALUES (true, true);

CREATE OR REPLACE FUNCTION notify_outbox() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO outbox_pending (id) SELECT id FROM added;
    IF (SELECT sleeping FROM relay_state) IS NOT FALSE THEN
        PERFORM pg_notify('agent_eval_outbox', '');
    END IF;
    RETURN NULL;
END
$$;
