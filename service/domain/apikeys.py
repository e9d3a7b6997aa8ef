"""API keys (DESIGN.md §11): `ae_live_` + 32 base62 characters, shown once, stored as SHA-256."""

from __future__ import annotations

import hashlib
import re
import string
from typing import get_args

from schemas.admin import Scope

KEY_PREFIX = "ae_live_"
KEY_BODY_LENGTH = 32
SHOWN_PREFIX_LENGTH = 12
RANDOM_BYTES = 32  # 256 bits drawn, 190 bits kept: the modulo bias is below 2^-60
_BASE62 = string.digits + string.ascii_letters
_KEY_PATTERN = re.compile(rf"{KEY_PREFIX}[0-9A-Za-z]{{{KEY_BODY_LENGTH}}}")

SCOPES: tuple[str, ...] = get_args(Scope)


def format_api_key(random_bytes: bytes) -> str:
    """A key built from `RANDOM_BYTES` random bytes (the caller draws them from `secrets`)."""
    if len(random_bytes) < RANDOM_BYTES:
        raise ValueError(f"need {RANDOM_BYTES} random bytes, got {len(random_bytes)}")
    number = int.from_bytes(random_bytes[:RANDOM_BYTES], "big")
    chars = []
    for _ in range(KEY_BODY_LENGTH):
        number, digit = divmod(number, 62)
        chars.append(_BASE62[digit])
    return KEY_PREFIX + "".join(chars)


def is_well_formed(key: str) -> bool:
    """True when `key` has the shape of an API key (checked before any lookup)."""
    return _KEY_PATTERN.fullmatch(key) is not None


def shown_prefix(key: str) -> str:
    """The first 12 characters, safe to display and log."""
    return key[:SHOWN_PREFIX_LENGTH]


def hash_api_key(key: str) -> bytes:
    """The SHA-256 digest stored in `api_keys.key_sha256`."""
    return hashlib.sha256(key.encode()).digest()


def unknown_scopes(scopes: list[str] | tuple[str, ...]) -> list[str]:
    """The requested scopes that do not exist, in the order given."""
    return [scope for scope in scopes if scope not in SCOPES]
