"""HTTP clients for calls to URLs our users give us (real tool calls, later webhooks), with the
SSRF guard applied where it cannot be bypassed: at connect time, on every address the name
resolves to (DNS rebinding gets no second chance), and on IP literals before connecting.
Redirects are never followed. `allow_private` (tests and local development) lifts the guard.
"""

from __future__ import annotations

import asyncio
import socket
from urllib.parse import urlsplit

import aiohttp
import yarl
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver

from service.core.addresses import forbidden_address, is_ip_literal
from service.core.errors import ForbiddenAddress, OutboundRefused


def refusal(exc: BaseException) -> str | None:
    """Why the SSRF guard refused a call that failed with `exc`, or None if it did not."""
    if isinstance(exc, OutboundRefused):
        return str(exc)
    reason = getattr(exc, "os_error", None)  # aiohttp's connector errors wrap the resolver's
    return str(reason) if isinstance(reason, ForbiddenAddress) else None


class GuardedResolver(AbstractResolver):
    """Resolves names, then drops every address the SSRF policy forbids."""

    def __init__(self) -> None:
        self._resolver = DefaultResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        results = await self._resolver.resolve(host, port, family)
        allowed = [r for r in results if forbidden_address(r["host"]) is None]
        if not allowed:
            reason = forbidden_address(results[0]["host"]) if results else "no address"
            raise ForbiddenAddress(f"{host} is not allowed: {reason}")
        return allowed

    async def close(self) -> None:
        await self._resolver.close()


def check_target(url: str, *, allow_private: bool) -> None:
    """Refuse URLs outbound calls may not use: unparseable (by this parser or by the HTTP
    client's), not https (http only when private targets are allowed), no host, a bad port, or
    an IP literal the policy forbids."""
    try:
        parts = urlsplit(url)
        host, _ = parts.hostname, parts.port  # reading the port validates it
        yarl.URL(url)  # what the client will parse when it connects
    except ValueError as exc:
        raise OutboundRefused(f"the URL cannot be parsed: {exc}") from exc
    if parts.scheme != "https" and not (allow_private and parts.scheme == "http"):
        raise OutboundRefused(f"{parts.scheme or 'no'} scheme: only https:// URLs are called")
    if not host:
        raise OutboundRefused("the URL has no host")
    if not allow_private and is_ip_literal(host):
        problem = forbidden_address(host)
        if problem:
            raise OutboundRefused(problem)


async def check_resolution(url: str, *, allow_private: bool) -> None:
    """Refuse a URL whose host does not resolve, or resolves to any address the policy forbids
    (registration time: a mixed answer is refused whole; connect time checks again)."""
    host = urlsplit(url).hostname
    if allow_private or not host or is_ip_literal(host):
        return
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except OSError as exc:
        raise OutboundRefused(f"{host} does not resolve: {exc.strerror or exc}") from exc
    for info in infos:
        problem = forbidden_address(str(info[4][0]))
        if problem:
            raise OutboundRefused(f"{host} resolves to a forbidden address: {problem}")


def guarded_session(*, allow_private: bool, timeout_s: float, limit: int = 100) -> aiohttp.ClientSession:
    """A client session whose connections reach only addresses the SSRF policy allows."""
    connector = aiohttp.TCPConnector(
        limit=limit, resolver=None if allow_private else GuardedResolver(), ttl_dns_cache=60
    )
    return aiohttp.ClientSession(
        connector=connector, timeout=aiohttp.ClientTimeout(total=timeout_s), trust_env=False
    )
