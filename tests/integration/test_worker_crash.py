"""A worker ends only when it must, and then says why.

- SIGPIPE does not end it: a write to a socket whose peer has gone (a broker stopping) must be an
  error its Kafka client handles. Every ``ccpulse`` command restored SIGPIPE's default action until
  2026-12-07 (for ``ccpulse simulate | head``), and a worker died of it, without a line, when its
  broker stopped (exit -13; CI, ``test_faults_in_a_row.py``).
- A query past the worker's limit (``CCPULSE_QUERY_SECONDS``) is stopped by ClickHouse with a
  message that names the limit; the worker and its writer process go on.
- A worker that dies of a signal in C code (a segmentation fault in a library) leaves the Python
  stack of each of its threads in its log, not an end without a line (docs/operations.md, "A worker
  or writer that dies of a signal").

The signals are sent: no broker closes a socket at the moment of a write on demand, and no library
crashes on demand."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.worker_process import Deployment, WorkerProcess

pytestmark = pytest.mark.integration


def query(deployment: Deployment, worker: WorkerProcess, sql: str) -> subprocess.CompletedProcess[bytes]:
    """``ccpulse query`` as an analyst runs it beside the worker (which holds the embedded engine)."""
    return subprocess.run([sys.executable, "-m", "pipeline", "query", sql], capture_output=True, timeout=60,
                          env=deployment.env(CCPULSE_HTTP_PORT=str(worker.port), CCPULSE_DATA_DIR=str(worker.data_dir)),
                          cwd=deployment.root)  # fmt: skip


def test_sigpipe_does_not_end_a_worker_and_a_crash_leaves_every_threads_stack(kafka_bootstrap: str,
                                                                               tmp_path: Path) -> None:  # fmt: skip
    deployment = Deployment(kafka_bootstrap, tmp_path, partitions=1, extra_env={"CCPULSE_QUERY_SECONDS": "2"})
    worker = deployment.worker().start()
    assert worker.process is not None
    asked = time.monotonic()
    endless = query(deployment, worker, "SELECT count() FROM numbers(10000000000) WHERE sipHash64(number) = 1")
    assert endless.returncode == 1 and time.monotonic() - asked < 30, endless
    # answered by the worker's /query (its message), not by an engine the command opened itself
    assert endless.stderr.startswith(b"ccpulse query: query failed: "), endless.stderr
    assert b"TIMEOUT_EXCEEDED" in endless.stderr, endless.stderr
    assert b"The limit is CCPULSE_QUERY_SECONDS" in endless.stderr, endless.stderr
    assert query(deployment, worker, "SELECT 1 AS one").stdout == b'{"one":1}\n'  # the writer process goes on
    worker.process.send_signal(signal.SIGPIPE)
    time.sleep(1)
    assert worker.exited() is None, f"SIGPIPE ended the worker ({worker.exited()})"
    assert worker.scrape("ccpulse_consumer_lag") is not None  # and it still answers
    worker.process.send_signal(signal.SIGSEGV)
    assert worker.process.wait(timeout=30) == -signal.SIGSEGV
    log = worker.log_path.read_text(errors="replace")
    assert "Fatal Python error: Segmentation fault" in log, worker.log_tail()
    assert "(most recent call first)" in log and "Current thread" in log, worker.log_tail()
