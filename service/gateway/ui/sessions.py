"""Dashboard sessions: a signed, time-limited cookie, and the CSRF token of its forms.

The cookie names the API key a person signed in with by the key's id (never the key itself) and
carries a random nonce; it is signed with `AGENT_EVAL_UI_SESSION_SECRET` (itsdangerous), sent
HttpOnly, SameSite=Strict and, behind https, Secure. Every page re-reads the key, so revoking
it ends its sessions. Before sign-in the cookie holds only a nonce, so the sign-in form is
protected too. A form's CSRF token is an HMAC of the nonce: a page from another site can
neither read it nor forge it, and signing in starts a new nonce (no session fixation).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from uuid import UUID

from itsdangerous import BadSignature, URLSafeTimedSerializer

COOKIE = "agent_eval_session"
CSRF_FIELD = "csrf_token"


@dataclass(frozen=True)
class Session:
    nonce: str
    key_id: UUID | None = None  # None: not signed in yet


def new_session(key_id: UUID | None = None) -> Session:
    return Session(nonce=secrets.token_urlsafe(18), key_id=key_id)


class SessionSigner:
    """Signs sessions into cookie values and reads them back (None when forged or expired)."""

    def __init__(self, secret: str, max_age_s: float) -> None:
        self._serializer = URLSafeTimedSerializer(secret, salt="agent-eval-ui-session")
        self._csrf_key = hashlib.sha256(b"agent-eval-ui-csrf:" + secret.encode()).digest()
        self.max_age_s = max_age_s

    def dump(self, session: Session) -> str:
        key = None if session.key_id is None else str(session.key_id)
        return self._serializer.dumps({"n": session.nonce, "k": key})

    def load(self, value: str | None) -> Session | None:
        if not value:
            return None
        try:
            data = self._serializer.loads(value, max_age=int(self.max_age_s))
        except BadSignature:  # SignatureExpired is one too
            return None
        return _session_of(data)

    def csrf_token(self, session: Session) -> str:
        return hmac.new(self._csrf_key, session.nonce.encode(), hashlib.sha256).hexdigest()

    def csrf_ok(self, session: Session, token: str | None) -> bool:
        return token is not None and hmac.compare_digest(self.csrf_token(session), token)


def _session_of(data: object) -> Session | None:
    if not isinstance(data, dict):
        return None
    nonce, key = data.get("n"), data.get("k")
    if not isinstance(nonce, str) or not (key is None or isinstance(key, str)):
        return None
    try:
        return Session(nonce=nonce, key_id=None if key is None else UUID(key))
    except ValueError:
        return None
