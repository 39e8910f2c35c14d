"""``ccpulse up``: the whole thing on one machine, stopped as a whole by Ctrl-C.

It starts (1) the local Kafka broker through the project's launcher, unless
``CCPULSE_KAFKA_BOOTSTRAP`` names a broker that already answers, (2) a worker process and
(3) a simulated-traffic process; it stops, on Ctrl-C or SIGTERM, exactly what it started.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from dataclasses import replace

from pipeline.settings import Settings


def _say(message: str) -> None:
    print(f"ccpulse up: {message}", flush=True)


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as response:
            return bool(response.status == 200)
    except OSError:
        return False


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


EXIT_STALLED = 3  # pipeline.topology.EXIT_STALLED (not imported: that pulls in Faust)


def run_local_stack(settings: Settings, speed: float = 1.0, with_traffic: bool = True) -> int:
    from pipeline.local_broker import launcher

    kafka = launcher()
    broker_started_here = False
    worker = traffic = None
    stopping = False

    def on_term(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    # Explicitly: a parent that ignores SIGINT (a background job, some CI runners) would
    # otherwise leave Python without its KeyboardInterrupt handler.
    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)
    try:
        host, _, port = settings.kafka_bootstrap.split(",")[0].rpartition(":")
        if kafka.broker_answers(host, int(port)):
            _say(f"using the Kafka broker that answers at {settings.kafka_bootstrap}")
        else:
            _say(f"starting Apache Kafka {kafka.kafka_version()} (the first run fetches its jars from Maven Central)")
            began = time.monotonic()
            broker = kafka.start(settings.data_dir, int(port) if host in ("127.0.0.1", "localhost") else None)
            broker_started_here = broker.started_here
            settings = replace(settings, kafka_bootstrap=broker.bootstrap)
            _say(
                f"Kafka answers at {broker.bootstrap} after {time.monotonic() - began:.1f}s "
                f"(logs: {settings.data_dir / 'kafka' / 'logs'})"
            )

        env = {
            **os.environ,
            "CCPULSE_KAFKA_BOOTSTRAP": settings.kafka_bootstrap,
            "CCPULSE_DATA_DIR": str(settings.data_dir),
        }
        worker = subprocess.Popen([sys.executable, "-m", "pipeline", "worker"], env=env)
        deadline = time.monotonic() + 120
        while not _answers(f"{settings.web_url}/metrics"):
            if worker.poll() is not None:
                _say(f"the worker exited with code {worker.returncode}; see its log above")
                return 1
            if time.monotonic() > deadline:
                _say("the worker did not answer within 120s")
                return 1
            time.sleep(0.5)
        if with_traffic:
            traffic = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "pipeline",
                    "simulate",
                    "--to-kafka",
                    "--minutes",
                    str(12 * 60),
                    "--speed",
                    str(speed),
                ],
                env=env,
            )
        _say("running. Look at:")
        print(f"    wallboard {settings.web_url}/wallboard   (?lang=ja or ko, ?queue=…, ?channel=…)", flush=True)
        print(f"    metrics   {settings.web_url}/metrics", flush=True)
        print(f"    status    {settings.web_url}/status   (or: ccpulse status)", flush=True)
        print(f"    board     {settings.web_url}/api/snapshot   (JSON for wallboards)", flush=True)
        if settings.sink_enabled:
            print('    SQL       ccpulse query "SELECT queue, sum(offered) FROM ccpulse.metrics_minute FINAL '
                  'GROUP BY queue"', flush=True)  # fmt: skip
        _say("Ctrl-C stops everything started here.")
        while True:
            if worker.poll() is not None:
                if worker.returncode == EXIT_STALLED:  # the worker's own stall watchdog: restart it
                    _say("the worker stopped itself after a stall (exit 3); starting it again")
                    worker = subprocess.Popen([sys.executable, "-m", "pipeline", "worker"], env=env)
                    continue
                _say(f"the worker exited with code {worker.returncode}")
                return 1 if worker.returncode else 0
            time.sleep(0.5)
    except KeyboardInterrupt:
        stopping = True
        return 0
    finally:
        if stopping:
            _say("stopping")
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not cut the cleanup short
        _stop(traffic, "traffic")
        _stop(worker, "worker")
        if broker_started_here:
            kafka.stop(settings.data_dir)
            _say("Kafka stopped")
