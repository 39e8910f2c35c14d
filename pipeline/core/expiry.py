"""When to look for expired state: by how far event time has moved, not by batches or seconds.

Expiry scans a table, so it runs now and then. Counting batches or wall-clock seconds ties the
amount of state to the processing speed: a worker catching up on a backlog takes full batches,
and fifty of them can hold two simulated days. Event time is what state expires by, so the
cadence follows it: a run once event time has moved an hour (a replay at any speed keeps at most
an hour of expired state), or five minutes when a minute of real time has passed too (live
traffic: about once a minute, never a scan per batch).
"""

from __future__ import annotations

from dataclasses import dataclass

from pipeline.core.lifecycle import ContactState

MINUTE_US = 60 * 1_000_000
# Expiry deletes at most this many keys per run (the tombstones go out in the batch's record
# batches): enough for an hour of event time at any realistic volume, bounded so that one run
# never builds a burst of records larger than a few megabytes.
EXPIRE_AT_ONCE = 10_000


@dataclass
class ExpiryClock:
    always_after_us: int = 60 * MINUTE_US
    at_least_us: int = 5 * MINUTE_US
    wall_seconds: float = 60.0
    _last_event_us: int | None = None
    _last_wall: float = 0.0

    def due(self, event_us: int, wall: float) -> bool:
        """True when a run is due; ``event_us`` the latest event time, ``wall`` a monotonic clock."""
        if self._last_event_us is None:
            self._last_event_us, self._last_wall = event_us, wall
            return False
        moved = event_us - self._last_event_us
        if moved >= self.always_after_us or (moved >= self.at_least_us and wall - self._last_wall >= self.wall_seconds):
            self._last_event_us, self._last_wall = event_us, wall
            return True
        return False


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
