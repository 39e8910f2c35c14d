"""How an agent is kept in its input partition's changelog: a head record and its stints per hour.

Pure: no I/O. An agent's history (``AgentRecord.history``, ``pipeline/core/agent_time.py``) holds
every state event of the contact retention, a day and more: written whole on every event, it was
most of the changelog's bytes (4.5 KB a record on the simulator's traffic, against 260 for a
contact). It is written in pieces instead:

    agent\\x1f<agent_id>             the head: the record without its history (``chunked`` set)
    stints\\x1f<hour>\\x1f<agent_id>   the stints whose ``at`` is in that hour (µs since the epoch)

A batch writes the head and the hours whose stints it changed (an event in the hour it arrives:
one short record); a trim rewrites the hours it cut; forgetting deletes the head first, then the
hours. The head says the agent exists and from where its history is kept (``kept_from``); the
fields it repeats from the last stint are taken from the stints on restore. So any prefix of a
batch's records restores to a state the replay of that batch makes whole again:

- head written, an hour not: the stints of that hour are read again from the input;
- an hour of a forgotten agent left behind: no head, so no agent (the hour is deleted later);
- a trim's head written, its hours not: stints before ``kept_from`` are dropped on restore.

A head of the versions before December 2026 (``chunked`` false) holds the whole history: it is
read as it is, and the agent's next write writes every hour of it.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterable

import msgspec

from pipeline.core.agent_time import HOUR_US, Stint, shared_stint, stint_at, stint_order
from pipeline.core.engine import AgentRecord

HEAD_PREFIX = "agent\x1f"
HOURS_PREFIX = "stints\x1f"
_stints = msgspec.msgpack.Decoder(list[Stint])
_head = msgspec.msgpack.Decoder(AgentRecord)


def hour_of(at: int) -> int:
    return at - at % HOUR_US


def hours_key(agent_key: str, hour: int) -> str:
    return f"{HOURS_PREFIX}{hour}\x1f{agent_key[len(HEAD_PREFIX) :]}"


def parse_hours_key(name: str) -> tuple[str, int]:
    """(the agent's head key, the hour) of an hour's key."""
    _, hour, agent_id = name.split("\x1f", 2)
    return HEAD_PREFIX + agent_id, int(hour)


def hours(stints: Iterable[Stint]) -> set[int]:
    return {hour_of(stint.at) for stint in stints}


def in_hour(history: list[Stint], hour: int) -> list[Stint]:
    """The stints of ``history`` (in order) whose ``at`` is in ``hour``."""
    first = bisect_left(history, hour, key=stint_at)
    return history[first : bisect_left(history, hour + HOUR_US, key=stint_at)]


def writes(agent_key: str, agent: AgentRecord, changed: Iterable[int]) -> dict[bytes, bytes | None]:
    """The records that keep ``agent`` after its hours ``changed`` changed: the head first."""
    head = msgspec.structs.replace(agent, history=[], chunked=True)
    found: dict[bytes, bytes | None] = {agent_key.encode(): msgspec.msgpack.encode(head)}
    for hour in sorted(changed):
        stints = in_hour(agent.history, hour)
        found[hours_key(agent_key, hour).encode()] = msgspec.msgpack.encode(stints) if stints else None
    return found


def forgotten(agent_key: str, agent: AgentRecord) -> dict[bytes, bytes | None]:
    """The tombstones of a forgotten agent: the head first, then each hour."""
    found: dict[bytes, bytes | None] = {agent_key.encode(): None}
    for hour in sorted(hours(agent.history)):
        found[hours_key(agent_key, hour).encode()] = None
    return found


def assemble(head: bytes, hour_records: Iterable[bytes]) -> tuple[AgentRecord, bool]:
    """The agent from its head and its hours' records as restored; True when the head is of the
    earlier kind (the whole history in it: to be written in hours)."""
    agent = _head.decode(head)
    if not agent.chunked:
        if not agent.history and agent.at > -(2**62):  # a record written before the history was kept
            agent.history = [Stint(agent.at, agent.event_id, agent.state, agent.queues)]
        agent.history = [shared_stint(stint) for stint in agent.history]
        return agent, True
    history = sorted((shared_stint(stint) for value in hour_records for stint in _stints.decode(value)),
                     key=stint_order)  # fmt: skip
    agent.history = [stint for stint in history if stint.at >= agent.kept_from]
    latest = agent.history[-1] if agent.history else Stint(-(2**62), "", "offline", ())
    agent.at, agent.event_id, agent.state, agent.queues = latest.at, latest.event_id, latest.state, latest.queues
    return agent, False
