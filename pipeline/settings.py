"""Configuration, resolved once from the environment into a frozen object and passed down.

Every knob is a ``CCPULSE_*`` variable (a ``.env`` file in the working directory may set them;
the real environment wins). Secrets are held in :class:`Secret`, whose ``repr`` and ``str``
never show the value, so a settings object can be logged whole.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

CLOCKS = ("wall", "event")


class SettingsError(ValueError):
    """A configuration value is wrong; the message names the variable and what it takes."""


@dataclass(frozen=True)
class Secret:
    """A credential: usable through ``reveal()``, never printed."""

    _value: str = field(repr=False)

    def reveal(self) -> str:
        return self._value

    def __str__(self) -> str:
        return "***"

    def __repr__(self) -> str:
        return "Secret('***')"

    def __bool__(self) -> bool:
        return bool(self._value)


@dataclass(frozen=True)
class KafkaSecurity:
    """Client security for every Kafka connection (consumer, producer, admin)."""

    protocol: str = "PLAINTEXT"  # PLAINTEXT | SSL | SASL_PLAINTEXT | SASL_SSL
    sasl_mechanism: str | None = None  # PLAIN | SCRAM-SHA-256 | SCRAM-SHA-512
    sasl_username: str | None = None
    sasl_password: Secret | None = None
    ssl_cafile: str | None = None
    ssl_certfile: str | None = None
    ssl_keyfile: str | None = None

    def kafka_python_options(self) -> dict[str, object]:
        """Keyword arguments for kafka-python's clients."""
        options: dict[str, object] = {"security_protocol": self.protocol}
        if self.sasl_mechanism:
            options["sasl_mechanism"] = self.sasl_mechanism
            options["sasl_plain_username"] = self.sasl_username
            options["sasl_plain_password"] = self.sasl_password.reveal() if self.sasl_password else None
        for name in ("ssl_cafile", "ssl_certfile", "ssl_keyfile"):
            if getattr(self, name):
                options[name] = getattr(self, name)
        return options

    def ssl_context(self) -> Any:
        """The TLS context of SSL and SASL_SSL connections (aiokafka and Faust take a context)."""
        import ssl

        context = ssl.create_default_context(cafile=self.ssl_cafile)
        if self.ssl_certfile:
            context.load_cert_chain(self.ssl_certfile, self.ssl_keyfile)
        return context

    def aiokafka_options(self) -> dict[str, object]:
        """Keyword arguments for aiokafka's clients."""
        options: dict[str, object] = {"security_protocol": self.protocol}
        if self.sasl_mechanism:
            options["sasl_mechanism"] = self.sasl_mechanism
            options["sasl_plain_username"] = self.sasl_username
            options["sasl_plain_password"] = self.sasl_password.reveal() if self.sasl_password else None
        if self.protocol in ("SSL", "SASL_SSL"):
            options["ssl_context"] = self.ssl_context()
        return options


@dataclass(frozen=True)
class Settings:
    kafka_bootstrap: str = "127.0.0.1:9092"
    topic: str = "cc.events"
    dlq_topic: str = "cc.events.dlq"
    partitions: int = 8
    app_id: str = "ccpulse"
    clickhouse_url: Secret = Secret("")  # empty: the embedded engine under the data dir
    data_dir: Path = Path(".ccpulse")
    http_host: str = "127.0.0.1"
    http_port: int = 6066
    clock: Literal["wall", "event"] = "wall"
    timezone: str = "UTC"
    timezone_given: bool = False  # CCPULSE_TIMEZONE was set (ccpulse up keeps it rather than choosing)
    targets_file: Path | None = None
    # A batch's most input events (one getmany). Only a backlog fills one; larger batches cost less
    # per event (a contact or agent busy in a batch is written and sent once): 8,000 against 2,000
    # read a 400,000-event backlog 14-31% faster (docs/performance.md). About 0.5 s of the loop each;
    # the stages give the loop a turn between batches (pipeline/stage_runner.py).
    batch_size: int = 8000
    batch_seconds: float = 0.1
    # The same wait for the board and the issues stage while caught up (live traffic): fewer, fuller
    # batches for a few ms of freshness (docs/performance.md, "The stages' live linger"). 0: no wait.
    live_batch_seconds: float = 0.03
    log_level: str = "info"
    # How long the group waits for a silent worker before handing its partitions to others:
    # the recovery time after a crash. Lower is faster recovery; too low evicts a busy worker.
    session_timeout_seconds: float = 10.0
    # How long a contact's state is kept after its last event: late events (duplicates,
    # surveys) within it are exact; after it, a contact is forgotten (its contribution stays).
    # 26 h covers the longest window ("today", up to 25 h on a DST day). Waiting contacts are
    # kept as long as the 7-day waiting rule needs them.
    contact_retention_hours: float = 26.0
    # A stage with messages waiting that has committed nothing for this long is stuck (a consumer
    # that went silent after a coordinator change has been seen): the worker exits with code 3 so
    # that its supervisor restarts it; state is restored from the changelogs. 0 turns this off.
    stall_seconds: float = 120.0
    stop_seconds: float = 25.0  # a stop that takes longer (Kafka unreachable) ends the process: nothing is lost
    kafka_security: KafkaSecurity = KafkaSecurity()
    clickhouse_database: str = "ccpulse"
    # The sink: rows are written when this many are pending, or when the oldest has waited this
    # long; past sink_max_rows pending (ClickHouse slow or down) the stages stop consuming.
    sink_flush_rows: int = 20_000
    sink_flush_seconds: float = 0.5
    sink_max_rows: int = 200_000
    # While the worker is this many messages behind or more it is catching up: the sink writes
    # larger batches and puts off re-sums of old minutes for up to sink_resum_seconds (0: always).
    catch_up_lag: int = 20_000
    sink_resum_seconds: float = 10.0
    sink_fault_file: str | None = None  # tests: while this file exists, writes fail
    # HMAC-SHA256 key for customer ids (CCPULSE_CUSTOMER_KEY or CCPULSE_CUSTOMER_KEY_FILE)
    customer_key: Secret | None = None
    query_token: Secret | None = None  # CCPULSE_QUERY_TOKEN: required by /query when set
    # A read-only query (/query, ccpulse query, the drill-down) that runs longer is stopped by
    # ClickHouse (max_execution_time): with the embedded engine, a query holds the engine the sink's
    # writes need (docs/operations.md, "Queries and the worker")
    query_seconds: float = 120.0
    # TaskRouter event callbacks (docs/sources.md): CCPULSE_TWILIO_AUTH_TOKEN or ..._FILE; the
    # public URL Twilio posts to, when a proxy changes it (CCPULSE_TWILIO_WEBHOOK_URL)
    twilio_auth_token: Secret | None = None
    twilio_webhook_url: str | None = None
    # Distinct queue label values on /metrics; the rest are folded into queue="_other"
    max_queue_labels: int = 500
    # The contacts behind the figures (/api/contacts, the wallboard's drill-down): customer data, off
    # unless CCPULSE_DRILLDOWN=on (docs/operations.md: behind your own proxy and login)
    drilldown: bool = False

    @property
    def sink_enabled(self) -> bool:
        return self.clickhouse_url.reveal().lower() not in ("off", "none", "disabled")

    @cached_property  # asked per batch (single_writer): resolving data_dir costs file-system calls
    def effective_clickhouse_url(self) -> Secret:
        if self.clickhouse_url:
            return self.clickhouse_url
        return Secret(f"chdb://{(self.data_dir / 'clickhouse').resolve()}")

    @cached_property
    def single_writer(self) -> bool:
        """The embedded engine: one worker writes it, so no other worker can hold a queue's board
        at the same time (metrics_minute from the board's sums, pipeline/core/facts.py)."""
        return self.effective_clickhouse_url.reveal().startswith("chdb:")

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @property
    def web_url(self) -> str:
        """The worker's web address: the configured port, or with ``CCPULSE_HTTP_PORT=0`` the
        address the running worker published in the data dir (empty when none runs)."""
        from pipeline import web_address

        if self.http_port == 0:
            return web_address.published(web_address.address_file(self.data_dir)) or ""
        return web_address.url_of(self.http_host, self.http_port)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, env_file: Path | None = Path(".env")) -> Settings:
        """Resolve settings from ``environ`` (default: the process environment) over ``env_file``."""
        values: dict[str, str] = {}
        if env_file is not None and env_file.is_file():
            from dotenv import dotenv_values

            values.update({k: v for k, v in dotenv_values(env_file).items() if v is not None})
        values.update(os.environ if environ is None else environ)
        return cls._from_mapping(values)

    @classmethod
    def _from_mapping(cls, env: Mapping[str, str]) -> Settings:
        read = _Env(env)
        get, integer, number = read.get, read.integer, read.number
        clock = get("CCPULSE_CLOCK", "wall").lower()
        if clock not in CLOCKS:
            raise SettingsError(f"CCPULSE_CLOCK={clock!r}: expected 'wall' (the default) or 'event'")
        timezone = get("CCPULSE_TIMEZONE", "UTC")
        try:
            ZoneInfo(timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise SettingsError(
                f"CCPULSE_TIMEZONE={timezone!r}: not an IANA time zone (e.g. UTC, Europe/Paris, Asia/Tokyo)"
            ) from None
        targets = get("CCPULSE_TARGETS", "")
        if targets and not Path(targets).is_file():
            raise SettingsError(f"CCPULSE_TARGETS={targets!r}: no such file")
        security = _kafka_security(read)
        log_level = get("CCPULSE_LOG_LEVEL", "info").lower()
        if log_level not in ("debug", "info", "warning", "error"):
            raise SettingsError(f"CCPULSE_LOG_LEVEL={log_level!r}: expected debug, info, warning or error")
        customer_key = _secret(env, "CCPULSE_CUSTOMER_KEY")
        if customer_key and len(customer_key) < 16:
            raise SettingsError(
                "CCPULSE_CUSTOMER_KEY is too short to protect customer ids: use at least 16 characters, "
                "e.g. the output of `python -c 'import secrets; print(secrets.token_hex(32))'`"
            )
        database = get("CCPULSE_CLICKHOUSE_DATABASE", cls.clickhouse_database)
        if not database.replace("_", "a").isalnum() or database[0].isdigit():
            raise SettingsError(f"CCPULSE_CLICKHOUSE_DATABASE={database!r}: letters, digits and underscores only")
        token = env.get("CCPULSE_QUERY_TOKEN", "")
        twilio_token = _secret(env, "CCPULSE_TWILIO_AUTH_TOKEN")
        return cls(
            clickhouse_database=database,
            max_queue_labels=integer("CCPULSE_MAX_QUEUE_LABELS", cls.max_queue_labels, 1, 100_000),
            drilldown=_switch(env, "CCPULSE_DRILLDOWN"),
            sink_flush_rows=integer("CCPULSE_SINK_FLUSH_ROWS", cls.sink_flush_rows, 1, 10_000_000),
            sink_flush_seconds=number("CCPULSE_SINK_FLUSH_SECONDS", cls.sink_flush_seconds, 0.01, 60.0),
            sink_max_rows=integer("CCPULSE_SINK_MAX_ROWS", cls.sink_max_rows, 1000, 100_000_000),
            catch_up_lag=integer("CCPULSE_CATCH_UP_LAG", cls.catch_up_lag, 0, 1_000_000_000),
            sink_resum_seconds=number("CCPULSE_SINK_RESUM_SECONDS", cls.sink_resum_seconds, 0.0, 86_400.0),
            sink_fault_file=get("CCPULSE_SINK_FAULT_FILE", "") or None,
            customer_key=Secret(customer_key) if customer_key else None,
            query_token=Secret(token) if token else None,
            query_seconds=number("CCPULSE_QUERY_SECONDS", cls.query_seconds, 1.0, 86_400.0),
            twilio_auth_token=Secret(twilio_token) if twilio_token else None,
            twilio_webhook_url=get("CCPULSE_TWILIO_WEBHOOK_URL", "") or None,
            kafka_bootstrap=get("CCPULSE_KAFKA_BOOTSTRAP", cls.kafka_bootstrap),
            topic=get("CCPULSE_TOPIC", cls.topic),
            dlq_topic=get("CCPULSE_DLQ_TOPIC", cls.dlq_topic),
            partitions=integer("CCPULSE_PARTITIONS", cls.partitions, 1, 1024),
            app_id=get("CCPULSE_APP_ID", cls.app_id),
            clickhouse_url=Secret(get("CCPULSE_CLICKHOUSE_URL", "")),
            data_dir=Path(get("CCPULSE_DATA_DIR", str(cls.data_dir))),
            http_host=get("CCPULSE_HTTP_HOST", cls.http_host),
            http_port=integer("CCPULSE_HTTP_PORT", cls.http_port, 0, 65535),
            clock=clock,  # type: ignore[arg-type]
            timezone=timezone,
            timezone_given=bool(env.get("CCPULSE_TIMEZONE", "").strip()),
            targets_file=Path(targets) if targets else None,
            batch_size=integer("CCPULSE_BATCH_SIZE", cls.batch_size, 1, 1_000_000),
            batch_seconds=number("CCPULSE_BATCH_SECONDS", cls.batch_seconds, 0.001, 60.0),
            live_batch_seconds=number("CCPULSE_LIVE_BATCH_SECONDS", cls.live_batch_seconds, 0.0, 60.0),
            log_level=log_level,
            contact_retention_hours=number(
                "CCPULSE_CONTACT_RETENTION_HOURS", cls.contact_retention_hours, 1.0, 24 * 90
            ),
            session_timeout_seconds=number("CCPULSE_KAFKA_SESSION_TIMEOUT", cls.session_timeout_seconds, 6.0, 300.0),
            stall_seconds=number("CCPULSE_STALL_SECONDS", cls.stall_seconds, 0.0, 86_400.0),
            stop_seconds=number("CCPULSE_STOP_SECONDS", cls.stop_seconds, 0.0, 86_400.0),
            kafka_security=security,
        )


class _Env:
    """Settings read from environment variables, with a message naming the variable when wrong."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self.env = env

    def get(self, name: str, default: str) -> str:
        value = self.env.get(name, "").strip()
        return value or default

    def integer(self, name: str, default: int, low: int, high: int) -> int:
        return int(self._ranged(name, default, low, high, int, "a whole number"))

    def number(self, name: str, default: float, low: float, high: float) -> float:
        return self._ranged(name, default, low, high, float, "a number")

    def _ranged(self, name: str, default: float, low: float, high: float, kind: type, what: str) -> float:
        raw = self.get(name, str(default))
        try:
            value = kind(raw)
        except ValueError:
            raise SettingsError(f"{name}={raw!r}: expected {what}") from None
        if not low <= value <= high:
            raise SettingsError(f"{name}={value}: expected {low}..{high}")
        return value  # type: ignore[no-any-return]


def _kafka_security(read: _Env) -> KafkaSecurity:
    """CCPULSE_KAFKA_SECURITY_PROTOCOL, _SASL_*, _SSL_*."""
    get, env = read.get, read.env
    password = env.get("CCPULSE_KAFKA_SASL_PASSWORD", "")
    security = KafkaSecurity(
        protocol=get("CCPULSE_KAFKA_SECURITY_PROTOCOL", "PLAINTEXT").upper(),
        sasl_mechanism=get("CCPULSE_KAFKA_SASL_MECHANISM", "") or None,
        sasl_username=get("CCPULSE_KAFKA_SASL_USERNAME", "") or None,
        sasl_password=Secret(password) if password else None,
        ssl_cafile=get("CCPULSE_KAFKA_SSL_CAFILE", "") or None,
        ssl_certfile=get("CCPULSE_KAFKA_SSL_CERTFILE", "") or None,
        ssl_keyfile=get("CCPULSE_KAFKA_SSL_KEYFILE", "") or None,
    )
    if security.protocol not in ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"):
        raise SettingsError(
            f"CCPULSE_KAFKA_SECURITY_PROTOCOL={security.protocol!r}: "
            "expected PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL"
        )
    return security


def _switch(env: Mapping[str, str], name: str) -> bool:
    """``on`` or ``off`` (also true/false, yes/no, 1/0); off when unset."""
    value = env.get(name, "").strip().lower()
    if value in ("", "off", "false", "no", "0"):
        return False
    if value in ("on", "true", "yes", "1"):
        return True
    raise SettingsError(f"{name}={value!r}: expected on or off")


def _secret(env: Mapping[str, str], name: str) -> str:
    """A credential from ``name`` or from the file ``name_FILE`` (not both); "" when neither is set."""
    value, path = env.get(name, ""), env.get(f"{name}_FILE", "").strip()
    if value and path:
        raise SettingsError(f"set {name} or {name}_FILE, not both")
    if not path:
        return value
    try:
        return Path(path).read_text().strip()
    except OSError as problem:
        raise SettingsError(f"{name}_FILE={path!r}: cannot read it ({problem.strerror})") from None
