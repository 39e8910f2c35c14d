"""Internal messages stay under the producer's request limit, whatever their items' sizes."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.core.board import AgentRecentPartial, MinutePartial
from pipeline.core.partitions import partition_of
from pipeline.core.wire import ITEMS_PER_MESSAGE, MAX_MESSAGE_BYTES, board_decoder, encode, partial_messages

FAUST_PRODUCER_MAX_REQUEST_SIZE = 1_000_000  # faust's producer_max_request_size default; the worker keeps it


def recent(agent: int, intervals: int) -> AgentRecentPartial:
    """An agent with ``intervals`` closed intervals in the last hour (a busy hour: one a minute is ~60)."""
    start = 1_780_000_000_000_000
    return AgentRecentPartial(source=0, queue="billing", agent_id=f"agent-{agent:05d}",
                              intervals=tuple((start + i * 60_000_000, start + i * 60_000_000 + 59_000_000, i % 4)
                                              for i in range(intervals)), version=agent)  # fmt: skip


def sent(messages: list[tuple[int, bytes]]) -> list[tuple[int, object]]:
    return [(destination, item) for destination, value in messages for item in board_decoder.decode(value).partials()]


def test_a_thousand_agents_with_a_busy_hour_each_go_in_several_messages_each_under_the_limit() -> None:
    agents = [recent(agent, 80) for agent in range(2_500)]
    assert sum(len(encode(each)) for each in agents[:ITEMS_PER_MESSAGE]) > FAUST_PRODUCER_MAX_REQUEST_SIZE
    messages = list(partial_messages([], [], 8, agents))
    assert max(len(value) for _, value in messages) < FAUST_PRODUCER_MAX_REQUEST_SIZE
    assert max(len(value) for _, value in messages) <= MAX_MESSAGE_BYTES
    assert sent(messages) == [(partition_of("billing", 8), each) for each in agents]  # all, once, in order


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=400), min_size=1, max_size=3_000))
def test_every_item_is_sent_once_in_order_and_no_message_is_over_the_limit(sizes: list[int]) -> None:
    agents = [recent(agent, intervals) for agent, intervals in enumerate(sizes)]
    minutes = [MinutePartial(source=0, queue=f"q{n % 7}", channel="voice", minute=n, counts=(1,))
               for n in range(len(sizes))]  # fmt: skip
    messages = list(partial_messages(minutes, [], 8, agents))
    assert all(len(value) <= MAX_MESSAGE_BYTES for _, value in messages)
    expected = [(partition_of(m.queue, 8), m) for m in minutes] + [(partition_of("billing", 8), a) for a in agents]
    assert len(sent(messages)) == len(expected)
    for destination in {d for d, _ in expected}:  # order within a destination is kept
        assert [i for d, i in sent(messages) if d == destination] == [i for d, i in expected if d == destination]
