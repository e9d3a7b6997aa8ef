"""`agent-eval test case|suite`: the pipeline commands. They talk to a server (`--url` and
`--api-key`, or `AGENT_EVAL_URL` and `AGENT_EVAL_API_KEY`) and need no server settings.

Exit codes: 0 passed; 1 failed (below `--min-pass-rate`, regressed against `--baseline`, or a
run errored without `--allow-errors`); 2 usage or server errors; 130 interrupted (Ctrl-C or
SIGTERM, after cancelling the suite run this command started).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import TypeAlias
from uuid import UUID

import uvloop
from pydantic import JsonValue, ValidationError
from rich.console import Console

from service.client.api import Api
from service.client.ci import parse_labels
from service.client.seed import SeedFile, seed
from service.client.testing import SuiteOptions, check_case, check_suite
from service.core.errors import RemoteError, UsageError

USAGE, INTERRUPTED = 2, 130
LOG_WIDTH = 160
Subcommands: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"


def add_test_commands(sub: Subcommands) -> None:
    test = sub.add_parser("test", help="run a case or a suite on a server and gate on the result")
    kinds = test.add_subparsers(dest="kind", required=True, metavar="case|suite")
    case = kinds.add_parser("case", help="run one case once; exit 0 when it passed")
    case.add_argument("case_id", type=UUID)
    suite = kinds.add_parser("suite", help="run a suite; exit 0 when it reached the pass rate")
    suite.add_argument("suite_id", type=UUID)
    suite.add_argument("--iterations", type=int, default=1, help="runs of each case (1-50)")
    suite.add_argument("--overrides", type=Path, help="a JSON file of agent_overrides for every run")
    suite.add_argument("--min-pass-rate", type=float, default=1.0, help="0-1, over decided runs (1.0)")
    suite.add_argument("--baseline", help="a suite run id, or `latest`: fail on significant regressions")
    suite.add_argument("--alpha", type=float, default=0.05, help="significance of a regression (0.05)")
    suite.add_argument("--allow-errors", action="store_true", help="runs that errored do not fail it")
    suite.add_argument("--junit", type=Path, help="write a JUnit XML report here")
    seed_file = sub.add_parser(
        "seed", help="create a suite (agent, personas, cases) from a JSON file; prints the suite id"
    )
    seed_file.add_argument("file", type=Path, help="e.g. examples/support-suite.json")
    seed_file.set_defaults(kind="seed")
    for command in (case, suite, seed_file):
        command.add_argument("--url", help="the server (default $AGENT_EVAL_URL)")
        command.add_argument("--api-key", help="an API key (default $AGENT_EVAL_API_KEY)")
        command.set_defaults(client_command=True, label=[], json_path=None)
    for command in (case, suite):
        command.add_argument("--label", action="append", default=[], help="k=v, repeatable")
        command.add_argument("--json", type=Path, dest="json_path", help="write a JSON report here")


def run_test(args: argparse.Namespace, env: Mapping[str, str] | None = None) -> int:
    """Run `agent-eval test …` to an exit code."""
    env = os.environ if env is None else env
    console = Console(highlight=False, soft_wrap=True)  # a message line is never cut: paths stay whole
    if not console.is_terminal and "COLUMNS" not in env:
        console.width = LOG_WIDTH  # a CI log: do not wrap the summary table at 80 columns
    try:
        return uvloop.run(_main(args, env, console))
    except UsageError as exc:
        console.print(f"agent-eval: usage error: {exc}", style="red")
        return USAGE
    except RemoteError as exc:
        console.print(f"agent-eval: server error: {exc}", style="red")
        return USAGE
    except (KeyboardInterrupt, asyncio.CancelledError):
        console.print("agent-eval: interrupted")
        return INTERRUPTED


async def _main(args: argparse.Namespace, env: Mapping[str, str], console: Console) -> int:
    url, key = args.url or env.get("AGENT_EVAL_URL"), args.api_key or env.get("AGENT_EVAL_API_KEY")
    if not url:
        raise UsageError("give --url or set AGENT_EVAL_URL")
    if not key:
        raise UsageError("give --api-key or set AGENT_EVAL_API_KEY")
    try:
        labels = parse_labels(args.label)
    except ValueError as exc:
        raise UsageError(str(exc)) from exc
    task = asyncio.current_task()
    if task is not None:  # a CI runner stops a job with SIGTERM: cancel like Ctrl-C
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
    api = Api(url, key, notice=lambda text: console.print(f"agent-eval: {text}", style="yellow"))
    try:
        if args.kind == "seed":
            return await _seed(api, args.file, console)
        if args.kind == "case":
            return await check_case(api, args.case_id, console, env, labels=labels, json_path=args.json_path)
        return await check_suite(api, await _suite_options(args, labels), console, env)
    finally:
        await api.close()


async def _suite_options(args: argparse.Namespace, labels: dict[str, str]) -> SuiteOptions:
    if not 1 <= args.iterations <= 50:
        raise UsageError("--iterations must be 1-50")
    if not 0.0 <= args.min_pass_rate <= 1.0:
        raise UsageError("--min-pass-rate must be between 0 and 1")
    if not 0.0 < args.alpha < 1.0:
        raise UsageError("--alpha must be between 0 and 1")
    overrides = None if args.overrides is None else await _read_overrides(args.overrides)
    return SuiteOptions(
        suite_id=args.suite_id,
        iterations=args.iterations,
        agent_overrides=overrides,
        min_pass_rate=args.min_pass_rate,
        baseline=args.baseline,
        alpha=args.alpha,
        allow_errors=args.allow_errors,
        labels=labels,
        junit=args.junit,
        json_path=args.json_path,
    )


async def _seed(api: Api, path: Path, console: Console) -> int:
    try:
        document = SeedFile.model_validate_json(await asyncio.to_thread(path.read_bytes))
    except (OSError, ValidationError) as exc:
        raise UsageError(f"{path}: {exc}") from exc
    if unknown := document.unknown_personas():
        raise UsageError(f"{path}: cases name personas that are not defined: {', '.join(unknown)}")
    suite_id = await seed(api, document)
    sys.stderr.write(f"created suite {suite_id} with {len(document.cases)} cases\n")
    console.print(str(suite_id), highlight=False, soft_wrap=True)
    return 0


async def _read_overrides(path: Path) -> dict[str, JsonValue]:
    try:
        document = json.loads(await asyncio.to_thread(path.read_text))
    except (OSError, ValueError) as exc:
        raise UsageError(f"--overrides {path}: {exc}") from exc
    if not isinstance(document, dict):
        raise UsageError(f"--overrides {path}: must hold a JSON object of agent_overrides")
    return document
