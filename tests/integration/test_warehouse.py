"""The schema on the real embedded engine: migrations apply once and again safely, every column
the sink writes exists, and a replayed or retried insert never adds to a key."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from pipeline.core.board import Report
from pipeline.core.counts import FIELDS
from pipeline.core.facts import CONTRIBUTION_COLUMNS, MINUTE_COLUMNS, STAGE_TABLES, contribution_rows, minute_row
from pipeline.warehouse import OWED_COLUMNS, OWED_TABLE, Warehouse, connect, load_migrations, migrations_dir

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory: pytest.TempPathFactory) -> Warehouse:
    # one embedded engine (one path) per process: the whole module shares it
    path = tmp_path_factory.mktemp("chdb") / "clickhouse"
    return Warehouse(connect(f"chdb://{path}"), "ccpulse_test")


def test_migrations_apply_once_and_again_safely(warehouse: Warehouse) -> None:
    migrations = load_migrations(migrations_dir())
    assert [m.version for m in migrations] == sorted(m.version for m in migrations)
    assert warehouse.migrate(migrations) == [f"{m.version:04d}_{m.name}" for m in migrations]
    assert warehouse.migrate(migrations) == []  # the second start applies nothing
    # each statement is idempotent on its own: a start interrupted in a migration runs it again
    # whole, on the database as the migrations before it left it (later ones are not applied yet)
    for index, migration in enumerate(migrations):
        again = Warehouse(warehouse.client, f"ccpulse_test_again_{index}")
        again.migrate(migrations[:index])
        for _ in range(2):
            for statement in migration.statements(again.database):
                again.client.command(statement)
        assert again.migrate(migrations) == [f"{m.version:04d}_{m.name}" for m in migrations[index:]]
    columns = {
        (table, name)
        for table, name in warehouse.client.query(
            "SELECT table, name FROM system.columns WHERE database = 'ccpulse_test'"
        ).result_rows
    }
    for table, wanted in {**STAGE_TABLES, "metrics_minute": MINUTE_COLUMNS, OWED_TABLE: OWED_COLUMNS}.items():
        missing = [name for name in wanted if (table, name) not in columns]
        assert not missing, f"{table} lacks {missing}"


def test_every_table_merges_one_column_at_a_time(warehouse: Warehouse) -> None:
    """A horizontal merge reads every column of every part at once: 174 MiB for 8 small
    contact_facts parts while a backlog is written. Every table the migrations create, now and
    later, merges vertically whatever its size (0010_vertical_merges.sql)."""
    warehouse.migrate(load_migrations(migrations_dir()))
    tables = warehouse.client.query(
        "SELECT name, create_table_query FROM system.tables WHERE database = 'ccpulse_test' "
        "AND engine LIKE '%MergeTree' AND name != 'schema_migrations'"
    ).result_rows
    assert len(tables) >= 8
    for name, statement in tables:
        settings = statement.partition(" SETTINGS ")[2]
        for setting in ("vertical_merge_algorithm_min_rows_to_activate = 1",
                        "vertical_merge_algorithm_min_columns_to_activate = 1"):  # fmt: skip
            assert setting in settings, f"{name} lacks {setting}: a new table needs it in its CREATE TABLE"


def test_a_replayed_insert_never_adds_and_a_left_minute_goes(warehouse: Warehouse, tmp_path: Path) -> None:
    warehouse.migrate(load_migrations(migrations_dir()))
    counts = tuple(1 if name == "offered" else 0 for name in FIELDS)
    m = 29_000_000  # minutes since 1970 (in 2025): retention counts from the insert, not the event time
    first = Report("contact:c1", "q", (("voice", m, counts), ("voice", m + 1, counts)), version=1)
    rows, touched = contribution_rows(first)
    for _ in range(3):  # a replay after a crash, a retried insert: the same keys again
        warehouse.insert("contributions", rows, CONTRIBUTION_COLUMNS)
    sums = warehouse.minute_sums(touched)
    assert {key: c.offered for key, c in sums.items()} == {("q", "voice", m): 1, ("q", "voice", m + 1): 1}
    # the contact moved its offer to minute 102: minute 101 is left, with a later version
    moved = Report("contact:c1", "q", (("voice", m, counts), ("voice", m + 2, counts)), version=2,
                   left=(("voice", m + 1),))  # fmt: skip
    rows, touched_after = contribution_rows(moved)
    warehouse.insert("contributions", rows, CONTRIBUTION_COLUMNS)
    touched |= touched_after
    sums = warehouse.minute_sums(touched)
    assert {key: c.offered for key, c in sums.items()} == {("q", "voice", m): 1, ("q", "voice", m + 2): 1}
    minute_rows = [minute_row(q, c, m, sums.get((q, c, m)), 7) for q, c, m in sorted(touched)]
    warehouse.insert("metrics_minute", minute_rows, MINUTE_COLUMNS)
    warehouse.insert("metrics_minute", minute_rows, MINUTE_COLUMNS)
    shown = warehouse.client.query(
        "SELECT toUnixTimestamp(minute) DIV 60, offered FROM ccpulse_test.metrics_minute FINAL ORDER BY 1"
    ).result_rows
    assert shown == [(m, 1), (m + 2, 1)]


def test_rows_sent_as_arrow_columns_equal_rows_sent_one_by_one(warehouse: Warehouse) -> None:
    """Every column type of every table the sink writes (NULLs, decimals, flags, times, 2^62
    versions, UTF-8) lands as clickhouse-connect's own row encoder would write it."""
    from pipeline.core.contract import Event
    from pipeline.core.engine import ContactRecord, IssueLink, contact_apply
    from pipeline.core.facts import (
        AGENT_STATE_COLUMNS,
        CONTACT_COLUMNS,
        CONTACT_ISSUE_COLUMNS,
        EVENT_COLUMNS,
        ISSUE_COLUMNS,
        contact_issue_rows,
        contact_row,
        event_row,
    )
    from pipeline.core.targets import Targets

    warehouse.migrate(load_migrations(migrations_dir()))
    at = 1_764_000_000_000_000
    offered = Event(event_id="é1", type="contact.offered", at=at, contact_id="c1", queue="q", channel="voice",
                    customer_id="cust", reason="billing")  # fmt: skip
    answered = Event(event_id="e2", type="contact.answered", at=at + 12_345_678, contact_id="c1", agent_id="a1")
    record = ContactRecord()
    for event in (offered, answered):
        contact_apply(record, event, event.event_id)
    waiting = ContactRecord()
    contact_apply(waiting, Event(event_id="e3", type="contact.offered", at=at, contact_id="c2", queue="q",
                                 channel="chat", customer_id="x", case_id="k"), "e3")  # fmt: skip
    counts = tuple(range(1, len(FIELDS) + 1))
    rows = {
        "events": [event_row(offered, '{"raw":"é"}'.encode()), event_row(answered, b"{}")],
        "contact_facts": [contact_row("c1", record, Targets()), contact_row("c2", waiting, Targets())],
        "contact_issues": contact_issue_rows(
            [IssueLink("c1", "reason\x1fcust\x1fbilling", "i1", False), IssueLink("c9", "case\x1fx\x1fk", "i2", True)],
            2**62,
        ),
        "issues": [
            ("i1", "reason", "cust", "billing", None, "q", "voice", at, "c1", 1, *(None,) * 5, at, 3, 0),
            ("i2", "case", "x", None, "k", "q", "chat", at, "c2", 2, at, True, at + 5, 5, "c2", at + 5, 4, 0),
        ],  # fmt: skip
        "contributions": contribution_rows(
            Report("contact:c1", "q", (("voice", 29_000_000, counts),), version=2, left=(("voice", 29_000_001),))
        )[0],  # fmt: skip
        "metrics_minute": [minute_row("q", "voice", 29_000_000, counts, 5), minute_row("q", "chat", 1, None, 6)],
        "agent_states": [
            ("a1", at, "s1", "away", ["q1", "q2"], "昼休み", at + 5, 5, 3, 0),
            ("a1", at + 5, "s2", "available", [], None, None, None, 3, 0),
        ],  # fmt: skip
    }
    columns = {"events": EVENT_COLUMNS, "contact_facts": CONTACT_COLUMNS, "issues": ISSUE_COLUMNS,
               "contact_issues": CONTACT_ISSUE_COLUMNS, "agent_states": AGENT_STATE_COLUMNS,
               "contributions": CONTRIBUTION_COLUMNS, "metrics_minute": MINUTE_COLUMNS}  # fmt: skip
    db = warehouse.database
    for table, table_rows in rows.items():
        for copy in ("by_arrow", "by_row"):
            warehouse.client.command(f"DROP TABLE IF EXISTS {db}.{table}_{copy}")
            warehouse.client.command(f"CREATE TABLE {db}.{table}_{copy} AS {db}.{table}")
        warehouse.insert(f"{table}_by_arrow", table_rows, columns[table])
        as_decimals = _decimals_as_seconds(warehouse, table, table_rows, columns[table])
        warehouse.client.insert(f"{db}.{table}_by_row", as_decimals, column_names=list(columns[table]))
        listed = ", ".join(columns[table])
        as_arrow = warehouse.client.query(f"SELECT {listed} FROM {db}.{table}_by_arrow ORDER BY {listed}").result_rows
        by_row = warehouse.client.query(f"SELECT {listed} FROM {db}.{table}_by_row ORDER BY {listed}").result_rows
        assert as_arrow == by_row and len(as_arrow) == len(table_rows), table
    waits = f"SELECT wait_seconds, handle_seconds FROM {db}.contact_facts_by_arrow WHERE contact_id = 'c1'"
    assert warehouse.client.query(waits).result_rows == [(Decimal("12.345678"), None)]
    sums = f"SELECT wait_seconds_sum, resolution_seconds_sum FROM {db}.metrics_minute_by_arrow WHERE offered = 1"
    assert warehouse.client.query(sums).result_rows == [(Decimal("0.000006"), Decimal("0.000019"))]


def _decimals_as_seconds(warehouse: Warehouse, table: str, rows: list[tuple[object, ...]],
                         columns: tuple[str, ...]) -> list[tuple[object, ...]]:  # fmt: skip
    """Rows carry a decimal as its unscaled integer (µs for seconds); clickhouse-connect's row
    encoder takes Python ``Decimal``s."""
    described = {row[0]: row[1] for row in
                 warehouse.client.query(f"DESCRIBE TABLE {warehouse.database}.{table}").result_rows}  # fmt: skip
    decimal = [("Decimal(18, 6)" in described[name]) for name in columns]
    return [tuple(Decimal(v).scaleb(-6) if is_decimal and v is not None else v  # type: ignore[arg-type]
                  for v, is_decimal in zip(row, decimal, strict=True)) for row in rows]  # fmt: skip


def _old_contacts(warehouse: Warehouse, db: str) -> list[tuple[object, ...]]:
    from pipeline.core.facts import CONTACT_COLUMNS

    later = {"issue_key", "version", "hold_seconds", "transferred_at", "transferred_to_queue", "transferred_to_agent"}
    columns = [c for c in CONTACT_COLUMNS if c not in later] + ["issue_id", "is_repeat", "version"]  # as of 0002
    listed = ", ".join(columns)
    return warehouse.client.query(f"SELECT {listed} FROM {db}.contacts FINAL ORDER BY contact_id").result_rows


@pytest.mark.parametrize("interrupted_after", [None, 1, 2, 3, 4, 5, 6])
def test_contacts_become_a_view_with_their_issues_even_when_the_upgrade_is_interrupted(
    warehouse: Warehouse, interrupted_after: int | None
) -> None:
    """A version-1 database (contacts a table with issue_id, is_repeat) upgraded by 0002 shows the
    same rows through the view, also when the upgrade stopped after any statement and ran again."""
    first, second = load_migrations(migrations_dir())[:2]
    db = f"upgrade_{'whole' if interrupted_after is None else interrupted_after}"
    view = Warehouse(warehouse.client, db)
    warehouse.client.command(f"DROP DATABASE IF EXISTS {db} SYNC")
    assert view.migrate([first]) == ["0001_tables"]
    warehouse.client.command(
        f"INSERT INTO {db}.contacts (contact_id, queue, channel, customer_id, reason, case_id, offered_at, "
        "answered_at, last_event_at, outcome, answered_in_sl, issue_id, is_repeat, version) VALUES "
        "('c1', 'q', 'voice', 'cu', 'billing', NULL, 1, 2, 2, 'answered', true, 'i1', false, 3), "
        "('c1', 'q', 'voice', 'cu', 'billing', NULL, 1, 2, 2, 'answered', true, NULL, NULL, 2), "
        "('c2', 'q', 'chat', 'cu', NULL, 'k7', 5, 9, 9, 'answered', false, 'i2', true, 4), "
        "('c3', 'q', 'chat', NULL, NULL, NULL, 5, NULL, 5, NULL, NULL, NULL, NULL, 1)"
    )
    before = _old_contacts(view, db)
    assert [row[0] for row in before] == ["c1", "c2", "c3"] and before[0][-3:] == ("i1", False, 3)
    statements = second.statements(db)
    for statement in statements[: (interrupted_after if interrupted_after is not None else 0)]:
        warehouse.client.command(statement)
    assert view.migrate([first, second]) == ["0002_contact_issues"]
    assert _old_contacts(view, db) == before
    for statement in statements:  # every statement again, on the upgraded database: nothing changes
        warehouse.client.command(statement)
    assert _old_contacts(view, db) == before
    kinds = dict(warehouse.client.query(f"SELECT name, engine FROM system.tables WHERE database = '{db}'").result_rows)
    assert kinds["contacts"] == "View" and kinds["contact_facts"] == "ReplacingMergeTree"


def test_the_contacts_view_shows_the_issue_of_the_key_a_contact_is_in_now(warehouse: Warehouse) -> None:
    """Rows of contact_issues for a key the contact has left are not shown; the greater version wins."""
    from pipeline.core.engine import IssueLink
    from pipeline.core.facts import CONTACT_COLUMNS, CONTACT_ISSUE_COLUMNS, contact_issue_rows

    warehouse.migrate(load_migrations(migrations_dir()))
    db = warehouse.database
    warehouse.client.command(f"TRUNCATE TABLE {db}.contact_facts")
    warehouse.client.command(f"TRUNCATE TABLE {db}.contact_issues")
    facts = {c: None for c in CONTACT_COLUMNS} | {"last_event_at": 7, "outcome": "answered"}
    rows = [
        tuple(
            (facts | {"contact_id": "c1", "issue_key": "reason\x1fcu\x1fb", "version": 2})[c] for c in CONTACT_COLUMNS
        ),
        tuple((facts | {"contact_id": "c2", "issue_key": None, "version": 1})[c] for c in CONTACT_COLUMNS),
    ]
    warehouse.insert("contact_facts", rows, CONTACT_COLUMNS)
    links = [IssueLink("c1", "reason\x1fcu\x1fa", "left", False), IssueLink("c2", "reason\x1fcu\x1fa", "x", True)]
    warehouse.insert("contact_issues", contact_issue_rows(links, 9), CONTACT_ISSUE_COLUMNS)
    warehouse.insert("contact_issues", contact_issue_rows([IssueLink("c1", "reason\x1fcu\x1fb", "i1", True)], 5),
                     CONTACT_ISSUE_COLUMNS)  # fmt: skip
    warehouse.insert("contact_issues", contact_issue_rows([IssueLink("c1", "reason\x1fcu\x1fb", "old", False)], 4),
                     CONTACT_ISSUE_COLUMNS)  # fmt: skip
    for join_use_nulls in (0, 1):  # the session's setting (a readonly session cannot change it)
        shown = warehouse.client.query(
            f"SELECT contact_id, issue_id, is_repeat, version FROM {db}.contacts FINAL ORDER BY contact_id "
            f"SETTINGS join_use_nulls = {join_use_nulls}"
        ).result_rows
        assert shown == [("c1", "i1", True, 2), ("c2", None, None, 1)], join_use_nulls


def test_a_resum_put_off_is_recorded_and_a_writer_that_starts_makes_it(warehouse: Warehouse) -> None:
    """While catching up a flush records the minutes it owes instead of re-summing them; a crash
    before the re-sum loses nothing: the next writer finds them in metrics_minute_owed."""
    warehouse.migrate(load_migrations(migrations_dir()))
    db = warehouse.database
    counts = tuple(1 if name == "offered" else 0 for name in FIELDS)
    m = 29_100_000
    rows, touched = contribution_rows(Report("contact:o1", "owed-q", (("voice", m, counts),), version=1))
    assert warehouse.write({"contributions": rows}, {}, touched, 1, settle=False) == {"contributions": 1}

    def shown() -> list[tuple[int, int]]:
        return warehouse.client.query(
            f"SELECT toUnixTimestamp(minute) DIV 60, offered FROM {db}.metrics_minute FINAL WHERE queue = 'owed-q'"
        ).result_rows

    def owed() -> set[tuple[str, str, int]]:
        return Warehouse(warehouse.client, db).owed_on_record()

    assert shown() == [] and owed() == {("owed-q", "voice", m)}
    # the writer is gone (a crash); the next one settles what it finds owed on its first write
    restarted = Warehouse(warehouse.client, db)
    assert restarted.write({}, {}, set(), 2, settle=False) == {"metrics_minute": 1}
    assert shown() == [(m, 1)] and owed() == set()
    # owed again, then settled by a live flush of the same writer
    rows, touched = contribution_rows(Report("contact:o2", "owed-q", (("voice", m, counts),), version=1))
    restarted.write({"contributions": rows}, {}, touched, 3, settle=False)
    assert shown() == [(m, 1)] and owed() == {("owed-q", "voice", m)}
    restarted.write({}, {}, set(), 4, settle=True)
    assert shown() == [(m, 2)] and owed() == set()
