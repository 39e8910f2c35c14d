"""A restarted broker loses nothing: every gauge of a real worker equals the brute-force model after
the broker under it was stopped while the worker caught up a backlog, and then started again on the
same data (and every ClickHouse table equals the definitions); and the worker says what is going on
in a few lines, on its console and on /metrics. The stop is an orderly one: every group hands its
partitions over first and the producer's leaders go unknown (aiokafka's busy loop at its worst). A
killed broker is one of ``test_faults_in_a_row``'s faults (this test ran with a kill too, 2026-12-07).
The broker here is the test's own, so that stopping it touches no other test."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from pipeline.core.targets import Targets
from tests.gauges import agents_differences, expected_samples, model_of, simulated
from tests.integration.test_clickhouse import gauge_problems, wait_for_tables
from tests.integration.test_metrics_end_to_end import HOURS, MESSY, wait_until_exact
from tests.worker_process import Deployment

pytestmark = pytest.mark.integration


def counted(samples: dict) -> float:  # type: ignore[type-arg]
    """Valid events counted so far (``ccpulse_events_total`` of every type)."""
    return sum(value for (name, _), value in samples.items() if name == "ccpulse_events_total")


def test_gauges_stay_exact_when_the_broker_restarts_under_a_busy_worker(kafka_launcher, own_broker: tuple[Path, str],
                                                                         tmp_path: Path) -> None:  # type: ignore[no-untyped-def]  # fmt: skip
    lines = simulated(HOURS * 3, seed=34, faults=MESSY)
    expected, _ = model_of(lines, Targets())
    data_dir, bootstrap = own_broker
    # small batches: the worker counts its backlog bit by bit, so the broker goes mid-way through it
    deployment = Deployment(bootstrap, tmp_path / "run", extra_env={"CCPULSE_CLOCK": "event",
                                                                    "CCPULSE_BATCH_SIZE": "400",
                                                                    "CCPULSE_STALL_SECONDS": "5"})  # fmt: skip
    deployment.root.mkdir()
    backlog = len(lines) * 3 // 4
    produced = deployment.ccpulse("produce", "-", input_bytes=b"\n".join(lines[:backlog]) + b"\n")
    assert produced.returncode == 0, produced.stderr.decode()
    worker = deployment.worker().start()
    try:
        before = counted(worker.wait_for(lambda s: counted(s) >= 1000, timeout=60, interval=0.05))
        kafka_launcher.stop(data_dir)
        # mid-way: sends, commits and the sink's rows in flight (~2,000 of ~18,000 counted, measured)
        assert before < backlog * 3 // 4, f"the worker had counted {before:.0f} of {backlog} events already"
        time.sleep(12)  # longer than the worker's session timeout (6 s in tests)
        silent = worker.scrape("ccpulse_kafka_silent_seconds")[("ccpulse_kafka_silent_seconds", ())]
        assert silent > 5, f"Kafka silent for {silent} s on /metrics, 12 s into the outage"
        said = f"Kafka ({bootstrap}) has not answered for"  # the progress line, every 5 s, from 10 s on
        deadline = time.monotonic() + 30
        while said not in worker.log_path.read_text(errors="replace") and time.monotonic() < deadline:
            time.sleep(0.5)
        kafka_launcher.start(data_dir)
        produced = deployment.ccpulse("produce", "-", input_bytes=b"\n".join(lines[backlog:]) + b"\n")
        assert produced.returncode == 0, produced.stderr.decode()
        wait_until_exact([worker], expected_samples(expected, Targets()), timeout=240)
        # answered again: at most a question asked a moment ago is pending
        assert worker.scrape("ccpulse_kafka_silent_seconds")[("ccpulse_kafka_silent_seconds", ())] < 5
        assert agents_differences(worker.get_json("/api/agents"), lines, Targets()) == []
        wait_for_tables(worker, lines, Targets(), timeout=180)  # every row, as the definitions have it
        assert gauge_problems(worker, lines, Targets()) == []  # metrics_minute equals the gauges
        # aiokafka retried without pause meanwhile, two errors a try (thousands a second): the
        # console showed each kind of line once per 10 s, with its count (pipeline/console.py)
        log = worker.log_path.read_text(errors="replace").splitlines()
        tries = [line for line in log if "Unable connect to node with id" in line]
        assert 1 <= len(tries) <= 6, "\n".join(tries[:10])
        assert len([line for line in log if " aiokafka" in line and ("ERROR" in line or "WARNING" in line)]) < 100
        # and the progress line said what was going on
        assert any(said in line for line in log), "\n".join(log[-40:])
    finally:
        worker.stop()
