from __future__ import annotations

import subprocess
import sys

from pipeline.cli import parser
from pipeline.kafka_io import json_lines, message_key


def test_help_teaches_every_command() -> None:
    text = parser().format_help()
    for command in ("worker", "produce", "simulate", "status", "broker", "up", "query"):
        assert command in text
    assert "CCPULSE_KAFKA_BOOTSTRAP" in text and "examples:" in text


def test_query_help_names_the_tables_and_the_read_only_path(capsys) -> None:  # type: ignore[no-untyped-def]
    import pytest

    with pytest.raises(SystemExit):
        parser().parse_args(["query", "--help"])
    shown = capsys.readouterr().out
    assert "FINAL" in shown and "metrics_minute" in shown and "read-only" in shown and "docs/analysts.md" in shown


def test_produce_keys_by_contact_then_agent_and_tolerates_garbage() -> None:
    assert message_key(b'{"contact_id":"c1","agent_id":"a1"}') == b"c1"
    assert message_key(b'{"type":"agent.state_changed","agent_id":"a7"}') == b"a7"
    assert message_key(b"{broken") is None
    assert message_key(b"[1,2]") is None


def test_json_lines_keep_bytes_and_skip_blank_lines() -> None:
    raw = [b'{"a": 1}\n', b"\n", b'{"b":\t"\xc3\xa9"}\r\n', b"  \n", b"last-without-newline"]
    assert list(json_lines(raw)) == [b'{"a": 1}', b'{"b":\t"\xc3\xa9"}', b"last-without-newline"]


def test_a_configuration_error_is_one_clear_line_and_exit_2() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "pipeline", "status"],
        capture_output=True,
        text=True,
        env={"CCPULSE_HTTP_PORT": "not-a-port", "PATH": "/usr/bin:/bin"},
    )
    assert result.returncode == 2
    assert "CCPULSE_HTTP_PORT" in result.stderr and "Traceback" not in result.stderr


def test_simulate_command_is_deterministic_and_writes_json_lines() -> None:
    args = [sys.executable, "-m", "pipeline", "simulate", "--seed", "4", "--minutes", "30",
            "--start", "2026-11-23T09:00:00Z", "--invalid-rate", "0.02"]  # fmt: skip
    first = subprocess.run(args, capture_output=True, check=True).stdout
    assert first == subprocess.run(args, capture_output=True, check=True).stdout
    assert first.count(b"\n") > 500


def test_backfill_sends_the_past_at_once_and_paces_from_now() -> None:
    """``simulate --backfill`` (ccpulse up): what happened before ``live_from`` goes without delay,
    and the pace counts from ``live_from``; ``on_live`` hears once how many went before."""
    import time
    from datetime import UTC, datetime, timedelta

    from pipeline.cli import _paced
    from pipeline.timefmt import rfc3339

    start = datetime(2026, 12, 2, 0, 0, tzinfo=UTC)
    now = start + timedelta(hours=14)
    times = [start + timedelta(hours=h) for h in (1, 5, 13.9)] + [now + timedelta(seconds=s) for s in (0.3, 0.6)]
    messages = [({"occurred_at": rfc3339(t)}, b"x") for t in times]
    told: list[int] = []
    began = time.monotonic()
    arrivals = []
    for _ in _paced(iter(messages), start, 1.0, live_from=now, on_live=told.append):
        arrivals.append(time.monotonic() - began)
    assert told == [3]
    assert arrivals[2] < 0.25  # 14 simulated hours of the past: at once (not paced: that would be 14 h)
    # then in real time from now: never before its time (a busy machine may wake the sleep late)
    assert 0.3 <= arrivals[3] < 5 and 0.6 <= arrivals[4] < 5


def test_up_starts_the_simulated_center_at_its_midnight_in_its_zone() -> None:
    from datetime import UTC, datetime

    from pipeline.simulation.demo import demo_center
    from pipeline.up import _traffic_command

    center = demo_center(datetime(2026, 12, 2, 6, 6, tzinfo=UTC))
    command = _traffic_command(center, speed=1.0)
    assert command[3:] == ["simulate", "--to-kafka", "--backfill", "--start", "2026-12-01T16:00:00Z", "--days", "7",
                           "--utc-offset", "8.0", "--speed", "1.0"]  # fmt: skip


def test_a_reader_that_stops_early_ends_simulate_quietly() -> None:
    """``ccpulse simulate | head``: no traceback when head has read its lines and gone."""
    simulate = subprocess.Popen([sys.executable, "-m", "pipeline", "simulate", "--hours", "24"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip
    assert simulate.stdout is not None and simulate.stderr is not None
    first = simulate.stdout.readline()
    simulate.stdout.close()  # the reader leaves
    code = simulate.wait(timeout=60)
    error = simulate.stderr.read().decode()
    assert first.startswith(b"{") and code == -13 and "Traceback" not in error, (code, error)
