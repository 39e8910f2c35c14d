"""Issues: repeat contacts, first-contact resolution (FCR) and resolution time (ART).

Per issue key (customer and case, or customer and reason), the answered contacts in order of
``offered_at`` (ties: ``contact_id``) form issues:

    offered_at:  d0 ─────── d3 ──────────── d8 ── d9         (fcr_window_days = 7)
    issues:      [A  opens   A repeat ]      [B opens, B repeat]
                 d3 - d0 <= 7: joins A;  d8 - d0 > 7: opens B;  d9 - d8 <= 7: joins B

An issue belongs to its opening contact's queue and channel. It is *judged* when its opening
contact ends (attributed at that end); it is resolved on first contact when that contact ended
resolved and the issue has no repeat (so a later repeat turns a judged issue back, in the
minute it was judged). It is *resolved* by its first contact (by ``offered_at``) that ended
resolved; resolution time = that contact's end - the issue's ``opened_at`` (clipped at 0),
attributed at that end. Everything here is a function of the set of contacts, so a contact
arriving late, or a replay, just gives the grouping again.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from functools import cached_property

from pipeline.core.counts import Counts
from pipeline.core.lifecycle import IssueContact
from pipeline.core.windows import minute_of


@dataclass(frozen=True)
class Issue:
    contacts: tuple[IssueContact, ...]  # in offered_at order; the first opens the issue

    @property
    def opening(self) -> IssueContact:
        return self.contacts[0]

    @property
    def opened_at(self) -> int:
        return self.opening.offered_at

    @property
    def has_repeat(self) -> bool:
        return len(self.contacts) > 1

    @cached_property  # read several times per issue per batch (rows, contributions, outcomes)
    def resolving(self) -> IssueContact | None:
        return next((c for c in self.contacts if c.ended_at is not None and c.resolved), None)

    @property
    def judged(self) -> bool:
        return self.opening.ended_at is not None

    @property
    def first_contact_resolution(self) -> bool:
        return self.judged and bool(self.opening.resolved) and not self.has_repeat

    @property
    def resolution_us(self) -> int | None:
        resolving = self.resolving
        if resolving is None or resolving.ended_at is None:
            return None
        return max(0, resolving.ended_at - self.opened_at)


def group(contacts: Iterable[IssueContact], window_us: int) -> list[Issue]:
    """The issues of one key's answered contacts."""
    issues: list[list[IssueContact]] = []
    for contact in sorted(contacts, key=lambda c: (c.offered_at, c.contact_id)):
        if issues and contact.offered_at - issues[-1][0].offered_at <= window_us:
            issues[-1].append(contact)
        else:
            issues.append([contact])
    return [Issue(tuple(members)) for members in issues]


def contributions(issues: Iterable[Issue]) -> dict[tuple[str, str], dict[int, Counts]]:
    """Per (queue, channel) of the opening contacts, the issue counts by minute."""
    result: dict[tuple[str, str], dict[int, Counts]] = {}

    def bucket(issue: Issue, at: int) -> Counts:
        minutes = result.setdefault((issue.opening.queue, issue.opening.channel), {})
        minute = minute_of(at)
        counts = minutes.get(minute)
        if counts is None:
            counts = minutes[minute] = Counts()
        return counts

    for issue in issues:
        if issue.judged:
            assert issue.opening.ended_at is not None
            counts = bucket(issue, issue.opening.ended_at)
            counts.issues_judged += 1
            counts.issues_fcr += issue.first_contact_resolution
        resolving = issue.resolving
        if resolving is not None and resolving.ended_at is not None:
            counts = bucket(issue, resolving.ended_at)
            counts.issues_resolved += 1
            counts.resolution_us_sum += max(0, resolving.ended_at - issue.opened_at)
    return result
