"""The launcher's pure parts: configuration text, version parsing, process identity."""

from __future__ import annotations

import os
from pathlib import Path

from pipeline.local_broker import launcher


def test_server_properties_are_single_node_kraft_on_loopback(tmp_path: Path) -> None:
    text = launcher().server_properties(tmp_path / "storage", 19092, 19093)
    lines = dict(line.split("=", 1) for line in text.strip().splitlines())
    assert lines["process.roles"] == "broker,controller"
    assert lines["listeners"] == "PLAINTEXT://127.0.0.1:19092,CONTROLLER://127.0.0.1:19093"
    assert lines["advertised.listeners"] == "PLAINTEXT://127.0.0.1:19092"
    assert lines["controller.quorum.voters"] == "1@127.0.0.1:19093"
    assert lines["group.initial.rebalance.delay.ms"] == "0"
    assert lines["offsets.topic.replication.factor"] == "1"
    assert lines["log.dirs"] == str(tmp_path / "storage")


def test_java_version_parsing() -> None:
    parse = launcher()._java_major
    assert parse('openjdk version "17.0.15" 2025-04-15') == 17
    assert parse('java version "1.8.0_292"') == 8
    assert parse('openjdk version "21" 2023-09-19') == 21


def test_pinned_version_is_read_from_the_pom() -> None:
    assert launcher().kafka_version() == "3.9.1"


def test_a_pid_is_ours_only_when_its_command_line_is_our_broker(tmp_path: Path) -> None:
    kafka = launcher()
    layout = kafka.BrokerLayout.for_data_dir(tmp_path)
    assert not kafka._pid_is_our_broker(os.getpid(), layout)
    assert not kafka._pid_is_our_broker(2**22 + 12345, layout)  # no such process


def test_a_silent_port_does_not_answer() -> None:
    kafka = launcher()
    assert kafka.broker_answers("127.0.0.1", kafka.unclaimed_port(), timeout=0.5) is False


def test_cluster_ids_never_start_with_a_dash_which_kafka_storage_takes_for_an_option() -> None:
    # found when one broker start in eight failed: "--cluster-id/-t: expected one argument"
    ids = [launcher()._cluster_id() for _ in range(2000)]  # a dash first would appear ~31 times
    assert all(len(found) == 22 and not found.startswith("-") for found in ids)
    assert len(set(ids)) == len(ids)


def test_unclaimed_ports_lie_outside_the_ephemeral_range_and_are_not_in_use() -> None:
    """The kernel gives ephemeral ports to outgoing connections at any time: a port from there,
    released before the server binds it, can be taken in between (the CI failure of 2026-12-02)."""
    import random
    import socket

    kafka = launcher()
    low, high = kafka.ephemeral_range()
    held = socket.socket()
    held.bind(("127.0.0.1", 0))
    held.listen()
    try:
        ports = [kafka.unclaimed_port(random.Random(seed)) for seed in range(300)]
        assert all(not low <= port <= high and 10000 <= port <= 65535 for port in ports)
        assert held.getsockname()[1] not in ports
        assert len(set(ports)) > 250  # spread out: two servers rarely draw the same
    finally:
        held.close()


def test_a_port_in_use_is_never_offered() -> None:
    import random
    import socket

    kafka = launcher()
    first = kafka.unclaimed_port(random.Random(7))
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", first))
        squatter.listen()
        assert kafka.unclaimed_port(random.Random(7)) != first  # the same draw, then the next one
