"""The chart as the tests see it: `helm template` with the pinned helm, parsed into manifests."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "helm" / "agent-eval"
ALL_FEATURES = CHART / "ci" / "all-features-values.yaml"
RELEASE = "t"

Manifest = dict[str, Any]


class RenderError(Exception):
    """`helm template` refused the values (schema, a template's `fail`, a `required`)."""


def helm_binary() -> Path:
    path = Path(os.environ.get("HELM", ROOT / ".tools" / "bin" / "helm"))
    if not path.is_file():
        pytest.fail(f"{path} does not exist: run scripts/lint-chart (it builds the pinned helm)")
    return path


def helm(*args: str) -> subprocess.CompletedProcess[str]:
    tools = ROOT / ".tools" / "helm"
    env = {
        **os.environ,
        "HELM_CACHE_HOME": str(tools / "cache"),
        "HELM_CONFIG_HOME": str(tools / "config"),
        "HELM_DATA_HOME": str(tools / "data"),
    }
    return subprocess.run([str(helm_binary()), *args], capture_output=True, text=True, check=False, env=env)


def render(*values: Path, sets: Sequence[str] = (), chart: Path = CHART) -> list[Manifest]:
    """Every document the chart renders, hooks and the test pod included."""
    args = ["template", RELEASE, str(chart)]
    for path in values:
        args += ["--values", str(path)]
    for assignment in sets:
        args += ["--set", assignment]
    result = helm(*args)
    if result.returncode != 0:
        raise RenderError(result.stderr)
    return [cast("Manifest", doc) for doc in yaml.safe_load_all(result.stdout) if doc]


def load_yaml(path: Path) -> dict[str, Any]:
    return cast("dict[str, Any]", yaml.safe_load(path.read_text()))


def of_kind(manifests: Sequence[Manifest], kind: str) -> list[Manifest]:
    return [m for m in manifests if m["kind"] == kind]


def named(manifests: Sequence[Manifest], kind: str) -> dict[str, Manifest]:
    return {m["metadata"]["name"]: m for m in of_kind(manifests, kind)}


def component(manifest: Manifest) -> str:
    return cast("str", manifest["metadata"]["labels"]["app.kubernetes.io/component"])


@dataclass(frozen=True)
class Workload:
    """A pod template (or a pod) the chart renders, and where it comes from."""

    kind: str
    name: str
    spec: Manifest  # the PodSpec

    def containers(self) -> Iterator[Manifest]:
        yield from self.spec.get("initContainers", [])
        yield from self.spec["containers"]


def workloads(manifests: Sequence[Manifest]) -> list[Workload]:
    """Every PodSpec: the Deployments', the hook Jobs' and the `helm test` Pod."""
    found = []
    for manifest in manifests:
        kind, name = manifest["kind"], manifest["metadata"]["name"]
        if kind in ("Deployment", "Job"):
            found.append(Workload(kind, name, manifest["spec"]["template"]["spec"]))
        elif kind == "Pod":
            found.append(Workload(kind, name, manifest["spec"]))
    return found


def env_of(container: Manifest) -> dict[str, Manifest]:
    return {entry["name"]: entry for entry in container.get("env", [])}
