"""The storage ports: one repository Protocol per aggregate, the transaction that holds them and the
store that runs work in one."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol, TypeVar

from bot.domain.actions import Action, ActionKind, ActionState
from bot.domain.changes import AppliedSource, Change, Revert
from bot.domain.drift import Drift
from bot.domain.gitops import AppliedRevision, ControllerEvent, Failure, ImageBuild, ObjectState
from bot.domain.models import Alert, AlertCounts, AlertState, Incident, IncidentStatus, TimelineEvent
from bot.domain.ports.storage_chat import (
    ChatMarkRepository,
    ChatRepository,
    ChatThread,
    PagerRepository,
    PendingPage,
    PendingSummary,
    RoleRepository,
    Room,
    RoomRepository,
)
from bot.domain.probes import ProbeState
from bot.domain.suspects import Ranking
from bot.domain.verdicts import Verdict

T = TypeVar("T")

__all__ = [
    "ActionRepository",
    "AlertRepository",
    "AuthorNotice",
    "AuthorNoticeRepository",
    "ChangeRepository",
    "ChatMarkRepository",
    "ChatRepository",
    "ChatThread",
    "DriftRepository",
    "FollowUp",
    "FollowUpRepository",
    "GitOpsRepository",
    "HeldEvent",
    "HeldEventRepository",
    "IncidentRepository",
    "KeyRepository",
    "PagerRepository",
    "PendingPage",
    "PendingSummary",
    "RankingRepository",
    "RoleRepository",
    "Room",
    "RoomRepository",
    "Store",
    "TimelineRepository",
    "Transaction",
    "VerdictRepository",
    "Verification",
    "WatchRepository",
]


class IncidentRepository(Protocol):
    def add(self, incident: Incident) -> Incident: ...
    def get(self, incident_id: int) -> Incident | None: ...
    def get_many(self, incident_ids: Sequence[int]) -> dict[int, Incident]:
        """The incidents with these ids (those that exist), in one query."""
        ...
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
    def for_incident(self, incident_id: int) -> list[Alert]:
        """Every alert of the incident: thousands for a fleet-wide group. What is shown or
        announced reads `summary`."""
        ...
    def summary(self, incident_id: int, *, first: int) -> tuple[AlertCounts, list[Alert]]:
        """The incident's alerts counted, and its first `first` alerts (the firing ones first, each
        kind in arrival order), without reading the others."""
        ...
    def count_firing(self, incident_id: int) -> int: ...
    def sources(self, incident_id: int) -> set[str]:
        """Where the incident's alerts came from (`alertmanager`, `probe`, `flux`, ...)."""
        ...
    def has(self, incident_id: int, *, fingerprint: str | None = None, name: str | None = None) -> bool:
        """Whether one of the incident's alerts has this fingerprint (and, given, this alert name)."""
        ...
    def earliest(self, incident_id: int, *, fingerprints: int) -> list[Alert]:
        """The first alert of each of the `fingerprints` fingerprints that fired first, by start."""
        ...


class TimelineRepository(Protocol):
    def append(self, event: TimelineEvent) -> TimelineEvent: ...
    def append_many(self, events: Sequence[TimelineEvent]) -> None: ...
    def for_incident(self, incident_id: int) -> list[TimelineEvent]: ...
    def of_delivery(self, incident_id: int, kind: str, delivery: str) -> TimelineEvent | None:
        """The event of this kind that counts the alerts of a delivery written in parts (its
        `data["delivery"]`), if an earlier part or an earlier sending of it wrote one."""
        ...
    def recount(self, event: TimelineEvent) -> None:
        """Store a delivery's count event again with its new text and data: the next part of the
        same delivery adds its alerts to it, in the part's transaction."""
        ...
    def after(self, incident_id: int, event_id: int, limit: int = 50) -> list[TimelineEvent]: ...
    def hide(self, event_id: int, *, hidden: bool = True) -> None:
        """Hide an entry from every reading of the timeline (or show it again); it stays stored.
        `for_incident` and `after` leave hidden entries out."""
        ...


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
    def get_many(self, incident_ids: Sequence[int]) -> dict[int, Ranking]:
        """The rankings of these incidents (those ranked), in two queries."""
        ...
    def save(self, incident_id: int, ranking: Ranking) -> None: ...
    def save_many(self, rankings: Mapping[int, Ranking]) -> None:
        """Replace the rankings of these incidents, in a few statements for all of them."""
        ...


class ActionRepository(Protocol):
    def get(self, incident_id: int, kind: ActionKind, commit_sha: str, *, repo: str | None = None) -> Action | None:
        """The action of that key; `repo` narrows it (an incident branch is one per repository)."""
        ...
    def add(self, action: Action) -> Action: ...
    def save(self, action: Action) -> None: ...
    def for_incident(self, incident_id: int) -> list[Action]: ...
    def count_auto_since(self, playbook: str, since: datetime) -> int: ...
    def with_state(self, state: ActionState) -> list[Action]: ...

    def locked(self, action_id: int) -> Action | None:
        """The action as stored, its row locked until the transaction ends (PostgreSQL FOR UPDATE;
        SQLite's write transactions run one at a time): for compare-and-set on its state."""
        ...


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
    def claim_many(self, incident_ids: Sequence[int], kind: str, *, now: datetime, until: datetime) -> list[int]:
        """Take the pending work of these incidents nobody holds, as `claim` does each, in one
        statement; the incidents taken. On PostgreSQL, work another transaction is claiming is
        skipped, not waited for."""
        ...
    def finish(self, incident_id: int, kind: str, *, at: datetime) -> None: ...
    def finish_many(self, incident_ids: Sequence[int], kind: str, *, at: datetime) -> None: ...
    def retry_later(self, incident_id: int, kind: str, *, until: datetime, error: str) -> None: ...
    def release_all(self) -> int:
        """Drop every hold (a lone process starting again: whoever held them is gone)."""
        ...


@dataclass(frozen=True)
class HeldEvent:
    """A controller event answered while its revision was still being fetched: kept until recorded."""

    event: ControllerEvent
    held_at: datetime
    attempts: int = 0  # re-checks that found the revision still out of the mirror's reach
    note: str = ""  # why it is still held


class HeldEventRepository(Protocol):
    def hold(self, event: ControllerEvent, *, at: datetime, note: str) -> None:
        """Keep the event until it is recorded; one held already stays as it is."""
        ...
    def count(self) -> int: ...
    def claim(self, *, now: datetime, until: datetime, keys: Sequence[str] | None = None,
              limit: int = 50) -> list[HeldEvent]:
        """Take held events nobody holds (of `keys`, or any, oldest first) until `until`."""
        ...
    def release(self, key: str, *, note: str) -> None:
        """Give a claimed event back, still held, saying why."""
        ...
    def drop(self, key: str) -> None:
        """The event is recorded: hold it no longer."""
        ...
    def release_all(self) -> int:
        """Drop every claim (a lone process starting again: whoever held them is gone)."""
        ...

class VerdictRepository(Protocol):
    def add(self, verdict: Verdict) -> None: ...
    def for_incident(self, incident_id: int) -> list[Verdict]: ...
    def for_incidents(self, incident_ids: Sequence[int]) -> dict[int, list[Verdict]]:
        """Each incident's verdicts in order (an incident with none has an empty list), in one query."""
        ...
    def since(self, at: datetime, limit: int = 20_000) -> list[Verdict]:
        """Verdicts on incidents opened at or after `at`, oldest first."""
        ...


class KeyRepository(Protocol):
    def get_or_add(self, name: str, value: str, *, at: datetime) -> str:
        """The value kept under `name`, keeping `value` first when there is none. Replicas that
        ask at once agree: the first to commit wins and the others read what it kept."""
        ...


class GitOpsRepository(Protocol):
    def seen(self, keys: Sequence[str]) -> set[str]:
        """Those of these event keys recorded already."""
        ...
    def record(self, events: Sequence[ControllerEvent], *, now: datetime) -> set[str]:
        """Record controller events; the keys of those recorded now (the others were recorded
        before: redeliveries)."""
        ...
    def object(self, object_id: str) -> ObjectState | None: ...
    def objects_by_id(self, object_ids: Sequence[str]) -> dict[str, ObjectState]: ...
    def save_object(self, state: ObjectState) -> None: ...
    def save_objects(self, states: Sequence[ObjectState]) -> None: ...
    def failing(self, object_ids: Sequence[str]) -> set[str]:
        """Those of these objects with a failure not followed by a success."""
        ...
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
    def failures(self, repos: Sequence[str], *, since: datetime, until: datetime) -> list[Failure]:
        """Failures in these repositories at [since, until], newest first, at most 100."""
        ...
    def add_build(self, build: ImageBuild, *, now: datetime) -> None:
        """Record (or replace) which commit built an image tag."""
        ...
    def build(self, image: str, tag: str) -> ImageBuild | None: ...


class DriftRepository(Protocol):
    """Out-of-band changes the controllers reported."""

    def add(self, drift: Drift) -> Drift | None:
        """Store it with its id; None when its key (the controller event) was stored before."""
        ...

    def get(self, drift_id: int) -> Drift | None: ...
    def open_for(self, object_id: str) -> Drift | None:
        """The object's latest drift not yet corrected."""
        ...

    def correct(self, drift_id: int, *, at: datetime, correction: str) -> None: ...
    def between(self, *, since: datetime, until: datetime, limit: int = 200) -> list[Drift]:
        """Detected in [since, until], newest first."""
        ...


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
    @property
    def pager(self) -> PagerRepository: ...
    @property
    def keys(self) -> KeyRepository: ...
    @property
    def chat_marks(self) -> ChatMarkRepository: ...
    @property
    def rooms(self) -> RoomRepository: ...
    @property
    def roles(self) -> RoleRepository: ...
    @property
    def drifts(self) -> DriftRepository: ...
    @property
    def held_events(self) -> HeldEventRepository: ...


class Store(Protocol):
    def run(self, work: Callable[[Transaction], T]) -> T:
        """Run `work` in one transaction and commit. A `WriteConflict` re-runs it a few times."""
        ...
    def read(self, work: Callable[[Transaction], T]) -> T:
        """Run `work`, which only reads, in one consistent snapshot: beside the writers, not
        queued behind them (a page read while a storm is written)."""
        ...
