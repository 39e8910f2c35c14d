"""``ccpulse report`` through a running worker (it holds the embedded engine): each interval's
counts and metrics equal the gauges of the window made of the same minutes."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from pipeline.core.metrics import COUNT_GAUGES, RATIO_GAUGES
from pipeline.simulation import Faults
from tests.gauges import simulated
from tests.worker_process import Deployment, WorkerProcess, counter, query

pytestmark = pytest.mark.integration


@pytest.fixture
def deployment(kafka_bootstrap: str, tmp_path: Path) -> Deployment:
    return Deployment(kafka_bootstrap, tmp_path, extra_env={"CCPULSE_CLOCK": "event"})


NOW = datetime(2026, 11, 23, 10, 59, 30, tzinfo=UTC)  # the event clock: 1h = 10:00-10:59, 15m = 10:45-10:59


def report(worker: WorkerProcess, *args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "pipeline", "report", *args],
        env=worker.deployment.env(CCPULSE_HTTP_PORT="0", CCPULSE_DATA_DIR=str(worker.data_dir)),
        capture_output=True, timeout=120, cwd=worker.deployment.root,
    )  # fmt: skip


def rows(worker: WorkerProcess, interval: str, start: str, end: str) -> dict[tuple[str, str], dict[str, Any]]:
    done = report(worker, "--interval", interval, "--from", start, "--to", end, "--format", "jsonl")
    assert done.returncode == 0, done.stderr.decode()
    found = [json.loads(line) for line in done.stdout.splitlines()]
    assert {row["interval_start"] for row in found} == {start}, found[:2]
    return {(row["queue"], row["channel"]): row for row in found}


def test_each_interval_equals_the_gauges_of_the_same_minutes(deployment: Deployment) -> None:
    lines = [line for line in simulated(3.5, seed=41, faults=Faults(duplicates=0.03))
             if datetime.fromisoformat(json.loads(line)["occurred_at"].replace("Z", "+00:00")) < NOW]  # fmt: skip
    lines.append(json.dumps({"event_id": "clock", "type": "contact.offered", "schema_version": 1,
                             "occurred_at": "2026-11-23T10:59:30Z", "contact_id": "clock", "channel": "voice",
                             "queue": "support", "customer_id": "c-clock"}).encode())  # fmt: skip
    with deployment.worker() as worker:
        produced = deployment.ccpulse("produce", "-", input_bytes=b"\n".join(lines) + b"\n")
        assert produced.returncode == 0, produced.stderr.decode()
        samples = worker.settled(lambda s: counter(s, "ccpulse_sink_backlog_rows") == 0
                                 and counter(s, "ccpulse_clock_seconds") == NOW.timestamp())  # fmt: skip
        every: dict[str, dict[tuple[str, str], dict[str, Any]]] = {}
        [written] = query(worker, "SELECT count() AS n FROM ccpulse.metrics_minute FINAL")
        assert int(written["n"]) > 100
        for interval, window, start in (("1h", "1h", "2026-11-23T10:00:00Z"), ("15m", "15m", "2026-11-23T10:45:00Z")):
            end = "2026-11-23T11:00:00Z"
            shown = every[interval] = rows(worker, interval, start, end)
            lines_seen = {(dict(labels)["queue"], dict(labels)["channel"]) for (name, labels) in samples
                          if name == "ccpulse_offered" and dict(labels)["window"] == window}  # fmt: skip
            busy = {
                key
                for key in lines_seen
                if samples[("ccpulse_offered", (("channel", key[1]), ("queue", key[0]), ("window", window)))]
            }
            assert busy and busy <= set(shown), busy - set(shown)
            for (queue, channel), row in shown.items():
                labels = (("channel", channel), ("queue", queue), ("window", window))
                for name, field in COUNT_GAUGES.items():
                    assert row[field] == samples.get((name, labels), 0), (interval, queue, channel, name)
                for name in RATIO_GAUGES:
                    want = samples.get((name, labels))
                    got = row[name.removeprefix("ccpulse_")]
                    assert (got is None) == (want is None), (interval, queue, channel, name, got, want)
                    assert got is None or abs(got - want) < 1e-9, (interval, queue, channel, name, got, want)
        for (queue, channel), row in every["1h"].items():  # the analysts' view gives the same sums and ratios
            [view] = query(worker, "SELECT offered, answered, toString(wait_seconds_sum) AS wait, answer_ratio, "
                           "abandon_ratio FROM ccpulse.metrics_1h WHERE interval_start = '2026-11-23 10:00:00' "
                           f"AND queue = '{queue}' AND channel = '{channel}'")  # fmt: skip
            assert (int(view["offered"]), int(view["answered"])) == (row["offered"], row["answered"])
            assert float(view["wait"]) == row["wait_seconds_sum"]
            for name in ("answer_ratio", "abandon_ratio"):
                assert (view[name] is None and row[name] is None) or abs(view[name] - row[name]) < 1e-9, name
    table = report(worker, "--interval", "1h", "--from", "2026-11-23T10:00:00Z", "--to", "2026-11-23T11:00:00Z",
                   "--format", "table")  # fmt: skip
    assert table.returncode == 0, table.stderr.decode()  # no worker now: ccpulse opens the engine itself
    header, *body = table.stdout.decode().splitlines()
    assert header.split()[:4] == ["interval_start", "queue", "channel", "offered"] and len(body) == len(every["1h"])


def test_report_explains_a_bad_time(deployment: Deployment, tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "pipeline", "report", "--interval", "15m", "--from",
                           "2026-11-23 09:00", "--to", "2026-11-23T10:00:00Z"], capture_output=True,
                          env=deployment.env(CCPULSE_DATA_DIR=str(tmp_path)), timeout=60)  # fmt: skip
    assert done.returncode == 2
    assert b"needs an offset" in done.stderr
