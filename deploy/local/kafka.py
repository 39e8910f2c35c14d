#!/usr/bin/env python3
"""The project's launcher for a real, single-node Apache Kafka broker (KRaft mode), no Docker.

    python3 deploy/local/kafka.py start  [--data-dir D] [--port 9092 | --port 0]
    python3 deploy/local/kafka.py status [--data-dir D]
    python3 deploy/local/kafka.py stop   [--data-dir D]
    python3 deploy/local/kafka.py fetch           # only resolve the jars

Contract:
- The broker's jars come from Maven Central through Maven (``pom.xml`` beside this file), once,
  into ``~/.cache/ccpulse/kafka-<version>/libs`` (``CCPULSE_CACHE_DIR`` moves the cache).
- ``start`` formats the storage under ``<data dir>/kafka`` on first use, runs ``kafka.Kafka``
  on loopback, waits until the broker answers a metadata request with itself registered, and
  prints the bootstrap address as its last line of standard output. Starting an already
  running broker of the same data dir is a no-op that prints its address again.
- ``stop`` ends only the process this launcher started for that data dir (pid file, checked
  against the process's command line), never anything else listening on the port.
- A restart keeps the data and the ports: both are recorded under the data dir.

Standard library only: it must run on a fresh machine before the project's venv exists.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
import uuid
import xml.etree.ElementTree as ElementTree
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
POM = HERE / "pom.xml"
MAIN_CLASS = "kafka.Kafka"
STORAGE_TOOL = "kafka.tools.StorageTool"
MIN_JAVA = 11


class LauncherError(RuntimeError):
    """A problem the user can fix; the message says how."""


def kafka_version(pom: Path = POM) -> str:
    ns = {"m": "http://maven.apache.org/POM/4.0.0"}
    version = ElementTree.parse(pom).getroot().find("m:properties/m:kafka.version", ns)
    text = (version.text or "").strip() if version is not None else ""
    if not text:
        raise LauncherError(f"{pom} has no <kafka.version> property")
    return text


def cache_root() -> Path:
    explicit = os.environ.get("CCPULSE_CACHE_DIR")
    if explicit:
        return Path(explicit)
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "ccpulse"


def default_data_dir() -> Path:
    return Path(os.environ.get("CCPULSE_DATA_DIR", ".ccpulse")).resolve()


def log(message: str) -> None:
    print(f"[kafka] {message}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------------
# Jars


def libs_dir(version: str | None = None) -> Path:
    return cache_root() / f"kafka-{version or kafka_version()}" / "libs"


def fetch_jars(quiet: bool = False) -> Path:
    """Resolve the broker's runtime jars with Maven into the cache, once. Returns the folder."""
    target = libs_dir()
    if (target / ".complete").exists():
        return target
    mvn = shutil.which("mvn")
    if mvn is None:
        raise LauncherError(
            "Maven (mvn) is needed once to fetch the Kafka broker's jars from Maven Central. "
            "Install it: apt-get install -y maven"
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix="libs.", dir=target.parent))
    if not quiet:
        log(f"fetching Apache Kafka {kafka_version()} jars from Maven Central into {target} (once)")
    command = [
        mvn,
        "-B",
        "-q",
        "-f",
        str(POM),
        "dependency:copy-dependencies",
        f"-DoutputDirectory={staging}",
        "-DincludeScope=runtime",
    ]
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        shutil.rmtree(staging, ignore_errors=True)
        raise LauncherError(
            "Maven could not fetch the Kafka jars (is Maven Central reachable?):\n"
            + (result.stdout + result.stderr)[-3000:]
        )
    (staging / ".complete").write_text(kafka_version() + "\n")
    if target.exists():  # a half-finished earlier attempt
        shutil.rmtree(target)
    staging.rename(target)
    return target


# ---------------------------------------------------------------------------------------------
# Java


def java_command() -> str:
    home = os.environ.get("JAVA_HOME")
    java = str(Path(home) / "bin" / "java") if home else shutil.which("java")
    if not java or not Path(java).exists():
        raise LauncherError(
            "No Java runtime found. The Kafka broker needs Java 11 or newer: "
            "apt-get install -y openjdk-17-jre-headless (or set JAVA_HOME)"
        )
    output = subprocess.run([java, "-version"], capture_output=True, text=True).stderr
    major = _java_major(output)
    if major is not None and major < MIN_JAVA:
        raise LauncherError(f"Java {major} is too old for the Kafka broker; install Java {MIN_JAVA}+")
    return java


def _java_major(version_output: str) -> int | None:
    for token in version_output.replace('"', " ").split():
        head = token.split(".")[0].split("-")[0]
        if head.isdigit():
            number = int(head)
            if number == 1 and token.startswith("1."):  # 1.8.0_292 style
                return int(token.split(".")[1])
            return number
    return None


# ---------------------------------------------------------------------------------------------
# Configuration of one broker


@dataclass(frozen=True)
class BrokerLayout:
    """Where one broker keeps its files, all under ``<data dir>/kafka``."""

    root: Path

    @classmethod
    def for_data_dir(cls, data_dir: Path) -> BrokerLayout:
        return cls(Path(data_dir).resolve() / "kafka")

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def storage(self) -> Path:
        return self.root / "storage"

    @property
    def pid_file(self) -> Path:
        return self.root / "broker.pid"

    @property
    def ports_file(self) -> Path:
        return self.root / "ports.json"

    @property
    def properties(self) -> Path:
        return self.root / "server.properties"

    @property
    def log4j(self) -> Path:
        return self.root / "log4j.properties"


def ephemeral_range() -> tuple[int, int]:
    """The ports the kernel hands to outgoing connections and to port-0 binds (Linux's default)."""
    try:
        low, high = (int(word) for word in Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split())
        return low, high
    except (OSError, ValueError):
        return 32768, 60999


def unclaimed_port(rng: random.Random | None = None) -> int:
    """A port outside the ephemeral range that nothing listens on or uses now.

    A port the kernel chose for a probe and released (the old ``free_port``) comes from the
    ephemeral range, where the kernel also picks the source port of every outgoing connection:
    a broker's clients could take it before the server bound it. Outside that range only another
    server choosing by number can take it, so a server started on this port that finds it taken
    after all is started again on another (``start`` does, and so do the tests)."""
    rng = rng or random.SystemRandom()
    low, high = ephemeral_range()
    spans = [(first, last) for first, last in ((20000, low - 1), (high + 1, 65535), (10000, 19999)) if first <= last]
    for _ in range(200):
        first, last = spans[0] if rng.random() < 0.9 else rng.choice(spans)
        port = rng.randint(first, last)
        if low <= port <= high:
            continue
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
        return port
    raise LauncherError(f"no unused port found outside the ephemeral range {low}-{high}")


def server_properties(storage: Path, port: int, controller_port: int, partitions: int = 1) -> str:
    """The broker's configuration: one node that is broker and controller, on loopback."""
    return "\n".join(
        [
            "process.roles=broker,controller",
            "node.id=1",
            f"controller.quorum.voters=1@127.0.0.1:{controller_port}",
            f"listeners=PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller_port}",
            f"advertised.listeners=PLAINTEXT://127.0.0.1:{port}",
            "controller.listener.names=CONTROLLER",
            "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "inter.broker.listener.name=PLAINTEXT",
            f"log.dirs={storage}",
            f"num.partitions={partitions}",
            "offsets.topic.replication.factor=1",
            "offsets.topic.num.partitions=10",
            "transaction.state.log.replication.factor=1",
            "transaction.state.log.min.isr=1",
            "share.coordinator.state.topic.replication.factor=1",
            # One node: nobody else will join the group, so don't wait for them.
            "group.initial.rebalance.delay.ms=0",
            "auto.create.topics.enable=true",
            "log.retention.hours=168",
            "",
        ]
    )


def log4j_properties(logs: Path) -> str:
    return "\n".join(
        [
            "log4j.rootLogger=INFO, file",
            "log4j.appender.file=org.apache.log4j.RollingFileAppender",
            f"log4j.appender.file.File={logs / 'server.log'}",
            "log4j.appender.file.MaxFileSize=20MB",
            "log4j.appender.file.MaxBackupIndex=3",
            "log4j.appender.file.layout=org.apache.log4j.PatternLayout",
            "log4j.appender.file.layout.ConversionPattern=[%d] %p %m (%c)%n",
            "log4j.logger.kafka=INFO",
            "log4j.logger.org.apache.kafka=INFO",
            "",
        ]
    )


# ---------------------------------------------------------------------------------------------
# Is it answering? (a Kafka Metadata v0 request over a plain socket)


def broker_answers(host: str, port: int, timeout: float = 1.0) -> bool:
    """True when the broker answers a metadata request and lists at least one broker."""
    try:
        with socket.create_connection((host, port), timeout=timeout) as connection:
            client_id = b"ccpulse-launcher"
            # api_key=3 (Metadata), api_version=0, correlation_id=7, client_id, topics=[] (all)
            body = struct.pack(">hhih", 3, 0, 7, len(client_id)) + client_id + struct.pack(">i", 0)
            connection.sendall(struct.pack(">i", len(body)) + body)
            header = _read_exactly(connection, 4)
            (size,) = struct.unpack(">i", header)
            payload = _read_exactly(connection, size)
            correlation_id, broker_count = struct.unpack(">ii", payload[:8])
            return correlation_id == 7 and broker_count >= 1
    except (OSError, struct.error):
        return False


def _read_exactly(connection: socket.socket, size: int) -> bytes:
    chunks = bytearray()
    while len(chunks) < size:
        chunk = connection.recv(size - len(chunks))
        if not chunk:
            raise OSError("connection closed")
        chunks.extend(chunk)
    return bytes(chunks)


# ---------------------------------------------------------------------------------------------
# Process control


def _pid_is_our_broker(pid: int, layout: BrokerLayout) -> bool:
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    words = [part.decode(errors="replace") for part in cmdline]
    return MAIN_CLASS in words and str(layout.properties) in words


def running_pid(layout: BrokerLayout) -> int | None:
    try:
        pid = int(layout.pid_file.read_text().strip())
    except (OSError, ValueError):
        return None
    return pid if _pid_is_our_broker(pid, layout) else None


def recorded_ports(layout: BrokerLayout) -> tuple[int, int] | None:
    try:
        ports = json.loads(layout.ports_file.read_text())
        return int(ports["port"]), int(ports["controller_port"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


@dataclass(frozen=True)
class Broker:
    bootstrap: str
    pid: int
    data_dir: Path
    started_here: bool


def start(
    data_dir: Path | None = None,
    port: int | None = None,
    heap: str = "512m",
    timeout: float = 90.0,
    partitions: int = 1,
) -> Broker:
    """Start (or find) the broker for ``data_dir``. ``port=0`` picks an unclaimed port (outside the
    ephemeral range) and, should another server take it first, starts again on another."""
    layout = BrokerLayout.for_data_dir(data_dir or default_data_dir())
    existing = running_pid(layout)
    ports = recorded_ports(layout)
    if existing is not None and ports is not None:
        if not _wait_until_answers(ports[0], timeout, pid=existing):
            raise LauncherError(f"broker pid {existing} runs but does not answer on 127.0.0.1:{ports[0]}")
        return Broker(f"127.0.0.1:{ports[0]}", existing, layout.root.parent, started_here=False)
    if port is None and ports is not None:
        return _start_on(layout, *ports, heap, timeout, partitions)  # a restart keeps the address clients know
    fixed = 9092 if port is None else port or None  # None: an unclaimed port of our choice
    for attempt in range(1, BIND_ATTEMPTS + 1):
        chosen = fixed or unclaimed_port()
        controller_port = unclaimed_port()
        while controller_port == chosen:
            controller_port = unclaimed_port()
        try:
            return _start_on(layout, chosen, controller_port, heap, timeout, partitions)
        except PortTaken as taken:
            if attempt == BIND_ATTEMPTS:
                raise LauncherError(f"{taken} ({BIND_ATTEMPTS} tries)") from None
            print(f"[kafka] {taken}; trying again", file=sys.stderr)
    raise AssertionError("unreachable")


BIND_ATTEMPTS = 5


class PortTaken(LauncherError):
    """Another process bound one of the broker's ports before the broker did."""


def _start_on(layout: BrokerLayout, port: int, controller_port: int, heap: str, timeout: float,
              partitions: int) -> Broker:  # fmt: skip
    if broker_answers("127.0.0.1", port, timeout=0.5):
        raise LauncherError(
            f"something else already answers as a Kafka broker on 127.0.0.1:{port}; "
            "use it (CCPULSE_KAFKA_BOOTSTRAP) or pick another port (--port 0 for a free one)"
        )
    java = java_command()
    libs = fetch_jars()
    classpath = f"{libs}/*"
    for folder in (layout.logs, layout.storage):
        folder.mkdir(parents=True, exist_ok=True)
    layout.properties.write_text(server_properties(layout.storage, port, controller_port, partitions))
    layout.log4j.write_text(log4j_properties(layout.logs))
    layout.ports_file.write_text(json.dumps({"port": port, "controller_port": controller_port}))
    java_options = [
        f"-Xms{heap}",
        f"-Xmx{heap}",
        "-XX:+UseG1GC",
        "-Djava.awt.headless=true",
        f"-Dlog4j.configuration=file:{layout.log4j}",
    ]
    if not (layout.storage / "meta.properties").exists():
        _format_storage(java, java_options, classpath, layout)
    logs = (layout.logs / "server.log", layout.logs / "stdout.log")
    sizes = [log.stat().st_size if log.exists() else 0 for log in logs]
    stdout = open(layout.logs / "stdout.log", "ab")
    process = subprocess.Popen(
        [java, *java_options, "-cp", classpath, MAIN_CLASS, str(layout.properties)],
        stdin=subprocess.DEVNULL,
        stdout=stdout,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # Ctrl-C in the caller's terminal is the caller's to handle
    )
    stdout.close()
    layout.pid_file.write_text(f"{process.pid}\n")
    if not _wait_until_answers(port, timeout, pid=process.pid):
        tail = _tail(logs[0]) or _tail(logs[1])
        stop(layout.root.parent)
        if any(_bind_failed(log, size) for log, size in zip(logs, sizes, strict=True)):
            raise PortTaken(f"port {port} or {controller_port} was taken before the broker bound it")
        raise LauncherError(f"the broker did not answer on 127.0.0.1:{port} within {timeout:.0f}s:\n{tail}")
    return Broker(f"127.0.0.1:{port}", process.pid, layout.root.parent, started_here=True)


def _bind_failed(log: Path, since: int) -> bool:
    """The broker's log (from byte ``since``) says a listener could not bind its port."""
    try:
        with open(log, "rb") as handle:
            handle.seek(since)
            text = handle.read().decode(errors="replace")
    except OSError:
        return False
    return "Address already in use" in text or "BindException" in text


def _format_storage(java: str, java_options: list[str], classpath: str, layout: BrokerLayout) -> None:
    result = subprocess.run(
        [java, *java_options, "-cp", classpath, STORAGE_TOOL, "format", "-t", _cluster_id(),
         "-c", str(layout.properties), "--ignore-formatted"],
        capture_output=True,
        text=True,
    )  # fmt: skip
    if result.returncode != 0:
        raise LauncherError("formatting the broker's storage failed:\n" + result.stdout + result.stderr)


def _cluster_id() -> str:
    # KRaft cluster ids are 16 random bytes in URL-safe base64 without padding (22 chars). One in
    # 64 would start with "-", which kafka-storage takes for an option ("--cluster-id/-t: expected
    # one argument"); Kafka's own Uuid.randomUuid() draws again in that case, and so do we.
    import base64

    while True:
        candidate = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not candidate.startswith("-"):
            return candidate


def _wait_until_answers(port: int, timeout: float, pid: int) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if broker_answers("127.0.0.1", port):
            return True
        if not Path(f"/proc/{pid}").exists() or _is_zombie(pid):
            return False
        time.sleep(0.2)
    return False


def _is_zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1].startswith("Z")
    except (OSError, IndexError):
        return True


def _tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def stop(data_dir: Path | None = None, timeout: float = 30.0) -> bool:
    """Stop the broker this launcher started for ``data_dir``. True when one was stopped."""
    layout = BrokerLayout.for_data_dir(data_dir or default_data_dir())
    pid = running_pid(layout)
    if pid is None:
        layout.pid_file.unlink(missing_ok=True)
        return False
    os.kill(pid, signal.SIGTERM)  # the broker shuts down cleanly on TERM
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and _pid_is_our_broker(pid, layout) and not _is_zombie(pid):
        time.sleep(0.1)
    if _pid_is_our_broker(pid, layout) and not _is_zombie(pid):
        os.kill(pid, signal.SIGKILL)
    _reap(pid)
    layout.pid_file.unlink(missing_ok=True)
    return True


def kill(data_dir: Path | None = None) -> bool:
    """SIGKILL the broker (for crash tests): no clean shutdown."""
    layout = BrokerLayout.for_data_dir(data_dir or default_data_dir())
    pid = running_pid(layout)
    if pid is None:
        return False
    os.kill(pid, signal.SIGKILL)
    _reap(pid)
    layout.pid_file.unlink(missing_ok=True)
    return True


def _reap(pid: int) -> None:
    try:
        os.waitpid(pid, 0)
    except ChildProcessError:
        pass  # not our child (started by another process): init reaps it


def status(data_dir: Path | None = None) -> dict[str, object]:
    layout = BrokerLayout.for_data_dir(data_dir or default_data_dir())
    pid = running_pid(layout)
    ports = recorded_ports(layout)
    answering = bool(pid and ports and broker_answers("127.0.0.1", ports[0]))
    return {
        "running": pid is not None,
        "answering": answering,
        "pid": pid,
        "bootstrap": f"127.0.0.1:{ports[0]}" if ports else None,
        "data_dir": str(layout.root),
        "version": kafka_version(),
        "logs": str(layout.logs / "server.log"),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="deploy/local/kafka.py",
        description="Run a real single-node Apache Kafka broker (KRaft) for ccpulse, without Docker.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    start_parser = commands.add_parser("start", help="start the broker (or find it running)")
    start_parser.add_argument(
        "--port",
        type=int,
        default=None,
        help="client port (default 9092, or the one of the last start; 0 = a free port)",
    )
    start_parser.add_argument("--heap", default="512m", help="JVM heap (default 512m)")
    for sub in (
        start_parser,
        commands.add_parser("stop", help="stop the broker this launcher started"),
        commands.add_parser("status", help="say what runs"),
    ):
        sub.add_argument(
            "--data-dir",
            type=Path,
            default=None,
            help="data dir (default $CCPULSE_DATA_DIR or ./.ccpulse); the broker uses <dir>/kafka",
        )
    commands.add_parser("fetch", help="only fetch the broker's jars into the cache")
    args = parser.parse_args(argv)
    try:
        if args.command == "fetch":
            print(fetch_jars())
        elif args.command == "start":
            began = time.monotonic()
            broker = start(args.data_dir, args.port, heap=args.heap)
            verb = "started" if broker.started_here else "already running"
            log(f"Kafka {kafka_version()} {verb} (pid {broker.pid}) in {time.monotonic() - began:.1f}s")
            print(broker.bootstrap)
        elif args.command == "stop":
            log("stopped" if stop(args.data_dir) else "no broker of this data dir was running")
        else:
            print(json.dumps(status(args.data_dir), indent=2))
    except LauncherError as problem:
        log(f"error: {problem}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
