"""The Prometheus alert rules (deploy/prometheus/rules/) with Prometheus' own promtool: syntax, and
unit tests (deploy/prometheus/tests/) in which every rule fires, stays quiet and resolves."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml

from tests.debian_tools import debian_tool

PROMETHEUS = Path(__file__).resolve().parents[2] / "deploy" / "prometheus"
RULE_FILES = sorted((PROMETHEUS / "rules").glob("*.yml"))
TEST_FILES = sorted((PROMETHEUS / "tests").glob("*_test.yml"))


def promtool() -> str:
    return debian_tool("promtool", "prometheus")


def rules() -> list[dict]:  # type: ignore[type-arg]
    return [
        rule for path in RULE_FILES for group in yaml.safe_load(path.read_text())["groups"] for rule in group["rules"]
    ]


def test_the_rules_are_valid_prometheus_rules() -> None:
    checked = subprocess.run([promtool(), "check", "rules", *map(str, RULE_FILES)], capture_output=True, text=True)
    assert checked.returncode == 0, checked.stdout + checked.stderr


@pytest.mark.parametrize("test_file", TEST_FILES, ids=lambda p: p.name)
def test_every_rule_fires_stays_quiet_and_resolves_under_promtool(test_file: Path) -> None:
    tested = subprocess.run([promtool(), "test", "rules", test_file.name], capture_output=True, text=True,
                            cwd=test_file.parent)  # fmt: skip
    assert tested.returncode == 0, tested.stdout + tested.stderr


def test_every_rule_is_tested_and_tells_the_on_call_lead_what_to_do() -> None:
    tested = {case["alertname"] for path in TEST_FILES for test in yaml.safe_load(path.read_text())["tests"]
              for case in test.get("alert_rule_test", [])}  # fmt: skip
    for rule in rules():
        name = rule["alert"]
        assert name in tested, f"{name} has no promtool test"
        assert rule.get("for"), f"{name} has no for: (it would flap)"
        assert rule["labels"]["severity"] in ("warning", "critical"), name
        assert {"summary", "description", "runbook"} <= set(rule["annotations"]), name
        anchor = rule["annotations"]["runbook"].split("#", 1)[1]
        operations = (PROMETHEUS.parents[1] / "docs" / "operations.md").read_text().lower()
        assert f"### {name.lower()}" in operations, f"docs/operations.md has no section for {name} (#{anchor})"


ALERTMANAGER = PROMETHEUS.parent / "alertmanager" / "alertmanager.yml"


def amtool() -> str:
    return debian_tool("amtool", "prometheus-alertmanager")


@pytest.mark.parametrize(
    ("labels", "receiver"),
    [
        (["severity=critical", "alertname=ServiceLevelFarBelowTarget", "queue=billing"], "on-call"),
        (["severity=critical", "alertname=WorkerDown", "instance=w1"], "on-call"),
        (["severity=critical", "alertname=KafkaUnreachable", "instance=w1"], "on-call"),
        (["severity=warning", "alertname=ServiceLevelBelowTarget", "queue=billing"], "supervisors"),
        (["severity=warning", "alertname=ClickHouseSinkBacklogged", "instance=w1"], "platform"),
        (["severity=warning", "alertname=DeadLettersRising", "reason=schema"], "platform"),
    ],
)
def test_alertmanager_routes_by_severity_and_kind(labels: list[str], receiver: str) -> None:
    tool = amtool()
    checked = subprocess.run([tool, "check-config", str(ALERTMANAGER)], capture_output=True, text=True)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    routed = subprocess.run([tool, "config", "routes", "test", f"--config.file={ALERTMANAGER}", *labels],
                            capture_output=True, text=True)  # fmt: skip
    assert routed.stdout.strip() == receiver, routed.stdout + routed.stderr


def test_every_alert_has_a_route_that_knows_its_severity() -> None:
    severities = {rule["labels"]["severity"] for rule in rules()}
    config = yaml.safe_load(ALERTMANAGER.read_text())
    routed = " ".join(" ".join(route.get("matchers", [])) for route in config["route"]["routes"])
    for severity in severities - {"warning"}:  # warnings fall through to the default receiver
        assert f'severity="{severity}"' in routed
