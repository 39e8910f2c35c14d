"""The ClickHouse tables of a real worker (embedded engine), fed through the real broker, against
the definitions: every contact and issue row, metrics_minute equal to the facts and to the live
gauges; through a ClickHouse outage with backpressure and a SIGKILL; with canary customer ids."""

from __future__ import annotations

import math
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from pipeline.core.targets import Targets
from pipeline.simulation import Faults
from tests.conftest import docker_answers
from tests.gauges import COUNTS, expected_samples, model_of, simulated
from tests.integration.test_metrics_end_to_end import MESSY, wait_until_exact
from tests.warehouse_model import (
    AGENT_MINUTES_SQL,
    AGENT_STATES_SQL,
    CONTACTS_SQL,
    ISSUES_SQL,
    MINUTES_SQL,
    actual_agent_minutes,
    actual_agent_states,
    actual_contacts,
    counts_from_facts,
    decimal_us,
    expected_agent_minutes,
    expected_agent_states,
    expected_contacts,
    expected_issues,
    micros,
    minute_counts,
    valid_events,
    windows_of,
)
from tests.worker_process import Deployment, WorkerProcess, caught_up, counter, query

pytestmark = pytest.mark.integration

HOURS = float(os.environ.get("CCPULSE_TEST_HOURS", "3"))
WINDOWED = set(COUNTS) | {
    "ccpulse_service_level_ratio", "ccpulse_asa_seconds", "ccpulse_abandon_ratio", "ccpulse_aht_seconds",
    "ccpulse_csat_ratio", "ccpulse_nps_score", "ccpulse_ces_score", "ccpulse_fcr_ratio", "ccpulse_art_seconds",
}  # fmt: skip


def table_problems(worker: WorkerProcess, lines: list[bytes], targets: Targets) -> list[str]:
    """Everything in the tables that differs from the definitions, the facts or the gauges."""
    events = valid_events(lines)
    want_contacts = expected_contacts(events, targets)
    want_issues = expected_issues(want_contacts, targets)
    problems: list[str] = []

    # events: one row per event_id
    [row] = query(worker, "SELECT count() AS n, uniqExact(event_id) AS ids FROM ccpulse.events FINAL")
    ids = len({e.event_id for e in events})
    if (int(row["n"]), int(row["ids"])) != (ids, ids):
        problems.append(f"events: {row} rows/ids, expected {ids} of each")

    # contacts: every column, every contact
    got_contacts = actual_contacts(query(worker, CONTACTS_SQL))
    for contact_id in sorted(set(want_contacts) | set(got_contacts)):
        want, got = want_contacts.get(contact_id), got_contacts.get(contact_id)
        if want is None or got is None:
            problems.append(f"contact {contact_id}: present {got is not None}, expected {want is not None}")
            continue
        for column, value in want.items():
            if column != "opening_contact_id" and got[column] != value:
                problems.append(f"contact {contact_id}.{column}: got {got[column]!r}, expected {value!r}")

    # issues: by opening contact; contacts.issue_id names the issue that contains the contact
    issue_rows = query(worker, ISSUES_SQL)
    got_issues = {row["opening_contact_id"]: row for row in issue_rows}
    if len(got_issues) != len(issue_rows):
        problems.append("issues: two rows with the same opening contact")
    for opening in sorted(set(want_issues) | set(got_issues)):
        want, found = want_issues.get(opening), got_issues.get(opening)
        if want is None or found is None:
            problems.append(f"issue opened by {opening}: present {found is not None}, expected {want is not None}")
            continue
        row = found
        got = {
            "queue": row["queue"], "channel": row["channel"], "customer_id": row["customer_id"],
            "opened_at": micros(row["opened_at"]), "contacts": int(row["contacts"]),
            "judged_at": micros(row["judged_at"]), "fcr": None if row["fcr"] is None else bool(row["fcr"]),
            "resolved_at": micros(row["resolved_at"]), "resolution_us": decimal_us(row["resolution_seconds"]),
        }  # fmt: skip
        if got != want:
            problems.append(f"issue opened by {opening}: got {got}, expected {want}")
    issue_of_opening = {row["opening_contact_id"]: row["issue_id"] for row in issue_rows}
    for contact_id, want in want_contacts.items():
        expected_id = issue_of_opening.get(want["opening_contact_id"]) if want["opening_contact_id"] else None
        got_id = got_contacts.get(contact_id, {}).get("issue_id")
        if got_id != expected_id:
            problems.append(f"contact {contact_id}.issue_id: got {got_id}, expected {expected_id}")

    # metrics_minute: equal to the definitions, and to what contacts and issues imply
    minutes = minute_counts(query(worker, MINUTES_SQL))
    actual_issue_facts = [
        {"queue": r["queue"], "channel": r["channel"], "judged_at": micros(r["judged_at"]), "fcr": r["fcr"],
         "resolved_at": micros(r["resolved_at"]), "resolution_us": decimal_us(r["resolution_seconds"])}
        for r in issue_rows
    ]  # fmt: skip
    for label, implied in (
        ("the definitions", counts_from_facts(want_contacts, list(want_issues.values()))),
        ("the contacts and issues tables", counts_from_facts(got_contacts, actual_issue_facts)),
    ):
        for key in sorted(set(minutes) | set(implied)):
            if minutes.get(key) != implied.get(key):
                problems.append(f"metrics_minute {key}: {minutes.get(key)}, but {label} give {implied.get(key)}")
                break

    # agent_states and the agent_state_minute view (issue 22)
    for name, got, want in (
        ("agent_states", actual_agent_states(query(worker, AGENT_STATES_SQL)), expected_agent_states(events)),
        ("agent_state_minute", actual_agent_minutes(query(worker, AGENT_MINUTES_SQL)), expected_agent_minutes(events)),
    ):
        for key in sorted(set(got) | set(want)):
            if got.get(key) != want.get(key):
                problems.append(f"{name} {key}: {got.get(key)}, expected {want.get(key)}")
                break
    return problems


def gauge_problems(worker: WorkerProcess, lines: list[bytes], targets: Targets) -> list[str]:
    """SQL over metrics_minute for each window equals the live gauges of that window."""
    _, now_us = model_of(lines, targets)
    from tests.gauges import UTC_ZONE

    minutes = minute_counts(query(worker, MINUTES_SQL))
    wanted = {k: v for k, v in expected_samples(windows_of(minutes, now_us, UTC_ZONE), targets).items()
              if k[0] in WINDOWED}  # fmt: skip
    shown = {k: v for k, v in worker.scrape().items() if k[0] in WINDOWED}
    problems = []
    for key in sorted(set(wanted) | set(shown)):
        got, want = shown.get(key), wanted.get(key)
        if got is None or want is None or not math.isclose(got, want, rel_tol=1e-12, abs_tol=1e-12):
            problems.append(f"{key[0]}{dict(key[1])}: gauge {got}, SQL {want}")
    return problems


def wait_for_tables(worker: WorkerProcess, lines: list[bytes], targets: Targets, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    problems = ["not checked"]
    while time.monotonic() < deadline:
        problems = table_problems(worker, lines, targets)
        if not problems:
            return
        time.sleep(1)
    raise AssertionError(f"{len(problems)} table problems, e.g.:\n" + "\n".join(problems[:20]) +
                         f"\n{worker.log_tail(15)}")  # fmt: skip


def send(deployment: Deployment, lines: list[bytes]) -> None:
    produced = deployment.ccpulse("produce", "-", input_bytes=b"\n".join(lines) + b"\n")
    assert produced.returncode == 0, produced.stderr.decode()


@pytest.fixture
def deployment(kafka_bootstrap: str, tmp_path: Path) -> Deployment:
    return Deployment(kafka_bootstrap, tmp_path, extra_env={"CCPULSE_CLOCK": "event"})


def test_tables_equal_the_definitions_and_the_live_gauges(deployment: Deployment) -> None:
    lines = simulated(HOURS, seed=41, faults=MESSY)
    targets = Targets()
    expected, _ = model_of(lines, targets)
    with deployment.worker() as worker:
        send(deployment, lines)
        wait_until_exact([worker], expected_samples(expected, targets))
        wait_for_tables(worker, lines, targets)
        assert gauge_problems(worker, lines, targets) == []
        # read-only is the engine's own: a write through the query path is refused
        refused = subprocess.run(
            [sys.executable, "-m", "pipeline", "query", "INSERT INTO ccpulse.events (event_id) VALUES ('x')"],
            env=deployment.env(CCPULSE_HTTP_PORT=str(worker.port), CCPULSE_DATA_DIR=str(worker.data_dir)),
            capture_output=True, cwd=deployment.root, timeout=60,
        )  # fmt: skip
        assert refused.returncode == 1 and b"readonly" in refused.stderr.lower()
        health = worker.scrape()
        assert counter(health, "ccpulse_sink_rows_written_total", table="events") >= len(valid_events(lines))
        assert counter(health, "ccpulse_sink_backlog_rows") == 0
        assert counter(health, "ccpulse_sink_last_success_timestamp_seconds") > time.time() - 60
    # without a worker, ccpulse query opens the engine itself
    rows = subprocess.run(
        [sys.executable, "-m", "pipeline", "query", "SELECT count() AS n FROM ccpulse.metrics_minute FINAL"],
        env=deployment.env(CCPULSE_HTTP_PORT=str(worker.port), CCPULSE_DATA_DIR=str(worker.data_dir)),
        capture_output=True, cwd=deployment.root, timeout=60,
    )  # fmt: skip
    assert rows.returncode == 0, rows.stderr.decode()
    assert int(__import__("json").loads(rows.stdout)["n"]) > 0
    # ... with the same limit a worker puts on queries, and the same advice
    endless_sql = "SELECT count() FROM numbers(10000000000) WHERE sipHash64(number) = 1"
    endless = subprocess.run(
        [sys.executable, "-m", "pipeline", "query", endless_sql],
        env=deployment.env(CCPULSE_HTTP_PORT=str(worker.port), CCPULSE_DATA_DIR=str(worker.data_dir),
                           CCPULSE_QUERY_SECONDS="1"),
        capture_output=True, cwd=deployment.root, timeout=60,
    )  # fmt: skip
    assert endless.returncode == 1 and b"TIMEOUT_EXCEEDED" in endless.stderr, endless.stderr
    assert b"The limit is CCPULSE_QUERY_SECONDS" in endless.stderr, endless.stderr


def late_traffic() -> tuple[list[bytes], list[bytes], list[bytes], list[bytes]]:
    """An hour of traffic, then contacts two days older in two parts, 90 minutes of traffic between
    them (send them in this order): the second part changes minutes the board no longer holds."""
    from datetime import UTC, datetime

    current = simulated(1.0, seed=41, faults=MESSY)
    mover = simulated(1.5, seed=42, faults=Faults(), start=datetime(2026, 11, 23, 9, 0, tzinfo=UTC))
    late = simulated(1.0, seed=49, faults=Faults(), start=datetime(2026, 11, 21, 8, 0, tzinfo=UTC))
    late_first, late_second = late[: len(late) // 2], late[len(late) // 2 :]

    def contacts(lines: list[bytes]) -> set[str | None]:
        return {event.contact_id for event in valid_events(lines)} - {None}

    assert not contacts(late) & (contacts(current) | contacts(mover))
    assert contacts(late_first) & contacts(late_second)  # the second part goes on with the first's contacts
    return current, late_first, mover, late_second


def test_minutes_of_late_contacts_more_than_a_day_old_are_exact(deployment: Deployment) -> None:
    """Contacts two days older than the rest arrive late, in two parts; between them the event clock
    moves on by 90 minutes, so the board's expiry takes the first part's reports away (the board
    keeps a report 27 h past its last minute). The second part's contacts then change minutes
    whose other contributions the board no longer holds: those minutes are summed from
    ``contributions`` in ClickHouse (pipeline/core/facts.py ``board_minutes``), and must equal
    the definitions."""
    current, late_first, mover, late_second = late_traffic()
    lines = current + late_first + mover + late_second
    targets = Targets()
    expected, _ = model_of(lines, targets)
    deployment.extra_env.update(CCPULSE_CONTACT_RETENTION_HOURS="100")  # the contacts stay; their reports go
    with deployment.worker() as worker:
        sent = 0
        for part in (current + late_first, mover):
            send(deployment, part)
            sent += len(valid_events(part))
            worker.wait_for(lambda s, sent=sent: caught_up(s) and counted(s) >= sent, timeout=120)  # type: ignore[misc]
        send(deployment, late_second)
        wait_until_exact([worker], expected_samples(expected, targets))
        wait_for_tables(worker, lines, targets)
        [row] = query(worker, "SELECT count() AS n FROM ccpulse.metrics_minute FINAL WHERE minute < '2026-11-22'")
        assert int(row["n"]) > 10


def test_old_minutes_put_off_while_catching_up_are_re_summed_after_a_kill(deployment: Deployment) -> None:
    """The same late contacts, the worker always catching up (``CCPULSE_CATCH_UP_LAG=0``) and its
    re-sums put off for an hour: the old minutes are owed (``metrics_minute_owed``), not re-summed,
    while the gauges are exact all along; the worker is SIGKILLed; the next one re-sums what is
    owed as it starts, and every table is exact."""
    current, late_first, mover, late_second = late_traffic()
    lines = current + late_first + mover + late_second
    targets = Targets()
    expected, _ = model_of(lines, targets)
    put_off = {"CCPULSE_CATCH_UP_LAG": "0", "CCPULSE_SINK_RESUM_SECONDS": "3600"}
    deployment.extra_env.update(CCPULSE_CONTACT_RETENTION_HOURS="100", **put_off)
    worker = deployment.worker().start()
    try:
        sent = 0
        for part in (current + late_first, mover, late_second):
            send(deployment, part)
            sent += len(valid_events(part))
            worker.wait_for(lambda s, sent=sent: caught_up(s) and counted(s) >= sent  # type: ignore[misc]
                            and counter(s, "ccpulse_sink_backlog_rows") == 0, timeout=120)  # fmt: skip
        wait_until_exact([worker], expected_samples(expected, targets))
        assert owed_minutes(worker) > 0
        assert table_problems(worker, lines, targets)  # the old minutes' rows wait for their re-sum
        worker.kill()
        for name in put_off:
            del deployment.extra_env[name]
        worker = deployment.worker().start()
        wait_for_tables(worker, lines, targets)
        assert owed_minutes(worker) == 0
    finally:
        worker.stop()


def owed_minutes(worker: WorkerProcess) -> int:
    [row] = query(worker, "SELECT count() AS n FROM ccpulse.metrics_minute_owed FINAL")
    return int(row["n"])


def counted(samples: dict[tuple[str, tuple[tuple[str, str], ...]], float]) -> float:
    """Valid events the worker has counted."""
    return sum(value for (name, _), value in samples.items() if name == "ccpulse_events_total")


def test_an_outage_with_backpressure_and_a_kill_lose_nothing(deployment: Deployment) -> None:
    """ClickHouse fails mid-stream (fault injected: the embedded engine cannot be made to fail on
    demand); the backlog fills, consumption pauses; the worker is SIGKILLed with rows unwritten;
    it comes back, ClickHouse recovers, and every table is exact."""
    lines = simulated(HOURS, seed=43, faults=MESSY)
    targets = Targets()
    expected, _ = model_of(lines, targets)
    fault = deployment.root / "clickhouse-down"
    deployment.extra_env.update(CCPULSE_SINK_FAULT_FILE=str(fault), CCPULSE_SINK_MAX_ROWS="2000")
    third = len(lines) // 3
    worker = deployment.worker().start()
    try:
        send(deployment, lines[:third])
        worker.wait_for(lambda s: caught_up(s)
                        and sum(v for k, v in s.items() if k[0] == "ccpulse_events_total") > 0
                        and counter(s, "ccpulse_sink_backlog_rows") == 0, timeout=120)  # fmt: skip
        fault.touch()
        send(deployment, lines[third:])
        stalled = worker.wait_for(lambda s: counter(s, "ccpulse_sink_blocked") == 1
                                  and counter(s, "ccpulse_sink_failing") == 1, timeout=120)  # fmt: skip
        assert counter(stalled, "ccpulse_sink_errors_total") > 0
        assert 0 < counter(stalled, "ccpulse_sink_backlog_rows") <= 2000 + 2000 * 4  # bounded (one batch over)
        time.sleep(3)
        paused = worker.scrape()
        assert sum(v for k, v in paused.items() if k[0] == "ccpulse_consumer_lag") > 0  # consumption paused
        worker.kill()  # rows in the backlog die with it: their messages were never committed
        worker.start()
        time.sleep(3)
        fault.unlink()
        wait_until_exact([worker], expected_samples(expected, targets))
        wait_for_tables(worker, lines, targets, timeout=180)
        assert gauge_problems(worker, lines, targets) == []
    finally:
        worker.stop()


CANARIES = ["canary-7781@example.org", "+81-90-0000-7781"]


def canary_traffic() -> tuple[list[bytes], list[str]]:
    import json

    lines = simulated(1.0, seed=47, faults=Faults())
    planted = []
    for number, line in enumerate(lines):  # plant canaries as customer ids
        if b'"contact.offered"' in line and number % 3 == 0:
            document = json.loads(line)
            document["customer_id"] = CANARIES[number % 2]
            lines[number] = json.dumps(document).encode()
            planted.append(document["customer_id"])
    assert len(planted) > 20
    return lines, planted


def test_customer_ids_never_reach_metrics_or_logs_even_without_a_key(deployment: Deployment) -> None:
    lines, _ = canary_traffic()
    with deployment.worker() as worker:
        send(deployment, lines)
        worker.wait_for(lambda s: caught_up(s)
                        and counter(s, "ccpulse_events_total", type="contact.offered") > 0
                        and counter(s, "ccpulse_sink_backlog_rows") == 0, timeout=120)  # fmt: skip
        stored: set[str] = set()
        deadline = time.monotonic() + 60
        while not set(CANARIES) <= stored and time.monotonic() < deadline:  # rows follow within a second
            stored = {
                r["customer_id"] for r in query(worker, "SELECT DISTINCT customer_id FROM ccpulse.contacts FINAL")
            }
            time.sleep(0.5)
        assert set(CANARIES) <= stored  # without a key ClickHouse has them (the control: they did arrive)
        surfaces = {
            "/metrics": urllib.request.urlopen(f"{worker.url}/metrics", timeout=10).read().decode(),
            "/status": urllib.request.urlopen(f"{worker.url}/status", timeout=10).read().decode(),
        }
    surfaces["worker log"] = worker.log_path.read_text(errors="replace")
    for name, text in surfaces.items():
        for canary in CANARIES:
            assert canary not in text, f"canary {canary!r} found in {name}"


def test_customer_ids_are_pseudonymised_everywhere(deployment: Deployment, tmp_path: Path) -> None:
    import hashlib
    import hmac

    key = "test-key-0123456789abcdef"
    lines, _ = canary_traffic()
    deployment.extra_env.update(CCPULSE_CUSTOMER_KEY=key, CCPULSE_QUERY_TOKEN="query-token-for-tests")
    with deployment.worker() as worker:
        send(deployment, lines)
        worker.wait_for(lambda s: caught_up(s)
                        and counter(s, "ccpulse_events_total", type="contact.offered") > 0
                        and counter(s, "ccpulse_sink_backlog_rows") == 0, timeout=120)  # fmt: skip
        time.sleep(2)
        # the query endpoint wants the token when one is set
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(f"{worker.url}/query?sql=SELECT%201", timeout=10)
        assert refused.value.code == 401
        token = {"CCPULSE_QUERY_TOKEN": "query-token-for-tests"}
        pseudonyms = {hmac.new(key.encode(), c.encode(), hashlib.sha256).hexdigest() for c in CANARIES}
        stored = {r["customer_id"] for r in query(worker, "SELECT DISTINCT customer_id FROM ccpulse.contacts", **token)}
        assert pseudonyms <= stored  # repeat detection still has one stable id per customer
        everything: list[str] = []
        for table in ("events", "contacts", "issues", "contributions", "metrics_minute"):
            everything += [str(r) for r in query(worker, f"SELECT * FROM ccpulse.{table}", **token)]
        surfaces = {
            "ClickHouse": "\n".join(everything),
            "/metrics": urllib.request.urlopen(f"{worker.url}/metrics", timeout=10).read().decode(),
            "/status": urllib.request.urlopen(f"{worker.url}/status", timeout=10).read().decode(),
        }
    surfaces["worker log"] = worker.log_path.read_text(errors="replace")
    surfaces["internal topics and changelogs"] = internal_topics(deployment)
    surfaces["data dir"] = "\n".join(
        path.read_bytes().decode("latin-1") for path in worker.data_dir.rglob("*")
        if path.is_file() and "clickhouse" not in path.parts and path.stat().st_size < 50_000_000
    )  # fmt: skip
    for name, text in surfaces.items():
        for canary in CANARIES:
            assert canary not in text, f"canary {canary!r} found in {name}"
    assert any(p in surfaces["ClickHouse"] for p in pseudonyms)


def internal_topics(deployment: Deployment) -> str:
    """Every message of the deployment's topics except the input and the dead letters."""
    from kafka import KafkaConsumer

    consumer = KafkaConsumer(bootstrap_servers=deployment.bootstrap, auto_offset_reset="earliest",
                             consumer_timeout_ms=3000, enable_auto_commit=False)  # fmt: skip
    topics = [t for t in consumer.topics() if t.startswith(deployment.app_id)]
    assert any("changelog" in t for t in topics) and topics
    consumer.subscribe(topics)
    text = [(m.key or b"").decode("latin-1") + (m.value or b"").decode("latin-1") for m in consumer]
    consumer.close()
    assert text
    return "\n".join(text)


@pytest.mark.skipif(
    not docker_answers(),
    reason="no Docker engine answers: the embedded-engine twin "
    "(test_tables_equal_the_definitions_and_the_live_gauges) covers the same tables",
)
def test_tables_on_a_clickhouse_server(deployment: Deployment) -> None:  # pragma: no cover - needs Docker
    from testcontainers.core.container import DockerContainer
    from testcontainers.core.waiting_utils import wait_for_logs

    lines = simulated(1.0, seed=53, faults=MESSY)
    targets = Targets()
    expected, _ = model_of(lines, targets)
    server = (DockerContainer("clickhouse/clickhouse-server:25.8").with_exposed_ports(8123)
              .with_env("CLICKHOUSE_PASSWORD", "test").with_env("CLICKHOUSE_USER", "ccpulse"))  # fmt: skip
    with server:
        wait_for_logs(server, "Ready for connections", timeout=120)
        url = f"http://ccpulse:test@{server.get_container_host_ip()}:{server.get_exposed_port(8123)}"
        deployment.extra_env.update(CCPULSE_CLICKHOUSE_URL=url)
        with deployment.worker() as worker:
            send(deployment, lines)
            wait_until_exact([worker], expected_samples(expected, targets))
            wait_for_tables(worker, lines, targets)
            assert gauge_problems(worker, lines, targets) == []
