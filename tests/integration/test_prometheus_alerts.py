"""A real Prometheus (Debian's package) scrapes a real worker and evaluates the project's alert
rules: too few agents make service level fall, the alert goes pending then firing (seen through
Prometheus' HTTP API), and it resolves when staffing recovers.

The rules are the project's own, expressions untouched; only their ``for:`` durations are
shortened (to seconds) so that the test does not wait 5 minutes per state: promtool tests
(tests/unit/test_alert_rules.py) cover the real durations.
"""

from __future__ import annotations

import json
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest
import yaml

from pipeline.local_broker import launcher
from pipeline.simulation import Simulation
from tests.debian_tools import debian_tool
from tests.worker_process import Deployment, WorkerProcess, caught_up

pytestmark = pytest.mark.integration
RULES = Path(__file__).resolve().parents[2] / "deploy" / "prometheus" / "rules" / "ccpulse.yml"
FOR = "4s"
ALERT = "ServiceLevelBelowTarget"


def prometheus_binary() -> str:
    return debian_tool("prometheus", "prometheus")


@pytest.fixture
def prometheus(tmp_path: Path) -> Iterator[Path]:
    """Prometheus' config path to write (the binary is looked up first)."""
    prometheus_binary()  # skips (or fails in CI) before a worker is started for nothing
    yield tmp_path / "prometheus.yml"


BIND_ATTEMPTS = 5


def start_prometheus(config: Path, worker: WorkerProcess, root: Path) -> tuple[subprocess.Popen[bytes], str]:
    """Prometheus on an unclaimed port (outside the ephemeral range); should another server take
    the port before Prometheus binds it, Prometheus exits and is started on another."""
    for _ in range(BIND_ATTEMPTS):
        url = f"http://127.0.0.1:{launcher().unclaimed_port()}"
        process = _start_prometheus_at(config, url, worker, root)
        if process is not None:
            return process, url
    raise RuntimeError(f"prometheus found its port taken {BIND_ATTEMPTS} times")


def _start_prometheus_at(config: Path, url: str, worker: WorkerProcess, root: Path) -> subprocess.Popen[bytes] | None:
    rules = yaml.safe_load(RULES.read_text())
    for group in rules["groups"]:
        group["interval"] = "1s"
        for rule in group["rules"]:
            rule["for"] = FOR
    (root / "rules.yml").write_text(yaml.safe_dump(rules))
    config.write_text(yaml.safe_dump({
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(root / "rules.yml")],
        "scrape_configs": [{"job_name": "ccpulse", "static_configs": [{"targets": [f"127.0.0.1:{worker.port}"]}]}],
    }))  # fmt: skip
    log = open(root / "prometheus.log", "wb")
    process = subprocess.Popen(
        [prometheus_binary(), f"--config.file={config}", f"--storage.tsdb.path={root / 'tsdb'}",
         f"--web.listen-address={url.removeprefix('http://')}", "--log.level=warn"],
        stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            if "address already in use" in (root / "prometheus.log").read_text():
                return None
            raise RuntimeError(f"prometheus exited: {(root / 'prometheus.log').read_text()}")
        try:
            with urllib.request.urlopen(f"{url}/-/ready", timeout=2) as response:
                if response.status == 200:
                    return process
        except OSError:
            time.sleep(0.3)
    process.kill()
    raise RuntimeError(f"prometheus did not start: {(root / 'prometheus.log').read_text()}")


def alerts(url: str) -> list[dict]:  # type: ignore[type-arg]
    with urllib.request.urlopen(f"{url}/api/v1/alerts", timeout=5) as response:
        return [a for a in json.loads(response.read())["data"]["alerts"] if a["labels"]["alertname"] == ALERT]


def traffic(start: datetime, staffing: float, seed: int) -> bytes:
    """50 minutes of a simulated hour: with the event clock, *now* is then inside the busy period
    (the simulator finishes every contact, with surveys hours later, which would move *now* on)."""
    cut = start + timedelta(minutes=50)
    events = Simulation(start, seed=seed, staffing=staffing).events(timedelta(hours=1))
    kept = [e for e in events if datetime.fromisoformat(str(e["occurred_at"])) < cut]
    return b"\n".join(orjson.dumps(e) for e in kept) + b"\n"


def test_service_level_alert_goes_pending_fires_and_resolves(kafka_bootstrap: str, tmp_path: Path,
                                                             prometheus: Path) -> None:  # fmt: skip
    config = prometheus
    deployment = Deployment(kafka_bootstrap, tmp_path, extra_env={"CCPULSE_CLOCK": "event"})
    start = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
    with deployment.worker() as worker:
        server, url = start_prometheus(config, worker, tmp_path)
        try:
            # an hour with 40% of the agents needed: service level falls
            produced = deployment.ccpulse("produce", "-", input_bytes=traffic(start, 0.4, seed=61))
            assert produced.returncode == 0, produced.stderr.decode()
            seen: list[str] = []
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline and "firing" not in seen:
                states = {a["state"] for a in alerts(url)}
                seen += [s for s in ("pending", "firing") if s in states and s not in seen]
                time.sleep(0.3)
            assert seen == ["pending", "firing"], f"alert states seen: {seen}"
            firing = [a for a in alerts(url) if a["state"] == "firing"]
            queue = firing[0]["labels"]["queue"]
            assert queue in firing[0]["annotations"]["summary"] and "%" in firing[0]["annotations"]["summary"]
            # the next hour is well staffed: the 15-minute window moves past the bad hour
            produced = deployment.ccpulse("produce", "-", input_bytes=traffic(start + timedelta(hours=1), 1.5, seed=62))
            assert produced.returncode == 0, produced.stderr.decode()
            worker.wait_for(lambda s: caught_up(s), timeout=120)
            deadline = time.monotonic() + 90
            while time.monotonic() < deadline and alerts(url):
                time.sleep(0.5)
            assert alerts(url) == [], f"still active: {alerts(url)}"
        finally:
            server.terminate()
            server.wait(20)
