"""``ccpulse follow``: tail a growing platform log (Asterisk's queue_log) into the input topic.

- Reads whole lines only (a line still being written waits for its newline).
- Survives log rotation: when the path names a new file (logrotate's rename-and-create, or a
  truncation), the old file is read to its end first, then the new one from its start.
- Resumes after a restart where it left off: the file's identity (device, inode) and the offset
  after the last line whose events the broker acknowledged are saved in a state file. On start,
  the lines before that offset are read again without sending (the converter's state: members'
  queues, calls in progress), then sending goes on from the offset. What was sent but not yet
  recorded is sent again; its event ids are the same (derived from the lines), so nothing counts
  twice.
- A line the converter rejects goes to the dead-letter topic with its original bytes and
  ``error.reason``/``error.detail``/``source.file``/``source.offset`` headers.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Protocol

import orjson

from pipeline.dead_letters import HEADER_DETAIL, HEADER_REASON, fitted
from pipeline.kafka_io import MAX_REQUEST_BYTES, SendReport
from pipeline.sources import Outcome, Source, Summary

log = logging.getLogger("ccpulse.follow")
SAVE_SECONDS = 1.0


class Sender(Protocol):
    def send(self, line: bytes, key: bytes | None = None, topic: str | None = None,
             headers: list[tuple[str, bytes]] | None = None) -> None: ...  # fmt: skip

    def settle(self) -> SendReport: ...


class FollowFailed(RuntimeError):
    """The broker did not acknowledge some events: stop, and resume from the last saved position."""


@dataclass(frozen=True)
class Position:
    device: int
    inode: int
    offset: int

    @classmethod
    def load(cls, path: Path) -> Position | None:
        try:
            saved = json.loads(path.read_text())
            return cls(int(saved["device"]), int(saved["inode"]), int(saved["offset"]))
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def save(self, path: Path) -> None:
        partial = path.with_name(path.name + ".partial")
        partial.write_text(json.dumps({"device": self.device, "inode": self.inode, "offset": self.offset}))
        os.replace(partial, path)


def identity(handle: BinaryIO) -> tuple[int, int]:
    status = os.fstat(handle.fileno())
    return status.st_dev, status.st_ino


class Follower:
    def __init__(self, path: Path, state_file: Path, converter: Source, sender: Sender, dlq_topic: str,
                 poll_seconds: float = 0.5) -> None:  # fmt: skip
        self.path, self.state_file, self.converter = path, state_file, converter
        self.sender, self.dlq_topic, self.poll_seconds = sender, dlq_topic, poll_seconds
        self.summary = Summary()
        self._handle: BinaryIO | None = None
        self._saved_at = 0.0

    # ------------------------------------------------------------------ the loop
    def run(self, stopping: Callable[[], bool]) -> None:
        self._open_at_resume()
        while not stopping():
            if not self._read_lines() and not self._rotated():
                self._save()
                time.sleep(self.poll_seconds)
        self._read_lines()
        self._save(force=True)

    def _open_at_resume(self) -> None:
        saved = Position.load(self.state_file)
        current = self._open(self.path)
        if saved is None:
            self._handle = current
            return
        if identity(current) == (saved.device, saved.inode):
            self._handle = current
        else:  # rotated while we were away: finish the file we were reading, if it is still there
            current.close()
            old = self._find(saved)
            self._handle = old or self._open(self.path)
            if old is None:
                log.warning("%s: the file read before the restart is gone; reading the current one from its start",
                            self.path)  # fmt: skip
                return
        self._replay_until(saved.offset)

    def _find(self, saved: Position) -> BinaryIO | None:
        for sibling in sorted(self.path.parent.iterdir()):
            try:
                status = sibling.stat()
            except OSError:
                continue
            if (status.st_dev, status.st_ino) == (saved.device, saved.inode):
                return self._open(sibling)
        return None

    def _open(self, path: Path) -> BinaryIO:
        deadline = time.monotonic() + 60
        while True:
            try:
                return open(path, "rb")
            except FileNotFoundError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(self.poll_seconds)  # between logrotate's rename and the new file

    def _replay_until(self, offset: int) -> None:
        """Rebuild the converter's state from the lines already sent, sending nothing."""
        assert self._handle is not None
        while self._handle.tell() < offset:
            line = self._handle.readline()
            if not line.endswith(b"\n"):
                self._handle.seek(offset)  # the file is shorter than recorded: go on from there
                break
            self.converter.line(line)
        log.info("%s: resumed at byte %d", self.path, self._handle.tell())

    def _read_lines(self) -> int:
        """Send every whole line there is now; how many were read."""
        assert self._handle is not None
        count = 0
        while True:
            start = self._handle.tell()
            line = self._handle.readline()
            if not line.endswith(b"\n"):
                self._handle.seek(start)  # a line being written: wait for its end
                return count
            count += 1
            self._send(line, start)
            if time.monotonic() - self._saved_at > SAVE_SECONDS:
                self._save()

    def _send(self, line: bytes, offset: int) -> None:
        outcome = self.converter.line(line)
        self.summary.add(outcome)
        send_outcome(self.sender, outcome, line.rstrip(b"\r\n"), self.dlq_topic,
                     [("source.file", str(self.path).encode()), ("source.offset", str(offset).encode())])  # fmt: skip

    def _rotated(self) -> bool:
        """At the end of the file: has the path moved on to a new file (or been truncated)?"""
        assert self._handle is not None
        try:
            status = self.path.stat()
        except FileNotFoundError:
            return False  # renamed, the new one not created yet
        here = identity(self._handle)
        if (status.st_dev, status.st_ino) != here:
            self._read_lines()  # the last lines written to the old file
            self._save(force=True)
            self._handle.close()
            self._handle = self._open(self.path)
            log.info("%s was rotated; reading the new file from its start", self.path)
            return True
        if status.st_size < self._handle.tell():
            log.warning("%s was truncated; reading it again from its start", self.path)
            self._handle.seek(0)
            return True
        return False

    def _save(self, force: bool = False) -> None:
        """Record the position once everything before it is acknowledged."""
        if self._handle is None or (not force and time.monotonic() - self._saved_at < SAVE_SECONDS):
            return
        report = self.sender.settle()
        if report.failed:
            raise FollowFailed(f"{report.failed} events were not acknowledged by the broker; the position stays at "
                               "the last acknowledged line (start again to resume from there)")  # fmt: skip
        device, inode = identity(self._handle)
        Position(device, inode, self._handle.tell()).save(self.state_file)
        self._saved_at = time.monotonic()


def send_outcome(sender: Sender, outcome: Outcome, raw: bytes, dlq_topic: str,
                 where: list[tuple[str, bytes]]) -> None:  # fmt: skip
    """A converted record's events to the input topic; a rejected record's original bytes to the
    dead-letter topic, with why (``error.reason``, ``error.detail``) and ``where`` it was read."""
    for event in outcome.events:
        sender.send(orjson.dumps(event))
    if outcome.rejected:
        why = [(HEADER_REASON, outcome.rejected.encode()), (HEADER_DETAIL, outcome.detail.encode()[:1000])]
        value, headers = fitted(raw, why + where, MAX_REQUEST_BYTES)  # as large as its producer sends
        sender.send(value or b"", key=None, topic=dlq_topic, headers=headers)
