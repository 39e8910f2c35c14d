"""The contribution counts and sums of one minute, queue and channel (``metrics_minute``).

Mergeable: summing the counts of any set of minutes gives the window's counts, and ratios are
taken only at the edge (``pipeline.core.metrics``). Durations are integer microseconds, so a
sum is the same whatever order its terms were added in.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import Any

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
    # abandoned after short_abandon_seconds and within the service-level threshold (issue 23: a
    # definition may count them as met). Last, so that state written before it decodes as 0.
    abandoned_in_sl: int = 0
    # offered while the queue was closed (its business hours, holidays, closed dates): counted here
    # and, unless the queue counts them, nowhere else (not offered, answered or abandoned)
    offered_out_of_hours: int = 0
    # Σ hold_seconds of handled contacts, at ended_at (issue 22; part of handle_us_sum)
    hold_us_sum: int = 0
    # answered contacts an agent transferred (issue 22), at the earliest contact.transferred
    transferred: int = 0

    def add(self, other: Counts, sign: int = 1) -> None:
        """Add ``other`` (``sign=-1``: subtract it), field by field."""
        if sign == 1:
            _add(self, other)
        else:
            _subtract(self, other)

    def is_zero(self) -> bool:
        return not any(_values(self))

    def as_tuple(self) -> tuple[int, ...]:
        return _values(self)  # type: ignore[no-any-return]

    @classmethod
    def from_tuple(cls, values: tuple[int, ...] | list[int]) -> Counts:
        return cls(*values)


FIELDS: tuple[str, ...] = tuple(f.name for f in fields(Counts))
_values = operator.attrgetter(*FIELDS)


def _field_by_field(operation: str) -> Callable[[Counts, Counts], None]:
    # One statement per field, written out once here (as dataclasses does for its methods): the
    # board adds and subtracts minutes for every report it applies, a hot path of the worker.
    body = "\n".join(f"    mine.{name} {operation}= other.{name}" for name in FIELDS)
    namespace: dict[str, Any] = {}
    exec(f"def field_by_field(mine, other):\n{body}\n", namespace)  # noqa: S102 - fixed text, no input
    return namespace["field_by_field"]  # type: ignore[no-any-return]


_add = _field_by_field("+")
_subtract = _field_by_field("-")
