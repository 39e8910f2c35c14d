"""The stages' sticky partition assignment (pipeline/core/assignment.py, pipeline/assignor.py)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from pipeline.assignor import StickyAssignor, _owned
from pipeline.core.assignment import sticky


def test_a_worker_added_to_two_takes_one_partition_from_each_and_nothing_else_moves() -> None:
    before = {"a": {"t": [0, 1, 2, 3]}, "b": {"t": [4, 5, 6, 7]}}
    found = sticky({"t": list(range(8))}, {"a": ["t"], "b": ["t"], "c": ["t"]}, before)
    assert set(found["a"]["t"]) <= {0, 1, 2, 3} and set(found["b"]["t"]) <= {4, 5, 6, 7}
    assert sorted(len(found[m]["t"]) for m in "abc") == [2, 3, 3]
    assert sorted(found["a"]["t"] + found["b"]["t"] + found["c"]["t"]) == list(range(8))


def test_a_worker_removed_leaves_the_others_theirs() -> None:
    before = {"a": {"t": [0, 1, 2]}, "b": {"t": [3, 4, 5]}, "c": {"t": [6, 7]}}
    found = sticky({"t": list(range(8))}, {"a": ["t"], "b": ["t"]}, before)
    assert set(found["a"]["t"]) >= {0, 1, 2} and set(found["b"]["t"]) >= {3, 4, 5}
    assert sorted(found["a"]["t"] + found["b"]["t"]) == list(range(8))


def test_members_of_another_topic_get_nothing_of_this_one() -> None:
    found = sticky({"t": [0, 1], "u": [0]}, {"a": ["t"], "b": ["u"]}, {})
    assert found == {"a": {"t": [0, 1]}, "b": {"u": [0]}}


members = st.lists(st.sampled_from("abcdefgh"), min_size=1, max_size=6, unique=True)


@given(count=st.integers(0, 24), members=members, claims=st.dictionaries(st.sampled_from("abcdefgh"),
                                                                         st.lists(st.integers(0, 30))))  # fmt: skip
def test_every_partition_goes_to_one_member_balanced_and_members_keep_their_share(
    count: int, members: list[str], claims: dict[str, list[int]]
) -> None:
    owned = {member: {"t": partitions} for member, partitions in claims.items()}
    found = sticky({"t": list(range(count))}, {member: ["t"] for member in members}, owned)
    given_out = [p for member in members for p in found[member].get("t", [])]
    assert sorted(given_out) == list(range(count))  # each once
    sizes = [len(found[member].get("t", [])) for member in members]
    assert max(sizes) - min(sizes) <= 1  # balanced as round robin
    taken: set[int] = set()
    for member in sorted(members):  # each keeps its own (first claimant) up to its share
        own = {p for p in claims.get(member, []) if 0 <= p < count} - taken
        taken |= own
        kept = own & set(found[member].get("t", []))
        assert len(kept) >= min(len(own), count // len(members))


def test_the_assignor_tells_the_group_what_its_member_owned() -> None:
    from aiokafka.coordinator.protocol import ConsumerProtocolMemberAssignment

    first, second = StickyAssignor(), StickyAssignor()  # one per consumer: nothing shared
    first.on_assignment(ConsumerProtocolMemberAssignment(0, [("t", [2, 0])], b""))
    assert _owned(first.metadata(["t"]).user_data) == {"t": [0, 2]}
    assert _owned(second.metadata(["t"]).user_data) == {}
    assert _owned(b"not json") == {} and _owned(b"[1]") == {}


def test_the_assignor_assigns_from_the_cluster_and_the_members_metadata() -> None:
    class Cluster:
        def partitions_for_topic(self, topic: str) -> set[int]:
            return {0, 1, 2, 3}

    first, second = StickyAssignor(), StickyAssignor()
    first.owned = {"t": [0, 1, 2, 3]}
    found = first.assign(Cluster(), {"m1": first.metadata(["t"]), "m2": second.metadata(["t"])})
    assert found["m1"].partitions() and found["m2"].partitions()
    assert {tp.partition for tp in found["m1"].partitions()} <= {0, 1, 2, 3}
    assert sorted(tp.partition for a in found.values() for tp in a.partitions()) == [0, 1, 2, 3]
    assert [tp.partition for tp in found["m1"].partitions()] == [0, 1]  # it keeps the first two of its four
