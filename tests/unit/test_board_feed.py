"""The wallboards' stream (``/api/stream``) builds the board's document once a tick, however many
wallboards are open, through the worker's real web application on a real socket (port 0)."""

from __future__ import annotations

import asyncio
import itertools
import time
from typing import Any

import orjson
from aiohttp import ClientSession
from aiohttp.test_utils import TestServer
from prometheus_client import CollectorRegistry

from pipeline.web import STREAM_TICK_SECONDS, Views, application

STREAMS = 12
Documents = list[dict[str, Any]]


class Board:
    """A board's document that changes at every build (``changing``) or never."""

    def __init__(self, changing: bool = True) -> None:
        self.builds = itertools.count(1)
        self.built = 0
        self.changing = changing
        self.failing = False

    def document(self) -> dict[str, Any]:
        self.built = next(self.builds)
        if self.failing:
            raise RuntimeError("the board is gone")
        return {"build": self.built if self.changing else 0, "generated_at": time.time()}


def views_of(board: Board) -> Views:
    return Views(registry=CollectorRegistry(), board_document=board.document, status_document=dict, query=None,
                 query_token=None, stopping=lambda: False)  # fmt: skip


async def documents(session: ClientSession, url: str, seconds: float) -> Documents:
    """The documents one wallboard receives in ``seconds``."""
    found: Documents = []
    async with session.get(url + "/api/stream") as response:
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            try:
                line = await asyncio.wait_for(response.content.readline(), left)
            except TimeoutError:
                break
            if not line:
                break
            if line.startswith(b"data: "):
                found.append(orjson.loads(line[6:]))
    return found


async def serving(board: Board, scenario: Any) -> Any:
    server = TestServer(application(views_of(board)), host="127.0.0.1")
    await server.start_server()
    try:
        async with ClientSession() as session:
            return await scenario(session, str(server.make_url("")).rstrip("/"))
    finally:
        await server.close()


def test_open_wallboards_share_one_document_a_tick() -> None:
    board = Board()

    async def scenario(session: ClientSession, url: str) -> list[Documents]:
        return await asyncio.gather(*(documents(session, url, 8 * STREAM_TICK_SECONDS) for _ in range(STREAMS)))

    seen = asyncio.run(serving(board, scenario))
    received = sum(len(each) for each in seen)
    assert all(len(each) >= 3 for each in seen), [len(each) for each in seen]
    # each stream building its own document would build one per document received
    assert board.built * 3 < received, (board.built, received)
    builds = [[document["build"] for document in each] for each in seen]
    assert all(each == sorted(set(each)) for each in builds), builds  # in order, none twice
    shared = set.intersection(*(set(each) for each in builds))
    assert len(shared) >= 2, builds  # the very documents, not each stream's own


def test_an_unchanged_board_is_sent_once_a_second() -> None:
    async def scenario(session: ClientSession, url: str) -> Documents:
        return await documents(session, url, 2.5)

    seen = asyncio.run(serving(Board(changing=False), scenario))
    assert 2 <= len(seen) <= 4, seen  # at once, then each second: not at every tick
    assert [each["build"] for each in seen] == [0] * len(seen)


def test_ticks_stop_with_the_last_wallboard_and_start_afresh() -> None:
    board = Board()

    async def scenario(session: ClientSession, url: str) -> tuple[Documents, Documents, int, float]:
        before = await documents(session, url, 4 * STREAM_TICK_SECONDS)
        built, deadline = -1, time.monotonic() + 10
        while board.built != built and time.monotonic() < deadline:  # until no tick builds any more
            built = board.built
            await asyncio.sleep(4 * STREAM_TICK_SECONDS)
        idle = board.built - built
        reopened = time.time()
        return before, await documents(session, url, 2 * STREAM_TICK_SECONDS), idle, reopened

    before, after, idle, reopened = asyncio.run(serving(board, scenario))
    assert idle == 0  # no build while no wallboard is open
    assert before and after
    assert after[0]["generated_at"] >= reopened  # a fresh document, not the last one kept


def test_a_failing_board_ends_the_streams_and_the_next_one_works() -> None:
    board = Board()

    async def scenario(session: ClientSession, url: str) -> tuple[Documents, Documents]:
        board.failing = True
        failed = await documents(session, url, 4 * STREAM_TICK_SECONDS)
        board.failing = False
        return failed, await documents(session, url, 4 * STREAM_TICK_SECONDS)

    failed, working = asyncio.run(serving(board, scenario))
    assert failed == []
    assert len(working) >= 2
