"""The rows the ClickHouse tables hold (``deploy/clickhouse/``), built from the pipeline's state.

Pure: no ClickHouse import. Every row carries a ``version`` that grows with its key's state (a
contact's or an issue key's revision counter), and tables are ReplacingMergeTree on the key, so
a replay, a restart or a retried insert writes the same key again and never adds to it; after
``FINAL`` each key has its latest row. Rows a key no longer has are written with ``is_deleted``.

Times are integer microseconds (DateTime64(6) takes them as they are). Seconds are exact decimals
in ClickHouse (Decimal(18, 6)), so a sum in SQL equals the sum the gauges were made from; a row
carries them as their unscaled integer, microseconds, which the writer hands to ClickHouse as
Decimal(18, 6) without building a Python ``Decimal`` (``pipeline/arrow_rows.py``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from pipeline.core.board import Board, Report, whole_from_minute
from pipeline.core.contract import Event
from pipeline.core.counts import FIELDS, Counts
from pipeline.core.engine import ContactRecord, IssueLink
from pipeline.core.issues import Issue
from pipeline.core.lifecycle import Contribution, Transferred, issue_key
from pipeline.core.targets import Targets

Row = tuple[Any, ...]
FIRST_WINS = 2**62  # events: version = FIRST_WINS - occurred_at, so the earliest copy of an event_id wins

EVENT_COLUMNS = ("event_id", "type", "occurred_at", "contact_id", "queue", "channel", "agent_id", "raw", "version")
CONTACT_COLUMNS = (
    "contact_id", "queue", "channel", "customer_id", "reason", "case_id", "agent_id",
    "offered_at", "answered_at", "abandoned_at", "ended_at", "surveyed_at", "last_event_at",
    "wait_seconds", "abandon_wait_seconds", "handle_seconds", "hold_seconds", "outcome", "answered_in_sl",
    "short_abandoned", "resolved", "transferred_at", "transferred_to_queue", "transferred_to_agent",
    "csat", "nps", "ces", "issue_key", "version",
)  # fmt: skip
# per contact and issue key: its issue in that key's grouping (the ``contacts`` view joins the
# row of the key in the contact's facts: deploy/clickhouse/0002_contact_issues.sql)
CONTACT_ISSUE_COLUMNS = ("contact_id", "issue_key", "issue_id", "is_repeat", "version")
ISSUE_COLUMNS = (
    "issue_id", "keyed_by", "customer_id", "reason", "case_id", "queue", "channel", "opened_at",
    "opening_contact_id", "contacts", "judged_at", "fcr", "resolved_at", "resolution_seconds",
    "resolving_contact_id", "last_contact_at", "version", "is_deleted",
)  # fmt: skip
# contributions keep durations in integer microseconds (internal; metrics_minute shows seconds)
CONTRIBUTION_COLUMNS = ("queue", "channel", "minute", "source", *FIELDS, "version", "is_deleted")
SECONDS_SUMS = {"wait_us_sum": "wait_seconds_sum", "handle_us_sum": "handle_seconds_sum",
                "resolution_us_sum": "resolution_seconds_sum", "hold_us_sum": "hold_seconds_sum"}  # fmt: skip
ZERO_COUNTS = (0,) * len(FIELDS)
MINUTE_COLUMNS = ("minute", "queue", "channel", *(SECONDS_SUMS.get(name, name) for name in FIELDS),
                  "version", "is_deleted")  # fmt: skip
# one row per agent state event: the state, from started_at until the agent's next one (issue 22)
AGENT_STATE_COLUMNS = ("agent_id", "started_at", "event_id", "state", "queues", "reason", "ended_at", "seconds",
                       "version", "is_deleted")  # fmt: skip
# the tables the stages write rows to, in the order they are written (contributions before the
# metrics_minute rows summed from them)
STAGE_TABLES = {"events": EVENT_COLUMNS, "contact_facts": CONTACT_COLUMNS, "issues": ISSUE_COLUMNS,
                "contact_issues": CONTACT_ISSUE_COLUMNS, "contributions": CONTRIBUTION_COLUMNS,
                "agent_states": AGENT_STATE_COLUMNS}  # fmt: skip


def event_row(event: Event, raw: bytes) -> Row:
    return (event.event_id, event.type, event.at, event.contact_id, event.queue, event.channel, event.agent_id,
            raw.decode("utf-8"), FIRST_WINS - event.at)  # fmt: skip


def contact_row(contact_id: str, record: ContactRecord, targets: Targets) -> Row:
    """One contact's facts as analysts see them: the winning event of each type, the outcome that
    counts (a contact both answered and abandoned counts the earlier: METRICS.md), and the issue
    key it is in now (its issue comes from ``contact_issues``). NULL where not known yet."""
    state = record.state
    offered, answered, abandoned = state.offered, state.answered, state.abandoned
    ended, survey = state.ended, state.survey
    outcome = None
    in_sl = short = None
    if offered is not None and (answered is not None or abandoned is not None):
        if abandoned is None or (answered is not None and answered.at <= abandoned.at):
            outcome = "answered"
            assert answered is not None
            in_sl = max(0, answered.at - offered.at) <= targets.for_queue(offered.queue, offered.channel).threshold_us
        else:
            outcome = "abandoned"
            short = max(0, abandoned.at - offered.at) < targets.short_abandon_us
    return (
        contact_id,
        offered.queue if offered else None,
        offered.channel if offered else None,
        offered.customer_id if offered else None,
        offered.reason if offered else None,
        offered.case_id if offered else None,
        answered.agent_id if answered else None,
        offered.at if offered else None,
        answered.at if answered else None,
        abandoned.at if abandoned else None,
        ended.at if ended else None,
        survey.at if survey else None,
        state.last_at,
        max(0, answered.at - offered.at) if answered and offered else None,  # seconds, as µs (module text)
        max(0, abandoned.at - offered.at) if abandoned and offered else None,
        ended.handle_us if ended else None,
        ended.hold_us if ended else None,
        outcome,
        in_sl,
        short,
        ended.resolved if ended else None,
        *_transfer(state.transferred),
        survey.csat if survey else None,
        survey.nps if survey else None,
        survey.ces if survey else None,
        issue_key(offered) if outcome == "answered" and offered else None,  # as its contribution's issue
        record.version,
    )


def _transfer(transfer: Transferred | None) -> tuple[int | None, str | None, str | None]:
    return (transfer.at, transfer.to_queue, transfer.to_agent) if transfer is not None else (None, None, None)


def contact_issue_rows(links: Iterable[IssueLink], version: int) -> list[Row]:
    """The issues stage's word on where its key's contacts are: one row per contact and key."""
    return [(link.contact_id, link.key, link.issue_id, link.is_repeat, version) for link in links]


def issue_rows(key: str, issues: Iterable[tuple[str, Issue]], gone: Iterable[str], version: int) -> list[Row]:
    kind, customer_id, value = key.split("\x1f", 2)
    reason, case_id = (value, None) if kind == "reason" else (None, value)
    rows: list[Row] = []
    for identifier, issue in issues:
        opening, resolving = issue.opening, issue.resolving
        rows.append((
            identifier, kind, customer_id, reason, case_id, opening.queue, opening.channel, issue.opened_at,
            opening.contact_id, len(issue.contacts), opening.ended_at,
            issue.first_contact_resolution if issue.judged else None,
            resolving.ended_at if resolving else None, issue.resolution_us,
            resolving.contact_id if resolving else None,
            max(c.ended_at or c.offered_at for c in issue.contacts), version, 0,
        ))  # fmt: skip
    for identifier in gone:
        rows.append((identifier, kind, customer_id, reason, case_id, "", "", 0, "", 0, None, None, None, None,
                     None, 0, version, 1))  # fmt: skip
    return rows


def contribution_rows(report: Report) -> tuple[list[Row], set[tuple[str, str, int]]]:
    """A source's rows in ``contributions`` for one queue (its minutes, and deletions of the minutes
    it left), and the (queue, channel, minute)s whose ``metrics_minute`` row they change."""
    rows: list[Row] = []
    touched: set[tuple[str, str, int]] = set()
    for channel, minute, values in report.minutes:
        rows.append((report.queue, channel, minute * 60, report.source, *values, report.version, 0))
        touched.add((report.queue, channel, minute))
    zeros = (0,) * len(FIELDS)
    for channel, minute in report.left:
        rows.append((report.queue, channel, minute * 60, report.source, *zeros, report.version, 1))
        touched.add((report.queue, channel, minute))
    return rows, touched


def contact_contribution_rows(contact_id: str, found: Contribution, left: list[tuple[str, str, int]],
                              version: int) -> list[Row]:  # fmt: skip
    """A contact's rows in ``contributions``: its minutes now, and deletions of the ones it left."""
    source = f"contact:{contact_id}"
    rows: list[Row] = []
    if found.queue and found.channel:
        rows += [(found.queue, found.channel, minute * 60, source, *counts.as_tuple(), version, 0)
                 for minute, counts in found.minutes.items()]  # fmt: skip
    rows += [(queue, channel, minute * 60, source, *ZERO_COUNTS, version, 1) for queue, channel, minute in left]
    return rows


def issue_contribution_rows(key: str, lines: dict[tuple[str, str], dict[int, Counts]],
                            left: list[tuple[str, str, int]], version: int) -> list[Row]:  # fmt: skip
    """An issue key's rows in ``contributions``: its minutes now, and deletions of the ones it left."""
    source = f"issue:{key}"
    rows: list[Row] = [
        (queue, channel, minute * 60, source, *counts.as_tuple(), version, 0)
        for (queue, channel), minutes in lines.items()
        for minute, counts in minutes.items()
    ]
    rows += [(queue, channel, minute * 60, source, *ZERO_COUNTS, version, 1) for queue, channel, minute in left]
    return rows


Minute = tuple[str, str, int]  # (queue, channel, minute)
MinuteSums = dict[Minute, tuple[int, ...] | None]  # a minute's counts (None: nothing contributes)


def board_minutes(
    board: Board, touched: set[Minute], now_us: int, whole: Callable[[str], bool]
) -> tuple[MinuteSums, set[Minute]]:
    """The ``metrics_minute`` values of the minutes a batch of the board ``touched``, taken from the
    board (the sums its gauges show), and the minutes it cannot vouch for, to be summed from
    ``contributions`` in ClickHouse: minutes before :func:`whole_from_minute` (expired reports may
    have contributed to them: a late event more than a day old) and minutes of queues the board
    does not hold whole (``whole(queue)`` false: during a rebalance)."""
    first = whole_from_minute(now_us)
    sums: MinuteSums = {}
    resum: set[Minute] = set()
    for queue, channel, minute in touched:
        if minute >= first and whole(queue):
            counts = board.minute(queue, channel, minute)
            sums[(queue, channel, minute)] = counts.as_tuple() if counts is not None else None
        else:
            resum.add((queue, channel, minute))
    return sums, resum


def sql_string(text: str) -> str:
    """``text`` as a ClickHouse string literal."""
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def minute_row(queue: str, channel: str, minute: int, counts: Counts | tuple[int, ...] | None, version: int) -> Row:
    """A ``metrics_minute`` row from the sum of its contributions (None: nothing contributes: deleted)."""
    values = counts.as_tuple() if isinstance(counts, Counts) else counts or ZERO_COUNTS
    return (minute * 60, queue, channel, *values, version, 0 if counts is not None else 1)
