"""When to look for expired state: by how far event time has moved, not by batches or seconds.

Expiry scans a table, so it runs now and then. Counting batches or wall-clock seconds ties the
amount of state to the processing speed: a worker catching up on a backlog takes full batches,
and fifty of them can hold two simulated days. Event time is what state expires by, so the
cadence follows it: a run once event time has moved an hour (a replay at any speed keeps at most
an hour of expired state), or five minutes when a minute of real time has passed too (live
traffic: about once a minute, never a scan per batch).

A run expires at most ``at_once`` keys (their tombstones go out with the batch). One that reaches
it is followed by another at the next batch, taking twice as many, up to ``most``, until a run
finds fewer: catching up, the hour or two of event time between runs can expire more than one run
takes (a large center's minute partials: ~16 a queue, channel and minute), and one capped run an
event hour kept a heap of expired state that grew with the backlog (the board held 18,000
expired partials after 1.5 M events of the simulator's 9 queues and channels before 2026-12-07;
a center with 100 would have gained ~200,000 a run).
"""

from __future__ import annotations

from dataclasses import dataclass

from pipeline.core.lifecycle import ContactState

MINUTE_US = 60 * 1_000_000
# A run deletes at most this many keys (~1 MB of tombstones), and twice as many after a run that
# was cut short, up to 16 times as many.
EXPIRE_AT_ONCE = 10_000


@dataclass
class ExpiryClock:
    always_after_us: int = 60 * MINUTE_US
    at_least_us: int = 5 * MINUTE_US
    wall_seconds: float = 60.0
    at_once: int = EXPIRE_AT_ONCE  # the most keys the next run expires
    most: int = 16 * EXPIRE_AT_ONCE  # how far at_once grows while runs are cut short
    _last_event_us: int | None = None
    _last_wall: float = 0.0
    _cut_short: bool = False

    def __post_init__(self) -> None:
        self._least = self.at_once

    def due(self, event_us: int, wall: float) -> bool:
        """True when a run is due; ``event_us`` the latest event time, ``wall`` a monotonic clock."""
        if self._last_event_us is None:
            self._last_event_us, self._last_wall = event_us, wall
            return False
        moved = event_us - self._last_event_us
        if (
            self._cut_short
            or moved >= self.always_after_us
            or (moved >= self.at_least_us and wall - self._last_wall >= self.wall_seconds)
        ):
            self._last_event_us, self._last_wall = event_us, wall
            return True
        return False

    def ran(self, expired: int) -> None:
        """A run expired this many keys: at ``at_once`` there may be more, due at the next batch."""
        self._cut_short = expired >= self.at_once
        self.at_once = min(2 * self.at_once, self.most) if self._cut_short else self._least


# ------------------------------------------------------------------ when each piece of state may go
WAITING_US = 7 * 24 * 60 * MINUTE_US  # a waiting contact is kept this long after it was offered


def contact_expired(state: ContactState, latest_us: int, retention_us: int) -> bool:
    """A contact is forgotten once its last event is older than the retention, unless it still
    waits (offered, not answered, abandoned or ended, offered at most 7 days before)."""
    offered = state.offered
    waiting = (offered is not None and state.answered is None and state.abandoned is None
               and state.ended is None and offered.at >= latest_us - WAITING_US)  # fmt: skip
    return state.last_at < latest_us - retention_us and not waiting


def contact_kept_until(state: ContactState, retention_us: int) -> int:
    """The latest event time at which the contact is still kept: it expires once the latest event
    time passes this (``contact_expired(state, latest, r)`` iff ``latest > contact_kept_until(state, r)``).
    The stage remembers this number per contact, so an expiry run reads no stored record."""
    until = state.last_at + retention_us
    offered = state.offered
    if offered is not None and state.answered is None and state.abandoned is None and state.ended is None:
        until = max(until, offered.at + WAITING_US)
    return until
