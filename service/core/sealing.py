"""Secrets at rest: webhook signing secrets and HTTP agents' secrets are stored sealed (Fernet:
AES-128-CBC + HMAC-SHA256) with keys from settings, so a database dump alone does not reveal
them. The first key seals; every key opens, so keys rotate by putting a new one first and
re-sealing at leisure."""

from __future__ import annotations

from collections.abc import Sequence

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from service.core.errors import SettingsError


class SecretBox:
    def __init__(self, keys: Sequence[str]) -> None:
        try:
            self._fernet = MultiFernet([Fernet(key.encode()) for key in keys])
        except (ValueError, TypeError) as exc:
            raise SettingsError(
                f"AGENT_EVAL_WEBHOOK_SECRET_KEYS holds a key that is not a Fernet key: {exc}"
            ) from exc

    def seal(self, secret: str) -> str:
        return self._fernet.encrypt(secret.encode()).decode()

    def open(self, sealed: str) -> str:
        """The secret; a token no configured key opens is a settings problem, not data loss."""
        try:
            return self._fernet.decrypt(sealed.encode()).decode()
        except InvalidToken as exc:
            raise SettingsError(
                "a secret was sealed with a key that is no longer in AGENT_EVAL_WEBHOOK_SECRET_KEYS"
            ) from exc
