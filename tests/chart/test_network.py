"""Traffic: the Ingress outlasts a blocked request, and the NetworkPolicies deny by default and
let only the executor and the notifier reach the internet."""

from __future__ import annotations

import ipaddress

import pytest

from tests.chart.rendering import ALL_FEATURES, Manifest, RenderError, component, named, of_kind, render

pytestmark = pytest.mark.chart

BLOCKING_WAIT_S = 60  # the longest `Prefer: wait`


def test_the_ingress_read_timeout_outlasts_a_blocked_request_and_sse_is_unbuffered(
    all_features_manifests: list[Manifest],
) -> None:
    (ingress,) = of_kind(all_features_manifests, "Ingress")
    annotations = ingress["metadata"]["annotations"]

    assert int(annotations["nginx.ingress.kubernetes.io/proxy-read-timeout"]) > BLOCKING_WAIT_S
    assert int(annotations["nginx.ingress.kubernetes.io/proxy-send-timeout"]) > BLOCKING_WAIT_S
    assert annotations["nginx.ingress.kubernetes.io/proxy-buffering"] == "off"
    backend = ingress["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]
    assert backend == {"name": "t-agent-eval-gateway", "port": {"name": "http"}}


def test_an_ingress_timeout_within_the_blocking_wait_is_refused() -> None:
    with pytest.raises(RenderError, match="proxyReadTimeoutSeconds"):
        render(sets=["ingress.enabled=true", "ingress.proxyReadTimeoutSeconds=60"])


def test_no_ingress_and_no_network_policy_by_default(default_manifests: list[Manifest]) -> None:
    assert of_kind(default_manifests, "Ingress") == []
    assert of_kind(default_manifests, "NetworkPolicy") == []


def _internet_rules(policy: Manifest) -> list[Manifest]:
    """Egress rules that reach a public address: no `to` (anywhere), or an ipBlock covering it."""
    public = ipaddress.ip_address("8.8.8.8")

    def opens(block: Manifest) -> bool:
        excluded = any(public in ipaddress.ip_network(e) for e in block.get("except", []))
        return public in ipaddress.ip_network(block["cidr"]) and not excluded

    return [
        rule
        for rule in policy["spec"].get("egress", [])
        if "to" not in rule or any(opens(peer["ipBlock"]) for peer in rule["to"] if "ipBlock" in peer)
    ]


def test_only_the_executor_and_the_notifier_reach_the_internet(
    all_features_manifests: list[Manifest],
) -> None:
    policies = {component(p): p for p in of_kind(all_features_manifests, "NetworkPolicy")}

    reaching = {name for name, policy in policies.items() if _internet_rules(policy)}
    assert reaching == {"executor", "notifier"}
    for name in reaching:
        (rule,) = _internet_rules(policies[name])
        (block,) = [p["ipBlock"] for p in rule["to"]]
        excluded = [ipaddress.ip_network(e) for e in block["except"]]
        for address in ("169.254.169.254", "10.1.2.3", "172.16.0.1", "192.168.1.1"):
            assert any(ipaddress.ip_address(address) in net for net in excluded), (name, address)


def test_a_default_deny_covers_every_pod_of_the_release(all_features_manifests: list[Manifest]) -> None:
    deny = named(all_features_manifests, "NetworkPolicy")["t-agent-eval-default-deny"]

    assert deny["spec"]["policyTypes"] == ["Ingress", "Egress"]
    assert "ingress" not in deny["spec"]
    assert "egress" not in deny["spec"]
    selector = deny["spec"]["podSelector"]["matchLabels"]
    pods = [
        d["spec"]["template"]["metadata"]["labels"] for d in of_kind(all_features_manifests, "Deployment")
    ]
    pods += [j["spec"]["template"]["metadata"]["labels"] for j in of_kind(all_features_manifests, "Job")]
    pods += [p["metadata"]["labels"] for p in of_kind(all_features_manifests, "Pod")]
    assert all(selector.items() <= labels.items() for labels in pods)


def test_every_component_gets_dns_and_only_the_egress_it_needs(
    all_features_manifests: list[Manifest],
) -> None:
    policies = {component(p): p for p in of_kind(all_features_manifests, "NetworkPolicy")}
    expected_ports = {
        "gateway": {5432},
        "relay": {5432, 9092, 9093},
        "executor": {5432, 9092, 9093, 8000},
        "scorer": {5432, 9092, 9093, 8000},
        "biller": {5432, 9092, 9093},
        "notifier": {5432, 9092, 9093},
        "migrate": {5432},
        "kafka-init": {9092, 9093},
        "test": {8080},
    }

    assert set(policies) == {*expected_ports, "default-deny"}
    for name, ports in expected_ports.items():
        egress = policies[name]["spec"]["egress"]
        assert {"port": 53, "protocol": "UDP"} in egress[0]["ports"], name
        assert {p["port"] for rule in egress[1:] for p in rule.get("ports", [])} == ports, name


def test_ingress_is_open_only_on_the_gateway_port_and_the_metrics_ports(
    all_features_manifests: list[Manifest],
) -> None:
    policies = {component(p): p for p in of_kind(all_features_manifests, "NetworkPolicy")}

    for name, policy in policies.items():
        ports = {p["port"] for rule in policy["spec"].get("ingress", []) for p in rule["ports"]}
        expected = {"gateway": {"http"}, "migrate": set(), "kafka-init": set(), "test": set()}.get(
            name, {"metrics"}
        )
        if name == "default-deny":
            expected = set()
        assert ports == expected, name
        for rule in policy["spec"].get("ingress", []):
            assert rule.get("from"), name  # all-features restricts every source


def test_network_policy_peers_come_from_values() -> None:
    manifests = render(ALL_FEATURES, sets=["networkPolicy.database.to[0].ipBlock.cidr=10.99.0.0/16"])
    relay = named(manifests, "NetworkPolicy")["t-agent-eval-relay"]
    database = next(r for r in relay["spec"]["egress"] if {"port": 5432, "protocol": "TCP"} in r["ports"])

    assert database["to"] == [{"ipBlock": {"cidr": "10.99.0.0/16"}}]
