"""`agent-eval test` as a pipeline runs it: the real CLI in a subprocess against a real gateway
(and the in-process run pipeline on the same database). Exit codes, the summary, the JUnit
report (valid against the JUnit XML schema CI systems read), the JSON report, CI labels, the
regression gate against a baseline, and Ctrl-C cancelling the suite run it started."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

from service.core.settings import Settings
from service.db.postgres import Pool, connection
from tests.support.api import Client, Json, Tenant
from tests.support.junit_schema import junit_errors
from tests.support.processes import AGENT_EVAL, ROOT
from tests.support.run_api import running_pipeline
from tests.support.suites import SUITES, scripted_suite, suite_run
from tests.support.waiting import eventually

CLI_TIMEOUT_S = 120
GITHUB = {
    "GITHUB_ACTIONS": "true",
    "GITHUB_SHA": "4f1c0de",
    "GITHUB_REF_NAME": "main",
    "GITHUB_SERVER_URL": "https://github.com",
    "GITHUB_REPOSITORY": "acme/bot",
    "GITHUB_RUN_ID": "991",
}
NO_REFUNDS = {
    "rules": [
        {"when": "refund", "say": "I cannot help with that."},
        {"when": "bye", "say": "Bye", "end": True},
    ]
}


@dataclass(frozen=True)
class Ran:
    code: int
    out: str


def base_env(tenant: Tenant | None, client: Client | None) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("AGENT_EVAL_", "GITHUB_", "GITLAB_", "JENKINS_"))
    }
    env["COLUMNS"] = "80"  # the report must read right on a common terminal, whatever runs the tests
    if tenant is not None:
        env["AGENT_EVAL_API_KEY"] = tenant.key
    if client is not None:
        env["AGENT_EVAL_URL"] = str(client.make_url("")).rstrip("/")
    return env


async def agent_eval_test(*args: str, env: dict[str, str]) -> Ran:
    proc = await asyncio.create_subprocess_exec(
        AGENT_EVAL, "test", *args, env=env, cwd=ROOT,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    out, _ = await asyncio.wait_for(proc.communicate(), CLI_TIMEOUT_S)
    assert proc.returncode is not None
    return Ran(proc.returncode, out.decode())


async def latest_suite_run(client: Client, tenant: Tenant, suite_id: str) -> Json:
    response = await client.get(f"{SUITES}/{suite_id}/runs?limit=1", headers=tenant.headers())
    [latest] = (await response.json())["data"]
    return await suite_run(client, tenant, suite_id, latest["suite_run_id"])


async def test_a_passing_suite_exits_0_with_valid_junit_json_and_ci_labels(
    client: Client, tenant: Tenant, suite_settings: Settings, pool: Pool, tmp_path: Path
) -> None:
    suite, cases = await scripted_suite(client, tenant, [True, True], parallelism=2)
    junit, report = tmp_path / "out.xml", tmp_path / "report.json"
    async with running_pipeline(suite_settings, pool):
        ran = await agent_eval_test(
            "suite", suite["id"], "--iterations", "2", "--junit", str(junit), "--json", str(report),
            "--label", "team=qa", env={**base_env(tenant, client), **GITHUB},
        )  # fmt: skip
    assert ran.code == 0, ran.out
    assert "4 runs of 'Regression'" in ran.out
    assert "4/4 done: 4 passed, 0 failed" in ran.out
    assert "PASSED: 4 passed, pass rate 100.0%" in ran.out
    for case in cases:
        assert case["name"] in ran.out  # the summary table

    xml = junit.read_text()
    assert junit_errors(xml) == []
    root = ET.fromstring(xml)  # noqa: S314 — our own report, just validated
    testsuite = root.find("testsuite")
    assert testsuite is not None
    assert (testsuite.get("tests"), testsuite.get("failures"), testsuite.get("errors")) == ("2", "0", "0")
    assert [t.get("name") for t in testsuite.iter("testcase")] == ["Case 1", "Case 2"]
    assert not list(testsuite.iter("failure"))
    properties = {p.get("name"): p.get("value") for p in testsuite.iter("property")}
    assert properties["Case 1.iteration.2"] == "passed"
    assert properties["label.commit"] == "4f1c0de"

    document = json.loads(report.read_text())
    assert (document["passed"], document["suite_run"]["passed"]) == (True, 4)
    view = await latest_suite_run(client, tenant, suite["id"])
    assert view["labels"] == {
        "ci": "github-actions", "commit": "4f1c0de", "branch": "main",
        "build_url": "https://github.com/acme/bot/actions/runs/991", "team": "qa",
    }  # fmt: skip


async def test_a_failing_case_exits_1_with_its_reasons_and_transcript_in_junit(
    client: Client, tenant: Tenant, suite_settings: Settings, pool: Pool, tmp_path: Path
) -> None:
    suite, _ = await scripted_suite(client, tenant, [True, False], parallelism=2)
    junit = tmp_path / "out.xml"
    env = base_env(tenant, client)
    async with running_pipeline(suite_settings, pool):
        failed = await agent_eval_test("suite", suite["id"], "--junit", str(junit), env=env)
        lenient = await agent_eval_test("suite", suite["id"], "--min-pass-rate", "0.5", env=env)
    assert failed.code == 1, failed.out
    assert "FAILED: pass rate 50.0% is below 100.0%" in failed.out
    assert lenient.code == 0, lenient.out

    xml = junit.read_text()
    assert junit_errors(xml) == []
    testsuite = ET.fromstring(xml).find("testsuite")  # noqa: S314 — our own report, just validated
    assert testsuite is not None
    assert testsuite.get("failures") == "1"
    [failure] = testsuite.iter("failure")
    assert "must_say" in (failure.get("message") or "")
    [case_2] = [t for t in testsuite.iter("testcase") if t.get("name") == "Case 2"]
    out = case_2.find("system-out")
    assert out is not None
    assert "agent: I have started your refund." in (out.text or "")


async def test_a_significant_regression_against_the_baseline_exits_1(
    client: Client, tenant: Tenant, suite_settings: Settings, pool: Pool, tmp_path: Path
) -> None:
    suite, _ = await scripted_suite(client, tenant, [True])
    overrides = tmp_path / "overrides.json"
    overrides.write_text(json.dumps(NO_REFUNDS))
    env = base_env(tenant, client)
    async with running_pipeline(suite_settings, pool):
        first = await agent_eval_test(
            "suite", suite["id"], "--iterations", "4", "--baseline", "latest", env=env
        )
        worse = await agent_eval_test(
            "suite", suite["id"], "--iterations", "4", "--baseline", "latest", "--min-pass-rate", "0",
            "--overrides", str(overrides), env=env,
        )  # fmt: skip
    assert first.code == 0, first.out
    assert "no earlier finished suite run to compare with" in first.out
    assert worse.code == 1, worse.out
    assert "1 case(s) regressed against the baseline" in worse.out
    assert "pass_to_fail (regressed)" in worse.out
    view = await latest_suite_run(client, tenant, suite["id"])
    assert (view["failed"], view["agent_overrides"]["rules"][0]["say"]) == (4, "I cannot help with that.")


async def test_usage_and_server_errors_exit_2(client: Client, tenant: Tenant, tmp_path: Path) -> None:
    suite, _ = await scripted_suite(client, tenant, [True])
    env = base_env(tenant, client)
    missing = "0190a000-0000-7000-8000-000000000000"
    calls = {
        "no url": (["suite", suite["id"]], base_env(tenant, None), "give --url or set AGENT_EVAL_URL"),
        "no key": (
            ["suite", suite["id"]],
            base_env(None, client),
            "give --api-key or set AGENT_EVAL_API_KEY",
        ),
        "iterations": (["suite", suite["id"], "--iterations", "0"], env, "--iterations must be 1-50"),
        "overrides": (["suite", suite["id"], "--overrides", str(tmp_path / "nope.json")], env, "nope.json"),
        "label": (["suite", suite["id"], "--label", "novalue"], env, "labels are key=value"),
        "unknown suite": (["suite", missing], env, "404 NOT_FOUND"),
        "bad key": (["suite", suite["id"], "--api-key", "ak_live_wrong"], env, "401 INVALID_KEY"),
        "no server": (["case", missing, "--url", "http://127.0.0.1:9"], env, "cannot reach"),
    }
    ran = await asyncio.gather(*(agent_eval_test(*args, env=e) for args, e, _ in calls.values()))
    for (name, (_, _, needle)), result in zip(calls.items(), ran, strict=True):
        assert result.code == 2, f"{name}: {result.out}"
        assert needle in result.out, f"{name}: {result.out}"


async def test_ctrl_c_cancels_the_suite_run_it_started_and_exits_130(
    client: Client, tenant: Tenant, suite_settings: Settings, pool: Pool
) -> None:
    suite, _ = await scripted_suite(client, tenant, [True, True], parallelism=1)
    slow = suite_settings.model_copy(update={"scripted_latency_s": 0.5})
    async with running_pipeline(slow, pool):
        proc = await asyncio.create_subprocess_exec(
            AGENT_EVAL, "test", "suite", suite["id"], "--iterations", "3",
            env=base_env(tenant, client), cwd=ROOT,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        )  # fmt: skip
        assert proc.stdout is not None
        first = await asyncio.wait_for(proc.stdout.readline(), CLI_TIMEOUT_S)
        assert b"suite run" in first, first
        proc.send_signal(signal.SIGINT)
        out, _ = await asyncio.wait_for(proc.communicate(), CLI_TIMEOUT_S)
        assert proc.returncode == 130, out.decode()
        assert b"cancelling the suite run" in out

        view = await eventually(
            lambda: latest_suite_run(client, tenant, suite["id"]),
            until=lambda v: bool(v["done"]),
            timeout_s=60,
            what="the cancelled suite run done",
        )
    assert view["cancel_requested_at"] is not None
    assert view["cancelled"] >= 5  # at most the run playing when Ctrl-C came may have finished
    async with connection(pool) as conn:
        started = await conn.fetchval("SELECT count(*) FROM eval_runs WHERE started_at IS NOT NULL")
    assert started <= 1


async def test_a_case_gate_exits_0_when_it_passed_and_1_when_it_failed(
    client: Client, tenant: Tenant, suite_settings: Settings, pool: Pool, tmp_path: Path
) -> None:
    _, (passing, failing) = await scripted_suite(client, tenant, [True, False])
    env = base_env(tenant, client)
    report = tmp_path / "case.json"
    async with running_pipeline(suite_settings, pool):
        good = await agent_eval_test("case", passing["id"], "--json", str(report), env=env)
        bad = await agent_eval_test("case", failing["id"], env=env)
    assert good.code == 0, good.out
    assert "PASSED: run" in good.out
    assert json.loads(report.read_text())["run"]["pass_fail"] is True
    assert bad.code == 1, bad.out
    assert "FAILED" in bad.out
    assert "must_say" in bad.out


async def test_on_a_terminal_it_shows_a_live_progress_bar(
    client: Client, tenant: Tenant, suite_settings: Settings, pool: Pool
) -> None:
    suite, _ = await scripted_suite(client, tenant, [True, False], parallelism=2)
    master, slave = os.openpty()
    shown = bytearray()
    loop = asyncio.get_running_loop()

    def read() -> None:
        with contextlib.suppress(OSError):
            shown.extend(os.read(master, 65536))

    loop.add_reader(master, read)
    try:
        async with running_pipeline(suite_settings, pool):
            env = {**base_env(tenant, client), "TERM": "xterm-256color", "COLUMNS": "150"}
            proc = await asyncio.create_subprocess_exec(
                AGENT_EVAL, "test", "suite", suite["id"], "--iterations", "2", "--min-pass-rate", "0.5",
                env=env, cwd=ROOT, stdout=slave, stderr=slave,
            )  # fmt: skip
            code = await asyncio.wait_for(proc.wait(), CLI_TIMEOUT_S)
        await asyncio.sleep(0.2)  # the last of the output
    finally:
        loop.remove_reader(master)
        os.close(slave)
        os.close(master)
    text = shown.decode(errors="replace")
    assert code == 0, text
    assert "\x1b[" in text  # drawn with terminal control sequences, not plain lines
    assert "━" in text  # the bar
    for shown_count in ("2 passed", "2 failed", "running"):
        assert shown_count in text
    assert "4/4" in text
