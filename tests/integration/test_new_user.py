"""What a new user meets first, tried the way they try it: `make run` with the README's options,
`agent-eval admin` beside it, a busy port, the README's shell blocks, `make test`'s last word."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from consumers.registry import ROLES
from service.local import pgserver
from service.runtime.cpus import available_cpus
from tests.support.processes import AGENT_EVAL, ROOT, Spawned, spawned
from tests.support.waiting import eventually_sync

START_TIMEOUT_S = 90.0
LONGEST_START_LINE = 200
NO_DATABASE_URL = {k: v for k, v in os.environ.items() if k != "AGENT_EVAL_DATABASE_URL"}
# A user's shell, not a make nested in `make test` (whose MAKEFLAGS carry its own variables).
NOT_IN_MAKE = {k: v for k, v in os.environ.items() if k not in {"MAKEFLAGS", "MFLAGS", "MAKELEVEL"}}


def _cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [AGENT_EVAL, *args],
        env={**NO_DATABASE_URL, **(env or {})},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=ROOT,
    )


def _started(child: Spawned, port: int) -> list[str]:
    """The output up to the moment every consumer role has started (the start-up a person reads)."""

    def started() -> bool:
        output = child.output()
        serving = f"agent-eval: serving http://127.0.0.1:{port} " in output
        # `make run` starts one executor process per usable CPU, each a consumer of its own.
        every_role = len(ROLES) - 1 + available_cpus()
        return (serving and output.count("consumer_started") >= every_role) or child.proc.poll() is not None

    eventually_sync(started, timeout_s=START_TIMEOUT_S, what="make run to serve and start every role")
    assert child.proc.poll() is None, child.output()
    return child.output().splitlines()


def _stop(child: Spawned, data_dir: Path) -> None:
    """Ctrl-C, as the README says: `make` and `agent-eval dev` both get it; the database stops."""
    child.signal(signal.SIGINT)
    child.wait(60)
    eventually_sync(
        lambda: pgserver.read_state(data_dir / "postgres") is None, what="the dev database to stop"
    )


def test_make_run_takes_the_readme_options_starts_quietly_and_admin_finds_its_database(
    tmp_path: Path,
) -> None:
    port, data_dir = pgserver.free_port(), tmp_path / "dev-data"
    argv = ["make", "--no-print-directory", "run", f"ARGS=--port {port} --data-dir {data_dir}"]
    # What a terminal shows (off a terminal the logs are JSON lines, for machines), from a shell.
    env = {"AGENT_EVAL_LOG_FORMAT": "console", "MAKEFLAGS": "", "MFLAGS": "", "MAKELEVEL": ""}
    with spawned(argv, env) as child:
        try:
            lines = _started(child, port)
            assert (data_dir / "postgres" / "postgres.json").is_file()
            key_line = child.find("API key (shown once, keep it): ")
            assert key_line is not None, child.output()
            long_lines = [line for line in lines if len(line) > LONGEST_START_LINE]
            assert long_lines == []
            assert [line for line in lines if "partition" in line] == []

            company = _cli("admin", "create-company", "--name", "Acme", "--data-dir", str(data_dir))
            found = f"agent-eval: using the database of the `agent-eval dev` running on {data_dir}"
            assert (company.returncode, company.stderr.splitlines()) == (0, [found]), company.stdout
            company_id = re.search(r'"id": "([0-9a-f-]{36})"', company.stdout)
            assert company_id
            by_env = {"AGENT_EVAL_DATA_DIR": str(data_dir)}
            issued = _cli(
                "admin",
                "create-key",
                "--company",
                company_id.group(1),
                "--name",
                "ci",
                "--all-scopes",
                env=by_env,
            )
            assert (issued.returncode, issued.stderr.splitlines()) == (0, [found]), issued.stdout
            key = re.search(r"ae_live_[0-9A-Za-z]{32}", issued.stdout)
            assert key
            headers = {"Authorization": f"Bearer {key.group(0)}"}
            assert httpx.get(f"http://127.0.0.1:{port}/agents", headers=headers).status_code == 200
        finally:
            _stop(child, data_dir)
    assert "agent-eval: stopped" in child.output()


def test_admin_without_a_database_url_or_a_running_dev_names_what_it_looked_for(tmp_path: Path) -> None:
    result = _cli("admin", "reconcile", "--data-dir", str(tmp_path))
    assert result.returncode == 2
    assert result.stdout == (
        f"agent-eval: AGENT_EVAL_DATABASE_URL is not set and no `agent-eval dev` runs on {tmp_path}\n"
    )


@pytest.fixture
def busy_port() -> Iterator[int]:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        yield taken.getsockname()[1]


@pytest.mark.parametrize(
    ("command", "hint"), [(["dev", "--port", "{port}"], "pass --port"), (["serve"], "set AGENT_EVAL_PORT")]
)
def test_a_busy_port_is_one_line_and_exit_2(
    busy_port: int, tmp_path: Path, command: list[str], hint: str
) -> None:
    args = [part.format(port=busy_port) for part in command]
    env = {"AGENT_EVAL_PORT": str(busy_port), "AGENT_EVAL_DATA_DIR": str(tmp_path)}
    result = subprocess.run(
        [AGENT_EVAL, *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=ROOT,
    )
    assert (result.returncode, result.stdout, result.stderr) == (
        2,
        f"agent-eval: port {busy_port} is in use; {hint}\n",
        "",
    )
    assert not (tmp_path / "postgres").exists()  # refused before the database was started


BASHISMS = re.compile(r"\[@\]|^\s*\w+=\(|\bsource |\[\[|<\(|\bfunction ", re.MULTILINE)


def test_readme_shell_blocks_that_need_bash_are_marked_bash() -> None:
    blocks = re.findall(r"```(sh|bash)\n(.*?)```", (ROOT / "README.md").read_text(), re.DOTALL)
    assert [body[:60] for fence, body in blocks if fence == "sh" and BASHISMS.search(body)] == []
    for fence, body in blocks:
        parsed = subprocess.run(
            [fence, "-n"], input=body, capture_output=True, text=True, timeout=10, check=False
        )
        assert parsed.returncode == 0, f"{fence} -n: {parsed.stderr}\n{body}"


def test_make_test_ends_saying_the_services_keep_running_and_keeps_pytests_status() -> None:
    said = (
        "make test: PostgreSQL and Kafka keep running for the next run; stop them with scripts/services down"
    )

    def make_test(pytest_args: str) -> subprocess.CompletedProcess[str]:
        """`make test`'s recipe after `scripts/services up`, which is left out: run from here, with
        the services' variables already set, it would rewrite `.services/env` without the
        broker's secured listeners."""
        dry_run = ["make", "-n", "--no-print-directory", "test", f"PYTEST_ARGS={pytest_args}"]
        recipe = subprocess.run(
            dry_run, env=NOT_IN_MAKE, capture_output=True, text=True, timeout=30, check=True
        )
        _, services, after = recipe.stdout.partition("scripts/services up\n")
        assert services, recipe.stdout
        return subprocess.run(
            ["bash", "-c", after],
            env=NOT_IN_MAKE,
            capture_output=True,
            text=True,
            timeout=110,
            check=False,
            cwd=ROOT,
        )

    passed = make_test("--collect-only -q tests/unit/test_layout.py")
    assert (passed.returncode, passed.stdout.splitlines()[-1]) == (0, said), passed.stdout + passed.stderr
    failed = make_test("tests/no_such_tests.py")
    assert (failed.returncode, failed.stdout.splitlines()[-1]) == (4, said), failed.stdout + failed.stderr
