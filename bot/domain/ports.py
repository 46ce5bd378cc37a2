"""The ports: small interfaces the services call and the adapters implement."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol, TypeVar, runtime_checkable

from bot.domain.actions import Action, ActionKind, ActionState
from bot.domain.changes import AppliedSource, Change, Revert
from bot.domain.gitops import AppliedRevision, ControllerEvent, Failure, ImageBuild, ObjectState
from bot.domain.models import Alert, AlertState, Incident, IncidentStatus, TimelineEvent
from bot.domain.probes import ProbeState
from bot.domain.suspects import Ranking
from bot.domain.verdicts import Verdict

T = TypeVar("T")


class IncidentRepository(Protocol):
    def add(self, incident: Incident) -> Incident: ...
    def get(self, incident_id: int) -> Incident | None: ...
    def save(self, incident: Incident) -> None: ...
    def find_latest(self, group_key: str) -> Incident | None: ...
    def latest_of_playbook(self, playbook: str, service: str) -> Incident | None:
        """The newest incident opened under this playbook for this service, whatever its key."""
        ...
    def list(
        self, *, status: IncidentStatus | None = None, active: bool = False, limit: int = 100
    ) -> list[Incident]: ...
    def count_active(self) -> dict[IncidentStatus, int]:
        """How many incidents are in each active status (open to verified; each status present)."""
        ...


AlertIdentity = tuple[str, datetime]  # (fingerprint, starts_at)


class AlertRepository(Protocol):
    def states(self, identities: Sequence[AlertIdentity]) -> dict[AlertIdentity, AlertState]:
        """The stored alerts among these identities, each as its id, incident and status."""
        ...
    def add_many(self, alerts: Sequence[Alert]) -> None: ...
    def resolve_many(self, ends: Sequence[tuple[int, datetime | None]]) -> set[int]:
        """Mark these alerts (by id) resolved with their `ends_at`, in a few statements; only
        those still firing change, and their ids are returned."""
        ...
    def for_incident(self, incident_id: int) -> list[Alert]: ...
    def count_firing(self, incident_id: int) -> int: ...


class TimelineRepository(Protocol):
    def append(self, event: TimelineEvent) -> TimelineEvent: ...
    def append_many(self, events: Sequence[TimelineEvent]) -> None: ...
    def for_incident(self, incident_id: int) -> list[TimelineEvent]: ...
    def after(self, incident_id: int, event_id: int, limit: int = 50) -> list[TimelineEvent]: ...


class ChangeRepository(Protocol):
    def add_many(self, changes: Sequence[Change]) -> int:
        """Store changes not stored yet; return how many were new."""
        ...
    def applied_between(self, repos: Sequence[str], since: datetime, until: datetime) -> list[Change]: ...
    def find(self, repo: str | None, sha_prefix: str) -> list[Change]: ...
    def get_many(self, repo: str, shas: Sequence[str]) -> list[Change]:
        """The stored changes of a repository with these full shas."""
        ...
    def head(self, repo: str) -> str | None: ...
    def set_head(self, repo: str, sha: str, *, at: datetime) -> None: ...
    def needing_applied(self, repo: str, since: datetime) -> list[str]:
        """Shas committed since `since` whose applied time is still the commit time."""
        ...
    def set_applied(self, repo: str, sha: str, *, at: datetime, source: AppliedSource) -> None: ...
    def set_applied_by(self, repo: str, shas: Sequence[str], *, at: datetime, source: AppliedSource,
                       by: str, only_later: Sequence[str] = ()) -> int:
        """A controller applied these changes at `at` (and those of `only_later` whose known time
        is later than `at`). A controller's time replaces any other source's; an earlier
        controller time is kept. Returns how many changed."""
        ...
    def add_reverts(self, reverts: Sequence[Revert]) -> None:
        """Record reverts; one already recorded is ignored."""
        ...
    def reverts(self, repos: Sequence[str], *, until: datetime) -> list[Revert]:
        """Every recorded revert in these repositories committed at or before `until`."""
        ...


class RankingRepository(Protocol):
    def get(self, incident_id: int) -> Ranking | None: ...
    def save(self, incident_id: int, ranking: Ranking) -> None: ...


class ActionRepository(Protocol):
    def get(self, incident_id: int, kind: ActionKind, commit_sha: str) -> Action | None: ...
    def add(self, action: Action) -> Action: ...
    def save(self, action: Action) -> None: ...
    def for_incident(self, incident_id: int) -> list[Action]: ...
    def count_auto_since(self, playbook: str, since: datetime) -> int: ...
    def with_state(self, state: ActionState) -> list[Action]: ...


@dataclass(frozen=True)
class ChatThread:
    incident_id: int
    channel: str
    ts: str
    last_event_id: int


@dataclass(frozen=True)
class PendingSummary:
    id: int
    incident_id: int
    channel: str | None
    payload: dict[str, Any]
    attempts: int


class ChatRepository(Protocol):
    """The chat outbox: one pending summary per incident, and each thread's cursor on the timeline."""

    def put_summary(self, incident_id: int, channel: str | None, payload: dict[str, Any],
                    *, at: datetime) -> None: ...
    def claim_summaries(self, now: datetime, *, until: datetime, limit: int = 20) -> list[PendingSummary]:
        """Take due summaries until `until` (one per incident, none of an incident another drainer
        is sending); each is then finished, or delayed back to pending."""
        ...
    def backlog(self) -> int:
        """Summaries not delivered yet."""
        ...
    def finish_summary(self, summary_id: int) -> None: ...
    def delay_summary(self, summary_id: int, *, until: datetime, error: str) -> None: ...
    def thread(self, incident_id: int) -> ChatThread | None: ...
    def threads_behind(self, limit: int = 20) -> list[ChatThread]: ...
    def save_thread(self, thread: ChatThread) -> None: ...


@dataclass(frozen=True)
class Verification:
    """Watching the key metric after a rollback."""

    incident_id: int
    query: str
    started_at: datetime
    healthy_since: datetime | None = None
    outcome: str = "watching"  # watching, recovered, not_recovered


class WatchRepository(Protocol):
    """Probe states (so `for` survives a restart) and post-rollback verifications."""

    def probe_state(self, key: str) -> ProbeState | None: ...
    def save_probe_state(self, state: ProbeState) -> None: ...
    def verification(self, incident_id: int) -> Verification | None: ...
    def watching(self) -> list[Verification]: ...
    def save_verification(self, verification: Verification) -> None: ...


@dataclass(frozen=True)
class AuthorNotice:
    """Backout's comment on the pull request a suspect came from."""

    incident_id: int
    repo: str
    sha: str
    pr_number: int
    comment_id: int
    body: str
    updated_at: datetime


class AuthorNoticeRepository(Protocol):
    def for_incident(self, incident_id: int) -> list[AuthorNotice]: ...
    def save(self, notice: AuthorNotice) -> None:
        """Insert, or replace the one for the same incident, repo and sha."""
        ...


@dataclass(frozen=True)
class FollowUp:
    """Work an incident still needs after a delivery: `investigate` or `announce_resolved`."""

    incident_id: int
    kind: str
    created_at: datetime
    attempts: int = 0


class FollowUpRepository(Protocol):
    def add(self, incident_id: int, kind: str, *, at: datetime) -> None:
        """Record pending work; one already pending for the incident and kind is kept."""
        ...
    def claim(self, incident_id: int, kind: str, *, now: datetime, until: datetime) -> bool:
        """Take the pending work until `until`, unless someone else holds it; True if taken."""
        ...
    def backlog(self) -> int:
        """Follow-up work not finished yet."""
        ...
    def due(self, *, now: datetime, limit: int = 50) -> list[FollowUp]:
        """Pending work nobody holds, oldest first."""
        ...
    def finish(self, incident_id: int, kind: str, *, at: datetime) -> None: ...
    def retry_later(self, incident_id: int, kind: str, *, until: datetime, error: str) -> None: ...
    def release_all(self) -> int:
        """Drop every hold (a lone process starting again: whoever held them is gone)."""
        ...


class VerdictRepository(Protocol):
    def add(self, verdict: Verdict) -> None: ...
    def for_incident(self, incident_id: int) -> list[Verdict]: ...
    def since(self, at: datetime, limit: int = 20_000) -> list[Verdict]:
        """Verdicts on incidents opened at or after `at`, oldest first."""
        ...


class GitOpsRepository(Protocol):
    def seen(self, key: str) -> bool: ...
    def record(self, event: ControllerEvent, *, now: datetime) -> bool:
        """Record a controller event; False when it was recorded before (a redelivery)."""
        ...
    def object(self, object_id: str) -> ObjectState | None: ...
    def save_object(self, state: ObjectState) -> None: ...
    def objects(self, repos: Sequence[str]) -> list[ObjectState]:
        """The objects seen applying or failing revisions of these repositories."""
        ...
    def add_applied(self, revisions: Sequence[AppliedRevision], *, only_later: Sequence[str] = ()) -> None:
        """Record when one object applied these changes (an earlier time it gave stays), and move
        `only_later` of its changes, recorded after that time, back to it."""
        ...
    def set_healthy(self, object_id: str, *, at: datetime) -> None:
        """The object is healthy at `at`: so is every change it applied by then."""
        ...
    def applied(self, repos: Sequence[str], *, since: datetime, until: datetime, shas: Sequence[str] = (),
                objects: Sequence[str] | None = None) -> list[AppliedRevision]:
        """Each object's applied times in the window, and those of `shas` whenever they were; of
        `objects` only, when given."""
        ...
    def add_failure(self, failure: Failure) -> Failure: ...
    def open_failure(self, object_id: str) -> Failure | None:
        """The object's latest failure not followed by a success."""
        ...
    def resolve_failures(self, object_id: str, *, at: datetime) -> list[Failure]:
        """Mark the object's open failures (up to `at`) resolved; return them, oldest first."""
        ...
    def failures(self, repos: Sequence[str], *, since: datetime, until: datetime) -> list[Failure]: ...
    def add_build(self, build: ImageBuild, *, now: datetime) -> None:
        """Record (or replace) which commit built an image tag."""
        ...
    def build(self, image: str, tag: str) -> ImageBuild | None: ...


class Transaction(Protocol):
    """What one unit of work sees; all its writes commit together or not at all."""

    @property
    def incidents(self) -> IncidentRepository: ...
    @property
    def alerts(self) -> AlertRepository: ...
    @property
    def timeline(self) -> TimelineRepository: ...
    @property
    def changes(self) -> ChangeRepository: ...
    @property
    def rankings(self) -> RankingRepository: ...
    @property
    def actions(self) -> ActionRepository: ...
    @property
    def chat(self) -> ChatRepository: ...
    @property
    def watch(self) -> WatchRepository: ...
    @property
    def verdicts(self) -> VerdictRepository: ...
    @property
    def author_notices(self) -> AuthorNoticeRepository: ...
    @property
    def follow_ups(self) -> FollowUpRepository: ...
    @property
    def gitops(self) -> GitOpsRepository: ...


class Store(Protocol):
    def run(self, work: Callable[[Transaction], T]) -> T:
        """Run `work` in one transaction and commit. A `WriteConflict` re-runs it a few times."""
        ...


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

    def refresh(self, repo: str, *, since_sha: str | None, not_before: datetime) -> FetchedChanges:
        """Fetch the watched branch and return its first-parent commits after `since_sha`."""
        ...

    def branch(self, repo: str) -> str:
        """The watched branch (the base of Backout's pull requests)."""
        ...

    def remote_branch(self, repo: str, branch: str) -> str | None:
        """The sha the remote's branch points at, or None when it does not exist."""
        ...

    def push_revert(self, repo: str, *, sha: str, branch: str, message: str) -> RevertResult: ...

    def push_branch(self, repo: str, *, branch: str) -> str:
        """Cut `branch` from the watched branch's tip on the remote (or find it); return its sha."""
        ...

    def push_files(self, repo: str, *, branch: str, files: Mapping[str, bytes], message: str) -> str:
        """Commit these files (path in the repository -> content) on a new `branch` cut from the
        watched branch and push it; the branch's sha. A branch already there is adopted as it is."""
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

    def revert_dry_run(self, repo: str, sha: str, *, branch: str) -> bool | None:
        """The forge's own verdict on reverting `sha` on `branch`, committing nothing: True clean,
        False conflicting; None when the forge offers no such check or cannot say."""
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
    small ports): `isinstance(metrics, AlertStates)` tells whether the configured one can say."""

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
