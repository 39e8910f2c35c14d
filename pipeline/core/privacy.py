"""Customer ids, pseudonymised before anything is stored.

With a key (``CCPULSE_CUSTOMER_KEY``), every ``customer_id`` becomes HMAC-SHA256(key, id) in hex
at the pipeline's entry: state, internal topics, ClickHouse and logs only ever see that. The
same id always gives the same pseudonym, so repeat contacts (FCR) are found as before; without
the key, a phone number or an e-mail address cannot be recovered by hashing guesses (a plain
hash could: phone numbers are few enough to try them all).
"""

from __future__ import annotations

import hashlib
import hmac

import msgspec
import orjson

from pipeline.core.contract import Event
from pipeline.core.json_bytes import json_bytes


class Pseudonyms:
    def __init__(self, key: str | None) -> None:
        self._key = key.encode() if key else None

    @property
    def active(self) -> bool:
        return self._key is not None

    def customer(self, customer_id: str) -> str:
        if self._key is None:
            return customer_id
        return hmac.new(self._key, customer_id.encode(), hashlib.sha256).hexdigest()

    def event(self, event: Event, raw: bytes) -> tuple[Event, bytes]:
        """The event and its raw JSON with ``customer_id`` replaced (unchanged without a key)."""
        if self._key is None or (event.customer_id is None and b"customer" not in raw):
            return event, raw
        document = orjson.loads(raw)
        original = document.get("customer_id")
        if not isinstance(original, str):  # e.g. an extra field of another type, not a string
            return event, raw
        document["customer_id"] = pseudonym = self.customer(original)
        if event.customer_id is not None:
            event = msgspec.structs.replace(event, customer_id=pseudonym)
        return event, json_bytes(document)
