"""Last known good: per service and repository, the newest revision that ran well.

A revision is good when it was applied and healthy for the service's objects (without controller
events: its commit time plus `sync_delay`), stayed the applied revision for at least the playbook's
`good_after` with no incident of the service open, saw no incident open while it was in place, and,
where a verification ran while it was in place, the key metric recovered. Pure: the records and
`now` are passed in."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from pydantic import BaseModel, ConfigDict

from bot.domain.durations import format_duration


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Deployed(_Frozen):
    """One revision of a repository as the service ran it."""

    repo: str
    sha: str
    subject: str = ""
    author: str = ""
    applied_at: datetime  # when it replaced the revision before (the rollout's start)
    healthy_at: datetime | None  # when it was applied and healthy; None: never reported healthy
    how: str  # who says so: "Flux Kustomization flux-system/apps", "commit time plus the sync delay (2m)"


class IncidentSpan(_Frozen):
    """An incident of the service: from when it started until it resolved (None: still open)."""

    ref: str
    started_at: datetime
    resolved_at: datetime | None = None
    verified: str | None = None  # its verification's outcome: recovered, not_recovered, watching
    verified_at: datetime | None = None  # when that verification started (the rollback took effect)


class GoodRevision(_Frozen):
    """The last known good revision and why it counts."""

    repo: str
    sha: str
    subject: str
    author: str
    since: datetime  # in place and healthy from
    until: datetime | None  # replaced then; None: still the applied revision
    reasons: tuple[str, ...]

    @property
    def short(self) -> str:
        return self.sha[:7]


class LastGood(_Frozen):
    """A service's answer for one repository: the good revision, or why there is none."""

    service: str
    repo: str
    good_after: timedelta
    good: GoodRevision | None = None
    reason: str = ""  # when `good` is None
    current: str | None = None  # the applied revision now, when known


def last_good(deployed: Sequence[Deployed], incidents: Sequence[IncidentSpan], *, service: str, repo: str,
              good_after: timedelta, now: datetime) -> LastGood:
    """The newest revision of `repo` that counts as good for `service` as of `now`, with reasons."""
    timeline = sorted((d for d in deployed if d.applied_at <= now), key=lambda d: d.applied_at)
    base = LastGood(service=service, repo=repo, good_after=good_after,
                    current=timeline[-1].sha if timeline else None)
    if not timeline:
        return base.model_copy(update={"reason": f"no applied revision of {repo} is known for {service} yet"})
    refusals: list[str] = []
    for index in range(len(timeline) - 1, -1, -1):
        until = timeline[index + 1].applied_at if index + 1 < len(timeline) else None
        verdict = judge(timeline[index], until=until, incidents=incidents, good_after=good_after, now=now)
        if isinstance(verdict, GoodRevision):
            return base.model_copy(update={"good": verdict})
        if len(refusals) < 3:
            refusals.append(f"{timeline[index].sha[:7]}: {verdict}")
    return base.model_copy(update={
        "reason": f"none of the {len(timeline)} applied revisions of {repo} counts as good: "
                  + "; ".join(refusals) + ("; ..." if len(timeline) > 3 else "")})


def judge(revision: Deployed, *, until: datetime | None, incidents: Sequence[IncidentSpan],
          good_after: timedelta, now: datetime) -> GoodRevision | str:
    """The revision as good, with its reasons, or why it is not (one line)."""
    if revision.healthy_at is None:
        return "never reported healthy by the objects that deploy the service"
    end = until or now
    start = revision.healthy_at
    if start >= end:
        return "replaced before it was healthy"
    during = [i for i in incidents if start <= i.started_at < end]
    if during:
        return f"{during[0].ref} started while it was in place"
    before = [i for i in incidents if i.started_at < start and (i.resolved_at is None or i.resolved_at > start)]
    failed = [i for i in before if i.verified == "not_recovered" and i.verified_at is not None
              and start <= i.verified_at < end]
    if failed:
        return f"{failed[0].ref}'s key metric did not recover while it was in place"
    clean_from = max([start, *(i.resolved_at or end for i in before)])
    clean = end - clean_from
    if clean < good_after:
        open_note = f" ({before[0].ref} open until {clean_from:%Y-%m-%d %H:%M} UTC)" if before else ""
        return (f"in place {format_duration(max(clean, timedelta(0)))} with no incident open{open_note}, "
                f"less than good_after ({format_duration(good_after)})")
    reasons = [f"applied and healthy at {start:%Y-%m-%d %H:%M} UTC ({revision.how})",
               (f"the applied revision for {format_duration(end - start)}, until {end:%Y-%m-%d %H:%M} UTC"
                if until else f"still the applied revision, for {format_duration(end - start)}"),
               f"{format_duration(clean)} of it with no incident of the service open "
               f"(good_after: {format_duration(good_after)})"]
    reasons += [f"{i.ref}'s key metric recovered while it was in place (verified after the rollback)"
                for i in before if i.verified == "recovered" and i.verified_at is not None
                and start <= i.verified_at < end]
    return GoodRevision(repo=revision.repo, sha=revision.sha, subject=revision.subject, author=revision.author,
                        since=start, until=until, reasons=tuple(reasons))
