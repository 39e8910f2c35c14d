"""Asterisk's ``queue_log`` as contract events (``ccpulse convert --from asterisk-queue-log``).

Pure: lines in, events (dicts in the contract's JSON form) out; no clock, no I/O. Reads the stock
file (``epoch|uniqueid|queue|agent|event|data1|data2|...``) and the realtime ``queue_log`` table
exported as CSV or TSV (``time,callid,queuename,agent,event,data1,...`` with a datetime, read in
``zone``). What each event becomes, and why: docs/sources.md.

Identity and idempotency: a call in a queue is the contact ``ast:<uniqueid>:<queue>`` (a call that
a transfer sends to a second queue is a second contact there); every event id is derived from
the source line itself, so a re-read file never counts twice. State: only the queues each agent
is a member of (bounded by the agents; rebuilt from the file's own ADDMEMBER lines).
"""

from __future__ import annotations

import csv
import hashlib
import io
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any

from pipeline.timefmt import rfc3339

MAX_OPEN_CALLS = 100_000
QUEUE_OK = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
NOT_A_QUEUE = {"NONE", ""}
ANONYMOUS = {"", "anonymous", "unknown", "restricted", "private", "unavailable"}
# Lines that say nothing the contract counts (docs/sources.md says why for each).
SKIPPED = {
    "RINGNOANSWER", "RINGCANCELED", "AGENTDUMP", "SYSCOMPAT", "CONFIGRELOAD", "QUEUESTART", "INFO",
    "DID", "ENTERQUEUE_NOWAIT", "JOINEMPTY", "JOINUNAVAIL", "AGENTCALLED", "ATTENDEDTRANSFERFAILED",
    "CALLBACK", "CALLSTATUS",
}  # fmt: skip
ENDED = {"COMPLETEAGENT", "COMPLETECALLER", "TRANSFER", "ATTENDEDTRANSFER", "BLINDTRANSFER"}
TRANSFERS = {"TRANSFER", "ATTENDEDTRANSFER", "BLINDTRANSFER"}
LEFT_UNANSWERED = {"EXITWITHTIMEOUT", "EXITEMPTY", "EXITWITHKEY"}
MEMBER_ON = {"ADDMEMBER", "AGENTLOGIN", "AGENTCALLBACKLOGIN"}
MEMBER_OFF = {"REMOVEMEMBER", "AGENTLOGOFF", "AGENTCALLBACKLOGOFF"}
MEMBERSHIP = MEMBER_ON | MEMBER_OFF | {"PAUSE", "UNPAUSE", "PAUSEALL", "UNPAUSEALL"}


@dataclass(frozen=True)
class Outcome:
    """What one line became: events, or why it was skipped (counted) or rejected (an error)."""

    events: tuple[dict[str, object], ...] = ()
    skipped: str | None = None  # the line's event name, for the summary
    rejected: str | None = None  # a stable reason code
    detail: str = ""


def merged(outcomes: list[Outcome]) -> Outcome:
    """One line's outcome from its records' (a JSON array of several): their events, else the
    first rejection, else skipped as the record says (one) or as ``nothing``."""
    if len(outcomes) == 1:
        return outcomes[0]
    events = tuple(event for outcome in outcomes for event in outcome.events)
    rejected = next((outcome for outcome in outcomes if outcome.rejected), None)
    if events or rejected is None:
        return Outcome(events=events, skipped=None if events else "nothing")
    return rejected


@dataclass(frozen=True)
class Line:
    at: datetime
    uniqueid: str
    queue: str
    agent: str
    event: str
    data: tuple[str, ...]
    digest: str  # of the line as read: the source of its events' ids


@dataclass
class Agent:
    queues: set[str] = field(default_factory=set)
    paused: set[str] = field(default_factory=set)  # "*" for PAUSEALL
    talking: bool = False


def queue_name(raw: str) -> str:
    """A queue name the contract takes (``[A-Za-z0-9_.-]{1,64}``): a name that breaks the pattern
    has its other characters replaced by ``_``, is cut to 55 and gets 8 characters of a hash of the
    whole (``Support Desk`` → ``Support_Desk-3f2a9c01``), so no two names become one."""
    if QUEUE_OK.match(raw):
        return raw
    cleaned = re.sub(r"[^A-Za-z0-9_.-]", "_", raw)
    return f"{cleaned[:55]}-{hashlib.sha256(raw.encode()).hexdigest()[:8]}"


def member_id(raw: str) -> str:
    """``SIP/8007`` or ``PJSIP/alice`` as an agent id (the channel technology is kept)."""
    return raw.strip()[:128] or "unknown"


class QueueLog:
    """One queue_log stream, line by line (lines must come in file order)."""

    def __init__(self, zone: tzinfo = UTC) -> None:
        self.zone = zone
        self.agents: dict[str, Agent] = {}
        # calls waiting or talking: (uniqueid, queue) -> when it entered the queue. A CONNECT is put at
        # that time + its recorded hold time, an ABANDON at that time + its recorded wait, so the
        # waits ccpulse sums are the ones Asterisk recorded, to the second (the line's own time can
        # be a second later). Bounded: the oldest entries go past MAX_OPEN_CALLS.
        self.open_calls: dict[tuple[str, str], datetime] = {}
        self._columns: list[str] | None = None  # a table export's header, once read
        self._delimiter: str | None = None  # and its delimiter ("," or "\t")

    def snapshot(self) -> dict[str, object]:
        """The state, as JSON: :meth:`restore` on a new converter goes on where this one is."""
        return {
            "agents": {name: {"queues": sorted(agent.queues), "paused": sorted(agent.paused), "talking": agent.talking}
                       for name, agent in self.agents.items()},
            "open_calls": [[call, queue, at.isoformat()] for (call, queue), at in self.open_calls.items()],
            "columns": self._columns, "delimiter": self._delimiter,
        }  # fmt: skip

    def restore(self, saved: dict[str, Any]) -> None:
        self.agents = {name: Agent(set(agent["queues"]), set(agent["paused"]), agent["talking"])
                       for name, agent in saved.get("agents", {}).items()}  # fmt: skip
        self.open_calls = {(call, queue): datetime.fromisoformat(at) for call, queue, at in saved.get("open_calls", [])}
        self._columns, self._delimiter = saved.get("columns"), saved.get("delimiter")

    def line(self, raw: bytes | str) -> Outcome:
        text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
        text = text.rstrip("\r\n")
        if not text.strip():
            return Outcome(skipped="blank")
        try:
            parsed = self._parse(text)
        except ValueError as problem:
            return Outcome(rejected="unreadable", detail=str(problem))
        if parsed is None:
            return Outcome(skipped="header")
        return self._events(parsed)

    # ------------------------------------------------------------------ reading a line
    def _parse(self, text: str) -> Line | None:
        digest = hashlib.sha256(text.encode()).hexdigest()[:24]
        if self._columns is None:
            header = _header_of(text)
            if header is not None:
                self._columns, self._delimiter = header, _table_delimiter(text)
                return None
        if self._columns is not None:
            fields = _by_columns(_row(text, self._delimiter), self._columns)
        elif "|" in text:
            fields = text.split("|")  # the stock file
        else:
            fields = _row(text, _table_delimiter(text))  # a table export without its header
        if len(fields) < 5:
            raise ValueError(f"{len(fields)} fields; a queue_log line has at least 5 (time|callid|queue|agent|event)")
        moment, uniqueid, queue, agent, event, *data = fields
        return Line(self._time(moment), uniqueid.strip(), queue.strip(), agent.strip(), event.strip().upper(),
                    tuple(d.strip() for d in data), digest)  # fmt: skip

    def _time(self, text: str) -> datetime:
        text = text.strip()
        if re.fullmatch(r"\d{9,11}(\.\d+)?", text):
            return datetime.fromtimestamp(float(text), UTC)
        try:
            moment = datetime.fromisoformat(text.replace(" ", "T", 1))
        except ValueError:
            raise ValueError(f"time {text!r} is neither Unix seconds nor a date and time") from None
        return moment.replace(tzinfo=self.zone) if moment.tzinfo is None else moment

    # ------------------------------------------------------------------ what a line means
    def _events(self, line: Line) -> Outcome:
        name = line.event
        if name == "ENTERQUEUE":
            self._entered(line)
            return self._contact_event(line, "contact.offered", channel="voice", customer_id=self._caller(line),
                                       reason="unspecified")  # fmt: skip
        if name == "CONNECT":
            agent = member_id(line.agent)
            answered = self._contact_event(line, "contact.answered", at=self._after_entry(line, 0), agent_id=agent)
            return _with(answered, self._agent_state(line, agent, talking=True))
        if name == "ABANDON":
            self.open_calls.pop((line.uniqueid, line.queue), None)
            return self._contact_event(line, "contact.abandoned", at=self._after_entry(line, 2))
        if name in ENDED:
            self.open_calls.pop((line.uniqueid, line.queue), None)
            calltime = _number(line.data, _calltime_at(name, line.data))
            ended = self._contact_event(line, "contact.ended", talk_seconds=calltime, hold_seconds=0,
                                        acw_seconds=0, resolved=name.startswith("COMPLETE"))  # fmt: skip
            if name in TRANSFERS:  # the agent passed the call on: to an extension (TRANSFER, BLIND) or a call
                ended = merged([ended, self._transferred(line)])
            return _with(ended, self._agent_state(line, member_id(line.agent), talking=False))
        if name in LEFT_UNANSWERED:
            self.open_calls.pop((line.uniqueid, line.queue), None)
            return self._contact_event(line, "contact.ended", resolved=False)
        if name in MEMBERSHIP:
            return self._membership(line)
        if name in SKIPPED:
            return Outcome(skipped=name)
        return Outcome(skipped=name or "no_event")

    def _transferred(self, line: Line) -> Outcome:
        """``contact.transferred`` at the line's time; where to, as Asterisk names it, kept raw
        (``asterisk_transfer``: an extension@context, or the bridged call): not a queue or agent."""
        found = self._contact_event(line, "contact.transferred")
        target = "@".join(line.data[:2]) if line.event != "ATTENDEDTRANSFER" else "|".join(line.data[:2])
        return Outcome(events=tuple({**event, "event_id": f"{event['event_id']}-transferred",
                                     "asterisk_transfer": target} for event in found.events),
                       rejected=found.rejected, detail=found.detail)  # fmt: skip

    def _caller(self, line: Line) -> str:
        caller = line.data[1] if len(line.data) > 1 else ""
        if caller.lower() in ANONYMOUS:
            return f"anonymous:{line.uniqueid}"  # no caller id: no issue joins it (no false repeats)
        return caller[:128]

    def _entered(self, line: Line) -> None:
        self.open_calls[(line.uniqueid, line.queue)] = line.at
        if len(self.open_calls) > MAX_OPEN_CALLS:
            del self.open_calls[next(iter(self.open_calls))]  # the oldest: a call whose end never came

    def _after_entry(self, line: Line, index: int) -> datetime:
        """The queue entry's time + the seconds recorded in ``data[index]`` (hold time, wait time);
        the line's own time when the entry was not read (a file that begins mid-call)."""
        entered = self.open_calls.get((line.uniqueid, line.queue))
        if entered is None or index >= len(line.data) or not line.data[index].isdigit():
            return line.at
        return entered + timedelta(seconds=int(line.data[index]))

    def _contact_event(self, line: Line, kind: str, at: datetime | None = None, **fields: object) -> Outcome:
        if line.queue in NOT_A_QUEUE:
            return Outcome(rejected="no_queue", detail=f"{line.event} names no queue")
        if line.uniqueid in ("", "NONE", "REALTIME"):
            return Outcome(rejected="no_call", detail=f"{line.event} names no call (uniqueid {line.uniqueid!r})")
        queue = queue_name(line.queue)
        event: dict[str, object] = {
            "event_id": f"ast-{line.digest}", "type": kind, "schema_version": 1,
            "occurred_at": rfc3339(at or line.at), "contact_id": f"ast:{line.uniqueid}:{queue}"[:128],
            "queue": queue, **fields,
        }  # fmt: skip
        if queue != line.queue:
            event["asterisk_queue"] = line.queue  # the original name, kept in the raw store
        return Outcome(events=(event,))

    def _agent_state(self, line: Line, agent: str, talking: bool) -> dict[str, object]:
        state = self.agents.get(agent)
        if state is None:
            state = self.agents[agent] = Agent(queues={queue_name(line.queue)})
        state.talking = talking
        return self._agent_event(line, agent, state, suffix="agent")

    def _membership(self, line: Line) -> Outcome:
        agent = member_id(line.agent)
        state = self.agents.setdefault(agent, Agent())
        queue = None if line.queue in NOT_A_QUEUE else queue_name(line.queue)
        name = line.event
        if name in MEMBER_ON and queue:
            state.queues.add(queue)
        elif name in MEMBER_OFF and queue:
            state.queues.discard(queue)
            state.paused.discard(queue)
        elif name in MEMBER_OFF:  # a log-off names no queue: out of all of them
            state.queues.clear()
            state.paused.discard("*")
        elif name == "PAUSE" and queue:
            state.paused.add(queue)
        elif name == "UNPAUSE" and queue:
            state.paused.discard(queue)
        elif name == "PAUSEALL":
            state.paused.add("*")
        elif name == "UNPAUSEALL":
            state.paused.clear()
        event = self._agent_event(line, agent, state)
        if not state.queues and not state.talking:
            self.agents.pop(agent, None)  # logged off everywhere: nothing to remember
        return Outcome(events=(event,) if event else ())

    def _agent_event(self, line: Line, agent: str, state: Agent, suffix: str = "") -> dict[str, object]:
        if state.talking:
            current = "on_contact"
        elif not state.queues:
            current = "offline"
        elif "*" in state.paused or state.queues <= state.paused:
            current = "away"
        else:
            current = "available"
        return {"event_id": f"ast-{line.digest}" + (f"-{suffix}" if suffix else ""), "type": "agent.state_changed",
                "schema_version": 1, "occurred_at": rfc3339(line.at), "agent_id": agent, "state": current,
                "queues": sorted(state.queues)}  # fmt: skip


def _calltime_at(name: str, data: tuple[str, ...]) -> int:
    """Where the call time is: COMPLETE*(holdtime|calltime|…), TRANSFER and BLINDTRANSFER
    (exten|context|holdtime|calltime|…), ATTENDEDTRANSFER (BRIDGE|id|holdtime|calltime|… or
    LINK|channel|channel|holdtime|calltime|…)."""
    if name.startswith("COMPLETE"):
        return 1
    return 4 if name == "ATTENDEDTRANSFER" and data[:1] == ("LINK",) else 3


def _with(outcome: Outcome, extra: dict[str, object]) -> Outcome:
    if outcome.rejected:
        return outcome
    return Outcome(events=(*outcome.events, extra))


def _number(data: tuple[str, ...], index: int) -> float:
    try:
        value = float(data[index])
    except (IndexError, ValueError):
        return 0.0
    return value if value >= 0 else 0.0


COLUMNS = ("time", "callid", "queuename", "agent", "event")


def _table_delimiter(text: str) -> str:
    return "\t" if "\t" in text else ","


def _row(text: str, delimiter: str | None) -> list[str]:
    return next(csv.reader(io.StringIO(text), delimiter=delimiter or ","))


def _header_of(text: str) -> list[str] | None:
    """The column names of a table export's header line (``time,callid,queuename,agent,event,...``)."""
    names = [name.strip().lower() for name in _row(text, _table_delimiter(text))]
    return names if len(names) >= 5 and names[4] == "event" and names[0] in ("time", "timestamp") else None


def _by_columns(fields: list[str], columns: list[str]) -> list[str]:
    """A table row in stock order: the five fixed columns, then data1..dataN, or ``data`` split at
    ``|`` (tables that keep all parameters in one column)."""
    row = dict(zip(columns, fields, strict=False))
    fixed = [row.get("time", row.get("timestamp", "")), row.get("callid", ""), row.get("queuename", ""),
             row.get("agent", ""), row.get("event", "")]  # fmt: skip
    numbered = sorted((int(name[4:]), value) for name, value in row.items() if re.fullmatch(r"data\d+", name))
    if numbered:
        return fixed + [value for _, value in numbered]
    return fixed + (row.get("data", "").split("|") if row.get("data") else [])
