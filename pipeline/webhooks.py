"""Platforms' webhooks on the worker's web server: TaskRouter's event callbacks, converted into
contract events and sent to the input topic (docs/sources.md, "TaskRouter callbacks").

    Twilio ──POST /sources/twilio-taskrouter, X-Twilio-Signature──▶ worker web server
        signature checked (403 when wrong) ─▶ converted ─▶ input topic (acknowledged) ─▶ 204
                                             └─ a record it cannot read ─▶ dead-letter topic

Requests are taken one at a time: the converter's state (a task's acceptance time, a worker's
tasks) moves only with records whose events the broker acknowledged. Each such record is appended
to a journal in the data dir; at start the journal (after its last snapshot) rebuilds the state,
so a restarted worker finishes the tasks its predecessor saw begin. When the broker does not
answer, the request gets 503 (Twilio may retry it) and the state goes back to the journal's.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import orjson
from aiohttp import web
from prometheus_client import CollectorRegistry, Counter

from pipeline.dead_letters import HEADER_DETAIL, HEADER_REASON
from pipeline.kafka_io import message_key
from pipeline.settings import Secret
from pipeline.sources.asterisk import Outcome
from pipeline.sources.journal import Journal
from pipeline.sources.twilio import TaskRouter, signed

log = logging.getLogger("ccpulse.webhooks")
PATH = "/sources/twilio-taskrouter"
Message = tuple[str, bytes | None, bytes, list[tuple[str, bytes]] | None]  # topic, key, value, headers
Send = Callable[[list[Message]], Awaitable[None]]


class TaskRouterCallbacks:
    """``POST /sources/twilio-taskrouter``: one TaskRouter event callback (form-encoded), or an
    Event Streams webhook delivery (JSON), signed with the account's auth token."""

    def __init__(self, token: Secret, public_url: str | None, data_dir: Path, topic: str, dlq_topic: str,
                 send: Send, registry: CollectorRegistry) -> None:  # fmt: skip
        self.token, self.public_url, self.topic, self.dlq_topic, self.send = token, public_url, topic, dlq_topic, send
        self.converter = TaskRouter()
        self.journal = Journal(data_dir / "sources", "twilio-taskrouter")
        self.journal.restore(self.converter)
        self.turn = asyncio.Lock()
        self.requests = Counter("ccpulse_source_requests", "Webhook requests from platforms, by verdict "
                                "(accepted, skipped, rejected: to the dead-letter topic, forbidden: "
                                "not signed right, failed: Kafka did not acknowledge)",
                                ["source", "verdict"], registry=registry)  # fmt: skip

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        is_json = request.content_type == "application/json" or body.lstrip()[:1] in (b"{", b"[")
        form = None if is_json else list((await request.post()).items())
        url = self._url(request)
        if not signed(self.token.reveal(), request.headers.get("X-Twilio-Signature", ""), url, body,
                      [(name, str(value)) for name, value in form] if form is not None else None):  # fmt: skip
            self.requests.labels("twilio-taskrouter", "forbidden").inc()
            log.warning("TaskRouter callback refused: no valid X-Twilio-Signature for %s from %s", url, request.remote)
            return web.Response(text="X-Twilio-Signature is missing or wrong for this URL and auth token\n", status=403)
        text = body.decode("utf-8", "replace")
        async with self.turn:
            outcome = self.converter.line(text)
            try:
                await self.send(self._messages(outcome, body))
            except Exception as problem:  # noqa: BLE001 - Kafka is away: the state goes back, Twilio may retry
                self.journal.restore(self.converter)
                self.requests.labels("twilio-taskrouter", "failed").inc()
                log.error("TaskRouter callback not taken: Kafka did not acknowledge its events (%s)", problem)
                return web.Response(text="the events could not be stored; try again\n", status=503)
            self.journal.append([(text, None, None)], self.converter)
        verdict = "rejected" if outcome.rejected else "accepted" if outcome.events else "skipped"
        self.requests.labels("twilio-taskrouter", verdict).inc()
        return web.Response(status=204)

    def _url(self, request: web.Request) -> str:
        """The URL Twilio signed: ``CCPULSE_TWILIO_WEBHOOK_URL`` (behind a proxy) with the request's
        query, else the URL as this server received it."""
        if not self.public_url:
            return str(request.url)
        base = self.public_url.split("?", 1)[0]
        return f"{base}?{request.query_string}" if request.query_string else base

    def _messages(self, outcome: Outcome, body: bytes) -> list[Message]:
        messages: list[Message] = []
        for event in outcome.events:
            value = orjson.dumps(event)
            messages.append((self.topic, message_key(value), value, None))
        if outcome.rejected:
            messages.append((self.dlq_topic, None, body, [
                (HEADER_REASON, outcome.rejected.encode()), (HEADER_DETAIL, outcome.detail.encode()[:1000]),
                ("source.webhook", b"twilio-taskrouter"),
            ]))  # fmt: skip
        return messages


def producer_send(producer: Callable[[], Any]) -> Send:
    """Send messages with an aiokafka producer and wait until every one is acknowledged."""

    async def send(messages: list[Message]) -> None:
        sending = producer()
        deliveries = [await sending.send(topic, value, key=key, headers=headers)
                      for topic, key, value, headers in messages]  # fmt: skip
        await asyncio.gather(*deliveries)

    return send
