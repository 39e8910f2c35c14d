"""A worker that dies of a signal in C code (a segmentation fault in a library) leaves the Python
stack of each of its threads in its log, not an end without a line (docs/operations.md, "A worker
or writer that dies of a signal"). The fault is injected: no library crashes on demand, the signal
it would die of can be sent."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from tests.worker_process import Deployment

pytestmark = pytest.mark.integration


def test_a_worker_that_crashes_leaves_every_threads_stack_in_its_log(kafka_bootstrap: str, tmp_path: Path) -> None:
    deployment = Deployment(kafka_bootstrap, tmp_path, partitions=1)
    worker = deployment.worker().start()
    assert worker.process is not None
    worker.process.send_signal(signal.SIGSEGV)
    assert worker.process.wait(timeout=30) == -signal.SIGSEGV
    log = worker.log_path.read_text(errors="replace")
    assert "Fatal Python error: Segmentation fault" in log, worker.log_tail()
    assert "(most recent call first)" in log and "Current thread" in log, worker.log_tail()
