"""The worker, built in one place: its three stages, its timers and its web views.

    input topic ─▶ ingest + contacts pass ──issue updates──▶ <app>-issue-updates ─▶ issues ─┐
       (by contact)   │ │ └─invalid──▶ dead-letter topic                                    │ reports
                      │ └─contacts' state──▶ <app>-contact-state (changelog)                ▼
                      └─partials, clock ticks (by queue) ─────────────▶ <app>-reports ─▶ board ─▶ /metrics

Every stage reads its topic in bulk with a consumer of its own, keeps its state per partition in
plain dicts restored from its changelog, and commits in order once what a batch produced is
acknowledged and its rows are durable (``pipeline/stage_runner.py``; the stages:
``pipeline/ingest.py``, ``pipeline/issues_stage.py``, ``pipeline/board_stage.py``). Faust runs
the services, the timers and the web server; its consumer reads none of the stages' topics (it
stopped delivering them under load: docs/architecture.md, step 6). Delivery is at-least-once
everywhere and every step is idempotent: a message applied twice changes nothing, and each step
re-sends its current output on a replay, so output lost in a crash is sent after all. Counters
(events, dead letters, duplicates, conflicts) advance only for offsets beyond the partition's
recorded progress, so a replay never counts twice.

Every internal message is sent to an explicit partition (``partitions.partition_of``), and every
changelog record goes to the partition of the state it belongs to: each piece of state has one owner.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import faust
import orjson
from prometheus_client import CollectorRegistry

from pipeline import console
from pipeline.board_stage import BoardStage
from pipeline.changelog import RECORD_BATCH_BYTES
from pipeline.core.agent_view import agent_list, agents_offline
from pipeline.core.drilldown import contacts_list, contacts_sql
from pipeline.core.privacy import Pseudonyms
from pipeline.core.progress import PartitionProgress, StageProgress, total
from pipeline.core.snapshot import snapshot
from pipeline.core.stall import StallWatch, kafka_quiet
from pipeline.core.targets import Targets
from pipeline.exposition import (
    BoardCollector,
    ChangelogWatchCollector,
    LagCollector,
    PipelineHealthCollector,
    SinkCollector,
    StateSizeCollector,
)
from pipeline.ingest import IngestStage
from pipeline.issues_stage import IssuesStage
from pipeline.kafka_edge import aiokafka_producer, consumer_client, producer_backlog, started_producer
from pipeline.kafka_io import DEAD_LETTER_TOPIC_BYTES
from pipeline.kafka_watch import CHECK_SECONDS as METADATA_CHECK_SECONDS
from pipeline.kafka_watch import MetadataWatch
from pipeline.loop_watch import LoopWatch
from pipeline.settings import Settings
from pipeline.sink import Sink
from pipeline.stage_runner import StageRunner
from pipeline.web import Views, WebServer
from pipeline.web_address import address_file
from pipeline.webhooks import TaskRouterCallbacks, producer_send

log = logging.getLogger("ccpulse.worker")
progress_log = logging.getLogger("ccpulse.progress")
HOUR_US = 3600 * 1_000_000
EXIT_STALLED = 3


def faust_app(settings: Settings) -> faust.App:
    security = settings.kafka_security
    credentials: faust.SASLCredentials | faust.SSLCredentials | None = None
    if security.sasl_mechanism:
        credentials = faust.SASLCredentials(
            username=security.sasl_username,
            password=security.sasl_password.reveal() if security.sasl_password else None,
            mechanism=security.sasl_mechanism,
            ssl_context=security.ssl_context() if security.protocol == "SASL_SSL" else None,
        )
    elif security.protocol == "SSL":
        credentials = faust.SSLCredentials(security.ssl_context())
    return faust.App(
        settings.app_id,
        broker=[f"kafka://{address}" for address in settings.kafka_bootstrap.split(",")],
        broker_credentials=credentials,
        store="memory://",
        datadir=str((settings.data_dir / "faust").resolve()),
        web_enabled=True,  # served by pipeline.web.WebServer, registered in build()
        topic_partitions=settings.partitions,
        processing_guarantee="at_least_once",
        consumer_auto_offset_reset="earliest",
        producer_acks=-1,
        broker_commit_interval=1.0,
        broker_session_timeout=settings.session_timeout_seconds,
        broker_heartbeat_interval=min(3.0, settings.session_timeout_seconds / 3),
        table_standby_replicas=0,
        producer_max_batch_size=RECORD_BATCH_BYTES,
        producer_max_request_size=DEAD_LETTER_TOPIC_BYTES,  # a dead letter is a whole input message and headers
        stream_wait_empty=False,
        # A topic created while the group formed (a fresh broker) is missing from the first
        # assignment; the consumer notices it at its next metadata refresh (Kafka's default: 5 min).
        consumer_metadata_max_age_ms=15_000,
    )


def stage_topics(app_id: str) -> tuple[str, str]:
    """The internal topics of the issues and board stages."""
    return f"{app_id}-issue-updates", f"{app_id}-reports"


def state_topic(app_id: str) -> str:
    """The contacts pass's changelog: one partition per input partition (compacted)."""
    return f"{app_id}-contact-state"


def build(settings: Settings, registry: CollectorRegistry | None = None, sink: Sink | None = None) -> faust.App:
    """Assemble the worker: its stages, timers, collectors and web views. With a ``sink``, every
    stage writes its rows to ClickHouse and holds its messages until they are written."""
    app = faust_app(settings)
    # collectors without describe(): /metrics?name[]=… (pipeline.web) reads them and keeps what is asked
    registry = registry or CollectorRegistry(support_collectors_without_names=True)
    wiring = Wiring.of(app, settings, sink)
    for stage in wiring.stages.values():
        app.service(stage)  # type: ignore[arg-type]
    _watch_lag(app, wiring)
    _watch_the_rest(app, wiring)
    _register(registry, wiring)
    app.web_server(WebServer(wiring.views(registry), settings.http_host, settings.http_port,
                             address_file(settings.data_dir)))  # fmt: skip
    return app


@dataclass
class Wiring:
    """What the timers, collectors and web views of one worker read: its stages, the sink, *now*."""

    app: faust.App
    settings: Settings
    sink: Sink | None
    targets: Targets
    pseudonyms: Pseudonyms
    ingest: IngestStage
    issues: IssuesStage
    board: BoardStage
    input_seen: list[float]  # wall time the ingest stage last took a batch (or the start)
    lag: dict[str, int] = field(default_factory=dict)  # messages waiting, per stage
    lag_rounds: int = 0  # rounds of measure_lag in which every stage's lag was known
    lag_asked_at: float = 0.0  # when the latest such round began (Unix time)
    last_complete: dict[str, Any] = field(default_factory=dict)
    shown_customer: Callable[[str], str] = str  # customer ids on the contact lists

    @classmethod
    def of(cls, app: faust.App, settings: Settings, sink: Sink | None) -> Wiring:
        """Every stage reads with a consumer of its own (pipeline/stage_runner.py); Faust's consumer
        reads nothing. Faust runs the services, the timers and the web server."""
        targets = Targets.load(settings.targets_file, settings.zone)
        pseudonyms = Pseudonyms(settings.customer_key.reveal() if settings.customer_key else None)
        issue_topic, board_topic = stage_topics(settings.app_id)
        input_seen = [time.time()]
        seen = lambda: input_seen.__setitem__(0, time.time())  # noqa: E731
        ingest = IngestStage(app=app, settings=settings, sink=sink, pseudonyms=pseudonyms, targets=targets,
                             state_topic=state_topic(settings.app_id), issue_topic=issue_topic,
                             board_topic=board_topic, on_batch=seen)  # fmt: skip
        issues = IssuesStage(app=app, settings=settings, sink=sink, targets=targets, issue_topic=issue_topic,
                             board_topic=board_topic)  # fmt: skip
        board = BoardStage(
            app=app, settings=settings, sink=sink, board_topic=board_topic, clock=lambda: wiring.clock_us()
        )  # fmt: skip  (wiring: bound below, read later)
        wiring = cls(app, settings, sink, targets, pseudonyms, ingest, issues, board, input_seen)
        # customer ids on the lists: as stored when pseudonymised there, else with a key of this process
        wiring.shown_customer = (lambda known: known) if pseudonyms.active else Pseudonyms(
            secrets.token_hex(32)).customer  # fmt: skip
        return wiring

    @property
    def stages(self) -> dict[str, StageRunner]:
        return {"ingest": self.ingest, "issues": self.issues, "board": self.board}

    def clock_us(self) -> int:
        return time.time_ns() // 1000 if self.settings.clock == "wall" else self.board.latest_event_us()

    def idle_seconds(self) -> float:
        return round(max(0.0, time.time() - self.input_seen[0]), 1)

    def kafka_silent(self, now: float | None = None) -> float | None:
        """Seconds since a stage's question to Kafka went unanswered, if none was answered since
        (``StageRunner.kafka_silent_since``); None while Kafka answers."""
        silent = [since for stage in self.stages.values() if (since := stage.kafka_silent_since()) is not None]
        return (time.monotonic() if now is None else now) - min(silent) if silent else None

    # ---------------------------------------------------------------- counters, steady across restores
    def steady(self, name: str, read: Callable[[], Any]) -> Any:
        """``read()``, or while tables are being restored (or the ingest stage takes partitions
        over) its last complete reading: a half-restored counter would look like a reset to
        Prometheus."""
        if self.ingest.handing_over:
            return self.last_complete.get(name) or read()
        self.last_complete[name] = value = read()
        return value

    def ingest_progress(self) -> PartitionProgress:
        return total(self.ingest.total_progress())

    def contact_health(self) -> StageProgress:
        return self.steady("contacts", self._read_contact_health)  # type: ignore[no-any-return]

    def _read_contact_health(self) -> StageProgress:
        summed = StageProgress()
        for one in list(self.ingest.passes.values()):
            summed.duplicates += one.progress.duplicates
            summed.conflicts += one.progress.conflicts
        return summed

    def state_sizes(self) -> dict[str, int]:
        passes = list(self.ingest.passes.values())
        return {"contacts": sum(p.contacts() for p in passes), "agents": sum(p.agents() for p in passes),
                "issues": self.issues.keys(), "reports": self.board.keys()}  # fmt: skip

    # ---------------------------------------------------------------- documents of the web views
    def board_document(self) -> dict[str, Any]:
        settings = self.settings
        document = snapshot(self.board.board, self.clock_us(), settings.zone, self.targets)
        document["zone"] = settings.zone.key
        document["input_idle_seconds"] = self.idle_seconds()
        document["generated_at"] = time.time()
        document["drilldown"] = self.drilldown  # tiles open /wallboard/contacts
        return document

    @property
    def drilldown(self) -> bool:
        return self.settings.drilldown and self.sink is not None and self.sink.query is not None

    def agents_document(self, queues: frozenset[str] = frozenset()) -> dict[str, Any]:
        now, board = self.clock_us(), self.board.board
        agents = agent_list(board, now, self.targets.agent_day(self.settings.zone), queues)
        return {"agents": agents, "offline": agents_offline(board), "now": now / 1_000_000,
                "zone": self.settings.zone.key, "input_idle_seconds": self.idle_seconds()}  # fmt: skip

    def contacts_document(self, state: str, queue: str, channel: str) -> dict[str, Any]:
        assert self.sink is not None and self.sink.query is not None
        now, settings = self.clock_us(), self.settings
        day = self.targets.day_for(queue, settings.zone)
        sql = contacts_sql(state, queue, channel, now, day, settings.clickhouse_database)
        rows = [orjson.loads(line) for line in self.sink.query(sql, "jsonl").splitlines() if line.strip()]
        listed = contacts_list(rows, state, queue, now, self.targets, self.shown_customer)
        return {"queue": queue, "channel": channel, "state": state, "now": now / 1_000_000, **listed}

    def status_document(self) -> dict[str, Any]:
        progress, health, settings = self.ingest_progress(), self.contact_health(), self.settings
        return {
            "app": settings.app_id,
            "topic": settings.topic,
            "clock": settings.clock,
            "now_us": self.clock_us(),
            "owned_partitions": {
                "input": self.ingest.owned(),
                "issues": self.issues.owned(),
                "board": self.board.owned(),
            },  # fmt: skip
            "events_by_type": dict(progress.events_by_type),
            "invalid_by_reason": dict(progress.invalid_by_reason),
            "keyed_otherwise": progress.keyed_otherwise,
            "duplicates": health.duplicates,
            "conflicts": health.conflicts,
            "board_reports": len(self.board.board.reports),
            "board_partials": len(self.board.board.partials),
            "lag": dict(self.lag),
            "sink": _sink_status(self.sink),
        }

    def views(self, registry: CollectorRegistry) -> Views:
        sink, settings, app = self.sink, self.settings, self.app
        return Views(registry=registry, board_document=self.board_document, status_document=self.status_document,
                     query=sink.query if sink is not None else None, query_token=settings.query_token,
                     stopping=lambda: bool(app.should_stop), sources=_sources(settings, app, registry),
                     agents_document=self.agents_document,
                     contacts_document=self.contacts_document if self.drilldown else None)  # fmt: skip


def _register(registry: CollectorRegistry, wiring: Wiring) -> None:
    """The /metrics collectors."""
    settings, sink = wiring.settings, wiring.sink
    registry.register(PipelineHealthCollector(lambda: wiring.steady("ingest", wiring.ingest_progress),
                                              wiring.contact_health, lambda: len(wiring.ingest.owned())))  # fmt: skip
    registry.register(StateSizeCollector(wiring.state_sizes))
    registry.register(BoardCollector(lambda: wiring.board.board, wiring.clock_us, settings.zone, wiring.targets,
                                     settings.max_queue_labels))  # fmt: skip
    registry.register(LagCollector(lambda: dict(wiring.lag), wiring.kafka_silent,
                                   lambda: (wiring.lag_rounds, wiring.lag_asked_at)))  # fmt: skip
    registry.register(ChangelogWatchCollector(lambda: {name: stage.taken_over_again for name, stage in
                                                       wiring.stages.items() if stage.watches_changelogs}))  # fmt: skip
    if sink is not None:
        registry.register(SinkCollector(lambda: sink.health))


def _watch_lag(app: faust.App, wiring: Wiring) -> None:
    watch = StallWatch(wiring.settings.stall_seconds)
    sink, stages = wiring.sink, wiring.stages

    def stalled(message: str, *args: Any) -> None:
        log.critical(message, *args)
        _log_stall_report(sink, stages, app)
        console.exit_now(EXIT_STALLED)

    @app.timer(interval=1.0)
    async def measure_lag() -> None:
        """Messages not yet processed and committed, per stage, over this worker's partitions;
        a stage that has them but commits nothing for CCPULSE_STALL_SECONDS stops the worker."""
        asked, asked_at = time.monotonic(), time.time()
        settling = any(stage.handing_over for stage in stages.values())
        # together: a stage's question waits behind its consumer's fetch on the same connection (up to
        # fetch_max_wait_ms, 500 ms), so one after another the round outlasted the timer's second
        found = dict(zip(stages, await asyncio.gather(*(stage.lag() for stage in stages.values())), strict=True))
        now = time.monotonic()
        settling = settling or any(stage.handing_over for stage in stages.values())
        held_back = sink is not None and (sink.health.failing or sink.health.blocked)
        quiet = kafka_quiet(asked, now, wiring.kafka_silent(now))
        if settling or held_back or quiet:
            watch.reset(now)  # a hand-over, backpressure from ClickHouse, Kafka out of reach: not stuck
        if watch.settled_too_long(settling or quiet, now):
            what = "Kafka has not answered" if quiet else "a hand-over of partitions has not finished"
            stalled("%s for %.0f s; exiting (code 3) so that the supervisor restarts the worker",
                    what, watch.settle_limit_seconds)  # fmt: skip
        measured = {name: each for name, each in found.items() if each is not None}  # unknown: the last value holds
        behind = sum(waiting for waiting, _ in measured.values()) >= wiring.settings.catch_up_lag
        if sink is not None:
            sink.catching_up = behind
        for stage in stages.values():
            stage.catching_up = behind
        for name, (waiting, done) in measured.items():
            wiring.lag[name] = waiting
            if not (settling or quiet) and watch.stuck(name, waiting, done, now):
                stalled("stage %s has %d messages waiting and has committed nothing for %.0f s: the consumer is "
                        "stuck; exiting (code 3) so that the supervisor restarts the worker, which restores its "
                        "state from the changelogs and goes on from the last commit (CCPULSE_STALL_SECONDS sets "
                        "the limit)", name, waiting, wiring.settings.stall_seconds)  # fmt: skip
        if len(measured) == len(found):
            wiring.lag_rounds += 1
            wiring.lag_asked_at = asked_at


def _watch_the_rest(app: faust.App, wiring: Wiring) -> None:
    """The console's progress line, the metadata watch, the loop watch, the sink's start."""
    last_reading: list[console.Reading] = []
    sink = wiring.sink

    @app.timer(interval=console.PROGRESS_SECONDS)
    async def report_progress() -> None:
        """The operator's progress line on the console (pipeline/console.py)."""
        progress, lag, now = wiring.ingest_progress(), wiring.lag, time.monotonic()
        health = sink.health if sink is not None else None
        reading = console.Reading(
            at=now, events=sum(progress.events_by_type.values()),
            dead_letters=sum(progress.invalid_by_reason.values()), lag=lag.get("ingest"),
            stage_lag=sum(waiting for stage, waiting in lag.items() if stage != "ingest"),
            sink_backlog=health.backlog_rows if health else None, sink_failing=bool(health and health.failing),
            kafka_silent=wiring.kafka_silent(now), kafka=wiring.settings.kafka_bootstrap,
        )  # fmt: skip
        progress_log.info("%s", console.progress_line(last_reading[-1] if last_reading else None, reading))
        last_reading[:] = [reading]

    metadata_watch = MetadataWatch()

    @app.timer(interval=METADATA_CHECK_SECONDS)
    async def watch_metadata() -> None:
        """A lost metadata answer would hold every send for the client's request timeout (kafka_watch.py)."""
        producer, consumer = started_producer(app), wiring.ingest.consumer
        clients = {"producer": producer.client if producer is not None else None,
                   "input consumer": consumer_client(consumer) if consumer is not None else None}  # fmt: skip
        metadata_watch.check(clients)

    @app.task
    async def tune_producer() -> None:
        # Faust's logging setup leaves faust.topics at DEBUG, which formats a record per send.
        logging.getLogger("faust.topics").setLevel(max(logging.INFO, logging.getLogger().level))

    @app.task
    async def watch_the_loop() -> None:
        LoopWatch(asyncio.get_running_loop()).start()  # logs a loop held for seconds, and where

    if sink is not None:

        @app.task
        async def start_sink() -> None:
            sink.start(asyncio.get_running_loop())


def _sources(settings: Settings, app: faust.App, registry: CollectorRegistry) -> dict[str, Any]:
    """The platforms' webhooks this worker takes (TaskRouter's, with an auth token configured)."""
    if settings.twilio_auth_token is None:
        return {}
    callbacks = TaskRouterCallbacks(settings.twilio_auth_token, settings.twilio_webhook_url, settings.data_dir,
                                    settings.topic, settings.dlq_topic, producer_send(lambda: aiokafka_producer(app)),
                                    registry)  # fmt: skip
    return {"twilio-taskrouter": callbacks.handle}


def _log_stall_report(sink: Sink | None, stages: dict[str, Any], app: faust.App) -> None:
    """What every task was waiting for, for the report of a stall (read it before restarting)."""
    try:
        log.error("stall report: sink %s", _sink_status(sink))
        try:
            log.error("stall report: producer %s", _producer_status(app))
        except Exception:  # noqa: BLE001 - aiokafka's internals may change: the rest of the report matters more
            log.exception("stall report: producer status failed")
        for name, stage in stages.items():
            log.error("stall report: %s commits %s, %d batches in flight", name,
                      {tp.partition: c.offset if c else None for tp, c in stage.committed.items()},
                      stage.in_flight())  # fmt: skip
        import sys
        import threading
        import traceback

        for thread in threading.enumerate():
            frame = sys._current_frames().get(thread.ident or -1)
            if frame is not None and thread.name != "MainThread":
                where = " <- ".join(f"{f.name}:{f.lineno}" for f in reversed(traceback.extract_stack(frame)[-6:]))
                log.error("stall report: thread %s is in %s", thread.name, where)
        for task in asyncio.all_tasks():
            chain: list[str] = []
            awaited: Any = task.get_coro()
            while awaited is not None and len(chain) < 20:  # the await chain, outermost first
                frame = getattr(awaited, "cr_frame", None) or getattr(awaited, "ag_frame", None) or getattr(
                    awaited, "gi_frame", None)  # fmt: skip
                if frame is not None:
                    chain.append(f"{frame.f_code.co_name}:{frame.f_lineno}")
                awaited = getattr(awaited, "cr_await", None) or getattr(awaited, "ag_await", None) or getattr(
                    awaited, "gi_yieldfrom", None)  # fmt: skip
            log.error("stall report: task %s waits in %s", task.get_name(), " -> ".join(chain) or "?")
    except Exception:  # noqa: BLE001 - a report must never stop the exit
        log.exception("stall report failed")


def _producer_status(app: faust.App) -> dict[str, Any]:
    """Faust's Kafka producer (aiokafka): what waits to be sent or acknowledged, per partition. A
    commit waits for all of it (Faust flushes the producer first)."""
    producer = started_producer(app)
    if producer is None:
        return {"started": False}
    return {**producer_backlog(producer), "buffer": app.producer.buffer.size}


def _sink_status(sink: Sink | None) -> dict[str, Any] | None:
    if sink is None:
        return None
    health = sink.health
    return {"backlog_rows": health.backlog_rows, "rows_written": dict(health.rows_written), "errors": health.errors,
            "failing": health.failing, "blocked": health.blocked, "last_success": health.last_success,
            "last_error": health.last_error}  # fmt: skip
