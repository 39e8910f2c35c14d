"""The README's first command: `ccpulse up` brings up a real broker JVM, a worker and traffic,
and Ctrl-C (SIGINT) stops all of it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.worker_process import free_port

pytestmark = pytest.mark.integration


def _processes_mentioning(text: str) -> list[int]:
    found = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                if text.encode() in (proc / "cmdline").read_bytes():
                    found.append(int(proc.name))
            except OSError:
                continue
    return found


def test_up_runs_broker_worker_and_traffic_and_ctrl_c_stops_everything(tmp_path: Path, kafka_launcher) -> None:  # type: ignore[no-untyped-def]
    import urllib.request

    from prometheus_client.parser import text_string_to_metric_families

    data_dir = tmp_path / "state"
    http_port = free_port()
    env = {
        **os.environ,
        "CCPULSE_DATA_DIR": str(data_dir),
        "CCPULSE_KAFKA_BOOTSTRAP": f"127.0.0.1:{free_port()}",
        "CCPULSE_HTTP_PORT": str(http_port),
    }
    up = subprocess.Popen(
        [sys.executable, "-m", "pipeline", "up", "--speed", "60"],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 150
        events = 0.0
        while time.monotonic() < deadline and events == 0:
            time.sleep(1)
            assert up.poll() is None, up.stdout.read().decode()[-3000:] if up.stdout else ""
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{http_port}/metrics", timeout=2) as response:
                    text = response.read().decode()
            except OSError:
                continue
            events = sum(
                s.value
                for family in text_string_to_metric_families(text)
                for s in family.samples
                if s.name == "ccpulse_events_total"
            )
        assert events > 0, "no simulated traffic reached /metrics"
        status = kafka_launcher.status(data_dir)
        assert status["running"] and status["answering"]
        broker_pid = status["pid"]
        assert b"kafka.Kafka" in Path(f"/proc/{broker_pid}/cmdline").read_bytes()
        children = [int(pid) for pid in Path(f"/proc/{up.pid}/task/{up.pid}/children").read_text().split()]
        commands = [Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0") for pid in children]
        assert sorted(command[3] for command in commands if command[1:3] == [b"-m", b"pipeline"]) == [
            b"simulate",
            b"worker",
        ]
    finally:
        up.send_signal(signal.SIGINT)
        try:
            output = up.communicate(timeout=90)[0].decode()
        except subprocess.TimeoutExpired:
            up.kill()
            raise
    assert up.returncode == 0, output[-3000:]
    assert "Kafka stopped" in output
    assert not kafka_launcher.status(data_dir)["running"]
    assert _processes_mentioning(str(data_dir)) == []  # the broker JVM is gone
    for pid in [broker_pid, *children]:  # and so are the worker and the traffic
        assert not Path(f"/proc/{pid}").exists() or "Z" in Path(f"/proc/{pid}/stat").read_text().split(") ")[1][:1]
