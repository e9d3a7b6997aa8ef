"""The data `bench.dashboard` reads: a migrated database with two companies, each with a case and
one real run triggered through the service (`trigger_case_run`), cloned in one INSERT ... SELECT
from `generate_series` into many runs spread over the last 30 days, then ANALYZE.

Clones keep the real run's config snapshot (the same ~2 kB document every run of the case
carries) and get ids laid out as `service.core.ids.new_id` makes them (UUIDv7: the clone's
creation millisecond, version 7, a 12-bit counter, the variant, random bits), so newest first is
id order. Their statuses (88 % completed, 8 % failed, 4 % cancelled; the newest ten queued or
running), costs, evaluations and labels vary by a hash of their number: a fifth carry
branch=main and ci=github, a tenth branch=feature/refunds and ci=github, a twentieth
experiment=prompt-v2, the rest none. One completed run gets a twelve-turn transcript for the run
page.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from uuid import UUID

from pydantic import JsonValue, SecretStr

from bench.stack import create_database, seed_company
from schemas.agents import AgentCreate
from schemas.api import TurnRole
from schemas.assertions import Assertion
from schemas.cases import CaseCreate
from schemas.evaluation import AssertionResult, Evaluation
from schemas.personas import PersonaCreate
from schemas.runs import RunTrigger
from service.accounts import tenants
from service.core.ids import new_id
from service.core.settings import Settings
from service.db import agents, cases, personas, turns
from service.db.postgres import Connection, Pool, connection, create_pool, transaction
from service.db.runs import RUN_COLUMNS
from service.runs.triggers import trigger_case_run

SPAN = timedelta(days=30)
PROMPT = (
    "You are the support agent of Northwind Outfitters. Find the caller's order by its number and answer "
    "questions about delivery and refunds; start a refund with start_refund once the order is confirmed."
)

# Per clone: its number i (1 = oldest), creation time, two hashes, its status.
_CLONES = """
WITH g AS (
    SELECT i, at, bucket, mix,
           CASE WHEN i > $2 - 10 THEN CASE WHEN i % 2 = 0 THEN 'running' ELSE 'queued' END
                WHEN bucket < 880 THEN 'completed' WHEN bucket < 960 THEN 'failed' ELSE 'cancelled'
           END AS status
    FROM generate_series(1, $2) AS i,
         LATERAL (SELECT $3::timestamptz - $4::interval * (($2 - i + 1)::float8 / $2) AS at,
                         abs(hashint4(i + $5) % 1000) AS bucket,
                         abs(hashint4(i + $5 + 7777) % 100) AS mix) AS v
)
INSERT INTO eval_runs ({columns})
SELECT {values}
FROM g, eval_runs AS t
WHERE t.id = $1
"""
_TERMINAL = "g.status IN ('completed', 'failed', 'cancelled')"
_ENDED = f"CASE WHEN {_TERMINAL} THEN g.at + interval '1 ms' * (20000 + g.bucket * 37) END"
_OVERRIDES = {
    "id": "(lpad(to_hex((extract(epoch FROM g.at) * 1000)::bigint), 12, '0') || '7' "
    "|| lpad(to_hex(g.i % 4096), 3, '0') || substr('89ab', 1 + g.i % 4, 1) "
    "|| substr(md5(g.i::text || $5::text), 1, 15))::uuid",
    "labels": 'CASE WHEN g.mix < 20 THEN \'{"branch": "main", "ci": "github"}\'::jsonb '
    'WHEN g.mix < 30 THEN \'{"branch": "feature/refunds", "ci": "github"}\'::jsonb '
    "WHEN g.mix < 35 THEN '{\"experiment\": \"prompt-v2\"}'::jsonb ELSE '{}'::jsonb END",
    "status": "g.status",
    "queue_status": "CASE g.status WHEN 'running' THEN 'claimed' WHEN 'queued' THEN 'pending' "
    "ELSE 'done' END",
    "termination_reason": "CASE g.status WHEN 'failed' THEN 'error' WHEN 'cancelled' THEN 'cancelled' "
    "WHEN 'completed' THEN (ARRAY['agent_ended', 'persona_goodbye', 'max_turns'])[1 + g.mix % 3] END",
    "released_at": "g.at",
    "dispatched_at": "g.at",
    "claimed_by": "CASE WHEN g.status = 'running' THEN 'executor-1' END",
    "lease_expires_at": "CASE WHEN g.status = 'running' THEN $3::timestamptz + interval '30 s' END",
    "attempt": "CASE WHEN g.status = 'queued' THEN 0 ELSE 1 END",
    "cancel_requested_at": "CASE WHEN g.status = 'cancelled' THEN g.at + interval '5 s' END",
    "last_event_seq": f"CASE WHEN {_TERMINAL} THEN 14 + g.mix % 9 "
    "WHEN g.status = 'running' THEN 6 ELSE 1 END",
    "started_at": "CASE WHEN g.status <> 'queued' THEN g.at + interval '200 ms' END",
    "ended_at": _ENDED,
    "duration_ms": f"CASE WHEN {_TERMINAL} THEN 20000 + g.bucket * 37 END",
    "done_at": f"{_ENDED} + interval '2 s'",
    "scored_at": f"CASE WHEN g.status = 'completed' THEN {_ENDED} + interval '1 s' END",
    "score": "CASE WHEN g.status = 'completed' THEN CASE WHEN g.mix < 80 THEN 100 ELSE 50 END END",
    "pass_fail": "CASE WHEN g.status = 'completed' THEN g.mix < 80 END",
    "evaluation": "CASE WHEN g.status = 'completed' "
    "THEN CASE WHEN g.mix < 80 THEN $6::jsonb ELSE $7::jsonb END END",
    "agent_input_tokens": f"CASE WHEN {_TERMINAL} THEN 2400 + g.bucket ELSE 0 END",
    "agent_output_tokens": f"CASE WHEN {_TERMINAL} THEN 180 + g.mix ELSE 0 END",
    "persona_input_tokens": f"CASE WHEN {_TERMINAL} THEN 1900 + g.bucket ELSE 0 END",
    "persona_output_tokens": f"CASE WHEN {_TERMINAL} THEN 120 + g.mix ELSE 0 END",
    "agent_cost_cents": f"CASE WHEN {_TERMINAL} THEN 1 + g.mix % 3 ELSE 0 END",
    "persona_cost_cents": f"CASE WHEN {_TERMINAL} THEN 1 ELSE 0 END",
    "total_cost_cents": f"CASE WHEN {_TERMINAL} THEN 2 + g.mix % 3 ELSE 0 END",
    "error": "CASE WHEN g.status = 'failed' THEN 'The agent did not answer within 30 s (turn 7)' END",
    "error_code": "CASE WHEN g.status = 'failed' THEN 'AGENT_TIMEOUT' END",
    "active_ms": f"CASE WHEN {_TERMINAL} THEN 20000 + g.bucket * 37 ELSE 0 END",
    "created_at": "g.at",
    "updated_at": f"coalesce({_ENDED} + interval '2 s', g.at)",
}
CLONE_RUNS = _CLONES.format(
    columns=RUN_COLUMNS,
    values=", ".join(_OVERRIDES.get(c, f"t.{c}") for c in RUN_COLUMNS.split(", ")),
)
_SIZES = """
SELECT format('%s table (TOAST included), %s indexes; shared_buffers %s',
              pg_size_pretty(pg_table_size('eval_runs')), pg_size_pretty(pg_indexes_size('eval_runs')),
              current_setting('shared_buffers'))
"""
_CONFIG_SIZE = "SELECT octet_length(config::text), pg_column_size(config) FROM eval_runs WHERE id = $1"
_SOME_COMPLETED = """
SELECT id FROM eval_runs WHERE company_id = $1 AND status = 'completed' ORDER BY id DESC OFFSET $2 LIMIT 1
"""


@dataclass(frozen=True)
class Dataset:
    database_url: str
    database: str
    key: str  # an all-scopes API key of the company measured
    company_id: UUID
    runs: int  # the company's, the real one included
    other_runs: int  # the second company's
    config_bytes: tuple[int, int]  # a run's config snapshot: as JSON text, as stored (compressed)
    transcript_run: UUID  # a completed run with a twelve-turn transcript
    seconds: float  # the time the clones' INSERTs and ANALYZE took
    sizes: str  # of eval_runs and its indexes, and the server's shared_buffers


async def make_dataset(server_url: str, runs: int, other_runs: int) -> Dataset:
    """A fresh migrated database with `runs` runs of one company and `other_runs` of another."""
    url, name = await create_database(server_url)
    seeded = await seed_company(url, name, credits_cents=10_000_000)
    company = UUID(seeded.company_id)
    pool = await create_pool(url, min_size=1, max_size=2)
    try:
        other = await tenants.create_company(pool, "Other", credits_cents=10_000_000)
        settings = Settings(database_url=SecretStr(url))
        real = [await real_run(pool, settings, c) for c in (company, other.id)]
        async with connection(pool) as conn:
            sizes = await conn.fetchrow(_CONFIG_SIZE, real[0][0])
            started = datetime.now(UTC)
            await clone_runs(conn, real[0], runs - 1, salt=1)
            await clone_runs(conn, real[1], other_runs - 1, salt=2)
            await conn.execute("ANALYZE")
            seconds = (datetime.now(UTC) - started).total_seconds()
            table_sizes = await conn.fetchval(_SIZES)
            found = await conn.fetchval(_SOME_COMPLETED, company, runs // 3)
            transcript_run = found or real[0][0]  # a tiny data set may have no completed run that deep
            await turns.insert_turns(conn, transcript(transcript_run), datetime.now(UTC))
    finally:
        await pool.close()
    assert sizes is not None  # the real run exists
    return Dataset(
        url,
        name,
        seeded.key,
        company,
        runs,
        other_runs,
        (sizes[0], sizes[1]),
        transcript_run,
        seconds,
        table_sizes,
    )


async def real_run(pool: Pool, settings: Settings, company_id: UUID) -> tuple[UUID, list[Assertion]]:
    """A case of the company and a run of it made by the service (the run stays queued):
    the run's id and the case's assertions."""
    async with transaction(pool) as conn:
        agent = await agents.insert_agent(conn, new_id(), company_id, AgentCreate.model_validate(AGENT))
        persona = await personas.insert_persona(
            conn, new_id(), company_id, PersonaCreate.model_validate(PERSONA)
        )
        fields = CaseCreate.model_validate({**CASE, "agent_id": agent.id, "persona_id": persona.id})
        case = await cases.insert_case(
            conn, new_id(), company_id, agent_id=agent.id, persona_id=persona.id, fields=fields
        )
    body = RunTrigger(labels={"branch": "main", "ci": "github"})
    triggered = await trigger_case_run(
        pool, settings, company_id=company_id, case_id=case.id, body=body, key=None
    )
    return triggered.run_id, list(case.success_criteria)


async def clone_runs(conn: Connection, real: tuple[UUID, list[Assertion]], count: int, *, salt: int) -> None:
    """`count` clones of the real run, older than it, one every SPAN / count."""
    run_id, assertions = real
    passed, failed = (evaluation(assertions, ok).model_dump(mode="json") for ok in (True, False))
    await conn.execute(CLONE_RUNS, run_id, count, datetime.now(UTC), SPAN, salt, passed, failed)


def evaluation(assertions: list[Assertion], ok: bool) -> Evaluation:
    """What the scorer writes: every assertion passed, or the first one failed (score 50 of 100)."""
    results = [
        AssertionResult(
            assertion=a,
            passed=ok or i > 0,
            weight=a.weight,
            reason="Matched in turn 4" if ok or i > 0 else "No agent message matched the pattern",
            outcome="passed" if ok or i > 0 else "failed",
            turn=4 if ok or i > 0 else None,
        )
        for i, a in enumerate(assertions)
    ]
    return Evaluation(score=100.0 if ok else 50.0, pass_fail=ok, inconclusive=False, results=results)


def transcript(run_id: UUID) -> list[turns.NewTurn]:
    lines: list[tuple[TurnRole, str]] = [
        ("persona", "Hi, I would like a refund for my order A-1042, the jacket does not fit."),
        ("agent", "I am sorry to hear that. Can you confirm the order number is A-1042?"),
        ("persona", "Yes, A-1042. It arrived last week and I have not worn it."),
    ]
    made = [turns.NewTurn(new_id(), run_id, n, role, text=text) for n, (role, text) in enumerate(lines, 1)]
    call: dict[str, JsonValue] = {"id": "call_1", "name": "start_refund", "arguments": {"order": "A-1042"}}
    made.append(
        turns.NewTurn(new_id(), run_id, 4, "agent", text="I have started your refund.", tool_calls=[call])
    )
    made.append(turns.NewTurn(new_id(), run_id, 5, "tool_result", tool_result={"refund_id": "R-77"}))
    for n in range(6, 13):
        role: TurnRole = "persona" if n % 2 == 0 else "agent"
        made.append(
            turns.NewTurn(new_id(), run_id, n, role, text=f"Message {n} of the conversation, a line long.")
        )
    return made


AGENT = {
    "name": "Northwind support",
    "system_prompt": PROMPT,
    "model": "scripted",
    "greeting_message": "Hello, this is Northwind Outfitters. How can I help?",
    "rules": [
        {
            "when": "refund",
            "say": "I have started your refund.",
            "call_tool": {"name": "start_refund", "arguments": {"order": "A-1"}},
        },
        {"when": "bye", "say": "Goodbye, and thank you for calling.", "end": True},
    ],
    "tools": [
        {
            "name": "start_refund",
            "description": "Start a refund for an order once the caller confirmed it",
            "parameters": {
                "type": "object",
                "properties": {"order": {"type": "string"}, "reason": {"type": "string"}},
            },
            "output_schema": {"type": "object", "properties": {"refund_id": {"type": "string"}}},
        }
    ],
}
PERSONA = {
    "name": "Unhappy customer",
    "identity_prompt": "You bought a jacket (order A-1042) that does not fit. You want a refund and "
    "you are polite but firm. You confirm the order number when asked and say goodbye once the refund "
    "has started.",
    "model": "scripted",
    "script": ["I want a refund for order A-1042", "Yes, it is A-1042, it does not fit", "Thanks, bye"],
}
CASE = {
    "name": "Refund of an unworn jacket",
    "scenario": "The caller wants a refund for an unworn jacket delivered last week (order A-1042). "
    "The agent should confirm the order and start the refund without asking for the reason twice.",
    "max_turns": 12,
    "success_criteria": [
        {"type": "must_call_tool", "tool_name": "start_refund", "args_match": {"order": "$present"}},
        {"type": "must_say", "pattern": "refund", "description": "Confirms the refund"},
        {"type": "must_not_say", "pattern": "cannot help"},
    ],
}
