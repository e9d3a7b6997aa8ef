"""The SSRF policy for user-given URLs: only public unicast addresses may be called."""

from __future__ import annotations

import pytest

from service.core.addresses import forbidden_address, is_ip_literal


def assert_refused_as(address: str, kind: str) -> None:
    """The address is refused, the refusal naming `kind` (loopback, private, ...)."""
    problem = forbidden_address(address)

    assert problem is not None
    assert kind in problem


@pytest.mark.parametrize(
    ("address", "kind"),
    [
        ("127.0.0.1", "loopback"),
        ("127.8.9.10", "loopback"),
        ("::1", "loopback"),
        ("169.254.169.254", "link-local"),
        ("fe80::1", "link-local"),
        ("fe80::1%eth0", "link-local"),
        ("10.1.2.3", "private"),
        ("172.16.0.1", "private"),
        ("192.168.1.1", "private"),
        ("fd00::1", "private"),
        ("224.0.0.1", "multicast"),
        ("ff02::1", "multicast"),
    ],
)
def test_internal_addresses_are_refused_naming_their_kind(address: str, kind: str) -> None:
    assert_refused_as(address, kind)


UNSPECIFIED_V4 = "0.0.0.0"  # noqa: S104 - an address under test; nothing binds to it


@pytest.mark.parametrize(
    "address", [UNSPECIFIED_V4, "::", "255.255.255.255", "100.64.0.1", "240.0.0.1", "192.0.2.1"]
)
def test_unspecified_broadcast_shared_reserved_and_documentation_addresses_are_refused(address: str) -> None:
    assert forbidden_address(address) is not None


@pytest.mark.parametrize(
    ("wrapped", "kind"),
    [
        ("::ffff:127.0.0.1", "loopback"),
        ("::ffff:7f00:1", "loopback"),
        ("::ffff:169.254.169.254", "link-local"),
        ("::ffff:10.0.0.1", "private"),
    ],
)
def test_ipv4_addresses_wrapped_in_ipv6_are_judged_as_the_ipv4_address(wrapped: str, kind: str) -> None:
    assert_refused_as(wrapped, kind)


@pytest.mark.parametrize("address", ["64:ff9b::a9fe:a9fe", "64:ff9b::7f00:1", "::127.0.0.1"])
def test_ipv4_embedded_by_nat64_or_the_old_compatible_form_is_refused(address: str) -> None:
    assert forbidden_address(address) is not None


def test_cloud_metadata_address_is_refused_as_link_local() -> None:
    assert forbidden_address("169.254.169.254") == "169.254.169.254 is a link-local address"


@pytest.mark.parametrize(
    "address", ["8.8.8.8", "1.1.1.1", "93.184.216.34", "2606:4700:4700::1111", "::ffff:8.8.8.8"]
)
def test_public_addresses_are_allowed(address: str) -> None:
    assert forbidden_address(address) is None


@pytest.mark.parametrize("host", ["example.com", "", "localhost", "[::1]", "127.0.0.1:80"])
def test_something_that_is_not_an_ip_address_is_never_allowed(host: str) -> None:
    assert forbidden_address(host) == f"{host!r} is not an IP address"


@pytest.mark.parametrize("host", ["127.0.0.1", "8.8.8.8", "::1", "[::1]", "[fe80::1%25eth0]", "fe80::1%eth0"])
def test_ip_literals_are_recognised_with_or_without_brackets_and_zones(host: str) -> None:
    assert is_ip_literal(host) is True


@pytest.mark.parametrize(
    "host", ["example.com", "localhost", "", "metadata.google.internal", "1.2.3.4.nip.io"]
)
def test_host_names_are_not_ip_literals(host: str) -> None:
    assert is_ip_literal(host) is False
