"""Faults in a row, as a bad night brings them: while traffic arrives in parts, the worker is killed
twice, its ClickHouse writer process is killed, ClickHouse fails and recovers (fault injected: the
embedded engine cannot fail on demand), and the broker is stopped and then killed, each restarted.
Afterwards every gauge, the agents' list and every ClickHouse table equal the definitions. The
order is drawn from a fixed seed; the effect of each fault depends on where the worker was, and
exactness must not. The broker is the test's own (the ``own_broker`` fixture)."""

from __future__ import annotations

import os
import random
import signal
import time
from pathlib import Path

import pytest

from pipeline.core.targets import Targets
from tests.gauges import agents_differences, expected_samples, model_of, simulated
from tests.integration.test_clickhouse import gauge_problems, wait_for_tables
from tests.integration.test_metrics_end_to_end import HOURS, MESSY, wait_until_exact
from tests.worker_process import Deployment, WorkerProcess

pytestmark = pytest.mark.integration

# ClickHouse fails until the fault after it has happened too
FAULTS = ["kill worker", "kill writer", "clickhouse fails", "broker stop", "broker kill", "kill worker"]


def writer_process(worker: WorkerProcess, timeout: float = 10) -> int:
    """The pid of the worker's ClickHouse writer process: its child started by multiprocessing's
    spawn (the other child, multiprocessing's resource tracker, is not it), whichever of the worker's
    threads started it (a writer started again after a failed write is the sink thread's child)."""
    assert worker.process is not None
    pid = worker.process.pid
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and worker.exited() is None:
        for children in Path(f"/proc/{pid}/task").glob("*/children"):
            try:
                for child in children.read_text().split():
                    if b"multiprocessing.spawn import spawn_main" in Path(f"/proc/{child}/cmdline").read_bytes():
                        return int(child)
            except OSError:  # a thread or a child that has just exited
                continue
        time.sleep(0.2)
    raise AssertionError(f"worker {worker.name} has no writer process (worker exit code {worker.exited()}):\n"
                         f"{worker.log_tail()}")  # fmt: skip


def test_every_count_and_table_is_exact_after_faults_in_a_row(kafka_launcher, own_broker: tuple[Path, str],
                                                               tmp_path: Path) -> None:  # type: ignore[no-untyped-def]  # fmt: skip
    draw = random.Random(61)
    lines = simulated(HOURS * 3, seed=61, faults=MESSY)
    targets = Targets()
    expected, _ = model_of(lines, targets)
    data_dir, bootstrap = own_broker
    failing = tmp_path / "clickhouse-down"
    deployment = Deployment(bootstrap, tmp_path / "run", extra_env={
        "CCPULSE_CLOCK": "event", "CCPULSE_BATCH_SIZE": "400",  # small batches: faults land mid-backlog
        "CCPULSE_SINK_FAULT_FILE": str(failing), "CCPULSE_SINK_MAX_ROWS": "3000"})  # fmt: skip
    deployment.root.mkdir()
    faults = draw.sample(FAULTS, len(FAULTS))
    parts = [lines[i * len(lines) // len(faults) : (i + 1) * len(lines) // len(faults)] for i in range(len(faults))]
    worker = deployment.worker().start()
    try:
        for part, fault, before in zip(parts, faults, [None, *faults[:-1]], strict=True):
            produced = deployment.ccpulse("produce", "-", input_bytes=b"\n".join(part) + b"\n")
            assert produced.returncode == 0, produced.stderr.decode()
            time.sleep(draw.uniform(0.2, 3))
            if fault == "kill worker":
                worker.kill()
                worker.start()
            elif fault == "kill writer":
                os.kill(writer_process(worker), signal.SIGKILL)  # the next write starts another
            elif fault == "clickhouse fails":
                failing.touch()
            else:
                (kafka_launcher.kill if fault == "broker kill" else kafka_launcher.stop)(data_dir)
                time.sleep(draw.uniform(2, 12))
                kafka_launcher.start(data_dir)
            if before == "clickhouse fails":
                failing.unlink()  # after the next part and the fault after it: they landed while it failed
            assert worker.exited() is None, f"worker exited with {worker.exited()} after {fault}:\n{worker.log_tail()}"
        failing.unlink(missing_ok=True)
        wait_until_exact([worker], expected_samples(expected, targets), timeout=300)
        assert agents_differences(worker.get_json("/api/agents"), lines, targets) == []
        wait_for_tables(worker, lines, targets, timeout=240)
        assert gauge_problems(worker, lines, targets) == []
    finally:
        worker.stop()
