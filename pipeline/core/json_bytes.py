"""JSON as bytes that are kept: ``orjson.dumps`` with the result sized to its content.

orjson (3.12 on) hands back its whole working buffer: every ``orjson.dumps`` result occupies at
least 4 KiB, however short its text (measured here with orjson 3.13.0: 4,098 bytes for a
166-byte event, 390 MiB for 100,000 changelog keys; Home Assistant trims its cached JSON for the
same reason). That is harmless for a document written out at once, and a leak-sized cost for bytes
that are kept: changelog keys and records waiting for their batch, a pseudonymised event's raw
JSON waiting in the ClickHouse sink, values held in a table. Those go through :func:`json_bytes`,
which copies the text into bytes of its own length (~0.2 µs).
"""

from __future__ import annotations

from typing import Any

import orjson


def json_bytes(value: Any) -> bytes:
    """``orjson.dumps(value)``, the same bytes, in an object no larger than they are."""
    return bytes(memoryview(orjson.dumps(value)))
