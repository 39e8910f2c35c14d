"""The ``ccpulse`` command line."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import orjson

from pipeline.settings import Settings, SettingsError
from pipeline.warehouse import WarehouseError

if TYPE_CHECKING:
    from pipeline.sources import Summary

DESCRIPTION = """\
ccpulse: streaming contact-center metrics.

Contact events (JSON, one per Kafka message) flow through Faust agents that keep exact rolling
windows of service level, ASA, abandonment, AHT, FCR, ART, CSAT, NPS and CES; live gauges are
served on /metrics for Prometheus.

Configuration comes from CCPULSE_* environment variables (or a .env file), e.g.
CCPULSE_KAFKA_BOOTSTRAP (127.0.0.1:9092), CCPULSE_TOPIC (cc.events), CCPULSE_HTTP_PORT (6066).
"""

EPILOG = """\
examples:
  ccpulse up                              broker + worker + simulated traffic, Ctrl-C stops all
  ccpulse worker                          run a worker in the foreground
  ccpulse simulate --minutes 60 -o day.jsonl
  ccpulse validate day.jsonl              check a file against the event contract, line by line
  ccpulse produce day.jsonl               send JSON Lines to the input topic
  ccpulse convert --from asterisk-queue-log queue_log   a platform's own log as contract events
  ccpulse follow --from asterisk-queue-log /var/log/asterisk/queue_log   tail it into Kafka
  ccpulse status                          what the running worker has processed
  ccpulse query "SELECT ..."              read-only SQL on the ClickHouse tables
  ccpulse broker start|stop|status        the local Kafka broker (no Docker needed)
"""


def _settings() -> Settings:
    try:
        return Settings.from_env()
    except SettingsError as problem:
        print(f"ccpulse: configuration error: {problem}", file=sys.stderr)
        raise SystemExit(2) from None


@contextlib.contextmanager
def _input(path: str) -> Iterator[BinaryIO]:
    if path == "-":
        yield sys.stdin.buffer
        return
    try:
        with open(path, "rb") as handle:
            yield handle
    except FileNotFoundError:
        print(f"ccpulse: no such file: {path}", file=sys.stderr)
        raise SystemExit(2) from None


# --------------------------------------------------------------------------------------------


def command_worker(args: argparse.Namespace) -> int:
    from pipeline.core.targets import TargetsError
    from pipeline.kafka_io import KafkaUnavailable
    from pipeline.worker import run_worker

    try:
        return run_worker(_settings(), verbose=args.verbose)
    except KafkaUnavailable as problem:
        print(f"ccpulse worker: {problem}", file=sys.stderr)
        return 1
    except TargetsError as problem:
        print(f"ccpulse worker: targets file (CCPULSE_TARGETS): {problem}", file=sys.stderr)
        return 2
    except WarehouseError as problem:
        print(f"ccpulse worker: ClickHouse: {problem}", file=sys.stderr)
        return 2


class QueryFailed(Exception):
    """A query that ClickHouse or the worker refused, or a ClickHouse that cannot be opened."""


def run_sql(sql: str, output: str, timeout: float) -> bytes:
    """One read-only query's raw output: through the worker that holds the embedded engine, else
    ClickHouse opened here. Raises QueryFailed with a message for the user."""
    import urllib.error
    import urllib.request

    settings = _settings()
    if not settings.sink_enabled:
        raise QueryFailed("ClickHouse is off (CCPULSE_CLICKHOUSE_URL=off)")
    url = settings.effective_clickhouse_url.reveal()
    if url.startswith("chdb:") and settings.web_url:  # a running worker holds the embedded engine: ask it
        request = urllib.request.Request(f"{settings.web_url}/query?format={output}", data=sql.encode(),
                                         method="POST")  # fmt: skip
        if settings.query_token:
            request.add_header("Authorization", f"Bearer {settings.query_token.reveal()}")
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                return response.read()  # type: ignore[no-any-return]
        except urllib.error.HTTPError as refused:
            raise QueryFailed(refused.read().decode("utf-8", "replace").strip()) from None
        except TimeoutError:  # a worker answered the connection but not the query (a connect timeout is a URLError)
            raise QueryFailed(f"the worker at {settings.web_url} did not answer in {timeout:.0f} s (--timeout); "
                              "it stops a query after CCPULSE_QUERY_SECONDS") from None  # fmt: skip
        except (urllib.error.URLError, ConnectionError):
            pass  # no worker: open the engine ourselves
    from pipeline.warehouse import with_limit_hint
    from pipeline.worker import warehouse_opener

    try:
        warehouse = warehouse_opener(settings, readonly=True)()
    except Exception as problem:  # noqa: BLE001
        raise QueryFailed(
            f"cannot open ClickHouse at {url}: {problem}\n(no worker answered at "
            f"{settings.web_url or 'the address in ' + str(settings.data_dir / 'web.json')}; "
            "if one runs elsewhere, set CCPULSE_HTTP_PORT to its port)"
        ) from None
    try:
        return warehouse.query(sql, output)
    except Exception as problem:  # noqa: BLE001
        raise QueryFailed(with_limit_hint(str(problem))) from None
    finally:
        warehouse.close()


def command_query(args: argparse.Namespace) -> int:
    sql = sys.stdin.read() if args.sql == "-" else args.sql
    try:
        found = run_sql(sql, args.format, args.timeout)
        _quiet_when_the_reader_leaves()
        sys.stdout.buffer.write(found)
    except QueryFailed as problem:
        print(f"ccpulse query: {problem}", file=sys.stderr)
        return 1 if "is off" not in str(problem) else 2
    return 0


def command_report(args: argparse.Namespace) -> int:
    from pipeline.core.report import report_rows, report_sql
    from pipeline.core.targets import Targets, TargetsError

    try:
        start, end = _moment(args.start, "--from"), _moment(args.end, "--to")
    except ValueError as problem:
        print(f"ccpulse report: {problem}", file=sys.stderr)
        return 2
    if end <= start:
        print("ccpulse report: --to must be after --from", file=sys.stderr)
        return 2
    settings = _settings()
    try:
        targets = Targets.load(settings.targets_file, settings.zone)
        found = run_sql(report_sql(args.interval, start, end, args.queue), "jsonl", args.timeout)
    except (QueryFailed, TargetsError) as problem:
        print(f"ccpulse report: {problem}", file=sys.stderr)
        return 1
    rows = list(report_rows([orjson.loads(line) for line in found.splitlines() if line.strip()], targets))
    _quiet_when_the_reader_leaves()
    write_report(rows, args.format, sys.stdout)
    print(f"ccpulse report: {len(rows)} rows ({args.interval} intervals from {args.start} to {args.end})",
          file=sys.stderr)  # fmt: skip
    return 0


def _moment(text: str, option: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"{option} {text!r} is not an RFC 3339 time, e.g. 2026-11-23T09:00:00+09:00") from None
    if moment.tzinfo is None:
        raise ValueError(f"{option} {text!r} needs an offset (Z or +09:00): a time without one is ambiguous")
    return moment


def write_report(rows: list[dict[str, Any]], output: str, stream: Any) -> None:
    """Rows as JSON Lines, CSV with a header, or an aligned text table (empty cells for null)."""
    import csv

    from pipeline.core.report import COLUMNS, METRICS

    header = ["interval_start", "queue", "channel", *COLUMNS, *METRICS]
    if output == "jsonl":
        for row in rows:
            stream.write(orjson.dumps(row).decode() + "\n")
        return
    cells = [["" if row[name] is None else (f"{row[name]:.4f}".rstrip("0").rstrip(".") if isinstance(row[name], float)
              else str(row[name])) for name in header] for row in rows]  # fmt: skip
    if output == "csv":
        writer = csv.writer(stream, lineterminator="\n")
        writer.writerows([header, *cells])
        return
    widths = [
        max(len(name), *(len(cell[i]) for cell in cells)) if cells else len(name) for i, name in enumerate(header)
    ]
    for line in [header, *cells]:
        stream.write("  ".join(cell.rjust(width) for cell, width in zip(line, widths, strict=True)) + "\n")


def command_produce(args: argparse.Namespace) -> int:
    from rich.progress import BarColumn, Progress, TextColumn, TransferSpeedColumn

    from pipeline.kafka_io import EventSender, KafkaUnavailable, ensure_topics, json_lines

    settings = _settings()
    try:
        ensure_topics(settings)
        sender = EventSender(settings, topic=args.topic)
    except KafkaUnavailable as problem:
        print(f"ccpulse produce: {problem}", file=sys.stderr)
        return 1
    size = os.path.getsize(args.file) if args.file != "-" else None
    show = size is not None and size > 5_000_000 and sys.stderr.isatty()
    with (
        _input(args.file) as stream,
        Progress(
            TextColumn("sending"), BarColumn(), TransferSpeedColumn(), disable=not show, transient=True
        ) as progress,
    ):
        task = progress.add_task("send", total=size)
        lines = json_lines(stream) if args.source_format is None else _converted(args, stream)
        for line in lines:
            sender.send(line)
            progress.advance(task, len(line) + 1)
        report = sender.close()
    print(
        f"sent {report.sent} events to {sender.topic} at {settings.kafka_bootstrap}"
        + (f"; {report.failed} failed (see the errors above)" if report.failed else "")
    )
    return 1 if report.failed else 0


def command_simulate(args: argparse.Namespace) -> int:
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    from pipeline.simulation import Faults, Simulation, inject

    start = _parse_start(args.start) if args.start else datetime.now(UTC).replace(second=0, microsecond=0)
    duration = timedelta(days=args.days, hours=args.hours, minutes=args.minutes)
    if duration <= timedelta(0):
        duration = timedelta(hours=1)
    model = Simulation(start, seed=args.seed, scale=args.scale, staffing=args.staffing,
                       utc_offset_hours=args.utc_offset)  # fmt: skip
    faults = Faults(args.duplicates, args.disorder, args.disorder_window, args.invalid_rate)
    if args.as_format is not None:
        return _simulate_as(args, model.events(duration), faults)
    messages = inject(model.events(duration), faults, args.seed)
    sender = None
    if args.to_kafka:
        from pipeline.kafka_io import EventSender, KafkaUnavailable, ensure_topics

        settings = _settings()
        try:
            ensure_topics(settings)
            sender = EventSender(settings)
        except KafkaUnavailable as problem:
            print(f"ccpulse simulate: {problem}", file=sys.stderr)
            return 1
    out = None if sender else (open(args.output, "wb") if args.output != "-" else sys.stdout.buffer)
    if out is sys.stdout.buffer:
        _quiet_when_the_reader_leaves()
    show = sys.stderr.isatty() and args.speed == 0 and (sender is not None or args.output != "-")
    total = duration.total_seconds()
    counts = {"events": 0, "hostile": 0}
    try:
        with Progress(TextColumn("simulating"), BarColumn(), TextColumn("{task.fields[done]} messages"),
                      TimeRemainingColumn(), disable=not show, transient=True) as progress:  # fmt: skip
            task = progress.add_task("simulate", total=total, done=0)
            live_from = datetime.now(UTC) if args.backfill else None
            for event, raw in _paced(messages, start, args.speed, live_from, on_live=_said_live):
                if event is None:
                    counts["hostile"] += 1
                else:
                    counts["events"] += 1
                if sender is not None:
                    sender.send(raw, key=_key_of(event))
                else:
                    assert out is not None
                    out.write(raw + b"\n")
                if event is not None and counts["events"] % 5000 == 0:
                    progress.update(task, completed=min(total, (_when(event) - start).total_seconds()),
                                    done=counts["events"] + counts["hostile"])  # fmt: skip
    except KeyboardInterrupt:
        pass
    finally:
        if out is not None and out is not sys.stdout.buffer:
            out.close()
    if sender is not None:
        report = sender.close()
        print(f"sent {report.sent} messages to {sender.topic} ({counts['hostile']} hostile)", file=sys.stderr)
        return 1 if report.failed else 0
    if args.output != "-":
        print(f"wrote {counts['events'] + counts['hostile']} messages to {args.output} "
              f"({counts['hostile']} hostile)", file=sys.stderr)  # fmt: skip
    return 0


def _simulate_as(args: argparse.Namespace, events: Iterator[dict[str, object]], faults: Any) -> int:
    """The simulated center as a platform would have logged it (its voice calls, for Asterisk)."""
    from pipeline.sources.amazon_connect_out import contact_records
    from pipeline.sources.asterisk_out import queue_log_lines
    from pipeline.sources.genesys_out import detail_events
    from pipeline.sources.twilio_out import callbacks

    writers = {"amazon-connect": contact_records, "asterisk-queue-log": queue_log_lines, "twilio-taskrouter": callbacks,
               "genesys-cloud": detail_events}  # fmt: skip

    if args.to_kafka or args.speed or faults.any:
        print("ccpulse simulate: --as writes a file (-o) or standard output, as fast as possible, without "
              "injected faults; send it with: ccpulse produce --from FORMAT FILE", file=sys.stderr)  # fmt: skip
        return 2
    out = open(args.output, "w") if args.output != "-" else sys.stdout
    if out is sys.stdout:
        _quiet_when_the_reader_leaves()
    written = 0
    try:
        lines = writers[args.as_format](events)
        for line in lines:
            out.write(line + "\n")
            written += 1
    finally:
        if out is not sys.stdout:
            out.close()
    print(f"wrote {written} {args.as_format} lines", file=sys.stderr)
    return 0


def _said_live(sent: int) -> None:
    print(f"simulate: the day so far is sent ({sent:,} messages); live traffic from now on", file=sys.stderr,
          flush=True)  # fmt: skip


def _source_options(command: argparse.ArgumentParser, required: bool) -> None:
    from pipeline.sources import FORMATS

    command.add_argument(
        "--from",
        dest="source_format",
        choices=FORMATS,
        required=required,
        default=None,
        help="the platform's format" + ("" if required else " (default: contract JSON Lines)"),
    )
    command.add_argument(
        "--source-timezone",
        default="UTC",
        metavar="ZONE",
        help="zone of times written without an offset (a queue_log table's datetimes; default UTC)",
    )


def _source_zone(args: argparse.Namespace) -> ZoneInfo:
    try:
        return ZoneInfo(args.source_timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise SystemExit(
            f"ccpulse: --source-timezone {args.source_timezone!r} is not an IANA zone (e.g. UTC, Asia/Tokyo)"
        ) from None


def _converted(args: argparse.Namespace, stream: BinaryIO, summary: Summary | None = None) -> Iterator[bytes]:
    """Contract event lines from a platform's records, counted in ``summary``; verdicts and the
    summary on stderr."""
    from pipeline.sources import Summary, convert

    summary = Summary() if summary is None else summary
    for number, outcome in convert(args.source_format, stream, _source_zone(args)):
        summary.add(outcome)
        if outcome.rejected:
            print(f"line {number}: rejected ({outcome.rejected}): {outcome.detail}", file=sys.stderr)
        for event in outcome.events:
            yield orjson.dumps(event)
    print(summary.line(args.source_format), file=sys.stderr)


def command_follow(args: argparse.Namespace) -> int:
    from pipeline import console
    from pipeline.kafka_io import EventSender, KafkaUnavailable, ensure_topics
    from pipeline.sources import converter
    from pipeline.sources.follow import Follower, FollowFailed

    settings = _settings()
    console.configure(settings.log_level, verbose=False)
    if (args.file is None) == (args.input_topic is None):
        print("ccpulse follow: give a FILE to tail, or --input-topic TOPIC to bridge (not both)", file=sys.stderr)
        return 2
    if args.input_topic is not None:
        return _bridge(args, settings)
    path = Path(args.file)
    state = Path(args.state_file) if args.state_file else settings.data_dir / f"follow-{_slug(path)}.json"
    state.parent.mkdir(parents=True, exist_ok=True)
    try:
        ensure_topics(settings)
        sender = EventSender(settings)
    except KafkaUnavailable as problem:
        print(f"ccpulse follow: {problem}", file=sys.stderr)
        return 1
    stop = {"now": False}

    def on_signal(signum: int, frame: object) -> None:
        stop["now"] = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    follower = Follower(path, state, converter(args.source_format, _source_zone(args)), sender, settings.dlq_topic)
    print(f"ccpulse follow: {path} into {settings.topic} at {settings.kafka_bootstrap} (position in {state}); "
          "Ctrl-C stops", file=sys.stderr, flush=True)  # fmt: skip
    try:
        follower.run(lambda: stop["now"])
    except FollowFailed as problem:
        print(f"ccpulse follow: {problem}", file=sys.stderr)
        return 1
    except FileNotFoundError:
        print(f"ccpulse follow: no such file: {path}", file=sys.stderr)
        return 2
    finally:
        sender.close()
        print(follower.summary.line(args.source_format), file=sys.stderr)
    return 0


def _bridge(args: argparse.Namespace, settings: Any) -> int:
    """``follow --input-topic``: the platform's events from a Kafka topic (pipeline.sources.bridge)."""
    from kafka.errors import KafkaError

    from pipeline.kafka_io import EventSender, KafkaUnavailable, client_options, ensure_topics
    from pipeline.sources import converter
    from pipeline.sources.bridge import Bridge, BridgeFailed, consumer_for, journal_for

    group = args.group or f"ccpulse-follow-{args.source_format}-{args.input_topic}"
    try:
        ensure_topics(settings)
        sender = EventSender(settings)
        consumer = consumer_for(client_options(settings), group)
    except (KafkaUnavailable, KafkaError) as problem:
        print(f"ccpulse follow: {problem}", file=sys.stderr)
        return 1
    if not consumer.partitions_for_topic(args.input_topic):
        print(f"ccpulse follow: no topic {args.input_topic!r} at {settings.kafka_bootstrap}", file=sys.stderr)
        return 2
    stop = {"now": False}
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.update(now=True))
    journal = journal_for(Path(args.state_file) if args.state_file else settings.data_dir, args.source_format,
                          args.input_topic)  # fmt: skip
    bridge = Bridge(consumer, args.input_topic, converter(args.source_format, _source_zone(args)), sender,
                    settings.dlq_topic, journal)  # fmt: skip
    print(f"ccpulse follow: {args.input_topic} ({args.source_format}) into {settings.topic} at "
          f"{settings.kafka_bootstrap} (state in {journal.records_file.parent}); Ctrl-C stops",
          file=sys.stderr, flush=True)  # fmt: skip
    try:
        bridge.run(lambda: stop["now"])
    except BridgeFailed as problem:
        print(f"ccpulse follow: {problem}", file=sys.stderr)
        return 1
    finally:
        consumer.close()
        sender.close()
        print(bridge.summary.line(args.source_format), file=sys.stderr)
    return 0


def _slug(path: Path) -> str:
    return "".join(c if c.isalnum() else "_" for c in str(path.resolve()).strip("/"))[-100:]


def command_convert(args: argparse.Namespace) -> int:
    from pipeline.sources import Summary

    out = sys.stdout.buffer
    _quiet_when_the_reader_leaves()
    summary = Summary()
    with _input(args.file) as stream:
        for line in _converted(args, stream, summary):
            out.write(line + b"\n")
    out.flush()
    return 1 if summary.rejected else 0


def _key_of(event: dict[str, object] | None) -> bytes | None:
    if event is None:
        return None
    key = event.get("contact_id") or event.get("agent_id")
    return str(key).encode() if key else None


def _when(event: dict[str, object]) -> datetime:
    return datetime.fromisoformat(str(event["occurred_at"]).replace("Z", "+00:00"))


def _parse_start(text: str) -> datetime:
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        raise SystemExit("ccpulse simulate: --start needs an offset, e.g. 2026-11-23T08:00:00Z")
    return moment


def _paced(
    messages: Iterator[tuple[dict[str, object] | None, bytes]],
    start: datetime,
    speed: float,
    live_from: datetime | None = None,
    on_live: Callable[[int], None] | None = None,
) -> Iterator[tuple[dict[str, object] | None, bytes]]:
    """Hold each message until its simulated time (scaled by ``speed``; 0 = as fast as possible).
    With ``live_from``, messages before it go at once, and the pace counts from it (``on_live`` is
    told how many went before)."""
    if speed <= 0:
        yield from messages
        return
    began, origin, sent = time.monotonic(), live_from or start, 0
    for event, raw in messages:
        if event is not None:
            delay = (_when(event) - origin).total_seconds() / speed - (time.monotonic() - began)
            if delay > 0:
                if on_live is not None:
                    on_live(sent)
                    on_live = None
                time.sleep(delay)
        sent += 1
        yield event, raw


def command_validate(args: argparse.Namespace) -> int:
    from collections import Counter

    from pipeline.core.contract import check

    out = sys.stdout.buffer
    _quiet_when_the_reader_leaves()
    tally: Counter[str] = Counter()
    lines = 0
    with _input(args.file) as stream:
        for number, line in enumerate(stream, start=1):
            lines = number
            raw = line[:-1] if line.endswith(b"\n") else line
            verdict = check(raw.rstrip(b"\r"))
            if not raw.strip():
                verdict_line = {"line": number, "valid": False, "reason": "invalid_json",
                                "detail": "blank line (ccpulse produce skips it)"}  # fmt: skip
            else:
                verdict_line = {"line": number, "valid": verdict.valid, "reason": verdict.reason,
                                "detail": verdict.detail}  # fmt: skip
            tally[verdict_line["reason"] or "valid"] += 1  # type: ignore[index]
            out.write(orjson.dumps(verdict_line) + b"\n")
    invalid = lines - tally["valid"]
    summary = ", ".join(f"{count} {reason}" for reason, count in sorted(tally.items()) if reason != "valid")
    print(f"{lines} lines: {tally['valid']} valid, {invalid} invalid" + (f" ({summary})" if summary else ""),
          file=sys.stderr)  # fmt: skip
    return 0 if invalid == 0 else 1


def command_status(args: argparse.Namespace) -> int:
    settings = _settings()
    if not settings.web_url:
        print(f"ccpulse status: CCPULSE_HTTP_PORT=0 and no running worker has published its address in "
              f"{settings.data_dir / 'web.json'}. Start one (ccpulse worker), or set CCPULSE_DATA_DIR to its data dir",
              file=sys.stderr)  # fmt: skip
        return 1
    url = f"{settings.web_url}/status"
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            status = json.loads(response.read())
    except (urllib.error.URLError, OSError) as problem:
        print(
            f"ccpulse status: no worker answers at {url} ({problem}). Start one: ccpulse worker",
            file=sys.stderr,
        )
        return 1
    print(json.dumps(status, indent=2))
    return 0


def command_broker(args: argparse.Namespace) -> int:
    from pipeline.local_broker import launcher

    settings = _settings()
    argv = [args.action, "--data-dir", str(settings.data_dir)]
    if args.action == "start" and args.port is not None:
        argv += ["--port", str(args.port)]
    return int(launcher().main(argv))


def command_up(args: argparse.Namespace) -> int:
    from pipeline.up import run_local_stack

    return run_local_stack(_settings(), speed=args.speed, with_traffic=not args.no_traffic, verbose=args.verbose)


# --------------------------------------------------------------------------------------------


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(
        prog="ccpulse",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    from pipeline import __version__

    root.add_argument("--version", action="version", version=f"ccpulse {__version__}")
    commands = root.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _worker_command(commands)
    _produce_command(commands)
    _convert_command(commands)
    _follow_command(commands)
    _simulate_command(commands)
    _validate_command(commands)
    _query_command(commands)
    _report_command(commands)
    _status_command(commands)
    _broker_command(commands)
    _up_command(commands)
    return root


def _worker_command(commands: Any) -> None:
    worker = commands.add_parser(
        "worker",
        help="run a worker in the foreground (web on CCPULSE_HTTP_PORT)",
        description="Consume the input topic, keep the metrics, write ClickHouse, and serve /metrics, /status, "
        "/api/snapshot and the wallboard on CCPULSE_HTTP_HOST:CCPULSE_HTTP_PORT (port 0: any free port, "
        "published in <data dir>/web.json, where ccpulse status finds it). The console shows what started, "
        "where to look, and every 5 s a progress line (events/s, lag, ClickHouse backlog, dead letters); "
        "warnings and errors always.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    worker.add_argument("--verbose", action="store_true",
                        help="also Faust's own start-up log (services, changelog recovery tables)")  # fmt: skip
    worker.set_defaults(run=command_worker)


def _produce_command(commands: Any) -> None:
    produce = commands.add_parser(
        "produce",
        help="send JSON Lines to the input topic",
        description="Send each line of FILE (or standard input with -) to the input topic as one message, "
        "its bytes unchanged, keyed by contact_id (or agent_id). Prints how many were sent. With --from FORMAT, "
        "FILE is a platform's own log (e.g. Asterisk's queue_log), converted first as ccpulse convert does.",
    )
    produce.add_argument("file", metavar="FILE|-")
    produce.add_argument("--topic", default=None, help="another topic than CCPULSE_TOPIC")
    _source_options(produce, required=False)
    produce.set_defaults(run=command_produce)


def _convert_command(commands: Any) -> None:
    convert = commands.add_parser(
        "convert",
        help="a platform's own events (Asterisk queue_log, ...) as contract events",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="""\
Read FILE (or standard input with -) in a platform's own format and write contract events
(JSON Lines) to standard output. Lines that break the format get a verdict on standard error
(line number, reason, detail); a summary (converted, skipped and rejected per reason) ends it.
Exit 0 when no line was rejected. Event ids come from the source lines: converting a file
twice gives the same events, and sending them twice counts them once. Mapping, event by
event: docs/sources.md.

examples:
  ccpulse convert --from asterisk-queue-log /var/log/asterisk/queue_log > events.jsonl
  ccpulse produce --from asterisk-queue-log /var/log/asterisk/queue_log
  ccpulse convert --from asterisk-queue-log --source-timezone Asia/Tokyo queue_log.csv
  ccpulse convert --from amazon-connect contact-records.jsonl   # Amazon Connect contact records""",
    )  # fmt: skip
    convert.add_argument("file", metavar="FILE|-")
    _source_options(convert, required=True)
    convert.set_defaults(run=command_convert)


def _follow_command(commands: Any) -> None:
    follow = commands.add_parser(
        "follow",
        help="tail a growing platform log (Asterisk queue_log), or a topic of a platform's events, into Kafka",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="""\
Read FILE as it grows (or, with --input-topic, the records of a Kafka topic a connector fills with
a platform's events), convert each new line or record (as ccpulse convert does) and send the
events to the input topic. Survives log rotation (the old file is read to its end, then the new
one from its start). Resumes after a restart where it left off: the position after the last acknowledged line
is kept in a state file (default: <data dir>/follow-<path>.json); lines sent again keep their
event ids, so nothing counts twice. Lines it cannot read go to the dead-letter topic with their
bytes and the reason. Run it under a supervisor (systemd: Restart=always).

With --input-topic (the bridge): every partition of TOPIC is read in order; a batch's offsets
are committed, and its records kept in a journal of the converter's state (<data dir>/sources/),
only once its events are acknowledged, so a restart goes on exactly where it stopped.

examples:
  ccpulse follow --from asterisk-queue-log /var/log/asterisk/queue_log
  ccpulse follow --from twilio-taskrouter --input-topic twilio.taskrouter.events
  ccpulse follow --from amazon-connect --input-topic connect.contact-records""",
    )  # fmt: skip
    follow.add_argument("file", metavar="FILE", nargs="?", default=None)
    _source_options(follow, required=True)
    follow.add_argument("--input-topic", default=None, metavar="TOPIC",
                        help="read the platform's events from this Kafka topic instead of a file")  # fmt: skip
    follow.add_argument("--group", default=None,
                        help="the bridge's consumer group (default ccpulse-follow-<format>-<topic>)")  # fmt: skip
    follow.add_argument(
        "--state-file",
        default=None,
        help="where the position is kept (with --input-topic: the directory of the journal)",
    )
    follow.set_defaults(run=command_follow)


def _simulate_command(commands: Any) -> None:
    simulate = commands.add_parser(
        "simulate", help="realistic contact-center traffic, to a file or to Kafka",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="""\
Simulate a contact center: arrivals per queue on an intraday curve, agents on shifts with
breaks (agent.state_changed), waits from the agents' availability, patience and abandonment,
handle times, resolution, repeat contacts within days, and surveys. Deterministic: the same
arguments and --seed give the same messages.

examples:
  ccpulse simulate --hours 8 -o day.jsonl                 a working day, as fast as possible
  ccpulse simulate --to-kafka --speed 1                   live traffic into CCPULSE_TOPIC
  ccpulse simulate --staffing 0.7 --hours 2 -o short.jsonl   too few agents: service level drops
  ccpulse simulate --duplicates 0.05 --disorder 0.1 --invalid-rate 0.01 -o messy.jsonl""",
    )  # fmt: skip
    simulate.add_argument("--seed", type=int, default=1, help="random seed (default 1)")
    simulate.add_argument("--start", default=None, help="simulated start, RFC 3339 (default: now, to the minute)")
    simulate.add_argument("--days", type=float, default=0, help="simulated days of arrivals")
    simulate.add_argument("--hours", type=float, default=0, help="simulated hours of arrivals")
    simulate.add_argument("--minutes", type=float, default=0, help="simulated minutes (default: 1 hour in all)")
    simulate.add_argument(
        "--scale",
        type=float,
        default=1.0,
        help="volume multiplier; staff grows with it (default 1: ~10,000 contacts a day)",
    )
    _simulate_options(simulate)


def _simulate_options(simulate: Any) -> None:
    """The traffic, the faults and where the events go."""
    simulate.add_argument(
        "--staffing",
        type=float,
        default=1.0,
        help="staff multiplier: 1 staffs for the curve, 0.7 is 30%% short (default 1)",
    )
    simulate.add_argument(
        "--utc-offset",
        type=float,
        default=0,
        help="the center's local time, hours from UTC: its day curve and shifts (default 0)",
    )
    simulate.add_argument(
        "--backfill",
        action="store_true",
        help="with --speed: send the simulated time before now at once, then go on at --speed from now "
        "(ccpulse up starts the center's day at its midnight this way)",
    )
    simulate.add_argument(
        "--speed",
        type=float,
        default=0,
        help="pace: 1 = real time, 60 = a minute per second, 0 = as fast as possible (default)",
    )
    simulate.add_argument(
        "--duplicates",
        type=float,
        default=0.0,
        metavar="SHARE",
        help="share of events sent twice (retries, and re-emissions with a new event_id)",
    )
    simulate.add_argument(
        "--disorder",
        type=float,
        default=0.0,
        metavar="SHARE",
        help="share of events delivered late, out of event-time order",
    )
    simulate.add_argument(
        "--disorder-window",
        type=float,
        default=600.0,
        metavar="SECONDS",
        help="how late a late event can be, in simulated seconds (default 600)",
    )
    simulate.add_argument(
        "--invalid-rate",
        type=float,
        default=0.0,
        metavar="SHARE",
        help="hostile messages mixed in, per event (they go to the dead-letter topic)",
    )
    simulate.add_argument("--as", dest="as_format", default=None,
                          choices=["asterisk-queue-log", "amazon-connect", "twilio-taskrouter", "genesys-cloud"],
                          help="write the contacts as that platform records them: Asterisk's queue_log (voice "
                          "calls), Amazon Connect contact records (voice, chat, email), TaskRouter event callbacks "
                          "and Genesys Cloud detail events (every channel but in person); convert them back with "
                          "ccpulse convert --from FORMAT")  # fmt: skip
    target = simulate.add_mutually_exclusive_group()
    target.add_argument("-o", "--output", default="-", help="JSON Lines file (default: standard output)")
    target.add_argument("--to-kafka", action="store_true", help="send to the input topic instead")
    simulate.set_defaults(run=command_simulate)


def _validate_command(commands: Any) -> None:
    validate = commands.add_parser(
        "validate", help="check JSON Lines against the event contract (no Kafka needed)",
        description="Check each line of FILE (or standard input with -) against the event contract, with the "
        "worker's own validation. Prints one JSON line per input line: "
        '{"line": N, "valid": true|false, "reason": CODE, "detail": TEXT}. Reason codes: too_large, '
        "invalid_json, unknown_type, unsupported_version, schema. Exit status 0 when every line is valid, "
        "1 otherwise, 2 on a usage error.",
    )  # fmt: skip
    validate.add_argument("file", metavar="FILE|-")
    validate.set_defaults(run=command_validate)


def _query_command(commands: Any) -> None:
    query = commands.add_parser(
        "query",
        help="read-only SQL on the ClickHouse tables (events, contacts, issues, metrics_minute, agent_states, ...)",
        description="Run one read-only SQL query on the configured ClickHouse (CCPULSE_CLICKHOUSE_URL; by "
        "default the embedded engine under CCPULSE_DATA_DIR). While a worker holds the embedded engine, the "
        "query goes through that worker's /query endpoint; otherwise ccpulse opens the engine itself. Tables "
        "live in the database ccpulse: query them with FINAL for one row per key. See docs/analysts.md.",
        epilog="examples:\n"
        "  ccpulse query \"SELECT queue, sum(offered) FROM ccpulse.metrics_minute FINAL GROUP BY queue\"\n"
        "  ccpulse query --format table \"SELECT * FROM ccpulse.contacts FINAL LIMIT 5\"\n"
        "  ccpulse query - < report.sql",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )  # fmt: skip
    query.add_argument("sql", metavar="SQL|-", help="the query (- reads it from standard input)")
    query.add_argument("--format", choices=["jsonl", "csv", "table"], default="jsonl",
                       help="output: JSON Lines (default), CSV with a header, or a text table")  # fmt: skip
    query.add_argument("--timeout", type=float, default=300.0,
                       help="seconds to wait for the worker's answer (the worker itself stops a query after "
                       "CCPULSE_QUERY_SECONDS, 120 by default)")  # fmt: skip
    query.set_defaults(run=command_query)


def _report_command(commands: Any) -> None:
    report = commands.add_parser(
        "report",
        help="interval report: one row per 15 min, 30 min or hour, queue and channel (from ClickHouse)",
        description="Print the counts, sums and metrics of every interval, queue and channel from FROM to TO "
        "(UTC intervals: interval_start in RFC 3339), from metrics_minute: every column of metrics_minute "
        "under its name, then every metric by the gauges' own formulas and the queue's service-level "
        "definition (empty where nothing to divide). For the same minutes it equals what the gauges show. "
        "Like ccpulse query, it asks the running worker when it holds the embedded engine. See "
        "docs/analysts.md.",
        epilog="examples:\n"
        "  ccpulse report --interval 30m --from 2026-11-23T00:00:00Z --to 2026-11-24T00:00:00Z\n"
        "  ccpulse report --interval 15m --from 2026-11-23T09:00:00+09:00 --to 2026-11-23T18:00:00+09:00 "
        "--queue billing --format table\n"
        "  ccpulse report --interval 1h --from 2026-11-01T00:00:00Z --to 2026-12-01T00:00:00Z --format csv "
        "> november.csv",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )  # fmt: skip
    report.add_argument("--interval", choices=["15m", "30m", "1h"], required=True, help="the rows' length")
    report.add_argument("--from", dest="start", required=True, metavar="T",
                        help="first minute, RFC 3339 (2026-11-23T09:00:00+09:00)")  # fmt: skip
    report.add_argument("--to", dest="end", required=True, metavar="T", help="end (excluded), RFC 3339")
    report.add_argument("--queue", default=None, help="only this queue")
    report.add_argument("--format", choices=["csv", "jsonl", "table"], default="csv",
                        help="CSV with a header (default), JSON Lines, or a text table")  # fmt: skip
    report.add_argument("--timeout", type=float, default=300.0, help="seconds to wait for the worker's answer")
    report.set_defaults(run=command_report)


def _status_command(commands: Any) -> None:
    status = commands.add_parser("status", help="what the running worker has processed")
    status.set_defaults(run=command_status)


def _broker_command(commands: Any) -> None:
    broker = commands.add_parser(
        "broker",
        help="the local Kafka broker (real Apache Kafka, no Docker)",
        description="Start, stop or inspect the single-node Kafka broker that "
        "deploy/local/kafka.py runs under CCPULSE_DATA_DIR.",
    )
    broker.add_argument("action", choices=["start", "stop", "status"])
    broker.add_argument("--port", type=int, default=None, help="client port for start (0 = a free one)")
    broker.set_defaults(run=command_broker)


def _up_command(commands: Any) -> None:
    up = commands.add_parser(
        "up",
        help="run everything locally: broker, worker, simulated traffic",
        description="""Start the local Kafka broker (unless CCPULSE_KAFKA_BOOTSTRAP names one that answers;
port 0 there: a free port), a worker with the embedded ClickHouse, and a simulated contact center;
print where to look; stop all of it on Ctrl-C.

The simulated center is placed in a time zone where it is early afternoon now (unless
CCPULSE_TIMEZONE is set: then that zone), and the worker's "today" starts at that zone's midnight.
The center's day so far is sent at full speed through the real broker and worker (every queue
shows today's figures within seconds), then its traffic goes on in real time for a week.""",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    up.add_argument("--speed", type=float, default=1.0, help="pace of the live traffic (1 = real time, the default)")
    up.add_argument("--no-traffic", action="store_true", help="start broker and worker only")
    up.add_argument("--verbose", action="store_true", help="also Faust's own start-up log")
    up.set_defaults(run=command_up)


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    return int(args.run(args))


def _quiet_when_the_reader_leaves() -> None:
    """For a command about to write its output to standard output: a reader that stops early
    (``ccpulse simulate | head``) ends it quietly, as SIGPIPE's default action does. Only then,
    never for a command that talks to a server: with that default, a write to a socket whose peer
    has gone ends the process without a line — the worker died so when its broker stopped (exit
    -13, CI 2026-12-07; every command had it until then). Python ignores SIGPIPE and raises
    BrokenPipeError instead, which the Kafka and HTTP clients handle. Unblocked too: a process
    that loaded the embedded engine blocks SIGPIPE (chDB does so as it loads), and the commands it
    starts inherit the block."""
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGPIPE})


if __name__ == "__main__":
    sys.exit(main())
