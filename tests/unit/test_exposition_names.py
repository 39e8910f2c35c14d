"""Each collector's ``describe()`` names exactly the families its ``collect()`` yields, so that
``/metrics?name[]=…`` (prometheus_client's restricted registry) runs only the collectors of the
names asked for and still returns every sample of them."""

from __future__ import annotations

from collections import Counter
from zoneinfo import ZoneInfo

from prometheus_client import CollectorRegistry
from prometheus_client.registry import Collector

from pipeline.core.progress import PartitionProgress, StageProgress
from pipeline.core.targets import Targets
from pipeline.exposition import (
    BoardCollector,
    ChangelogWatchCollector,
    LagCollector,
    PipelineHealthCollector,
    SinkCollector,
    StateSizeCollector,
)
from pipeline.sink import SinkHealth
from tests.unit.test_queue_label_cap import NOW_US, board_with


def collectors(board_collector: type[BoardCollector] = BoardCollector) -> list[Collector]:
    board = board_with({"sales": (1, 2), "support": (0, 1)})
    progress = PartitionProgress(events_by_type=Counter({"contact.offered": 3}),
                                 invalid_by_reason=Counter({"bad_json": 1}))  # fmt: skip
    return [
        PipelineHealthCollector(lambda: progress, StageProgress, lambda: 4),
        board_collector(lambda: board, lambda: NOW_US, ZoneInfo("UTC"), Targets()),
        StateSizeCollector(lambda: {"contacts": 3}),
        LagCollector(lambda: {"ingest": 5, "board": 0}, lambda: 12.5, lambda: (7, 1.8e9)),
        SinkCollector(SinkHealth),
        ChangelogWatchCollector(lambda: {"ingest": 1, "issues": 0}),
    ]


def test_each_collector_describes_the_families_it_collects() -> None:
    for collector in collectors():
        collected = [(family.name, family.type) for family in collector.collect()]
        assert collected, type(collector).__name__
        assert sorted(collected) == sorted((family.name, family.type) for family in collector.describe())


class Counted(BoardCollector):
    calls = 0

    def collect(self):  # type: ignore[no-untyped-def]
        Counted.calls += 1
        return super().collect()


def test_a_named_scrape_runs_only_the_collectors_of_its_names_and_gets_all_their_samples() -> None:
    registry = CollectorRegistry(support_collectors_without_names=True)
    for collector in collectors(Counted):
        registry.register(collector)
    asked = ["ccpulse_consumer_lag", "ccpulse_events_total"]
    everything = [(s.name, s.labels, s.value) for family in registry.collect() for s in family.samples]
    Counted.calls = 0
    named = [(s.name, s.labels, s.value) for family in registry.restricted_registry(asked).collect()
             for s in family.samples]  # fmt: skip
    assert Counted.calls == 0  # the board's gauges were not computed for two counters
    assert sorted(map(repr, named)) == sorted(repr(sample) for sample in everything if sample[0] in asked)
    assert {name for name, _, _ in named} == set(asked)
