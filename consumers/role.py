"""What a consumer role is: the topics it reads, the event types it handles, how it is built."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass

from consumers.processing import Handler
from consumers.runner import Gate
from schemas.events import EventType, Topic
from service.bus.interface import Bus, FetchPolicy
from service.core.clock import SYSTEM_CLOCK, Clock
from service.core.settings import Settings
from service.db.postgres import Pool

# The fetch of the roles no caller waits on (issue 16): the broker gathers up to 64 KiB or 100 ms
# per fetch, so they read run events (~17 a run, every one of them) in fewer, bigger batches, at
# less CPU per record. The notifier's webhooks follow `run.done`, which the gateway has already
# answered; the scorer and the biller act only on runs that need the LLM judge (the executor
# settles the others), whose call takes seconds. The executor is served at once.
BATCHED_FETCH = FetchPolicy(min_bytes=64 * 1024, max_wait_ms=100)


@dataclass(frozen=True)
class RoleContext:
    settings: Settings
    pool: Pool
    bus: Bus
    clock: Clock = SYSTEM_CLOCK


async def _nothing() -> None:
    return None


@dataclass(frozen=True)
class BuiltRole:
    handler: Handler
    gate: Gate | None = None
    close: Callable[[], Awaitable[None]] = _nothing  # release what `build` opened (model clients)
    stop: Callable[[], None] = lambda: None  # told first when the role is asked to stop
    # A loop that runs beside the consumer (the notifier's sender); it returns once `stop` is told.
    background: Callable[[], Coroutine[object, object, None]] | None = None


@dataclass(frozen=True)
class Role:
    name: str
    topics: tuple[Topic, ...]
    types: frozenset[EventType]
    build: Callable[[RoleContext], BuiltRole]
    chunk: int = 1  # records of a partition handled at once (see RunnerConfig.chunk)
    fetch: FetchPolicy | None = (
        None  # its own fetch policy; None: the settings' (AGENT_EVAL_CONSUMER_FETCH_*)
    )

    def group(self, prefix: str) -> str:
        """The consumer group every replica of this role joins."""
        return f"{prefix}agent-eval.{self.name}"
