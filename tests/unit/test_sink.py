"""The sink's promises, with a warehouse that fails on demand (the fault a real engine cannot
produce when asked): rows are written in order, a batch counts as written only once it is,
failures are retried until they succeed, and a full backlog makes writers wait."""

from __future__ import annotations

import asyncio
import threading

from pipeline.core.counts import Counts
from pipeline.sink import Sink, SinkBatch
from pipeline.warehouse import Warehouse


class FlakyWarehouse:
    def __init__(self) -> None:
        self.down = threading.Event()
        self.inserted: list[tuple[str, list]] = []  # type: ignore[type-arg]
        self.attempts = 0
        self.summed: list[set] = []  # type: ignore[type-arg]  # the minutes of each re-sum query
        self.left_owed: set = set()  # type: ignore[type-arg]  # what an earlier writer left owed
        self._owed = None

    def insert(self, table, rows, columns):  # type: ignore[no-untyped-def]
        self.attempts += 1
        if self.down.is_set():
            raise ConnectionError("ClickHouse is down")
        self.inserted.append((table, list(rows)))

    def minute_sums(self, touched):  # type: ignore[no-untyped-def]
        self.summed.append(set(touched))
        return {key: Counts(offered=1) for key in touched}

    def owed_on_record(self):  # type: ignore[no-untyped-def]
        return set(self.left_owed)

    def close(self) -> None:
        pass

    write = Warehouse.write  # the real flush (tables in order, then the minutes), over this fake's insert
    _record_owed = Warehouse._record_owed


def batch(number: int, rows: int = 10) -> SinkBatch:
    made = SinkBatch()
    made.rows["events"] = [(f"e{number}-{i}",) for i in range(rows)]
    return made


def test_rows_are_written_in_order_and_acknowledged_only_once_written() -> None:
    async def scenario() -> None:
        warehouse = FlakyWarehouse()
        sink = Sink(lambda: warehouse, flush_rows=1_000, flush_seconds=0.05, max_rows=10_000, max_backoff=0.05)
        sink.start(asyncio.get_running_loop())
        durable: list[int] = []
        warehouse.down.set()
        for number in range(5):
            written = batch(number)
            written.on_durable = lambda number=number: durable.append(number)  # type: ignore[misc]
            await sink.write(written)
        await asyncio.sleep(0.5)
        assert durable == [] and sink.health.failing and sink.health.errors >= 2  # retried, not dropped
        assert sink.health.backlog_rows == 50
        warehouse.down.clear()
        for _ in range(100):
            if len(durable) == 5:
                break
            await asyncio.sleep(0.05)
        assert durable == [0, 1, 2, 3, 4]
        rows = [row[0] for table, written_rows in warehouse.inserted for row in written_rows if table == "events"]
        assert rows == [f"e{n}-{i}" for n in range(5) for i in range(10)]
        assert not sink.health.failing and sink.health.backlog_rows == 0 and sink.health.last_success > 0
        sink.stop()

    asyncio.run(scenario())


def test_a_full_backlog_makes_writers_wait_until_there_is_room() -> None:
    async def scenario() -> None:
        warehouse = FlakyWarehouse()
        warehouse.down.set()
        sink = Sink(lambda: warehouse, flush_rows=10, flush_seconds=0.01, max_rows=30, max_backoff=0.05)
        sink.start(asyncio.get_running_loop())
        for number in range(3):
            await sink.write(batch(number))  # 30 rows: full
        fourth = asyncio.ensure_future(sink.write(batch(3)))
        await asyncio.sleep(0.3)
        assert not fourth.done() and sink.health.blocked  # backpressure: the writer waits
        assert sink.health.backlog_rows <= 30  # bounded
        warehouse.down.clear()
        await asyncio.wait_for(fourth, 5)
        assert not sink.health.blocked
        sink.stop()

    asyncio.run(scenario())


def test_minutes_touched_are_refreshed_after_the_contributions_they_sum() -> None:
    async def scenario() -> None:
        warehouse = FlakyWarehouse()
        sink = Sink(lambda: warehouse, flush_rows=1, flush_seconds=0.01)
        sink.start(asyncio.get_running_loop())
        written = SinkBatch(touched={("q", "voice", 1), ("q", "voice", 2)})
        written.rows["contributions"] = [("q", "voice", 60, "contact:c1")]
        await durably(sink, written)
        assert [table for table, _ in warehouse.inserted] == ["contributions", "metrics_minute"]
        minutes = warehouse.inserted[1][1]
        assert [(row[0], row[1], row[3]) for row in minutes] == [(60, "q", 1), (120, "q", 1)]
        assert minutes[0][-2] == minutes[1][-2] > 0  # one version per refresh
        sink.stop()

    asyncio.run(scenario())


def test_a_flush_writes_each_minute_once_its_last_value_and_a_resum_wins_over_the_board() -> None:
    async def scenario() -> None:
        warehouse = FlakyWarehouse()
        sink = Sink(lambda: warehouse, flush_rows=10_000, flush_seconds=0.2)  # the three batches: one flush
        sink.start(asyncio.get_running_loop())
        one, two = (1,) + (0,) * 18, (2,) + (0,) * 18
        first, second, third = SinkBatch(), SinkBatch(), SinkBatch()
        first.minutes = {("q", "voice", 1): one, ("q", "voice", 2): one, ("q", "voice", 3): one}
        second.minutes = {("q", "voice", 1): two, ("q", "voice", 2): None}  # minute 2: nothing any more
        third.touched = {("q", "voice", 3)}  # summed in ClickHouse (the fake sums offered=1)
        done = asyncio.Event()
        third.on_durable = done.set
        for batch in (first, second, third):
            await sink.write(batch)
        await asyncio.wait_for(done.wait(), 5)
        assert [table for table, _ in warehouse.inserted] == ["metrics_minute"]
        rows = warehouse.inserted[0][1]
        assert [(row[0], row[3], row[-1]) for row in rows] == [(60, 2, 0), (120, 0, 1), (180, 1, 0)]
        sink.stop()

    asyncio.run(scenario())


def test_a_stage_that_waits_before_the_writer_starts_is_woken() -> None:
    # The worker's stages can write before the sink's thread is started (both begin with the app).
    async def scenario() -> None:
        warehouse = FlakyWarehouse()
        sink = Sink(lambda: warehouse, flush_rows=10, flush_seconds=0.01, max_rows=20, max_backoff=0.05)
        await sink.write(batch(0))
        await sink.write(batch(1))
        third = asyncio.ensure_future(sink.write(batch(2)))  # full: waits
        await asyncio.sleep(0.1)
        assert not third.done() and sink.health.blocked
        sink.start(asyncio.get_running_loop())
        await asyncio.wait_for(third, 5)
        assert not sink.health.blocked
        sink.stop()

    asyncio.run(scenario())


def test_a_batch_with_nothing_to_write_is_acknowledged_in_turn() -> None:
    # Its messages must not be acknowledged before an earlier batch's: Faust may commit past one
    # unacknowledged message, which a crash would then lose.
    async def scenario() -> None:
        warehouse = FlakyWarehouse()
        warehouse.down.set()
        sink = Sink(lambda: warehouse, flush_rows=1, flush_seconds=0.01, max_backoff=0.05)
        sink.start(asyncio.get_running_loop())
        order: list[str] = []
        first = batch(0)
        first.on_durable = lambda: order.append("rows")
        await sink.write(first)
        empty = SinkBatch()
        empty.on_durable = lambda: order.append("empty")
        await sink.write(empty)
        await asyncio.sleep(0.2)
        assert order == []  # ClickHouse is down: neither may be acknowledged
        warehouse.down.clear()
        for _ in range(100):
            if len(order) == 2:
                break
            await asyncio.sleep(0.02)
        assert order == ["rows", "empty"]
        idle = SinkBatch()
        idle.on_durable = lambda: order.append("idle")
        await sink.write(idle)  # nothing on its way: at once
        assert order[-1] == "idle"
        sink.stop()

    asyncio.run(scenario())


def test_while_catching_up_flushes_are_fewer_and_larger_and_live_traffic_gets_the_short_interval_back() -> None:
    async def scenario() -> None:
        warehouse = FlakyWarehouse()
        sink = Sink(lambda: warehouse, flush_rows=10, flush_seconds=0.05, max_rows=1_000)
        sink.catching_up = True  # rows up to 5 x 10, or 2 s
        sink.start(asyncio.get_running_loop())
        await sink.write(batch(0, rows=20))
        await asyncio.sleep(0.5)
        assert warehouse.inserted == []  # past flush_rows and flush_seconds, not past the catch-up limits
        await sink.write(batch(1, rows=40))
        for _ in range(40):
            if warehouse.inserted:
                break
            await asyncio.sleep(0.05)
        assert [len(rows) for _, rows in warehouse.inserted] == [60]  # one insert of both batches
        sink.catching_up = False
        await sink.write(batch(2, rows=1))
        for _ in range(60):
            if len(warehouse.inserted) == 2:
                break
            await asyncio.sleep(0.05)
        assert [len(rows) for _, rows in warehouse.inserted] == [60, 1]  # within the catch-up interval's wait
        sink.stop()

    asyncio.run(scenario())


async def durably(sink: Sink, written: SinkBatch) -> None:
    """Write a batch and wait until the sink says it is durable."""
    done = asyncio.Event()
    written.on_durable = done.set
    await sink.write(written)
    await asyncio.wait_for(done.wait(), 5)


async def started(sink: Sink) -> None:
    """Until the sink's first flush: the one that settles what an earlier writer left owed."""
    for _ in range(100):
        if sink.health.flushes:
            return
        await asyncio.sleep(0.02)
    raise AssertionError("the sink's first flush did not come")


def test_while_catching_up_resums_are_put_off_recorded_and_made_together() -> None:
    async def scenario() -> None:
        warehouse = FlakyWarehouse()
        sink = Sink(lambda: warehouse, flush_rows=1, flush_seconds=0.01, resum_seconds=1.5)
        sink.catching_up = True  # flushes of 3 rows or every 1 s
        sink.start(asyncio.get_running_loop())
        await started(sink)
        for minute in (1, 2, 1):  # minute 1 comes back, as an old minute does flush after flush
            written = SinkBatch()
            written.rows["contributions"] = [("q", "voice", minute * 60, f"contact:c{minute}")]
            written.touched = {("q", "voice", minute)}
            await sink.write(written)

        def owed() -> list[tuple[int, int]]:
            return sorted((row[0], row[4]) for table, rows in warehouse.inserted
                          if table == "metrics_minute_owed" for row in rows)  # fmt: skip

        for _ in range(100):
            if sink.health.backlog_rows == 0:
                break
            await asyncio.sleep(0.02)
        assert {minute for minute, _ in owed()} == {60, 120} and {settled for _, settled in owed()} == {0}
        assert warehouse.summed == []  # recorded as owed, not re-summed yet
        flushes = sink.health.flushes
        for _ in range(100):  # the deadline passes with nothing more to write: a flush of no rows
            if sink.health.flushes > flushes:
                break
            await asyncio.sleep(0.05)
        assert warehouse.summed == [{("q", "voice", 1), ("q", "voice", 2)}]  # one query for both
        tables = [table for table, _ in warehouse.inserted]
        assert tables[-2:] == ["metrics_minute", "metrics_minute_owed"]  # summed, then settled
        assert sorted((row[0], row[4]) for row in warehouse.inserted[-1][1]) == [(60, 1), (120, 1)]
        sink.catching_up = False  # live: a touched minute is re-summed in its own flush
        await durably(sink, SinkBatch(touched={("q", "voice", 3)}))
        assert warehouse.summed[-1] == {("q", "voice", 3)}
        assert [table for table, _ in warehouse.inserted][-1] == "metrics_minute"  # nothing was owed
        sink.stop()

    asyncio.run(scenario())


def test_a_stopping_sink_and_a_starting_one_settle_what_is_owed() -> None:
    async def scenario() -> None:
        warehouse = FlakyWarehouse()
        sink = Sink(lambda: warehouse, flush_rows=1, flush_seconds=0.01)
        sink.catching_up = True  # re-sums put off up to 10 s: far off
        sink.start(asyncio.get_running_loop())
        await started(sink)
        await durably(sink, SinkBatch(touched={("q", "voice", 5)}))
        assert warehouse.summed == []
        await asyncio.to_thread(sink.stop)  # the worker stops: what is owed is re-summed first
        assert warehouse.summed == [{("q", "voice", 5)}]
        # a sink that starts settles what an earlier writer left owed (a crash before the re-sum)
        # at once, even while catching up and with nothing to write
        restarted = FlakyWarehouse()
        restarted.left_owed = {("q", "voice", 7)}
        sink = Sink(lambda: restarted, flush_rows=1, flush_seconds=0.01)
        sink.catching_up = True
        sink.start(asyncio.get_running_loop())
        await started(sink)
        assert restarted.summed == [{("q", "voice", 7)}]
        assert [table for table, _ in restarted.inserted] == ["metrics_minute", "metrics_minute_owed"]
        assert [(row[0], row[4]) for row in restarted.inserted[1][1]] == [(420, 1)]  # settled
        sink.stop()

    asyncio.run(scenario())
