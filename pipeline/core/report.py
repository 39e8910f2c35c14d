"""Interval reports (``ccpulse report``, issue 24): one row per interval, queue and channel, from
``metrics_minute`` — its counts and sums under their column names, and every metric by the same
formulas (and the queue's service-level definition) as the gauges.

Pure: builds the SQL and turns its rows into report rows; the command runs the SQL (through the
worker that holds the embedded engine, or ClickHouse itself) and prints them. Intervals are UTC
(``interval_start`` in RFC 3339): a 15-minute report of Asia/Kolkata (+05:30) lines up with its
local quarters, a 1-hour one starts at half past its local hours.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from pipeline.core.counts import FIELDS, Counts
from pipeline.core.facts import SECONDS_SUMS, sql_string
from pipeline.core.metrics import RATIO_GAUGES, ratios
from pipeline.core.targets import Targets

INTERVALS = {"15m": 15, "30m": 30, "1h": 60}
COLUMNS = tuple(SECONDS_SUMS.get(name, name) for name in FIELDS)  # metrics_minute's names
METRICS = tuple(name.removeprefix("ccpulse_") for name in RATIO_GAUGES)


def report_sql(interval: str, start: datetime, end: datetime, queue: str | None, database: str = "ccpulse") -> str:
    """The sums of ``metrics_minute`` per interval, queue and channel over [start, end)."""
    minutes = INTERVALS[interval]
    sums = ", ".join(f"toString(sum({column})) AS {column}" for column in COLUMNS)
    where = (
        f"minute >= toDateTime({int(start.timestamp())}, 'UTC') AND minute < toDateTime({int(end.timestamp())}, 'UTC')"
    )
    if queue is not None:
        where += f" AND queue = {sql_string(queue)}"
    return (
        f"SELECT toUnixTimestamp(toStartOfInterval(minute, INTERVAL {minutes} MINUTE)) AS interval_start, "
        f"queue, channel, {sums} FROM {database}.metrics_minute FINAL WHERE {where} "
        "GROUP BY interval_start, queue, channel ORDER BY interval_start, queue, channel"
    )


def report_rows(found: list[dict[str, Any]], targets: Targets) -> Iterator[dict[str, Any]]:
    """Report rows from the query's rows: counts as integers, sums as exact seconds, then the metrics
    (null where the denominator is 0, as the gauges are absent)."""
    for row in found:
        values = [_micros(row[column]) if name in SECONDS_SUMS else int(row[column])
                  for name, column in zip(FIELDS, COLUMNS, strict=True)]  # fmt: skip
        counts = Counts(*values)
        start = datetime.fromtimestamp(int(row["interval_start"]), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        shown: dict[str, Any] = {"interval_start": start, "queue": row["queue"], "channel": row["channel"]}
        for name, column in zip(FIELDS, COLUMNS, strict=True):
            value = getattr(counts, name)
            shown[column] = value / 1_000_000 if name in SECONDS_SUMS else value
        metrics = dict(ratios(counts, targets.for_queue(row["queue"], row["channel"])))
        shown |= {name.removeprefix("ccpulse_"): metrics.get(name) for name in RATIO_GAUGES}
        yield shown


def _micros(text: Any) -> int:
    return int(Decimal(str(text)).scaleb(6))
