"""The worker's web server: ``/metrics``, ``/status``, ``/query``, ``/api/snapshot``, ``/api/agents``,
``/api/stream``, the wallboard and platforms' webhooks (``/sources/<name>``), on aiohttp, started by Faust as the
app's web server (``App.web_server``).

The views only read what :class:`Views` hands them (callables over the worker's state); nothing
here knows Kafka or the stages. The server binds ``CCPULSE_HTTP_PORT``; ``0`` takes a port the
kernel chooses at bind time, and the address it got is published in the data dir
(:mod:`pipeline.web_address`), where ``ccpulse status``, ``ccpulse query``, ``ccpulse up`` and the
tests read it. Faust's own aiohttp driver cannot tell the port it bound without reading its
private runner, so the worker runs its own aiohttp application through Faust's public hook.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import os
import time
from collections.abc import AsyncGenerator, Awaitable, Callable
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from aiohttp import web
from mode import Service
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from pipeline import wallboard, web_address
from pipeline.core.drilldown import STATES
from pipeline.settings import Secret
from pipeline.warehouse import stopped_at_limit, with_limit_hint

log = logging.getLogger("ccpulse.web")

STREAM_TICK_SECONDS = 0.25  # how often /api/stream looks for a changed board
# Threads for the views' blocking calls (SQL through the writer process: /query, /api/contacts), apart
# from the event loop's default executor, which the stages' take-overs use (asyncio.to_thread): queries
# waiting on a slow or hung ClickHouse must not hold the threads a take-over needs. The writer answers
# one query at a time, so more threads would only wait.
QUERY_THREADS = 2


@dataclass(frozen=True)
class Views:
    """What the pages read. Each callable is cheap and called on the worker's event loop."""

    registry: CollectorRegistry
    board_document: Callable[[], dict[str, Any]]
    status_document: Callable[[], dict[str, Any]]
    query: Callable[[str, str], bytes] | None  # (sql, format) -> output; None: ClickHouse is off
    query_token: Secret | None
    stopping: Callable[[], bool]
    # platforms' webhooks by name (POST /sources/<name>, pipeline.webhooks); only those configured
    sources: dict[str, Callable[[web.Request], Awaitable[web.Response]]] = field(default_factory=dict)
    agents_document: Callable[[frozenset[str]], dict[str, Any]] = lambda queues: {"agents": []}  # noqa: E731
    # (state, queue, channel) -> the contacts behind a figure; None: drill-down is off (CCPULSE_DRILLDOWN)
    contacts_document: Callable[[str, str, str], dict[str, Any]] | None = None


class BoardFeed:
    """The board's document for every open ``/api/stream``, built once a tick whoever listens: a
    floor with twenty wallboards open costs the loop what one costs (each stream built its own
    before: twenty open took a worker at 1,000 events/s from 28% to 48% of a core, docs/performance.md).

    A tick's frame is the document encoded twice: without ``generated_at`` (``same``, to tell an
    unchanged board) and as the event a stream sends. Ticks run only while a stream listens; a
    stream that joins gets the current tick's frame at once, or the next."""

    def __init__(self, build: Callable[[], dict[str, Any]], tick: float = STREAM_TICK_SECONDS) -> None:
        self._build = build
        self._tick = tick
        self._listeners = 0
        self._frame: tuple[bytes, bytes] | BaseException | None = None  # (same, event), or why none
        self._ticked = asyncio.Event()  # replaced by a new one at each tick
        self._task: asyncio.Task[None] | None = None

    async def frames(self) -> AsyncGenerator[tuple[bytes, bytes], None]:
        """Each tick's frame, the first at once, for as long as the caller iterates; re-raises
        what building the document raised."""
        self._listeners += 1
        try:
            if self._task is None:
                self._task = asyncio.get_running_loop().create_task(self._run())
            seen: object = self._frame if isinstance(self._frame, BaseException) else None  # not an earlier failure
            while True:
                frame = self._frame
                if frame is None or frame is seen:
                    await self._ticked.wait()
                    continue
                if isinstance(frame, BaseException):
                    raise frame
                seen = frame
                yield frame
        finally:
            self._listeners -= 1

    async def _run(self) -> None:
        try:
            while self._listeners:
                self._frame = self._encoded()
                self._ticked, ticked = asyncio.Event(), self._ticked
                ticked.set()
                await asyncio.sleep(self._tick)
        finally:
            self._task, self._frame = None, None

    def _encoded(self) -> tuple[bytes, bytes] | Exception:
        try:
            document = self._build()
        except Exception as problem:  # noqa: BLE001 - each stream ends with it, as its own build did
            log.exception("the board's document for /api/stream failed")
            return problem
        generated_at = document.pop("generated_at", None)
        same = orjson.dumps(document)
        document["generated_at"] = generated_at
        return same, b"data: " + orjson.dumps(document) + b"\n\n"

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()


def application(views: Views) -> web.Application:
    app = web.Application()
    routes = web.RouteTableDef()
    feed = BoardFeed(views.board_document)
    blocking = ThreadPoolExecutor(QUERY_THREADS, thread_name_prefix="ccpulse-query")

    async def close(app: web.Application) -> None:
        await feed.close()
        blocking.shutdown(wait=False, cancel_futures=True)

    app.on_cleanup.append(close)

    @routes.get("/metrics")
    async def metrics(request: web.Request) -> web.Response:
        """Every family; with ``?name[]=…`` (repeatable, as prometheus_client's own servers take
        it), only those samples: a poller that wants one gauge costs the loop its collection only,
        not the formatting of every sample (20 ms at 2,000 samples)."""
        names = request.query.getall("name[]", [])
        registry = views.registry.restricted_registry(names) if names else views.registry
        return web.Response(body=generate_latest(registry), content_type=CONTENT_TYPE_LATEST.split(";")[0])

    @routes.get("/status")
    async def status(request: web.Request) -> web.Response:
        return _json(views.status_document())

    @routes.get("/api/snapshot")
    async def api_snapshot(request: web.Request) -> web.Response:
        """The board as JSON for wallboards (docs/wallboard-api.md)."""
        return _json(views.board_document())

    @routes.get("/api/agents")
    async def api_agents(request: web.Request) -> web.Response:
        """The live agent list (docs/wallboard-api.md); ``?queue=billing,sales``: only agents serving
        one of them (a large floor's TV reads its team's, not every agent's)."""
        queues = frozenset(queue.strip() for queue in request.query.get("queue", "").split(",") if queue.strip())
        return _json(views.agents_document(queues))

    @routes.get("/api/contacts")
    async def api_contacts(request: web.Request) -> web.Response:
        """The contacts behind a tile's figures (docs/wallboard-api.md): off unless CCPULSE_DRILLDOWN=on."""
        return await _contacts(request, views, blocking)

    @routes.get("/api/stream")
    async def api_stream(request: web.Request) -> web.StreamResponse:
        return await _board_stream(request, views, feed)

    @routes.get("/query")
    @routes.post("/query")
    async def query(request: web.Request) -> web.Response:
        return await _query(request, views, blocking)

    @routes.post("/sources/{name}")
    async def source(request: web.Request) -> web.Response:
        """A platform's webhook (docs/sources.md): TaskRouter's event callbacks."""
        handler = views.sources.get(request.match_info["name"])
        if handler is None:
            name = request.match_info["name"]
            return web.Response(text=f"no source {name!r} here: TaskRouter callbacks (/sources/twilio-taskrouter) "
                                "need CCPULSE_TWILIO_AUTH_TOKEN\n", status=404)  # fmt: skip
        return await handler(request)

    @routes.get("/wallboard")
    async def wallboard_page(request: web.Request) -> web.Response:
        """The wallboard for the contact-center floor (docs/wallboard-api.md)."""
        return _asset("index.html")

    @routes.get("/wallboard/{name}")
    async def wallboard_file(request: web.Request) -> web.Response:
        """An asset, the agent list (``/wallboard/agents``, issue 22) or a tile's contacts (``/wallboard/contacts``)."""
        name = request.match_info["name"]
        return _asset({"agents": "agents.html", "contacts": "contacts.html"}.get(name, name))

    @routes.get("/wallboard/fonts/{name}")
    async def wallboard_font(request: web.Request) -> web.Response:
        return _asset("fonts/" + request.match_info["name"])

    app.add_routes(routes)
    return app


def _json(document: dict[str, Any]) -> web.Response:
    return web.Response(body=orjson.dumps(document), content_type="application/json")


def _asset(name: str) -> web.Response:
    found = wallboard.asset(name)
    if found is None:
        return web.Response(body=b"not found", content_type="text/plain", status=404)
    body, content_type = found
    cache = "max-age=86400" if name.startswith("fonts/") else "no-cache"
    return web.Response(body=body, content_type=content_type.split(";")[0], headers={"Cache-Control": cache})


async def _board_stream(request: web.Request, views: Views, feed: BoardFeed) -> web.StreamResponse:
    """The board as server-sent events: a document whenever it changes (checked every
    ``STREAM_TICK_SECONDS``), and at least every second, so a board can tell a quiet queue from a
    dead connection. The documents come from the one :class:`BoardFeed` every stream shares."""
    response = web.StreamResponse(
        headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    )
    await response.prepare(request)
    await response.write(b"retry: 1000\n\n")
    previous, sent_at = b"", 0.0
    try:
        async with contextlib.aclosing(feed.frames()) as frames:
            async for same, event in frames:
                if views.stopping():
                    break
                if same != previous or time.monotonic() - sent_at >= 1.0:
                    await response.write(event)
                    previous, sent_at = same, time.monotonic()
    except (ConnectionError, RuntimeError):  # the board went away
        pass
    return response


async def _contacts(request: web.Request, views: Views, blocking: Executor) -> web.Response:
    listing = views.contacts_document
    if listing is None:
        return web.Response(text="contacts: the drill-down is off; it shows customer data: set CCPULSE_DRILLDOWN=on "
                            "and put the worker behind your own login (docs/operations.md)\n", status=404)  # fmt: skip
    queue, channel = request.query.get("queue", ""), request.query.get("channel", "")
    state = request.query.get("state", "waiting")
    if not queue or not channel or state not in STATES:
        return web.Response(text=f"contacts: give queue=, channel= and state= (one of {', '.join(STATES)}), e.g. "
                            "/api/contacts?queue=billing&channel=voice&state=waiting\n", status=400)  # fmt: skip
    try:
        document = await asyncio.get_running_loop().run_in_executor(blocking, listing, state, queue, channel)
    except Exception as problem:  # noqa: BLE001 - ClickHouse down or refusing: say so, the board goes on
        return web.Response(text=f"contacts: ClickHouse did not answer: {problem}\n", status=503)
    return _json(document)


async def _query(request: web.Request, views: Views, blocking: Executor) -> web.Response:
    """Read-only SQL, POSTed as the body or given as ``?sql=``, on the worker's ClickHouse
    (``ccpulse query`` uses it while this worker holds the embedded engine). Loopback clients only,
    unless CCPULSE_QUERY_TOKEN is set: then any client with ``Authorization: Bearer <token>``.
    Read-only is enforced by ClickHouse itself (``readonly=1``: no writes, no DDL, no setting changes)."""
    token = views.query_token
    if token is not None:
        given = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
        if not hmac.compare_digest(given.encode(), token.reveal().encode()):
            return web.Response(text="query: a valid 'Authorization: Bearer <CCPULSE_QUERY_TOKEN>' is required\n",
                                status=401)  # fmt: skip
    elif request.remote not in ("127.0.0.1", "::1"):
        return web.Response(text="query: only from this host; set CCPULSE_QUERY_TOKEN to allow other hosts\n",
                            status=403)  # fmt: skip
    posted = request.method == "POST"
    sql = (await request.read()).decode("utf-8", "replace") if posted else request.query.get("sql", "")
    run_query = views.query
    if run_query is None:
        return web.Response(text="query: ClickHouse is off (CCPULSE_CLICKHOUSE_URL=off)\n", status=503)
    if not sql.strip():
        return web.Response(text="query: no SQL given (POST it as the body, or GET ?sql=...)\n", status=400)
    output = request.query.get("format", "jsonl")
    try:
        result = await asyncio.get_running_loop().run_in_executor(blocking, run_query, sql, output)
    except ConnectionError as problem:  # the writer process died or hung: replaced, the query may be asked again
        return web.Response(text=f"query failed: {problem}; ask again\n", status=503)
    except Exception as problem:  # noqa: BLE001 - the caller's SQL is wrong, or the engine refused it
        status = 504 if stopped_at_limit(str(problem)) else 400
        return web.Response(text=f"query failed: {with_limit_hint(str(problem))}\n", status=status)
    return web.Response(body=result, content_type="text/plain" if output != "jsonl" else "application/x-ndjson")


class WebServer(Service):
    """The aiohttp server of one worker, started and stopped with the Faust app.

    Binds ``host:port`` (``port`` 0: the kernel's choice, at bind time: no other process can take
    it in between) and publishes the address it got in ``address_file``."""

    def __init__(self, views: Views, host: str, port: int, address_file: Path, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.views, self.host, self.port, self.address_file = views, host, port, address_file
        self.url: str | None = None
        self._runner: web.AppRunner | None = None

    async def on_start(self) -> None:
        runner = web.AppRunner(application(self.views), access_log=None, handle_signals=False)
        await runner.setup()
        site = web.TCPSite(runner, self.host, self.port)
        try:
            await site.start()
        except OSError as problem:
            await runner.cleanup()
            raise SystemExit(
                f"ccpulse worker: cannot serve the web on {self.host}:{self.port} ({problem.strerror}). "
                "Another process uses that port: stop it, or set CCPULSE_HTTP_PORT to a free port "
                "(0: any free port; ccpulse status finds it)"
            ) from problem
        self._runner = runner
        host, port = runner.addresses[0][:2]
        self.url = web_address.url_of(str(host), int(port))
        web_address.publish(self.address_file, self.url, os.getpid())
        log.info("web %s  (wallboard %s/wallboard)", self.url, self.url)

    async def on_stop(self) -> None:
        web_address.withdraw(self.address_file, os.getpid())
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def get_web_url(self) -> str:
        return self.url or web_address.url_of(self.host, self.port)
