"""`agent-eval`: the entry point and composition root of every role (the one module of `service`
allowed to import `consumers`)."""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import sys
from collections.abc import AsyncIterator, Callable, Coroutine, Sequence
from contextlib import asynccontextmanager
from dataclasses import asdict
from datetime import datetime
from importlib.metadata import version
from pathlib import Path
from typing import TypeAlias
from uuid import UUID

import uvloop
from pydantic import SecretStr, ValidationError
from pydantic_core import ErrorDetails

from consumers import dlq
from consumers.launch import RunningRelay, running_role
from consumers.registry import ROLES
from consumers.role import Role
from service.accounts import api_keys, credits, tenants
from service.bus.topics import topic_specs
from service.client.commands import add_test_commands, run_test
from service.core.errors import AgentEvalError, SettingsError, ValidationFailed
from service.core.logging import configure_logging, get_logger
from service.core.settings import Settings
from service.db.migrate import apply_migrations
from service.db.postgres import Pool, close_quietly, connect
from service.domain.apikeys import SCOPES
from service.gateway.app import create_app
from service.gateway.appkeys import DRAIN
from service.gateway.asyncapi import asyncapi_json
from service.local.dev import RoleFactory, run_dev, running_database_url
from service.runtime.bridged import BridgedChildren, serve_bridged_role
from service.runtime.cpus import available_cpus
from service.runtime.health import Heartbeat
from service.runtime.pools import kafka_bus, pool_from
from service.runtime.processes import child_argv, serve_processes
from service.runtime.signals import stop_on_signals
from service.runtime.stopping import serve_gateway, serve_role
from service.runtime.supervised import stop_on_end_of_input

log = get_logger("service.cli")
Command = Callable[[Settings, argparse.Namespace], Coroutine[object, object, int]]


def say(message: str) -> None:
    print(f"agent-eval: {message}", flush=True)


# --- roles ------------------------------------------------------------------------------------


async def cmd_serve(settings: Settings, _: argparse.Namespace) -> int:
    stop = stop_on_signals()
    app = create_app(settings)
    await serve_gateway(app, app[DRAIN], settings, stop)
    return 0


async def cmd_relay(settings: Settings, _: argparse.Namespace) -> int:
    stop = stop_on_signals()
    await serve_role(settings, "relay", lambda pool, bus, beat: RunningRelay(settings, pool, bus, beat), stop)
    return 0


async def cmd_consume(settings: Settings, args: argparse.Namespace) -> int:
    role = ROLES.get(args.role)
    if role is None:
        available = ", ".join(sorted(ROLES)) or "none are registered yet"
        say(f"unknown role {args.role!r}; available roles: {available}")
        return 2
    if args.bridge_fd is not None:  # a child of `agent-eval dev`
        await serve_bridged_role(args.bridge_fd, _bridged_factory(role), await stop_on_end_of_input())
        return 0
    processes = args.processes
    if processes is None:  # the executor is CPU-bound: one process per core by default
        processes = await asyncio.to_thread(available_cpus) if role.name == "executor" else 1
    if processes > 1:
        return 0 if await serve_processes(settings, role.name, processes, stop_on_signals()) else 1
    stop = await stop_on_end_of_input() if args.supervised else stop_on_signals()
    await serve_role(
        settings,
        role.name,
        lambda pool, bus, beat: running_role(role, settings, pool, bus, beat),
        stop,
        role.fetch,
    )
    return 0


def _bridged_factory(role: Role) -> RoleFactory:
    return lambda settings, pool, bus: running_role(role, settings, pool, bus, Heartbeat())


async def cmd_dev(settings: Settings, args: argparse.Namespace) -> int:
    executors = args.executor_processes
    if executors is None:
        executors = await asyncio.to_thread(available_cpus)
    in_process = [role for role in ROLES.values() if executors <= 1 or role.name != "executor"]
    children: list[RoleFactory] = []
    if executors > 1:
        argv = child_argv("executor")
        children.append(lambda s, _, bus: BridgedChildren(s, bus, "executor", executors, argv))
    await run_dev(
        settings,
        data_dir=args.data_dir or settings.data_dir,
        port=settings.port if args.port is None else args.port,
        roles=[RunningRelay, *(_bridged_factory(role) for role in in_process), *children],
        say=say,
    )
    return 0


# --- setup ------------------------------------------------------------------------------------


async def cmd_migrate(settings: Settings, _: argparse.Namespace) -> int:
    conn = await connect(settings.require_database_url(), application_name="agent-eval-migrate")
    try:
        applied = await apply_migrations(conn)
    finally:
        await close_quietly(conn)
    names = ", ".join(f"{m.version:04d}_{m.name}" for m in applied)
    say(f"applied {len(applied)} migration(s): {names}" if applied else "database is up to date")
    return 0


async def cmd_kafka_init(settings: Settings, _: argparse.Namespace) -> int:
    specs = topic_specs(settings.topic_prefix, settings.topic_partitions, settings.topic_replication_factor)
    async with kafka_bus(settings, "agent-eval-admin") as bus:
        created = await bus.create_topics(specs)
    for spec in specs:
        state = "created" if spec.name in created else "exists"
        say(f"{state}: {spec.name} (partitions={spec.partitions}, replication={spec.replication_factor})")
    return 0


async def cmd_dlq_list(settings: Settings, args: argparse.Namespace) -> int:
    async with kafka_bus(settings, "agent-eval-dlq") as bus:
        letters = await dlq.list_dead_letters(bus, settings.topic_prefix, args.topic)
    for letter in letters:
        print(json.dumps(asdict(letter)))
    if not letters:
        say("no dead letters")
    return 0


async def cmd_dlq_replay(settings: Settings, args: argparse.Namespace) -> int:
    async with kafka_bus(settings, "agent-eval-dlq") as bus:
        count = await dlq.replay(bus, settings.topic_prefix, args.topic)
    say(f"replayed {count} record(s)")
    return 0


# --- admin ------------------------------------------------------------------------------------


def _admin_settings(settings: Settings, args: argparse.Namespace) -> Settings:
    """AGENT_EVAL_DATABASE_URL, or else the database of the `agent-eval dev` running on the data
    directory (`--data-dir`, AGENT_EVAL_DATA_DIR, ~/.agent-eval): what its first-start hint promises."""
    if settings.database_url is not None and settings.database_url.get_secret_value():
        return settings
    data_dir = args.data_dir or settings.data_dir
    url = running_database_url(data_dir)
    if url is None:
        raise SettingsError(f"AGENT_EVAL_DATABASE_URL is not set and no `agent-eval dev` runs on {data_dir}")
    print(f"agent-eval: using the database of the `agent-eval dev` running on {data_dir}", file=sys.stderr)
    return settings.model_copy(update={"database_url": SecretStr(url)})


@asynccontextmanager
async def _admin_pool(settings: Settings, args: argparse.Namespace) -> AsyncIterator[Pool]:
    async with pool_from(await asyncio.to_thread(_admin_settings, settings, args)) as pool:
        yield pool


async def cmd_create_company(settings: Settings, args: argparse.Namespace) -> int:
    async with _admin_pool(settings, args) as pool:
        company = await tenants.create_company(pool, args.name, credits_cents=args.credits_cents)
    print(json.dumps({"id": str(company.id), "name": company.name, "balance_cents": company.balance_cents}))
    return 0


async def cmd_grant_credits(settings: Settings, args: argparse.Namespace) -> int:
    async with _admin_pool(settings, args) as pool:
        _, balance = await credits.adjust_credits(pool, args.company, args.amount_cents, args.reason)
    print(json.dumps({"company_id": str(args.company), "balance_cents": balance}))
    return 0


async def cmd_create_key(settings: Settings, args: argparse.Namespace) -> int:
    scopes = list(SCOPES) if args.all_scopes else [s for s in args.scopes.split(",") if s]
    async with _admin_pool(settings, args) as pool:
        issued = await api_keys.issue_api_key(
            pool,
            args.company,
            name=args.name,
            scopes=scopes,
            rate_limit_per_minute=args.rate_limit,
            expires_at=args.expires_at,
        )
    key = issued.api_key
    print(json.dumps({"id": str(key.id), "key": issued.key, "prefix": key.prefix, "scopes": key.scopes}))
    return 0


async def cmd_reconcile(settings: Settings, args: argparse.Namespace) -> int:
    async with _admin_pool(settings, args) as pool:
        mismatches = await credits.reconcile(pool)
    for m in mismatches:
        say(f"MISMATCH company {m.company_id}: balance {m.balance_cents} != ledger {m.ledger_sum_cents}")
    if mismatches:
        return 1
    say("every company's balance equals the sum of its ledger entries")
    return 0


# --- parsing ----------------------------------------------------------------------------------


def _positive(value: str) -> int:
    number = int(value)
    if number < 1:
        raise argparse.ArgumentTypeError("give 1 or more")
    return number


def _aware(value: str) -> datetime:
    parsed = datetime.fromisoformat(value)
    if parsed.tzinfo is None:
        raise argparse.ArgumentTypeError("give a timezone, e.g. 2027-01-01T00:00:00Z")
    return parsed


Subcommands: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"


def _add(on: Subcommands, name: str, func: Command, help_: str) -> argparse.ArgumentParser:
    command = on.add_parser(name, help=help_, description=help_)
    command.set_defaults(func=func)
    return command


def _add_roles(sub: Subcommands) -> None:
    _add(sub, "serve", cmd_serve, "run the HTTP gateway")
    _add(sub, "relay", cmd_relay, "run the outbox relay and the maintenance jobs")
    consume = _add(sub, "consume", cmd_consume, "run a consumer role (executor, scorer, biller, notifier)")
    consume.add_argument("role")
    consume.add_argument(
        "--processes",
        type=_positive,
        default=None,
        help="role processes under one supervisor (default: one per CPU for the executor, else 1)",
    )
    consume.add_argument("--supervised", action="store_true", help=argparse.SUPPRESS)
    consume.add_argument("--bridge-fd", type=int, default=None, help=argparse.SUPPRESS)
    dev = _add(sub, "dev", cmd_dev, "run everything in one process on an embedded PostgreSQL")
    dev.add_argument("--port", type=int, default=None, help="HTTP port (default AGENT_EVAL_PORT, 8080)")
    dev.add_argument("--data-dir", type=Path, default=None, help="where the database lives (~/.agent-eval)")
    dev.add_argument(
        "--executor-processes",
        type=int,
        default=None,
        help="executor child processes (default: one per CPU; 0 or 1: in this process)",
    )


def _add_tools(sub: Subcommands) -> None:
    _add(sub, "migrate", cmd_migrate, "apply pending database migrations")
    docs = _add(sub, "asyncapi", cmd_asyncapi, "print the AsyncAPI 3.0 document of the Kafka event stream")
    docs.add_argument(
        "--output", type=Path, default=None, help="write it to this file (schemas/asyncapi.json)"
    )
    kafka = sub.add_parser("kafka", help="Kafka tools").add_subparsers(dest="kafka", required=True)
    _add(kafka, "init", cmd_kafka_init, "create the topics (prefix, partitions, replication from settings)")
    dlq_cmds = sub.add_parser("dlq", help="dead-letter topics").add_subparsers(dest="dlq", required=True)
    for name, func, help_ in (
        ("list", cmd_dlq_list, "print dead-lettered records as JSON lines"),
        ("replay", cmd_dlq_replay, "republish dead-lettered records to their source topic"),
    ):
        _add(dlq_cmds, name, func, help_).add_argument("--topic", help="one topic (default: all)")


async def cmd_asyncapi(_: Settings, args: argparse.Namespace) -> int:
    document = asyncapi_json(version=version("agent-eval"))
    if args.output is None:
        sys.stdout.write(document)
    else:
        await asyncio.to_thread(args.output.write_text, document)
        say(f"wrote {args.output}")
    return 0


def _add_admin(sub: Subcommands) -> None:
    admin = sub.add_parser("admin", help="companies, credits, keys").add_subparsers(
        dest="admin", required=True
    )
    company = _add(admin, "create-company", cmd_create_company, "create a company")
    company.add_argument("--name", required=True)
    company.add_argument("--credits-cents", type=int, default=0)
    grant = _add(admin, "grant-credits", cmd_grant_credits, "grant (or, negative, deduct) credits")
    grant.add_argument("--company", type=UUID, required=True)
    grant.add_argument("--amount-cents", type=int, required=True)
    grant.add_argument("--reason", default="admin adjustment")
    key = _add(admin, "create-key", cmd_create_key, "create an API key (printed once)")
    key.add_argument("--company", type=UUID, required=True)
    key.add_argument("--name", required=True)
    scopes = key.add_mutually_exclusive_group(required=True)
    scopes.add_argument("--scopes", help=f"comma-separated, from: {', '.join(SCOPES)}")
    scopes.add_argument("--all-scopes", action="store_true")
    key.add_argument("--rate-limit", type=int, default=60, help="requests per minute")
    key.add_argument("--expires-at", type=_aware, default=None, help="ISO 8601 with timezone")
    reconcile = _add(
        admin, "reconcile", cmd_reconcile, "check every balance equals the sum of its ledger entries"
    )
    for command in (company, grant, key, reconcile):
        command.add_argument(
            "--data-dir",
            type=Path,
            default=None,
            help="without AGENT_EVAL_DATABASE_URL: the data directory of a running `agent-eval dev`",
        )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="agent-eval", description="Agent evals: API, pipeline roles, tools."
    )
    parser.add_argument("--version", action="version", version=f"agent-eval {version('agent-eval')}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="command")
    _add_roles(sub)
    _add_tools(sub)
    _add_admin(sub)
    add_test_commands(sub)
    return parser


def _setting_problem(error: ErrorDetails) -> str:
    where = "_".join(str(part) for part in error["loc"]).upper()
    message = error["msg"].removeprefix("Value error, ")
    return f"AGENT_EVAL_{where}: {message}" if where else message


def tune_gc() -> None:
    """Long-lived roles allocate many short-lived objects per record and request: move what was
    built at start-up out of the collector's sight, and collect the young generation less often
    (the default, 700 allocations, makes the collector a noticeable share of a busy role's CPU)."""
    gc.freeze()
    gc.set_threshold(20_000, 20, 20)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if getattr(args, "client_command", False):  # `agent-eval test`: a client, no server settings
        return run_test(args)
    try:
        settings = Settings()
    except ValidationError as exc:  # never the values themselves: some are secrets
        problems = "; ".join(_setting_problem(error) for error in exc.errors(include_input=False))
        say(f"invalid settings: {problems}")
        return 2
    configure_logging(settings.log_level, settings.log_format)
    tune_gc()
    try:
        command: Command = args.func
        return uvloop.run(command(settings, args))
    except SettingsError as exc:
        say(str(exc))
        return 2
    except ValidationFailed as exc:
        details = "; ".join(f"{f.field}: {f.message}" for f in exc.fields)
        say(f"error: {exc.message}{': ' + details if details else ''}")
        return 1
    except AgentEvalError as exc:
        say(f"error: {exc}")
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
