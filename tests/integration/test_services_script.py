"""`scripts/services`: the local services every other test stands on."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from tests.support.processes import ROOT

SERVICES = str(ROOT / "scripts" / "services")


def run(*args: str, env: dict[str, str], timeout_s: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [SERVICES, *args],
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        timeout=timeout_s,
        check=False,
    )


def test_up_fails_within_30_seconds_with_a_clear_message_when_maven_central_is_unreachable(
    tmp_path: Path,
) -> None:
    env = {
        "AGENT_EVAL_SERVICES_DIR": str(tmp_path / "state"),
        "AGENT_EVAL_DATABASE_URL": "postgresql://someone@127.0.0.1:5432/elsewhere",  # leave PostgreSQL alone
        "AGENT_EVAL_KAFKA_BOOTSTRAP": "",
        "AGENT_EVAL_MAVEN_REPO_URL": "http://127.0.0.1:1/maven2/",
    }
    result = run("up", env=env, timeout_s=30)  # TimeoutExpired fails the test: "within 30 s" is the contract
    assert result.returncode == 1
    assert "Maven Central cannot be reached" in result.stderr
    assert "AGENT_EVAL_KAFKA_BOOTSTRAP" in result.stderr  # says what to do instead
    assert "PostgreSQL: using AGENT_EVAL_DATABASE_URL from the environment" in result.stderr


def test_env_prints_what_is_set_and_says_what_is_missing(tmp_path: Path) -> None:
    env = {
        "AGENT_EVAL_SERVICES_DIR": str(tmp_path / "state"),
        "AGENT_EVAL_DATABASE_URL": "postgresql://someone@db.example:5432/agent_eval",
        "AGENT_EVAL_KAFKA_BOOTSTRAP": "",
    }
    result = run("env", env=env)
    assert result.returncode == 1
    assert result.stdout == "export AGENT_EVAL_DATABASE_URL=postgresql://someone@db.example:5432/agent_eval\n"
    assert "not running: AGENT_EVAL_KAFKA_BOOTSTRAP" in result.stderr


def test_env_of_the_running_services_is_what_the_suite_uses() -> None:
    result = run("env", env={})
    assert result.returncode == 0
    exported = dict(line.removeprefix("export ").split("=", 1) for line in result.stdout.splitlines())
    assert exported["AGENT_EVAL_DATABASE_URL"].strip("'") == os.environ["AGENT_EVAL_DATABASE_URL"]
    assert exported["AGENT_EVAL_KAFKA_BOOTSTRAP"].strip("'") == os.environ["AGENT_EVAL_KAFKA_BOOTSTRAP"]
