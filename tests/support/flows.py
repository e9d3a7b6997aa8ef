"""A flow agent that reaches every node type (start, conversation with labelled and unlabelled
transitions and a global node, tool_call with error and custom routes, integration_call,
transfer, end), for the flow runtime's unit, integration and API tests."""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from typing import Any

from pydantic import JsonValue

from schemas.agents import Agent
from service.core.ids import new_id

SLOTS_TOOL: dict[str, JsonValue] = {
    "id": "tool-slots",
    "name": "check_slots",
    "description": "Free slots on a day",
    "parameters": {"type": "object", "properties": {"day": {"type": "string"}}},
    "output_schema": {
        "type": "object",
        "properties": {"available": {"type": "boolean", "const": True}, "day": {"type": "string"}},
    },
}
NODES: list[JsonValue] = [
    {
        "id": "start",
        "type": "start",
        "name": "Start",
        "greeting": "Acme, how can I help?",
        "next_step_id": "triage",
    },
    {
        "id": "triage",
        "type": "conversation",
        "name": "Triage",
        "instructions": "Find out what the caller needs.",
        "transitions": [
            {
                "id": "to_booking",
                "label": "appointment",
                "description": "Booking a visit",
                "next_step_id": "lookup",
            },
            {
                "id": "to_billing",
                "label": "",
                "description": "Questions about invoices",
                "next_step_id": "billing",
            },
        ],
        "rules": [{"when": ".", "say": "Could you tell me more?"}],
    },
    {
        "id": "lookup",
        "type": "tool_call",
        "name": "Lookup",
        "tool_id": "tool-slots",
        "pre_fire_announcement": "Let me check the calendar.",
        "args_template": {"day": {"ai_extract": "the day the caller wants"}, "site": "{{metadata.site}}"},
        "transitions": {
            "success_next_step_id": "offer",
            "error_next_step_id": "sorry",
            "custom": [
                {
                    "id": "full",
                    "label": "Full",
                    "jsonpath": "$.available",
                    "equals": False,
                    "next_step_id": "waitlist",
                }
            ],
        },
    },
    {
        "id": "offer",
        "type": "conversation",
        "name": "Offer",
        "instructions": "Offer the slot.",
        "transitions": [
            {"id": "accept", "label": "yes", "description": "The caller accepts", "next_step_id": "book"}
        ],
    },
    {
        "id": "book",
        "type": "integration_call",
        "name": "Book",
        "provider": "google_calendar",
        "action": "create_event",
        "args_template": {"summary": "Visit at {{metadata.site}} on {{lookup.day}}"},
        "next_step_id": "bye",
    },
    {"id": "bye", "type": "end", "name": "Bye", "farewell": "See you then, goodbye!"},
    {"id": "sorry", "type": "end", "name": "Sorry", "farewell": "The calendar is down, sorry."},
    {"id": "waitlist", "type": "end", "name": "Waitlist", "farewell": "We are full."},
    {"id": "billing", "type": "conversation", "name": "Billing", "instructions": "Explain invoices."},
    {
        "id": "human",
        "type": "conversation",
        "name": "Human",
        "instructions": "Hand over.",
        "is_global": True,
        "global_jump_description": "The caller asks for a person",
        "transitions": [
            {"id": "go", "label": "please", "description": "The caller agrees", "next_step_id": "handoff"}
        ],
    },
    {
        "id": "handoff",
        "type": "transfer",
        "name": "Handoff",
        "transfer_to": "+15550100",
        "transfer_message": "Transferring you now.",
    },
]


def with_node(node_id: str, nodes: list[JsonValue] | None = None, **changes: JsonValue) -> list[JsonValue]:
    """The nodes with one node's fields changed."""
    changed = copy.deepcopy(nodes if nodes is not None else NODES)
    for node in changed:
        assert isinstance(node, dict)
        if node["id"] == node_id:
            node.update(changes)
    return changed


def flow_agent_body(
    nodes: list[JsonValue] | None = None, tools: list[JsonValue] | None = None, **fields: Any
) -> dict[str, Any]:
    """The body of POST /agents for the flow agent."""
    return {
        "name": "Acme",
        "type": "flow",
        "system_prompt": "You are Acme's receptionist.",
        "model": "scripted",
        "tools": tools if tools is not None else [SLOTS_TOOL],
        "flow_config": {"nodes": nodes if nodes is not None else NODES, "metadata": {"site": "Main St"}},
        **fields,
    }


def flow_agent(nodes: list[JsonValue] | None = None, tools: list[JsonValue] | None = None) -> Agent:
    now = datetime.now(UTC).isoformat()
    ids = {"id": str(new_id()), "company_id": str(new_id()), "created_at": now, "updated_at": now}
    return Agent.model_validate({**ids, **flow_agent_body(nodes, tools)})
