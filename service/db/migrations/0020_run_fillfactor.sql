-- Half of every new eval_runs page is left free (it was a fifth). A run's row is ~2 kB (its config
-- snapshot, stored inline up to PostgreSQL's 2 kB TOAST threshold and compressed above it) and is
-- updated ~14 times in the minute it is live; the updates that change no indexed column (the event
-- sequence, the time owned, the scores) stay on the row's page (HOT: no index entries) only while
-- that page has room for another version. With a fifth free, three ~2 kB rows filled a page and
-- 5 of a run's 9 non-HOT updates moved it to a new page only for lack of room, adding an entry to
-- each of the table's indexes; with half free they stay (measured at c=500: 4.5 → 7.0–7.3 HOT
-- updates per run, WAL per run 52 → 45 KiB). The price is disk: new pages hold half as many runs.
-- Only pages written from now on are affected; the setting takes no lock that blocks writers.
ALTER TABLE eval_runs SET (fillfactor = 50);
