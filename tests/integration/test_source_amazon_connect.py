"""Amazon Connect contact records through the real broker and worker: the simulated center written
as contact records (``ccpulse simulate --as amazon-connect``), sent with ``ccpulse produce --from
amazon-connect``, gives exactly the gauges that the model computes from the converted events."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest

from pipeline.core.targets import Targets
from pipeline.simulation import Simulation
from pipeline.sources.amazon_connect import ContactRecords
from pipeline.sources.amazon_connect_out import contact_records
from tests.gauges import expected_samples, model_of
from tests.integration.test_metrics_end_to_end import wait_until_exact
from tests.worker_process import Deployment

pytestmark = pytest.mark.integration


def test_contact_records_give_the_gauges_of_their_contacts(kafka_bootstrap: str, tmp_path: Path) -> None:
    events = Simulation(datetime(2026, 11, 23, 8, 0, tzinfo=UTC), seed=17, scale=0.5).events(timedelta(hours=2))
    records = list(contact_records(events))
    source = ContactRecords()
    converted = [orjson.dumps(event) for record in records for event in source.line(record).events]
    assert len(records) > 100 and len(converted) > 2 * len(records)
    expected, _ = model_of(converted, Targets())
    deployment = Deployment(kafka_bootstrap, tmp_path, extra_env={"CCPULSE_CLOCK": "event"})
    with deployment.worker() as worker:
        produced = deployment.ccpulse("produce", "--from", "amazon-connect", "-",
                                      input_bytes="\n".join(records).encode() + b"\n")  # fmt: skip
        assert produced.returncode == 0, produced.stderr.decode()
        assert f"{len(records):,} converted" in produced.stderr.decode()
        wait_until_exact([worker], expected_samples(expected, Targets()))
        assert worker.scrape()[("ccpulse_events_keyed_otherwise_total", ())] == 0  # keyed by contact
