"""Case, agent and persona models as a trigger reads them, for the pure tests of what a run
records and which models it needs."""

from __future__ import annotations

from pydantic import JsonValue

from schemas.agents import Agent
from schemas.cases import Case

NOW = "2026-01-01T00:00:00Z"
AGENT_ID = "00000000-0000-4000-8000-00000000000a"
PERSONA_ID = "00000000-0000-4000-8000-00000000000b"
COMPANY_ID = "00000000-0000-4000-8000-00000000000c"
LOOKUP: dict[str, JsonValue] = {"name": "lookup", "description": "Find an order."}
REFUND: dict[str, JsonValue] = {"name": "refund", "description": "Refund an order."}


def agent_data(**fields: JsonValue) -> dict[str, JsonValue]:
    return {
        "id": AGENT_ID,
        "company_id": COMPANY_ID,
        "created_at": NOW,
        "updated_at": NOW,
        "name": "Support",
        "system_prompt": "You are Acme support.",
        "greeting_message": "Hi, Acme here.",
        "temperature": 0.5,
        "tools": [LOOKUP],
        **fields,
    }


def make_agent(**fields: JsonValue) -> Agent:
    return Agent.model_validate(agent_data(**fields))


def make_case(
    *,
    agent: dict[str, JsonValue] | None = None,
    persona: dict[str, JsonValue] | None = None,
    **fields: JsonValue,
) -> Case:
    return Case.model_validate(
        {
            "id": "00000000-0000-4000-8000-00000000000d",
            "company_id": COMPANY_ID,
            "agent_id": AGENT_ID,
            "persona_id": PERSONA_ID,
            "created_at": NOW,
            "updated_at": NOW,
            "name": "Late order",
            "scenario": "Your order A1 is a week late.",
            "max_turns": 8,
            "agent": agent_data(**(agent or {})),
            "persona": {
                "id": PERSONA_ID,
                "company_id": COMPANY_ID,
                "created_at": NOW,
                "updated_at": NOW,
                "name": "Dana",
                "identity_prompt": "You are Dana, an impatient customer.",
                **(persona or {}),
            },
            **fields,
        }
    )
