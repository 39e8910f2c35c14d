"""Contract events as Asterisk would have logged them (``ccpulse simulate --as asterisk-queue-log``).

Pure. Writes the stock ``queue_log`` lines of the **voice** contacts in a stream of contract events
(the simulator's): ENTERQUEUE, CONNECT, ABANDON, COMPLETECALLER, or EXITWITHTIMEOUT for a call that
ended unanswered; agents' membership and pauses are not written (Asterisk logs them from its own
configuration). Times are whole seconds, as in the stock file; hold time, wait time and call time
are the differences of those seconds, so converting the lines back (``pipeline.sources.asterisk``)
gives each call's offer, answer, abandonment and end at the same seconds, and a handle time equal to
the call's talk + hold + after-call work cut to whole seconds.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime


@dataclass
class Call:
    queue: str
    entered: int  # Unix seconds
    answered: int | None = None
    agent: str = "NONE"


def seconds(occurred_at: object) -> int:
    return math.floor(datetime.fromisoformat(str(occurred_at).replace("Z", "+00:00")).timestamp())


def queue_log_lines(events: Iterable[dict[str, object]]) -> Iterator[str]:
    """The lines, in the events' order (the simulator's is time order)."""
    calls: dict[str, Call] = {}
    for event in events:
        kind, contact = event.get("type"), str(event.get("contact_id", ""))
        if kind == "contact.offered":
            if event.get("channel") == "voice" and contact not in calls:
                entered = calls[contact] = Call(str(event["queue"]), seconds(event["occurred_at"]))
                yield f"{entered.entered}|{contact}|{entered.queue}|NONE|ENTERQUEUE||{event['customer_id']}|1"
            continue
        found = calls.get(contact)
        if found is None:
            continue
        call = found
        at = seconds(event["occurred_at"])
        if kind == "contact.answered" and call.answered is None:
            call.answered, call.agent = at, str(event["agent_id"])
            yield f"{at}|{contact}|{call.queue}|{call.agent}|CONNECT|{at - call.entered}|{contact}-agent|1"
        elif kind == "contact.abandoned" and call.answered is None:
            del calls[contact]
            yield f"{at}|{contact}|{call.queue}|NONE|ABANDON|1|1|{at - call.entered}"
        elif kind == "contact.ended":
            del calls[contact]
            if call.answered is None:
                yield f"{at}|{contact}|{call.queue}|NONE|EXITWITHTIMEOUT|1|1|{at - call.entered}"
                continue
            handle = sum(number(event.get(name)) for name in ("talk_seconds", "hold_seconds", "acw_seconds"))
            hold = call.answered - call.entered
            yield f"{at}|{contact}|{call.queue}|{call.agent}|COMPLETECALLER|{hold}|{math.floor(handle)}|1"


def number(value: object) -> float:
    return float(value) if isinstance(value, int | float) else 0.0
