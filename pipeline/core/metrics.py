"""The metrics of METRICS.md from summed counts: ratios only here, at the edge.

A ratio or mean whose denominator is 0 has no value: None (the gauge is absent, the wallboard
shows a dash, SQL returns NULL).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from pipeline.core.counts import MICROS, Counts
from pipeline.core.targets import Target

METRICS_MD = Target(20, 0.8)  # the definition of METRICS.md: short abandons out, none met


def _ratio(numerator: float, denominator: float) -> float | None:
    return numerator / denominator if denominator else None


def service_level(c: Counts, definition: Target = METRICS_MD) -> float | None:
    """Answered within the threshold ÷ the contacts that count, by the queue's definition
    (docs/metrics.md): METRICS.md's leaves short abandons out of the denominator."""
    if definition.abandons == "excluded":
        return _ratio(c.answered_in_sl, c.answered)
    if definition.abandons == "all":
        met = c.abandoned_in_sl + c.short_abandoned if definition.abandons_met else 0
        return _ratio(c.answered_in_sl + met, c.answered + c.abandoned)
    met = c.abandoned_in_sl if definition.abandons_met else 0
    return _ratio(c.answered_in_sl + met, c.answered + c.abandoned - c.short_abandoned)


def answer_ratio(c: Counts) -> float | None:
    """応答率: answered ÷ offered (issue 23; each counted in the minute it happened)."""
    return _ratio(c.answered, c.offered)


def answered_in_sl_ratio(c: Counts) -> float | None:
    """時間内応答率: answered within the threshold ÷ offered."""
    return _ratio(c.answered_in_sl, c.offered)


def asa_seconds(c: Counts) -> float | None:
    return _ratio(c.wait_us_sum / MICROS, c.answered)


def abandon_ratio(c: Counts) -> float | None:
    return _ratio(c.abandoned - c.short_abandoned, c.answered + c.abandoned - c.short_abandoned)


def aht_seconds(c: Counts) -> float | None:
    return _ratio(c.handle_us_sum / MICROS, c.handled)


def csat_ratio(c: Counts) -> float | None:
    return _ratio(c.csat_positive, c.csat_responses)


def nps_score(c: Counts) -> float | None:
    return _ratio(100 * (c.nps_promoters - c.nps_detractors), c.nps_responses)


def hold_seconds(c: Counts) -> float | None:
    return _ratio(c.hold_us_sum / MICROS, c.handled)


def transfer_ratio(c: Counts) -> float | None:
    return _ratio(c.transferred, c.answered)


def ces_score(c: Counts) -> float | None:
    return _ratio(c.ces_sum, c.ces_responses)


def fcr_ratio(c: Counts) -> float | None:
    return _ratio(c.issues_fcr, c.issues_judged)


def art_seconds(c: Counts) -> float | None:
    return _ratio(c.resolution_us_sum / MICROS, c.issues_resolved)


# Prometheus name -> formula; the counts exported beside them are in COUNT_GAUGES.
RATIO_GAUGES = {
    "ccpulse_service_level_ratio": service_level,
    "ccpulse_answer_ratio": answer_ratio,
    "ccpulse_answered_in_sl_ratio": answered_in_sl_ratio,
    "ccpulse_asa_seconds": asa_seconds,
    "ccpulse_abandon_ratio": abandon_ratio,
    "ccpulse_aht_seconds": aht_seconds,
    "ccpulse_hold_seconds": hold_seconds,
    "ccpulse_csat_ratio": csat_ratio,
    "ccpulse_nps_score": nps_score,
    "ccpulse_ces_score": ces_score,
    "ccpulse_fcr_ratio": fcr_ratio,
    "ccpulse_art_seconds": art_seconds,
    "ccpulse_transfer_ratio": transfer_ratio,
}


def ratios(c: Counts, definition: Target = METRICS_MD) -> Iterator[tuple[str, float]]:
    """Every metric of ``c`` that has a value, by name; service level by the queue's definition."""
    for name, formula in RATIO_GAUGES.items():
        value = service_level(c, definition) if formula is service_level else formula(c)
        if value is not None:
            yield name, value


COUNT_GAUGES = {
    "ccpulse_offered": "offered",
    "ccpulse_answered": "answered",
    "ccpulse_answered_in_sl": "answered_in_sl",
    "ccpulse_abandoned": "abandoned",
    "ccpulse_short_abandoned": "short_abandoned",
    "ccpulse_handled": "handled",
    "ccpulse_offered_out_of_hours": "offered_out_of_hours",
    "ccpulse_transferred": "transferred",
}


# ------------------------------------------------------------------ written channels' backlog (issue 24)
WRITTEN_CHANNELS = ("email", "social", "sms")
HOUR_US = 3600 * MICROS
BACKLOG_AGES = (("lt_1h", 0, HOUR_US), ("1h_4h", HOUR_US, 4 * HOUR_US), ("4h_24h", 4 * HOUR_US, 24 * HOUR_US),
                ("ge_24h", 24 * HOUR_US, None))  # fmt: skip


def backlog(now_us: int, offered: list[int]) -> dict[str, int]:
    """Waiting contacts by how long they have waited: [low, high) per age band."""
    ages = [now_us - at for at in offered]
    return {name: sum(1 for age in ages if age >= low and (high is None or age < high))
            for name, low, high in BACKLOG_AGES}  # fmt: skip


def past_promise(now_us: int, offered: list[int], threshold_us: int,
                 waited: Callable[[int, int], int] = lambda start, end: end - start) -> int:  # fmt: skip
    """Waiting contacts whose wait exceeds the threshold (the channel's promise) now; ``waited``
    reads a wait as the threshold does (``Targets.waited_us``: business hours, if so set)."""
    return sum(1 for at in offered if waited(at, now_us) > threshold_us)
