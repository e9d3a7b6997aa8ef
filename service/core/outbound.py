"""HTTP clients for calls to URLs our users give us (real tool calls, later webhooks), with the
SSRF guard applied where it cannot be bypassed: at connect time, on every address the name
resolves to (DNS rebinding gets no second chance), and on IP literals before connecting.
Redirects are never followed. `allow_private` (tests and local development) lifts the guard;
`allowed` (agent calls only: AGENT_EVAL_AGENT_ALLOWED_NETWORKS) opens just the listed networks
and host names, over plain http:// too.
"""

from __future__ import annotations

import asyncio
import socket
from urllib.parse import urlsplit

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver

from service.core.addresses import forbidden_address, is_ip_literal
from service.core.errors import ForbiddenAddress, OutboundRefused
from service.core.networks import NO_NETWORKS, AllowedNetworks, target_problem


def refusal(exc: BaseException) -> str | None:
    """Why the SSRF guard refused a call that failed with `exc`, or None if it did not."""
    if isinstance(exc, OutboundRefused):
        return str(exc)
    reason = getattr(exc, "os_error", None)  # aiohttp's connector errors wrap the resolver's
    return str(reason) if isinstance(reason, ForbiddenAddress) else None


class GuardedResolver(AbstractResolver):
    """Resolves names, then drops every address the SSRF policy forbids (an allowed host name
    keeps every address it resolves to; an allowed network keeps the addresses inside it)."""

    def __init__(self, allowed: AllowedNetworks = NO_NETWORKS) -> None:
        self._resolver = DefaultResolver()
        self._allowed = allowed

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        results = await self._resolver.resolve(host, port, family)
        if self._allowed.allows_host(host):
            return results
        allowed = [r for r in results if self._passes(r["host"])]
        if not allowed:
            reason = forbidden_address(results[0]["host"]) if results else "no address"
            raise ForbiddenAddress(f"{host} is not allowed: {reason}")
        return allowed

    def _passes(self, address: str) -> bool:
        return forbidden_address(address) is None or self._allowed.allows_address(address)

    async def close(self) -> None:
        await self._resolver.close()


def check_target(url: str, *, allow_private: bool, allowed: AllowedNetworks = NO_NETWORKS) -> None:
    """Refuse URLs outbound calls may not use (`service.core.networks.target_problem` says why)."""
    problem = target_problem(url, allow_private=allow_private, allowed=allowed)
    if problem:
        raise OutboundRefused(problem)


async def check_resolution(url: str, *, allow_private: bool, allowed: AllowedNetworks = NO_NETWORKS) -> None:
    """Refuse a URL whose host does not resolve, or resolves to any address the policy forbids
    (registration time: a mixed answer is refused whole; connect time checks again)."""
    host = urlsplit(url).hostname
    if allow_private or not host or is_ip_literal(host) or allowed.allows_host(host):
        return
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except OSError as exc:
        raise OutboundRefused(f"{host} does not resolve: {exc.strerror or exc}") from exc
    for info in infos:
        address = str(info[4][0])
        problem = None if allowed.allows_address(address) else forbidden_address(address)
        if problem:
            raise OutboundRefused(f"{host} resolves to a forbidden address: {problem}")


def guarded_session(
    *, allow_private: bool, timeout_s: float, limit: int = 100, allowed: AllowedNetworks = NO_NETWORKS
) -> aiohttp.ClientSession:
    """A client session whose connections reach only addresses the SSRF policy allows."""
    connector = aiohttp.TCPConnector(
        limit=limit, resolver=None if allow_private else GuardedResolver(allowed), ttl_dns_cache=60
    )
    return aiohttp.ClientSession(
        connector=connector, timeout=aiohttp.ClientTimeout(total=timeout_s), trust_env=False
    )
