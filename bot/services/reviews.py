"""Review risk, end to end: an open pull (merge) request's head is queued when the forge says it
changed, then assessed off the webhook's request (fetched and diffed by real git, compared with
the past causes in the store) and shown on the forge: one `backout/risk` check per head and at
most one comment per request, edited in place. Nothing is posted on a request that never touched
what hurt before; one that did and no longer does is told so, and its check set clean.

The queue is durable (`review_checks`): whoever runs a head first claims it for a while; a sweep
runs what a crash or a failure left. A head is assessed once (idempotent on repo, number, sha);
the check replaces its own on the same commit and the comment is found again by its marker, so a
claim that expired while its holder was still busy costs calls, not a second comment.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

import structlog

from bot.domain.changes import matches_any
from bot.domain.errors import BackoutError
from bot.domain.forge_events import RequestChanged
from bot.domain.playbooks import Playbook, ReviewPolicy
from bot.domain.ports import Forge, OpenRequests, PastCauses, RequestHeads, ReviewQueue
from bot.domain.review_checks import MARKER, CheckState, ReviewCheck, ReviewItem, request_ref
from bot.domain.review_risk import LOOKBACK, PastCause, ReviewedChange, Risk, Rules, assess, summary
from bot.domain.safety import revert_warnings

log = structlog.get_logger(__name__)

LEASE = timedelta(minutes=2)
RETRY_AFTER = timedelta(minutes=1)
MAX_ATTEMPTS = 10  # a head that keeps failing is left, with its last error, after this many tries


@dataclass(frozen=True)
class ReviewWork:
    """What assessing and posting review risk needs."""

    queue: ReviewQueue
    causes: PastCauses
    heads: RequestHeads
    forge: Forge
    playbooks: Sequence[Playbook]
    page_url: Callable[[int], str | None] = lambda _: None  # the plain page: comments outlive any token
    lease: timedelta = LEASE


@dataclass(frozen=True)
class Outcome:
    """What one head's assessment found and what went to the forge."""

    risk: Risk | None  # None: the head is no longer the request's (force-pushed away)
    check: ReviewCheck | None  # None: nothing to post
    comment: str | None  # the comment's body, when one is posted or edited
    comment_id: int | None = None  # the comment's id on the forge, once posted


def queue_request(queue: ReviewQueue, *, repo: str, changed: RequestChanged, branch: str,
                  now: datetime) -> ReviewItem | None:
    """Queue an open request's new head; None when it is not one to assess or was queued before.
    Only requests into the watched branch are assessed: past causes are what ran from it, and a
    request into a release branch or a fork's experiment is compared with a history it may not share."""
    if changed.action in ("closed", "merged"):
        if dropped := queue.drop(repo, changed.number, at=now):
            log.info("review_risk.dropped", repo=repo, number=changed.number, heads=dropped, why=changed.action)
        return None
    if not changed.open:
        return None
    if changed.base and changed.base != branch:
        log.info("review_risk.other_base", repo=repo, number=changed.number, base=changed.base[:100], watched=branch)
        return None
    item = ReviewItem(repo=repo, number=changed.number, head_sha=changed.head_sha, base=branch, forge=changed.forge)
    return item if queue.add(item, at=now) else None


def run_one(work: ReviewWork, item: ReviewItem, *, now: datetime) -> bool:
    """Claim the head, assess it, post; False when someone else holds it or it is done."""
    if not work.queue.claim(item, now=now, until=now + work.lease):
        return False
    try:
        outcome = review(work, item, now=now, post=True)
    except Exception as exc:
        log.exception("review_risk.failed", repo=item.repo, number=item.number, sha=item.head_sha[:12], error=str(exc))
        # Backing off: 1m, 2m, 4m ... 1h; after MAX_ATTEMPTS the head waits for a new push (or `backout risk`).
        wait = RETRY_AFTER * min(2 ** item.attempts, 60) if item.attempts + 1 < MAX_ATTEMPTS else timedelta(days=3650)
        work.queue.retry_later(item, until=now + wait, error=f"{type(exc).__name__}: {exc}")
        return False
    risk = outcome.risk
    work.queue.finish(item, at=now, flagged=bool(risk and risk.flagged),
                      state=outcome.check.state.value if outcome.check else "", comment_id=outcome.comment_id)
    return True


def sweep(work: ReviewWork, *, clock: Callable[[], datetime], keep_going: Callable[[], bool] = lambda: True,
          batch: int = 50) -> int:
    """Assess the heads nobody holds (left by a crash, or failed and due again)."""
    done = 0
    while keep_going():
        due = work.queue.due(now=clock(), limit=batch)
        ran = [run_one(work, item, now=clock()) for item in due]
        done += sum(ran)
        if not any(ran):
            break
    return done


def poll(work: ReviewWork, forge: OpenRequests, *, repos: Mapping[str, str], now: datetime) -> int:
    """For repositories without a webhook: queue the new heads of their open requests (one list
    call per repository, conditional on GitHub: an unchanged list costs no rate limit), then assess
    them. `repos`: name -> watched branch. How many heads were assessed."""
    done = 0
    for repo, branch in repos.items():
        try:
            found = forge.open_requests(repo)
        except BackoutError as exc:
            log.warning("review_risk.poll_failed", repo=repo, error=str(exc))
            continue
        queued = [item for changed in found
                  if (item := queue_request(work.queue, repo=repo, changed=changed, branch=branch, now=now))]
        done += sum(run_one(work, item, now=now) for item in queued)
    return done


def review(work: ReviewWork, item: ReviewItem, *, now: datetime, post: bool) -> Outcome:
    """Assess one head (`head_sha` "": the request's head as it is now); with `post`, show it on the
    forge (`backout risk` without --post only prints)."""
    diff = work.heads.request_diff(item.repo, ref=request_ref(item.forge, item.number), sha=item.head_sha or None,
                                   base=item.base)
    if diff is None:
        log.info("review_risk.head_gone", repo=item.repo, number=item.number, sha=item.head_sha[:12])
        return Outcome(risk=None, check=None, comment=None)
    sha = diff.head_sha
    change = ReviewedChange(repo=item.repo, number=item.number, head_sha=sha, files=diff.files,
                            flags=revert_warnings([f.path for f in diff.files], diff.patch), reverts=diff.reverts)
    policies = _policies(work.playbooks, item.repo, [f.path for f in diff.files])
    lookback = max((p.lookback for p in policies), default=LOOKBACK)
    block_on = tuple(dict.fromkeys(rule for p in policies for rule in p.block_on))
    causes = _scoped(work.causes.causes(item.repo, since=now - lookback), work.playbooks)
    risk = assess(change, causes, block_on=block_on, now=now, rules=Rules(lookback=lookback))
    posted = work.queue.posted(item.repo, item.number)
    required = bool(block_on)  # the check may be required by the branch's protection: always set it
    if not risk.flagged and not posted.flagged and posted.comment_id is None and not required:
        return Outcome(risk=risk, check=None, comment=None)
    links = {m.cause.incident_id: url for m in risk.matches if (url := work.page_url(m.cause.incident_id))}
    text = summary(risk, now=now, link=links)
    check = ReviewCheck(state=_state(risk), title=_title(risk), summary=text,
                        target_url=links.get(risk.matches[0].cause.incident_id) if risk.matches else None)
    comment = None
    if risk.flagged or posted.flagged or posted.comment_id is not None:
        comment = f"{MARKER}\n**Backout review risk** for {sha[:7]}\n\n{text}"
    if post:
        work.forge.review_check(item.repo, sha=sha, check=check)
        if comment is not None:
            comment_id = work.forge.comment(item.repo, item.number, body=comment, marker=MARKER,
                                            comment_id=posted.comment_id)
            return _logged(item, Outcome(risk=risk, check=check, comment=comment, comment_id=comment_id))
    return _logged(item, Outcome(risk=risk, check=check, comment=comment))


def _logged(item: ReviewItem, outcome: Outcome) -> Outcome:
    risk = outcome.risk
    log.info("review_risk.assessed", repo=item.repo, number=item.number, sha=item.head_sha[:12],
             flagged=bool(risk and risk.flagged), block=list(risk.block) if risk else [],
             check=outcome.check.state.value if outcome.check else None, comment=outcome.comment_id)
    return outcome


def _policies(playbooks: Sequence[Playbook], repo: str, paths: Sequence[str]) -> list[ReviewPolicy]:
    """The review policies of the playbooks that watch any of these paths in `repo`."""
    found = []
    for playbook in playbooks:
        for entry in playbook.repos:
            if entry.repo == repo and any(matches_any(p, (*entry.paths, *entry.shared_paths)) for p in paths):
                found.append(playbook.review)
                break
    return found


def _scoped(causes: Sequence[PastCause], playbooks: Sequence[Playbook]) -> list[PastCause]:
    """Each cause held to its service's paths in its repository (the playbooks of that service)."""
    scopes: dict[tuple[str, str], tuple[str, ...]] = {}
    for playbook in playbooks:
        for entry in playbook.repos:
            key = (playbook.service, entry.repo)
            scopes[key] = (*scopes.get(key, ()), *entry.paths, *entry.shared_paths)
    return [replace(cause, scope=scopes.get((cause.service, cause.repo), ())) for cause in causes]


def _state(risk: Risk) -> CheckState:
    if risk.block:
        return CheckState.BLOCKED
    return CheckState.WARN if risk.flagged else CheckState.CLEAN


def _title(risk: Risk) -> str:
    if not risk.flagged:
        return "Touches nothing whose changes caused incidents"
    incidents = ", ".join(dict.fromkeys(f"INC-{m.cause.incident_id}" for m in risk.matches))
    said = f"Touches what caused {incidents}"
    return f"Blocked ({', '.join(risk.block)}): {said}" if risk.block else said
