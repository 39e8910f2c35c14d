"""The Grafana dashboard (provisioned by docker-compose) asks only for metrics a real worker exports."""

from __future__ import annotations

import json
import re
import urllib.request
from pathlib import Path

import pytest

from pipeline.simulation import Faults
from tests.gauges import simulated
from tests.worker_process import Deployment, counter

pytestmark = pytest.mark.integration
DASHBOARD = Path(__file__).resolve().parents[2] / "deploy" / "grafana" / "dashboards" / "ccpulse.json"
PROMETHEUS_OWN = {"up"}  # series Prometheus makes itself


def queries() -> list[str]:
    dashboard = json.loads(DASHBOARD.read_text())
    found = [target["expr"] for panel in dashboard["panels"] for target in panel.get("targets", [])]
    found += [variable["definition"] for variable in dashboard["templating"]["list"]]
    return found


def metric_names(query: str) -> set[str]:
    names = set(re.findall(r"\bccpulse_[a-z0-9_]+", query))
    names |= {name for name in PROMETHEUS_OWN if re.search(rf"\b{name}\{{", query)}
    return names


def test_every_panel_has_a_query_for_the_provisioned_datasource() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    for panel in dashboard["panels"]:
        if panel["type"] == "row":
            continue
        assert panel["targets"], panel["title"]
        assert panel["datasource"]["uid"] == "prometheus", panel["title"]  # deploy/grafana/provisioning/datasources


def test_every_query_uses_only_metrics_the_worker_exports(kafka_bootstrap: str, tmp_path: Path) -> None:
    deployment = Deployment(kafka_bootstrap, tmp_path, extra_env={"CCPULSE_CLOCK": "event"})
    # the first half of an hour's traffic: agents are on shift and contacts wait when it stops
    lines = simulated(1.0, seed=71, faults=Faults(duplicates=0.05, invalid_rate=0.02))
    lines = lines[: len(lines) // 2]
    exported = set(PROMETHEUS_OWN)
    with deployment.worker() as worker:
        produced = deployment.ccpulse("produce", "-", input_bytes=b"\n".join(lines) + b"\n")
        assert produced.returncode == 0, produced.stderr.decode()

        def settled(samples: dict) -> bool:  # type: ignore[type-arg]
            exported.update(name for name, _ in samples)
            return (
                counter(samples, "ccpulse_events_total", type="contact.offered") > 0
                and counter(samples, "ccpulse_sink_backlog_rows") == 0
            )

        samples = worker.settled(settled)
        # the JSON API for wallboards shows the gauges' own numbers (the event clock stands still now)
        with urllib.request.urlopen(f"{worker.url}/api/snapshot", timeout=5) as response:
            tiles = json.loads(response.read())["queues"]
        samples = worker.scrape()
    assert tiles
    for tile in tiles:
        labels = (("channel", tile["channel"]), ("queue", tile["queue"]), ("window", "today"))
        assert tile["service_level"]["today"] == samples.get(("ccpulse_service_level_ratio", labels))
        assert tile["waiting"] == samples.get(("ccpulse_queue_waiting", labels[:2]))
    asked = set().union(*(metric_names(q) for q in queries()))
    assert len(asked) >= 30  # the dashboard covers the KPIs and the pipeline's health
    assert asked <= exported, f"the dashboard asks for metrics no worker exports: {sorted(asked - exported)}"
