"""Which worker's consumer gets which partition at a rebalance: as balanced as round robin, but
each member keeps what it owned up to its share (a sticky assignment).

Pure: no I/O. ``pipeline/assignor.py`` plugs it into aiokafka's group protocol. Why it matters:
the group protocol is eager (every rebalance revokes every partition), and a stage keeps a
partition's state across a rebalance only when the partition comes back to it
(``pipeline/stage_runner.py``); round robin deals the partitions out again in member order, so
adding or removing one worker moved most partitions and every move is a take-over from the
changelog. Sticky, adding a worker to ``m`` moves about ``1/(m + 1)`` of them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

Owned = Mapping[str, Sequence[int]]  # topic -> partitions


def sticky(partitions: Mapping[str, Sequence[int]], subscriptions: Mapping[str, Sequence[str]],
           owned: Mapping[str, Owned]) -> dict[str, dict[str, list[int]]]:  # fmt: skip
    """``partitions``: per topic, its partitions; ``subscriptions``: per member, its topics;
    ``owned``: per member, what it says it owned before. Returns per member, per topic, its
    partitions: every partition of a subscribed topic to exactly one of its subscribers, their
    counts within one of each other, and each member keeping as many of its own as its share
    allows (a partition two members claim goes to the first by member id)."""
    found: dict[str, dict[str, list[int]]] = {member: {} for member in subscriptions}
    for topic in sorted(partitions):
        members = sorted(member for member, topics in subscriptions.items() if topic in topics)
        if members:
            for member, given in _topic(list(partitions[topic]), members, owned, topic).items():
                if given:
                    found[member][topic] = given
    return found


def _topic(partitions: list[int], members: list[str], owned: Mapping[str, Owned],
           topic: str) -> dict[str, list[int]]:  # fmt: skip
    free = set(partitions)
    claims: dict[str, list[int]] = {}
    for member in members:  # a partition claimed twice goes to the first claimant
        claims[member] = sorted(p for p in set(owned.get(member, {}).get(topic, ())) if p in free)
        free -= set(claims[member])
    base, extra = divmod(len(partitions), len(members))
    # the members with the most claims get the larger shares: fewer partitions move
    ranked = sorted(members, key=lambda member: (-len(claims[member]), member))
    share = {member: base + (1 if rank < extra else 0) for rank, member in enumerate(ranked)}
    given = {member: claims[member][: share[member]] for member in members}
    left = sorted(set(partitions) - {p for kept in given.values() for p in kept})
    for partition in left:
        member = min((m for m in members if len(given[m]) < share[m]), key=lambda m: (len(given[m]), m))
        given[member].append(partition)
    return {member: sorted(kept) for member, kept in given.items()}
