"""Noticing a stuck stage: messages are waiting, yet nothing has been committed for a while.

A Faust consumer has been seen to go silent after a group-coordinator change (faust-streaming
issues #523, #532): the worker stays up, answers /metrics, and processes nothing. A retry inside
the process does not help; a restart does (every step is idempotent and the state is restored
from the changelogs). The worker asks :class:`StallWatch` once a second and exits when it names
a stage, so that its supervisor (systemd, Kubernetes, ``ccpulse up``) starts it again.
"""

from __future__ import annotations

from dataclasses import dataclass, field

SETTLE_FACTOR = 10  # a rebalance with its table recovery may take this many stall limits
SETTLE_FLOOR_SECONDS = 600.0  # and at least this long (a large changelog is read from its start)
QUIET_SECONDS = 10.0  # Kafka answers the lag's questions in milliseconds; this long is an outage


def kafka_quiet(asked: float, answered: float, silent: float | None) -> bool:
    """Whether Kafka was out of reach in a round of lag questions asked at ``asked`` and over at
    ``answered`` (monotonic seconds): the round took ``QUIET_SECONDS`` or more, or a stage's
    question has had no answer since ``silent`` seconds. A stage cannot commit without Kafka, so
    such time is an outage to ride out, not a stuck consumer: it is not counted towards a stall
    (measured 2026-12-07: a 150 s broker outage made the worker exit with code 3, "the consumer is
    stuck", the moment the broker answered again)."""
    return answered - asked >= QUIET_SECONDS or silent is not None


@dataclass
class StallWatch:
    limit_seconds: float  # 0: never
    _since: dict[str, tuple[int, float]] = field(default_factory=dict)  # stage -> (committed, since)
    _settling_since: float | None = None

    @property
    def settle_limit_seconds(self) -> float:
        return max(SETTLE_FLOOR_SECONDS, SETTLE_FACTOR * self.limit_seconds)

    def settled_too_long(self, settling: bool, now: float) -> bool:
        """A rebalance (or the table recovery after it) that never ends would keep resetting the
        stages' clocks, and hide a hang for good (seen once in CI: the worker stuck in Faust's
        partition-assignment callback); past ``settle_limit_seconds`` it is a stall itself."""
        if not settling:
            self._settling_since = None
            return False
        if self._settling_since is None:
            self._settling_since = now
        return self.limit_seconds > 0 and now - self._settling_since >= self.settle_limit_seconds

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
