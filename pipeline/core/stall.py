"""Noticing a stuck stage: messages are waiting, yet nothing has been committed for a while.

A Faust consumer has been seen to go silent after a group-coordinator change (faust-streaming
issues #523, #532): the worker stays up, answers /metrics, and processes nothing. A retry inside
the process does not help; a restart does (every step is idempotent and the state is restored
from the changelogs). The worker asks :class:`StallWatch` once a second and exits when it names
a stage, so that its supervisor (systemd, Kubernetes, ``ccpulse up``) starts it again.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class StallWatch:
    limit_seconds: float  # 0: never
    _since: dict[str, tuple[int, float]] = field(default_factory=dict)  # stage -> (committed, since)

    def observe(self, stage: str, waiting: int, committed: int, now: float) -> float:
        """Seconds the stage has been stuck (0 when it is not): ``waiting`` messages not yet
        committed, ``committed`` the sum of its committed offsets, ``now`` a monotonic clock."""
        last = self._since.get(stage)
        if waiting <= 0 or last is None or committed != last[0]:
            self._since[stage] = (committed, now)
            return 0.0
        return now - last[1]

    def reset(self, now: float) -> None:
        """Start every stage's clock again (after a rebalance or while tables are restored)."""
        self._since = {stage: (committed, now) for stage, (committed, _) in self._since.items()}

    def stuck(self, stage: str, waiting: int, committed: int, now: float) -> bool:
        return self.limit_seconds > 0 and self.observe(stage, waiting, committed, now) >= self.limit_seconds
