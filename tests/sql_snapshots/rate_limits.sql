-- _COUNT
INSERT INTO rate_limit_windows (api_key_id, window_start, n)
SELECT $1, $2, 1 FROM (SELECT set_config('synchronous_commit', 'off', true)) AS async_commit
ON CONFLICT (api_key_id, window_start) DO UPDATE SET n = rate_limit_windows.n + 1
RETURNING n

-- _PURGE
DELETE FROM rate_limit_windows WHERE window_start < $1
