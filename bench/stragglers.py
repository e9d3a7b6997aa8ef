"""The slowest runs of a benchmark, told from the event store: what happened to each and when.

A run that waited for a timeout shows it here: a second `run.requested` written by maintenance
30 s after the first, or a second `run.started` (a re-claim after a lease expired). Times are
commit times relative to the run's creation; `unsent` marks a row the relay has not published.
Also counts run requests per run, so duplicate dispatch is visible at a glance.
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime

import asyncpg

SLOWEST = """
SELECT id, claimed_by, attempt, handed_back, created_at, done_at,
       extract(epoch FROM done_at - created_at) AS seconds
FROM eval_runs WHERE created_at >= $1 AND done_at IS NOT NULL
ORDER BY done_at - created_at DESC LIMIT $2
"""
TIMELINE = """
SELECT type, sequence, extract(epoch FROM created_at - $2) AS at_s,
       EXISTS (SELECT 1 FROM outbox_pending AS p WHERE p.id = outbox.id) AS unsent
FROM outbox WHERE run_id = $1 AND type <> 'agent_eval.run.turn' ORDER BY created_at, id
"""
REQUESTS_PER_RUN = """
SELECT count(*) AS n FROM outbox o JOIN eval_runs r ON r.id = o.run_id
WHERE o.type = 'agent_eval.run.requested' AND r.created_at >= $1 GROUP BY o.run_id
"""


async def straggler_report(database_url: str, since: datetime, count: int = 5) -> list[str]:
    """Lines describing the `count` slowest runs created after `since`, and how many run
    requests the runs got (1 each when nothing was re-dispatched)."""
    conn = await asyncpg.connect(database_url)
    try:
        lines = [f"slowest {count} runs (created→done, event times in s after creation):"]
        for run in await conn.fetch(SLOWEST, since, count):
            lines.append(
                f"  {run['id']}  {float(run['seconds']):.2f} s  attempt {run['attempt']}"
                f"  handed back {run['handed_back']}  by {run['claimed_by']}"
            )
            for event in await conn.fetch(TIMELINE, run["id"], run["created_at"]):
                sent = "unsent" if event["unsent"] else "sent  "
                name = event["type"].removeprefix("agent_eval.")
                lines.append(f"      {float(event['at_s']):7.3f}  {sent}  {name}")
        per_run = Counter(r["n"] for r in await conn.fetch(REQUESTS_PER_RUN, since))
    finally:
        await conn.close()
    spread = ", ".join(f"{runs} run(s) with {n}" for n, runs in sorted(per_run.items()))
    lines.append(f"run requests per run: {spread or 'none'}")
    return lines
