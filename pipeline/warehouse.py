"""ClickHouse, through clickhouse-connect, for both backends: the embedded engine (``chdb://<dir>``,
the default) and a server (``http(s)://user:password@host:8123[/database]``).

The schema is the versioned migrations in ``deploy/clickhouse/`` (``NNNN_name.sql``), applied in
order on start and recorded in ``<database>.schema_migrations``; each statement is idempotent,
so an interrupted start, or two workers starting together, are safe.

Hazard: the embedded engine belongs to one process. A second process cannot open the same
directory while a worker holds it: ``ccpulse query`` goes through the worker then.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import re
import threading
import time
from collections.abc import Iterable, Mapping, Sequence, Set
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from pipeline.core.counts import FIELDS, Counts
from pipeline.core.facts import MINUTE_COLUMNS, STAGE_TABLES, Minute, MinuteSums, Row, minute_row, sql_string

log = logging.getLogger("ccpulse.clickhouse")
NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
MIGRATION_FILE = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")
OWED_TABLE = "metrics_minute_owed"  # the re-sums a writer owes (deploy/clickhouse/0009_metrics_minute_owed.sql)
OWED_COLUMNS = ("minute", "queue", "channel", "version", "settled")
FORMATS = {"jsonl": "JSONEachRow", "csv": "CSVWithNames", "table": "PrettyCompactMonoBlock"}


class WarehouseError(RuntimeError):
    """ClickHouse is misconfigured (not merely unreachable): the message says what to change."""


def migrations_dir() -> Path:
    """``CCPULSE_CLICKHOUSE_MIGRATIONS``, else ``deploy/clickhouse`` beside the package (a checkout)
    or in the working directory (the container image)."""
    override = os.environ.get("CCPULSE_CLICKHOUSE_MIGRATIONS")
    candidates = [Path(override)] if override else []
    candidates += [Path(__file__).resolve().parents[1] / "deploy" / "clickhouse", Path("deploy/clickhouse")]
    for candidate in candidates:
        if candidate.is_dir() and any(candidate.glob("*.sql")):
            return candidate
    raise WarehouseError(
        "the ClickHouse migrations (deploy/clickhouse/*.sql) were not found; "
        "set CCPULSE_CLICKHOUSE_MIGRATIONS to their directory"
    )


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()

    def statements(self, database: str) -> list[str]:
        text = "\n".join(line for line in self.sql.splitlines() if not line.lstrip().startswith("--"))
        return [part.strip().replace("{database}", database) for part in text.split(";") if part.strip()]


def load_migrations(directory: Path) -> list[Migration]:
    found = []
    for path in sorted(directory.glob("*.sql")):
        match = MIGRATION_FILE.match(path.name)
        if not match:
            raise WarehouseError(f"{path}: migration files are named NNNN_name.sql (e.g. 0002_add_column.sql)")
        found.append(Migration(int(match.group(1)), match.group(2), path.read_text()))
    versions = [m.version for m in found]
    if len(set(versions)) != len(versions):
        raise WarehouseError(f"{directory}: two migrations share a version number")
    return found


def connect(url: str, readonly: bool = False, query_seconds: float | None = None) -> Any:
    """A clickhouse-connect client for ``url`` (``chdb://...`` or ``http(s)://...``); ``readonly``:
    ClickHouse refuses writes, DDL and setting changes; ``query_seconds``: ClickHouse stops a query
    that runs longer (``max_execution_time``)."""
    import clickhouse_connect

    settings: dict[str, Any] = {}
    if query_seconds is not None:  # before readonly, which forbids changing any setting after it
        settings["max_execution_time"] = query_seconds
    if readonly:
        settings["readonly"] = 1
    parts = urlsplit(url)
    if parts.scheme == "chdb":
        location = unquote(parts.path) if not parts.netloc else unquote(parts.netloc + parts.path)
        if location != ":memory:" and location not in ("memory",):
            Path(location).mkdir(parents=True, exist_ok=True)
        return clickhouse_connect.get_client(dsn=f"chdb://{location}" if location.startswith("/") else url,
                                             settings=settings)  # fmt: skip
    if parts.scheme in ("http", "https"):
        return clickhouse_connect.get_client(
            host=parts.hostname or "localhost",
            port=parts.port or (8443 if parts.scheme == "https" else 8123),
            username=unquote(parts.username or "default"),
            password=unquote(parts.password or ""),
            secure=parts.scheme == "https",
            settings=settings,
            connect_timeout=5,
            send_receive_timeout=30 if query_seconds is None else max(30, query_seconds + 10),
        )
    raise WarehouseError(
        f"CCPULSE_CLICKHOUSE_URL has scheme {parts.scheme!r}: expected chdb:///path/to/dir (the embedded engine) "
        "or http(s)://user:password@host:8123/database (a server)"
    )


def stopped_at_limit(message: str) -> bool:
    """A query's error says ClickHouse stopped it at ``CCPULSE_QUERY_SECONDS`` (``max_execution_time``)."""
    return "TIMEOUT_EXCEEDED" in message


def with_limit_hint(message: str) -> str:
    """A query's error, with what to do when ClickHouse stopped it at ``CCPULSE_QUERY_SECONDS``."""
    if not stopped_at_limit(message):
        return message
    return (f"{message.rstrip()}\nThe limit is CCPULSE_QUERY_SECONDS: narrow the query (fewer days, one queue, "
            "metrics_minute rather than contacts), or raise the limit")  # fmt: skip


def database_of(url: str, default: str) -> str:
    parts = urlsplit(url)
    name = parts.path.strip("/") if parts.scheme in ("http", "https") and parts.path.strip("/") else default
    if not NAME.match(name):
        raise WarehouseError(f"ClickHouse database {name!r}: letters, digits and underscores only")
    return name


class Warehouse:
    """The tables of one database: migrations, inserts and the minute sums behind metrics_minute.

    Hazard: the embedded engine is shared by every client of the process (in a worker's ClickHouse
    writer process: its writer and its query thread). Calls into it are serialised here, one at a
    time, so that a read never runs inside the engine while a write does (a server needs no such
    care)."""

    _embedded = threading.RLock()

    def __init__(self, client: Any, database: str) -> None:
        self.client = client
        self.database = database
        self._turn = self._embedded if type(client).__name__ == "ChdbClient" else contextlib.nullcontext()
        self._schemas: dict[tuple[str, tuple[str, ...]], Any] = {}  # (table, columns) -> Arrow schema
        self._owed: set[Minute] | None = None  # metrics_minute re-sums owed (None: not read yet)

    def migrate(self, migrations: Sequence[Migration]) -> list[str]:
        """Apply the migrations not applied yet, in order; returns their names."""
        with self._turn:
            return self._migrate(migrations)

    def _migrate(self, migrations: Sequence[Migration]) -> list[str]:
        db = self.database
        self.client.command(f"CREATE DATABASE IF NOT EXISTS {db}")
        self.client.command(
            f"CREATE TABLE IF NOT EXISTS {db}.schema_migrations (version UInt32, name String, checksum String, "
            "applied_at DateTime64(3, 'UTC') DEFAULT now64(3)) ENGINE = ReplacingMergeTree ORDER BY version"
        )
        applied = {
            int(version): checksum
            for version, checksum in self.client.query(
                f"SELECT version, checksum FROM {db}.schema_migrations FINAL"
            ).result_rows
        }
        done = []
        for migration in migrations:
            if migration.version in applied:
                if applied[migration.version] != migration.checksum:
                    log.warning(
                        "migration %04d_%s was changed after it was applied; changes go in a new migration file",
                        migration.version, migration.name,
                    )  # fmt: skip
                continue
            for statement in migration.statements(db):
                self.client.command(statement)
            self.client.insert(f"{db}.schema_migrations", [[migration.version, migration.name, migration.checksum]],
                               column_names=["version", "name", "checksum"])  # fmt: skip
            done.append(f"{migration.version:04d}_{migration.name}")
        return done

    def insert(self, table: str, rows: Sequence[Row], columns: Sequence[str]) -> None:
        """The rows (tuples in ``columns``' order), sent as Arrow columns (pipeline/arrow_rows.py)."""
        if rows:
            from pipeline.arrow_rows import arrow_table  # pyarrow: only where ClickHouse is written

            with self._turn:
                columnar = arrow_table(rows, self._schema(table, tuple(columns)))
                self.client.insert_arrow(f"{self.database}.{table}", columnar)

    def _schema(self, table: str, columns: tuple[str, ...]) -> Any:
        known = self._schemas.get((table, columns))
        if known is None:
            from pipeline.arrow_rows import schema

            described = self.client.query(f"DESCRIBE TABLE {self.database}.{table}").result_rows
            known = self._schemas[(table, columns)] = schema(columns, {row[0]: row[1] for row in described})
        return known

    def write(self, rows: Mapping[str, Sequence[Row]], minutes: MinuteSums, touched: Set[Minute],
              version: int, settle: bool = True) -> dict[str, int]:  # fmt: skip
        """One flush of the sink: each table's rows, then the ``metrics_minute`` rows: of
        ``minutes`` as given (the board's sums), and of the (queue, channel, minute)s ``touched``
        summed from their contributions as they now are (so the contributions go first). Returns
        the rows written per table.

        With ``settle`` false (a worker catching up) the ``touched`` minutes are not summed yet
        but owed: recorded in ``metrics_minute_owed`` (durable before the flush's messages are
        committed) and summed by a later write with ``settle`` true, together with every minute
        owed then. A writer's first write settles what an earlier one left owed (a crash).

        ``version`` is the least version the ``metrics_minute`` rows take: they take the clock
        (µs) *after* the inserts, just before the re-sum, if later. With several writers, the row
        of greatest version then comes from a re-sum that began after every row any other
        re-sum of that minute saw was inserted (docs/architecture.md, "several writers")."""
        written: dict[str, int] = {}
        for table, columns in STAGE_TABLES.items():
            if rows.get(table):
                self.insert(table, rows[table], columns)
                written[table] = len(rows[table])
        version = max(version, time.time_ns() // 1000)
        if self._owed is None:  # the first write: what a writer before this one left owed
            self._owed = self.owed_on_record()
            settle = settle or bool(self._owed)
        found: dict[Minute, Counts | tuple[int, ...] | None] = dict(minutes)
        if settle:
            due = self._owed | touched
            sums = self.minute_sums(due) if due else {}
            found.update((key, sums.get(key)) for key in due)
        elif touched:  # owed again if owed already: its latest contributions are after any re-sum that settled it
            self._record_owed(touched, version, settled=0)
            self._owed |= touched
        if found:
            shown = [minute_row(q, c, m, found[(q, c, m)], version) for q, c, m in sorted(found)]
            self.insert("metrics_minute", shown, MINUTE_COLUMNS)
            written["metrics_minute"] = len(shown)
        if settle and self._owed:
            self._record_owed(self._owed, version, settled=1)
            self._owed = set()
        return written

    def _record_owed(self, minutes: Set[Minute], version: int, settled: int) -> None:
        """``metrics_minute_owed`` rows: these minutes' re-sums owed (0) or made (1) (see :meth:`write`)."""
        self.insert(OWED_TABLE, [(m * 60, q, c, version, settled) for q, c, m in sorted(minutes)], OWED_COLUMNS)

    def owed_on_record(self) -> set[Minute]:
        """The minutes whose re-sum ``metrics_minute_owed`` records as owed and not settled."""
        with self._turn:
            found = self.client.query(
                f"SELECT queue, channel, toUInt32(minute) FROM {self.database}.{OWED_TABLE} FINAL"
            ).result_rows  # FINAL leaves out the settled (settled is the table's is_deleted column)
        return {(queue, channel, int(start) // 60) for queue, channel, start in found}

    def minute_sums(self, touched: Iterable[tuple[str, str, int]]) -> dict[tuple[str, str, int], Counts]:
        """The sums of the current contributions of these (queue, channel, minute)s."""
        keys = sorted(touched)
        found: dict[tuple[str, str, int], Counts] = {}
        for start in range(0, len(keys), 2000):
            chunk = keys[start : start + 2000]
            # plain numbers for the minutes: a function call per key (toDateTime) made the query's
            # analysis cost more than its run (531 vs 210 ms for 2,000 keys, measured); the index
            # is used either way
            wanted = ",".join(f"({sql_string(q)},{sql_string(c)},{m * 60})" for q, c, m in chunk)
            sums = ", ".join(f"sum({name})" for name in FIELDS)
            with self._turn:
                rows = self.client.query(
                    f"SELECT queue, channel, toUInt32(minute), {sums} FROM {self.database}.contributions FINAL "
                    f"WHERE (queue, channel, minute) IN ({wanted}) GROUP BY queue, channel, minute"
                ).result_rows
            for queue, channel, minute_start, *values in rows:
                found[(queue, channel, int(minute_start) // 60)] = Counts(*(int(v) for v in values))
        return found

    def query(self, sql: str, output: str = "jsonl") -> bytes:
        """Raw output of one query in ``output`` (jsonl, csv or table)."""
        if output not in FORMATS:
            raise WarehouseError(f"unknown format {output!r}: expected {', '.join(FORMATS)}")
        with self._turn:
            result: bytes = self.client.raw_query(sql.strip().rstrip(";"), fmt=FORMATS[output])
        return result

    def close(self) -> None:
        try:
            with self._turn:
                self.client.close()
        except Exception:  # noqa: BLE001 - closing is best effort
            log.debug("closing the ClickHouse client failed", exc_info=True)
