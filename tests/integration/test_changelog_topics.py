"""The stages' changelogs roll their segments hourly (or at 128 MiB), so the broker compacts them.

A take-over reads a changelog partition whole, and the broker compacts only rolled segments: with
Kafka's defaults (1 GiB or 7 days) a restart read everything written since the topic began.
Against the real broker: new changelogs are created so, changelogs made before get it where
nobody set it, and what an operator set on a topic stays.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from pipeline.kafka_io import COMPACTED, ensure_topics
from pipeline.settings import Settings
from tests.worker_process import Deployment

pytestmark = pytest.mark.integration

HOUR_MS, SEGMENT_BYTES = "3600000", str(128 * 1024 * 1024)


def described(bootstrap: str, names: list[str]) -> dict[str, dict[str, str]]:
    """Each topic's configuration as the broker reports it (every key, with its value)."""
    from kafka import KafkaAdminClient
    from kafka.admin import ConfigResource, ConfigResourceType

    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        found = admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, name) for name in names],
                                       config_filter="all")  # fmt: skip
    finally:
        admin.close()
    return {name: {key: entry["value"] for key, entry in found["topic"][name].items()} for name in names}


def test_changelogs_are_created_compacted_and_rolling_hourly(kafka_bootstrap: str, tmp_path: Path) -> None:
    settings = Settings.from_env(Deployment(kafka_bootstrap, tmp_path).env(), env_file=None)
    changelog, state = f"{settings.app_id}-issues-changelog", f"{settings.app_id}-contact-state"
    ensure_topics(settings, compacted=(changelog,), per_input=(state,))
    for name, configs in described(kafka_bootstrap, [changelog, state]).items():
        assert configs["cleanup.policy"] == "compact", name
        assert (configs["segment.ms"], configs["segment.bytes"]) == (HOUR_MS, SEGMENT_BYTES), name
    assert described(kafka_bootstrap, [settings.topic])[settings.topic]["segment.ms"] != HOUR_MS  # the input's own


def test_changelogs_made_before_roll_sooner_unless_an_operator_set_it(kafka_bootstrap: str, tmp_path: Path) -> None:
    from kafka import KafkaAdminClient

    settings = Settings.from_env(Deployment(kafka_bootstrap, tmp_path).env(), env_file=None)
    old, tuned = f"old-changelog-{uuid.uuid4().hex[:8]}", f"tuned-changelog-{uuid.uuid4().hex[:8]}"
    admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    try:  # as versions before 2026-12-06 made them, and one an operator tuned
        admin.create_topics({old: {"num_partitions": 2, "replication_factor": 1,
                                   "configs": {"cleanup.policy": "compact"}},
                             tuned: {"num_partitions": 2, "replication_factor": 1,
                                     "configs": {"cleanup.policy": "compact", "segment.ms": "600000"}}},
                            wait_for_metadata=True)  # fmt: skip
    finally:
        admin.close()
    assert described(kafka_bootstrap, [old])[old]["segment.ms"] != HOUR_MS
    ensure_topics(settings, compacted=(old, tuned))
    found = described(kafka_bootstrap, [old, tuned])
    assert (found[old]["segment.ms"], found[old]["segment.bytes"]) == (HOUR_MS, SEGMENT_BYTES)
    assert (found[tuned]["segment.ms"], found[tuned]["segment.bytes"]) == ("600000", SEGMENT_BYTES)
    assert found[old]["cleanup.policy"] == found[tuned]["cleanup.policy"] == COMPACTED["cleanup.policy"]


class RefusingAdmin:
    """A broker whose ACLs refuse topic configuration changes (the real one cannot on demand)."""

    def describe_configs(self, resources: list[object]) -> dict[str, dict[str, dict[str, object]]]:
        return {"topic": {"app-issues-changelog": {"cleanup.policy": {"value": "compact"}}}}

    def alter_configs(self, resources: list[object]) -> dict[str, dict[str, str]]:
        from kafka.errors import TopicAuthorizationFailedError

        raise TopicAuthorizationFailedError("denied")


def test_a_broker_that_refuses_is_told_of_not_crashed(caplog: pytest.LogCaptureFixture) -> None:
    import logging

    from pipeline.kafka_io import _roll_sooner

    with caplog.at_level(logging.WARNING, logger="ccpulse.kafka"):
        _roll_sooner(RefusingAdmin(), ["app-issues-changelog"])  # type: ignore[arg-type]
    [warning] = [record.getMessage() for record in caplog.records]
    assert "could not set segment.ms=3600000, segment.bytes=134217728" in warning
    assert "app-issues-changelog" in warning and "TopicAuthorizationFailedError" in warning
    assert "kafka-configs.sh" in warning
