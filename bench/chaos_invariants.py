"""The chaos suite's invariants: what must hold after the drain, checked in SQL on the database
the service wrote (the suite's own SQL, independent of the service's), plus the client's record
of every HTTP answer. Each check yields a `Verdict`: what was checked, how many broke it, and a
few of them as evidence."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from uuid import UUID

import asyncpg

from bench.chaos_faults import Incident, Outage
from bench.chaos_load import Answer, Load
from bench.chaos_services import Fleet
from bench.stack import wait_ready
from schemas.rates import RateCard

# A 503 answered this long after PostgreSQL accepts connections again still counts as "while it
# was down": the gateway learns that a pooled connection died only when it next uses it.
RECOVERY_GRACE_S = 2.0
EVIDENCE = 5  # failing ids shown per verdict


@dataclass(frozen=True)
class Verdict:
    name: str
    checked: int
    failures: int
    evidence: str = ""
    finding: bool = False  # reported, but does not fail the suite (see --fast-database)

    @property
    def outcome(self) -> str:
        if not self.failures:
            return "PASS"
        return "FINDING" if self.finding else "FAIL"


def verdict(name: str, checked: int, bad: Sequence[object], *, finding: bool = False) -> Verdict:
    shown = "; ".join(str(b) for b in bad[:EVIDENCE]) + (" …" if len(bad) > EVIDENCE else "")
    return Verdict(name, checked, len(bad), shown, finding)


_NOT_DONE = """
SELECT a.id, r.id IS NOT NULL AS found, r.status, r.queue_status
FROM unnest($1::uuid[]) AS a (id) LEFT JOIN eval_runs r ON r.id = a.id
WHERE r.queue_status IS DISTINCT FROM 'done'
"""
_UNACKNOWLEDGED = "SELECT id, status FROM eval_runs WHERE company_id = $1 AND NOT (id = ANY($2::uuid[]))"
_TURN_GAPS = """
SELECT run_id, count(*) AS turns, count(DISTINCT turn_number) AS numbers,
       min(turn_number) AS first, max(turn_number) AS last
FROM eval_run_turns WHERE run_id = ANY($1::uuid[])
GROUP BY run_id
HAVING count(*) <> count(DISTINCT turn_number) OR min(turn_number) <> 1 OR max(turn_number) <> count(*)
"""
# Persona lines are the script's, in order, once each (all of them when the persona hung up, which
# is a persona turn without text), and persona and agent take turns: a turn played twice or lost
# after a resume shows here.
_BROKEN_TRANSCRIPTS = """
WITH said AS (
    SELECT run_id,
           array_agg(text ORDER BY turn_number) FILTER (WHERE role = 'persona' AND text IS NOT NULL) AS lines,
           count(*) FILTER (WHERE role = previous) AS repeats
    FROM (SELECT run_id, turn_number, role, text,
                 lag(role) OVER (PARTITION BY run_id ORDER BY turn_number) AS previous
          FROM eval_run_turns WHERE run_id = ANY($1::uuid[])) t
    GROUP BY run_id
)
SELECT r.id, r.termination_reason, s.lines, s.repeats
FROM eval_runs r LEFT JOIN said s ON s.run_id = r.id
WHERE r.id = ANY($1::uuid[]) AND (
    coalesce(s.repeats, 0) > 0
    OR coalesce(s.lines, '{}') <> ($2::text[])[1:coalesce(cardinality(s.lines), 0)]
    OR (r.termination_reason = 'persona_goodbye' AND coalesce(s.lines, '{}') <> $2::text[]))
"""
_MISPRICED_TURNS = """
SELECT run_id, turn_number, role, input_tokens, output_tokens, cost_microcents
FROM eval_run_turns
WHERE run_id = ANY($1::uuid[]) AND cost_microcents <> CASE role
    WHEN 'agent' THEN ceil(input_tokens * $2::numeric + output_tokens * $3::numeric)
    WHEN 'persona' THEN ceil(input_tokens * $4::numeric + output_tokens * $5::numeric)
    ELSE 0 END
"""
_WRONG_CHARGES = """
SELECT r.id, r.queue_status, r.total_cost_cents, r.uncollected_cents, c.charges, c.charged_cents,
       ceil((coalesce(t.microcents, 0) + r.judge_cost_microcents) / 1000000.0)::bigint AS priced_cents
FROM eval_runs r
LEFT JOIN (SELECT run_id, sum(cost_microcents) AS microcents FROM eval_run_turns GROUP BY run_id) t
       ON t.run_id = r.id
LEFT JOIN (SELECT run_id, count(*) AS charges, -sum(amount_cents) AS charged_cents FROM credit_ledger
           WHERE kind = 'eval_run_charge' GROUP BY run_id) c ON c.run_id = r.id
WHERE r.company_id = $1 AND (
    coalesce(c.charges, 0) > 1
    OR (r.queue_status <> 'done' AND c.charges IS NOT NULL)
    OR (r.queue_status = 'done' AND (
        r.total_cost_cents <> ceil((coalesce(t.microcents, 0) + r.judge_cost_microcents) / 1000000.0)
        OR coalesce(c.charged_cents, 0) <> r.total_cost_cents - r.uncollected_cents)))
"""
_DONE_RUNS = "SELECT count(*) FROM eval_runs WHERE company_id = $1 AND queue_status = 'done'"
_BOOKS = """
SELECT c.balance_cents, coalesce(sum(l.amount_cents), 0) AS ledger_cents,
       coalesce(min(l.balance_after_cents), 0) AS lowest_cents, count(l.id) AS entries
FROM companies c LEFT JOIN credit_ledger l ON l.company_id = c.id
WHERE c.id = $1 GROUP BY c.id
"""
_EVENT_GAPS = """
SELECT r.id, r.last_event_seq, e.events, e.numbers, e.first, e.last, e.done_events, e.done_sequence
FROM eval_runs r
CROSS JOIN LATERAL (
    SELECT count(*) AS events, count(DISTINCT o.sequence) AS numbers, min(o.sequence) AS first,
           max(o.sequence) AS last, count(*) FILTER (WHERE o.type = 'agent_eval.run.done') AS done_events,
           max(o.sequence) FILTER (WHERE o.type = 'agent_eval.run.done') AS done_sequence
    FROM outbox o WHERE o.run_id = r.id AND o.sequence IS NOT NULL) e
WHERE r.id = ANY($1::uuid[]) AND NOT (
    e.events = r.last_event_seq AND e.numbers = e.events AND e.first = 1 AND e.last = e.events
    AND e.done_events = 1 AND e.done_sequence = e.last)
"""
_UNSENT = "SELECT count(*) FROM outbox_pending"
# Migration 0018's counts of runs in flight beside the count they replace, for every company.
_INFLIGHT_COUNTS = """
SELECT c.id AS company_id, inflight_runs(c.id) AS counted,
       (SELECT count(*) FROM eval_runs AS r WHERE r.company_id = c.id AND r.released_at IS NOT NULL
          AND r.status IN ('queued', 'running')) AS runs
FROM companies AS c
"""


async def check_database(
    conn: asyncpg.Connection,
    *,
    company_id: str,
    acknowledged: Sequence[str],
    script: Sequence[str],
    card: RateCard,
    lost_is_finding: bool,
) -> list[Verdict]:
    ids = [UUID(i) for i in acknowledged]
    return [
        *await _done(conn, ids, lost_is_finding),
        await _one_run_per_trigger(conn, company_id, ids),
        await _dense_turns(conn, ids),
        await _whole_transcripts(conn, ids, script),
        await _priced_turns(conn, ids, card),
        await _charges(conn, company_id),
        await _books(conn, company_id),
        await _events(conn, ids),
        await _inflight_counts(conn),
        verdict("every event published by the relay", 1, [n for n in [await _unsent(conn)] if n]),
    ]


async def _done(conn: asyncpg.Connection, ids: list[UUID], lost_is_finding: bool) -> list[Verdict]:
    rows = await conn.fetch(_NOT_DONE, ids)
    lost = [r["id"] for r in rows if not r["found"]]
    stuck = [f"{r['id']} {r['status']}/{r['queue_status']}" for r in rows if r["found"]]
    return [
        verdict("no acknowledged run lost", len(ids), lost, finding=lost_is_finding),
        verdict("every acknowledged run done", len(ids) - len(lost), stuck),
    ]


async def _one_run_per_trigger(conn: asyncpg.Connection, company_id: str, ids: list[UUID]) -> Verdict:
    rows = await conn.fetch(_UNACKNOWLEDGED, UUID(company_id), ids)
    return verdict("no run but the acknowledged ones (retries start nothing twice)", len(ids), rows)


async def _dense_turns(conn: asyncpg.Connection, ids: list[UUID]) -> Verdict:
    rows = await conn.fetch(_TURN_GAPS, ids)
    bad = [f"{r['run_id']}: {r['turns']} turns numbered {r['first']}..{r['last']}" for r in rows]
    return verdict("turns dense and unique (1..n)", len(ids), bad)


async def _whole_transcripts(conn: asyncpg.Connection, ids: list[UUID], script: Sequence[str]) -> Verdict:
    rows = await conn.fetch(_BROKEN_TRANSCRIPTS, ids, list(script))
    bad = [f"{r['id']} ({r['termination_reason']}): persona said {r['lines']}" for r in rows]
    return verdict("no turn repeated or lost (script order, alternation)", len(ids), bad)


async def _priced_turns(conn: asyncpg.Connection, ids: list[UUID], card: RateCard) -> Verdict:
    agent, persona = card.role("agent").for_model("scripted"), card.role("persona").for_model("scripted")
    prices = (
        agent.input_cents_per_million,
        agent.output_cents_per_million,
        persona.input_cents_per_million,
        persona.output_cents_per_million,
    )
    rows = await conn.fetch(_MISPRICED_TURNS, ids, *prices)
    return verdict("every model call priced by the rate card", len(ids), [dict(r) for r in rows])


async def _charges(conn: asyncpg.Connection, company_id: str) -> Verdict:
    rows = await conn.fetch(_WRONG_CHARGES, UUID(company_id))
    done = int(await conn.fetchval(_DONE_RUNS, UUID(company_id)))
    return verdict("at most one charge per run; charge = priced calls", done, [dict(r) for r in rows])


async def _books(conn: asyncpg.Connection, company_id: str) -> Verdict:
    row = await conn.fetchrow(_BOOKS, UUID(company_id))
    assert row is not None
    bad = [] if row["balance_cents"] == row["ledger_cents"] and row["lowest_cents"] >= 0 else [dict(row)]
    return verdict(f"balance = Σ ledger ({row['entries']} entries), never negative", 1, bad)


async def _events(conn: asyncpg.Connection, ids: list[UUID]) -> Verdict:
    rows = await conn.fetch(_EVENT_GAPS, ids)
    return verdict("event sequence dense, one run.done, last", len(ids), [dict(r) for r in rows])


async def _inflight_counts(conn: asyncpg.Connection) -> Verdict:
    rows = await conn.fetch(_INFLIGHT_COUNTS)
    bad = [dict(r) for r in rows if r["counted"] != r["runs"]]
    return verdict("runs in flight counted right (entered - left = released, unfinished)", len(rows), bad)


async def _unsent(conn: asyncpg.Connection) -> int:
    return int(await conn.fetchval(_UNSENT))


def check_answers(answers: Sequence[Answer], outages: Sequence[Outage]) -> list[Verdict]:
    """No 5xx but 503, and a 503 only while PostgreSQL was down."""
    down = [(o.down_s, o.up_s + RECOVERY_GRACE_S) for o in outages if o.service == "PostgreSQL"]
    server_errors = [a for a in answers if a.status.startswith("5") and a.status != "503"]
    stray = [a for a in answers if a.status == "503" and not any(s <= a.answered_s <= e for s, e in down)]
    return [
        verdict("no HTTP 500 (no 5xx but 503)", len(answers), [_answer(a) for a in server_errors]),
        verdict("503 only while PostgreSQL was down", len(answers), [_answer(a) for a in stray]),
    ]


def check_client(load: Load, triggers: int) -> list[Verdict]:
    unanswered = [f"#{n} gave up" for n in load.gave_up] + [f"#{n}: {why}" for n, why in load.refused.items()]
    conflicts = [f"#{n}: {sorted(ids)}" for n, ids in load.conflicting.items()]
    return [
        verdict("every trigger acknowledged, every read answered (retries)", triggers, unanswered),
        verdict("one run id per idempotency key", triggers, conflicts),
    ]


def check_exits(exits: Sequence[Incident], processes: int) -> Verdict:
    return verdict(
        "no role process exited on its own", processes, [f"at {e.at_s:.1f} s {e.what}" for e in exits]
    )


def check_ready(fleet: Fleet, timeout_s: float = 15.0) -> Verdict:
    """Every role process, restarted or not, reports ready again once the faults are over."""
    unready = []
    for member in fleet.members:
        try:
            wait_ready(member.health_url, timeout_s)
        except TimeoutError:
            unready.append(f"{member.name} ({member.health_url})")
    return verdict("every role ready again after the faults", len(fleet.members), unready)


def _answer(a: Answer) -> str:
    return f"{a.request} {a.status} at {a.answered_s:.1f} s"
