"""A dead letter keeps its message's bytes unchanged when they fit where it is sent, else their
first bytes and the original's length (pipeline/dead_letters.py)."""

from __future__ import annotations

from pipeline.dead_letters import HEADER_REASON, HEADER_TRUNCATED, HEADROOM, fitted

WHY = [(HEADER_REASON, b"too_large")]


def test_a_message_that_fits_is_sent_unchanged() -> None:
    message = b"x" * (300_000 - HEADROOM)
    assert fitted(message, WHY, 300_000) == (message, WHY)
    assert fitted(None, WHY, 300_000) == (None, WHY)  # a tombstone


def test_a_message_that_does_not_fit_keeps_its_first_bytes_and_says_how_long_it_was() -> None:
    message = bytes(range(256)) * 2_000  # 512,000 bytes
    value, headers = fitted(message, WHY, 300_000)
    assert value == message[: 300_000 - HEADROOM]
    assert headers == [*WHY, (HEADER_TRUNCATED, b"512000")]
