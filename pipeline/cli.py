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
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import BinaryIO

import orjson

from pipeline.settings import Settings, SettingsError

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
  ccpulse produce day.jsonl               send JSON Lines to the input topic
  ccpulse status                          what the running worker has processed
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
    from pipeline.kafka_io import KafkaUnavailable
    from pipeline.worker import run_worker

    try:
        return run_worker(_settings())
    except KafkaUnavailable as problem:
        print(f"ccpulse worker: {problem}", file=sys.stderr)
        return 1


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
        for line in json_lines(stream):
            sender.send(line)
            progress.advance(task, len(line) + 1)
        report = sender.close()
    print(
        f"sent {report.sent} events to {sender.topic} at {settings.kafka_bootstrap}"
        + (f"; {report.failed} failed (see the errors above)" if report.failed else "")
    )
    return 1 if report.failed else 0


def command_simulate(args: argparse.Namespace) -> int:
    from pipeline.simulation import contact_events

    start = _parse_start(args.start) if args.start else datetime.now(UTC).replace(microsecond=0)
    events = contact_events(start, timedelta(minutes=args.minutes), seed=args.seed)
    if args.to_kafka:
        from pipeline.kafka_io import EventSender, KafkaUnavailable, ensure_topics

        settings = _settings()
        try:
            ensure_topics(settings)
            sender = EventSender(settings)
        except KafkaUnavailable as problem:
            print(f"ccpulse simulate: {problem}", file=sys.stderr)
            return 1
        try:
            for event in _paced(events, start, args.speed):
                sender.send(orjson.dumps(event))
        except KeyboardInterrupt:
            pass
        report = sender.close()
        print(f"sent {report.sent} simulated events to {sender.topic}")
        return 0
    with open(args.output, "wb") if args.output != "-" else contextlib.nullcontext(sys.stdout.buffer) as out:
        count = 0
        for event in _paced(events, start, args.speed):
            out.write(orjson.dumps(event) + b"\n")
            count += 1
    if args.output != "-":
        print(f"wrote {count} events to {args.output}", file=sys.stderr)
    return 0


def _parse_start(text: str) -> datetime:
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        raise SystemExit("ccpulse simulate: --start needs an offset, e.g. 2026-11-23T08:00:00Z")
    return moment


def _paced(events: Iterator[dict[str, object]], start: datetime, speed: float) -> Iterator[dict[str, object]]:
    """Hold each event until its simulated time (scaled by ``speed``; 0 = as fast as possible)."""
    if speed <= 0:
        yield from events
        return
    began = time.monotonic()
    for event in events:
        at = datetime.fromisoformat(str(event["occurred_at"]).replace("Z", "+00:00"))
        delay = (at - start).total_seconds() / speed - (time.monotonic() - began)
        if delay > 0:
            time.sleep(delay)
        yield event


def command_status(args: argparse.Namespace) -> int:
    settings = _settings()
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

    return run_local_stack(_settings(), speed=args.speed, with_traffic=not args.no_traffic)


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

    worker = commands.add_parser(
        "worker",
        help="run a worker in the foreground (web on CCPULSE_HTTP_PORT)",
        description="Consume the input topic, keep the metrics, serve /metrics and /status.",
    )
    worker.set_defaults(run=command_worker)

    produce = commands.add_parser(
        "produce",
        help="send JSON Lines to the input topic",
        description="Send each line of FILE (or standard input with -) to the input topic as one message, "
        "its bytes unchanged, keyed by contact_id (or agent_id). Prints how many were sent.",
    )
    produce.add_argument("file", metavar="FILE|-")
    produce.add_argument("--topic", default=None, help="another topic than CCPULSE_TOPIC")
    produce.set_defaults(run=command_produce)

    simulate = commands.add_parser(
        "simulate",
        help="generate contact-center traffic (to a file or to Kafka)",
        description="Deterministic simulated traffic: the same --seed gives the same events.",
    )
    simulate.add_argument("--seed", type=int, default=1, help="random seed (default 1)")
    simulate.add_argument("--start", default=None, help="simulated start, RFC 3339 (default: now)")
    simulate.add_argument(
        "--minutes", type=float, default=60, help="simulated minutes of arrivals (default 60)"
    )
    simulate.add_argument(
        "--speed",
        type=float,
        default=0,
        help="pace: 1 = real time, 60 = a minute per second, 0 = as fast as possible (default)",
    )
    target = simulate.add_mutually_exclusive_group()
    target.add_argument("-o", "--output", default="-", help="JSON Lines file (default: standard output)")
    target.add_argument("--to-kafka", action="store_true", help="send to the input topic instead")
    simulate.set_defaults(run=command_simulate)

    status = commands.add_parser("status", help="what the running worker has processed")
    status.set_defaults(run=command_status)

    broker = commands.add_parser(
        "broker",
        help="the local Kafka broker (real Apache Kafka, no Docker)",
        description="Start, stop or inspect the single-node Kafka broker that "
        "deploy/local/kafka.py runs under CCPULSE_DATA_DIR.",
    )
    broker.add_argument("action", choices=["start", "stop", "status"])
    broker.add_argument("--port", type=int, default=None, help="client port for start (0 = a free one)")
    broker.set_defaults(run=command_broker)

    up = commands.add_parser(
        "up",
        help="run everything locally: broker, worker, simulated traffic",
        description="Start the local Kafka broker (unless CCPULSE_KAFKA_BOOTSTRAP names another), "
        "a worker and simulated traffic, print where to look, and stop all of it on Ctrl-C.",
    )
    up.add_argument("--speed", type=float, default=1.0, help="traffic pace (1 = real time, the default)")
    up.add_argument("--no-traffic", action="store_true", help="start broker and worker only")
    up.set_defaults(run=command_up)
    return root


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)  # `ccpulse simulate | head` ends quietly
    return int(args.run(args))


if __name__ == "__main__":
    sys.exit(main())
