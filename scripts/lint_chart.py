"""Validate what the Helm chart renders against the Kubernetes OpenAPI schemas, offline.

`scripts/lint-chart` runs this after `helm lint --strict`: every document `helm template`
renders, with the default values and with each `--values` file, is checked against each
`--kube-version` by kubernetes-validate in strict mode (an unknown or misplaced field is an
error). kubernetes-validate ships the built-in API's schemas only, so the chart's custom
resources (KEDA, the Prometheus Operator) are skipped by name, each skip printed with its reason;
any other kind without a schema is an error, never a silent pass.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import kubernetes_validate
import yaml

Manifest = dict[str, Any]

# (apiVersion, kind) -> why it is not validated here.
CUSTOM_RESOURCES = {
    ("keda.sh/v1alpha1", "ScaledObject"): "KEDA custom resource (its CRD is not in the Kubernetes schemas)",
    (
        "keda.sh/v1alpha1",
        "TriggerAuthentication",
    ): "KEDA custom resource (its CRD is not in the Kubernetes schemas)",
    ("monitoring.coreos.com/v1", "ServiceMonitor"): (
        "Prometheus Operator custom resource (its CRD is not in the Kubernetes schemas)"
    ),
}


@dataclass
class Outcome:
    """What one rendering came to against one Kubernetes version."""

    validated: Counter[str] = field(default_factory=Counter)
    skipped: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def render(helm: Path, chart: Path, values: Path | None, kube_version: str) -> list[Manifest]:
    """Every non-empty document `helm template` renders (hooks and the test pod included)."""
    command = [str(helm), "template", "lint-chart", str(chart), "--kube-version", kube_version]
    if values is not None:
        command += ["--values", str(values)]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise SystemExit(f"lint-chart: helm template failed:\n{result.stderr}")
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def describe(manifest: Manifest) -> str:
    return f"{manifest.get('kind')}/{manifest.get('metadata', {}).get('name')}"


def validate(manifests: Sequence[Manifest], kube_version: str) -> Outcome:
    outcome = Outcome()
    for manifest in manifests:
        key = (manifest.get("apiVersion", ""), manifest.get("kind", ""))
        if key in CUSTOM_RESOURCES:
            outcome.skipped.append(f"{describe(manifest)} ({key[0]}): {CUSTOM_RESOURCES[key]}")
            continue
        try:
            kubernetes_validate.validate(manifest, kube_version, strict=True)
        except kubernetes_validate.ValidationError as error:
            path = ".".join(str(part) for part in error.path)
            outcome.errors.append(f"{describe(manifest)}: {path}: {error.message}")
        except kubernetes_validate.SchemaNotFoundError as error:
            outcome.errors.append(f"{describe(manifest)}: no schema: {error.message}")
        else:
            outcome.validated[str(key[1])] += 1
    return outcome


def report(label: str, kube_version: str, outcome: Outcome) -> None:
    kinds = ", ".join(f"{count} {kind}" for kind, count in sorted(outcome.validated.items()))
    total = sum(outcome.validated.values())
    print(f"lint-chart: {label} on Kubernetes {kube_version}: {total} valid ({kinds})")
    for skipped in outcome.skipped:
        print(f"lint-chart:   skipped {skipped}")
    for error in outcome.errors:
        print(f"lint-chart:   INVALID {error}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--helm", type=Path, required=True)
    parser.add_argument("--chart", type=Path, required=True)
    parser.add_argument(
        "--values",
        type=Path,
        action="append",
        default=[],
        help="a values file (the defaults are always checked)",
    )
    parser.add_argument("--kube-version", action="append", required=True, dest="kube_versions")
    args = parser.parse_args(argv)
    failed = False
    for values in [None, *args.values]:
        label = "default values" if values is None else str(values)
        for kube_version in args.kube_versions:
            outcome = validate(render(args.helm, args.chart, values, kube_version), kube_version)
            report(label, kube_version, outcome)
            failed = failed or bool(outcome.errors)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
