"""Personas (`/agent-eval/personas`): reusable simulated callers."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated
from uuid import UUID

from pydantic import ConfigDict, Field, StringConstraints, ValidationInfo, field_validator
from pydantic.json_schema import SkipJsonSchema

from schemas.agents import ModelName
from schemas.bodies import Body, Patch
from schemas.fields import JsonObject, Language, Name, ShortText, reject_null

ScriptLine = Annotated[str, StringConstraints(min_length=1, max_length=10_000)]
Script = Annotated[list[ScriptLine], Field(min_length=1, max_length=100)]
IdentityPrompt = Annotated[str, StringConstraints(min_length=1, max_length=20_000)]


def _script_needed(model: str | None, script: list[str] | None) -> None:
    if model == "scripted" and not script:
        raise ValueError("a scripted persona needs a non-empty `script`")


class PersonaFields(Body):
    name: Name
    identity_prompt: IdentityPrompt = Field(description="Second person: who the caller is and why they call.")
    description: ShortText | None = None
    behavior_traits: JsonObject = Field(
        default_factory=dict, description="Knobs such as patience, verbosity."
    )
    language: Language = "en"
    voice_config: JsonObject = Field(
        default_factory=dict, description="Voice only: stored, ignored in text mode."
    )
    model: ModelName | None = Field(
        default=None, description="The persona's model; `scripted` plays `script`."
    )
    script: Script | None = Field(
        default=None, description="For `scripted`: messages said in order, then goodbye."
    )


class PersonaCreate(PersonaFields):
    script: Script | None = Field(
        default=None,
        validate_default=True,
        description="For `scripted`: messages said in order, then goodbye (required then).",
    )

    @field_validator("script")
    @classmethod
    def _scripted_has_script(cls, script: list[str] | None, info: ValidationInfo) -> list[str] | None:
        _script_needed(info.data.get("model"), script)
        return script


class PersonaPatch(Patch):
    name: Name | SkipJsonSchema[None] = None
    identity_prompt: IdentityPrompt | SkipJsonSchema[None] = None
    description: ShortText | None = None
    behavior_traits: JsonObject | SkipJsonSchema[None] = None
    language: Language | SkipJsonSchema[None] = None
    voice_config: JsonObject | SkipJsonSchema[None] = None
    model: ModelName | None = None
    script: Script | None = None

    _not_null = field_validator("name", "identity_prompt", "behavior_traits", "language", "voice_config")(
        reject_null
    )


class Persona(PersonaFields):
    model_config = ConfigDict(extra="forbid", strict=False)

    id: UUID
    company_id: UUID
    created_at: datetime
    updated_at: datetime
    deleted_at: datetime | None = None


def check_persona(model: str | None, script: list[str] | None) -> None:
    """The rule a merged (patched) persona must still satisfy."""
    _script_needed(model, script)
