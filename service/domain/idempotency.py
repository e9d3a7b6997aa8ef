"""`Idempotency-Key` (DESIGN.md §3): the key's rules and the request fingerprint it is bound to."""

from __future__ import annotations

import hashlib
import json

from pydantic import JsonValue

MAX_KEY_LENGTH = 255


def key_problem(key: str) -> str | None:
    """Why `key` cannot be used, or None."""
    if not key.strip():
        return "must not be empty"
    if len(key) > MAX_KEY_LENGTH:
        return f"must be at most {MAX_KEY_LENGTH} characters"
    if not key.isprintable() or not key.isascii():
        return "must be printable ASCII"
    return None


def fingerprint(method: str, path: str, body: JsonValue) -> bytes:
    """SHA-256 of the method, the path and the body as canonical JSON (sorted keys, no spaces),
    so the same request spelled with other whitespace or key order has the same fingerprint."""
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(f"{method.upper()}\n{path}\n{canonical}".encode()).digest()
