"""`agent-eval dev --executor-processes 2`: the executors run in two child processes on dev's
in-process bus; the README's CI demo (25 runs) completes, the runs are spread over both children,
a child killed with SIGKILL is restarted while the others carry its runs to the end, and Ctrl-C
stops everything."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
from pathlib import Path

from service.db.postgres import close_quietly, connect
from service.local.dev import running_database_url
from tests.support.processes import AGENT_EVAL, ROOT, Spawned, spawned
from tests.support.waiting import eventually, eventually_sync

ENV = {
    "AGENT_EVAL_DATABASE_URL": "",
    "AGENT_EVAL_KAFKA_BOOTSTRAP": "",
    "AGENT_EVAL_SCRIPTED_LATENCY_S": "0.05",  # runs last long enough to kill a child mid-run
    "AGENT_EVAL_LEASE_TTL_S": "2",  # and its runs are swept and resumed within seconds
    "AGENT_EVAL_MAINTENANCE_INTERVAL_S": "0.5",
}
SUITE = ROOT / "examples" / "support-suite.json"


def _serving(child: Spawned) -> tuple[str, str]:
    """dev's base URL and the API key it printed on its first start."""
    line = eventually_sync(
        lambda: child.find("serving http://") or (None if child.proc.poll() is None else "exited"),
        timeout_s=90,
        what="dev to serve",
    )
    url = re.search(r"serving (http://\S+)", line or "")
    key = re.search(r"ae_live_[0-9A-Za-z]{32}", child.find("API key (shown once") or "")
    assert url, child.output()
    assert key, child.output()
    return url.group(1), key.group(0)


def _suite(url: str, key: str, iterations: int) -> str:
    env = {**os.environ, "AGENT_EVAL_URL": url, "AGENT_EVAL_API_KEY": key}
    agent_eval = [AGENT_EVAL]
    seeded = subprocess.run(
        [*agent_eval, "seed", str(SUITE)], env=env, capture_output=True, text=True, check=True
    )
    tested = subprocess.run(
        [*agent_eval, "test", "suite", seeded.stdout.strip(), "--iterations", str(iterations)],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    return tested.stdout + tested.stderr


async def _claims(data_dir: Path) -> list[tuple[str, str, int]]:
    """(status, claimed_by, attempt) of every run in dev's database."""
    url = await asyncio.to_thread(running_database_url, data_dir)
    assert url is not None
    conn = await connect(url, application_name="test")
    try:
        rows = await conn.fetch("SELECT status, claimed_by, attempt FROM eval_runs")
    finally:
        await close_quietly(conn)
    return [(r["status"], r["claimed_by"], r["attempt"]) for r in rows]


async def _playing(data_dir: Path) -> int | None:
    """The pid of a child playing a run right now, if one is."""
    running = [claimed_by for status, claimed_by, _ in await _claims(data_dir) if status == "running"]
    return _pid(running[0]) if running else None


def _pid(claimed_by: str) -> int:
    return int(claimed_by.rsplit(":", 2)[1])


async def test_dev_with_two_executor_processes_spreads_and_completes_the_runs(tmp_path: Path) -> None:
    data_dir = tmp_path / "dev-data"
    argv = [AGENT_EVAL, "dev", "--port", "0", "--data-dir", str(data_dir), "--executor-processes", "2"]
    with spawned(argv, ENV) as dev:
        url, key = await asyncio.to_thread(_serving, dev)
        output = await asyncio.to_thread(_suite, url, key, 5)
        assert "25/25 done: 20 passed, 5 failed" in output, output
        claims = await _claims(data_dir)
        assert len(claims) == 25
        assert {status for status, _, _ in claims} == {"completed"}
        pids = {_pid(claimed_by) for _, claimed_by, _ in claims}
        assert len(pids) == 2, (pids, dev.output())
        assert dev.pid not in pids
        assert dev.output().count('"child_started"') == 2

        again = asyncio.create_task(asyncio.to_thread(_suite, url, key, 4))
        victim = await eventually(
            lambda: _playing(data_dir), until=bool, timeout_s=60, what="a child playing"
        )
        assert victim is not None
        os.kill(victim, signal.SIGKILL)
        assert "20/20 done: 16 passed, 4 failed" in await again
        claims = await _claims(data_dir)
        assert len(claims) == 45
        assert {status for status, _, _ in claims} == {"completed"}
        resumed = {_pid(claimed_by) for _, claimed_by, attempt in claims if attempt >= 2}
        assert resumed  # the killed child's runs were resumed, by the others
        assert victim not in resumed
        assert dev.output().count('"child_started"') == 3  # it was restarted
        # scorer, biller, notifier, two executors, then the restarted one: it may still be starting
        await asyncio.to_thread(
            eventually_sync,
            lambda: dev.output().count('"consumer_started"') >= 6,
            timeout_s=60,
            what="the restarted child to consume",
        )

        dev.signal(signal.SIGINT)
        assert await asyncio.to_thread(dev.wait, 60) == 0
    assert dev.find("stopped unexpectedly") is None
    # every consumer still running at Ctrl-C said it stopped: all but the killed child's
    assert dev.output().count('"consumer_stopped"') == 5, dev.output()
