"""The contribution counts and sums of one minute, queue and channel (``metrics_minute``).

Mergeable: summing the counts of any set of minutes gives the window's counts, and ratios are
taken only at the edge (``pipeline.core.metrics``). Durations are integer microseconds, so a
sum is the same whatever order its terms were added in.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

MICROS = 1_000_000


@dataclass(slots=True)
class Counts:
    offered: int = 0
    answered: int = 0
    answered_in_sl: int = 0
    abandoned: int = 0
    short_abandoned: int = 0
    wait_us_sum: int = 0
    handled: int = 0
    handle_us_sum: int = 0
    csat_responses: int = 0
    csat_positive: int = 0
    nps_responses: int = 0
    nps_promoters: int = 0
    nps_detractors: int = 0
    ces_responses: int = 0
    ces_sum: int = 0
    issues_judged: int = 0
    issues_fcr: int = 0
    issues_resolved: int = 0
    resolution_us_sum: int = 0

    def add(self, other: Counts, sign: int = 1) -> None:
        for name in FIELDS:
            setattr(self, name, getattr(self, name) + sign * getattr(other, name))

    def is_zero(self) -> bool:
        return not any(getattr(self, name) for name in FIELDS)

    def as_tuple(self) -> tuple[int, ...]:
        return tuple(getattr(self, name) for name in FIELDS)

    @classmethod
    def from_tuple(cls, values: tuple[int, ...] | list[int]) -> Counts:
        return cls(*values)


FIELDS: tuple[str, ...] = tuple(f.name for f in fields(Counts))
