"""An http agent's endpoint as it is saved and overridden: secrets sealed (or kept, for `***`),
headers that use them as `{{secrets.NAME}}`, URLs the outbound policy allows; and an overriding
endpoint (a case pointed at staging) taking the agent's stored secrets. Sealing is a parameter,
so this stays free of keys and randomness."""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Iterator, Mapping

from schemas.endpoints import SECRET_MASK, AgentEndpoint, EndpointFields, EndpointOverride
from service.core.errors import FieldError, ProviderError, ValidationFailed
from service.core.networks import AllowedNetworks, target_problem
from service.domain.http_agents import NETWORKS_HINT

SECRET_REFERENCE = re.compile(r"\{\{\s*secrets\.([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")
# Set by the caller itself on every call: a header of the user's would break the request.
RESERVED_HEADERS = frozenset(
    {"host", "content-length", "content-type", "transfer-encoding", "connection", "x-session-id"}
)
MAX_SECRET_CHARS = 2048  # a plain secret; its sealed form must still fit the field (4096)


def referenced_secrets(value: str) -> list[str]:
    """The secret names a header value uses."""
    return SECRET_REFERENCE.findall(value)


def header_problems(
    headers: Mapping[str, str], secret_names: Collection[str] | None, at: str
) -> Iterator[FieldError]:
    """Headers agent-eval sets itself, and references to secrets the agent does not have (None:
    the secrets are not known here, so no reference is checked)."""
    for name, value in headers.items():
        where = f"{at}.headers.{name}"
        if name.lower() in RESERVED_HEADERS:
            yield FieldError(where, f"{name} is set by agent-eval on every call")
        if secret_names is None:
            continue
        for secret in referenced_secrets(value):
            if secret not in secret_names:
                yield FieldError(where, f"uses secret {secret!r}, which the agent does not have")


def url_problem(url: str, *, allow_private: bool, networks: AllowedNetworks) -> str | None:
    """Why agent calls may not go to `url` (scheme, IP literal), or None; a name is checked on
    what it resolves to when the call is made."""
    problem = target_problem(url, allow_private=allow_private, allowed=networks)
    return None if problem is None else f"{problem} ({NETWORKS_HINT})"


def endpoint_problems(
    endpoint: EndpointFields,
    *,
    allow_private: bool,
    networks: AllowedNetworks | None,
    secret_names: Collection[str] | None,
    at: str,
) -> list[FieldError]:
    """Every problem of an endpoint: its URL under the outbound policy (when the allowed networks
    are known), its headers (secret references only when the secrets are known)."""
    errors = list(header_problems(endpoint.headers, secret_names, at))
    if networks is not None:
        problem = url_problem(endpoint.url, allow_private=allow_private, networks=networks)
        if problem:
            errors.insert(0, FieldError(f"{at}.url", problem, "url_forbidden"))
    return errors


def stored_secrets(
    sent: AgentEndpoint | None, current: AgentEndpoint | None, seal: Callable[[str], str], at: str
) -> dict[str, str]:
    """The sealed secrets to store for an endpoint the client sent (None: it sent none): each new
    value sealed, `***` keeping the stored value; without `secrets` sent, every stored one."""
    kept = dict(current.secrets) if current is not None else {}
    if sent is None or "secrets" not in sent.model_fields_set:
        return kept
    stored: dict[str, str] = {}
    errors: list[FieldError] = []
    for name, value in sent.secrets.items():
        where = f"{at}.secrets.{name}"
        if value == SECRET_MASK and name in kept:
            stored[name] = kept[name]
        elif value == SECRET_MASK:
            errors.append(
                FieldError(where, f'no stored secret {name!r} to keep: send its value ("***" keeps one)')
            )
        elif len(value) > MAX_SECRET_CHARS:
            errors.append(FieldError(where, f"a secret has at most {MAX_SECRET_CHARS} characters"))
        else:
            stored[name] = seal(value)
    if errors:
        raise ValidationFailed(fields=errors)
    return stored


def overriding_endpoint(
    agent_type: str, current: AgentEndpoint | None, override: EndpointOverride | None, at: str
) -> AgentEndpoint | None:
    """The endpoint an override sets, with the agent's stored secrets (which its headers may use);
    400 when the agent is not an http agent, or an http agent would be left without one."""
    if agent_type != "http":
        if override is not None:
            raise ValidationFailed(
                fields=[FieldError(at, f"only http agents have an endpoint (a {agent_type} agent)")]
            )
        return None
    if override is None:
        raise ValidationFailed(fields=[FieldError(at, "an http agent needs an endpoint", "missing")])
    secrets = dict(current.secrets) if current is not None else {}
    problems = list(header_problems(override.headers, secrets, at))
    if problems:
        raise ValidationFailed(fields=problems)
    fields = override.model_dump(mode="json")
    return AgentEndpoint.model_validate({**fields, "secrets": secrets})


def resolved_headers(headers: Mapping[str, str], secrets: Mapping[str, str]) -> dict[str, str]:
    """The headers with each `{{secrets.NAME}}` replaced by the secret's (opened) value."""

    def secret(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in secrets:
            raise ProviderError(
                "AGENT_HTTP_REFUSED", f"a header uses secret {name!r}, which the agent does not have"
            )
        return secrets[name]

    return {name: SECRET_REFERENCE.sub(secret, value) for name, value in headers.items()}
