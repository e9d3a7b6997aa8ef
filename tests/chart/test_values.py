"""The values: documented key by key, typos refused by the schema, every service setting reachable,
a settings change rolling the pods, and the offline validation able to fail."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from service.core.settings import Settings
from tests.chart.rendering import (
    ALL_FEATURES,
    CHART,
    ROOT,
    Manifest,
    RenderError,
    helm,
    helm_binary,
    load_yaml,
    named,
    of_kind,
    render,
)

pytestmark = pytest.mark.chart

# Settings the chart sets through values of their own rather than `config`.
SET_ELSEWHERE = {
    "DATABASE_URL", "ADMIN_TOKEN", "WEBHOOK_SECRET_KEYS", "OPENAI_API_KEY", "UI_SESSION_SECRET",  # secrets.*
    "HOST", "PORT", "HEALTH_PORT",  # fixed 0.0.0.0, ports.*
    "KAFKA_BOOTSTRAP", "TOPIC_PREFIX", "TOPIC_PARTITIONS", "TOPIC_REPLICATION_FACTOR",  # kafka.*
    "KAFKA_SECURITY_PROTOCOL", "KAFKA_SASL_MECHANISM", "KAFKA_SASL_USERNAME", "KAFKA_SASL_PASSWORD",
    "KAFKA_SSL_CAFILE", "KAFKA_SSL_CERTFILE", "KAFKA_SSL_KEYFILE",
    "SHUTDOWN_PAUSE_S", "SHUTDOWN_TIMEOUT_S",  # roles.<name>.shutdown
    "DATA_DIR",  # `agent-eval dev` only
}  # fmt: skip


def _leaf_keys(node: Any, path: tuple[str, ...] = ()) -> set[str]:
    """Dotted paths of values.yaml's leaves (an empty map or a list is a leaf); roles.<name>."""
    if isinstance(node, dict) and node:
        return {key for name, child in node.items() for key in _leaf_keys(child, (*path, str(name)))}
    if path[:1] == ("roles",):
        path = ("roles", "<name>", *path[2:])
    return {".".join(path)}


def _readme_keys() -> set[str]:
    readme = (CHART / "README.md").read_text()
    return set(re.findall(r"^\| `([^`]+)` \|", readme, flags=re.MULTILINE))


def _schema() -> dict[str, Any]:
    schema: dict[str, Any] = json.loads((CHART / "values.schema.json").read_text())
    return schema


def _schema_knows(schema: dict[str, Any], node: dict[str, Any], parts: list[str]) -> bool:
    """Whether a dotted key is a path the schema allows; a <placeholder> matches any entry."""
    while "$ref" in node:
        node = schema["definitions"][node["$ref"].removeprefix("#/definitions/")]
    if not parts:
        return True
    part, rest = parts[0], parts[1:]
    if part.startswith("<"):
        candidates = list(node.get("properties", {}).values())
        if isinstance(node.get("additionalProperties"), dict):
            candidates.append(node["additionalProperties"])
        return any(_schema_knows(schema, candidate, rest) for candidate in candidates)
    child = node.get("properties", {}).get(part)
    extra = node.get("additionalProperties")
    if (
        child is None
        and isinstance(extra, dict)
        and part in node.get("propertyNames", {}).get("enum", [part])
    ):
        child = extra
    return child is not None and _schema_knows(schema, child, rest)


def test_the_chart_readme_documents_every_value() -> None:
    leaves = _leaf_keys(load_yaml(CHART / "values.yaml"))
    assert len(leaves) > 100

    assert leaves - _readme_keys() == set()


def test_the_chart_readme_documents_no_key_the_schema_does_not_know() -> None:
    schema = _schema()

    assert {key for key in _readme_keys() if not _schema_knows(schema, schema, key.split("."))} == set()


@pytest.mark.parametrize(
    ("assignment", "misspelt"),
    [
        ("roles.executor.replicaz=3", "replicaz"),
        ("ingres.enabled=true", "ingres"),
        ("kafka.topics.partition=24", "partition"),
        ("config.LOG_LEVLE=debug", "LOG_LEVLE"),
        ("networkPolicy.internet.clusterCidrs={10.0.0.0/8}", "clusterCidrs"),
        ("roles.gateway.shutdown.preStopSleep=5", "preStopSleep"),
    ],
)
def test_the_schema_refuses_a_misspelt_key(assignment: str, misspelt: str) -> None:
    with pytest.raises(RenderError, match=rf"schema(.|\n)*'{misspelt}'"):
        render(sets=[assignment])


def test_helm_lint_fails_on_a_misspelt_key() -> None:
    result = helm("lint", "--strict", str(CHART), "--set", "serviceMonitor.enable=true")

    assert result.returncode != 0
    assert "enable" in result.stdout + result.stderr


@pytest.mark.parametrize(
    "wrong",
    [
        "roles.executor.replicas=two",
        "kafka.securityProtocol=SASL",
        "config.LOG_LEVEL=verbose",
        "image.pullPolicy=Sometimes",
    ],
)
def test_the_schema_refuses_a_wrong_value(wrong: str) -> None:
    with pytest.raises(RenderError):
        render(sets=[wrong])


def test_every_config_name_is_a_setting_of_the_service() -> None:
    names = set(_schema()["properties"]["config"]["propertyNames"]["enum"])
    settings = {name.upper() for name in Settings.model_fields}

    assert names - settings == set()
    assert names & SET_ELSEWHERE == set()


def test_every_setting_of_the_service_can_be_set_through_the_chart() -> None:
    """A setting added to service/core/settings.py fails this until the schema (or a value of its
    own) carries it."""
    names = set(_schema()["properties"]["config"]["propertyNames"]["enum"])
    settings = {name.upper() for name in Settings.model_fields}

    assert settings - names - SET_ELSEWHERE == set()


def test_settings_reach_the_config_map_as_the_environment_spells_them(
    all_features_manifests: list[Manifest],
) -> None:
    data = of_kind(all_features_manifests, "ConfigMap")[0]["data"]
    providers = load_yaml(ALL_FEATURES)["config"]["PROVIDERS"]

    assert data["AGENT_EVAL_MAX_BODY_BYTES"] == "1048576"  # not 1.048576e+06
    assert data["AGENT_EVAL_RELAY_BUSY_POLL_S"] == "0.02"
    assert data["AGENT_EVAL_WEBHOOK_ALLOW_PRIVATE"] == "false"
    assert json.loads(data["AGENT_EVAL_PROVIDERS"]) == providers
    assert Settings.model_validate_json(json.dumps({"providers": providers})).providers["local"].models


def _checksums(manifests: list[Manifest]) -> dict[str, str]:
    return {
        name: d["spec"]["template"]["metadata"]["annotations"]["checksum/config"]
        for name, d in named(manifests, "Deployment").items()
    }


def test_a_settings_change_changes_every_role_checksum_and_a_replica_change_does_not(
    default_manifests: list[Manifest],
) -> None:
    before = _checksums(default_manifests)
    changed = _checksums(render(sets=["config.LOG_LEVEL=debug"]))
    unrelated = _checksums(render(sets=["roles.relay.replicas=3"]))

    assert len(set(before.values())) == 1
    assert all(changed[name] != checksum for name, checksum in before.items())
    assert unrelated == before


def test_the_kafka_bootstrap_is_part_of_the_checksum(default_manifests: list[Manifest]) -> None:
    changed = _checksums(render(sets=["kafka.bootstrap=kafka:9092"]))

    assert set(changed.values()).isdisjoint(_checksums(default_manifests).values())


def test_sasl_needs_a_username() -> None:
    with pytest.raises(RenderError, match=r"kafka\.sasl\.username is required"):
        render(sets=["kafka.securityProtocol=SASL_SSL"])


def test_a_client_certificate_needs_its_key() -> None:
    with pytest.raises(RenderError):
        render(sets=["kafka.securityProtocol=SSL", "kafka.tls.existingSecret=t", "kafka.tls.certKey=tls.crt"])


def _lint_chart(chart: Path) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, str(ROOT / "scripts" / "lint_chart.py"), "--helm", str(helm_binary())]
    command += ["--chart", str(chart), "--kube-version", "1.37.0"]
    return subprocess.run(command, capture_output=True, text=True, check=False)


@pytest.fixture
def chart_copy(tmp_path: Path) -> Path:
    copy = tmp_path / "agent-eval"
    shutil.copytree(CHART, copy)
    return copy


def test_the_offline_validation_passes_the_chart_and_names_what_it_skips(chart_copy: Path) -> None:
    (chart_copy / "templates" / "monitor.yaml").write_text(
        "apiVersion: monitoring.coreos.com/v1\nkind: ServiceMonitor\nmetadata: {name: m}\nspec: {}\n"
    )
    result = _lint_chart(chart_copy)

    assert result.returncode == 0, result.stdout + result.stderr
    assert "skipped ServiceMonitor/m (monitoring.coreos.com/v1)" in result.stdout


def test_the_offline_validation_fails_a_field_kubernetes_does_not_know(chart_copy: Path) -> None:
    deployments = chart_copy / "templates" / "deployments.yaml"
    deployments.write_text(
        deployments.read_text().replace("revisionHistoryLimit: 3", "revisionHistoryLimits: 3")
    )
    result = _lint_chart(chart_copy)

    assert result.returncode == 1
    assert "INVALID Deployment/lint-chart-agent-eval-gateway" in result.stdout
    assert "revisionHistoryLimits" in result.stdout


def test_the_offline_validation_fails_a_kind_it_has_no_schema_for(chart_copy: Path) -> None:
    (chart_copy / "templates" / "odd.yaml").write_text(
        "apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: w}\n"
    )
    result = _lint_chart(chart_copy)

    assert result.returncode == 1
    assert "INVALID Widget/w: no schema" in result.stdout
