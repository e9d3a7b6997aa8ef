"""What the chart renders: a Deployment and a PDB per role from the one roles map, the hook Jobs,
the `helm test` pod and the install notes, and no secret values unless asked for."""

from __future__ import annotations

import base64
import http.server
import subprocess
import sys
import threading

import pytest

from tests.chart.rendering import (
    ALL_FEATURES,
    CHART,
    Manifest,
    RenderError,
    component,
    env_of,
    helm,
    load_yaml,
    named,
    of_kind,
    render,
)

pytestmark = pytest.mark.chart

ROLES = {"gateway", "relay", "executor", "scorer", "biller", "notifier"}


def test_every_role_of_the_values_gets_a_deployment_and_a_disruption_budget(
    manifests: list[Manifest],
) -> None:
    roles = load_yaml(CHART / "values.yaml")["roles"]
    assert set(roles) == ROLES
    deployments = {component(d): d for d in of_kind(manifests, "Deployment")}
    budgets = {component(p): p for p in of_kind(manifests, "PodDisruptionBudget")}

    assert set(deployments) == set(budgets) == ROLES
    for role, deployment in deployments.items():
        container = deployment["spec"]["template"]["spec"]["containers"][0]
        assert container["args"] == roles[role]["args"]
        budget = budgets[role]
        assert budget["apiVersion"] == "policy/v1"
        assert budget["spec"]["maxUnavailable"] == 1
        assert budget["spec"]["unhealthyPodEvictionPolicy"] == "AlwaysAllow"
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        assert budget["spec"]["selector"]["matchLabels"].items() <= labels.items()


def test_a_role_added_to_the_map_gets_its_own_deployment_and_budget() -> None:
    manifests = render(
        sets=[
            "roles.executor-batch.enabled=true",
            "roles.executor-batch.args={consume,executor}",
            "roles.executor-batch.replicas=3",
            "roles.executor-batch.needs={database,kafka,models}",
            "roles.executor-batch.resources.requests.cpu=1",
            "roles.executor-batch.resources.requests.memory=1Gi",
            "roles.executor-batch.resources.limits.cpu=2",
            "roles.executor-batch.resources.limits.memory=2Gi",
            "roles.executor-batch.shutdown.preStopSleepSeconds=2",
            "roles.executor-batch.shutdown.pauseSeconds=0",
            "roles.executor-batch.shutdown.drainSeconds=60",
            "roles.executor-batch.shutdown.terminationGracePeriodSeconds=90",
            "roles.scorer.enabled=false",
        ]
    )

    deployments = named(manifests, "Deployment")
    assert deployments["t-agent-eval-executor-batch"]["spec"]["replicas"] == 3
    assert "t-agent-eval-scorer" not in deployments
    assert set(named(manifests, "PodDisruptionBudget")) == set(deployments)


def test_no_secret_is_rendered_by_default_only_references_to_one(default_manifests: list[Manifest]) -> None:
    assert of_kind(default_manifests, "Secret") == []
    gateway = named(default_manifests, "Deployment")["t-agent-eval-gateway"]
    env = env_of(gateway["spec"]["template"]["spec"]["containers"][0])

    for name in ("AGENT_EVAL_DATABASE_URL", "AGENT_EVAL_ADMIN_TOKEN", "AGENT_EVAL_WEBHOOK_SECRET_KEYS"):
        assert "value" not in env[name]
        assert env[name]["valueFrom"]["secretKeyRef"]["name"] == "t-agent-eval-secrets"


def test_a_chart_made_secret_exists_only_when_asked_for_and_before_the_migration(
    all_features_manifests: list[Manifest],
) -> None:
    (secret,) = of_kind(all_features_manifests, "Secret")
    migrate = named(all_features_manifests, "Job")["t-agent-eval-migrate"]
    values = load_yaml(ALL_FEATURES)["secrets"]["values"]

    assert {k: base64.b64decode(v).decode() for k, v in secret["data"].items()} == values
    hook, weight = "helm.sh/hook", "helm.sh/hook-weight"
    assert secret["metadata"]["annotations"][hook] == migrate["metadata"]["annotations"][hook]
    assert int(secret["metadata"]["annotations"][weight]) < int(migrate["metadata"]["annotations"][weight])


def test_a_chart_made_secret_and_an_existing_one_exclude_each_other() -> None:
    with pytest.raises(RenderError, match="exclude each other"):
        render(sets=["secrets.create=true", "secrets.existingSecret=mine", "secrets.values.A=b"])


def test_each_pod_gets_only_the_secrets_its_role_needs(all_features_manifests: list[Manifest]) -> None:
    def secret_env(role: str) -> set[str]:
        deployment = named(all_features_manifests, "Deployment")[f"t-agent-eval-{role}"]
        env = env_of(deployment["spec"]["template"]["spec"]["containers"][0])
        return {name for name, entry in env.items() if "secretKeyRef" in entry.get("valueFrom", {})}

    db, kafka = "AGENT_EVAL_DATABASE_URL", "AGENT_EVAL_KAFKA_SASL_PASSWORD"
    models = {"AGENT_EVAL_OPENAI_API_KEY", "AGENT_EVAL_LOCAL_API_KEY"}
    ui = "AGENT_EVAL_UI_SESSION_SECRET"
    assert secret_env("gateway") == {db, "AGENT_EVAL_ADMIN_TOKEN", "AGENT_EVAL_WEBHOOK_SECRET_KEYS", ui}
    assert secret_env("relay") == {db, kafka}
    assert secret_env("executor") == {db, kafka, *models}
    assert secret_env("scorer") == {db, kafka, *models}
    assert secret_env("biller") == {db, kafka}
    assert secret_env("notifier") == {db, kafka, "AGENT_EVAL_WEBHOOK_SECRET_KEYS"}


@pytest.mark.parametrize(("kind", "name"), [("Deployment", "relay"), ("Job", "kafka-init")])
def test_kafka_tls_files_and_password_reach_what_talks_to_kafka(
    all_features_manifests: list[Manifest], kind: str, name: str
) -> None:
    config = of_kind(all_features_manifests, "ConfigMap")[0]["data"]
    pod = named(all_features_manifests, kind)[f"t-agent-eval-{name}"]["spec"]["template"]["spec"]
    (volume,) = [v for v in pod["volumes"] if "secret" in v]
    (mount,) = [m for m in pod["containers"][0]["volumeMounts"] if m["name"] == volume["name"]]
    files = {f"{mount['mountPath']}/{item['path']}" for item in volume["secret"]["items"]}
    password = env_of(pod["containers"][0])["AGENT_EVAL_KAFKA_SASL_PASSWORD"]["valueFrom"]["secretKeyRef"]

    assert volume["secret"]["secretName"] == "agent-eval-kafka-tls"
    assert files == {config[f"AGENT_EVAL_KAFKA_SSL_{name}FILE"] for name in ("CA", "CERT", "KEY")}
    assert config["AGENT_EVAL_KAFKA_SECURITY_PROTOCOL"] == "SASL_SSL"
    assert password == {"name": "agent-eval-kafka", "key": "password"}


def test_plaintext_kafka_renders_no_sasl_or_tls_setting(default_manifests: list[Manifest]) -> None:
    """The service refuses SASL settings without a SASL protocol, and TLS files without TLS."""
    config = of_kind(default_manifests, "ConfigMap")[0]["data"]

    assert config["AGENT_EVAL_KAFKA_SECURITY_PROTOCOL"] == "PLAINTEXT"
    assert not [name for name in config if name.startswith(("AGENT_EVAL_KAFKA_SASL", "AGENT_EVAL_KAFKA_SSL"))]


def test_migration_and_topic_creation_are_pre_install_and_pre_upgrade_hooks(
    manifests: list[Manifest],
) -> None:
    jobs = named(manifests, "Job")

    assert set(jobs) == {"t-agent-eval-migrate", "t-agent-eval-kafka-init"}
    for job in jobs.values():
        assert job["metadata"]["annotations"]["helm.sh/hook"] == "pre-install,pre-upgrade"
    migrate = jobs["t-agent-eval-migrate"]["spec"]["template"]["spec"]["containers"][0]
    topics = jobs["t-agent-eval-kafka-init"]["spec"]["template"]["spec"]["containers"][0]
    assert migrate["args"] == ["migrate"]
    assert topics["args"] == ["kafka", "init"]


def test_hook_jobs_carry_their_settings_inline_since_they_run_before_the_config_map(
    manifests: list[Manifest],
) -> None:
    config = of_kind(manifests, "ConfigMap")[0]["data"]
    for name, job in named(manifests, "Job").items():
        container = job["spec"]["template"]["spec"]["containers"][0]
        assert "envFrom" not in container, name
        env = env_of(container)
        assert {k: env[k]["value"] for k in config} == config, name
        assert "serviceAccountName" not in job["spec"]["template"]["spec"], name


def test_topic_partitions_and_replication_come_from_values() -> None:
    manifests = render(sets=["kafka.topics.partitions=48", "kafka.topics.replicationFactor=1"])
    env = env_of(
        named(manifests, "Job")["t-agent-eval-kafka-init"]["spec"]["template"]["spec"]["containers"][0]
    )

    assert env["AGENT_EVAL_TOPIC_PARTITIONS"]["value"] == "48"
    assert env["AGENT_EVAL_TOPIC_REPLICATION_FACTOR"]["value"] == "1"


def test_the_install_notes_name_the_secret_to_create_and_a_missing_bootstrap() -> None:
    result = helm("install", "t", str(CHART), "--dry-run=client", "--namespace", "evals")
    notes = result.stdout[result.stdout.index("NOTES:") :]

    assert result.returncode == 0, result.stderr
    assert "kubectl -n evals create secret generic t-agent-eval-secrets" in notes
    assert "--from-literal=AGENT_EVAL_DATABASE_URL=" in notes
    assert "kafka.bootstrap is empty" in notes


def test_helm_test_asks_the_gateway_readyz_through_its_service(default_manifests: list[Manifest]) -> None:
    (pod,) = of_kind(default_manifests, "Pod")
    (container,) = pod["spec"]["containers"]
    service = named(default_manifests, "Service")["t-agent-eval-gateway"]
    script = container["args"][0]

    assert pod["metadata"]["annotations"]["helm.sh/hook"] == "test"
    assert container["command"] == ["python3", "-c"]  # the image has no curl
    url = f"http://{service['metadata']['name']}:{service['spec']['ports'][0]['port']}/readyz"
    assert f'url = "{url}"' in script
    compile(script, "readyz", "exec")


def test_the_helm_test_script_passes_on_a_ready_gateway(default_manifests: list[Manifest]) -> None:
    class Ready(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200 if self.path == "/readyz" else 404)
            self.end_headers()
            self.wfile.write(b'{"status": "ok"}')

        def log_message(self, format: str, *args: object) -> None:
            return None

    (pod,) = of_kind(default_manifests, "Pod")
    script = pod["spec"]["containers"][0]["args"][0]
    with http.server.ThreadingHTTPServer(("127.0.0.1", 0), Ready) as server:
        threading.Thread(target=server.serve_forever, daemon=True).start()
        local = script.replace("http://t-agent-eval-gateway:80/", f"http://127.0.0.1:{server.server_port}/")
        result = subprocess.run(
            [sys.executable, "-c", local], capture_output=True, text=True, check=False, timeout=30
        )
        server.shutdown()

    assert result.returncode == 0, result.stdout + result.stderr
    assert "/readyz 200" in result.stdout
