"""A converter's state on disk: a snapshot, and the records taken since (``ccpulse follow
--input-topic`` and the worker's webhooks).

A record is appended only once the events it gave are acknowledged by the broker; at a start,
:meth:`Journal.restore` rebuilds the converter from the snapshot and the records after it, and
returns where each source partition had got to (so a bridge does not convert a record twice).
Every ``compact_every`` records the state is written whole and the records start again.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Protocol

import orjson

from pipeline.sources.asterisk import Outcome

COMPACT_EVERY = 10_000


class Stateful(Protocol):
    def line(self, raw: bytes | str) -> Outcome: ...

    def snapshot(self) -> dict[str, Any]: ...

    def restore(self, saved: dict[str, Any]) -> None: ...


class Journal:
    def __init__(self, directory: Path, name: str, compact_every: int = COMPACT_EVERY) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.snapshot_file = directory / f"{name}.snapshot.json"
        self.records_file = directory / f"{name}.journal"
        self.compact_every = compact_every
        self.count = 0
        self.positions: dict[int, int] = {}  # source partition -> the last offset taken

    def restore(self, converter: Stateful) -> dict[int, int]:
        """Rebuild ``converter``; the last offset taken per source partition."""
        saved = orjson.loads(self.snapshot_file.read_bytes()) if self.snapshot_file.exists() else {}
        converter.restore(saved.get("state", {}))
        self.positions = {int(partition): offset for partition, offset in saved.get("positions", {}).items()}
        self.count = 0
        if self.records_file.exists():
            for line in self.records_file.read_bytes().splitlines():
                entry = orjson.loads(line)
                converter.line(entry["record"])  # its events were sent: only the state matters
                if "partition" in entry:
                    self.positions[entry["partition"]] = entry["offset"]
                self.count += 1
        return dict(self.positions)

    def append(self, records: Iterable[tuple[str, int | None, int | None]], converter: Stateful) -> None:
        """Records (text, source partition, offset) whose events were acknowledged, in order."""
        with open(self.records_file, "ab") as out:
            for text, partition, offset in records:
                entry: dict[str, Any] = {"record": text}
                if partition is not None and offset is not None:
                    entry.update(partition=partition, offset=offset)
                    self.positions[partition] = offset
                out.write(orjson.dumps(entry) + b"\n")
                self.count += 1
        if self.count >= self.compact_every:
            self.compact(converter)

    def compact(self, converter: Stateful) -> None:
        temporary = self.snapshot_file.with_suffix(".tmp")
        temporary.write_bytes(
            orjson.dumps({"state": converter.snapshot(), "positions": {str(p): o for p, o in self.positions.items()}})
        )
        os.replace(temporary, self.snapshot_file)
        self.records_file.unlink(missing_ok=True)
        self.count = 0
