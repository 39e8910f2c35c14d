"""The queue metrics the peers compute, per (queue, channel, minute), as METRICS.md defines them:
offered, answered, answered in SL, abandoned, short abandoned, wait, handled, handle time, CSAT.

One contact's events update its state (``ContactState``) and yield *contributions*: a minute
(of the attribution time) and the counts to add there. The peers keep the contact state and the
minute windows in their framework's own state (Quix Streams' state store and tumbling windows,
Faust's tables and windowed tables); this module is only the arithmetic, so both peers and
ccpulse are compared on the same definitions. Inputs are valid simulator events (the bench
produces no faults), keyed by contact so a contact's events arrive in order.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

FIELDS = ("offered", "answered", "answered_in_sl", "abandoned", "short_abandoned", "wait_us",
          "handled", "handle_us", "csat_responses", "csat_positive")  # fmt: skip
THRESHOLD_SECONDS = {"voice": 20, "chat": 30, "sms": 300, "social": 3600, "email": 86400, "in_person": 300}
SHORT_ABANDON_US = 5_000_000
MINUTE_US = 60_000_000


def at_us(text: str) -> int:
    return int(datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() * 1_000_000)


def contributions(state: dict[str, Any] | None, event: dict[str, Any]) -> tuple[dict[str, Any] | None, list[tuple]]:
    """The contact's new state and the contributions of ``event``: (queue, channel, minute_us,
    {field: amount})."""
    kind = event["type"]
    when = at_us(event["occurred_at"])
    out: list[tuple] = []
    if kind == "contact.offered":
        state = {"queue": event["queue"], "channel": event["channel"], "offered": when, "answered": None}
        out.append((state["queue"], state["channel"], when, {"offered": 1}))
        return state, out
    if state is None:
        return state, out  # not a contact event (agents), or none of ours
    queue, channel = state["queue"], state["channel"]
    if kind == "contact.answered" and state["answered"] is None:
        state["answered"] = when
        wait = max(0, when - state["offered"])
        in_sl = wait <= THRESHOLD_SECONDS[channel] * 1_000_000
        out.append((queue, channel, when, {"answered": 1, "answered_in_sl": int(in_sl), "wait_us": wait}))
    elif kind == "contact.abandoned":
        wait = max(0, when - state["offered"])
        out.append((queue, channel, when, {"abandoned": 1, "short_abandoned": int(wait < SHORT_ABANDON_US)}))
    elif kind == "contact.ended" and state["answered"] is not None:
        handle = event.get("talk_seconds", 0) + event.get("hold_seconds", 0) + event.get("acw_seconds", 0)
        out.append((queue, channel, when, {"handled": 1, "handle_us": round(handle * 1_000_000)}))
    elif kind == "survey.responded" and event.get("csat") is not None:
        out.append((queue, channel, when, {"csat_responses": 1, "csat_positive": int(event["csat"] >= 4)}))
    return state, out


def minute_of(at: int) -> int:
    return at - at % MINUTE_US


def add(total: list[int], amounts: dict[str, int]) -> list[int]:
    return [total[i] + amounts.get(name, 0) for i, name in enumerate(FIELDS)]
