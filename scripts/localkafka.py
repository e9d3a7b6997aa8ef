"""A local Apache Kafka broker (KRaft, one combined broker/controller) assembled from Maven Central.

The classpath comes from `scripts/kafka/pom.xml` via `mvn dependency:copy-dependencies` and is
cached under `<state>/kafka/lib` (keyed by the POM's digest); Maven's own repository is
`<state>/m2`. Each start formats fresh storage: topics are recreated by `agent-eval kafka init`,
and a KRaft voter set recorded with one port cannot be reused with another. `restart` brings the
recorded broker back on its own storage and ports (for chaos tests: nothing is lost).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import json
import logging
import os
import re
import shutil
import signal
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import localtls
from aiokafka.admin import AIOKafkaAdminClient

from service.local.pgserver import free_port, port_open

ROOT = Path(__file__).resolve().parent.parent
POM = ROOT / "scripts" / "kafka" / "pom.xml"
MAVEN_CENTRAL = "https://repo.maven.apache.org/maven2/"
REACH_TIMEOUT_S = 10.0
DOWNLOAD_TIMEOUT_S = 600.0
READY_TIMEOUT_S = 90.0
START_ATTEMPTS = 3

# DESIGN.md §9: the broker shares 2 cores with PostgreSQL and the Python processes. Its heap is
# sized for a small machine: under `bench.conversations` (2,000 runs, 500 in flight, ~20 runs/s)
# the live heap stays under 100 MB; AGENT_EVAL_KAFKA_HEAP_MB raises the ceiling (the heap starts at
# 128 MB, or less when the ceiling is lower). Network buffers off the heap are capped as well.
DEFAULT_HEAP_MB = 384
HEAP_FLOOR_MB = 64
DIRECT_MEMORY_MB = 128


def heap_flags() -> list[str]:
    """-Xms/-Xmx from AGENT_EVAL_KAFKA_HEAP_MB (default 384, at least 64) and the direct-memory cap."""
    raw = os.environ.get("AGENT_EVAL_KAFKA_HEAP_MB", "").strip()
    if raw and not raw.isdigit():
        raise LocalKafkaError(f"AGENT_EVAL_KAFKA_HEAP_MB must be a number of megabytes, not {raw!r}")
    heap = max(HEAP_FLOOR_MB, int(raw or DEFAULT_HEAP_MB))
    return [f"-Xms{min(128, heap)}m", f"-Xmx{heap}m", f"-XX:MaxDirectMemorySize={DIRECT_MEMORY_MB}m"]


JVM_FLAGS = [
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
    "listener.security.protocol.map": (
        "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT,SASL_PLAINTEXT:SASL_PLAINTEXT,SASL_SSL:SASL_SSL"
    ),
    # A second and third listener for the tests of the Kafka client's security settings:
    # SASL (PLAIN and SCRAM-SHA-512, one local user), in the clear and over TLS.
    "sasl.enabled.mechanisms": "PLAIN,SCRAM-SHA-512",
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


# The SASL user of the local broker (test credentials of a loopback-only broker, not a secret).
SASL_USERNAME = "agent-eval"
SASL_PASSWORD = "agent-eval-local"  # noqa: S105 — a loopback test broker's user, documented
PLAIN_LOGIN = (
    "org.apache.kafka.common.security.plain.PlainLoginModule required "
    f'username="{SASL_USERNAME}" password="{SASL_PASSWORD}" user_{SASL_USERNAME}="{SASL_PASSWORD}";'
)
SCRAM_LOGIN = "org.apache.kafka.common.security.scram.ScramLoginModule required;"


@dataclass(frozen=True)
class Ports:
    broker: int
    controller: int
    sasl: int
    tls: int


class LocalKafkaError(RuntimeError):
    """The broker could not be assembled or started; the message says why and what to do."""


class PortTakenError(Exception):
    """A port chosen as free was taken before the broker bound it."""


@dataclass(frozen=True)
class Layout:
    """Where the broker keeps its jars, config, data and state under the services directory."""

    state: Path

    @property
    def home(self) -> Path:
        return self.state / "kafka"

    @property
    def lib(self) -> Path:
        return self.home / "lib"

    @property
    def broker_file(self) -> Path:
        return self.home / "broker.json"

    @property
    def tls(self) -> Path:
        return self.home / "tls"

    @property
    def m2(self) -> Path:
        return self.state / "m2"


def maven_repo_url() -> str:
    return os.environ.get("AGENT_EVAL_MAVEN_REPO_URL") or MAVEN_CENTRAL


def running_broker(layout: Layout) -> str | None:
    """The bootstrap address of the broker recorded in `layout`, if it is still alive."""
    if not layout.broker_file.is_file():
        return None
    state = json.loads(layout.broker_file.read_text())
    port = int(str(state["bootstrap"]).rsplit(":", 1)[1])
    if alive(int(state["pid"])) and port_open(port) and "sasl_bootstrap" in state:
        return str(state["bootstrap"])
    if alive(int(state["pid"])):  # started by an older version of this script: no SASL listeners
        stop_pid(int(state["pid"]))
    layout.broker_file.unlink()
    return None


def secured_listeners(layout: Layout) -> dict[str, str]:
    """The recorded broker's SASL listeners and what a client needs to use them (for tests); the
    caller has checked with `running_broker` that it runs."""
    if not layout.broker_file.is_file():
        return {}
    state = json.loads(layout.broker_file.read_text())
    return {
        "AGENT_EVAL_TEST_KAFKA_SASL_BOOTSTRAP": str(state["sasl_bootstrap"]),
        "AGENT_EVAL_TEST_KAFKA_TLS_BOOTSTRAP": str(state["tls_bootstrap"]),
        "AGENT_EVAL_TEST_KAFKA_TLS_CAFILE": str(layout.tls / "ca.pem"),
        "AGENT_EVAL_TEST_KAFKA_SASL_USERNAME": SASL_USERNAME,
        "AGENT_EVAL_TEST_KAFKA_SASL_PASSWORD": SASL_PASSWORD,
    }


def start(layout: Layout, say: Callable[[str], None]) -> str:
    """Download the jars if needed, start the broker and wait until it answers metadata requests."""
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
    ensure_jars(layout, say)
    for _ in range(START_ATTEMPTS):
        started = _start_once(layout)
        if started is not None:
            return started
    raise LocalKafkaError(f"Kafka: the broker could not bind its ports after {START_ATTEMPTS} attempts")


def stop(layout: Layout) -> bool:
    """Stop the recorded broker (a clean shutdown, then SIGKILL); True if one was running."""
    if not layout.broker_file.is_file():
        return False
    state = json.loads(layout.broker_file.read_text())
    layout.broker_file.unlink()
    return stop_pid(int(state["pid"]))


def restart(layout: Layout, *, hard: bool = False) -> str:
    """Stop the recorded broker and start it again on the same storage, configuration and ports,
    without formatting: topics, records and committed offsets survive. `hard` kills it (SIGKILL,
    a crash: the broker recovers its logs on start); otherwise it shuts down cleanly. Returns once
    it answers metadata requests again; the bootstrap address is unchanged."""
    if not layout.broker_file.is_file():
        raise LocalKafkaError(f"Kafka: no broker is recorded in {layout.broker_file} to restart")
    state = json.loads(layout.broker_file.read_text())
    if hard:
        kill_pid(int(state["pid"]))
    else:
        stop_pid(int(state["pid"]))
    config = layout.home / "server.properties"
    for _ in range(START_ATTEMPTS):
        proc = _launch(layout, config, append_log=True)
        try:
            wait_for_broker(proc, str(state["bootstrap"]), layout.home / "server.log")
        except PortTakenError:  # a socket of the old process is not released yet
            stop_pid(proc.pid)
            time.sleep(1.0)
            continue
        layout.broker_file.write_text(json.dumps({**state, "pid": proc.pid}))
        return str(state["bootstrap"])
    raise LocalKafkaError(f"Kafka: the broker could not bind its ports again after {START_ATTEMPTS} attempts")


def version(layout: Layout) -> str:
    for jar in layout.lib.glob("kafka_2.13-*.jar"):
        return jar.stem.removeprefix("kafka_2.13-")
    return "?"


# --- the jars ---------------------------------------------------------------------------------


def ensure_jars(layout: Layout, say: Callable[[str], None]) -> None:
    stamp = layout.lib / ".pom-sha256"
    digest = hashlib.sha256(POM.read_bytes()).hexdigest()
    if stamp.is_file() and stamp.read_text() == digest:
        return
    check_maven_central(layout)
    if shutil.which("mvn") is None:
        raise LocalKafkaError("Kafka: `mvn` is not on PATH; install Maven 3 (and Java 17+)")
    shutil.rmtree(layout.lib, ignore_errors=True)
    say(f"Kafka: downloading the broker jars from Maven Central into {layout.lib}")
    goal = "org.apache.maven.plugins:maven-dependency-plugin:3.7.1:copy-dependencies"
    timeouts = ["-Dmaven.wagon.http.connectionTimeout=10000", "-Dmaven.wagon.http.readTimeout=30000"]
    cmd = ["mvn", "-B", "-q", *maven_mirror_args(layout), f"-Dmaven.repo.local={layout.m2}", *timeouts]
    cmd += ["-f", str(POM), goal, "-DincludeScope=runtime", f"-DoutputDirectory={layout.lib}"]
    try:
        result = subprocess.run(cmd, capture_output=True, text=True, timeout=DOWNLOAD_TIMEOUT_S, check=False)
    except subprocess.TimeoutExpired as exc:
        raise LocalKafkaError(f"Kafka: Maven did not finish within {DOWNLOAD_TIMEOUT_S:.0f} s") from exc
    if result.returncode != 0:
        raise LocalKafkaError(f"Kafka: Maven failed to fetch the broker jars:\n{result.stdout[-3000:]}")
    stamp.write_text(digest)


def check_maven_central(layout: Layout) -> None:
    """Fail fast (well inside 30 s) with a clear message when Maven Central is unreachable.

    Asks for the Kafka POM itself: a proxy or captive portal that answers every URL with an
    error page must count as "unreachable", not as "the host answered".
    """
    base = maven_repo_url()
    if not base.startswith(("https://", "http://")):
        raise LocalKafkaError(f"AGENT_EVAL_MAVEN_REPO_URL must be an http(s) URL, not {base!r}")
    kafka = kafka_version_in_pom()
    url = f"{base.rstrip('/')}/org/apache/kafka/kafka_2.13/{kafka}/kafka_2.13-{kafka}.pom"
    request = urllib.request.Request(url, method="HEAD")  # noqa: S310 — scheme checked above
    try:
        with urllib.request.urlopen(request, timeout=REACH_TIMEOUT_S):  # noqa: S310 — scheme checked above
            return
    except (urllib.error.URLError, OSError) as exc:
        raise LocalKafkaError(
            f"Kafka: Maven Central cannot be reached ({url}: {exc}). The broker jars are not cached in "
            f"{layout.lib}; connect this machine to Maven Central (or point AGENT_EVAL_MAVEN_REPO_URL at "
            "a mirror), or set AGENT_EVAL_KAFKA_BOOTSTRAP to an existing cluster."
        ) from exc


def maven_mirror_args(layout: Layout) -> list[str]:
    """With AGENT_EVAL_MAVEN_REPO_URL set, a settings file that mirrors Central to it."""
    url = maven_repo_url()
    if url == MAVEN_CENTRAL:
        return []
    settings = layout.state / "maven-settings.xml"
    settings.write_text(
        "<settings><mirrors><mirror><id>agent-eval-mirror</id><mirrorOf>central</mirrorOf>"
        f"<url>{url}</url></mirror></mirrors></settings>\n"
    )
    return ["-s", str(settings)]


def kafka_version_in_pom() -> str:
    match = re.search(r"<kafka.version>([^<]+)</kafka.version>", POM.read_text())
    if match is None:
        raise LocalKafkaError(f"{POM} does not define kafka.version")
    return match.group(1)


# --- the broker -------------------------------------------------------------------------------


def cluster_id() -> str:
    """A KRaft cluster id as Kafka's own `Uuid.randomUuid()` makes them: base64url, 22 characters,
    never starting with '-' (the storage tool would read such an id as an option)."""
    while True:
        candidate = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not candidate.startswith("-"):
            return candidate


def write_config(layout: Layout, ports: Ports) -> Path:
    data = layout.home / "data"
    shutil.rmtree(data, ignore_errors=True)
    data.mkdir(parents=True)
    keystore = localtls.broker_keystore(layout.tls)
    listeners = ",".join(
        [
            f"PLAINTEXT://127.0.0.1:{ports.broker}",
            f"SASL_PLAINTEXT://127.0.0.1:{ports.sasl}",
            f"SASL_SSL://localhost:{ports.tls}",
            f"CONTROLLER://127.0.0.1:{ports.controller}",
        ]
    )
    props = {
        **BROKER_SETTINGS,
        "controller.quorum.bootstrap.servers": f"127.0.0.1:{ports.controller}",
        "listeners": listeners,
        "advertised.listeners": listeners,
        "log.dirs": str(data),
    }
    for listener in ("sasl_plaintext", "sasl_ssl"):
        props[f"listener.name.{listener}.plain.sasl.jaas.config"] = PLAIN_LOGIN
        props[f"listener.name.{listener}.scram-sha-512.sasl.jaas.config"] = SCRAM_LOGIN
    props["listener.name.sasl_ssl.ssl.keystore.type"] = "PEM"
    props["listener.name.sasl_ssl.ssl.keystore.key"] = _one_line(keystore.key)
    props["listener.name.sasl_ssl.ssl.keystore.certificate.chain"] = _one_line(keystore.chain)
    config = layout.home / "server.properties"
    config.write_text("".join(f"{key}={value}\n" for key, value in props.items()))
    (layout.home / "log4j2.properties").write_text(LOG4J2)
    return config


def _one_line(pem: str) -> str:
    """A PEM block as a Java properties value (`\\n` is read back as a newline)."""
    return pem.strip().replace("\n", "\\n")


def java_classpath(layout: Layout) -> list[str]:
    return [
        f"-Dlog4j2.configurationFile={layout.home / 'log4j2.properties'}",
        f"-Dkafka.logs.dir={layout.home / 'logs'}",
        "-cp",
        str(layout.lib / "*"),
    ]


def _start_once(layout: Layout) -> str | None:
    """Format fresh storage and start the broker; None if a port was taken (the caller retries)."""
    ports = Ports(free_port(), free_port(), free_port(), free_port())
    broker_port = ports.broker
    config = write_config(layout, ports)
    classpath = java_classpath(layout)
    fmt = ["java", "-Xmx256m", *classpath, "kafka.tools.StorageTool", "format", "--standalone"]
    fmt += ["-t", cluster_id(), "-c", str(config)]
    fmt += ["--add-scram", f"SCRAM-SHA-512=[name={SASL_USERNAME},password={SASL_PASSWORD}]"]
    result = subprocess.run(fmt, capture_output=True, text=True, timeout=120, check=False)
    if result.returncode != 0:
        raise LocalKafkaError(f"Kafka: formatting storage failed:\n{result.stdout}{result.stderr}")
    log_path = layout.home / "server.log"
    proc = _launch(layout, config, append_log=False)
    bootstrap = f"127.0.0.1:{broker_port}"
    try:
        wait_for_broker(proc, bootstrap, log_path)
    except PortTakenError:
        stop_pid(proc.pid)
        return None
    state = {
        "pid": proc.pid,
        "bootstrap": bootstrap,
        "sasl_bootstrap": f"127.0.0.1:{ports.sasl}",
        "tls_bootstrap": f"localhost:{ports.tls}",
    }
    layout.broker_file.write_text(json.dumps(state))
    return bootstrap


def _launch(layout: Layout, config: Path, *, append_log: bool) -> subprocess.Popen[bytes]:
    """The broker's JVM on `config`, in a session of its own, logging to `server.log`."""
    with (layout.home / "server.log").open("ab" if append_log else "wb") as log:
        return subprocess.Popen(
            ["java", *heap_flags(), *JVM_FLAGS, *java_classpath(layout), "kafka.Kafka", str(config)],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )


def wait_for_broker(proc: subprocess.Popen[bytes], bootstrap: str, log_path: Path) -> None:
    """Block until the broker answers a metadata request, or fail with its log."""
    deadline = time.monotonic() + READY_TIMEOUT_S
    port = int(bootstrap.rsplit(":", 1)[1])
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            log = log_path.read_text(errors="replace")
            if "Address already in use" in log:
                raise PortTakenError
            raise LocalKafkaError(f"Kafka: the broker exited with {proc.returncode}:\n{log[-4000:]}")
        if port_open(port) and asyncio.run(answers_metadata(bootstrap)):
            return
        time.sleep(0.25)
    stop_pid(proc.pid)
    raise LocalKafkaError(f"Kafka: the broker did not answer within {READY_TIMEOUT_S:.0f} s; see {log_path}")


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


def stop_pid(pid: int, timeout_s: float = 30.0) -> bool:
    """SIGTERM the process group (the broker shuts down cleanly), then SIGKILL after `timeout_s`."""
    if not alive(pid):
        return False
    _signal_group(pid, signal.SIGTERM)
    if not _gone_within(pid, timeout_s):
        _signal_group(pid, signal.SIGKILL)
    return True


def kill_pid(pid: int, timeout_s: float = 30.0) -> bool:
    """SIGKILL the process group (a crash: no clean shutdown) and wait until it is gone."""
    if not alive(pid):
        return False
    _signal_group(pid, signal.SIGKILL)
    _gone_within(pid, timeout_s)
    return True


def _signal_group(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, sig)


def _gone_within(pid: int, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    return not alive(pid)


def alive(pid: int) -> bool:
    """True while `pid` runs (a zombie child of ours counts as gone)."""
    with contextlib.suppress(ChildProcessError):
        if os.waitpid(pid, os.WNOHANG)[0] == pid:
            return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with contextlib.suppress(OSError):
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    return True
