"""The consumer roles `agent-eval consume <role>` can run, and what each needs to start.

A role names the topics it reads, the event types it handles (everything else is skipped
without decoding), and a factory that builds its handler from the process's shared resources.
Roles register here as they are built: executor, scorer, biller, notifier (DESIGN.md §2).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from consumers.processing import Handler
from consumers.runner import Gate
from schemas.events import EventType, Topic
from service.bus.base import Bus
from service.db.core import Pool
from service.settings import Settings


@dataclass(frozen=True)
class RoleContext:
    settings: Settings
    pool: Pool
    bus: Bus


@dataclass(frozen=True)
class BuiltRole:
    handler: Handler
    gate: Gate | None = None


@dataclass(frozen=True)
class Role:
    name: str
    topics: tuple[Topic, ...]
    types: frozenset[EventType]
    build: Callable[[RoleContext], BuiltRole]

    def group(self, prefix: str) -> str:
        """The consumer group every replica of this role joins."""
        return f"{prefix}agent-eval.{self.name}"


ROLES: dict[str, Role] = {}
