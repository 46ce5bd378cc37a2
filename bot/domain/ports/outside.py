"""The ports to outside systems: Git, chat, forges, applied times, metrics, the pager and the
leader lock (and the clock the services are given)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol, runtime_checkable

from bot.domain.changes import Change, FileChange, Revert
from bot.domain.chat_marks import ChatMessage
from bot.domain.drift import DriftedResource
from bot.domain.forge_events import RequestChanged
from bot.domain.models import Alert
from bot.domain.paging import OnCall, Page
from bot.domain.ports.storage import Transaction
from bot.domain.review_checks import ReviewCheck

Clock = Callable[[], datetime]


@dataclass(frozen=True)
class RevertResult:
    """What `git revert` and the push did."""

    branch: str
    pushed_sha: str | None       # the branch tip on the remote, when pushed or found there
    adopted: bool = False        # the branch was already on the remote (a retry after a crash)
    conflicts: tuple[str, ...] = ()  # files that did not revert cleanly; nothing was pushed
    pinned: tuple[str, ...] = ()  # what the revert did so image automation leaves it alone
    unpinned: tuple[str, ...] = ()  # automation it could not pin in Git: people must, before merging
    waiting: str | None = None  # the Git host does not answer (why): the revert applies on the last
    #   known branch tip (prepared_sha) and is pushed by a later attempt
    prepared_sha: str | None = None


class GitRepos(Protocol):
    """The Git repositories Backout watches: mirrors, reverts and branches on their remotes."""

    def refresh(self, repo: str, *, since_sha: str | None, not_before: datetime,
                wait: float | None = None) -> FetchedChanges:
        """Fetch the watched branch and return its first-parent commits after `since_sha`. One fetch
        per repository runs at a time (a caller joins it); `wait` bounds how long to wait for it
        (seconds; None: until it ends): past that, or while the host is not answering, the answer
        comes from the mirror with `pending` saying why."""
        ...

    def outages(self) -> dict[str, str]:
        """The repositories whose Git host is not answering: since when, and why."""
        ...

    def branch(self, repo: str) -> str:
        """The watched branch (the base of Backout's pull requests)."""
        ...

    def remote_branch(self, repo: str, branch: str) -> str | None:
        """The sha the remote's branch points at, or None when it does not exist."""
        ...

    def push_revert(self, repo: str, *, sha: str, branch: str, message: str) -> RevertResult: ...

    def push_restore(self, repo: str, *, good_sha: str, paths: Sequence[str], exclude: Sequence[str],
                     branch: str, message: str) -> RevertResult:
        """Push `branch`: one commit on the watched branch's tip that puts every file under `paths`
        (globs; none under `exclude`) back to its content at `good_sha`, files added since removed,
        pinned against image automation as a revert is. Adopts a branch already there; Conflict
        when the paths already are as at `good_sha`; `waiting` while the host does not answer."""
        ...

    def push_branch(self, repo: str, *, branch: str) -> str:
        """Cut `branch` from the watched branch's tip on the remote (or find it); return its sha."""
        ...

    def push_files(self, repo: str, *, branch: str, files: Mapping[str, bytes], message: str) -> str:
        """Commit these files (path in the repository -> content) on a new `branch` cut from the
        watched branch and push it; the branch's sha. A branch already there is adopted as it is."""
        ...

    def manifests(self, repo: str) -> dict[str, str]:
        """The YAML files on the watched branch's tip, freshly fetched: path -> text (bounded in
        count and size; a file past the bound is left out)."""
        ...

    def branch_log(self, repo: str, branch: str) -> list[Change] | None:
        """Fetch one branch of the remote (never the watched one) and return its commits that the
        watched branch does not have, newest first; None when the remote has no such branch."""
        ...

    def patch(self, repo: str, sha: str) -> str:
        """The commit's diff against its first parent (bounded), for revert-safety checks."""
        ...

    def resolve(self, repo: str, rev: str) -> str | None:
        """The full sha of a commit, tag or sha prefix the mirror has, or None."""
        ...

    def first_parent(self, repo: str, *, new: str, old: str | None = None, limit: int = 500) -> list[str]:
        """First-parent shas after `old` up to and including `new`, newest first (up to `limit`
        from `new` when `old` is None; just `new` when `old` is not its ancestor)."""
        ...

    def log_between(self, repo: str, *, old: str, new: str, limit: int = 200) -> list[Change]:
        """The commits reachable from `new` and not from `old` (tags or shas), newest first."""
        ...


@dataclass(frozen=True)
class FetchedChanges:
    head: str
    changes: tuple[Change, ...]
    complete: bool = True  # False when the history since the last head was rewritten (force-push)
    reverts: tuple[Revert, ...] = ()  # commits in the fetched range that revert another
    pending: str | None = None  # why the host's newest commits may be missing: the mirror's answer


@dataclass(frozen=True)
class IncidentMessage:
    """What an incident's chat message says, decided by the notify service."""

    playbook: str | None
    opened_at: datetime
    payload: dict[str, Any]


@dataclass(frozen=True)
class Notice:
    """Something people should see about an incident: the console prints it; chat refreshes the
    incident's message from the store (so it always shows the latest state) and its thread
    follows the timeline."""

    incident_id: int
    kind: str
    title: str
    lines: tuple[str, ...] = ()


class Notifier(Protocol):
    def notify(self, notice: Notice) -> None: ...


@runtime_checkable
class QueuingNotifier(Protocol):
    """A notifier whose notices are rows in the store (the chat outbox): a batch of work queues
    them in its own transaction instead of one transaction a notice."""

    def queue_updates(self, tx: Transaction, kinds: Mapping[int, str]) -> None:
        """Mark these incidents' messages stale (incident id -> the notice's kind) in `tx`."""
        ...

    def deliver_soon(self) -> None:
        """What was queued has committed: deliver it soon."""
        ...


class ChatMessages(Protocol):
    """Reading one message of a channel, for the timeline (by the channel's ID, never its name)."""

    def message(self, channel: str, ts: str) -> ChatMessage | None:
        """The message, in the channel or in a thread; None when it is gone or cannot be read."""
        ...

    def permalink(self, channel: str, ts: str) -> str | None:
        """A link to the message; None when it cannot be had (the entry is kept without one)."""
        ...


@dataclass(frozen=True)
class PullRequestRef:
    number: int
    url: str
    adopted: bool = False  # it already existed (a retry, or a create whose answer was lost)
    name: str = ""  # as the forge's users say it: "pull request #12", "merge request !12"

    @property
    def called(self) -> str:
        return self.name or f"pull request #{self.number}"


@dataclass(frozen=True)
class PullRequestStatus:
    state: str  # open, closed, merged
    merged_by: str | None = None
    checks: str = "none"  # none, pending, success, failure


class Forge(Protocol):
    """Pull requests (GitHub) or merge requests (GitLab) on the forge that hosts a repository."""

    def handles(self, repo: str) -> bool: ...

    def names_request(self, repo: str, ref: str) -> bool:
        """Whether a commit's reference ("#12", "!12") is one of this forge's pull (merge) requests:
        on GitLab "#12" is an issue."""
        ...

    def request_noun(self, repo: str) -> str:
        """What its users call a request to merge: "pull request", "merge request" (GitLab)."""
        ...

    def open_pull_request(self, repo: str, *, head: str, base: str, title: str, body: str, draft: bool,
                          labels: Sequence[str], reviewers: Sequence[str]) -> PullRequestRef:
        """Open it, or adopt the one that already exists for `head`."""
        ...

    def pull_request_status(self, repo: str, number: int) -> PullRequestStatus: ...

    def comment(self, repo: str, number: int, *, body: str, marker: str, comment_id: int | None) -> int:
        """Post a comment on a pull request, or edit `comment_id`; returns the comment's id. A
        comment already carrying `marker` (a create whose answer was lost) is adopted."""
        ...

    def mark_ready(self, repo: str, number: int, *, reviewers: Sequence[str]) -> None:
        """Mark a draft ready for review and ask these reviewers (users, or `org/team` on GitHub);
        one already ready, or a reviewer already asked, is left as it is."""
        ...

    def revert_dry_run(self, repo: str, sha: str, *, branch: str) -> bool | None:
        """The forge's own verdict on reverting `sha` on `branch`, committing nothing: True clean,
        False conflicting; None when the forge offers no such check or cannot say."""
        ...

    def review_check(self, repo: str, *, sha: str, check: ReviewCheck) -> None:
        """Set the `backout/risk` check on a request's head commit (a check run as a GitHub App, else
        a commit status), replacing the one set before on that commit."""
        ...


@dataclass(frozen=True)
class MergeState:
    """What the forge says of merging a pull request as it is, read right before merging."""

    state: str  # open, closed, merged
    clean: bool  # GitHub `mergeable_state` clean, GitLab `detailed_merge_status` mergeable
    why: str  # the forge's own words: "mergeable_state dirty", "detailed_merge_status not_approved"
    head_sha: str = ""
    merged_by: str | None = None


@runtime_checkable
class Merging(Protocol):
    """Merging Backout's own revert or restore pull request: only for a playbook's guarded automatic
    recovery (`actions.merge: confident`, docs/automerge.md). GitHub and GitLab implement it."""

    def merge_state(self, repo: str, number: int) -> MergeState:
        """Read fresh (never a cached answer): the state the merge is decided on."""
        ...

    def merge(self, repo: str, number: int, *, sha: str, message: str) -> MergeState:
        """Merge it if its head is still `sha`. A merge already done (an answer lost, a retry) is
        found and returned as merged, never made twice. UpstreamError with the forge's reason
        (branch protection names its rule) when it refuses."""
        ...


class AppliedTimes(Protocol):
    """When changes were really applied, from a deployment system, a status or a metric."""

    def applied_at(self, repo: str, shas: Sequence[str], *, since: datetime) -> dict[str, datetime]: ...

    def source(self, repo: str) -> str | None:
        """The AppliedSource value this repository's times come from, or None for none."""
        ...


class MetricsQuery(Protocol):
    """Instant and range queries against Prometheus."""

    def value(self, query: str) -> float | None:
        """The query's value (the largest, over several series); None when it returns no data.
        Raises TransientError or UpstreamError when it cannot be evaluated."""
        ...

    def series(self, query: str, *, start: datetime, end: datetime, step: timedelta) -> list[tuple[datetime, float]]:
        """The query over a range: at each step the largest value over its series, oldest first.
        Raises TransientError or UpstreamError when it cannot be evaluated."""
        ...


@runtime_checkable
class AlertStates(Protocol):
    """What the Prometheus that raised an alert knows of it: when its condition became true, and
    its rule's `for`. The Prometheus adapter implements it beside MetricsQuery (one server, two
    small ports): `onset.alert_states(metrics)` tells whether the configured one can say."""

    def asks(self, alert: Alert) -> bool:
        """Whether the Prometheus (or ruler) the alert's generatorURL names is one Backout is
        configured to ask."""
        ...

    def active_at(self, alert: Alert) -> datetime | None:
        """When the alert's condition became true (`activeAt`), while that Prometheus still has it
        pending or firing with the same labels (less its external labels); None once it is gone.
        Raises TransientError or UpstreamError when it cannot be asked."""
        ...

    def rule_for(self, alert: Alert) -> timedelta | None:
        """The `for` of the alerting rule that raised the alert (same alertname, the rule's labels
        among the alert's); None when no rule matches. Raises TransientError or UpstreamError."""
        ...


class LeaderGate(Protocol):
    """Whether this replica runs the scheduled jobs."""

    replica: str  # this replica's id, for /readyz and /metrics

    def is_leader(self) -> bool: ...


class Pager(Protocol):
    """The paging system (PagerDuty): change events, pages, and who is on call."""

    @property
    def sends(self) -> bool:
        """Whether pages and change events can be sent (an integration key is configured)."""
        ...

    def send(self, page: Page) -> None:
        """Deliver one page or change event, once, without retrying: RateLimited (with the wait
        the pager asked for) or TransientError when it may pass, UpstreamError when it was refused."""
        ...

    def on_call(self, *, service_id: str | None, escalation_policy_id: str | None) -> list[OnCall]:
        """Who is on call now, first level first, for an escalation policy (or the one of a
        service). Raises TransientError or UpstreamError when the pager cannot say."""
        ...


class ArgoCdApi(Protocol):
    """Argo CD's API, outbound (`argocd.api_url` with `argocd.api_token_file`): what drifted, field by field."""

    def drifted(self, app: str, *, namespace: str | None = None) -> list[DriftedResource]:
        """The Application's managed resources whose live state differs from Git's, with the
        fields; TransientError or UpstreamError when Argo CD cannot say."""
        ...

    def sync(self, app: str, *, namespace: str | None = None) -> str:
        """Sync the Application from Git (its target revision); what Argo CD says of the operation
        started. UpstreamError when it refuses (one already running, no `sync` permission)."""
        ...


@dataclass(frozen=True)
class RequestDiff:
    """A pull (merge) request's head against its base, as real git sees it: merge-base(base, head)..head."""

    head_sha: str
    files: tuple[FileChange, ...]
    patch: str  # the unified diff, cut to a bound (for the revert-safety flags)
    reverts: tuple[str, ...] = ()  # shas its commits say they revert ("This reverts commit X.")


@runtime_checkable
class OpenRequests(Protocol):
    """The open pull (merge) requests of a repository, for review risk where no webhook tells of them."""

    def open_requests(self, repo: str) -> list[RequestChanged]:
        """Each open request as `opened` with its head sha and base (the first 100, newest first)."""
        ...


@runtime_checkable
class RequestHeads(Protocol):
    """A request's head fetched into the repository's mirror."""

    def request_diff(self, repo: str, *, ref: str, sha: str | None, base: str) -> RequestDiff | None:
        """Fetch `ref` (refs/pull/N/head), then diff `sha` (None: whatever the head is now) from its
        merge-base with `base`; None when `sha` is no longer the request's head (a later push or a
        force-push replaced it)."""
        ...
