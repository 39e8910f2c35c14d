"""A queue's waiting contacts reach the board one by one (``WaitingPartial``): an event costs the
contacts it changes, however many wait in its queue; a list a worker before 2026-12-06 sent
(``LivePartial.waiting``) is replaced when the partition is taken over."""

from __future__ import annotations

from pipeline.core.board import Board, LivePartial, WaitingPartial
from pipeline.core.contact_pass import ContactPass
from pipeline.core.contract import Event
from pipeline.core.wire import Routed
from tests.unit.test_contact_pass import NO_EXPIRY_US, Changelog, compacted, restored, send
from tests.unit.test_metrics_core import BASE, MODEL_TARGETS

SECOND = 1_000_000


def offered(number: int) -> Event:
    return Event(f"o{number}", "contact.offered", BASE + number * SECOND, f"c{number}", "email", "q0", "cu0", "r0")


def answered(number: int, at_s: int) -> Event:
    return Event(f"a{number}", "contact.answered", BASE + at_s * SECOND, f"c{number}", agent_id="a0")


def waiting_on(board: Board, now_us: int) -> dict[tuple[str, str], tuple[int, int | None]]:
    return {(queue, channel): (count, oldest) for queue, channel, count, oldest in board.waiting(now_us)}


def test_an_event_sends_the_contacts_it_changes_however_many_wait() -> None:
    contact_pass, board = ContactPass(MODEL_TARGETS, NO_EXPIRY_US), Board()
    waiting = 2_000
    send(board, contact_pass.on_batch([(n, Routed(f"0:{n}", offered(n))) for n in range(waiting)], wall=0.0))
    now = BASE + 3_000 * SECOND
    assert waiting_on(board, now) == {("q0", "email"): (waiting, 3_000 * SECOND)}

    out = contact_pass.on_batch([(waiting, Routed(f"0:{waiting}", answered(0, 2_500)))], wall=0.0)
    assert [p for p in out.live if isinstance(p, LivePartial) and p.waiting] == []  # no list goes
    changed = [p for p in out.live if isinstance(p, WaitingPartial)]
    assert [(p.queue, p.offered_at) for p in changed] == [("q0", None)]  # c0 waits no more
    send(board, out)
    assert waiting_on(board, now) == {("q0", "email"): (waiting - 1, 2_999 * SECOND)}


def test_a_take_over_replaces_the_list_an_earlier_worker_sent() -> None:
    board, changelog, now = Board(), Changelog(), BASE + 10 * SECOND
    # a worker before 2026-12-06 owned input partition 0 and sent its queue's waiting list
    board.apply_partial(LivePartial(0, "q0", (("email", BASE), ("email", BASE + SECOND)), (), epoch=5, version=9))
    assert waiting_on(board, now) == {("q0", "email"): (2, 10 * SECOND)}
    contact_pass = restored(changelog, board, now_us=10)  # the new version takes over: its fence drops the list
    assert waiting_on(board, now) == {}
    out = contact_pass.on_batch([(0, Routed("0:0", offered(3)))], wall=0.0)
    changelog += [(key, value, contact_pass.epoch) for key, value in out.writes.items()]
    send(board, out)
    assert waiting_on(board, now) == {("q0", "email"): (1, 7 * SECOND)}
    again = restored(changelog, board, now_us=20)  # taken over again (a restart): sent again, one by one
    assert again.epoch > contact_pass.epoch
    assert waiting_on(board, now) == {("q0", "email"): (1, 7 * SECOND)}
    kept = [p.key for p in board.partials.values() if isinstance(p, WaitingPartial)]
    assert kept == ["q0\x1f\x00wait0\x1fcontact\x1fc3"]


def test_a_frozen_owner_s_late_record_is_not_restored_and_compaction_keeps_the_new_owner_s() -> None:
    # owner A reads c0's offer; frozen past its session, it sends that batch's records only after B
    # took the partition over and wrote c0 answered (read again from offset 0)
    log = [(0, Routed("0:0", offered(0))), (1, Routed("0:1", answered(0, 2)))]
    changelog, now = Changelog(), BASE + 10 * SECOND
    first = restored(changelog, now_us=10)
    held_back = first.on_batch(log[:1], wall=0.0).writes
    second = restored(changelog, now_us=20)
    changelog += [(key, value, second.epoch) for key, value in second.on_batch(log, wall=0.0).writes.items()]
    changelog += [(key, value, first.epoch) for key, value in held_back.items()]  # A thaws: its late records
    board = Board()
    third = restored(changelog, board, now_us=30)  # a restart: A's late records are not restored
    assert [count for count, _ in waiting_on(board, now).values()] == [0]
    assert third.contact_records["contact\x1fc0"] == second.contact_records["contact\x1fc0"]
    # and written again, after A's: compaction keeps the latest record per key
    written_again = [key for key, _, epoch in changelog if epoch == third.epoch]
    assert b"contact\x1fc0" in written_again
    board = Board()
    restored(compacted(changelog, len(changelog)), board, now_us=40)
    assert [count for count, _ in waiting_on(board, now).values()] == [0]  # c0 waits no more, as B read it
