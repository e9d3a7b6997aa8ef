"""Scaling and scraping: an HPA for the gateway, KEDA on consumer lag for the consumer roles, and
every role's /metrics behind one Service."""

from __future__ import annotations

import pytest

from tests.chart.rendering import (
    ALL_FEATURES,
    Manifest,
    RenderError,
    component,
    load_yaml,
    named,
    of_kind,
    render,
)

pytestmark = pytest.mark.chart

CONSUMERS = {"executor", "scorer", "biller", "notifier"}


def test_the_gateway_scales_on_cpu_and_leaves_its_replica_count_to_the_hpa(manifests: list[Manifest]) -> None:
    (hpa,) = of_kind(manifests, "HorizontalPodAutoscaler")
    gateway = named(manifests, "Deployment")["t-agent-eval-gateway"]

    assert hpa["apiVersion"] == "autoscaling/v2"
    assert hpa["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": "t-agent-eval-gateway",
    }
    assert hpa["spec"]["metrics"][0]["resource"]["name"] == "cpu"
    assert "replicas" not in gateway["spec"]


def test_keda_scales_every_consumer_role_on_the_lag_of_the_topics_it_reads(
    all_features_manifests: list[Manifest],
) -> None:
    scaled = {component(s): s for s in of_kind(all_features_manifests, "ScaledObject")}
    deployments = named(all_features_manifests, "Deployment")
    values = load_yaml(ALL_FEATURES)["kafka"]
    topics = {
        "executor": ["run-requests"],
        "scorer": ["run-events"],
        "biller": ["run-events"],
        "notifier": ["run-events", "ops-events"],
    }

    assert set(scaled) == CONSUMERS
    for role, obj in scaled.items():
        triggers = obj["spec"]["triggers"]
        assert [t["metadata"]["topic"] for t in triggers] == [f"prod.agent-eval.{t}.v1" for t in topics[role]]
        for trigger in triggers:
            assert trigger["type"] == "kafka"
            assert trigger["metadata"]["consumerGroup"] == f"prod.agent-eval.{role}"
            assert trigger["metadata"]["bootstrapServers"] == values["bootstrap"]
            assert trigger["authenticationRef"] == {"name": "t-agent-eval-kafka"}
        assert obj["spec"]["maxReplicaCount"] <= values["topics"]["partitions"]
        assert obj["spec"]["scaleTargetRef"]["name"] in deployments
        assert "replicas" not in deployments[obj["spec"]["scaleTargetRef"]["name"]]["spec"]
    assert int(scaled["executor"]["spec"]["triggers"][0]["metadata"]["lagThreshold"]) <= 5


def test_keda_refuses_more_replicas_than_partitions() -> None:
    with pytest.raises(RenderError, match=r"maxReplicas \(13\) exceeds kafka.topics.partitions \(12\)"):
        render(
            sets=[
                "kafka.bootstrap=k:9092",
                "roles.executor.keda.enabled=true",
                "roles.executor.keda.maxReplicas=13",
            ]
        )


def test_without_kafka_credentials_keda_needs_no_trigger_authentication() -> None:
    manifests = render(sets=["kafka.bootstrap=k:9092", "roles.scorer.keda.enabled=true"])

    (scaled,) = of_kind(manifests, "ScaledObject")
    assert of_kind(manifests, "TriggerAuthentication") == []
    assert "authenticationRef" not in scaled["spec"]["triggers"][0]


def test_the_metrics_service_and_service_monitor_reach_every_role(
    all_features_manifests: list[Manifest],
) -> None:
    services = named(all_features_manifests, "Service")
    metrics = services["t-agent-eval-metrics"]
    (monitor,) = of_kind(all_features_manifests, "ServiceMonitor")

    assert metrics["spec"]["clusterIP"] == "None"
    assert {p["targetPort"] for p in metrics["spec"]["ports"]} == {"http", "metrics"}
    assert monitor["spec"]["selector"]["matchLabels"].items() <= metrics["metadata"]["labels"].items()
    assert {e["port"] for e in monitor["spec"]["endpoints"]} == {"http", "metrics"}
    for deployment in of_kind(all_features_manifests, "Deployment"):
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        assert metrics["spec"]["selector"].items() <= labels.items()
    for job in of_kind(all_features_manifests, "Job"):
        labels = job["spec"]["template"]["metadata"]["labels"]
        assert not metrics["spec"]["selector"].items() <= labels.items()
