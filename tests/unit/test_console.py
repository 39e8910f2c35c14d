"""What the operator reads on the console (pipeline/console.py)."""

from __future__ import annotations

import logging

from pipeline.console import (
    LibraryChatter,
    LibraryRepeats,
    OperatorFormatter,
    Reading,
    library_level,
    logging_config,
    progress_line,
)


def test_the_progress_line_gives_rate_lag_backlog_and_dead_letters() -> None:
    before = Reading(at=10.0, events=1_000, dead_letters=2, lag=None, stage_lag=0, sink_backlog=None)
    after = Reading(at=15.0, events=31_000, dead_letters=3, lag=12_345, stage_lag=0, sink_backlog=700)
    assert progress_line(before, after) == (
        "events 6,000/s (31,000 in all) · lag 12,345 · ClickHouse backlog 700 rows · dead letters 3"
    )
    assert progress_line(None, before) == "events 0/s (1,000 in all) · lag unknown · dead letters 2"


def test_a_failing_sink_and_lag_between_stages_are_said() -> None:
    first = Reading(at=0.0, events=10, dead_letters=0, lag=0, stage_lag=0, sink_backlog=0)
    line = progress_line(first, Reading(at=5.0, events=5, dead_letters=0, lag=0, stage_lag=40, sink_backlog=9,
                                        sink_failing=True))  # fmt: skip
    # fewer events than before (a rebalance took partitions away) is no negative rate
    assert line == ("events 0/s (5 in all) · lag 0 (+40 between stages) · "
                    "ClickHouse backlog 9 rows (ClickHouse is failing: see the warnings) · dead letters 0")  # fmt: skip


def test_kafka_silent_for_ten_seconds_is_said_on_the_progress_line() -> None:
    first = Reading(at=0.0, events=10, dead_letters=0, lag=7, stage_lag=0, sink_backlog=None)
    quiet = Reading(at=5.0, events=10, dead_letters=0, lag=7, stage_lag=0, sink_backlog=None, kafka_silent=9.9)
    assert progress_line(first, quiet) == "events 0/s (10 in all) · lag 7 · dead letters 0"
    silent = Reading(at=10.0, events=10, dead_letters=0, lag=7, stage_lag=0, sink_backlog=None, kafka_silent=25.4,
                     kafka="broker-1:9092")  # fmt: skip
    assert progress_line(quiet, silent) == (
        "events 0/s (10 in all) · lag 7 · dead letters 0 · Kafka (broker-1:9092) has not answered for 25 s: "
        "retrying, nothing is lost (the lag is the last one measured)"
    )
    unknown = Reading(at=15.0, events=10, dead_letters=0, lag=None, stage_lag=0, sink_backlog=None, kafka_silent=30)
    assert progress_line(silent, unknown).endswith("lag unknown · dead letters 0 · Kafka has not answered "
                                                   "for 30 s: retrying, nothing is lost")  # fmt: skip


def test_faust_speaks_at_info_only_when_asked() -> None:
    assert library_level("info", verbose=False) == "warning"
    assert library_level("info", verbose=True) == "info"
    assert library_level("debug", verbose=False) == "debug"
    quiet = logging_config("info", verbose=False)
    assert quiet["root"] == {"level": "INFO", "handlers": ["console"]}  # type: ignore[comparison-overlap]
    assert quiet["handlers"]["console"]["filters"] == ["chatter", "repeats"]  # type: ignore[index]
    assert logging_config("info", verbose=True)["handlers"]["console"]["filters"] == ["repeats"]  # type: ignore[index]
    assert quiet["loggers"]["ccpulse"] == {"level": "INFO"}  # type: ignore[index]
    assert quiet["formatters"] == {"plain": {"()": OperatorFormatter}}


def test_quiet_drops_library_info_but_keeps_flight_recorder_replays_and_warnings() -> None:
    chatter = LibraryChatter()

    def kept(name: str, level: int, text: str) -> bool:
        return chatter.filter(logging.LogRecord(name, level, __file__, 1, text, None, None))

    assert not kept("faust.tables.recovery", logging.INFO, "Highwater for active changelog partitions")
    assert not kept("faust.app.base", logging.INFO, "[^-App]: Starting...")
    assert kept(
        "faust.app.base", logging.INFO, "[^-App]: [Flight Recorder-1] (Wed Dec  2) +TableManager.on_rebalance()"
    )
    assert kept("faust.app.base", logging.WARNING, "[^-App]: Warning: Task timed out!")
    assert kept("ccpulse.progress", logging.INFO, "events 0/s")


def test_warnings_say_their_level_and_source_and_plain_lines_do_not() -> None:
    formatter = OperatorFormatter()

    def line(level: int, name: str, text: str) -> str:
        record = logging.LogRecord(name, level, __file__, 1, text, None, None)
        return formatter.format(record).split(" ", 1)[1]  # without the time

    assert line(logging.INFO, "ccpulse.progress", "events 0/s") == "events 0/s"
    assert line(logging.WARNING, "aiokafka", "lost the connection") == "WARNING aiokafka: lost the connection"


def test_a_library_line_said_again_and_again_is_shown_once_per_ten_seconds_with_its_count() -> None:
    now = [100.0]
    repeats = LibraryRepeats(seconds=10, clock=lambda: now[0])

    def shown(name: str, level: int, text: str, *args: object) -> str | None:
        record = logging.LogRecord(name, level, __file__, 1, text, args, None)
        return record.getMessage() if repeats.filter(record) else None

    connect = "Unable connect to node with id %s: %s"
    assert shown("aiokafka", logging.ERROR, connect, 1, "refused") == "Unable connect to node with id 1: refused"
    for _ in range(11_999):  # aiokafka's busy loop while the broker is down
        now[0] += 0.0008
        assert shown("aiokafka", logging.ERROR, connect, 1, "refused") is None
    # another line, another logger, another level, ccpulse's own lines and information: not held back
    assert shown("aiokafka", logging.ERROR, "Unable to update metadata from %s", [1]) is not None
    assert shown("aiokafka.consumer.fetcher", logging.ERROR, connect, 1, "refused") is not None
    assert shown("aiokafka", logging.WARNING, connect, 1, "refused") is not None
    assert shown("ccpulse.worker", logging.WARNING, "Kafka: no answer") == "Kafka: no answer"
    assert shown("ccpulse.worker", logging.WARNING, "Kafka: no answer") == "Kafka: no answer"
    assert shown("faust.app", logging.INFO, "[^-App]: Starting...") is not None
    assert shown("faust.app", logging.INFO, "[^-App]: Starting...") is not None
    now[0] = 110.5  # ten seconds after it was shown: shown again, with the count
    assert shown("aiokafka", logging.ERROR, connect, 1, "timed out") == (
        "Unable connect to node with id 1: timed out [said 11,999 more times in the last 10 s, not shown]"
    )
    now[0] += 1
    assert shown("aiokafka", logging.ERROR, connect, 1, "refused") is None
    now[0] += 10
    assert shown("aiokafka", logging.ERROR, connect, 1, "refused") == (
        "Unable connect to node with id 1: refused [said once more in the last 11 s, not shown]"
    )
    now[0] += 20  # quiet since: shown as it is
    assert shown("aiokafka", logging.ERROR, connect, 1, "refused") == "Unable connect to node with id 1: refused"


def test_lines_that_differ_only_in_numbers_are_alike_and_old_kinds_are_forgotten() -> None:
    now = [0.0]
    repeats = LibraryRepeats(seconds=10, clock=lambda: now[0])

    def shown(text: str) -> bool:
        return repeats.filter(logging.LogRecord("aiokafka", logging.WARNING, __file__, 1, text, None, None))

    assert shown("Got error produce response on partition 3, retrying (took 1.25 s)")
    assert not shown("Got error produce response on partition 7, retrying (took 0.5 s)")
    assert shown("Got error for another reason")
    for number in range(3000):  # formatted text of ever new kinds: remembered a while, not for ever
        now[0] += 0.01
        shown(f"Got record {chr(65 + number % 26)}{chr(65 + number // 26 % 26)}{chr(65 + number // 676)}")
    assert len(repeats) <= 1000
