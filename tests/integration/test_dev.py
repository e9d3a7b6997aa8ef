"""`agent-eval dev`: starts on a machine with nothing running, keeps its data across restarts."""

from __future__ import annotations

import asyncio
import re
import signal
from pathlib import Path

import aiohttp

from service import localpg
from tests.support.processes import AGENT_EVAL, Spawned, spawned
from tests.support.waiting import eventually_sync

START_TIMEOUT_S = 90.0


def _base_url(child: Spawned) -> str:
    line = eventually_sync(
        lambda: child.find("serving http://") or (None if child.proc.poll() is None else "exited"),
        timeout_s=START_TIMEOUT_S,
        what="dev to serve",
    )
    match = re.search(r"serving (http://\S+)", line or "")
    assert match, child.output()
    return match.group(1)


async def _get(url: str) -> tuple[int, dict[str, object]]:
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        return response.status, await response.json()


def _stop(child: Spawned) -> int:
    child.signal(signal.SIGTERM)
    return child.wait(60)


async def test_dev_starts_from_nothing_serves_and_keeps_its_data(tmp_path: Path) -> None:
    data_dir = tmp_path / "dev-data"
    argv = [AGENT_EVAL, "dev", "--port", "0", "--data-dir", str(data_dir)]
    env = {"AGENT_EVAL_DATABASE_URL": "", "AGENT_EVAL_KAFKA_BOOTSTRAP": ""}
    with spawned(argv, env) as first:
        url = await asyncio.to_thread(_base_url, first)
        assert await _get(f"{url}/readyz") == (200, {"status": "ok", "checks": {"database": "ok"}})
        key_line = first.find("API key (shown once")
        assert key_line is not None
        assert re.search(r"ae_live_[0-9A-Za-z]{32}", key_line)
        assert first.find("first start: created company") is not None
        assert await asyncio.to_thread(_stop, first) == 0
    assert localpg.read_state(data_dir / "postgres") is None  # the embedded database was stopped

    with spawned(argv, env) as second:
        url = await asyncio.to_thread(_base_url, second)
        assert (await _get(f"{url}/healthz"))[0] == 200
        assert second.find("reusing the existing data") is not None
        assert second.find("API key") is None  # nothing is seeded twice, no key printed again
        assert await asyncio.to_thread(_stop, second) == 0
