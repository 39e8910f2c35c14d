"""Kafka at the edge: creating the topics the pipeline needs and sending JSON Lines to the input.

``send_lines`` keeps every line's bytes unchanged (the dead-letter contract depends on it) and
keys each message by ``contact_id`` (or ``agent_id`` for agent events) when the line is JSON
that carries one; the pipeline itself never relies on the key.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import orjson
from kafka import KafkaAdminClient, KafkaProducer  # type: ignore[attr-defined]
from kafka.admin import ConfigResource, ConfigResourceType, NewPartitions
from kafka.errors import KafkaError, TopicAlreadyExistsError

from pipeline.settings import Settings

log = logging.getLogger("ccpulse.kafka")

# The broker's default message.max.bytes is ~1 MiB; the contract's own limit (64 KiB) is
# enforced by the worker, which must receive over-size messages to dead-letter them.
MAX_REQUEST_BYTES = 1_000_000
KAFKA_MESSAGE_BYTES = 1_048_588  # Kafka's default message.max.bytes: what a topic takes unless set otherwise
# The dead-letter topic's max.message.bytes, set where ccpulse creates it or nobody set it, and
# the worker producer's largest request: a dead letter is its message's bytes unchanged plus
# headers, and must fit (pipeline/dead_letters.py)
DEAD_LETTER_TOPIC_BYTES = 2 * 1024 * 1024


# The stages' changelogs are compacted, and a take-over reads a changelog partition whole. The
# broker compacts only segments that have rolled: by Kafka's defaults at 1 GiB or after 7 days, so
# a restart read everything written since the topic began (a board changelog held 0.5-1.8 records
# per input event, every take-over adding every partial again). Rolled hourly or at 128 MiB, all but
# the newest segment shrink to each key's latest record (and tombstones for delete.retention.ms)
# once the cleaner comes by.
COMPACTED: dict[str, str] = {"cleanup.policy": "compact", "segment.ms": str(3600 * 1000),
                             "segment.bytes": str(128 * 1024 * 1024)}  # fmt: skip
ROLLING = ("segment.ms", "segment.bytes")
COMPACTED_ROLLING_TEXT = ", ".join(f"{key}={COMPACTED[key]}" for key in ROLLING)


class KafkaUnavailable(RuntimeError):
    """The broker could not be reached; the message says where we looked."""


def client_options(settings: Settings) -> dict[str, object]:
    return {
        "bootstrap_servers": settings.kafka_bootstrap.split(","),
        **settings.kafka_security.kafka_python_options(),
    }


def admin_client(settings: Settings, timeout_seconds: float) -> KafkaAdminClient:
    """ccpulse's Kafka admin client (blocking: run it in a thread from the event loop)."""
    return KafkaAdminClient(client_id="ccpulse-admin", request_timeout_ms=int(timeout_seconds * 1000),
                            **client_options(settings))  # fmt: skip


def ensure_topics(settings: Settings, timeout_seconds: float = 30.0, internal: tuple[str, ...] = (),
                  compacted: tuple[str, ...] = (), per_input: tuple[str, ...] = (),
                  fit_dead_letters: bool = False) -> None:  # fmt: skip
    """Create the input and dead-letter topics (and the worker's ``internal`` topics, and its
    ``compacted`` ones: the tables' changelogs) with ``settings.partitions`` if they are missing;
    the compacted ``per_input`` ones (the contacts' state, by input partition) with as many
    partitions as the input topic has, or more (grown when the input topic grew). With
    ``fit_dead_letters`` (the worker), an existing dead-letter topic whose largest message nobody
    set is set to take ``DEAD_LETTER_TOPIC_BYTES``."""
    try:
        admin = admin_client(settings, timeout_seconds)
    except KafkaError as problem:
        raise KafkaUnavailable(
            f"cannot reach Kafka at {settings.kafka_bootstrap} ({problem}). Start a broker "
            "(python3 deploy/local/kafka.py start) or set CCPULSE_KAFKA_BOOTSTRAP."
        ) from problem
    try:
        existing = set(admin.list_topics())
        wanted: dict[str, dict[str, object]] = {
            name: {"num_partitions": settings.partitions, "replication_factor": -1}
            for name in (settings.topic, settings.dlq_topic, *internal)
            if name not in existing
        }
        if settings.dlq_topic in wanted:
            wanted[settings.dlq_topic]["configs"] = {"max.message.bytes": str(DEAD_LETTER_TOPIC_BYTES)}
        for name in compacted:
            if name not in existing:
                wanted[name] = {"num_partitions": settings.partitions, "replication_factor": -1,
                                "configs": dict(COMPACTED)}  # fmt: skip
        if wanted:
            try:
                admin.create_topics(wanted, timeout_ms=int(timeout_seconds * 1000), wait_for_metadata=True)
                log.info("created topics %s with %d partitions", sorted(wanted), settings.partitions)
            except TopicAlreadyExistsError:
                pass  # another process created it first
        if per_input:
            _ensure_per_input(admin, settings, per_input, timeout_seconds)
        _roll_sooner(admin, [name for name in (*compacted, *per_input) if name in existing])
        if fit_dead_letters and settings.dlq_topic in existing:
            _dead_letters_fit(admin, settings.dlq_topic)
    finally:
        admin.close()


def _set_where_unset(admin: KafkaAdminClient, names: list[str],
                     configs: dict[str, str]) -> tuple[list[str], dict[str, str]]:  # fmt: skip
    """Set ``configs`` on each topic of ``names`` where nobody has set them (neither on the topic
    nor in the broker's configuration): (the topics changed, the refusals by topic)."""
    try:
        found = admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, name) for name in names])
        modified = found.get("topic", {})  # only what is set: on the topic, or in the broker's configuration
        unset = {name: {key: value for key, value in configs.items() if key not in modified.get(name, {})}
                 for name in names}  # fmt: skip
        resources = [ConfigResource(ConfigResourceType.TOPIC, name, configs=wanted)
                     for name, wanted in unset.items() if wanted]  # fmt: skip
        results = admin.alter_configs(resources).get("topic", {}) if resources else {}
    except KafkaError as problem:
        results = dict.fromkeys(names, f"{type(problem).__name__}: {problem}")
    refused = {name: result for name, result in results.items() if result != "OK"}
    return sorted(set(results) - set(refused)), refused


def _dead_letters_fit(admin: KafkaAdminClient, name: str) -> None:
    """A dead-letter topic created before ccpulse set its largest message gets it, where nobody set one."""
    done, refused = _set_where_unset(admin, [name], {"max.message.bytes": str(DEAD_LETTER_TOPIC_BYTES)})
    if refused:
        log.warning("could not set max.message.bytes=%d on the dead-letter topic %s (%s): a message over its "
                    "limit goes there cut short (header error.truncated); set it with kafka-configs.sh "
                    "(docs/operations.md, \"Dead letters\")", DEAD_LETTER_TOPIC_BYTES, name, refused[name])  # fmt: skip
    if done:
        log.info("the dead-letter topic %s now takes messages up to %d bytes (max.message.bytes), so a message "
                 "of the input topic goes there unchanged", name, DEAD_LETTER_TOPIC_BYTES)  # fmt: skip


def dead_letter_bytes(settings: Settings, timeout_seconds: float = 30.0) -> int:
    """The largest dead letter the worker can send: the dead-letter topic's max.message.bytes as
    the broker applies it now (the topic's, the broker's or Kafka's default), at most the worker
    producer's largest request; Kafka's default when the broker does not say (blocking: run it in
    a thread)."""
    resource = ConfigResource(ConfigResourceType.TOPIC, settings.dlq_topic, configs={"max.message.bytes": None})
    try:
        admin = admin_client(settings, timeout_seconds)
        try:
            found = admin.describe_configs([resource], config_filter="all")
        finally:
            admin.close()
        limit = int(found["topic"][settings.dlq_topic]["max.message.bytes"]["value"])
    except (KafkaError, KeyError, TypeError, ValueError) as problem:
        log.warning("could not read the dead-letter topic's max.message.bytes (%s: %s): dead letters are cut at "
                    "Kafka's default, %d bytes", type(problem).__name__, problem, KAFKA_MESSAGE_BYTES)  # fmt: skip
        return KAFKA_MESSAGE_BYTES
    return min(limit, DEAD_LETTER_TOPIC_BYTES)


def _roll_sooner(admin: KafkaAdminClient, names: list[str]) -> None:
    """Changelogs created before ccpulse set ``ROLLING`` get it, where nobody has set it (neither
    on the topic nor in the broker's configuration); a broker that refuses (an ACL) is logged."""
    if not names:
        return
    done, refused = _set_where_unset(admin, names, {key: COMPACTED[key] for key in ROLLING})
    if refused:
        log.warning("could not set %s on the changelogs %s (%s): a take-over reads everything they hold since "
                    "they began; set them with kafka-configs.sh (docs/operations.md, \"Hand-overs\")",
                    COMPACTED_ROLLING_TEXT, sorted(refused), next(iter(refused.values())))  # fmt: skip
    if done:
        log.info("changelogs %s now roll their segments hourly or at 128 MiB (%s), so the broker compacts them",
                 done, COMPACTED_ROLLING_TEXT)  # fmt: skip


def partition_counts(settings: Settings, names: list[str], timeout_seconds: float = 30.0) -> dict[str, int]:
    """The partition count of each of ``names`` that exists (blocking: run it in a thread)."""
    admin = admin_client(settings, timeout_seconds)
    try:
        existing = [name for name in names if name in set(admin.list_topics())]
        if not existing:
            return {}
        topics = admin.describe_topics(existing)
        return {t.get("topic") or t["name"]: len(t["partitions"]) for t in topics if not t.get("error_code")}
    finally:
        admin.close()


def _ensure_per_input(admin: KafkaAdminClient, settings: Settings, names: tuple[str, ...], timeout: float) -> None:
    topics = admin.describe_topics([settings.topic, *names])
    described = {t.get("topic") or t["name"]: len(t["partitions"]) for t in topics if not t.get("error_code")}
    wanted = max(described.get(settings.topic, 0), settings.partitions)
    missing = {name: {"num_partitions": wanted, "replication_factor": -1, "configs": dict(COMPACTED)}
               for name in names if name not in described}  # fmt: skip
    if missing:
        try:
            admin.create_topics(missing, timeout_ms=int(timeout * 1000), wait_for_metadata=True)
            log.info("created topics %s with %d partitions (as the input topic)", sorted(missing), wanted)
        except TopicAlreadyExistsError:
            pass
    grow = {name: NewPartitions(wanted) for name, count in described.items() if name in names and count < wanted}
    if grow:
        admin.create_partitions(grow, timeout_ms=int(timeout * 1000))
        log.warning("grew topics %s to %d partitions: the input topic has that many", sorted(grow), wanted)


def message_key(line: bytes) -> bytes | None:
    """``contact_id`` (or ``agent_id``) of a JSON event line; None when there is none."""
    try:
        event = orjson.loads(line)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(event, dict):
        return None
    for field in ("contact_id", "agent_id"):
        value = event.get(field)
        if isinstance(value, str) and value:
            return value.encode()
    return None


def json_lines(stream: Iterable[bytes]) -> Iterator[bytes]:
    """The lines of a JSON Lines stream without their line ending; blank lines are skipped."""
    for line in stream:
        if line.endswith(b"\n"):
            line = line[:-1]
            if line.endswith(b"\r"):
                line = line[:-1]
        if line.strip():
            yield line


@dataclass
class SendReport:
    sent: int = 0
    failed: int = 0


class EventSender:
    """A producer for the input topic, batched (linger) and acknowledged by all replicas."""

    def __init__(self, settings: Settings, topic: str | None = None) -> None:
        self.topic = topic or settings.topic
        try:
            self._producer = KafkaProducer(
                client_id="ccpulse-produce",
                acks="all",
                linger_ms=20,
                batch_size=256 * 1024,
                max_request_size=MAX_REQUEST_BYTES,
                retries=5,
                **client_options(settings),
            )
        except KafkaError as problem:
            raise KafkaUnavailable(
                f"cannot reach Kafka at {settings.kafka_bootstrap} ({problem}). Is the broker running? "
                "Start one with: python3 deploy/local/kafka.py start"
            ) from problem
        self.report = SendReport()
        self._pending: list[object] = []

    def send(self, line: bytes, key: bytes | None = None, topic: str | None = None,
             headers: list[tuple[str, bytes]] | None = None) -> None:  # fmt: skip
        key = message_key(line) if key is None and topic is None else key
        try:
            future = self._producer.send(topic or self.topic, value=line, key=key, headers=headers)
        except KafkaError as problem:  # e.g. larger than the broker takes
            log.error("line not sent (%s): %d bytes", problem, len(line))
            self.report.failed += 1
            return
        self._pending.append(future)
        if len(self._pending) >= 10_000:
            self._settle()

    def settle(self) -> SendReport:
        """Wait until everything sent so far is acknowledged (or failed); the report so far."""
        self._settle()
        return self.report

    def _settle(self) -> None:
        self._producer.flush()
        for future in self._pending:
            try:
                future.get(timeout=30)  # type: ignore[attr-defined]
                self.report.sent += 1
            except KafkaError as problem:
                log.error("message not acknowledged: %s", problem)
                self.report.failed += 1
        self._pending.clear()

    def close(self) -> SendReport:
        self._settle()
        self._producer.close()
        return self.report

    def __enter__(self) -> EventSender:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
