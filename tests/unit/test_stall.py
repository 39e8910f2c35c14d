from pipeline.core.stall import StallWatch


def test_a_stage_with_waiting_messages_and_no_commits_is_stuck_after_the_limit() -> None:
    watch = StallWatch(60)
    assert not watch.stuck("ingest", 500, 100, now=0)
    assert not watch.stuck("ingest", 500, 100, now=59)
    assert watch.stuck("ingest", 500, 100, now=60)


def test_progress_or_an_empty_backlog_starts_the_clock_again() -> None:
    watch = StallWatch(60)
    watch.stuck("contacts", 10, 5, now=0)
    assert not watch.stuck("contacts", 10, 6, now=50)  # committed moved
    assert not watch.stuck("contacts", 10, 6, now=109)
    assert not watch.stuck("contacts", 0, 6, now=200)  # nothing waiting: idle, not stuck
    assert not watch.stuck("contacts", 3, 6, now=259)
    assert watch.stuck("contacts", 3, 6, now=260)


def test_stages_are_watched_separately_and_reset_forgives_recovery_time() -> None:
    watch = StallWatch(60)
    watch.stuck("issues", 1, 0, now=0)
    watch.stuck("board", 1, 0, now=30)
    watch.reset(now=50)  # tables were being restored until now
    assert not watch.stuck("issues", 1, 0, now=100)
    assert watch.stuck("issues", 1, 0, now=110)
    assert not watch.stuck("board", 1, 1, now=500)


def test_a_limit_of_zero_never_fires() -> None:
    watch = StallWatch(0)
    watch.stuck("ingest", 1, 0, now=0)
    assert not watch.stuck("ingest", 1, 0, now=10**6)


def test_the_stall_report_names_where_each_task_waits(caplog) -> None:  # type: ignore[no-untyped-def]
    import asyncio
    import logging

    from pipeline.topology import _log_stall_report

    async def waits_for_clickhouse() -> None:
        await asyncio.sleep(30)

    async def stage() -> None:
        await waits_for_clickhouse()

    async def scenario() -> None:
        task = asyncio.create_task(stage(), name="agent-ingest")
        await asyncio.sleep(0.01)
        with caplog.at_level(logging.ERROR, logger="ccpulse.worker"):
            _log_stall_report(None, {}, app_with_producer(None))
        task.cancel()

    asyncio.run(scenario())
    assert "task agent-ingest waits in stage:" in caplog.text and "waits_for_clickhouse" in caplog.text


def app_with_producer(producer):  # type: ignore[no-untyped-def]
    """The two attributes of a Faust app the report reads: its aiokafka producer and its buffer."""
    from types import SimpleNamespace

    return SimpleNamespace(producer=SimpleNamespace(_producer=producer, buffer=SimpleNamespace(size=0)))


def test_the_stall_report_shows_what_the_producer_has_not_sent() -> None:
    # A Faust commit first waits for every message of the producer to be acknowledged: the report
    # shows what it is waiting for (a real aiokafka producer, never connected).
    import asyncio

    from aiokafka import AIOKafkaProducer
    from aiokafka.structs import TopicPartition

    from pipeline.topology import _producer_status

    async def scenario() -> dict:  # type: ignore[type-arg]
        producer = AIOKafkaProducer(bootstrap_servers="127.0.0.1:9")
        await producer._message_accumulator.add_message(TopicPartition("cc.reports", 3), None, b"x", timeout=1)
        try:
            return _producer_status(app_with_producer(producer))  # type: ignore[arg-type]
        finally:
            await producer.stop()

    status = asyncio.run(scenario())
    assert list(status["queued"]) == ["cc.reports/3"] and status["queued"]["cc.reports/3"][0] == 1
    assert status["awaiting_acks"] == [] and status["nodes_in_flight"] == []
    assert _producer_status(app_with_producer(None)) == {"started": False}  # type: ignore[arg-type]


def test_a_rebalance_that_never_ends_is_a_stall_after_the_settle_limit() -> None:
    from pipeline.core.stall import SETTLE_FLOOR_SECONDS, StallWatch

    watch = StallWatch(30)
    assert watch.settle_limit_seconds == max(SETTLE_FLOOR_SECONDS, 300)
    assert not watch.settled_too_long(True, now=100.0)
    assert not watch.settled_too_long(True, now=100.0 + watch.settle_limit_seconds - 1)
    assert watch.settled_too_long(True, now=100.0 + watch.settle_limit_seconds)
    assert not watch.settled_too_long(False, now=2000.0)  # it ended: the clock starts again
    assert not watch.settled_too_long(True, now=2001.0)
    assert not StallWatch(0).settled_too_long(True, now=1e9) and not StallWatch(0).settled_too_long(True, now=2e9)


def test_a_round_of_lag_questions_kafka_left_unanswered_is_an_outage_not_a_stall() -> None:
    from pipeline.core.stall import QUIET_SECONDS, kafka_quiet

    assert not kafka_quiet(100.0, 100.4, None)  # answered within the fetch's long poll
    assert kafka_quiet(100.0, 100.0 + QUIET_SECONDS, None)  # the round waited for the broker to come back
    assert kafka_quiet(100.0, 100.1, 95.0)  # another stage's question is still unanswered
