"""An agent's HTTP endpoint (agents of `"type": "http"`): the user's own agent, called once per
agent turn with the conversation so far.

`format` says what is sent and read: `openai_chat` (an OpenAI chat-completions request; the
reply is `choices[0].message`) or `simple` (`{"session_id", "messages"}` in, `{"reply",
"tool_calls"?, "end"?}` out). The run id is the session id, so a stateful agent keeps context.
`secrets` are write-only: stored sealed and always shown as `"***"`; header values use them as
`{{secrets.NAME}}`.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, PrivateAttr, StringConstraints, field_serializer, model_validator

from schemas.bodies import Body

SECRET_MASK = "***"  # noqa: S105 - what a secret is shown as, not a secret
EndpointFormat = Literal["openai_chat", "simple"]
EndpointUrl = Annotated[
    str,
    StringConstraints(min_length=8, max_length=2048, pattern=r"^https?://\S+$"),
    Field(
        description="Where the agent answers. https://, or http:// to hosts in "
        "AGENT_EVAL_AGENT_ALLOWED_NETWORKS; private addresses only when allowed there."
    ),
]
HeaderName = Annotated[str, StringConstraints(pattern=r"^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,100}$")]
HeaderValue = Annotated[str, StringConstraints(max_length=4096, pattern=r"^[^\r\n]*$")]
SecretName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")]
SecretValue = Annotated[str, StringConstraints(min_length=1, max_length=4096, pattern=r"^[^\r\n]*$")]
SECRETS_LIVE_ON_THE_AGENT = (
    "secrets live on the agent (PATCH /agents/{id}); headers here may use them as {{secrets.NAME}}"
)


class EndpointFields(Body):
    """What every endpoint says: where, in which format, with which headers and patience."""

    url: EndpointUrl
    format: EndpointFormat = Field(
        description="`openai_chat`: an OpenAI chat-completions request, the reply read from "
        '`choices[0].message`. `simple`: `{"session_id", "messages"}` in, '
        '`{"reply", "tool_calls"?, "end"?, "usage"?}` out.'
    )
    headers: Annotated[dict[HeaderName, HeaderValue], Field(max_length=50)] = Field(
        default_factory=dict,
        description="Sent on every call; a value may use a secret as `{{secrets.NAME}}`.",
    )
    timeout_secs: int = Field(default=30, ge=1, le=300, description="Per call; past it the run fails.")
    model: Annotated[str, StringConstraints(min_length=1, max_length=200)] | None = Field(
        default=None, description="Sent as `model` in `openai_chat` requests."
    )


class AgentEndpoint(EndpointFields):
    """Where and how an http agent is called; its secrets are never shown (`***`)."""

    # Secrets hold sealed values once saved and serialise as `***`, except in the copy made for
    # storage by `storable()` (the agents table and a run's snapshot, which the executor opens).

    secrets: Annotated[dict[SecretName, SecretValue], Field(max_length=20)] = Field(
        default_factory=dict,
        description='Write-only: stored encrypted, always shown as "***". On PATCH, "***" keeps the '
        "stored value and a new value replaces it; leaving `secrets` out keeps them all.",
    )
    _storable: bool = PrivateAttr(default=False)

    def storable(self) -> AgentEndpoint:
        """This endpoint, serialised with its (sealed) secret values, for storage only."""
        copy = self.model_copy()
        copy._storable = True
        return copy

    @field_serializer("secrets")
    def _masked(self, secrets: dict[str, str]) -> dict[str, str]:
        if self._storable:
            return dict(secrets)
        return dict.fromkeys(secrets, SECRET_MASK)


class EndpointOverride(EndpointFields):
    """An endpoint in `agent_overrides` (e.g. a case pointed at staging): secrets stay the agent's."""

    @model_validator(mode="before")
    @classmethod
    def _no_secrets(cls, data: Any) -> Any:
        if isinstance(data, dict) and "secrets" in data:
            raise ValueError(SECRETS_LIVE_ON_THE_AGENT)
        return data
