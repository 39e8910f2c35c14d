"""The contacts behind a tile's figures (issue 24): ``GET /api/contacts``. Pure: builds the SQL on
the ``contacts`` facts in ClickHouse and turns its rows into the list; the worker runs it.

- ``waiting``: offered, not answered, abandoned or ended, offered at most 7 days before now —
  the contacts ``ccpulse_queue_waiting`` counts; oldest first, with their wait now;
- ``answered_late``: answered today (the queue's own day) after more than the threshold — the
  answered contacts ``ccpulse_answered_in_sl`` leaves out;
- ``abandoned``: abandoned today (the queue's day; short abandons too, flagged) — the contacts of
  ``ccpulse_abandoned``.

A contact the queue's calendar counts apart (offered while closed) is in no list but waiting, as
it is in no gauge but ``ccpulse_queue_waiting`` and ``ccpulse_offered_out_of_hours``. Customer ids
are never shown as given: stored pseudonymised when ``CCPULSE_CUSTOMER_KEY`` is set (shown as
stored), else pseudonymised for the lists with a key the worker draws at start (the same customer
is the same pseudonym while it runs; docs/operations.md).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Any

from pipeline.core.board import WAITING_HORIZON_US
from pipeline.core.facts import sql_string
from pipeline.core.targets import Targets
from pipeline.core.windows import MINUTE_US, Day, minute_of

STATES = ("waiting", "answered_late", "abandoned")
LIMIT = 1000  # rows per list: a supervisor reads the oldest; the count is on the tile


def contacts_sql(state: str, queue: str, channel: str, now_us: int, day: Day, database: str = "ccpulse") -> str:
    """The list's query (``state`` one of STATES) for one queue and channel at ``now``."""
    where = [f"queue = {sql_string(queue)}", f"channel = {sql_string(channel)}", "offered_at IS NOT NULL"]
    first_today = -(-day.start_us(now_us) // MINUTE_US) * MINUTE_US
    next_minute = (minute_of(now_us) + 1) * MINUTE_US
    if state == "waiting":
        where += ["answered_at IS NULL", "abandoned_at IS NULL", "ended_at IS NULL",
                  f"toUnixTimestamp64Micro(offered_at) >= {now_us - WAITING_HORIZON_US}"]  # fmt: skip
        order = "offered_at, contact_id"
    elif state == "answered_late":
        where += ["outcome = 'answered'", "NOT answered_in_sl",
                  f"toUnixTimestamp64Micro(answered_at) >= {first_today}",
                  f"toUnixTimestamp64Micro(answered_at) < {next_minute}"]  # fmt: skip
        order = "answered_at, contact_id"
    elif state == "abandoned":
        where += ["outcome = 'abandoned'", f"toUnixTimestamp64Micro(abandoned_at) >= {first_today}",
                  f"toUnixTimestamp64Micro(abandoned_at) < {next_minute}"]  # fmt: skip
        order = "abandoned_at, contact_id"
    else:
        raise ValueError(f"state {state!r}: expected one of {', '.join(STATES)}")
    return (
        "SELECT contact_id, toUnixTimestamp64Micro(offered_at) AS offered_us, "
        "toUnixTimestamp64Micro(answered_at) AS answered_us, toUnixTimestamp64Micro(abandoned_at) AS abandoned_us, "
        "toString(wait_seconds) AS wait, toString(abandon_wait_seconds) AS abandon_wait, "
        f"short_abandoned, reason, customer_id, agent_id FROM {database}.contacts WHERE {' AND '.join(where)} "
        f"ORDER BY {order} LIMIT {LIMIT + 1}"
    )


def contacts_list(rows: list[dict[str, Any]], state: str, queue: str, now_us: int, targets: Targets,
                  customer: Callable[[str], str]) -> dict[str, Any]:  # fmt: skip
    """``{"contacts": [...], "truncated": bool}``: the rows as the API shows them (times in Unix
    seconds, ``customer`` applied to customer ids), without the contacts the queue's calendar counts
    apart (answered and abandoned lists)."""
    calendar = targets.calendar_for(queue)
    kept = [row for row in rows if state == "waiting" or calendar is None or calendar.counted
            or calendar.is_open(int(row["offered_us"]))]  # fmt: skip
    for row in kept:
        row["customer_id"] = customer(row["customer_id"]) if row["customer_id"] is not None else None
    return {"contacts": list(_shown(kept[:LIMIT], state, now_us)), "truncated": len(kept) > LIMIT}


def _shown(rows: list[dict[str, Any]], state: str, now_us: int) -> Iterator[dict[str, Any]]:
    for row in rows:
        offered = int(row["offered_us"])
        shown: dict[str, Any] = {"contact_id": row["contact_id"], "offered_at": offered / 1e6,
                                 "reason": row["reason"], "customer_id": row["customer_id"]}  # fmt: skip
        if state == "waiting":
            shown["wait_seconds"] = (now_us - offered) / 1e6
        elif state == "answered_late":
            shown |= {"answered_at": int(row["answered_us"]) / 1e6, "wait_seconds": _seconds(row["wait"]),
                      "agent_id": row["agent_id"]}  # fmt: skip
        else:
            shown |= {"abandoned_at": int(row["abandoned_us"]) / 1e6,
                      "wait_seconds": _seconds(row["abandon_wait"]),
                      "short_abandoned": bool(row["short_abandoned"])}  # fmt: skip
        yield shown


def _seconds(text: Any) -> float | None:
    return None if text is None else float(Decimal(str(text)))
