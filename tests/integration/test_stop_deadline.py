"""A worker asked to stop while its broker is gone stops within ``CCPULSE_STOP_SECONDS``.

Without the deadline such a stop waits for Kafka: measured 62 s for an idle worker (Faust waits
60 s for a consumer thread that died of aiokafka's ``CancelledError``) and for ever for a worker
busy on a backlog (aiokafka retries a batch for ever while its partition's leader is known but
unreachable). The broker here is the test's own, so that stopping it touches no other test."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import pytest

from tests.worker_process import Deployment

pytestmark = pytest.mark.integration

STOP_SECONDS = 5


def test_a_worker_whose_broker_is_gone_stops_within_its_deadline_and_says_why(kafka_launcher, own_broker,  # type: ignore[no-untyped-def]
                                                                            tmp_path: Path) -> None:  # fmt: skip
    data_dir, bootstrap = own_broker
    deployment = Deployment(bootstrap, tmp_path / "run", partitions=2,
                            extra_env={"CCPULSE_STOP_SECONDS": str(STOP_SECONDS)})  # fmt: skip
    deployment.root.mkdir()
    worker = deployment.worker("w").start()
    worker.wait_for(lambda samples: any(name == "ccpulse_consumer_lag" for name, _ in samples), timeout=60)
    kafka_launcher.stop(data_dir)
    assert worker.process is not None
    worker.process.send_signal(signal.SIGTERM)
    began = time.monotonic()
    try:
        code = worker.process.wait(timeout=STOP_SECONDS + 30)
    finally:
        worker.process.kill()
    took = time.monotonic() - began
    assert code == 0
    assert STOP_SECONDS - 1 < took < STOP_SECONDS + 30, f"stopped after {took:.1f} s"
    assert "the stop took longer than 5 s (CCPULSE_STOP_SECONDS" in worker.log_path.read_text(errors="replace")
