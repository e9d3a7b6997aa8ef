"""Structural checks of a flow agent's graph, run when the agent is saved (400 FLOW_INVALID)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass

from pydantic import JsonValue

NODE_TYPES = frozenset({"start", "conversation", "tool_call", "integration_call", "transfer", "end"})


@dataclass(frozen=True)
class FlowIssue:
    node_id: str | None
    code: str
    message: str

    def as_dict(self) -> dict[str, str | None]:
        return {"node_id": self.node_id, "code": self.code, "message": self.message}


def flow_issues(nodes: list[dict[str, JsonValue]]) -> list[FlowIssue]:
    """Every structural problem: node ids and types, exactly one start, resolvable next steps."""
    issues = list(_node_shape_issues(nodes))
    ids = [n["id"] for n in nodes if isinstance(n.get("id"), str)]
    issues += [
        FlowIssue(i, "duplicate_node_id", f"node id {i!r} is used more than once") for i in _dupes(ids)
    ]
    starts = [n for n in nodes if n.get("type") == "start"]
    if len(starts) != 1:
        issues.append(
            FlowIssue(None, "start_node_count", f"exactly one start node needed, found {len(starts)}")
        )
    known = set(ids)
    for node in nodes:
        node_id = node.get("id") if isinstance(node.get("id"), str) else None
        for target in _next_step_ids(node):
            if target not in known:
                message = f"next_step_id {target!r} does not name a node"
                issues.append(FlowIssue(str(node_id) if node_id else None, "unknown_next_step", message))
    return issues


def _node_shape_issues(nodes: list[dict[str, JsonValue]]) -> Iterator[FlowIssue]:
    for index, node in enumerate(nodes):
        node_id = node.get("id")
        if not isinstance(node_id, str) or not node_id:
            yield FlowIssue(None, "missing_node_id", f"node {index} has no string `id`")
            continue
        if node.get("type") not in NODE_TYPES:
            kinds = ", ".join(sorted(NODE_TYPES))
            yield FlowIssue(node_id, "unknown_node_type", f"node type must be one of {kinds}")


def _dupes(ids: list[JsonValue]) -> list[str]:
    seen: set[str] = set()
    dupes: list[str] = []
    for node_id in ids:
        if isinstance(node_id, str) and node_id in seen and node_id not in dupes:
            dupes.append(node_id)
        if isinstance(node_id, str):
            seen.add(node_id)
    return dupes


def _next_step_ids(value: JsonValue) -> Iterator[str]:
    """Every `next_step_id`, `success_next_step_id`, `error_next_step_id` anywhere in a node."""
    if isinstance(value, Mapping):
        for key, item in value.items():
            if key.endswith("next_step_id") and isinstance(item, str):
                yield item
            else:
                yield from _next_step_ids(item)
    elif isinstance(value, list):
        for item in value:
            yield from _next_step_ids(item)
