"""What one queue's live state costs per batch as its waiting contacts grow: the contacts pass
sends the board the queue's whole waiting list (``LivePartial.waiting``) whenever the queue's live
state changes, and the board decodes it, takes the old list out, puts the new one in and encodes it
again for its changelog.

    python -m bench.waiting_cost

Prints µs of CPU (this process) per partial sent and applied, and its bytes, for 10 to 10,000
contacts waiting in one queue (docs/performance.md, "A live worker with a day's state").
"""

from __future__ import annotations

import time

from pipeline.core.board import Board, LivePartial
from pipeline.core.wire import BoardMessage, board_decoder, encode

OFFERED_AT = 1_780_000_000_000_000


def cost(waiting_contacts: int) -> tuple[float, int]:
    """(µs per partial, bytes of its message) for a queue with ``waiting_contacts`` waiting."""
    board = Board()
    waiting = tuple(("email", OFFERED_AT + n * 1_000_000) for n in range(waiting_contacts))
    rounds = max(20, 200_000 // waiting_contacts)
    began = time.process_time()
    for version in range(1, rounds + 1):
        message = encode(BoardMessage(live=[LivePartial(0, "q", waiting, (("available", 3),), 1, version)]))
        for partial in board_decoder.decode(message).partials():
            board.apply_partial(partial)
            encode(partial)  # the board's changelog record
    return (time.process_time() - began) / rounds * 1e6, len(message)


def main() -> None:
    for waiting_contacts in (10, 100, 1_000, 10_000):
        us, size = cost(waiting_contacts)
        print(f"{waiting_contacts:>6} waiting: {us:8.1f} µs per live partial sent and applied, {size:,} bytes")


if __name__ == "__main__":
    main()
