"""Prometheus exposition: a collector that reads a snapshot of the worker's state at scrape time.

Nothing here counts anything: the numbers come from the worker's tables (so they survive a
restart exactly); this module only names and labels them. The registry is passed in.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from pipeline.core.progress import PartitionProgress


class PipelineHealthCollector(Collector):
    """``ccpulse_events_total{type}``, ``ccpulse_events_invalid_total{reason}`` and progress."""

    def __init__(self, snapshot: Callable[[], PartitionProgress], partitions: Callable[[], int]) -> None:
        self._snapshot = snapshot
        self._partitions = partitions

    def collect(self) -> Iterator[Metric]:
        progress = self._snapshot()
        events = CounterMetricFamily("ccpulse_events", "Valid events processed, by event type.", labels=["type"])
        for event_type, count in sorted(progress.events_by_type.items()):
            events.add_metric([event_type], count)
        yield events
        invalid = CounterMetricFamily(
            "ccpulse_events_invalid",
            "Invalid messages sent to the dead-letter topic, by reason code.",
            labels=["reason"],
        )
        for reason, count in sorted(progress.invalid_by_reason.items()):
            invalid.add_metric([reason], count)
        yield invalid
        yield GaugeMetricFamily(
            "ccpulse_assigned_partitions",
            "Input-topic partitions this worker currently owns.",
            value=self._partitions(),
        )
