"""Where a user-given URL may point (the SSRF policy, decided without I/O), and the private
networks an operator opens to agent calls (AGENT_EVAL_AGENT_ALLOWED_NETWORKS: CIDRs and host
names, e.g. `10.0.3.0/24,agent.internal`), because self-hosted users test agents on their own
networks. Anything the operator did not list stays behind the guard."""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import yarl

from service.core.addresses import forbidden_address, is_ip_literal

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
AGENT_NETWORKS_SETTING = "AGENT_EVAL_AGENT_ALLOWED_NETWORKS"
_LABEL = r"[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?"  # `_` too: compose service names use it
_HOST_NAME = re.compile(rf"^(?=.{{1,253}}$){_LABEL}(\.{_LABEL})*$")


def _host_key(host: str) -> str:
    return host.strip("[]").split("%", 1)[0].rstrip(".").lower()


@dataclass(frozen=True)
class AllowedNetworks:
    """Private networks and host names an operator lets outbound calls reach (empty: none)."""

    networks: tuple[IPNetwork, ...] = ()
    hosts: frozenset[str] = field(default_factory=frozenset)

    def allows_address(self, address: str) -> bool:
        """Whether `address` (an IP literal) lies in one of the networks."""
        try:
            ip = ipaddress.ip_address(_host_key(address))
        except ValueError:
            return False
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        return any(ip.version == net.version and ip in net for net in self.networks)

    def allows_host(self, host: str) -> bool:
        """Whether `host` (a name or an IP literal, as in a URL) is listed or in a network."""
        return _host_key(host) in self.hosts or (is_ip_literal(host) and self.allows_address(host))


NO_NETWORKS = AllowedNetworks()


def parse_networks(text: str) -> AllowedNetworks:
    """`10.0.3.0/24, agent.internal, 192.168.1.7` → the networks and names; ValueError names a bad entry."""
    networks: list[IPNetwork] = []
    hosts: set[str] = set()
    for entry in (part.strip() for part in text.split(",")):
        if not entry:
            continue
        try:
            networks.append(ipaddress.ip_network(entry, strict=False))
            continue
        except ValueError:
            pass
        name = _host_key(entry)
        if not _HOST_NAME.match(name) or name.replace(".", "").isdigit():
            raise ValueError(f"{entry!r} is neither a CIDR (10.0.3.0/24), an IP address nor a host name")
        hosts.add(name)
    return AllowedNetworks(tuple(networks), frozenset(hosts))


def target_problem(url: str, *, allow_private: bool, allowed: AllowedNetworks = NO_NETWORKS) -> str | None:
    """Why outbound calls may not use `url`, or None: unparseable (by this parser or by the HTTP
    client's), not https (http only when private targets are allowed, or to an allowed host), no
    host, a bad port, or an IP literal the policy forbids and no allowed network holds. A name is
    checked again on what it resolves to, when the call connects."""
    try:
        parts = urlsplit(url)
        host, _ = parts.hostname, parts.port  # reading the port validates it
        yarl.URL(url)  # what the client will parse when it connects
    except ValueError as exc:
        return f"the URL cannot be parsed: {exc}"
    opened = bool(host) and allowed.allows_host(host or "")
    if parts.scheme != "https" and not ((allow_private or opened) and parts.scheme == "http"):
        return f"{parts.scheme or 'no'} scheme: only https:// URLs are called"
    if not host:
        return "the URL has no host"
    if not (allow_private or opened) and is_ip_literal(host):
        return forbidden_address(host)
    return None
