"""The stop deadline's exit (pipeline/worker.py ``stop_deadline``), in processes of their own: it
ends the process. The whole path, with a real broker gone: tests/integration/test_stop_deadline.py."""

from __future__ import annotations

import subprocess
import sys

import pytest


def ended(seconds: float, crashed: bool) -> tuple[int, str]:
    script = (
        "import sys, time; from pipeline.worker import stop_deadline; "
        f"stop_deadline({seconds}, crashed=lambda: {crashed}); time.sleep(3); sys.exit(7)"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    return done.returncode, done.stderr


@pytest.mark.parametrize(("crashed", "code"), [(False, 0), (True, 1)])
def test_a_stop_past_its_deadline_ends_the_process_as_the_stop_would_have(crashed: bool, code: int) -> None:
    assert ended(0.2, crashed)[0] == code


def test_no_deadline_lets_the_stop_take_as_long_as_it_takes() -> None:
    assert ended(0, True)[0] == 7
