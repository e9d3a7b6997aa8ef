-- _TRY_LOCK
SELECT pg_try_advisory_lock($1)

-- _UNLOCK
SELECT pg_advisory_unlock($1)
