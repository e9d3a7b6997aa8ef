"""The consumer roles `agent-eval consume <role>` can run (DESIGN.md §2)."""

from __future__ import annotations

from consumers import biller, scorer
from consumers.executor import worker
from consumers.role import Role
from consumers.webhooks import notifier

ROLES: dict[str, Role] = {role.name: role for role in (worker.ROLE, scorer.ROLE, biller.ROLE, notifier.ROLE)}
