"""The stages' partition assignor: ``pipeline.core.assignment.sticky`` in aiokafka's group protocol.

aiokafka takes assignors as objects with ``name``, ``version``, ``metadata``, ``assign`` and
``on_assignment`` (``AbstractPartitionAssignor``; its ``partition_assignment_strategy``). Each
consumer gets an instance of its own: what a member owned is the member's, and aiokafka's own
``StickyPartitionAssignor`` keeps it in class attributes, shared by every consumer of the process
(a worker has three; aio-libs/aiokafka#1175). A member tells the others what it owns in its
metadata's user data (JSON: topic -> partitions), as Kafka's sticky assignors do.

The stages list it before round robin: a group picks a protocol every member offers, so a group
with workers of an earlier version (round robin only) goes on with round robin until they are
gone — a rolling upgrade needs nothing.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import orjson
from aiokafka.coordinator.assignors.abstract import AbstractPartitionAssignor
from aiokafka.coordinator.protocol import ConsumerProtocolMemberAssignment, ConsumerProtocolMemberMetadata

from pipeline.core.assignment import sticky


class StickyAssignor(AbstractPartitionAssignor):
    name = "ccpulse-sticky"
    version = 0

    def __init__(self) -> None:
        self.owned: dict[str, list[int]] = {}  # topic -> partitions, as last assigned to this member

    def metadata(self, topics: Iterable[str]) -> ConsumerProtocolMemberMetadata:  # type: ignore[override]
        return ConsumerProtocolMemberMetadata(self.version, sorted(topics), orjson.dumps(self.owned))

    def on_assignment(self, assignment: ConsumerProtocolMemberAssignment) -> None:  # type: ignore[override]
        owned: dict[str, list[int]] = {}
        for tp in assignment.partitions():
            owned.setdefault(tp.topic, []).append(tp.partition)
        self.owned = {topic: sorted(partitions) for topic, partitions in owned.items()}

    def assign(  # type: ignore[override]
        self, cluster: Any, members: Mapping[str, ConsumerProtocolMemberMetadata]
    ) -> dict[str, ConsumerProtocolMemberAssignment]:
        topics = {topic for metadata in members.values() for topic in metadata.subscription}
        partitions = {topic: sorted(cluster.partitions_for_topic(topic) or ()) for topic in topics}
        found = sticky(partitions, {member: list(m.subscription) for member, m in members.items()},
                       {member: _owned(m.user_data) for member, m in members.items()})  # fmt: skip
        return {member: ConsumerProtocolMemberAssignment(self.version, sorted(given.items()), b"")
                for member, given in found.items()}  # fmt: skip


def _owned(user_data: bytes | None) -> dict[str, list[int]]:
    """What a member says it owned; nothing from a member that says it otherwise."""
    try:
        found = orjson.loads(user_data or b"{}")
    except orjson.JSONDecodeError:
        return {}
    if not isinstance(found, dict):
        return {}
    return {str(topic): [p for p in partitions if isinstance(p, int)]
            for topic, partitions in found.items() if isinstance(partitions, list)}  # fmt: skip
