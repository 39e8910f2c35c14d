"""A real ``ccpulse worker`` process for integration tests, on its own topic, port and data dir."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.parse
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from pipeline import web_address
from pipeline.local_broker import launcher


def unique_name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


@dataclass
class Deployment:
    """One isolated ccpulse deployment: topic, app id and data dir of its own on a shared broker."""

    bootstrap: str
    root: Path
    topic: str = field(default_factory=lambda: unique_name("cc.events"))
    app_id: str = field(default_factory=lambda: unique_name("ccpulse"))
    partitions: int = 4
    extra_env: dict[str, str] = field(default_factory=dict)

    def env(self, **overrides: str) -> dict[str, str]:
        return {
            **os.environ,
            "CCPULSE_KAFKA_BOOTSTRAP": self.bootstrap,
            "CCPULSE_TOPIC": self.topic,
            "CCPULSE_DLQ_TOPIC": f"{self.topic}.dlq",
            "CCPULSE_APP_ID": self.app_id,
            "CCPULSE_PARTITIONS": str(self.partitions),
            "CCPULSE_KAFKA_SESSION_TIMEOUT": "6",
            # the stall watchdog, tighter than in production: a false alarm would stop a worker
            # mid-test and fail it (restarts, rebalances and backlogs happen in these tests)
            "CCPULSE_STALL_SECONDS": "30",
            "CCPULSE_LOG_LEVEL": "info",
            **self.extra_env,
            **overrides,
        }

    def ccpulse(
        self, *args: str, input_bytes: bytes | None = None, timeout: float = 120
    ) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run(
            [sys.executable, "-m", "pipeline", *args],
            env=self.env(),
            input=input_bytes,
            capture_output=True,
            timeout=timeout,
            cwd=self.root,
        )

    def worker(self, name: str = "w1", keep_port: bool = False) -> WorkerProcess:
        return WorkerProcess(self, name, keep_port)


class PortTaken(RuntimeError):
    """The worker's web port was bound by another process first."""


NOTABLE = re.compile(r"\[(CRITICAL|ERROR|WARNING)\]")
NOTABLE_LINES = 30
NOTABLE_WIDTH = 800


PORT_ATTEMPTS = 5


class WorkerProcess:
    """A worker whose web server binds any free port (CCPULSE_HTTP_PORT=0) at every start, or with
    ``keep_port`` (for a browser that must find it again after a restart) one port outside the
    ephemeral range for all its starts: a port the kernel cannot hand to a client connection, chosen
    again should another server take it before the first start."""

    def __init__(self, deployment: Deployment, name: str, keep_port: bool = False) -> None:
        self.deployment = deployment
        self.name = name
        self.keep_port = keep_port
        self.port = 0  # the port its web server bound, known once it has started
        self.data_dir = deployment.root / f"data-{name}"
        self.log_path = deployment.root / f"worker-{name}.log"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 90) -> WorkerProcess:
        if not self.keep_port or self.port:
            return self._start(timeout)
        for _ in range(PORT_ATTEMPTS):
            self.port = launcher().unclaimed_port()
            try:
                return self._start(timeout)
            except PortTaken:
                continue
        raise RuntimeError(f"worker {self.name}: {PORT_ATTEMPTS} ports were taken before it bound them")

    def _start(self, timeout: float) -> WorkerProcess:
        env = self.deployment.env(CCPULSE_HTTP_PORT=str(self.port if self.keep_port else 0),
                                  CCPULSE_DATA_DIR=str(self.data_dir))  # fmt: skip
        log = open(self.log_path, "ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "pipeline", "worker", "--verbose"],  # Faust's log too: for diagnosis
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=self.deployment.root,
        )
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                if "cannot serve the web on" in self.log_tail(5):
                    raise PortTaken(self.log_tail(5))
                raise RuntimeError(f"worker {self.name} exited with {self.process.returncode}:\n{self.log_tail()}")
            url = web_address.published(web_address.address_file(self.data_dir), pid=self.process.pid)
            if url is None:
                time.sleep(0.2)
                continue
            self.port = int(url.rsplit(":", 1)[1])
            try:
                self.scrape()
                return self
            except OSError:
                time.sleep(0.3)
        raise RuntimeError(f"worker {self.name} did not answer within {timeout}s:\n{self.log_tail()}")

    def scrape(self, *names: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        """Every sample on /metrics, keyed by (name, sorted labels); with ``names``, only the samples
        of those names (``/metrics?name[]=…``: what a poller of one gauge asks for)."""
        query = urllib.parse.urlencode([("name[]", name) for name in names])
        with urllib.request.urlopen(f"{self.url}/metrics{'?' + query if query else ''}", timeout=5) as response:
            text = response.read().decode()
        samples: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
        return samples

    def get_json(self, path: str) -> Any:
        with urllib.request.urlopen(f"{self.url}{path}", timeout=5) as response:
            return json.loads(response.read())

    def wait_for(self, predicate, timeout: float = 60, interval: float = 0.3):  # type: ignore[no-untyped-def]
        """Scrape until ``predicate(samples)`` is true; return the samples. Fails with the last scrape."""
        deadline = time.monotonic() + timeout
        samples: dict = {}
        while time.monotonic() < deadline:
            try:
                samples = self.scrape()
                if predicate(samples):
                    return samples
            except OSError:
                pass
            time.sleep(interval)
        raise AssertionError(f"condition not met within {timeout}s; last scrape: {samples}\n{self.log_tail()}")

    def settled(self, predicate=lambda samples: True, timeout: float = 120):  # type: ignore[no-untyped-def]
        """Scrape until ``predicate`` holds and every stage's lag reads 0 in :data:`SETTLING_ROUNDS`
        rounds of the lag in a row, all begun after a scrape that showed ``predicate`` hold; return
        the last samples.

        ``caught_up`` alone is not that: the lag is measured once a second and its gauge holds the
        last round's value, so a scrape can pair the last events' count (taken as the ingest stage
        reads them) with a lag of 0 from before they were read (CI, 2026-12-07). And a stage's 0
        counts what the stage before it had sent when it was asked: ingest → issues → board takes
        three rounds. ``ccpulse_consumer_lag_rounds_total`` numbers the rounds,
        ``ccpulse_consumer_lag_asked_time_seconds`` says when the latest began."""
        deadline = time.monotonic() + timeout
        samples: dict = {}  # type: ignore[type-arg]
        since, last, run = None, None, 0
        while run < SETTLING_ROUNDS:
            if time.monotonic() > deadline:
                raise AssertionError(f"not settled within {timeout}s ({run} rounds of {SETTLING_ROUNDS}); "
                                     f"last scrape: {samples}\n{self.log_tail()}")  # fmt: skip
            time.sleep(0.1)
            try:
                samples = self.scrape()
            except OSError:
                continue
            held, rounds = predicate(samples), counter(samples, LAG_ROUNDS)
            if since is None:
                since = time.time() if held else None  # rounds begun from now on saw what it counted
            elif rounds != last:
                good = held and caught_up(samples) and counter(samples, LAG_ASKED) >= since
                run = (run + 1 if last is not None and rounds == last + 1 else 1) if good else 0
                last = rounds
        return samples

    def kill(self) -> None:
        """SIGKILL: no clean shutdown, no final commit."""
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(30)

    def stop(self, grace: float = 30) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(grace)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def log_tail(self, lines: int = 40) -> str:
        """The log's last lines, after its warnings and errors from before them (a stall report's
        headline, commit accounts and re-reads come before its long list of waiting tasks)."""
        try:
            log = self.log_path.read_text(errors="replace").splitlines()
        except OSError:
            return ""
        earlier = [
            line[:NOTABLE_WIDTH] for line in log[:-lines] if NOTABLE.search(line) and "stall report: task" not in line
        ][-NOTABLE_LINES:]
        tail = "\n".join(line[: NOTABLE_WIDTH * 4] for line in log[-lines:])
        return "[earlier warnings and errors]\n" + "\n".join(earlier) + f"\n[last lines]\n{tail}" if earlier else tail

    def exited(self) -> int | None:
        """The exit code, if the process has ended."""
        return None if self.process is None else self.process.poll()

    def __enter__(self) -> WorkerProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def counter(samples: dict, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


STAGES = ("ingest", "issues", "board")
LAG_ROUNDS = "ccpulse_consumer_lag_rounds_total"
LAG_ASKED = "ccpulse_consumer_lag_asked_time_seconds"
SETTLING_ROUNDS = len(STAGES)  # WorkerProcess.settled


def caught_up(samples: dict, stages: tuple[str, ...] = STAGES) -> bool:  # type: ignore[type-arg]
    """Every stage reports its lag and it is 0 (an absent lag is unknown, not caught up)."""
    lags = {stage: samples.get(("ccpulse_consumer_lag", (("stage", stage),))) for stage in stages}
    return all(lag == 0 for lag in lags.values())


def query(worker: WorkerProcess, sql: str, **env: str) -> list[dict]:  # type: ignore[type-arg]
    """Rows of a read-only query, through ``ccpulse query`` as a user runs it (via the worker)."""
    import json

    completed = subprocess.run(
        [sys.executable, "-m", "pipeline", "query", sql],
        # port 0: the address the worker published in its data dir, as a user of CCPULSE_HTTP_PORT=0 finds it
        env=worker.deployment.env(CCPULSE_HTTP_PORT="0", CCPULSE_DATA_DIR=str(worker.data_dir), **env),
        capture_output=True, timeout=120, cwd=worker.deployment.root,
    )  # fmt: skip
    if completed.returncode != 0:
        raise AssertionError(f"ccpulse query failed ({completed.returncode}): {completed.stderr.decode()}")
    return [json.loads(line) for line in completed.stdout.splitlines() if line.strip()]
