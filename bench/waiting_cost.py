"""What one queue's live state costs per change as its waiting contacts grow, sent as a list
(``LivePartial.waiting``, workers before 2026-12-06: the contacts pass sent the queue's whole list
whenever it changed) and one contact at a time (``WaitingPartial``, now). Each round is what the
pass and the board do for one change: encode the message, decode it, apply it (the old value out,
the new in) and encode the kept partial for the board's changelog.

    python -m bench.waiting_cost

Prints µs of CPU (this process) per change and the message's bytes, for 10 to 10,000 contacts
waiting in one queue (docs/performance.md, "A live worker with a day's state").
"""

from __future__ import annotations

import time

import msgspec

from pipeline.core.board import Board, LivePartial, WaitingPartial
from pipeline.core.wire import BoardMessage, board_decoder, encode

OFFERED_AT = 1_780_000_000_000_000


def per_change(board: Board, partial: LivePartial | WaitingPartial, rounds: int) -> tuple[float, int]:
    """(µs per change, bytes of its message): ``partial`` sent and applied ``rounds`` times, its
    version moved on each time."""
    began, message = time.process_time(), b""
    for version in range(1, rounds + 1):
        changed = msgspec.structs.replace(partial, version=version)
        kind = {"live": [changed]} if isinstance(changed, LivePartial) else {"waiting": [changed]}
        message = encode(BoardMessage(**kind))  # type: ignore[arg-type]
        for found in board_decoder.decode(message).partials():
            board.apply_partial(found)
            encode(found)  # the board's changelog record
    return (time.process_time() - began) / rounds * 1e6, len(message)


def as_list(waiting_contacts: int) -> tuple[float, int]:
    waiting = tuple(("email", OFFERED_AT + n * 1_000_000) for n in range(waiting_contacts))
    partial = LivePartial(0, "q", waiting, (("available", 3),), 1, 0)
    return per_change(Board(), partial, max(20, 200_000 // waiting_contacts))


def one_by_one(waiting_contacts: int) -> tuple[float, int]:
    board = Board()
    for n in range(waiting_contacts):
        board.apply_partial(WaitingPartial(0, "q", f"contact\x1fc{n}", "email", OFFERED_AT + n * 1_000_000, 1, 0))
    partial = WaitingPartial(0, "q", "contact\x1fc0", "email", OFFERED_AT, 1, 0)  # c0 changes
    return per_change(board, partial, 20_000)


def main() -> None:
    for waiting_contacts in (10, 100, 1_000, 10_000):
        (before, before_size), (now, size) = as_list(waiting_contacts), one_by_one(waiting_contacts)
        print(
            f"{waiting_contacts:>6} waiting: the list {before:8.1f} µs per change ({before_size:,} bytes); "
            f"one contact {now:5.1f} µs ({size:,} bytes)"
        )


if __name__ == "__main__":
    main()
