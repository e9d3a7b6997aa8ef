"""A burst of new connections is held, not refused: the gateway's listen backlog
(AGENT_EVAL_LISTEN_BACKLOG) reaches the listening socket in `agent-eval serve` and
`agent-eval dev`, and a backlog the kernel caps (net.core.somaxconn) is named at start.

Each test freezes the gateway (SIGSTOP) so it accepts nothing: the connects whose handshake
completes are exactly those its listen queue holds (Linux holds backlog + 1 and drops the SYNs
of the rest), and once it resumes every held connection is answered.
"""

from __future__ import annotations

import asyncio
import re
import signal
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest

from service.local.pgserver import free_port
from service.runtime.serving import kernel_backlog_cap
from tests.support.bursts import allow_open_files, connect_at_once, status_lines, stopped
from tests.support.processes import AGENT_EVAL, Spawned, spawned
from tests.support.waiting import eventually, eventually_sync

BURST = 1500
DEV_START_TIMEOUT_S = 90.0


async def _listening(base: str) -> bool:
    try:
        async with aiohttp.ClientSession() as http, http.get(f"{base}/healthz") as response:
            return response.status == 200
    except aiohttp.ClientConnectionError:
        return False


@dataclass(frozen=True)
class Burst:
    """What a burst of connects met while the server was frozen: each held connection's status
    line once the server resumed, and how many connects the kernel dropped."""

    answers: list[str]
    dropped: int


def _burst_while_stopped(pid: int, port: int, count: int) -> Burst:
    allow_open_files(count + 500)
    with stopped(pid):
        held, dropped = connect_at_once(port, count)
    return Burst(status_lines(held), dropped)


async def _burst_on_serve(database_url: str, env: Mapping[str, str]) -> Burst:
    """`agent-eval serve` with `env`, once listening, frozen under a burst of BURST connects."""
    port = free_port()
    env = {"AGENT_EVAL_DATABASE_URL": database_url, "AGENT_EVAL_PORT": str(port), **env}
    allow_open_files(BURST + 500)  # the gateway inherits the limit
    with spawned([AGENT_EVAL, "serve"], env) as gateway:
        await eventually(lambda: _listening(f"http://127.0.0.1:{port}"), what=gateway.output())
        return await asyncio.to_thread(_burst_while_stopped, gateway.pid, port, BURST)


async def test_a_burst_of_1500_connects_to_a_frozen_gateway_is_held_by_the_default_backlog_and_served(
    database_url: str,
) -> None:
    burst = await _burst_on_serve(database_url, {})

    assert burst.dropped == 0
    assert burst.answers == ["HTTP/1.1 200 OK"] * BURST


async def test_aiohttps_default_backlog_of_128_would_drop_most_of_the_burst(database_url: str) -> None:
    burst = await _burst_on_serve(database_url, {"AGENT_EVAL_LISTEN_BACKLOG": "128"})

    assert len(burst.answers) in (128, 129)  # Linux holds backlog + 1
    assert burst.dropped == BURST - len(burst.answers)
    assert set(burst.answers) == {"HTTP/1.1 200 OK"}


async def test_a_backlog_above_somaxconn_is_named_with_the_cap_in_one_warning_at_start(
    database_url: str,
) -> None:
    cap = kernel_backlog_cap()
    if cap is None or cap >= 65_535:
        pytest.skip(f"net.core.somaxconn is {cap}: no backlog setting can exceed it")
    port = free_port()
    env = {
        "AGENT_EVAL_DATABASE_URL": database_url,
        "AGENT_EVAL_PORT": str(port),
        "AGENT_EVAL_LOG_FORMAT": "json",
        "AGENT_EVAL_LISTEN_BACKLOG": str(cap + 1),
    }
    with spawned([AGENT_EVAL, "serve"], env) as gateway:
        await eventually(lambda: _listening(f"http://127.0.0.1:{port}"), what=gateway.output())
        warned = [line for line in gateway.lines if "listen_backlog_capped" in line]

    assert len(warned) == 1
    assert f'"listen_backlog": {cap + 1}' in warned[0]
    assert f'"somaxconn": {cap}' in warned[0]
    assert '"level": "warning"' in warned[0]


def _dev_port(child: Spawned) -> int:
    line = eventually_sync(
        lambda: child.find("serving http://") or (None if child.proc.poll() is None else "exited"),
        timeout_s=DEV_START_TIMEOUT_S,
        what="dev to serve",
    )
    match = re.search(r"serving http://[^:]+:(\d+)", line or "")
    assert match, child.output()
    return int(match.group(1))


async def test_dev_listens_with_the_configured_backlog(tmp_path: Path) -> None:
    argv = [AGENT_EVAL, "dev", "--port", "0", "--data-dir", str(tmp_path / "dev-data")]
    env = {
        "AGENT_EVAL_DATABASE_URL": "",
        "AGENT_EVAL_KAFKA_BOOTSTRAP": "",
        "AGENT_EVAL_LISTEN_BACKLOG": "1024",
    }
    allow_open_files(BURST + 500)
    with spawned(argv, env) as dev:
        port = await asyncio.to_thread(_dev_port, dev)
        burst = await asyncio.to_thread(_burst_while_stopped, dev.pid, port, 1100)
        dev.signal(signal.SIGTERM)  # a clean stop, so dev stops its embedded PostgreSQL too
        assert await asyncio.to_thread(dev.wait, 60) == 0

    assert len(burst.answers) in (1024, 1025)  # the setting, not aiohttp's 128 nor the default 2048
    assert burst.dropped == 1100 - len(burst.answers)
    assert set(burst.answers) == {"HTTP/1.1 200 OK"}
