"""The run pipeline as separate `agent-eval` processes on real Kafka (relay, executors, scorer,
biller), tuned to recover fast, for tests that kill one of them in the middle of a run."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from tests.support.processes import AGENT_EVAL, Spawned, spawned
from tests.support.waiting import eventually

FAST_RECOVERY: dict[str, str] = {
    "AGENT_EVAL_TOPIC_PARTITIONS": "1",
    "AGENT_EVAL_HEALTH_PORT": "0",
    "AGENT_EVAL_LEASE_TTL_S": "2",
    "AGENT_EVAL_MAINTENANCE_INTERVAL_S": "0.5",
    "AGENT_EVAL_DISPATCH_STALE_S": "1",
    "AGENT_EVAL_CONSUMER_SESSION_TIMEOUT_MS": "3000",
    "AGENT_EVAL_CONSUMER_HEARTBEAT_INTERVAL_MS": "500",
    "AGENT_EVAL_LOG_FORMAT": "json",
}
"""Leases of 2 s swept every 0.5 s, and a dead group member noticed within 3 s."""


def role_env(database_url: str, kafka_bootstrap: str, topic_prefix: str, **overrides: str) -> dict[str, str]:
    """The environment of every process of one test: its database, broker and topic prefix."""
    return {
        "AGENT_EVAL_DATABASE_URL": database_url,
        "AGENT_EVAL_KAFKA_BOOTSTRAP": kafka_bootstrap,
        "AGENT_EVAL_TOPIC_PREFIX": topic_prefix,
        **FAST_RECOVERY,
        **overrides,
    }


ONE_EXECUTOR = [AGENT_EVAL, "consume", "executor", "--processes", "1"]  # one process each: killed by pid


@dataclass(frozen=True)
class Fleet:
    relay: Spawned
    executors: list[Spawned]
    consumers: list[Spawned]  # every `agent-eval consume` process, executors included

    def executor_named(self, claimed_by: str) -> Spawned | None:
        """The executor process behind an executor name (`host:pid:suffix`)."""
        pid = claimed_by.rsplit(":", 2)[1]
        return next((child for child in self.executors if str(child.pid) == pid), None)

    def tail(self, lines: int = 60) -> str:
        """The last lines each process wrote, for a failure message."""
        parts = []
        for child in [self.relay, *self.consumers]:
            out = child.output().splitlines()[-lines:]
            parts.append(f"--- {' '.join(child.argv[1:])} (pid {child.pid}) ---\n" + "\n".join(out))
        return "\n".join(parts)


@contextlib.contextmanager
def fleet(
    env: dict[str, str], *, executors: int = 2, roles: Sequence[str] = ("scorer", "biller")
) -> Iterator[Fleet]:
    """Start the relay, `executors` executors and the other `roles`; every one is killed at exit."""
    with contextlib.ExitStack() as stack:
        relay = stack.enter_context(spawned([AGENT_EVAL, "relay"], env))
        running = [stack.enter_context(spawned(ONE_EXECUTOR, env)) for _ in range(executors)]
        others = [stack.enter_context(spawned([AGENT_EVAL, "consume", role], env)) for role in roles]
        yield Fleet(relay, running, [*running, *others])


async def logged(child: Spawned, needle: str, timeout_s: float = 30.0) -> str:
    """The first line of `child`'s output containing `needle`, once it appears."""

    async def probe() -> str | None:
        if child.proc.poll() is not None and child.find(needle) is None:
            raise AssertionError(f"{child.argv} exited ({child.proc.returncode}):\n{child.output()}")
        return child.find(needle)

    line = await eventually(probe, timeout_s=timeout_s, interval_s=0.05, what=f"{needle!r} from {child.argv}")
    assert line is not None
    return line


async def ready(running: Fleet, timeout_s: float = 30.0) -> None:
    """Every consumer has joined its group and the relay holds the outbox lock."""
    await logged(running.relay, "relay_active", timeout_s)
    for child in running.consumers:
        await logged(child, "consumer_started", timeout_s)
