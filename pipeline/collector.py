"""Python's cyclic garbage collector, as the worker and its ClickHouse writer process need it.

With the defaults (700, 10, 10) a backlog of 1 M events spent 13.5 µs per event of the worker in
it, 10.2 of them in full collections that walk every object the passes and the board hold (the
state grows with the contacts kept, so each one costs more); with these, 0.8, and the pure steps
took 44.4 µs per event instead of 57.3 (bench/passes.py, docs/performance.md). The state is freed
by reference counting (records are bytes, sums plain objects); the cycles the event loop and the
Kafka clients make mostly die young, in the young generations, which still run every
GC_THRESHOLDS[0] allocations; a full collection still comes, rarely
(tests/integration/test_memory.py: RSS stays flat for days).

The first threshold is 200,000, not 50,000: a batch's own objects (its rows, ~25,000 tuples for
8,000 events, its partials and updates) live until the batch is written, and a young collection
every 50,000 allocations walked them — and the sink's rows waiting for their flush — again and
again: 24 young collections on 200,000 events, 4.2 µs per event (bench/passes.py with a
``gc.callbacks`` timer), against 2 and 0.7 µs with 200,000. End to end on a 1 M-event backlog
(alternated, two runs each): worker 56.0 / 55.8 → 50.9 / 52.5 µs per event, writer 21.2 / 21.2 →
19.6 / 19.6, 15,779 / 16,385 → 17,387 / 17,391 events/s, peak RSS unchanged (423–433 MiB worker).
500,000 gained no more and held 25–40 MiB more. The price is a longer pause now and then: the board's
partials and the passes' sums are replaced, not added to (no *net* allocation), so their new
versions pile up in the young generation between collections, and the collection that comes walks
them all — the longest 385 ms on a 2 M-event backlog (143 ms before), a few such per million events
(docs/performance.md, "The young generation's threshold"). ``gc=False`` on the msgspec structs
did not shorten it (the tuples inside them stay tracked). The middle and full collections walk
what survived: there the board's partials were half of the objects tracked in bench.passes' state,
and no kind of partial is tracked since (a full collection 288 -> 140 ms; docs/performance.md,
"What the collector walks").

The writer process decodes each flush into lists (~60,000 rows while catching up): with the
defaults, collections walked them over and over as they were built (23% of the writer's profile
on a backlog, 3.4% with these). Replayed apart, decoding took 10–12 µs per input event against
4.7–5.5; end to end the writer took 21–24 µs per event against 24–25 (docs/performance.md, "The
writer's collector").
"""

from __future__ import annotations

import gc

GC_THRESHOLDS = (200_000, 20, 100)


def tune_garbage_collection() -> None:
    """Fewer collections, and none of what start-up built (imports, the app) walked again."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)
