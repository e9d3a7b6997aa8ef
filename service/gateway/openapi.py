"""OpenAPI 3.1, generated from the endpoint table and the `schemas` models (it cannot drift)."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import JsonSchemaMode, models_json_schema

from schemas.api import ErrorBody
from service.gateway.endpoints import Access, Endpoint

JsonDict = dict[str, Any]  # a document under construction; only JSON text leaves this module
_PATH_PARAM = re.compile(r"{(\w+)}")
_REF = "#/components/schemas/{model}"

DESCRIPTION = """\
Tests conversational AI agents: a simulated caller talks to the agent under test, the transcript
is scored against assertions, the run is billed against prepaid credits.

**Authentication.** `Authorization: Bearer <key>` with an API key (`ae_live_…`) holding the
endpoint's scope (401 `MISSING_KEY`, `INVALID_KEY`, `EXPIRED_KEY`, `INSUFFICIENT_SCOPE`). The
admin API takes the operator's `AGENT_EVAL_ADMIN_TOKEN` instead and does not exist without one.

**Errors.** Every error is `{"error": "<message>", "code": "<CODE>"}`; validation errors add
`fields` (each with a `field` path such as `body.tools.0.name`, `query.limit` or `path.id`).
Request bodies are strict JSON: unknown fields, and values of the wrong type (`"5"` for `5`),
are refused. Another company's ids answer exactly like ids that do not exist (404).

**Rate limits.** Per key, fixed 60-second windows shared by every gateway process (default 60
requests per minute, configurable per key). Keyed responses carry `X-RateLimit-Limit`,
`X-RateLimit-Remaining` and `X-RateLimit-Reset` (Unix seconds); over the limit: 429 `RATE_LIMIT`
with `Retry-After`.

**Lists.** `limit` 1-100 (default 20; more is a 400, never silently clamped) and `offset`;
responses are `{"data": [...], "pagination": {"total", "limit", "offset", "has_more"}}`.
Personas are sorted by name, everything else newest first.

**Compatibility.** Every field of the reference agent-eval API is accepted and echoed; voice-only
fields are stored and ignored in text mode (their descriptions say so). Deletes are soft and
answer 204.
"""

_RATE_HEADERS: JsonDict = {
    name: {"description": text, "schema": {"type": "integer"}}
    for name, text in (
        ("X-RateLimit-Limit", "Requests allowed per 60-second window for this key."),
        ("X-RateLimit-Remaining", "Requests left in the current window."),
        ("X-RateLimit-Reset", "When the window ends (Unix seconds)."),
    )
}

_WAIT_HEADERS: JsonDict = {
    "Location": {"description": "Where to poll: `/agent-eval/runs/{id}`.", "schema": {"type": "string"}},
    "Retry-After": {
        "description": "Seconds before polling again: 2 while the conversation runs, 1 once it is over.",
        "schema": {"type": "integer"},
    },
    "Preference-Applied": {
        "description": "The wait applied (`wait=N`), when `Prefer: wait` was sent.",
        "schema": {"type": "string"},
    },
}


def _models(endpoints: Sequence[Endpoint]) -> list[tuple[type[BaseModel], JsonSchemaMode]]:
    wanted: list[tuple[type[BaseModel], JsonSchemaMode]] = [(ErrorBody, "serialization")]
    for endpoint in endpoints:
        if endpoint.body is not None:
            wanted.append((endpoint.body, "validation"))
        if endpoint.query is not None:
            wanted.append((endpoint.query, "validation"))
        wanted += [(model, "serialization") for model in endpoint.responses.values() if model is not None]
    return list(dict.fromkeys(wanted))


def openapi_json(endpoints: Sequence[Endpoint], *, version: str) -> str:
    """The whole document for `endpoints`, as JSON text."""
    return json.dumps(build_openapi(endpoints, version=version))


def build_openapi(endpoints: Sequence[Endpoint], *, version: str) -> JsonDict:
    refs, defs = models_json_schema(_models(endpoints), ref_template=_REF)
    schemas: dict[tuple[type[BaseModel], JsonSchemaMode], JsonDict] = {}
    for (model, mode), schema in refs.items():
        if issubclass(model, BaseModel):
            schemas[(model, mode)] = dict(schema)
    paths: dict[str, JsonDict] = {}
    for endpoint in endpoints:
        operation = _operation(endpoint, schemas)
        paths.setdefault(endpoint.path, {})[endpoint.method.lower()] = operation
    components: JsonDict = {
        "schemas": defs.get("$defs", {}),
        "securitySchemes": {
            "apiKey": {"type": "http", "scheme": "bearer", "description": "An API key: `ae_live_…`."},
            "adminToken": {"type": "http", "scheme": "bearer", "description": "AGENT_EVAL_ADMIN_TOKEN."},
        },
    }
    return {
        "openapi": "3.1.0",
        "info": {"title": "agent-eval", "version": version, "description": DESCRIPTION},
        "paths": paths,
        "components": components,
    }


def _operation(
    endpoint: Endpoint, schemas: dict[tuple[type[BaseModel], JsonSchemaMode], JsonDict]
) -> JsonDict:
    operation: JsonDict = {
        "operationId": endpoint.operation_id,
        "summary": endpoint.summary,
        "tags": [endpoint.tag],
        "parameters": [
            *_path_parameters(endpoint.path),
            *_query_parameters(endpoint, schemas),
            *_header_parameters(endpoint),
        ],
        "responses": _responses(endpoint, schemas),
    }
    scope = f"Scope: `{endpoint.scope}`." if endpoint.scope else ""
    description = "\n\n".join(text for text in (endpoint.description, scope) if text)
    if description:
        operation["description"] = description
    if endpoint.access is Access.KEY:
        operation["security"] = [{"apiKey": []}]
    elif endpoint.access is Access.ADMIN:
        operation["security"] = [{"adminToken": []}]
    if endpoint.body is not None:
        operation["requestBody"] = {
            "required": endpoint.body_required,
            "content": {"application/json": {"schema": schemas[(endpoint.body, "validation")]}},
        }
    return operation


def _path_parameters(path: str) -> list[Any]:
    return [
        {"name": name, "in": "path", "required": True, "schema": {"type": "string", "format": "uuid"}}
        for name in _PATH_PARAM.findall(path)
    ]


def _query_parameters(
    endpoint: Endpoint, schemas: dict[tuple[type[BaseModel], JsonSchemaMode], JsonDict]
) -> list[Any]:
    if endpoint.query is None:
        return []
    schema = endpoint.query.model_json_schema(ref_template=_REF)
    properties: dict[str, Any] = schema.get("properties", {})
    required = set(schema.get("required", []))
    return [
        {"name": name, "in": "query", "required": name in required, "schema": _not_null(prop)}
        for name, prop in properties.items()
    ]


def _header_parameters(endpoint: Endpoint) -> list[Any]:
    parameters: list[Any] = []
    for name, header in endpoint.headers.items():
        schema: JsonDict = {"type": "string"}
        if header.max_length is not None:
            schema["maxLength"] = header.max_length
        parameters.append(
            {
                "name": name,
                "in": "header",
                "required": False,
                "description": header.description,
                "schema": schema,
            }
        )
    return parameters


def _not_null(schema: Any) -> Any:
    """Query parameters are absent or a value, never null: drop `null` from `anyOf`."""
    if not isinstance(schema, dict):
        return schema
    any_of = schema.get("anyOf")
    if not isinstance(any_of, list):
        return schema
    options = [o for o in any_of if o != {"type": "null"}]
    rest = {k: v for k, v in schema.items() if k not in ("anyOf", "default")}
    if len(options) == 1 and isinstance(options[0], dict):
        return {**rest, **options[0]}
    return {**rest, "anyOf": options}


def _responses(
    endpoint: Endpoint, schemas: dict[tuple[type[BaseModel], JsonSchemaMode], JsonDict]
) -> JsonDict:
    responses: JsonDict = {}
    for status, model in endpoint.responses.items():
        response: JsonDict = {"description": _STATUS_TEXT.get(status, "Success")}
        if model is not None:
            response["content"] = {"application/json": {"schema": schemas[(model, "serialization")]}}
        elif status != 204:
            response["content"] = {endpoint.content_type: {"schema": {}}}
        if endpoint.access is Access.KEY:
            response["headers"] = {
                **_RATE_HEADERS,
                **(_WAIT_HEADERS if status == 202 and "Prefer" in endpoint.headers else {}),
            }
        responses[str(status)] = response
    error = {"application/json": {"schema": schemas[(ErrorBody, "serialization")]}}
    for status in _error_statuses(endpoint):
        responses[str(status)] = {"description": _STATUS_TEXT[status], "content": error}
    return responses


def _error_statuses(endpoint: Endpoint) -> list[int]:
    statuses: list[int] = []
    has_input = endpoint.body is not None or endpoint.query is not None or "{" in endpoint.path
    if has_input or endpoint.access is not Access.PUBLIC:
        statuses.append(400)
    if endpoint.access is not Access.PUBLIC:
        statuses.append(401)
    if "{" in endpoint.path or endpoint.access is not Access.PUBLIC:
        statuses.append(404)  # missing ids, and ids the body refers to
    statuses.append(405)
    statuses += endpoint.errors
    if endpoint.body is not None:
        statuses += [413, 415]
    if endpoint.access is Access.KEY:
        statuses.append(429)
    statuses.append(503 if endpoint.access is not Access.PUBLIC or endpoint.path == "/readyz" else 500)
    return sorted(set(statuses))


_STATUS_TEXT: dict[int, str] = {
    200: "Success",
    201: "Created",
    202: "Accepted: not done yet (poll `Location` after `Retry-After` seconds)",
    204: "Deleted",
    400: "Invalid request (`VALIDATION_ERROR` with `fields`, or `FLOW_INVALID` with `issues`)",
    401: "`MISSING_KEY`, `INVALID_KEY`, `EXPIRED_KEY` or `INSUFFICIENT_SCOPE`",
    402: "`BILLING_ERROR`: the company is suspended or its balance cannot pay for the run",
    404: "`NOT_FOUND` (including another company's ids)",
    405: "`METHOD_NOT_ALLOWED`",
    409: "`IDEMPOTENCY_KEY_IN_USE`: a request with this key is still being processed",
    413: "`PAYLOAD_TOO_LARGE`",
    415: "`UNSUPPORTED_MEDIA_TYPE`",
    422: (
        "`IDEMPOTENCY_KEY_REUSED`, `MODE_NOT_SUPPORTED` or "
        "`MODEL_NOT_CONFIGURED` (a model the run needs has no configured provider; the message "
        "names the model and the setting to set)"
    ),
    429: "`RATE_LIMIT` (see `Retry-After`)",
    500: "`INTERNAL`",
    503: "`UNAVAILABLE`: a dependency is down; retry",
}
