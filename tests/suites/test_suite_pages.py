"""The dashboard's suite pages on constructed suite runs: each suite run with its pass rate, its
interval and its cost; the trend chart; a suite run's per-case table; the regression diff against
a chosen baseline with flips highlighted; "Run suite now"; other companies' suites look missing."""

from __future__ import annotations

import re

import pytest
from pytest_aiohttp.plugin import AiohttpClient

from service.core.settings import Settings
from service.db.postgres import Pool
from tests.suites.test_suite_run_api import FAIL, PASS, finished_suite_run
from tests.support.api import Client, Tenant
from tests.support.dashboard import dashboard_client, get_page, post_form, sign_in
from tests.support.suites import scripted_suite


@pytest.fixture
async def ui(aiohttp_client: AiohttpClient, suite_settings: Settings, pool: Pool) -> Client:
    return await dashboard_client(aiohttp_client, suite_settings, pool)


async def test_the_suites_page_lists_the_companys_suites_only(
    ui: Client, tenant: Tenant, stranger: Tenant
) -> None:
    mine, _ = await scripted_suite(ui, tenant, [True])
    theirs, _ = await scripted_suite(ui, stranger, [True])
    await sign_in(ui, tenant.key)
    status, html = await get_page(ui, "/ui/suites")
    assert status == 200
    assert f'data-suite-id="{mine["id"]}"' in html
    assert theirs["id"] not in html
    assert (await get_page(ui, f"/ui/suites/{theirs['id']}"))[0] == 404


async def test_a_suite_page_shows_its_runs_pass_rates_costs_and_the_trend(
    ui: Client, tenant: Tenant, pool: Pool
) -> None:
    suite, _ = await scripted_suite(ui, tenant, [True, True])
    first = await finished_suite_run(ui, tenant, pool, suite["id"], [PASS, PASS], 1, cost=10)
    second = await finished_suite_run(ui, tenant, pool, suite["id"], [PASS, FAIL], 1, cost=30)
    await sign_in(ui, tenant.key)
    status, html = await get_page(ui, f"/ui/suites/{suite['id']}")
    assert status == 200
    rows = re.findall(r'data-suite-run-id="([0-9a-f-]+)"', html)
    assert rows == [second["suite_run_id"], first["suite_run_id"]]  # newest first
    assert "100 %" in html
    assert "50 %" in html
    # the chart: oldest first, a dot per pass rate and a bar per cost, each with its figure
    dots = re.findall(
        r'<circle class="pass-dot" cx="([\d.]+)" cy="([\d.]+)"[^>]*><title>[^<]*pass rate (\d+) %', html
    )
    assert [rate for _, _, rate in dots] == ["100", "50"]
    assert float(dots[0][1]) < float(dots[1][1])  # 100 % is drawn higher than 50 %
    bars = re.findall(r'<rect class="cost-bar"[^>]* height="([\d.]+)"[^>]*><title>[^<]*cost \$([\d.]+)', html)
    assert [cost for _, cost in bars] == ["0.20", "0.60"]
    assert float(bars[0][0]) < float(bars[1][0])
    assert "<polyline" in html


async def test_a_suite_run_page_shows_the_diff_with_flips_highlighted(
    ui: Client, tenant: Tenant, pool: Pool
) -> None:
    suite, _ = await scripted_suite(ui, tenant, [True, True, True, True])
    baseline = await finished_suite_run(ui, tenant, pool, suite["id"], [PASS, PASS, FAIL, PASS] * 5, 5)
    current = await finished_suite_run(ui, tenant, pool, suite["id"], [FAIL, PASS, PASS, PASS] * 5, 5)
    await sign_in(ui, tenant.key)
    path = f"/ui/suites/{suite['id']}/runs/{current['suite_run_id']}"

    status, plain = await get_page(ui, path)
    assert status == 200
    assert 'id="diff"' not in plain
    assert plain.count("<tr data-run-id=") == 20
    assert "Case 1" in plain

    for baseline_id in (baseline["suite_run_id"], "latest"):
        status, html = await get_page(ui, f"{path}?baseline={baseline_id}")
        assert status == 200
        flips = {
            case: flip
            for flip, case in re.findall(r'<tr class="flip-(\w+)[^"]*">\s*<td>(Case \d)</td>', html)
        }
        assert flips == {
            "Case 1": "pass_to_fail",
            "Case 2": "stable",
            "Case 3": "fail_to_pass",
            "Case 4": "stable",
        }
        assert 'class="flip-pass_to_fail regressed"' in html
        assert 'class="flip-fail_to_pass improved"' in html
        assert "1 regression(s)" in html


async def test_a_bad_or_foreign_baseline_is_refused(
    ui: Client, tenant: Tenant, stranger: Tenant, pool: Pool
) -> None:
    suite, _ = await scripted_suite(ui, tenant, [True])
    current = await finished_suite_run(ui, tenant, pool, suite["id"], [PASS], 1)
    other, _ = await scripted_suite(ui, stranger, [True])
    foreign = await finished_suite_run(ui, stranger, pool, other["id"], [PASS], 1)
    await sign_in(ui, tenant.key)
    path = f"/ui/suites/{suite['id']}/runs/{current['suite_run_id']}"
    status, html = await get_page(ui, f"{path}?baseline=yesterday")
    assert status == 400
    assert "query.baseline" in html
    assert (await get_page(ui, f"{path}?baseline={foreign['suite_run_id']}"))[0] == 404
    status, html = await get_page(ui, f"{path}?baseline=latest")  # no other finished run
    assert status == 404
    assert "no other finished run" in html


async def test_run_suite_now_starts_a_suite_run_and_shows_it(ui: Client, tenant: Tenant) -> None:
    suite, _ = await scripted_suite(ui, tenant, [True, True])
    await sign_in(ui, tenant.key)
    status, location = await post_form(ui, f"/ui/suites/{suite['id']}", f"/ui/suites/{suite['id']}/run")
    assert status == 303
    assert location.startswith(f"/ui/suites/{suite['id']}/runs/")
    status, html = await get_page(ui, location)
    assert status == 200
    assert html.count("<tr data-run-id=") == 2
    assert 'id="suite-run-state">2 in flight' in html
