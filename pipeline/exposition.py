"""Prometheus exposition: collectors that read the worker's state at scrape time.

Nothing here counts anything: the numbers come from the worker's tables and board (so they
survive a restart exactly); this module only names and labels them. The registry is passed in.
Names are the ones METRICS.md fixes; a ratio whose denominator is 0 is absent.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Iterator
from zoneinfo import ZoneInfo

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from pipeline.core.agent_time import TIMED
from pipeline.core.agent_view import occupancy, queue_time, utilisation
from pipeline.core.board import Board
from pipeline.core.counts import Counts
from pipeline.core.metrics import COUNT_GAUGES, RATIO_GAUGES, WRITTEN_CHANNELS, backlog, past_promise, ratios
from pipeline.core.progress import PartitionProgress, StageProgress
from pipeline.core.targets import Targets
from pipeline.sink import SinkHealth

HELP = {
    "ccpulse_offered": "Contacts offered in the window (attributed at offered_at).",
    "ccpulse_answered": "Contacts answered in the window (attributed at answered_at).",
    "ccpulse_answered_in_sl": "Contacts answered within the service-level threshold.",
    "ccpulse_abandoned": "Contacts abandoned in the window, short abandons included.",
    "ccpulse_short_abandoned": "Contacts abandoned within short_abandon_seconds of being offered.",
    "ccpulse_handled": "Answered contacts that ended in the window.",
    "ccpulse_offered_out_of_hours": "Contacts offered while their queue was closed (business hours, holidays).",
    "ccpulse_service_level_ratio": "Service level by the queue's definition (default: answered in SL / "
    "(answered + abandoned - short abandoned)).",
    "ccpulse_answer_ratio": "Answered / offered (応答率, 응답률).",
    "ccpulse_answered_in_sl_ratio": "Answered within the service-level threshold / offered (時間内応答率).",
    "ccpulse_asa_seconds": "Average speed of answer: mean wait of answered contacts.",
    "ccpulse_abandon_ratio": "(Abandoned - short abandoned) / (answered + abandoned - short abandoned).",
    "ccpulse_aht_seconds": "Average handle time: mean talk + hold + after-contact work of handled contacts.",
    "ccpulse_transferred": "Answered contacts an agent transferred, at the transfer's time.",
    "ccpulse_transfer_ratio": "Transferred / answered.",
    "ccpulse_hold_seconds": "Mean hold time of handled contacts (part of their handle time).",
    "ccpulse_csat_ratio": "Share of CSAT responses of 4 or 5.",
    "ccpulse_nps_score": "Net promoter score: 100 x (promoters - detractors) / responses.",
    "ccpulse_ces_score": "Mean customer effort score (1-7, higher is easier).",
    "ccpulse_fcr_ratio": "Issues resolved on first contact / issues judged (provisional for fcr_window_days).",
    "ccpulse_art_seconds": "Average resolution time of issues resolved in the window.",
}
HELP |= {
    "ccpulse_agent_state_seconds": "Time agents serving the queue spent in each state in the window "
    "(offline not timed).",
    "ccpulse_agent_occupancy_ratio": "Occupancy (占有率): time on contacts and in after-contact work / "
    "that + available.",
    "ccpulse_agent_utilisation_ratio": "Utilisation (稼働率): time on contacts, in after-contact work and available / "
    "time in every state but offline.",
}
HELP |= {
    "ccpulse_backlog": "Written channels' contacts waiting now, by how long: lt_1h, 1h_4h, 4h_24h, ge_24h.",
    "ccpulse_past_promise": "Written channels' contacts waiting longer than the channel's threshold (its promise) now.",
}
AGENT_RATIOS = {"ccpulse_agent_occupancy_ratio": occupancy, "ccpulse_agent_utilisation_ratio": utilisation}
WINDOW_LABELS = ["queue", "channel", "window"]


def described(gauges: Iterable[str] = (), counters: Iterable[str] = ()) -> list[Metric]:
    """A collector's families without samples, for its ``describe()``: the registry then knows
    which collector yields which names, and ``/metrics?name[]=…`` runs only the collectors of the
    names asked for (a probe asking for one counter does not compute every board gauge).
    ``tests/unit/test_exposition_names.py`` checks each list against what ``collect()`` yields."""
    return [GaugeMetricFamily(name, "") for name in gauges] + [CounterMetricFamily(name, "") for name in counters]


class PipelineHealthCollector(Collector):
    """Events, dead letters, duplicates, conflicts: counters that survive restarts exactly."""

    def __init__(
        self,
        ingest: Callable[[], PartitionProgress],
        contacts: Callable[[], StageProgress],
        partitions: Callable[[], int],
    ) -> None:
        self._ingest = ingest
        self._contacts = contacts
        self._partitions = partitions

    def describe(self) -> list[Metric]:
        counters = ("ccpulse_events", "ccpulse_events_invalid", "ccpulse_events_keyed_otherwise",
                    "ccpulse_events_duplicate", "ccpulse_events_conflict")  # fmt: skip
        return described(["ccpulse_assigned_partitions"], counters)

    def collect(self) -> Iterator[Metric]:
        progress = self._ingest()
        events = CounterMetricFamily("ccpulse_events", "Valid events processed, by event type.", labels=["type"])
        for event_type, count in sorted(progress.events_by_type.items()):
            events.add_metric([event_type], count)
        yield events
        invalid = CounterMetricFamily(
            "ccpulse_events_invalid", "Invalid messages sent to the dead-letter topic, by reason code.",
            labels=["reason"],
        )  # fmt: skip
        for reason, count in sorted(progress.invalid_by_reason.items()):
            invalid.add_metric([reason], count)
        yield invalid
        yield CounterMetricFamily(
            "ccpulse_events_keyed_otherwise",
            "Valid events whose Kafka key is not their contact_id (agent events: agent_id): a producer "
            "keying otherwise (docs/sources.md).",
            value=progress.keyed_otherwise,
        )  # fmt: skip
        health = self._contacts()
        yield CounterMetricFamily(
            "ccpulse_events_duplicate", "Events that repeat an earlier one (same contact and type); one counts.",
            value=health.duplicates,
        )  # fmt: skip
        yield CounterMetricFamily(
            "ccpulse_events_conflict", "Contacts both answered and abandoned (the earlier event counts).",
            value=health.conflicts,
        )  # fmt: skip
        yield GaugeMetricFamily(
            "ccpulse_assigned_partitions",
            "Input-topic partitions this worker currently owns.",
            value=self._partitions(),
        )


OTHER_QUEUES = "_other"  # the one Prometheus series that queues past the label cap are folded into


def shown_queue(queues: set[str], limit: int) -> Callable[[str], str]:
    """The label each queue gets: its own name for the first ``limit`` names (in name order, so the
    choice is stable), ``_other`` for the rest. Prometheus only; ClickHouse keeps the real names."""
    kept = set(sorted(queues)[:limit])
    return lambda queue: queue if queue in kept else OTHER_QUEUES


class BoardCollector(Collector):
    """Windowed counts and metrics, live queue state, agents and targets from the board.

    Hazard: every queue name is a label value, and a producer that invents queue names would
    create series without bound. Past ``max_queues`` distinct names, the rest are folded into one
    ``queue="_other"`` series (counts summed, ratios from the sums, the oldest wait the largest);
    ``ccpulse_queues_folded`` says how many names are folded now."""

    def __init__(self, board: Callable[[], Board], now_us: Callable[[], int], zone: ZoneInfo, targets: Targets,
                 max_queues: int = 500) -> None:  # fmt: skip
        self._board = board
        self._now_us = now_us
        self._zone = zone
        self._targets = targets
        self._max_queues = max_queues

    def describe(self) -> list[Metric]:
        return described([
            *COUNT_GAUGES, *RATIO_GAUGES, "ccpulse_queue_waiting", "ccpulse_queue_oldest_wait_seconds",
            "ccpulse_backlog", "ccpulse_past_promise", "ccpulse_agents", "ccpulse_agent_state_seconds",
            *AGENT_RATIOS, "ccpulse_service_level_target_ratio", "ccpulse_service_level_threshold_seconds",
            "ccpulse_queues_folded", "ccpulse_clock_seconds", "ccpulse_board_reports",
        ])  # fmt: skip

    def collect(self) -> Iterator[Metric]:
        board = self._board()
        now = self._now_us()
        day_of = lambda queue: self._targets.day_for(queue, self._zone)  # noqa: E731
        windowed = list(board.window_counts(now, day_of))
        waiting_now = list(board.waiting(now))
        agents_now = list(board.agents_by_state())
        agent_time = list(queue_time(board, now, day_of))
        queues = {q for q, *_ in windowed} | {q for q, *_ in waiting_now} | {q for q, *_ in agents_now}
        queues |= {q for q, *_ in agent_time}
        label = shown_queue(queues, self._max_queues)
        lines: set[tuple[str, str]] = set()
        yield from self._windowed(windowed, label, lines)
        yield from self._waiting(waiting_now, label, lines)
        yield from self._backlog(board, now, label)
        yield from self._agents(agents_now, agent_time, label)
        yield from self._targets_in_force(lines, queues)
        yield GaugeMetricFamily("ccpulse_queues_folded",
                                "Queue names folded into queue=\"_other\" (past CCPULSE_MAX_QUEUE_LABELS).",
                                value=sum(1 for q in queues if label(q) == OTHER_QUEUES))  # fmt: skip
        if now:
            yield GaugeMetricFamily("ccpulse_clock_seconds", "The worker's now (Unix seconds).", value=now / 1_000_000)
        yield GaugeMetricFamily(
            "ccpulse_board_reports",
            "Contributions on this worker's board: issue keys' reports and the contacts passes' partials "
            "(per input partition and queue, channel and minute, or queue).",
            value=len(board.reports) + len(board.partials),
        )  # fmt: skip

    def _windowed(self, windowed: list[tuple[str, str, str, Counts]], label: Callable[[str], str],
                  lines: set[tuple[str, str]]) -> Iterator[Metric]:  # fmt: skip
        sums: dict[tuple[str, str, str], Counts] = {}
        for queue, channel, window, summed in windowed:
            total = sums.setdefault((label(queue), channel, window), Counts())
            total.add(summed)
        counts = {name: GaugeMetricFamily(name, HELP[name], labels=WINDOW_LABELS) for name in COUNT_GAUGES}
        gauges = {name: GaugeMetricFamily(name, HELP[name], labels=WINDOW_LABELS) for name in RATIO_GAUGES}
        for (queue, channel, window), summed in sorted(sums.items()):
            lines.add((queue, channel))
            labels = [queue, channel, window]
            for name, field in COUNT_GAUGES.items():
                counts[name].add_metric(labels, getattr(summed, field))
            for name, value in ratios(summed, self._targets.for_queue(queue, channel)):
                gauges[name].add_metric(labels, value)
        yield from counts.values()
        yield from gauges.values()

    @staticmethod
    def _waiting(waiting_now: list[tuple[str, str, int, int | None]], label: Callable[[str], str],
                 lines: set[tuple[str, str]]) -> Iterator[Metric]:  # fmt: skip
        waiting = GaugeMetricFamily("ccpulse_queue_waiting", "Contacts waiting now (offered at most 7 days ago).",
                                    labels=["queue", "channel"])  # fmt: skip
        oldest = GaugeMetricFamily(
            "ccpulse_queue_oldest_wait_seconds", "How long the oldest waiting contact has waited.",
            labels=["queue", "channel"],
        )  # fmt: skip
        live: dict[tuple[str, str], tuple[int, int | None]] = {}
        for queue, channel, count, oldest_us in waiting_now:
            key = (label(queue), channel)
            before, longest = live.get(key, (0, None))
            live[key] = (before + count, max(longest or 0, oldest_us) if oldest_us is not None else longest)
        for (queue, channel), (count, oldest_us) in sorted(live.items()):
            lines.add((queue, channel))
            waiting.add_metric([queue, channel], count)
            if oldest_us is not None:
                oldest.add_metric([queue, channel], oldest_us / 1_000_000)
        yield waiting
        yield oldest

    def _backlog(self, board: Board, now: int, label: Callable[[str], str]) -> Iterator[Metric]:
        """Written channels' waiting contacts by age, and those past the channel's promise (issue 24)."""
        bands: dict[tuple[str, str], dict[str, int]] = {}
        past: dict[tuple[str, str], int] = {}
        for queue, channel, offered in board.waiting_since(now):
            if channel not in WRITTEN_CHANNELS:
                continue
            key = (label(queue), channel)
            for age, count in backlog(now, offered).items():
                bands.setdefault(key, {}).setdefault(age, 0)
                bands[key][age] += count
            past[key] = past.get(key, 0) + past_promise(
                now,
                offered,
                self._targets.for_queue(queue, channel).threshold_us,
                functools.partial(self._targets.waited_us, queue, channel),
            )
        by_age = GaugeMetricFamily("ccpulse_backlog", HELP["ccpulse_backlog"], labels=["queue", "channel", "age"])
        promise = GaugeMetricFamily("ccpulse_past_promise", HELP["ccpulse_past_promise"], labels=["queue", "channel"])
        for (queue, channel), counts in sorted(bands.items()):
            for age, count in counts.items():
                by_age.add_metric([queue, channel, age], count)
            promise.add_metric([queue, channel], past[(queue, channel)])
        yield by_age
        yield promise

    @staticmethod
    def _agents(agents_now: list[tuple[str, str, int]], agent_time: list[tuple[str, str, list[int]]],
                label: Callable[[str], str]) -> Iterator[Metric]:  # fmt: skip
        agents = GaugeMetricFamily("ccpulse_agents", "Agents whose latest state is this one, per queue they serve.",
                                   labels=["queue", "state"])  # fmt: skip
        by_state: dict[tuple[str, str], int] = {}
        for queue, state, count in agents_now:
            by_state[(label(queue), state)] = by_state.get((label(queue), state), 0) + count
        for (queue, state), count in sorted(by_state.items()):
            agents.add_metric([queue, state], count)
        yield agents
        spent: dict[tuple[str, str], list[int]] = {}
        for queue, window, seconds in agent_time:
            total = spent.setdefault((label(queue), window), [0] * len(seconds))
            spent[(label(queue), window)] = [a + b for a, b in zip(total, seconds, strict=True)]
        state_seconds = GaugeMetricFamily("ccpulse_agent_state_seconds", HELP["ccpulse_agent_state_seconds"],
                                          labels=["queue", "state", "window"])  # fmt: skip
        shares = {name: GaugeMetricFamily(name, HELP[name], labels=["queue", "window"]) for name in AGENT_RATIOS}
        for (queue, window), seconds in sorted(spent.items()):
            if not any(seconds):
                continue  # no agent time in the window: no series (as no ratio)
            for state, us in zip(TIMED, seconds, strict=True):
                state_seconds.add_metric([queue, state, window], us / 1_000_000)
            for name, formula in AGENT_RATIOS.items():
                value = formula(seconds)
                if value is not None:
                    shares[name].add_metric([queue, window], value)
        yield state_seconds
        yield from shares.values()

    def _targets_in_force(self, lines: set[tuple[str, str]], queues: set[str]) -> Iterator[Metric]:
        target = GaugeMetricFamily("ccpulse_service_level_target_ratio", "The service-level target in force.",
                                   labels=["queue", "channel"])  # fmt: skip
        threshold = GaugeMetricFamily("ccpulse_service_level_threshold_seconds",
                                      "Answered within this many seconds counts as in service level.",
                                      labels=["queue", "channel"])  # fmt: skip
        for queue, channel in sorted(lines):
            if queue == OTHER_QUEUES and OTHER_QUEUES not in queues:
                continue  # folded queues have targets of their own: none for the fold
            effective = self._targets.for_queue(queue, channel)
            target.add_metric([queue, channel], effective.target_ratio)
            threshold.add_metric([queue, channel], effective.threshold_seconds)
        yield target
        yield threshold


class StateSizeCollector(Collector):
    """Keys held in each state table: the figure to watch for memory."""

    def __init__(self, sizes: Callable[[], dict[str, int]]) -> None:
        self._sizes = sizes

    def describe(self) -> list[Metric]:
        return described(["ccpulse_state_keys"])

    def collect(self) -> Iterator[Metric]:
        keys = GaugeMetricFamily("ccpulse_state_keys", "Keys in each state table of this worker.", labels=["table"])
        for table, size in sorted(self._sizes().items()):
            keys.add_metric([table], size)
        yield keys


class LagCollector(Collector):
    """Per stage, the messages of this worker's partitions not yet processed and committed; the
    rounds of that measure in which every stage answered, and when the latest began (the lag holds
    its last round's value: a reader who must know it is newer than something counts rounds); and
    how long Kafka has left the worker's questions unanswered (0 while it answers)."""

    def __init__(self, lags: Callable[[], dict[str, int]], kafka_silent: Callable[[], float | None],
                 rounds: Callable[[], tuple[int, float]]) -> None:  # fmt: skip
        self._lags = lags
        self._kafka_silent = kafka_silent
        self._rounds = rounds

    def describe(self) -> list[Metric]:
        gauges = ["ccpulse_consumer_lag", "ccpulse_consumer_lag_asked_time_seconds", "ccpulse_kafka_silent_seconds"]
        return described(gauges, ["ccpulse_consumer_lag_rounds"])

    def collect(self) -> Iterator[Metric]:
        lag = GaugeMetricFamily(
            "ccpulse_consumer_lag", "Messages not yet processed and committed, per pipeline stage.",
            labels=["stage"],
        )  # fmt: skip
        for stage, messages in sorted(self._lags().items()):
            lag.add_metric([stage], messages)
        yield lag
        rounds, asked_at = self._rounds()
        yield CounterMetricFamily(
            "ccpulse_consumer_lag_rounds",
            "Rounds of ccpulse_consumer_lag (one a second) in which every stage's lag was measured.",
            value=rounds,
        )
        yield GaugeMetricFamily(
            "ccpulse_consumer_lag_asked_time_seconds",
            "When the latest of those rounds began (Unix time; 0: none yet).",
            value=asked_at,
        )
        yield GaugeMetricFamily("ccpulse_kafka_silent_seconds",
                                "Seconds Kafka has left this worker's questions unanswered (0: it answers).",
                                value=self._kafka_silent() or 0.0)  # fmt: skip


class ChangelogWatchCollector(Collector):
    """Per stage that watches its changelogs (``StageRunner.watches_changelogs``), the partitions it
    took over again because another writer had appended to their changelog: a worker frozen past
    its group session that ran again (docs/operations.md)."""

    def __init__(self, counts: Callable[[], dict[str, int]]) -> None:
        self._counts = counts

    def describe(self) -> list[Metric]:
        return described([], ["ccpulse_changelog_taken_over_again"])

    def collect(self) -> Iterator[Metric]:
        again = CounterMetricFamily(
            "ccpulse_changelog_taken_over_again",
            "Partitions taken over again from their changelog because another writer had appended to it "
            "(a worker frozen past its group session that ran again), per stage.",
            labels=["stage"],
        )  # fmt: skip
        for stage, count in sorted(self._counts().items()):
            again.add_metric([stage], count)
        yield again


class SinkCollector(Collector):
    """The ClickHouse sink: what it wrote, what waits, and whether it is failing."""

    def __init__(self, health: Callable[[], SinkHealth]) -> None:
        self._health = health

    def describe(self) -> list[Metric]:
        gauges = ("ccpulse_sink_backlog_rows", "ccpulse_sink_last_success_timestamp_seconds", "ccpulse_sink_failing",
                  "ccpulse_sink_blocked")  # fmt: skip
        return described(gauges, ["ccpulse_sink_rows_written", "ccpulse_sink_errors"])

    def collect(self) -> Iterator[Metric]:
        health = self._health()
        written = CounterMetricFamily("ccpulse_sink_rows_written", "Rows written to ClickHouse, by table.",
                                      labels=["table"])  # fmt: skip
        for table, rows in sorted(health.rows_written.items()):
            written.add_metric([table], rows)
        yield written
        yield GaugeMetricFamily("ccpulse_sink_backlog_rows", "Rows waiting to be written to ClickHouse.",
                                value=health.backlog_rows)  # fmt: skip
        yield CounterMetricFamily("ccpulse_sink_errors", "Failed ClickHouse writes (each is retried).",
                                  value=health.errors)  # fmt: skip
        yield GaugeMetricFamily("ccpulse_sink_last_success_timestamp_seconds",
                                "When a ClickHouse write last succeeded (Unix seconds; 0: not yet).",
                                value=health.last_success)  # fmt: skip
        yield GaugeMetricFamily("ccpulse_sink_failing", "1 while ClickHouse writes fail (they are retried).",
                                value=int(health.failing))  # fmt: skip
        yield GaugeMetricFamily("ccpulse_sink_blocked",
                                "1 while the stages wait for the sink (backlog full: consumption paused).",
                                value=int(health.blocked))  # fmt: skip
