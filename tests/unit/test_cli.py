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
