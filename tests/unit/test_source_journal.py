"""A converter's state across restarts (pipeline/sources/journal.py): the state saved after any
record — as a snapshot, or as a journal of the records since one — restored into a new converter,
gives the same events from there on as one converter that never stopped. For every format."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline.simulation import Simulation
from pipeline.sources import converter
from pipeline.sources.amazon_connect_out import contact_records
from pipeline.sources.asterisk_out import queue_log_lines
from pipeline.sources.genesys_out import detail_events
from pipeline.sources.journal import Journal
from pipeline.sources.twilio_out import callbacks

EVENTS = list(Simulation(datetime(2026, 11, 23, 8, 0, tzinfo=UTC), seed=11).events(timedelta(minutes=40)))
FORMATS = {
    "asterisk-queue-log": ["time,callid,queuename,agent,event,data1,data2,data3",
                           *(line.replace("|", ",") for line in queue_log_lines(EVENTS))],  # a table export
    "amazon-connect": list(contact_records(EVENTS)),
    "twilio-taskrouter": list(callbacks(EVENTS)),
    "genesys-cloud": list(detail_events(EVENTS)),
}  # fmt: skip


def outcomes(name: str, lines: list[str], restored: dict | None = None) -> list[tuple]:  # type: ignore[type-arg]
    source = converter(name, UTC)
    if restored is not None:
        source.restore(restored)
    return [(o.events, o.skipped, o.rejected) for o in map(source.line, lines)]


@pytest.mark.parametrize("name", sorted(FORMATS))
@settings(max_examples=15, deadline=None)
@given(share=st.floats(min_value=0, max_value=1))
def test_a_snapshot_restored_goes_on_exactly(name: str, share: float) -> None:
    lines = FORMATS[name]
    assert len(lines) > 100
    cut = round(share * len(lines))
    whole = outcomes(name, lines)
    first = converter(name, UTC)
    for line in lines[:cut]:
        first.line(line)
    saved = orjson.loads(orjson.dumps(first.snapshot()))
    assert outcomes(name, lines[cut:], saved) == whole[cut:]


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(cut=st.integers(min_value=0, max_value=len(FORMATS["twilio-taskrouter"])), every=st.integers(1, 60))
def test_a_journal_with_snapshots_rebuilds_the_state_and_the_positions(tmp_path: Path, cut: int, every: int) -> None:
    lines = FORMATS["twilio-taskrouter"]
    directory = tmp_path / f"j-{cut}-{every}"
    journal = Journal(directory, "twilio", compact_every=every)
    first = converter("twilio-taskrouter", UTC)
    journal.restore(first)
    for offset, line in enumerate(lines[:cut]):
        first.line(line)
        journal.append([(line, offset % 3, offset)], first)
    second = converter("twilio-taskrouter", UTC)
    positions = Journal(directory, "twilio", compact_every=every).restore(second)
    assert second.snapshot() == first.snapshot()
    assert positions == {
        p: max(o for o in range(cut) if o % 3 == p) for p in range(3) if any(o % 3 == p for o in range(cut))
    }
