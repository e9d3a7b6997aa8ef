"""The official AsyncAPI 3.0.0 JSON Schema, from the pinned `@asyncapi/specs` npm tarball
(checked against its registry integrity, cached under the repo's ignored `.services/asyncapi/`),
and JSON Schema validation of documents and of Kafka records against the messages they name."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

from jsonschema import Draft7Validator, Draft202012Validator, FormatChecker

from tests.support.npm import member_bytes, repo_root, verified_tarball

Json = dict[str, Any]

SPECS_VERSION = "6.11.1"
SPECS_URL = f"https://registry.npmjs.org/@asyncapi/specs/-/specs-{SPECS_VERSION}.tgz"
SPECS_SHA512 = "A3WBLqAKGoJ2+6FWFtpjBlCQ1oFCcs4GxF7zsIGvNqp/klGUHjlA3aAcZ9XMMpLGE8zPeYDz2x9FmO6DSuKraQ=="
SCHEMA_MEMBER = "package/schemas/3.0.0-without-$id.json"


def specs_tarball(cache_dir: Path | None = None) -> Path:
    """The verified tarball, downloaded once into the cache."""
    folder = cache_dir or repo_root() / ".services" / "asyncapi"
    return verified_tarball(SPECS_URL, SPECS_SHA512, folder / f"asyncapi-specs-{SPECS_VERSION}.tgz")


def asyncapi_3_schema() -> Json:
    """The AsyncAPI 3.0.0 document schema (JSON Schema draft-07)."""
    schema: Json = json.loads(member_bytes(specs_tarball(), SCHEMA_MEMBER))
    Draft7Validator.check_schema(schema)
    return schema


def document_errors(schema: Json, document: Json) -> list[str]:
    """Where and why `document` breaks the AsyncAPI schema (empty when it is valid)."""
    errors = Draft7Validator(schema).iter_errors(document)
    return sorted(f"{'/'.join(map(str, error.absolute_path))}: {error.message}" for error in errors)


FORMATS = FormatChecker()


@FORMATS.checks("date-time", raises=ValueError)
def _is_date_time(value: object) -> bool:
    """RFC 3339 date-time: an ISO timestamp with its offset (jsonschema alone skips this format)."""
    return not isinstance(value, str) or datetime.fromisoformat(value).tzinfo is not None


def instance_errors(schema: Json, instance: object, *, components: Json | None = None) -> list[str]:
    """Where and why `instance` breaks `schema` (2020-12, formats checked); a `$ref` into
    `#/components/...` is resolved against `components`."""
    root = {**schema, "components": components} if components is not None else schema
    errors = Draft202012Validator(root, format_checker=FORMATS).iter_errors(instance)
    return sorted(f"{'/'.join(map(str, error.absolute_path))}: {error.message}" for error in errors)
