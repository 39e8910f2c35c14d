"""The project's Kafka launcher (deploy/local/kafka.py) with a real broker JVM."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]


def _cmdline(pid: int) -> list[str]:
    return [part.decode() for part in Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0") if part]


def test_start_status_restart_keeps_data_and_address_stop(kafka_launcher, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from kafka import KafkaConsumer, KafkaProducer

    kafka = kafka_launcher
    broker = kafka.start(tmp_path, port=0)
    try:
        assert broker.started_here
        assert "kafka.Kafka" in _cmdline(broker.pid)  # a real broker JVM, not a stand-in
        status = kafka.status(tmp_path)
        assert status["running"] and status["answering"] and status["bootstrap"] == broker.bootstrap

        again = kafka.start(tmp_path)  # already running: found, not started twice
        assert not again.started_here and again.pid == broker.pid

        producer = KafkaProducer(bootstrap_servers=broker.bootstrap)
        producer.send("kept", b"survives a restart").get(timeout=30)
        producer.close()

        assert kafka.stop(tmp_path)
        assert not kafka.status(tmp_path)["running"]

        restarted = kafka.start(tmp_path)
        assert restarted.bootstrap == broker.bootstrap  # same address for clients
        consumer = KafkaConsumer(
            "kept",
            bootstrap_servers=restarted.bootstrap,
            auto_offset_reset="earliest",
            consumer_timeout_ms=10000,
        )
        assert [message.value for message in consumer] == [b"survives a restart"]
        consumer.close()
    finally:
        kafka.stop(tmp_path)
    assert not kafka.status(tmp_path)["running"]


def test_stop_never_touches_a_process_it_did_not_start(kafka_launcher, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    bystander = subprocess.Popen(["sleep", "60"])
    try:
        layout = kafka_launcher.BrokerLayout.for_data_dir(tmp_path)
        layout.root.mkdir(parents=True)
        layout.pid_file.write_text(f"{bystander.pid}\n")  # a stale pid file naming someone else
        assert kafka_launcher.stop(tmp_path) is False
        assert bystander.poll() is None
    finally:
        bystander.kill()
        bystander.wait()


def test_command_line_start_prints_bootstrap_and_stop(tmp_path: Path) -> None:
    launcher = str(REPO / "deploy" / "local" / "kafka.py")
    started = subprocess.run(
        [sys.executable, launcher, "start", "--data-dir", str(tmp_path), "--port", "0"],
        capture_output=True,
        text=True,
        timeout=180,
    )
    try:
        assert started.returncode == 0, started.stderr
        bootstrap = started.stdout.strip().splitlines()[-1]
        assert bootstrap.startswith("127.0.0.1:")
        status = subprocess.run(
            [sys.executable, launcher, "status", "--data-dir", str(tmp_path)],
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert '"answering": true' in status.stdout
    finally:
        stopped = subprocess.run(
            [sys.executable, launcher, "stop", "--data-dir", str(tmp_path)],
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert "stopped" in stopped.stderr


def test_a_port_taken_before_the_broker_binds_it_is_replaced_by_another(kafka_launcher, tmp_path: Path,
                                                                        monkeypatch) -> None:  # type: ignore[no-untyped-def]  # fmt: skip
    """Another server may bind the chosen port between the choice and the broker's bind; the
    launcher then starts the broker again on other ports. The race is made certain here: the first
    port offered is already listened on (by this test), the rest are the launcher's own choice."""
    import socket

    kafka = kafka_launcher
    squatter = socket.socket()
    squatter.bind(("127.0.0.1", kafka.unclaimed_port()))
    squatter.listen()
    taken = squatter.getsockname()[1]
    real = kafka.unclaimed_port
    offered = iter([taken])
    monkeypatch.setattr(kafka, "unclaimed_port", lambda: next(offered, None) or real())
    try:
        broker = kafka.start(tmp_path, port=0)
        assert broker.bootstrap != f"127.0.0.1:{taken}"
        assert kafka.status(tmp_path)["answering"]
        assert "Address already in use" in (tmp_path / "kafka" / "logs" / "server.log").read_text()
    finally:
        kafka.stop(tmp_path)
        squatter.close()
