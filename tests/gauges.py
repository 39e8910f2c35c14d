"""Expected /metrics samples from the brute-force model, and a comparison that names every miss."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from pipeline.core.contract import Event, check
from pipeline.core.targets import Target, Targets
from pipeline.simulation import Faults, Simulation, inject
from tests.metrics_model import COUNT_FIELDS, TIMED, Expected, model
from tests.metrics_model import agent_list as agent_list_model

Sample = tuple[str, tuple[tuple[str, str], ...]]
COUNTS = {
    "ccpulse_offered": "offered",
    "ccpulse_answered": "answered",
    "ccpulse_answered_in_sl": "answered_in_sl",
    "ccpulse_abandoned": "abandoned",
    "ccpulse_short_abandoned": "short_abandoned",
    "ccpulse_handled": "handled",
    "ccpulse_offered_out_of_hours": "offered_out_of_hours",
    "ccpulse_transferred": "transferred",
}


def _ratio(numerator: float, denominator: float) -> float | None:
    return numerator / denominator if denominator else None


def _service_level(c: dict[str, int], target: Target) -> float | None:
    """The queue's definition (docs/metrics.md), written out case by case."""
    answered, abandoned, short, within = c["answered"], c["abandoned"], c["short_abandoned"], c["abandoned_in_sl"]
    met = target.abandons_met
    if target.abandons == "excluded":
        return _ratio(c["answered_in_sl"], answered)
    if target.abandons == "all":  # every abandon counts; a short one is within any threshold it is checked with
        return _ratio(c["answered_in_sl"] + (within + short if met else 0), answered + abandoned)
    return _ratio(c["answered_in_sl"] + (within if met else 0), answered + abandoned - short)


def expected_samples(expected: Expected, targets: Targets) -> dict[Sample, float]:
    samples: dict[Sample, float] = {}

    def put(name: str, value: float | None, **labels: str) -> None:
        if value is not None:
            samples[(name, tuple(sorted(labels.items())))] = float(value)

    for (queue, channel, window), c in expected.counts.items():
        labels = {"queue": queue, "channel": channel, "window": window}
        for name, field in COUNTS.items():
            put(name, c[field], **labels)
        denominator = c["answered"] + c["abandoned"] - c["short_abandoned"]
        put("ccpulse_service_level_ratio", _service_level(c, targets.for_queue(queue, channel)), **labels)
        put("ccpulse_answer_ratio", _ratio(c["answered"], c["offered"]), **labels)
        put("ccpulse_answered_in_sl_ratio", _ratio(c["answered_in_sl"], c["offered"]), **labels)
        put("ccpulse_asa_seconds", _ratio(c["wait_us_sum"] / 1e6, c["answered"]), **labels)
        put("ccpulse_abandon_ratio", _ratio(c["abandoned"] - c["short_abandoned"], denominator), **labels)
        put("ccpulse_aht_seconds", _ratio(c["handle_us_sum"] / 1e6, c["handled"]), **labels)
        put("ccpulse_hold_seconds", _ratio(c["hold_us_sum"] / 1e6, c["handled"]), **labels)
        put("ccpulse_transfer_ratio", _ratio(c["transferred"], c["answered"]), **labels)
        put("ccpulse_csat_ratio", _ratio(c["csat_positive"], c["csat_responses"]), **labels)
        put("ccpulse_nps_score", _ratio(100 * (c["nps_promoters"] - c["nps_detractors"]), c["nps_responses"]), **labels)
        put("ccpulse_ces_score", _ratio(c["ces_sum"], c["ces_responses"]), **labels)
        put("ccpulse_fcr_ratio", _ratio(c["issues_fcr"], c["issues_judged"]), **labels)
        put("ccpulse_art_seconds", _ratio(c["resolution_us_sum"] / 1e6, c["issues_resolved"]), **labels)
        target = targets.for_queue(queue, channel)
        put("ccpulse_service_level_target_ratio", target.target_ratio, queue=queue, channel=channel)
        put("ccpulse_service_level_threshold_seconds", target.threshold_seconds, queue=queue, channel=channel)
    for (queue, channel), (count, oldest_us) in expected.waiting.items():
        put("ccpulse_queue_waiting", count, queue=queue, channel=channel)
        put("ccpulse_queue_oldest_wait_seconds", None if oldest_us is None else oldest_us / 1e6,
            queue=queue, channel=channel)  # fmt: skip
    for (queue, state), count in expected.agents.items():
        put("ccpulse_agents", count, queue=queue, state=state)
    hour = 3600 * 1_000_000
    for queue, channel in expected.waiting:
        if channel not in ("email", "social", "sms"):
            continue
        waits = expected.waits.get((queue, channel), [])
        for age, low, high in (("lt_1h", 0, hour), ("1h_4h", hour, 4 * hour), ("4h_24h", 4 * hour, 24 * hour),
                               ("ge_24h", 24 * hour, 10**30)):  # fmt: skip
            put("ccpulse_backlog", sum(low <= w < high for w in waits), queue=queue, channel=channel, age=age)
        promise = targets.for_queue(queue, channel).threshold_seconds * 1_000_000
        promised = expected.promise_waits.get((queue, channel), [])
        put("ccpulse_past_promise", sum(w > promise for w in promised), queue=queue, channel=channel)
    for (queue, window), (available, on_contact, after_contact_work, away) in expected.agent_time.items():
        for state, us in zip(TIMED, (available, on_contact, after_contact_work, away), strict=True):
            put("ccpulse_agent_state_seconds", us / 1e6, queue=queue, state=state, window=window)
        working = on_contact + after_contact_work
        put("ccpulse_agent_occupancy_ratio", _ratio(working, working + available), queue=queue, window=window)
        put("ccpulse_agent_utilisation_ratio", _ratio(working + available, working + available + away), queue=queue,
            window=window)  # fmt: skip
    put("ccpulse_events_duplicate_total", expected.duplicates)
    put("ccpulse_events_conflict_total", expected.conflicts)
    return samples


_EVERYTHING = Expected(
    counts={("q", "voice", "15m"): dict.fromkeys(COUNT_FIELDS, 1)},
    waiting={("q", "voice"): (1, 1), ("q", "email"): (0, None)},
    agents={("q", "away"): 1}, agent_time={("q", "15m"): [1, 1, 1, 1]},
)  # fmt: skip
MODEL_NAMES = {name for name, _ in expected_samples(_EVERYTHING, Targets())}  # every name the model speaks for


def differences(actual: dict[Sample, float], expected: dict[Sample, float]) -> list[str]:
    """Every sample of a modelled metric that is missing, extra or different."""
    problems = []
    relevant = {key: value for key, value in actual.items() if key[0] in MODEL_NAMES}
    for key in sorted(set(relevant) | set(expected)):
        got, want = relevant.get(key), expected.get(key)
        if got is None or want is None or not math.isclose(got, want, rel_tol=1e-9, abs_tol=1e-9):
            problems.append(f"{key[0]}{dict(key[1])}: got {got}, expected {want}")
    return problems


def simulated(hours: float, seed: int, faults: Faults, start: datetime | None = None) -> list[bytes]:
    start = start or datetime(2026, 11, 23, 8, 0, tzinfo=UTC)
    events = Simulation(start, seed=seed, scale=0.5).events(timedelta(hours=hours))
    return [raw for _, raw in inject(events, faults, seed)]


UTC_ZONE = ZoneInfo("UTC")


def model_of(lines: list[bytes], targets: Targets, zone: ZoneInfo = UTC_ZONE) -> tuple[Expected, int]:
    """The model of what a worker with the event clock shows once it has read ``lines``."""
    messages = messages_of(lines)
    now = max(event.at for event, _ in messages)
    return model(messages, now, zone, targets), now


def messages_of(lines: list[bytes]) -> list[tuple[Event, str]]:
    """The valid events of ``lines``, each as one message."""
    messages: list[tuple[Event, str]] = []
    for number, line in enumerate(lines):
        verdict = check(line)
        if verdict.event is not None:
            messages.append((verdict.event, f"line:{number}"))
    return messages


def agents_differences(shown: dict, lines: list[bytes], targets: Targets, zone: ZoneInfo = UTC_ZONE) -> list[str]:  # type: ignore[type-arg]
    """Every agent of ``GET /api/agents`` (``shown``) that differs from the model (times to the µs)."""
    messages = messages_of(lines)
    now = max(event.at for event, _ in messages)
    expected = agent_list_model(messages, now, zone, targets)
    got = {each["agent_id"]: each for each in shown["agents"]}
    problems = [f"agent {name}: missing" for name in expected.keys() - got.keys()]
    problems += [f"agent {name}: not in the model" for name in got.keys() - expected.keys()]
    for name in sorted(expected.keys() & got.keys()):
        want, each = expected[name], got[name]
        contact = want["contact"]
        working = want["spent"][1] + want["spent"][2]
        wanted = {
            "state": want["state"], "queues": want["queues"], "reason": want["reason"],
            "since": None if want["since"] is None else want["since"] / 1e6,
            "contact": None if contact is None else {"contact_id": contact[0], "queue": contact[1],
                                                     "channel": contact[2], "seconds": (now - contact[3]) / 1e6},
            "today": {"handled": want["handled"],
                      "aht_seconds": want["handle_us"] / 1e6 / want["handled"] if want["handled"] else None,
                      "occupancy": _ratio(working, working + want["spent"][0])},
        }  # fmt: skip
        for field, value in wanted.items():
            if not _same(each.get(field), value):
                problems.append(f"agent {name} {field}: got {each.get(field)}, expected {value}")
    return problems


def _same(got: object, want: object) -> bool:
    if isinstance(got, dict) and isinstance(want, dict):
        return got.keys() == want.keys() and all(_same(got[k], want[k]) for k in got)
    if isinstance(got, float | int) and isinstance(want, float | int) and not isinstance(got, bool):
        return math.isclose(got, want, rel_tol=1e-9, abs_tol=1e-6)
    return got == want
