"""The suite-run API on constructed runs (no pipeline: the runs' outcomes are written as a finished
pipeline would leave them): the aggregate and statistics against hand-computed values, the
regression diff, listing, re-runs, cancels, Idempotency-Key replays, and every refusal."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from service.db.postgres import Pool, connection, transaction
from tests.support.api import Client, Json, Tenant, make_tenant
from tests.support.suites import SUITES, scripted_suite, start, suite_run

T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
PASS = ("completed", True, 1.0)
FAIL = ("completed", False, 0.0)
REASONS = {"completed": "persona_goodbye", "failed": "error", "cancelled": "cancelled"}


async def construct(
    pool: Pool,
    suite_run_id: str,
    outcomes: list[tuple[str, bool | None, float | None]],
    *,
    cost: int = 10,
    start: datetime = T0,
    step_s: float = 10.0,
) -> None:
    """Give the suite run's runs (in position order) these (status, pass_fail, score) and mark
    them and the suite run done, as the pipeline would have."""
    async with transaction(pool) as conn:
        ids = await conn.fetch(
            "SELECT id FROM eval_runs WHERE suite_run_id = $1 ORDER BY position", suite_run_id
        )
        assert len(ids) == len(outcomes)
        for number, (row, (status, pass_fail, score)) in enumerate(zip(ids, outcomes, strict=True)):
            began = start + timedelta(seconds=number * step_s)
            await conn.execute(
                """UPDATE eval_runs SET status = $2, queue_status = 'done', pass_fail = $3, score = $4,
                       total_cost_cents = $5, agent_cost_cents = $5, started_at = $6, ended_at = $7,
                       released_at = coalesce(released_at, $6), suite_seq = $8, termination_reason = $9,
                       error_code = CASE WHEN $2 = 'failed' THEN 'PROVIDER_UNAVAILABLE' END
                   WHERE id = $1""",
                row["id"],
                status,
                pass_fail,
                score,
                0 if status == "cancelled" else cost,
                began,
                began + timedelta(seconds=step_s),
                number + 1,
                REASONS[status],
            )
        await conn.execute(
            "UPDATE suite_runs SET done_runs = total_runs, done_at = now() WHERE id = $1", suite_run_id
        )


async def finished_suite_run(
    client: Client, tenant: Tenant, pool: Pool, suite_id: str, outcomes: list[Any], iterations: int, **kw: Any
) -> Json:
    status, started = await start(client, tenant, suite_id, {"iterations": iterations})
    assert status == 202, started
    await construct(pool, started["suite_run_id"], outcomes, **kw)
    return started


# --- the aggregate and the statistics -----------------------------------------------------------


async def test_the_aggregate_and_statistics_match_hand_computed_values(
    client: Client, tenant: Tenant, pool: Pool
) -> None:
    suite, _ = await scripted_suite(client, tenant, [True, True])
    # Positions alternate A, B (iteration 1: A B, iteration 2: A B, ...).
    a = [PASS, ("completed", True, 0.8), ("completed", False, 0.2), ("failed", None, None)]
    b = [
        ("completed", True, 0.9),
        ("completed", None, 0.5),
        ("completed", True, 0.7),
        ("cancelled", None, None),
    ]
    outcomes = [run for pair in zip(a, b, strict=True) for run in pair]
    started = await finished_suite_run(client, tenant, pool, suite["id"], outcomes, 4)

    view = await suite_run(client, tenant, suite["id"], started["suite_run_id"])

    # The reference's aggregate: pass_rate = passed / completed, completed = status completed.
    counts = ("total_runs", "completed", "in_flight", "cancelled", "passed", "failed")
    assert [view[k] for k in counts] == [8, 6, 0, 1, 4, 1]
    assert (view["errored"], view["inconclusive"], view["done"], view["total_cost_cents"]) == (1, 1, True, 70)
    assert view["pass_rate"] == pytest.approx(4 / 6)
    assert view["score_avg"] == pytest.approx(4.1 / 6)
    assert view["started_at"] == "2026-11-02T09:00:00Z"
    assert view["ended_at"] == "2026-11-02T09:01:20Z"
    # The statistics leave errored, inconclusive and cancelled runs out of every pass rate.
    stats = view["statistics"]
    assert (stats["decided"], stats["pass_rate"], stats["flaky_cases"]) == (5, 0.8, 1)
    assert stats["pass_hat_k"] == pytest.approx([(2 / 3 + 1) / 2, (1 / 3 + 1) / 2])
    case_a, case_b = stats["cases"]
    assert (case_a["passed"], case_a["failed"], case_a["errored"], case_a["decided"]) == (2, 1, 1, 3)
    assert case_a["pass_rate"] == pytest.approx(2 / 3)
    assert case_a["pass_rate_interval"] == pytest.approx({"low": 0.2077, "high": 0.9385}, abs=5e-5)
    assert case_a["pass_hat_k"] == pytest.approx([2 / 3, 1 / 3, 0.0])
    assert case_a["score_mean"] == pytest.approx(2 / 3)
    assert case_a["score_stderr"] == pytest.approx(0.24037, abs=1e-5)
    assert case_a["flaky"] is True
    assert (case_b["passed"], case_b["inconclusive"], case_b["cancelled"], case_b["decided"]) == (2, 1, 1, 2)
    assert case_b["pass_rate"] == 1.0
    assert case_b["pass_rate_interval"] == pytest.approx({"low": 0.3424, "high": 1.0}, abs=5e-5)
    assert case_b["pass_hat_k"] == [1.0, 1.0]
    assert (case_b["score_mean"], case_b["score_stderr"]) == (
        pytest.approx(0.7),
        pytest.approx(0.11547, abs=1e-5),
    )
    assert case_b["flaky"] is False
    assert [(r["iteration"], r["position"]) for r in view["runs"]] == [
        (1 + (p - 1) // 2, p) for p in range(1, 9)
    ]


async def test_suite_runs_are_listed_newest_first_and_paginated(
    client: Client, tenant: Tenant, pool: Pool
) -> None:
    suite, _ = await scripted_suite(client, tenant, [True])
    ids = []
    for _ in range(3):
        ids.append((await finished_suite_run(client, tenant, pool, suite["id"], [PASS], 1))["suite_run_id"])
    response = await client.get(f"{SUITES}/{suite['id']}/runs?limit=2", headers=tenant.headers())
    page = await response.json()
    assert response.status == 200, page
    assert [r["suite_run_id"] for r in page["data"]] == ids[::-1][:2]
    assert (page["pagination"]["total"], page["pagination"]["has_more"]) == (3, True)
    assert page["data"][0]["done"] is True
    response = await client.get(f"{SUITES}/{suite['id']}/runs?limit=2&offset=2", headers=tenant.headers())
    assert [r["suite_run_id"] for r in (await response.json())["data"]] == ids[:1]


# --- the regression diff ------------------------------------------------------------------------


async def test_compare_finds_significant_regressions_and_improvements_only(
    client: Client, tenant: Tenant, pool: Pool
) -> None:
    suite, cases = await scripted_suite(client, tenant, [True, True, True, True])
    #              A (regresses)  B (one unlucky run)  C (improves)  D (stable)
    before_runs = [PASS, PASS, FAIL, PASS]
    after_runs = [FAIL, PASS, PASS, PASS]
    baseline = await finished_suite_run(client, tenant, pool, suite["id"], before_runs * 5, 5, step_s=5)
    after = after_runs * 4 + [FAIL, FAIL, PASS, PASS]  # B fails once, in the last iteration
    current = await finished_suite_run(client, tenant, pool, suite["id"], after, 5, cost=12, step_s=4)

    url = f"{SUITES}/{suite['id']}/runs/{current['suite_run_id']}/compare"
    response = await client.get(f"{url}?baseline={baseline['suite_run_id']}", headers=tenant.headers())
    diff = await response.json()
    assert response.status == 200, diff

    by_name = {c["case_name"]: c for c in diff["cases"]}
    a, b, c, d = (by_name[f"Case {n}"] for n in range(1, 5))
    assert (a["flip"], a["regressed"], a["improved"]) == ("pass_to_fail", True, False)
    assert a["p_value"] == pytest.approx(2 / 252)
    assert (a["baseline"]["passed"], a["current"]["failed"]) == (5, 5)
    assert (b["flip"], b["regressed"], b["p_value"]) == ("flaky", False, pytest.approx(1.0))
    assert (c["flip"], c["improved"], c["p_value"]) == ("fail_to_pass", True, pytest.approx(2 / 252))
    assert (d["flip"], d["regressed"], d["improved"]) == ("stable", False, False)
    assert diff["regressions"] == [cases[0]["id"]]
    assert diff["improvements"] == [cases[2]["id"]]
    assert diff["pass_rate_delta"] == pytest.approx(14 / 20 - 15 / 20)
    assert diff["cost_delta_cents"] == 20 * 12 - 20 * 10
    assert diff["duration_delta_ms"] == 20 * 4_000 - 20 * 5_000

    # A stricter alpha turns the regression into noise; `latest` finds the baseline.
    response = await client.get(f"{url}?baseline=latest&alpha=0.001", headers=tenant.headers())
    strict = await response.json()
    assert response.status == 200, strict
    assert (strict["baseline_suite_run_id"], strict["regressions"], strict["alpha"]) == (
        baseline["suite_run_id"], [], 0.001,
    )  # fmt: skip


async def test_compare_refuses_a_foreign_missing_or_other_suites_baseline(
    client: Client, tenant: Tenant, stranger: Tenant, pool: Pool
) -> None:
    suite, _ = await scripted_suite(client, tenant, [True])
    other, _ = await scripted_suite(client, tenant, [True])
    theirs, _ = await scripted_suite(client, stranger, [True])
    current = await finished_suite_run(client, tenant, pool, suite["id"], [PASS], 1)
    foreign = await finished_suite_run(client, stranger, pool, theirs["id"], [PASS], 1)
    elsewhere = await finished_suite_run(client, tenant, pool, other["id"], [PASS], 1)
    url = f"{SUITES}/{suite['id']}/runs/{current['suite_run_id']}/compare"
    for baseline in (
        foreign["suite_run_id"],
        elsewhere["suite_run_id"],
        "0190a000-0000-7000-8000-000000000000",
    ):
        response = await client.get(f"{url}?baseline={baseline}", headers=tenant.headers())
        assert (response.status, (await response.json())["code"]) == (404, "NOT_FOUND")
    response = await client.get(f"{url}?baseline=latest", headers=tenant.headers())  # nothing earlier
    assert (response.status, (await response.json())["code"]) == (404, "NOT_FOUND")
    for query in ("", "?baseline=yesterday", f"?baseline={current['suite_run_id']}&alpha=1.5"):
        response = await client.get(f"{url}{query}", headers=tenant.headers())
        body = await response.json()
        assert (response.status, body["code"]) == (400, "VALIDATION_ERROR"), body
    # Their suite run does not exist for us, by any path.
    url = f"{SUITES}/{theirs['id']}/runs/{foreign['suite_run_id']}"
    for path in ("", "/compare?baseline=latest", "/events"):
        response = await client.get(url + path, headers=tenant.headers())
        assert response.status == 404


# --- starting, refusing, replaying --------------------------------------------------------------


@pytest.mark.parametrize("body", [{"iterations": 0}, {"iterations": 51}, {"iterations": "3"}, {"labels": []}])
async def test_bad_suite_run_bodies_are_400_naming_the_field(
    client: Client, tenant: Tenant, body: Json
) -> None:
    suite, _ = await scripted_suite(client, tenant, [True])
    status, got = await start(client, tenant, suite["id"], body)
    assert (status, got["code"]) == (400, "VALIDATION_ERROR")
    assert [f["field"] for f in got["fields"]] == [f"body.{next(iter(body))}"]


async def test_an_empty_missing_or_foreign_suite_is_refused_and_nothing_is_written(
    client: Client, tenant: Tenant, stranger: Tenant, pool: Pool
) -> None:
    empty = await client.post(SUITES, json={"name": "Empty"}, headers=tenant.headers())
    status, got = await start(client, tenant, (await empty.json())["id"])
    assert (status, got["code"]) == (400, "SUITE_EMPTY")
    theirs, _ = await scripted_suite(client, stranger, [True])
    for suite_id in (theirs["id"], "0190a000-0000-7000-8000-000000000000"):
        status, got = await start(client, tenant, suite_id)
        assert (status, got["code"]) == (404, "NOT_FOUND")
    async with connection(pool) as conn:
        assert await conn.fetchval("SELECT count(*) FROM suite_runs") == 0
        assert await conn.fetchval("SELECT count(*) FROM eval_runs") == 0


async def test_a_company_that_cannot_pay_for_every_run_gets_402_and_nothing_is_written(
    client: Client, pool: Pool
) -> None:
    poor = await make_tenant(pool, "Poor", credits_cents=3)
    suite, _ = await scripted_suite(client, poor, [True, True])
    status, got = await start(client, poor, suite["id"], {"iterations": 2})  # 4 runs, 3 cents
    assert (status, got["code"]) == (402, "BILLING_ERROR")
    status, got = await start(client, poor, suite["id"], {"iterations": 1})  # 2 runs fit
    assert status == 202, got
    async with connection(pool) as conn:
        assert await conn.fetchval("SELECT count(*) FROM eval_runs") == 2


async def test_an_idempotency_key_replays_the_suite_run_and_refuses_another_body(
    client: Client, tenant: Tenant, pool: Pool
) -> None:
    suite, _ = await scripted_suite(client, tenant, [True, False])
    first = await start(client, tenant, suite["id"], {"iterations": 2}, **{"Idempotency-Key": "deploy-41"})
    again = await start(client, tenant, suite["id"], {"iterations": 2}, **{"Idempotency-Key": "deploy-41"})
    assert first == again
    assert first[0] == 202
    assert len(first[1]["run_ids"]) == 4
    status, got = await start(
        client, tenant, suite["id"], {"iterations": 3}, **{"Idempotency-Key": "deploy-41"}
    )
    assert (status, got["code"]) == (422, "IDEMPOTENCY_KEY_REUSED")
    async with connection(pool) as conn:
        assert await conn.fetchval("SELECT count(*) FROM suite_runs") == 1


async def test_overrides_and_labels_reach_every_run_and_only_parallelism_runs_are_released(
    client: Client, tenant: Tenant, pool: Pool
) -> None:
    suite, _ = await scripted_suite(client, tenant, [True, True, True], parallelism=2)
    body = {
        "iterations": 2,
        "labels": {"commit": "abc123"},
        "agent_overrides": {"system_prompt": "Be brief."},
    }
    status, started = await start(client, tenant, suite["id"], body)
    assert status == 202, started
    async with connection(pool) as conn:
        rows = await conn.fetch(
            """SELECT labels, config->'case'->'agent'->>'system_prompt' AS prompt,
                      released_at IS NOT NULL AS released, suite_run_id::text, iteration
               FROM eval_runs ORDER BY position"""
        )
    assert [r["released"] for r in rows] == [True, True, False, False, False, False]
    assert {r["prompt"] for r in rows} == {"Be brief."}
    assert all(r["labels"] == {"commit": "abc123"} for r in rows)
    assert {r["suite_run_id"] for r in rows} == {started["suite_run_id"]}
    view = await suite_run(client, tenant, suite["id"], started["suite_run_id"])
    assert (view["labels"], view["agent_overrides"]["system_prompt"], view["done"]) == (
        {"commit": "abc123"}, "Be brief.", False,
    )  # fmt: skip
    assert (view["in_flight"], view["ended_at"], view["iterations"], view["parallelism"]) == (6, None, 2, 2)


# --- cancel and re-run --------------------------------------------------------------------------


async def test_cancelling_a_suite_run_cancels_every_unfinished_run_and_announces_it_once(
    client: Client, tenant: Tenant, pool: Pool
) -> None:
    suite, _ = await scripted_suite(client, tenant, [True, True], parallelism=1)
    status, started = await start(client, tenant, suite["id"], {"iterations": 3})
    assert status == 202
    url = f"{SUITES}/{suite['id']}/runs/{started['suite_run_id']}/cancel"
    response = await client.post(url, headers=tenant.headers())
    view = await response.json()
    assert response.status == 202, view
    assert (view["cancelled"], view["in_flight"], view["done"]) == (6, 0, True)
    assert view["cancel_requested_at"] is not None
    again = await client.post(url, headers=tenant.headers())  # idempotent
    assert again.status == 202
    async with connection(pool) as conn:
        announced = await conn.fetch(
            "SELECT payload FROM outbox WHERE type = 'agent_eval.suite_run.done' AND key = $1",
            started["suite_run_id"],
        )
        charged = await conn.fetchval("SELECT count(*) FROM credit_ledger WHERE run_id IS NOT NULL")
    assert len(announced) == 1
    assert charged == 0


async def test_rerun_failed_starts_a_new_suite_run_of_the_cases_that_did_not_pass(
    client: Client, tenant: Tenant, pool: Pool
) -> None:
    suite, cases = await scripted_suite(client, tenant, [True, True, True])
    # Case 1 always passes; case 2 fails once; case 3 errors once.
    outcomes = [PASS, PASS, PASS, PASS, FAIL, ("failed", None, None)]
    original = await finished_suite_run(client, tenant, pool, suite["id"], outcomes, 2)
    url = f"{SUITES}/{suite['id']}/runs/{original['suite_run_id']}/rerun"
    response = await client.post(url, json={"only": "failed"}, headers=tenant.headers())
    rerun = await response.json()
    assert response.status == 202, rerun
    assert len(rerun["run_ids"]) == 4  # two cases, two iterations each
    view = await suite_run(client, tenant, suite["id"], rerun["suite_run_id"])
    assert view["rerun_of"] == original["suite_run_id"]
    assert [c["case_id"] for c in view["statistics"]["cases"]] == [cases[1]["id"], cases[2]["id"]]
    response = await client.post(url, json={"only": "all"}, headers=tenant.headers())
    assert len((await response.json())["run_ids"]) == 6

    passing = await finished_suite_run(client, tenant, pool, suite["id"], [PASS] * 3, 1)
    url = f"{SUITES}/{suite['id']}/runs/{passing['suite_run_id']}/rerun"
    response = await client.post(url, json={}, headers=tenant.headers())
    assert (response.status, (await response.json())["code"]) == (400, "NOTHING_TO_RERUN")
    response = await client.post(url, json={"only": "flaky"}, headers=tenant.headers())
    assert (response.status, (await response.json())["code"]) == (400, "VALIDATION_ERROR")
