"""``/query`` and ``/api/contacts`` wait for ClickHouse in threads of their own: queries piling up
behind a slow or hung writer process must not hold the event loop's default executor, which the
stages' take-overs run in (``asyncio.to_thread``). The worker's real web application, a real socket
(port 0); the fault injected is a query that does not return until released."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

from aiohttp import ClientSession
from aiohttp.test_utils import TestServer
from prometheus_client import CollectorRegistry

from pipeline.web import Views, application

WAITING = 40  # more than the default executor's threads on any machine of up to 36 cores


class HungClickHouse:
    def __init__(self) -> None:
        self.released = threading.Event()
        self.asked = 0

    def query(self, sql: str, output: str) -> bytes:
        self.asked += 1
        self.released.wait(30)
        return b'{"one":1}\n'

    def contacts(self, state: str, queue: str, channel: str) -> dict[str, Any]:
        self.query("", "jsonl")
        return {"contacts": []}


def test_queries_waiting_on_clickhouse_leave_the_take_overs_their_threads() -> None:
    clickhouse = HungClickHouse()
    views = Views(registry=CollectorRegistry(), board_document=dict, status_document=dict, query=clickhouse.query,
                  query_token=None, stopping=lambda: False, contacts_document=clickhouse.contacts)  # fmt: skip

    async def scenario() -> None:
        server = TestServer(application(views), host="127.0.0.1")
        await server.start_server()
        url = str(server.make_url("")).rstrip("/")
        try:
            async with ClientSession() as session:

                async def ask(path: str) -> tuple[int, bytes]:
                    async with session.get(url + path) as response:
                        return response.status, await response.read()

                asked = [asyncio.create_task(ask("/query?sql=SELECT%201" if n % 2 else
                                                 "/api/contacts?queue=q&channel=voice&state=waiting"))
                         for n in range(WAITING)]  # fmt: skip
                deadline = time.monotonic() + 10
                while clickhouse.asked == 0 and time.monotonic() < deadline:
                    await asyncio.sleep(0.01)
                assert clickhouse.asked, "no query reached ClickHouse in 10 s"
                # a take-over's work in the default executor runs at once, queries waiting or not
                assert await asyncio.wait_for(asyncio.to_thread(lambda: "taken over"), 5) == "taken over"
                assert clickhouse.asked <= 2  # the others wait for a turn, not in a thread each
                clickhouse.released.set()
                answers = await asyncio.gather(*asked)
                assert [status for status, _ in answers] == [200] * WAITING
                assert clickhouse.asked == WAITING
        finally:
            clickhouse.released.set()
            await server.close()

    asyncio.run(scenario())
