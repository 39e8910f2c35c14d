"""The garbage-collector tuning of the worker and its writer process (pipeline/collector.py):
fewer collections, start-up frozen. In a process of its own: it changes the interpreter's collector for good."""

from __future__ import annotations

import subprocess
import sys


def test_the_worker_collects_rarely_and_never_walks_what_start_up_built_again() -> None:
    script = (
        "import gc; from pipeline.collector import GC_THRESHOLDS, tune_garbage_collection; "
        "before = gc.get_freeze_count(); tune_garbage_collection(); "
        "print(gc.get_threshold() == GC_THRESHOLDS, before == 0 < gc.get_freeze_count())"
    )
    shown = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout
    assert shown.split() == ["True", "True"]
