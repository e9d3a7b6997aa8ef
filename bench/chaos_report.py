"""The chaos suite's report: what was done and seen (runs, kills, outages, every HTTP answer,
times), then each invariant with how many runs it checked and how many broke it."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import asyncpg

from bench.chaos_faults import Monkey
from bench.chaos_invariants import Verdict
from bench.chaos_load import Answer, Load

_RUN_ENDS = """
SELECT status || coalesce(' ' || error_code, '') AS ending, count(*) AS n
FROM eval_runs WHERE company_id = $1::uuid GROUP BY 1
"""
_CLAIMS = "SELECT attempt, count(*) AS n FROM eval_runs WHERE company_id = $1::uuid GROUP BY 1"


@dataclass(frozen=True)
class Outcome:
    load: Load
    monkey: Monkey
    load_s: float
    drain_s: float | None  # None: not drained in time
    verdicts: list[Verdict]
    figures: dict[str, Counter[str]]

    def failed(self) -> list[Verdict]:
        return [v for v in self.verdicts if v.outcome == "FAIL"]


async def figures(conn: asyncpg.Connection, company_id: str) -> dict[str, Counter[str]]:
    """How the company's runs ended, and how many claims they took."""
    ends = Counter({r["ending"]: int(r["n"]) for r in await conn.fetch(_RUN_ENDS, company_id)})
    claims = Counter({f"{r['attempt']} claim(s)": int(r["n"]) for r in await conn.fetch(_CLAIMS, company_id)})
    return {"endings": ends, "claims": claims}


def print_report(
    outcome: Outcome, *, title: str, roles: Mapping[str, int], times: Mapping[str, float]
) -> None:
    load, monkey = outcome.load, outcome.monkey
    print(f"\nchaos: {title}")
    print(f"  {'processes':<22} " + ", ".join(f"{n} {role}" for role, n in roles.items()))
    print(f"  {'runs acknowledged':<22} {len(load.acknowledged)}")
    print(f"  {'run endings':<22} {_counts(outcome.figures['endings'])}")
    print(f"  {'claims per run':<22} {_counts(outcome.figures['claims'])}")
    print(f"  {'kills (kill -9)':<22} {_counts(Counter({r: monkey.kills[r] for r in roles}))}")
    for outage in monkey.outages:
        span = f"{outage.up_s - outage.down_s:.1f} s down (from {outage.down_s:.1f} s)"
        print(f"  {'outage ' + outage.service:<22} {span}")
    for request in ("trigger", "read"):
        print(f"  {request + ' answers':<22} {_statuses([a for a in load.answers if a.request == request])}")
    for name, seconds in times.items():
        print(f"  {name:<22} {seconds:.1f} s")
    print(f"\n  {'invariant':<62} {'checked':>8} {'failed':>7}  result")
    for v in outcome.verdicts:
        print(f"  {v.name:<62} {v.checked:>8} {v.failures:>7}  {v.outcome}")
        if v.failures:
            print(f"      {v.evidence}")
    failed = outcome.failed()
    findings = [v for v in outcome.verdicts if v.outcome == "FINDING"]
    verdict = f"FAIL ({len(failed)} of {len(outcome.verdicts)} invariants)" if failed else "PASS"
    print(f"\nchaos: {verdict}" + (f", {len(findings)} finding(s): see above" if findings else ""))


def _statuses(answers: Sequence[Answer]) -> str:
    """Each status's count; for the unhappy ones, when the first and the last came."""
    parts = []
    for status, n in sorted(Counter(a.status for a in answers).items()):
        times = [a.answered_s for a in answers if a.status == status]
        when = "" if status in ("200", "202") else f" ({min(times):.1f} to {max(times):.1f} s)"
        parts.append(f"{status}: {n}{when}")
    return " · ".join(parts) or "none"


def _counts(counter: Counter[str]) -> str:
    return " · ".join(f"{key}: {n}" for key, n in sorted(counter.items())) or "none"
