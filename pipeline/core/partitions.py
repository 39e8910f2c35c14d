"""Which partition a key lives on: one rule for every internal message, table write and the
engine's model of the stages."""

from __future__ import annotations

import zlib


def partition_of(key: str, partitions: int) -> int:
    return zlib.crc32(key.encode()) % partitions
