"""Timestamps as the contract writes them: RFC 3339, UTC, with a ``Z``."""

from __future__ import annotations

from datetime import UTC, datetime


def rfc3339(moment: datetime) -> str:
    """``2026-11-23T09:00:12.250Z``: milliseconds only when there are any."""
    if moment.tzinfo is None:
        raise ValueError("naive datetime: every time in ccpulse carries its offset")
    utc = moment.astimezone(UTC)
    text = utc.strftime("%Y-%m-%dT%H:%M:%S")
    millis = utc.microsecond // 1000
    return f"{text}.{millis:03d}Z" if millis else f"{text}Z"
