from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.core.targets import Targets, TargetsError


def test_defaults_are_those_of_metrics_md() -> None:
    targets = Targets()
    assert (targets.for_queue("any", "voice").threshold_seconds, targets.for_queue("any", "voice").target_ratio) == (
        20,
        0.8,
    )
    assert targets.for_queue("any", "email").threshold_seconds == 86400
    assert targets.for_queue("any", "email").target_ratio == 0.9
    assert (targets.short_abandon_seconds, targets.fcr_window_days) == (5, 7)


def test_queue_and_channel_wins_over_channel_wins_over_default() -> None:
    targets = Targets.from_document(
        {"channels": {"voice": {"sl_threshold_seconds": 30}}, "queues": {"vip": {"voice": {"sl_target": 0.95}}}}
    )
    assert targets.for_queue("billing", "voice").threshold_seconds == 30
    vip = targets.for_queue("vip", "voice")
    assert (vip.threshold_seconds, vip.target_ratio) == (30, 0.95)  # unset fields come from the channel
    assert targets.for_queue("vip", "chat").threshold_seconds == 30  # the chat default


@pytest.mark.parametrize(
    "document",
    [{"channels": {"fax": {}}}, {"channels": {"voice": {"sl_target": 1.5}}}, {"fcr_window_days": "7"}, []],
)
def test_a_wrong_targets_file_is_refused_with_where(document: object) -> None:
    with pytest.raises(TargetsError):
        Targets.from_document(document)


def test_the_worker_refuses_a_bad_targets_file_in_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "targets.json"
    bad.write_text(json.dumps({"channels": {"fax": {}}}))
    result = subprocess.run([sys.executable, "-m", "pipeline", "worker"], capture_output=True, text=True, timeout=60,
                            env={"CCPULSE_TARGETS": str(bad), "PATH": "/usr/bin:/bin",
                                 "CCPULSE_KAFKA_BOOTSTRAP": "127.0.0.1:1"})  # fmt: skip
    assert result.returncode == 2
    assert "CCPULSE_TARGETS" in result.stderr and "fax" in result.stderr and "Traceback" not in result.stderr
