"""Service-level targets: defaults from METRICS.md, overridable per channel and per queue+channel.

A targets file (``CCPULSE_TARGETS``) is JSON or TOML-like JSON:

    {"channels": {"voice": {"sl_threshold_seconds": 30, "sl_target": 0.85}},
     "queues": {"vip": {"voice": {"sl_threshold_seconds": 10}}},
     "short_abandon_seconds": 5, "fcr_window_days": 7}

A queue+channel entry wins over the channel entry, which wins over the default.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

DEFAULT_CHANNEL_TARGETS: dict[str, tuple[float, float]] = {
    "voice": (20, 0.80),
    "chat": (30, 0.80),
    "sms": (300, 0.80),
    "social": (3600, 0.80),
    "email": (86400, 0.90),
    "in_person": (300, 0.80),
}


class TargetsError(ValueError):
    """The targets file is wrong; the message says where."""


@dataclass(frozen=True)
class Target:
    threshold_seconds: float
    target_ratio: float

    @property
    def threshold_us(self) -> int:
        return round(self.threshold_seconds * 1_000_000)


@dataclass(frozen=True)
class Targets:
    channels: dict[str, Target] = field(
        default_factory=lambda: {ch: Target(t, r) for ch, (t, r) in DEFAULT_CHANNEL_TARGETS.items()}
    )
    queues: dict[tuple[str, str], Target] = field(default_factory=dict)  # (queue, channel)
    short_abandon_seconds: float = 5.0
    fcr_window_days: float = 7.0

    def for_queue(self, queue: str, channel: str) -> Target:
        return self.queues.get((queue, channel)) or self.channels[channel]

    @property
    def short_abandon_us(self) -> int:
        return round(self.short_abandon_seconds * 1_000_000)

    @property
    def fcr_window_us(self) -> int:
        return round(self.fcr_window_days * 86_400 * 1_000_000)

    @classmethod
    def load(cls, path: Path | None) -> Targets:
        if path is None:
            return cls()
        try:
            document = json.loads(path.read_text())
        except (OSError, ValueError) as problem:
            raise TargetsError(f"{path}: {problem}") from None
        return cls.from_document(document, str(path))

    @classmethod
    def from_document(cls, document: Any, where: str = "targets") -> Targets:
        if not isinstance(document, dict):
            raise TargetsError(f"{where}: expected a JSON object")
        defaults = cls()
        channels = dict(defaults.channels)
        for channel, entry in (document.get("channels") or {}).items():
            if channel not in channels:
                raise TargetsError(f"{where}: channels.{channel}: not a channel ({', '.join(channels)})")
            channels[channel] = _target(entry, channels[channel], f"{where}: channels.{channel}")
        queues: dict[tuple[str, str], Target] = {}
        for queue, per_channel in (document.get("queues") or {}).items():
            for channel, entry in (per_channel or {}).items():
                if channel not in channels:
                    raise TargetsError(f"{where}: queues.{queue}.{channel}: not a channel")
                queues[(queue, channel)] = _target(entry, channels[channel], f"{where}: queues.{queue}.{channel}")
        short = _number(document.get("short_abandon_seconds", 5), f"{where}: short_abandon_seconds", 0, 3600)
        window = _number(document.get("fcr_window_days", 7), f"{where}: fcr_window_days", 0, 365)
        return cls(channels, queues, short, window)


def _number(value: Any, where: str, low: float, high: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
        raise TargetsError(f"{where}: expected a number from {low} to {high}, got {value!r}")
    return float(value)


def _target(entry: Any, base: Target, where: str) -> Target:
    if not isinstance(entry, dict):
        raise TargetsError(f"{where}: expected an object with sl_threshold_seconds and/or sl_target")
    threshold = _number(entry.get("sl_threshold_seconds", base.threshold_seconds), where, 0, 30 * 86400)
    ratio = _number(entry.get("sl_target", base.target_ratio), where, 0, 1)
    return Target(threshold, ratio)
