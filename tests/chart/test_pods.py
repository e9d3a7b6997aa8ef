"""Every pod the chart renders (Deployments, hook Jobs, the test pod) is hardened, bounded and
probed, and stops within its grace period."""

from __future__ import annotations

import pytest

from tests.chart.rendering import CHART, Manifest, RenderError, env_of, load_yaml, named, render, workloads

pytestmark = pytest.mark.chart

TMP = "/tmp"  # noqa: S108 - the mount path of the pods' emptyDir, not a file these tests write
ANY_ADDRESS = "0.0.0.0"  # noqa: S104 - what the pods bind, so the kubelet and the Services reach them

RESTRICTED_POD = {
    "runAsNonRoot": True,
    "runAsUser": 10001,
    "runAsGroup": 10001,
    "fsGroup": 10001,
    "seccompProfile": {"type": "RuntimeDefault"},
}


def test_every_pod_runs_under_the_restricted_pod_security_standard(manifests: list[Manifest]) -> None:
    pods = workloads(manifests)
    assert {w.kind for w in pods} == {"Deployment", "Job", "Pod"}

    for pod in pods:
        assert {k: pod.spec["securityContext"].get(k) for k in RESTRICTED_POD} == RESTRICTED_POD, pod.name
        assert pod.spec["automountServiceAccountToken"] is False, pod.name
        assert not pod.spec.get("hostNetwork"), pod.name
        assert not pod.spec.get("hostPID"), pod.name
        for container in pod.containers():
            context = container["securityContext"]
            assert context["allowPrivilegeEscalation"] is False, pod.name
            assert context["capabilities"] == {"drop": ["ALL"]}, pod.name
            assert context["readOnlyRootFilesystem"] is True, pod.name
            assert context.get("privileged") is not True, pod.name
            assert context.get("runAsNonRoot", True) is True, pod.name


def test_every_container_has_a_writable_tmp_and_nothing_else_writable(manifests: list[Manifest]) -> None:
    for pod in workloads(manifests):
        volumes = {v["name"]: v for v in pod.spec["volumes"]}
        for container in pod.containers():
            mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
            assert "emptyDir" in volumes[mounts[TMP]["name"]], pod.name
            others = [m for path, m in mounts.items() if path != TMP]
            assert all(m.get("readOnly") is True for m in others), pod.name


def test_every_container_has_cpu_and_memory_requests_and_limits(manifests: list[Manifest]) -> None:
    for pod in workloads(manifests):
        for container in pod.containers():
            resources = container["resources"]
            for bound in ("requests", "limits"):
                assert {"cpu", "memory"} <= set(resources.get(bound, {})), (pod.name, bound)


def test_every_role_container_has_startup_liveness_and_readiness_probes(manifests: list[Manifest]) -> None:
    deployments = [w for w in workloads(manifests) if w.kind == "Deployment"]
    assert len(deployments) == 6

    for pod in deployments:
        for container in pod.containers():
            port = container["ports"][0]["name"]
            assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": port}, pod.name
            assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": port}, pod.name
            assert container["startupProbe"]["httpGet"] == {"path": "/healthz", "port": port}, pod.name
            # The startup probe gives a slow start room instead of a large initialDelaySeconds.
            startup = container["startupProbe"]
            assert startup["periodSeconds"] * startup["failureThreshold"] >= 60, pod.name


def test_the_gateway_is_probed_on_its_api_port_and_the_roles_on_their_health_port(
    manifests: list[Manifest],
) -> None:
    deployments = named(manifests, "Deployment")
    for name, deployment in deployments.items():
        container = deployment["spec"]["template"]["spec"]["containers"][0]
        expected = ("http", 8080) if name.endswith("-gateway") else ("metrics", 9100)
        assert (container["ports"][0]["name"], container["ports"][0]["containerPort"]) == expected, name


def test_every_role_stops_within_its_grace_period(manifests: list[Manifest]) -> None:
    """preStop sleep + readiness pause + drain + margin <= terminationGracePeriodSeconds, with the
    pause and the gateway's drain handed to the process."""
    roles = load_yaml(CHART / "values.yaml")["roles"]
    for name, deployment in named(manifests, "Deployment").items():
        role = name.removeprefix("t-agent-eval-")
        stop = roles[role]["shutdown"]
        spec = deployment["spec"]["template"]["spec"]
        container = spec["containers"][0]
        grace = spec["terminationGracePeriodSeconds"]
        pre_stop = container["lifecycle"]["preStop"]["sleep"]["seconds"]
        env = env_of(container)

        assert pre_stop == stop["preStopSleepSeconds"] > 0, name
        assert env["AGENT_EVAL_SHUTDOWN_PAUSE_S"]["value"] == str(stop["pauseSeconds"]), name
        assert pre_stop + stop["pauseSeconds"] + stop["drainSeconds"] + 5 <= grace, name
        if role == "gateway":
            assert env["AGENT_EVAL_SHUTDOWN_TIMEOUT_S"]["value"] == str(stop["drainSeconds"])
            assert stop["pauseSeconds"] > 0  # /readyz fails while the pod still serves
        else:
            assert "AGENT_EVAL_SHUTDOWN_TIMEOUT_S" not in env, name


def test_the_executor_grace_covers_a_whole_model_call() -> None:
    executor = load_yaml(CHART / "values.yaml")["roles"]["executor"]["shutdown"]

    assert executor["drainSeconds"] >= 60  # the provider's default timeout_s
    assert executor["terminationGracePeriodSeconds"] > 60


def test_a_shutdown_budget_over_the_grace_period_is_refused() -> None:
    with pytest.raises(RenderError, match=r"roles\.gateway\.shutdown.*exceeds terminationGracePeriodSeconds"):
        render(sets=["roles.gateway.shutdown.drainSeconds=30"])


def test_every_container_binds_every_address_through_the_config_map(manifests: list[Manifest]) -> None:
    config = next(m for m in manifests if m["kind"] == "ConfigMap")

    assert config["data"]["AGENT_EVAL_HOST"] == ANY_ADDRESS
    for name, deployment in named(manifests, "Deployment").items():
        container = deployment["spec"]["template"]["spec"]["containers"][0]
        assert container["envFrom"] == [{"configMapRef": {"name": config["metadata"]["name"]}}], name
