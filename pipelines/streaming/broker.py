"""The event bus: the Kafka cluster KAFKA_BOOTSTRAP_SERVERS names, or a local broker the
platform runs.

Without KAFKA_BOOTSTRAP_SERVERS the platform runs Apache Kafka itself: one node in KRaft
mode (broker and controller in one JVM) on loopback, with its config, logs and data under
`<data_dir>/kafka`. Its jars come from Maven Central on first use, resolved with the Ivy
that Spark ships and cached in Spark's Ivy cache next to Delta's; later starts read
nothing from the network. The broker keeps running after the command that started it,
like the local Redis; `feature-platform kafka stop` stops it. Code that only reads or
writes events never starts it (`bootstrap_servers`): the demo, the CLI and the tests do.
"""

from __future__ import annotations

import base64
import hashlib
import os
import signal
import subprocess
import time
import uuid
from pathlib import Path

from pipelines.config import KAFKA_BOOTSTRAP_ENV, SPARK_CONF_DIR, Settings, settings
from pipelines.errors import PlatformError
from pipelines.local_process import LocalProcess, free_port, wait_for_exit

KAFKA_VERSION = "4.1.1"
# Kafka 4 logs through log4j2; the SLF4J 1.x bridge lets the libraries that log through
# SLF4J (the Raft layer, the clients) reach the same log file.
KAFKA_ARTIFACTS = (
    ("org.apache.kafka", "kafka_2.13", KAFKA_VERSION),
    ("org.apache.logging.log4j", "log4j-slf4j-impl", "2.24.3"),
)
START_TIMEOUT_S = 60.0
RESOLVE_TIMEOUT_S = 900.0
HEAP = "-Xmx512m"


class KafkaUnavailableError(PlatformError):
    """Kafka cannot be reached, or the local broker cannot be set up."""


class KafkaNotConfiguredError(PlatformError):
    """Events were to be read or written with no Kafka named and no local broker running."""


# Spark's Ivy directory: where `spark.jars.packages`, Delta included, are cached.
IVY_HOME = Path.home() / ".ivy2.5.2"


def _ivy_jar() -> Path:
    import pyspark

    jars = sorted((Path(pyspark.__file__).parent / "jars").glob("ivy-*.jar"))
    if not jars:
        raise KafkaUnavailableError("pyspark ships no Ivy jar to resolve Kafka's jars with")
    return jars[-1]


def kafka_classpath(log_file: Path | None = None) -> str:
    """The broker's classpath, resolved from Maven Central the first time and cached."""
    home = IVY_HOME
    wanted = ",".join(":".join(artifact) for artifact in KAFKA_ARTIFACTS)
    digest = hashlib.sha256(wanted.encode()).hexdigest()[:12]
    cached = home / "feature-platform" / f"kafka-{KAFKA_VERSION}-{digest}.classpath"
    if cached.exists():
        classpath = cached.read_text().strip()
        if all(Path(jar).exists() for jar in classpath.split(os.pathsep)):
            return classpath
    cached.parent.mkdir(parents=True, exist_ok=True)
    ivy_file = cached.with_suffix(".ivy.xml")
    dependencies = "\n".join(
        f'    <dependency org="{org}" name="{name}" rev="{rev}" conf="default->default,runtime"/>'
        for org, name, rev in KAFKA_ARTIFACTS
    )
    ivy_file.write_text(
        '<ivy-module version="2.0">\n'
        '  <info organisation="feature-platform" module="kafka-broker"/>\n'
        f"  <dependencies>\n{dependencies}\n  </dependencies>\n"
        "</ivy-module>\n"
    )
    command = [
        "java",
        "-cp",
        str(_ivy_jar()),
        "org.apache.ivy.Main",
        "-settings",  # Spark's jobs resolve through the same file: Maven Central only
        str(SPARK_CONF_DIR / "ivysettings.xml"),
        "-m2compatible",
        "-ivy",
        str(ivy_file),
        "-cache",
        str(home / "cache"),
        "-cachepath",
        str(cached),
    ]
    output = log_file or cached.with_suffix(".resolve.log")
    with output.open("w") as log:
        try:
            done = subprocess.run(
                command, stdout=log, stderr=subprocess.STDOUT, timeout=RESOLVE_TIMEOUT_S
            )
        except subprocess.TimeoutExpired:
            raise KafkaUnavailableError(
                f"resolving Kafka {KAFKA_VERSION} from Maven Central took over "
                f"{RESOLVE_TIMEOUT_S:.0f} s (log: {output})"
            ) from None
    if done.returncode != 0 or not cached.exists():
        cached.unlink(missing_ok=True)
        raise KafkaUnavailableError(
            f"could not resolve Kafka {KAFKA_VERSION} from Maven Central (log: {output})"
        )
    return cached.read_text().strip()


def _cluster_id() -> str:
    # As Kafka's own Uuid.randomUuid: an id starting with "-" would read as an option to
    # the storage tool.
    while True:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cluster_id.startswith("-"):
            return cluster_id


class KafkaBroker(LocalProcess):
    """A single-node KRaft Kafka whose config, logs, data and pid live in `directory`."""

    name = "broker"

    @property
    def config_file(self) -> Path:
        return self.directory / "server.properties"

    @property
    def data_dir(self) -> Path:
        return self.directory / "data"

    @property
    def bootstrap_servers(self) -> str:
        if self.port is None:
            raise KafkaUnavailableError(f"the broker in {self.directory} has no port yet")
        return f"{self.host}:{self.port}"

    def answers(self) -> bool:
        try:
            check_kafka(self.bootstrap_servers, timeout=5.0)
        except KafkaUnavailableError:
            return False
        return True

    def start(self) -> KafkaBroker:
        if self.is_running():
            return self
        self.directory.mkdir(parents=True, exist_ok=True)
        classpath = kafka_classpath(self.directory / "resolve.log")
        self.port = self.choose_port()
        controller_port = free_port(self.host)
        self._write_config(controller_port)
        if not (self.data_dir / "meta.properties").exists():
            self._format_storage(classpath)
        log = self.log_file.open("a")
        process = subprocess.Popen(
            ["java", HEAP, "-cp", classpath, "kafka.Kafka", str(self.config_file)],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # it outlives the command that started it
        )
        log.close()
        self.pid_file.write_text(f"{process.pid}\n")
        self.port_file.write_text(f"{self.port}\n")
        self._wait_until_ready(process)
        self.started_here = True
        return self

    def stop(self) -> None:
        """Stop the broker (a controlled shutdown) and wait until the process is gone."""
        pid = self.pid()
        if pid is not None:
            os.kill(pid, signal.SIGTERM)
            if not wait_for_exit(pid, timeout=30.0):
                os.kill(pid, signal.SIGKILL)
                wait_for_exit(pid, timeout=10.0)
        self.pid_file.unlink(missing_ok=True)
        self.started_here = False

    # -- internals --------------------------------------------------------------

    def _write_config(self, controller_port: int) -> None:
        # One node that is broker and controller; every internal topic has one replica.
        lines = [
            "process.roles=broker,controller",
            "node.id=1",
            f"controller.quorum.bootstrap.servers={self.host}:{controller_port}",
            f"listeners=PLAINTEXT://{self.host}:{self.port},CONTROLLER://{self.host}:{controller_port}",
            f"advertised.listeners=PLAINTEXT://{self.host}:{self.port},"
            f"CONTROLLER://{self.host}:{controller_port}",
            "controller.listener.names=CONTROLLER",
            "inter.broker.listener.name=PLAINTEXT",
            "listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
            f"log.dirs={self.data_dir}",
            "num.partitions=1",
            "offsets.topic.replication.factor=1",
            "transaction.state.log.replication.factor=1",
            "transaction.state.log.min.isr=1",
            "share.coordinator.state.topic.replication.factor=1",
            "share.coordinator.state.topic.min.isr=1",
            "group.initial.rebalance.delay.ms=0",
            "auto.create.topics.enable=false",
        ]
        self.config_file.write_text("\n".join(lines) + "\n")

    def _format_storage(self, classpath: str) -> None:
        command = [
            "java",
            "-cp",
            classpath,
            "kafka.tools.StorageTool",
            "format",
            "--standalone",
            "--cluster-id",
            _cluster_id(),
            "--config",
            str(self.config_file),
        ]
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            detail = (done.stderr or done.stdout).strip().splitlines()
            raise KafkaUnavailableError(
                f"formatting Kafka's storage in {self.data_dir} failed: "
                f"{detail[-1] if detail else done.returncode}"
            )

    def _wait_until_ready(self, process: subprocess.Popen[bytes]) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise KafkaUnavailableError(
                    f"the Kafka broker in {self.directory} exited with {process.returncode} "
                    f"(log: {self.log_file})"
                )
            try:
                check_kafka(self.bootstrap_servers, timeout=2.0)
                return
            except KafkaUnavailableError:
                time.sleep(0.25)
        self.stop()
        raise KafkaUnavailableError(
            f"the Kafka broker in {self.directory} did not answer within "
            f"{START_TIMEOUT_S:.0f} s (log: {self.log_file})"
        )


def check_kafka(bootstrap_servers: str, *, timeout: float = 10.0) -> None:
    """Raise KafkaUnavailableError unless the cluster answers a metadata request in time."""
    from confluent_kafka.admin import AdminClient

    # librdkafka would log every refused connection to stderr; a failed check says it once.
    admin = AdminClient({"bootstrap.servers": bootstrap_servers, "log_level": 0})
    try:
        admin.list_topics(timeout=timeout)
    except Exception as exc:  # KafkaException: the cluster did not answer
        raise KafkaUnavailableError(
            f"Kafka at {bootstrap_servers} did not answer within {timeout:g} s: {exc}"
        ) from None


def local_broker(conf: Settings | None = None) -> KafkaBroker:
    """The platform's own broker for the current data directory (not started)."""
    return KafkaBroker((conf or settings()).kafka_dir)


def ensure_kafka(conf: Settings | None = None) -> str:
    """Bootstrap servers of a reachable Kafka: KAFKA_BOOTSTRAP_SERVERS if set, else the local
    broker (started if needed). For the demo, the CLI and tests, never for readers."""
    conf = conf or settings()
    if conf.kafka_bootstrap_servers:
        check_kafka(conf.kafka_bootstrap_servers)
        return conf.kafka_bootstrap_servers
    return local_broker(conf).start().bootstrap_servers


def bootstrap_servers(conf: Settings | None = None) -> str:
    """The Kafka that producers and streaming jobs use: KAFKA_BOOTSTRAP_SERVERS if set, else
    the local broker if it runs. Never starts one."""
    conf = conf or settings()
    if conf.kafka_bootstrap_servers:
        return conf.kafka_bootstrap_servers
    broker = local_broker(conf)
    if not broker.is_running():
        raise KafkaNotConfiguredError(
            f"no Kafka: set {KAFKA_BOOTSTRAP_ENV}, or start the local broker with "
            f"`feature-platform kafka start` (data directory {(conf or settings()).data_dir})"
        )
    return broker.bootstrap_servers
