"""Customer ids become keyed hashes before anything is stored (HMAC-SHA256, hex)."""

from __future__ import annotations

import hashlib
import hmac
from pathlib import Path

import orjson
import pytest

from pipeline.core.contract import check
from pipeline.core.privacy import Pseudonyms
from pipeline.settings import Settings, SettingsError

OFFER = (
    b'{"event_id":"e1","type":"contact.offered","schema_version":1,"occurred_at":"2026-11-23T09:00:00Z",'
    b'"contact_id":"c1","channel":"voice","queue":"billing","customer_id":"+81-90-1234-5678","vip":true}'
)


def test_the_event_and_its_raw_json_carry_the_keyed_hash() -> None:
    event = check(OFFER).event
    assert event is not None
    pseudonymised, raw = Pseudonyms("k" * 32).event(event, OFFER)
    expected = hmac.new(b"k" * 32, b"+81-90-1234-5678", hashlib.sha256).hexdigest()
    assert pseudonymised.customer_id == expected
    assert orjson.loads(raw)["customer_id"] == expected and b"1234-5678" not in raw
    assert orjson.loads(raw)["vip"] is True  # the producer's own fields are kept
    assert Pseudonyms("another key, 32 characters long!").customer("+81-90-1234-5678") != expected


def test_an_escaped_field_name_is_found_too() -> None:
    escaped = OFFER.replace(b'"customer_id"', b'"customer\\u005fid"')
    event = check(escaped).event
    assert event is not None and event.customer_id == "+81-90-1234-5678"
    pseudonymised, raw = Pseudonyms("k" * 32).event(event, escaped)
    assert b"1234-5678" not in raw and pseudonymised.customer_id != event.customer_id


def test_without_a_key_nothing_changes() -> None:
    event = check(OFFER).event
    assert event is not None
    assert Pseudonyms(None).event(event, OFFER) == (event, OFFER)


def test_the_key_comes_from_the_environment_or_a_file_and_is_never_printed(tmp_path: Path) -> None:
    key_file = tmp_path / "customer.key"
    key_file.write_text("0123456789abcdef0123456789abcdef\n")
    settings = Settings.from_env({"CCPULSE_CUSTOMER_KEY_FILE": str(key_file)}, env_file=None)
    assert settings.customer_key is not None and settings.customer_key.reveal() == "0123456789abcdef0123456789abcdef"
    assert "0123456789abcdef" not in repr(settings)
    with pytest.raises(SettingsError, match="too short"):
        Settings.from_env({"CCPULSE_CUSTOMER_KEY": "short"}, env_file=None)
    with pytest.raises(SettingsError, match="cannot read"):
        Settings.from_env({"CCPULSE_CUSTOMER_KEY_FILE": str(tmp_path / "missing")}, env_file=None)
