"""``ccpulse up``: the whole thing on one machine, stopped as a whole by Ctrl-C.

It starts (1) the local Kafka broker through the project's launcher, unless
``CCPULSE_KAFKA_BOOTSTRAP`` names a broker that already answers, (2) a worker process and
(3) a simulated center (``pipeline/simulation/demo.py``): placed where it is early afternoon now
(unless ``CCPULSE_TIMEZONE`` is set), its day so far sent at full speed through the real broker and
worker, then live traffic in real time. It stops, on Ctrl-C or SIGTERM, exactly what it started.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType

from pipeline import web_address
from pipeline.settings import Settings
from pipeline.simulation.demo import DemoCenter, demo_center
from pipeline.timefmt import rfc3339

EXIT_STALLED = 3  # pipeline.topology.EXIT_STALLED (not imported: that pulls in Faust)
SIMULATED_DAYS = 7  # the demo's traffic goes on this long, then stops
WORKER_START_SECONDS = 120
BOARD_FULL_SECONDS = 90  # how long `up` waits to say that every simulated queue is on the board


def _say(message: str) -> None:
    print(f"ccpulse up: {message}", flush=True)


def _get(url: str) -> bytes | None:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return bytes(response.read()) if response.status == 200 else None
    except OSError:
        return None


def _stop(process: subprocess.Popen[bytes] | None, name: str, grace: float = 20.0) -> None:
    if process is None or process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(grace)
    except subprocess.TimeoutExpired:
        _say(f"{name} did not stop within {grace:.0f}s; killing it")
        process.kill()
        process.wait()


class Stack:
    """What ``up`` started, so that it stops exactly that."""

    def __init__(self) -> None:
        self.broker_data_dir: Path | None = None  # set when the broker was started here
        self.worker: subprocess.Popen[bytes] | None = None
        self.traffic: subprocess.Popen[bytes] | None = None

    def stop(self, kafka: ModuleType) -> None:
        _stop(self.traffic, "traffic")
        _stop(self.worker, "worker")
        if self.broker_data_dir is not None:
            kafka.stop(self.broker_data_dir)
            _say("Kafka stopped")


def run_local_stack(settings: Settings, speed: float = 1.0, with_traffic: bool = True, verbose: bool = False) -> int:
    from pipeline.local_broker import launcher

    kafka = launcher()
    stack = Stack()
    stopping = False

    def on_term(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    # Explicitly: a parent that ignores SIGINT (a background job, some CI runners) would
    # otherwise leave Python without its KeyboardInterrupt handler.
    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)
    try:
        settings = _start_broker(settings, kafka, stack)
        center = demo_center(datetime.now(UTC), settings.timezone if settings.timezone_given else None)
        env = {
            **os.environ,
            "CCPULSE_KAFKA_BOOTSTRAP": settings.kafka_bootstrap,
            "CCPULSE_DATA_DIR": str(settings.data_dir),
            "CCPULSE_TIMEZONE": center.zone,
            # simulated customers on this host only (127.0.0.1 unless set): the contact lists are on
            "CCPULSE_DRILLDOWN": os.environ.get("CCPULSE_DRILLDOWN", "on"),
        }
        worker_command = [sys.executable, "-m", "pipeline", "worker", *(["--verbose"] if verbose else [])]
        stack.worker = subprocess.Popen(worker_command, env=env)
        url = _wait_for_worker(settings, stack.worker)
        if url is None:
            return 1
        if with_traffic:
            stack.traffic = subprocess.Popen(_traffic_command(center, speed), env=env)
        _tell_where_to_look(settings, url, center if with_traffic else None)
        if with_traffic:
            _tell_when_the_board_is_full(url, stack)
        while True:
            assert stack.worker is not None
            if stack.worker.poll() is not None:
                if stack.worker.returncode == EXIT_STALLED:  # the worker's own stall watchdog: restart it
                    _say("the worker stopped itself after a stall (exit 3); starting it again")
                    stack.worker = subprocess.Popen(worker_command, env=env)
                    continue
                _say(f"the worker exited with code {stack.worker.returncode}")
                return 1 if stack.worker.returncode else 0
            time.sleep(0.5)
    except KeyboardInterrupt:
        stopping = True
        return 0
    finally:
        if stopping:
            _say("stopping")
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not cut the cleanup short
        stack.stop(kafka)


def _start_broker(settings: Settings, kafka: ModuleType, stack: Stack) -> Settings:
    """The broker that answers at CCPULSE_KAFKA_BOOTSTRAP, or one started here (port 0 in the
    bootstrap address: an unclaimed port of the launcher's choice)."""
    host, _, port = settings.kafka_bootstrap.split(",")[0].rpartition(":")
    if int(port) and kafka.broker_answers(host, int(port)):
        _say(f"using the Kafka broker that answers at {settings.kafka_bootstrap}")
        return settings
    version = kafka.kafka_version()
    _say(f"starting Apache Kafka {version} (the first run fetches its jars from Maven Central)")
    began = time.monotonic()
    broker = kafka.start(settings.data_dir, int(port) if host in ("127.0.0.1", "localhost") else None)
    if broker.started_here:
        stack.broker_data_dir = settings.data_dir
    _say(f"Kafka answers at {broker.bootstrap} after {time.monotonic() - began:.1f}s "
         f"(logs: {settings.data_dir / 'kafka' / 'logs'})")  # fmt: skip
    return replace(settings, kafka_bootstrap=broker.bootstrap)


def _wait_for_worker(settings: Settings, worker: subprocess.Popen[bytes]) -> str | None:
    """The worker's web address once its /metrics answers; None (said why) if it never does."""
    deadline = time.monotonic() + WORKER_START_SECONDS
    address = web_address.address_file(settings.data_dir)
    while True:
        if worker.poll() is not None:
            _say(f"the worker exited with code {worker.returncode}; see its lines above")
            return None
        url = web_address.published(address, pid=worker.pid) if settings.http_port == 0 else settings.web_url
        if url and _get(f"{url}/metrics") is not None:
            return url
        if time.monotonic() > deadline:
            _say(f"the worker did not answer within {WORKER_START_SECONDS}s")
            return None
        time.sleep(0.3)


def _traffic_command(center: DemoCenter, speed: float) -> list[str]:
    return [sys.executable, "-m", "pipeline", "simulate", "--to-kafka", "--backfill",
            "--start", rfc3339(center.day_start), "--days", str(SIMULATED_DAYS),
            "--utc-offset", str(center.utc_offset_hours), "--speed", str(speed)]  # fmt: skip


def _tell_where_to_look(settings: Settings, url: str, center: DemoCenter | None) -> None:
    _say("running. Look at:")
    print(f"    wallboard {url}/wallboard   (?lang=ja or ko, ?queue=…, ?channel=…)", flush=True)
    print(f"    agents    {url}/wallboard/agents   (the agent list; a tile of the wallboard opens its contacts)",
          flush=True)  # fmt: skip
    print(f"    metrics   {url}/metrics", flush=True)
    print(f"    status    {url}/status   (or: ccpulse status)", flush=True)
    print(f"    board     {url}/api/snapshot   (JSON for wallboards)", flush=True)
    if settings.sink_enabled:
        print('    SQL       ccpulse query "SELECT queue, sum(offered) FROM ccpulse.metrics_minute FINAL '
              'GROUP BY queue"', flush=True)  # fmt: skip
        print("    report    ccpulse report --interval 30m --from <RFC 3339> --to <RFC 3339>   (CSV per half hour)",
              flush=True)  # fmt: skip
    if center is not None:
        now = datetime.now(UTC)
        _say(f"the simulated center is in {center.describe(now)}: its day so far is being sent at full speed, "
             "then live traffic in real time")  # fmt: skip
    _say("Ctrl-C stops everything started here.")


def _tell_when_the_board_is_full(url: str, stack: Stack) -> None:
    """Say once every simulated queue shows a service level for today (or that it has not yet)."""
    from pipeline.simulation import DEFAULT_QUEUES

    wanted = {(q.queue, q.channel) for q in DEFAULT_QUEUES}
    began = time.monotonic()
    while time.monotonic() - began < BOARD_FULL_SECONDS:
        if stack.worker is None or stack.worker.poll() is not None:
            return
        body = _get(f"{url}/api/snapshot")
        tiles = json.loads(body)["queues"] if body else []
        shown = {(t["queue"], t["channel"]) for t in tiles if t["service_level"]["today"] is not None}
        if wanted <= shown:
            _say(f"the wallboard shows all {len(wanted)} simulated queues with today's figures "
                 f"({time.monotonic() - began:.0f}s after start)")  # fmt: skip
            return
        time.sleep(1)
    _say(f"after {BOARD_FULL_SECONDS}s some queues still show no service level today; the worker's progress "
         "lines say how far it is")  # fmt: skip
