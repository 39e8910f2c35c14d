"""What an operator reads on the console of ``ccpulse worker`` and ``ccpulse up``.

By default: ccpulse's own lines (what started, where to look, a progress line every few seconds),
and every warning and error of every library. Faust's and mode's start-up chatter (service by
service, the changelog highwater tables) only with ``--verbose`` or ``CCPULSE_LOG_LEVEL=debug``.
"""

from __future__ import annotations

import logging
import logging.config
import os
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from pipeline.core.stall import QUIET_SECONDS

FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"
QUIET_FORMAT = "%(asctime)s %(message)s"
DATE_FORMAT = "%H:%M:%S"
PROGRESS_SECONDS = 5.0
REPEAT_SECONDS = 10.0  # a library's line said again within this long is counted, not shown
REPEAT_KINDS = 1000  # kinds of line remembered at most (a library may put varying text in its message)
DIGITS = re.compile(r"\d+")


class OperatorFormatter(logging.Formatter):
    """``06:55:26 message`` for ccpulse's own lines; warnings and errors say so and whose they are:
    ``06:55:26 WARNING aiokafka: message``."""

    def __init__(self) -> None:
        super().__init__(QUIET_FORMAT, DATE_FORMAT)
        self.marked = logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s", DATE_FORMAT)

    def format(self, record: logging.LogRecord) -> str:
        if record.levelno >= logging.WARNING:
            return self.marked.format(record)
        return super().format(record)


def exit_now(code: int) -> None:
    """End the process at once, its log lines written first: for a worker whose own stop cannot be
    trusted to finish (a stall, a stop that waits for an unreachable Kafka). Nothing is lost, as after
    a SIGKILL: offsets are committed only after what they cover is durable."""
    logging.shutdown()
    os._exit(code)


def library_level(level: str, verbose: bool) -> str:
    """The level for Faust, mode, aiokafka and the rest: theirs in full only when asked for."""
    return level if verbose or level == "debug" else "warning"


class LibraryChatter(logging.Filter):
    """Without ``--verbose``: a library's lines below warning are dropped, except the replay of a
    mode flight recorder (``[Flight Recorder-N] ...``, logged at INFO after its ``Task timed out!``
    warning): it says where a hung task was, which the operator's report needs."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno >= logging.WARNING or record.name.startswith("ccpulse"):
            return True
        return "[Flight Recorder-" in record.getMessage()


class LibraryRepeats(logging.Filter):
    """A library's line said again and again is shown once per ``seconds``, with how many times it
    was said meanwhile. While the broker is down, aiokafka retries without pause (its known busy
    loop, aio-libs/aiokafka#496 and #1014) and logs two errors per try: 12,000 lines a second from a
    busy worker, measured (docs/operations.md, "When the broker restarts"). Lines are alike when
    their logger, level and text before its arguments are (``Unable connect to node with id %s:
    %s``), numbers aside (some libraries format their text first). Warnings and errors only:
    ccpulse's own lines and a library's information always pass. At most ``REPEAT_KINDS`` kinds are
    remembered: past that, those shown longer than ``seconds`` ago are forgotten (a count not yet
    said goes with them)."""

    def __init__(self, seconds: float = REPEAT_SECONDS, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self.seconds = seconds
        self.clock = clock
        self._shown: dict[tuple[str, int, str], tuple[float, int]] = {}  # kind -> (shown at, said since)
        self._lock = threading.Lock()  # records come from the sink's and the writer's threads too

    def __len__(self) -> int:
        """Kinds of line remembered now."""
        return len(self._shown)

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING or record.name.startswith("ccpulse"):
            return True
        kind, now = (record.name, record.levelno, DIGITS.sub("#", str(record.msg))), self.clock()
        with self._lock:
            if len(self._shown) >= REPEAT_KINDS:
                self._shown = {k: v for k, v in self._shown.items() if now - v[0] < self.seconds}
            shown_at, since = self._shown.get(kind, (now - self.seconds, 0))
            if now - shown_at < self.seconds:
                self._shown[kind] = (shown_at, since + 1)
                return False
            self._shown[kind] = (now, 0)
        if since:
            times = "once more" if since == 1 else f"{since:,} more times"
            record.msg = f"{record.getMessage()} [said {times} in the last {now - shown_at:.0f} s, not shown]"
            record.args = None
        return True


def logging_config(level: str, verbose: bool) -> dict[str, object]:
    """A ``logging.config.dictConfig`` document: ccpulse's loggers at ``level``, the libraries at
    :func:`library_level` (the Kafka clients never below warning: they log every connection). Faust's
    worker is handed the same document, so its own logging set-up keeps these levels."""
    chatty = verbose or level == "debug"
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"plain": {"format": FORMAT} if chatty else {"()": OperatorFormatter}},
        "filters": {"repeats": {"()": LibraryRepeats}, **({} if chatty else {"chatter": {"()": LibraryChatter}})},
        "handlers": {
            "console": {
                "class": "logging.StreamHandler",
                "formatter": "plain",
                "stream": "ext://sys.stdout",
                "filters": ["repeats"] if chatty else ["chatter", "repeats"],
            }  # fmt: skip
        },
        # libraries at INFO even when quiet: the filter keeps their flight recorders' replays
        "root": {"level": level.upper(), "handlers": ["console"]},
        "loggers": {
            "ccpulse": {"level": level.upper()},
            "kafka": {"level": "WARNING" if level != "error" else "ERROR"},
            "aiokafka": {"level": "WARNING" if level != "error" else "ERROR"},
        },
    }


def configure(level: str, verbose: bool) -> dict[str, object]:
    """Set up logging for a ccpulse process; returns the document (for Faust's worker)."""
    config = logging_config(level, verbose)
    logging.config.dictConfig(config)
    return config


@dataclass(frozen=True)
class Reading:
    """One look at the worker's progress, for the console's progress line."""

    at: float  # monotonic seconds
    events: int  # valid events counted so far (the owned input partitions)
    dead_letters: int
    lag: int | None  # messages waiting in the input topic; None while unknown
    stage_lag: int  # messages waiting in the internal stages' topics
    sink_backlog: int | None  # rows waiting for ClickHouse; None without a sink
    sink_failing: bool = False
    kafka_silent: float | None = None  # seconds Kafka has not answered (None: it answers)
    kafka: str = ""  # its address, for the line that says it does not answer


def progress_line(previous: Reading | None, current: Reading) -> str:
    """``events 1,234/s (56,789 in all) · lag 0 · ClickHouse backlog 0 rows · dead letters 3``: the
    rate is over the time since ``previous``; the lag is what the input topic holds unread."""
    rate = 0.0
    if previous is not None and current.at > previous.at:
        rate = max(0, current.events - previous.events) / (current.at - previous.at)
    parts = [
        f"events {rate:,.0f}/s ({current.events:,} in all)",
        "lag "
        + ("unknown" if current.lag is None else f"{current.lag:,}")
        + (f" (+{current.stage_lag:,} between stages)" if current.stage_lag else ""),
    ]
    if current.sink_backlog is not None:
        failing = " (ClickHouse is failing: see the warnings)" if current.sink_failing else ""
        parts.append(f"ClickHouse backlog {current.sink_backlog:,} rows{failing}")
    parts.append(f"dead letters {current.dead_letters:,}")
    if current.kafka_silent is not None and current.kafka_silent >= QUIET_SECONDS:  # an outage: the line says so
        measured = " (the lag is the last one measured)" if current.lag is not None else ""
        where = f" ({current.kafka})" if current.kafka else ""
        parts.append(f"Kafka{where} has not answered for {current.kafka_silent:,.0f} s: retrying, "
                     f"nothing is lost{measured}")  # fmt: skip
    return " · ".join(parts)
