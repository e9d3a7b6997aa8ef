"""`agent-eval seed FILE`: create a suite from one JSON file (an agent, its personas, a suite and
its cases, as `examples/support-suite.json` shows) through the HTTP API, so it works against any
server; prints the suite's id (and nothing else on stdout) for `suite=$(agent-eval seed …)`."""

from __future__ import annotations

from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, JsonValue

from service.client.api import Api

JsonObject = dict[str, JsonValue]


class SeedCase(BaseModel):
    model_config = ConfigDict(extra="allow")  # every other field is the case's own

    persona: str = Field(description="A key of `personas`.")


class SeedFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    agent: JsonObject
    personas: dict[str, JsonObject] = Field(min_length=1)
    suite: JsonObject
    cases: list[SeedCase] = Field(min_length=1)

    def unknown_personas(self) -> list[str]:
        return sorted({case.persona for case in self.cases} - set(self.personas))


async def seed(api: Api, document: SeedFile) -> UUID:
    """Create everything in `document`; the new suite's id."""
    agent_id = await api.create("/agents", document.agent)
    personas = {
        key: await api.create("/agent-eval/personas", body) for key, body in document.personas.items()
    }
    suite_id = await api.create("/agent-eval/suites", {**document.suite, "agent_id": str(agent_id)})
    for case in document.cases:
        fields: JsonObject = {key: value for key, value in (case.model_extra or {}).items()}
        body: JsonObject = {
            **fields,
            "agent_id": str(agent_id),
            "persona_id": str(personas[case.persona]),
            "suite_id": str(suite_id),
        }
        await api.create("/agent-eval/cases", body)
    return suite_id
