"""What the ClickHouse tables must hold, from the definitions, and readers of what they do hold.

The expected rows are built naively from the whole set of input lines (EVENTS.md winners, the
conflict rule, issue grouping of METRICS.md), independent of pipeline.core. The readers fetch
tables with ``ccpulse query`` (through the running worker), with times as integer microseconds
and decimals as text, so comparisons are exact.
"""

from __future__ import annotations

import json
from collections import defaultdict
from decimal import Decimal
from typing import Any

from pipeline.core.contract import Event, check
from pipeline.core.targets import Targets
from tests.metrics_model import COUNT_FIELDS, Expected, in_window

MINUTE_US = 60_000_000


def valid_events(lines: list[bytes]) -> list[Event]:
    return [verdict.event for verdict in map(check, lines) if verdict.event is not None]


def expected_contacts(events: list[Event], targets: Targets) -> dict[str, dict[str, Any]]:
    winners: dict[tuple[str, str], Event] = {}
    for event in events:
        if event.type == "agent.state_changed":
            continue
        key = (event.contact_id or "", event.type)
        if key not in winners or (event.at, event.event_id) < (winners[key].at, winners[key].event_id):
            winners[key] = event
    contacts: dict[str, dict[str, Any]] = {}
    for contact in {c for c, _ in winners}:
        offered = winners.get((contact, "contact.offered"))
        answered = winners.get((contact, "contact.answered"))
        abandoned = winners.get((contact, "contact.abandoned"))
        ended = winners.get((contact, "contact.ended"))
        survey = winners.get((contact, "survey.responded"))
        transfer = winners.get((contact, "contact.transferred"))
        outcome = None
        in_sl = short = None
        if offered and (answered or abandoned):
            if answered and (not abandoned or answered.at <= abandoned.at):
                outcome = "answered"
                in_sl = max(0, answered.at - offered.at) <= targets.for_queue(
                    offered.queue or "", offered.channel or "").threshold_seconds * 1_000_000  # fmt: skip
            else:
                assert abandoned is not None
                outcome = "abandoned"
                short = max(0, abandoned.at - offered.at) < targets.short_abandon_seconds * 1_000_000
        handle = hold = None
        if ended:
            hold = round((ended.hold_seconds or 0) * 1_000_000)
            seconds = (ended.talk_seconds or 0) + (ended.hold_seconds or 0) + (ended.acw_seconds or 0)
            handle = round(seconds * 1_000_000)
        contacts[contact] = {
            "queue": offered.queue if offered else None,
            "channel": offered.channel if offered else None,
            "customer_id": offered.customer_id if offered else None,
            "reason": offered.reason if offered else None,
            "case_id": offered.case_id if offered else None,
            "agent_id": answered.agent_id if answered else None,
            "offered_at": offered.at if offered else None,
            "answered_at": answered.at if answered else None,
            "abandoned_at": abandoned.at if abandoned else None,
            "ended_at": ended.at if ended else None,
            "surveyed_at": survey.at if survey else None,
            "wait_us": max(0, answered.at - offered.at) if answered and offered else None,
            "handle_us": handle,
            "hold_us": hold,
            "transferred_at": transfer.at if transfer else None,
            "outcome": outcome,
            "answered_in_sl": in_sl,
            "short_abandoned": short,
            "resolved": ended.resolved if ended else None,
            "csat": survey.csat if survey else None,
            "nps": survey.nps if survey else None,
            "ces": survey.ces if survey else None,
            "is_repeat": None,
            "opening_contact_id": None,
        }
    return contacts


def expected_issues(contacts: dict[str, dict[str, Any]], targets: Targets) -> dict[str, dict[str, Any]]:
    """Issues by opening contact id; fills is_repeat and opening_contact_id into ``contacts``."""
    window = targets.fcr_window_days * 86_400 * 1_000_000
    keyed: dict[tuple[str, ...], list[str]] = defaultdict(list)
    for contact_id, row in contacts.items():
        if row["outcome"] == "answered":
            kind = ("case", row["customer_id"], row["case_id"]) if row["case_id"] is not None else (
                "reason", row["customer_id"], row["reason"])  # fmt: skip
            keyed[kind].append(contact_id)
    issues: dict[str, dict[str, Any]] = {}
    for members in keyed.values():
        members.sort(key=lambda c: (contacts[c]["offered_at"], c))
        groups: list[list[str]] = []
        for contact_id in members:
            if groups and contacts[contact_id]["offered_at"] - contacts[groups[-1][0]]["offered_at"] <= window:
                groups[-1].append(contact_id)
            else:
                groups.append([contact_id])
        for group in groups:
            opening = contacts[group[0]]
            resolving = next(
                (c for c in group if contacts[c]["ended_at"] is not None and contacts[c]["resolved"]), None
            )
            for position, contact_id in enumerate(group):
                contacts[contact_id]["is_repeat"] = position > 0
                contacts[contact_id]["opening_contact_id"] = group[0]
            issues[group[0]] = {
                "queue": opening["queue"], "channel": opening["channel"], "customer_id": opening["customer_id"],
                "opened_at": opening["offered_at"], "contacts": len(group), "judged_at": opening["ended_at"],
                "fcr": (bool(opening["resolved"]) and len(group) == 1) if opening["ended_at"] is not None else None,
                "resolved_at": contacts[resolving]["ended_at"] if resolving else None,
                "resolution_us": max(0, contacts[resolving]["ended_at"] - opening["offered_at"]) if resolving else None,
            }  # fmt: skip
    return issues


# ---------------------------------------------------------------------------------------- reading


def micros(value: Any) -> int | None:
    return None if value is None else int(value)


def decimal_us(value: Any) -> int | None:
    return None if value is None else int(Decimal(str(value)).scaleb(6))


CONTACTS_SQL = """
SELECT contact_id, queue, channel, customer_id, reason, case_id, agent_id,
       toUnixTimestamp64Micro(offered_at) AS offered_at, toUnixTimestamp64Micro(answered_at) AS answered_at,
       toUnixTimestamp64Micro(abandoned_at) AS abandoned_at, toUnixTimestamp64Micro(ended_at) AS ended_at,
       toUnixTimestamp64Micro(surveyed_at) AS surveyed_at, toString(wait_seconds) AS wait_seconds,
       toString(handle_seconds) AS handle_seconds, toString(hold_seconds) AS hold_seconds, outcome, answered_in_sl,
       short_abandoned, resolved, toUnixTimestamp64Micro(transferred_at) AS transferred_at,
       csat, nps, ces, issue_id, is_repeat
FROM ccpulse.contacts FINAL
"""
ISSUES_SQL = """
SELECT issue_id, opening_contact_id, queue, channel, customer_id, toUnixTimestamp64Micro(opened_at) AS opened_at,
       contacts, toUnixTimestamp64Micro(judged_at) AS judged_at, fcr,
       toUnixTimestamp64Micro(resolved_at) AS resolved_at, toString(resolution_seconds) AS resolution_seconds
FROM ccpulse.issues FINAL
"""
SECONDS = {"wait_us_sum": "wait_seconds_sum", "handle_us_sum": "handle_seconds_sum",
           "resolution_us_sum": "resolution_seconds_sum", "hold_us_sum": "hold_seconds_sum"}  # fmt: skip
MINUTES_SQL = (
    "SELECT queue, channel, toUnixTimestamp(minute) AS minute, "
    + ", ".join(f"toString({SECONDS[f]}) AS {f}" if f in SECONDS else f for f in COUNT_FIELDS)
    + " FROM ccpulse.metrics_minute FINAL"
)


def jsonl(output: bytes) -> list[dict[str, Any]]:
    return [json.loads(line) for line in output.splitlines() if line.strip()]


def actual_contacts(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    found = {}
    for row in rows:
        found[row["contact_id"]] = {
            **{
                k: row[k]
                for k in (
                    "queue",
                    "channel",
                    "customer_id",
                    "reason",
                    "case_id",
                    "agent_id",
                    "outcome",
                    "csat",
                    "nps",
                    "ces",
                )
            },  # fmt: skip
            **{k: micros(row[k]) for k in ("offered_at", "answered_at", "abandoned_at", "ended_at", "surveyed_at")},
            "wait_us": decimal_us(row["wait_seconds"]),
            "handle_us": decimal_us(row["handle_seconds"]),
            "hold_us": decimal_us(row["hold_seconds"]),
            "transferred_at": micros(row["transferred_at"]),
            **{
                k: None if row[k] is None else bool(row[k])
                for k in ("answered_in_sl", "short_abandoned", "resolved", "is_repeat")
            },  # fmt: skip
            "issue_id": row["issue_id"],
        }
    return found


def minute_counts(rows: list[dict[str, Any]]) -> dict[tuple[str, str, int], dict[str, int]]:
    return {
        (row["queue"], row["channel"], int(row["minute"])): {
            f: (decimal_us(row[f]) if f in SECONDS else int(row[f])) or 0 for f in COUNT_FIELDS
        }
        for row in rows
    }


DEFAULT_TARGETS = Targets()


def counts_from_facts(
    contacts: dict[str, dict[str, Any]], issues: list[dict[str, Any]], targets: Targets = DEFAULT_TARGETS
) -> dict[tuple[str, str, int], dict[str, int]]:  # noqa: E501
    """metrics_minute as the contacts and issues tables imply it (METRICS.md contributions)."""
    sums: dict[tuple[str, str, int], dict[str, int]] = defaultdict(lambda: dict.fromkeys(COUNT_FIELDS, 0))

    def add(queue: str, channel: str, at: int, name: str, amount: int = 1) -> None:
        sums[(queue, channel, at // MINUTE_US * 60)][name] += amount

    for row in contacts.values():
        if row["offered_at"] is None:
            continue
        q, c = row["queue"], row["channel"]
        hours = targets.calendar_for(q)
        apart = hours is not None and not hours.is_open(row["offered_at"])
        if apart:
            add(q, c, row["offered_at"], "offered_out_of_hours")
            apart = not hours.counted  # type: ignore[union-attr]
        if not apart:
            add(q, c, row["offered_at"], "offered")
        if row["outcome"] == "answered" and row["ended_at"] is not None:
            add(q, c, row["ended_at"], "handled")
            add(q, c, row["ended_at"], "handle_us_sum", row["handle_us"])
            add(q, c, row["ended_at"], "hold_us_sum", row["hold_us"])
        if row["outcome"] == "answered" and not apart and row["transferred_at"] is not None:
            add(q, c, row["transferred_at"], "transferred")
        if row["outcome"] == "answered" and not apart:
            add(q, c, row["answered_at"], "answered")
            add(q, c, row["answered_at"], "wait_us_sum", row["wait_us"])
            add(q, c, row["answered_at"], "answered_in_sl", int(bool(row["answered_in_sl"])))
        if row["outcome"] == "abandoned" and not apart:
            add(q, c, row["abandoned_at"], "abandoned")
            add(q, c, row["abandoned_at"], "short_abandoned", int(bool(row["short_abandoned"])))
            within = max(0, row["abandoned_at"] - row["offered_at"]) <= targets.for_queue(q, c).threshold_us
            add(q, c, row["abandoned_at"], "abandoned_in_sl", int(within and not row["short_abandoned"]))
        if row["surveyed_at"] is not None:
            for score, positive in (("csat", lambda v: v >= 4), ("ces", None), ("nps", None)):
                value = row[score]
                if value is None:
                    continue
                add(q, c, row["surveyed_at"], f"{score}_responses")
                if score == "csat":
                    add(q, c, row["surveyed_at"], "csat_positive", int(positive(value)))  # type: ignore[misc]
                if score == "ces":
                    add(q, c, row["surveyed_at"], "ces_sum", value)
                if score == "nps":
                    add(q, c, row["surveyed_at"], "nps_promoters", int(value >= 9))
                    add(q, c, row["surveyed_at"], "nps_detractors", int(value <= 6))
    for issue in issues:
        q, c = issue["queue"], issue["channel"]
        if issue["judged_at"] is not None:
            add(q, c, issue["judged_at"], "issues_judged")
            add(q, c, issue["judged_at"], "issues_fcr", int(bool(issue["fcr"])))
        if issue["resolved_at"] is not None:
            add(q, c, issue["resolved_at"], "issues_resolved")
            add(q, c, issue["resolved_at"], "resolution_us_sum", issue["resolution_us"])
    return {key: value for key, value in sums.items() if any(value.values())}


def windows_of(minutes: dict[tuple[str, str, int], dict[str, int]], now_us: int, zone: Any) -> Expected:
    """Window counts summed from metrics_minute rows, as the model's Expected (for the gauges)."""
    expected = Expected()
    for (queue, channel, minute), counts in minutes.items():
        for window in ("15m", "1h", "today"):
            total = expected.counts.setdefault((queue, channel, window), dict.fromkeys(COUNT_FIELDS, 0))
            if in_window(minute * 1_000_000, now_us, window, zone):
                for name, value in counts.items():
                    total[name] += value
    return expected


AGENT_MINUTES_SQL = (
    "SELECT toUnixTimestamp(minute) AS minute, agent_id, queue, state, toString(sum(seconds)) AS seconds "
    "FROM ccpulse.agent_state_minute GROUP BY minute, agent_id, queue, state"
)
AGENT_STATES_SQL = (
    "SELECT agent_id, toUnixTimestamp64Micro(started_at) AS started_at, event_id, state, queues, reason, "
    "toUnixTimestamp64Micro(ended_at) AS ended_at, toString(seconds) AS seconds FROM ccpulse.agent_states FINAL"
)
TIMED = ("available", "on_contact", "after_contact_work", "away")


def expected_agent_states(events: list[Event]) -> dict[tuple[str, int, str], tuple[Any, ...]]:
    """``agent_states`` from the definitions: each state event until the agent's next one."""
    from tests.metrics_model import agent_stints

    table: dict[tuple[str, int, str], tuple[Any, ...]] = {}
    for agent, stints in agent_stints([(event, "") for event in events]).items():
        for index, stint in enumerate(stints):
            ended = stints[index + 1].at if index + 1 < len(stints) else None
            table[(agent, stint.at, stint.event_id)] = (stint.state, sorted(set(stint.queues or ())), stint.reason,
                                                        ended, None if ended is None else ended - stint.at)  # fmt: skip
    return table


def actual_agent_states(rows: list[dict[str, Any]]) -> dict[tuple[str, int, str], tuple[Any, ...]]:
    return {(row["agent_id"], int(row["started_at"]), row["event_id"]): (
        row["state"], list(row["queues"]), row["reason"], micros(row["ended_at"]), decimal_us(row["seconds"]))
        for row in rows}  # fmt: skip


def expected_agent_minutes(events: list[Event]) -> dict[tuple[int, str, str, str], int]:
    """The ``agent_state_minute`` view from the definitions: (minute start, agent, queue, state) ->
    µs of every closed interval (a state event to the agent's next), cut at minutes."""
    from tests.metrics_model import agent_stints

    table: dict[tuple[int, str, str, str], int] = defaultdict(int)
    for agent, stints in agent_stints([(event, "") for event in events]).items():
        for stint, following in zip(stints, stints[1:]):  # noqa: B905
            at = stint.at
            while stint.state in TIMED and at < following.at:
                boundary = min(following.at, (at // MINUTE_US + 1) * MINUTE_US)
                for queue in set(stint.queues or ()):
                    table[(at // MINUTE_US * 60, agent, queue, stint.state or "")] += boundary - at
                at = boundary
    return dict(table)


def actual_agent_minutes(rows: list[dict[str, Any]]) -> dict[tuple[int, str, str, str], int]:
    return {(int(row["minute"]), row["agent_id"], row["queue"], row["state"]): decimal_us(row["seconds"]) or 0
            for row in rows}  # fmt: skip
