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

MINUTE_US = 60 * 1_000_000


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
