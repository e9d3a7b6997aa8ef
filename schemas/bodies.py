"""The bases of what clients send: strict request bodies, PATCH bodies that keep only the fields
sent, and query strings that refuse unknown parameters."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, SerializerFunctionWrapHandler, model_serializer

from schemas.fields import JsonObject


class Body(BaseModel):
    """Base of every request body: unknown fields are errors, types are strict (no "5" for 5)."""

    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)


class Patch(Body):
    """Base of PATCH bodies and overrides: only the fields that were sent exist, on input and output."""

    @model_serializer(mode="wrap")
    def _only_sent(self, handler: SerializerFunctionWrapHandler) -> JsonObject:
        data: JsonObject = handler(self)
        return {key: value for key, value in data.items() if key in self.model_fields_set}

    def changes(self) -> JsonObject:
        """Exactly the fields the client sent, as JSON values."""
        dumped: JsonObject = self.model_dump(mode="json")
        return dumped


class Query(BaseModel):
    """Base of every query string: unknown parameters are errors (values arrive as text)."""

    model_config = ConfigDict(extra="forbid")
