"""The README's first command: `ccpulse up` brings up a real broker JVM, a worker and traffic,
and Ctrl-C (SIGINT) stops all of it."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pipeline import web_address
from pipeline.simulation import DEFAULT_QUEUES

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


def _board_url(data_dir: Path, up: subprocess.Popen[bytes], deadline: float) -> str:
    """The worker's address, published in the data dir (CCPULSE_HTTP_PORT=0: the port it bound)."""
    while time.monotonic() < deadline:
        assert up.poll() is None, up.stdout.read().decode()[-3000:] if up.stdout else ""
        url = web_address.published(web_address.address_file(data_dir))
        if url is not None:
            return url
        time.sleep(0.3)
    raise AssertionError("the worker published no address")


def _queues_with_service_level_today(url: str) -> set[tuple[str, str]]:
    import json
    import urllib.request

    try:
        with urllib.request.urlopen(f"{url}/api/snapshot", timeout=2) as response:
            tiles = json.loads(response.read())["queues"]
    except OSError:
        return set()
    return {(t["queue"], t["channel"]) for t in tiles if t["service_level"]["today"] is not None}


def test_up_runs_broker_worker_and_traffic_and_ctrl_c_stops_everything(tmp_path: Path, kafka_launcher) -> None:  # type: ignore[no-untyped-def]
    """Also: at any hour, every simulated queue shows a service level for today within 60 s (the
    simulated center's day so far goes through the real broker and worker first); the console has
    ccpulse's own lines and no Faust start-up chatter."""
    data_dir = tmp_path / "state"
    env = {
        **os.environ,
        "CCPULSE_DATA_DIR": str(data_dir),
        "CCPULSE_KAFKA_BOOTSTRAP": "127.0.0.1:0",  # a broker of its own, on a port the launcher chooses
        "CCPULSE_HTTP_PORT": "0",  # the worker binds any free port and publishes it
    }
    env.pop("CCPULSE_TIMEZONE", None)
    env.pop("CCPULSE_LOG_LEVEL", None)
    up = subprocess.Popen(
        [sys.executable, "-m", "pipeline", "up", "--speed", "60"],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        url = _board_url(data_dir, up, time.monotonic() + 150)
        wanted = {(q.queue, q.channel) for q in DEFAULT_QUEUES}
        deadline = time.monotonic() + 60
        shown: set[tuple[str, str]] = set()
        while time.monotonic() < deadline and not wanted <= shown:
            assert up.poll() is None, up.stdout.read().decode()[-3000:] if up.stdout else ""
            shown = _queues_with_service_level_today(url)
            time.sleep(1)
        assert wanted <= shown, f"queues without a service level today after 60 s: {sorted(wanted - shown)}"
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
        time.sleep(6)  # a progress line is due every 5 s
    finally:
        up.send_signal(signal.SIGINT)
        try:
            output = up.communicate(timeout=90)[0].decode()
        except subprocess.TimeoutExpired:
            up.kill()
            raise
    assert up.returncode == 0, output[-3000:]
    assert f"wallboard {url}/wallboard" in output
    assert "the wallboard shows all 9 simulated queues with today's figures" in output
    assert re.search(r"events [\d,]+/s \([\d,]+ in all\) · lag [\d,]+", output), output[-3000:]
    assert "[^" not in output and "Highwater" not in output, output[-3000:]  # no Faust service log, no tables
    assert "Kafka stopped" in output
    assert not kafka_launcher.status(data_dir)["running"]
    assert _processes_mentioning(str(data_dir)) == []  # the broker JVM is gone
    for pid in [broker_pid, *children]:  # and so are the worker and the traffic
        assert not Path(f"/proc/{pid}").exists() or "Z" in Path(f"/proc/{pid}/stat").read_text().split(") ")[1][:1]
