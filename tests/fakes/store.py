"""An in-memory Store: the storage port's fake, with the same transaction and uniqueness rules."""

from __future__ import annotations

import copy
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar

from bot.domain.actions import Action, ActionKind, ActionState
from bot.domain.changes import CONTROLLER_SOURCES, AppliedSource, Change, Revert
from bot.domain.chat_marks import MarkedMessage
from bot.domain.drift import Drift
from bot.domain.errors import StorageUnavailable, WriteConflict
from bot.domain.gitops import AppliedRevision, ControllerEvent, Failure, ImageBuild, ObjectState
from bot.domain.models import (
    ACTIVE_STATUSES,
    Alert,
    AlertCounts,
    AlertState,
    AlertStatus,
    Incident,
    IncidentStatus,
    TimelineEvent,
)
from bot.domain.ports import AuthorNotice, ChatThread, FollowUp, PendingSummary, Room, Verification
from bot.domain.probes import ProbeState
from bot.domain.suspects import Ranking
from bot.domain.verdicts import Verdict
from tests.fakes.store_held import FakeHeldEvents
from tests.fakes.store_rooms import FakeRoles, FakeRooms

T = TypeVar("T")


@dataclass
class _State:
    incidents: dict[int, Incident] = field(default_factory=dict)
    alerts: dict[int, Alert] = field(default_factory=dict)
    events: dict[int, TimelineEvent] = field(default_factory=dict)
    changes: dict[tuple[str, str], Change] = field(default_factory=dict)
    reverts: set[Revert] = field(default_factory=set)
    verdicts: list[Verdict] = field(default_factory=list)
    notices: dict[tuple[int, str, str], AuthorNotice] = field(default_factory=dict)
    # (incident, kind) -> [follow-up, held until, done]
    follow_ups: dict[tuple[int, str], list[Any]] = field(default_factory=dict)
    heads: dict[str, str] = field(default_factory=dict)
    rankings: dict[int, Ranking] = field(default_factory=dict)
    actions: dict[int, Action] = field(default_factory=dict)
    outbox: dict[int, dict[str, Any]] = field(default_factory=dict)
    threads: dict[int, ChatThread] = field(default_factory=dict)
    channel_ids: dict[str, str] = field(default_factory=dict)
    marks: dict[tuple[str, str], MarkedMessage] = field(default_factory=dict)
    hidden: set[int] = field(default_factory=set)  # timeline entries hidden by a correction
    probes: dict[str, ProbeState] = field(default_factory=dict)
    verifications: dict[int, Verification] = field(default_factory=dict)
    controller_events: set[str] = field(default_factory=set)
    objects: dict[str, ObjectState] = field(default_factory=dict)
    failures: list[Failure] = field(default_factory=list)
    builds: dict[tuple[str, str], ImageBuild] = field(default_factory=dict)
    applied: dict[tuple[str, str, str], AppliedRevision] = field(default_factory=dict)
    keys: dict[str, str] = field(default_factory=dict)
    rooms: dict[int, Room] = field(default_factory=dict)
    roles: dict[tuple[int, str], str] = field(default_factory=dict)
    drifts: dict[int, Drift] = field(default_factory=dict)
    held: dict[str, list[Any]] = field(default_factory=dict)  # see FakeHeldEvents
    next_id: int = 1

    def new_id(self) -> int:
        self.next_id += 1
        return self.next_id - 1


class _Incidents:
    def __init__(self, state: _State) -> None:
        self._s = state

    def count_active(self) -> dict[IncidentStatus, int]:
        found = dict.fromkeys(ACTIVE_STATUSES, 0)
        for incident in self._s.incidents.values():
            if incident.active:
                found[incident.status] += 1
        return found

    def add(self, incident: Incident) -> Incident:
        latest = self.find_latest(incident.group_key)
        if incident.active and latest is not None and latest.active:
            raise WriteConflict("an active incident exists for this key")
        stored = incident.model_copy(update={"id": len(self._s.incidents) + 1})
        self._s.incidents[stored.id] = stored  # type: ignore[index]
        return stored

    def get(self, incident_id: int) -> Incident | None:
        return self._s.incidents.get(incident_id)

    def get_many(self, incident_ids: Sequence[int]) -> dict[int, Incident]:
        return {n: self._s.incidents[n] for n in incident_ids if n in self._s.incidents}

    def save(self, incident: Incident) -> None:
        assert incident.id in self._s.incidents
        self._s.incidents[incident.id] = incident  # type: ignore[index]

    def find_latest(self, group_key: str) -> Incident | None:
        found = [i for i in self._s.incidents.values() if i.group_key == group_key]
        return max(found, key=lambda i: i.id or 0) if found else None

    def latest_of_playbook(self, playbook: str, service: str) -> Incident | None:
        found = [i for i in self._s.incidents.values() if i.playbook == playbook and i.service == service]
        return max(found, key=lambda i: i.id or 0) if found else None

    def list(
        self, *, status: IncidentStatus | None = None, active: bool = False, limit: int = 100
    ) -> list[Incident]:
        found = sorted(self._s.incidents.values(), key=lambda i: -(i.id or 0))
        return [i for i in found if (status is None or i.status is status)
                and (not active or i.active)][:limit]


class _Alerts:
    def __init__(self, state: _State) -> None:
        self._s = state

    def states(self, identities: Sequence[tuple[str, datetime]]) -> dict[tuple[str, datetime], AlertState]:
        wanted = set(identities)
        return {(a.fingerprint, a.starts_at): AlertState(a.id, a.incident_id, a.status)
                for a in self._s.alerts.values() if (a.fingerprint, a.starts_at) in wanted}

    def add_many(self, alerts: Sequence[Alert]) -> None:
        for alert in alerts:
            if self.states([(alert.fingerprint, alert.starts_at)]):
                raise WriteConflict("alert identity exists")
            stored = alert.model_copy(update={"id": self._s.new_id()})
            self._s.alerts[stored.id] = stored  # type: ignore[index]

    def count_firing(self, incident_id: int) -> int:
        return sum(a.status.value == "firing" for a in self.for_incident(incident_id))

    def resolve_many(self, ends: Sequence[tuple[int, datetime | None]]) -> set[int]:
        changed = set()
        for alert_id, ends_at in ends:
            alert = self._s.alerts[alert_id]
            if alert.status is AlertStatus.FIRING:
                self._s.alerts[alert_id] = alert.model_copy(update={"status": AlertStatus.RESOLVED,
                                                                    "ends_at": ends_at})
                changed.add(alert_id)
        return changed

    def for_incident(self, incident_id: int) -> list[Alert]:
        return [a for a in self._s.alerts.values() if a.incident_id == incident_id]

    def sources(self, incident_id: int) -> set[str]:
        return {a.source for a in self.for_incident(incident_id)}

    def has(self, incident_id: int, *, fingerprint: str | None = None, name: str | None = None) -> bool:
        return any((fingerprint is None or a.fingerprint == fingerprint) and (name is None or a.name == name)
                   for a in self.for_incident(incident_id))

    def earliest(self, incident_id: int, *, fingerprints: int) -> list[Alert]:
        first: dict[str, Alert] = {}
        for alert in sorted(self.for_incident(incident_id), key=lambda a: a.starts_at):
            first.setdefault(alert.fingerprint, alert)
        return list(first.values())[:fingerprints]

    def summary(self, incident_id: int, *, first: int) -> tuple[AlertCounts, list[Alert]]:
        alerts = self.for_incident(incident_id)
        ordered = sorted(alerts, key=lambda a: (a.status is not AlertStatus.FIRING, a.id or 0))
        return AlertCounts.of(alerts), ordered[:first]


class _Timeline:
    def __init__(self, state: _State) -> None:
        self._s = state

    def append(self, event: TimelineEvent) -> TimelineEvent:
        stored = event.model_copy(update={"id": self._s.new_id()})
        self._s.events[stored.id] = stored  # type: ignore[index]
        return stored

    def append_many(self, events: Sequence[TimelineEvent]) -> None:
        for event in events:
            self.append(event)

    def for_incident(self, incident_id: int) -> list[TimelineEvent]:
        return [e for e in self._s.events.values() if e.incident_id == incident_id and e.id not in self._s.hidden]

    def after(self, incident_id: int, event_id: int, limit: int = 50) -> list[TimelineEvent]:
        return [e for e in self.for_incident(incident_id) if (e.id or 0) > event_id][:limit]

    def of_delivery(self, incident_id: int, kind: str, delivery: str) -> TimelineEvent | None:
        return next((e for e in reversed(self.for_incident(incident_id))
                     if e.kind == kind and e.data.get("delivery") == delivery), None)

    def recount(self, event: TimelineEvent) -> None:
        self._s.events[event.id] = event  # type: ignore[index]

    def hide(self, event_id: int, *, hidden: bool = True) -> None:
        if hidden:
            self._s.hidden.add(event_id)
        else:
            self._s.hidden.discard(event_id)


class _Changes:
    def __init__(self, state: _State) -> None:
        self._s = state

    def add_many(self, changes: Sequence[Change]) -> int:
        new = [c for c in changes if (c.repo, c.sha) not in self._s.changes]
        for change in new:
            stored = change if change.applied_at else change.model_copy(
                update={"applied_at": change.committed_at})
            self._s.changes[(change.repo, change.sha)] = stored
        return len(new)

    def applied_between(self, repos: Sequence[str], since: datetime, until: datetime) -> list[Change]:
        return [c for c in self._s.changes.values()
                if c.repo in repos and c.applied_at is not None and since <= c.applied_at <= until]

    def find(self, repo: str | None, sha_prefix: str) -> list[Change]:
        return [c for c in self._s.changes.values()
                if c.sha.startswith(sha_prefix) and (repo is None or c.repo == repo)]

    def head(self, repo: str) -> str | None:
        return self._s.heads.get(repo)

    def set_head(self, repo: str, sha: str, *, at: datetime) -> None:
        self._s.heads[repo] = sha

    def needing_applied(self, repo: str, since: datetime) -> list[str]:
        return [c.sha for c in self._s.changes.values() if c.repo == repo and c.committed_at >= since
                and c.applied_source is AppliedSource.COMMIT_TIME]

    def set_applied(self, repo: str, sha: str, *, at: datetime, source: AppliedSource) -> None:
        change = self._s.changes[(repo, sha)]
        self._s.changes[(repo, sha)] = change.model_copy(update={"applied_at": at, "applied_source": source})

    def get_many(self, repo: str, shas: Sequence[str]) -> list[Change]:
        return [self._s.changes[(repo, sha)] for sha in shas if (repo, sha) in self._s.changes]

    def set_applied_by(self, repo: str, shas: Sequence[str], *, at: datetime, source: AppliedSource,
                       by: str, only_later: Sequence[str] = ()) -> int:
        count = 0
        for sha in [*shas, *only_later]:
            change = self._s.changes.get((repo, sha))
            if change is None or (sha not in shas and (change.applied_at or change.committed_at) <= at):
                continue
            if change.applied_source in CONTROLLER_SOURCES and change.applied_at and change.applied_at <= at:
                continue
            self._s.changes[(repo, sha)] = change.model_copy(
                update={"applied_at": at, "applied_source": source, "applied_by": by})
            count += 1
        return count

    def add_reverts(self, reverts: Sequence[Revert]) -> None:
        self._s.reverts.update(reverts)

    def reverts(self, repos: Sequence[str], *, until: datetime) -> list[Revert]:
        return [r for r in self._s.reverts if r.repo in repos and r.at <= until]


class _Rankings:
    def __init__(self, state: _State) -> None:
        self._s = state

    def get(self, incident_id: int) -> Ranking | None:
        return self._s.rankings.get(incident_id)

    def get_many(self, incident_ids: Sequence[int]) -> dict[int, Ranking]:
        return {n: self._s.rankings[n] for n in incident_ids if n in self._s.rankings}

    def save(self, incident_id: int, ranking: Ranking) -> None:
        self._s.rankings[incident_id] = ranking

    def save_many(self, rankings: Mapping[int, Ranking]) -> None:
        self._s.rankings.update(rankings)


class _Actions:
    def __init__(self, state: _State) -> None:
        self._s = state

    def get(self, incident_id: int, kind: ActionKind, commit_sha: str, *, repo: str | None = None) -> Action | None:
        return next((a for a in self._s.actions.values()
                     if (a.incident_id, a.kind, a.commit_sha) == (incident_id, kind, commit_sha)
                     and repo in (None, a.repo)), None)

    def add(self, action: Action) -> Action:
        if self.get(action.incident_id, action.kind, action.commit_sha, repo=action.repo):
            raise WriteConflict("action exists")
        stored = action.model_copy(update={"id": self._s.new_id()})
        self._s.actions[stored.id] = stored  # type: ignore[index]
        return stored

    def save(self, action: Action) -> None:
        self._s.actions[action.id] = action  # type: ignore[index]

    def for_incident(self, incident_id: int) -> list[Action]:
        return [a for a in self._s.actions.values() if a.incident_id == incident_id]

    def with_state(self, state: ActionState) -> list[Action]:
        return [a for a in self._s.actions.values() if a.state is state]

    def locked(self, action_id: int) -> Action | None:
        return self._s.actions.get(action_id)

    def count_auto_since(self, playbook: str, since: datetime) -> int:
        return sum(1 for a in self._s.actions.values()
                   if a.auto and a.created_at >= since and a.state.value != "proposed"
                   and self._s.incidents[a.incident_id].playbook == playbook)


class _Chat:
    def __init__(self, state: _State) -> None:
        self._s = state

    def backlog(self) -> int:
        return sum(row["state"] in ("pending", "sending") for row in self._s.outbox.values())

    def put_summary(self, incident_id: int, channel: str | None, payload: dict[str, Any],
                    *, at: datetime) -> None:
        for row in self._s.outbox.values():
            if row["incident_id"] == incident_id and row["state"] == "pending":
                row.update(payload=payload, channel=channel)
                return
        number = self._s.new_id()
        self._s.outbox[number] = {"id": number, "incident_id": incident_id, "channel": channel,
                                  "payload": payload, "state": "pending", "attempts": 0, "not_before": at}

    def put_summaries(self, payloads: Mapping[int, dict[str, Any]], *, at: datetime) -> None:
        for incident_id, payload in payloads.items():
            self.put_summary(incident_id, None, payload, at=at)

    def claim_summaries(self, now: datetime, *, until: datetime, limit: int = 20) -> list[PendingSummary]:
        busy = {r["incident_id"] for r in self._s.outbox.values() if r["state"] == "sending" and r["not_before"] > now}
        rows, seen = [], set()
        for r in sorted(self._s.outbox.values(), key=lambda r: r["id"]):
            if r["state"] in ("pending", "sending") and r["not_before"] <= now and r["incident_id"] not in busy \
                    and r["incident_id"] not in seen:
                seen.add(r["incident_id"])
                rows.append({**r})  # as claimed: attempts before this claim
                r.update(state="sending", not_before=until, attempts=r["attempts"] + 1)
                if len(rows) == limit:
                    break
        return [PendingSummary(id=r["id"], incident_id=r["incident_id"], channel=r["channel"],
                               payload=r["payload"], attempts=r["attempts"]) for r in rows]

    def finish_summary(self, summary_id: int) -> None:
        self._s.outbox[summary_id]["state"] = "sent"

    def delay_summary(self, summary_id: int, *, until: datetime, error: str) -> None:
        row = self._s.outbox[summary_id]
        row.update(state="pending", not_before=until, error=error, attempts=row["attempts"] - (0 if error else 1))

    def thread(self, incident_id: int) -> ChatThread | None:
        return self._s.threads.get(incident_id)

    def threads_behind(self, limit: int = 20) -> list[ChatThread]:
        return [t for t in self._s.threads.values()
                if any(e.incident_id == t.incident_id and (e.id or 0) > t.last_event_id and e.id not in self._s.hidden
                       for e in self._s.events.values())][:limit]

    def save_thread(self, thread: ChatThread) -> None:
        self._s.threads[thread.incident_id] = thread

    def channel_id(self, name: str) -> str | None:
        return self._s.channel_ids.get(name)

    def save_channel_id(self, name: str, channel_id: str) -> None:
        self._s.channel_ids[name] = channel_id

    def incident_by_message(self, channel: str, ts: str) -> int | None:
        return next((t.incident_id for t in self._s.threads.values() if (t.channel, t.ts) == (channel, ts)), None)

    def has_messages_in(self, channel: str) -> bool:
        return any(t.channel == channel for t in self._s.threads.values())


class _ChatMarks:
    def __init__(self, state: _State) -> None:
        self._s = state

    def get(self, channel: str, ts: str) -> MarkedMessage | None:
        return self._s.marks.get((channel, ts))

    def add(self, mark: MarkedMessage) -> None:
        if (mark.channel, mark.ts) in self._s.marks:
            raise WriteConflict("this message is marked already")
        self._s.marks[(mark.channel, mark.ts)] = mark

    def save(self, mark: MarkedMessage) -> None:
        self._s.marks[(mark.channel, mark.ts)] = mark


class _Watch:
    def __init__(self, state: _State) -> None:
        self._s = state

    def probe_state(self, key: str) -> ProbeState | None:
        return self._s.probes.get(key)

    def save_probe_state(self, state: ProbeState) -> None:
        self._s.probes[state.key] = state

    def verification(self, incident_id: int) -> Verification | None:
        return self._s.verifications.get(incident_id)

    def watching(self) -> list[Verification]:
        return [v for v in self._s.verifications.values() if v.outcome == "watching"]

    def save_verification(self, verification: Verification) -> None:
        self._s.verifications[verification.incident_id] = verification


class _Verdicts:
    def __init__(self, state: _State) -> None:
        self._s = state

    def add(self, verdict: Verdict) -> None:
        self._s.verdicts.append(verdict)

    def for_incident(self, incident_id: int) -> list[Verdict]:
        return [v for v in self._s.verdicts if v.incident_id == incident_id]

    def for_incidents(self, incident_ids: Sequence[int]) -> dict[int, list[Verdict]]:
        return {n: self.for_incident(n) for n in incident_ids}

    def since(self, at: datetime, limit: int = 20_000) -> list[Verdict]:
        return [v for v in self._s.verdicts if self._s.incidents[v.incident_id].opened_at >= at][:limit]


class _Keys:
    def __init__(self, state: _State) -> None:
        self._s = state

    def get_or_add(self, name: str, value: str, *, at: datetime) -> str:
        return self._s.keys.setdefault(name, value)


class _Notices:
    def __init__(self, state: _State) -> None:
        self._s = state

    def for_incident(self, incident_id: int) -> list[AuthorNotice]:
        return [n for (i, _, _), n in self._s.notices.items() if i == incident_id]

    def save(self, notice: AuthorNotice) -> None:
        self._s.notices[(notice.incident_id, notice.repo, notice.sha)] = notice


class _FollowUps:
    def __init__(self, state: _State) -> None:
        self._s = state

    def backlog(self) -> int:
        return len(self._s.follow_ups)

    def add(self, incident_id: int, kind: str, *, at: datetime) -> None:
        self._s.follow_ups.setdefault((incident_id, kind), [FollowUp(incident_id, kind, at), None])

    def claim(self, incident_id: int, kind: str, *, now: datetime, until: datetime) -> bool:
        row = self._s.follow_ups.get((incident_id, kind))
        if row is None or (row[1] is not None and row[1] >= now):
            return False
        row[0] = FollowUp(incident_id, kind, row[0].created_at, row[0].attempts + 1)
        row[1] = until
        return True

    def due(self, *, now: datetime, limit: int = 50) -> list[FollowUp]:
        return [row[0] for row in self._s.follow_ups.values() if row[1] is None or row[1] < now][:limit]

    def claim_many(self, incident_ids: Sequence[int], kind: str, *, now: datetime, until: datetime) -> list[int]:
        return [n for n in sorted(incident_ids) if self.claim(n, kind, now=now, until=until)]

    def finish(self, incident_id: int, kind: str, *, at: datetime) -> None:
        self._s.follow_ups.pop((incident_id, kind), None)

    def finish_many(self, incident_ids: Sequence[int], kind: str, *, at: datetime) -> None:
        for incident_id in incident_ids:
            self.finish(incident_id, kind, at=at)

    def retry_later(self, incident_id: int, kind: str, *, until: datetime, error: str) -> None:
        if (incident_id, kind) in self._s.follow_ups:
            self._s.follow_ups[(incident_id, kind)][1] = until

    def release_all(self) -> int:
        held = [row for row in self._s.follow_ups.values() if row[1] is not None]
        for row in held:
            row[1] = None
        return len(held)


class _GitOps:
    def __init__(self, state: _State) -> None:
        self._s = state

    def seen(self, keys: Sequence[str]) -> set[str]:
        return set(keys) & self._s.controller_events

    def record(self, events: Sequence[ControllerEvent], *, now: datetime) -> set[str]:
        new = {e.key for e in events} - self._s.controller_events
        self._s.controller_events |= new
        return new

    def object(self, object_id: str) -> ObjectState | None:
        return self._s.objects.get(object_id)

    def objects_by_id(self, object_ids: Sequence[str]) -> dict[str, ObjectState]:
        return {o: self._s.objects[o] for o in object_ids if o in self._s.objects}

    def save_object(self, state: ObjectState) -> None:
        self._s.objects[state.object_id] = state

    def save_objects(self, states: Sequence[ObjectState]) -> None:
        for state in states:
            self.save_object(state)

    def failing(self, object_ids: Sequence[str]) -> set[str]:
        return {f.object_id for f in self._s.failures if f.object_id in object_ids and f.resolved_at is None}

    def objects(self, repos: Sequence[str]) -> list[ObjectState]:
        return [o for o in self._s.objects.values() if o.repo in repos]

    def add_applied(self, revisions: Sequence[AppliedRevision], *, only_later: Sequence[str] = ()) -> None:
        for revision in revisions:
            key = (revision.object_id, revision.repo, revision.sha)
            known = self._s.applied.get(key)
            if known is None or known.applied_at > revision.applied_at:
                self._s.applied[key] = revision.model_copy(update={"healthy_at": known.healthy_at if known else None})
        if revisions:
            first = revisions[0]
            for sha in only_later:
                known = self._s.applied.get((first.object_id, first.repo, sha))
                if known is not None and known.applied_at > first.applied_at:
                    self._s.applied[(first.object_id, first.repo, sha)] = known.model_copy(
                        update={"applied_at": first.applied_at})

    def set_healthy(self, object_id: str, *, at: datetime) -> None:
        for key, known in self._s.applied.items():
            if key[0] == object_id and known.healthy_at is None and known.applied_at <= at:
                self._s.applied[key] = known.model_copy(update={"healthy_at": at})

    def applied(self, repos: Sequence[str], *, since: datetime, until: datetime, shas: Sequence[str] = (),
                objects: Sequence[str] | None = None) -> list[AppliedRevision]:
        return [r for r in self._s.applied.values() if r.repo in repos and (objects is None or r.object_id in objects)
                and (since <= r.applied_at <= until or r.sha in shas)]

    def add_failure(self, failure: Failure) -> Failure:
        stored = failure.model_copy(update={"id": len(self._s.failures) + 1})
        self._s.failures.append(stored)
        return stored

    def open_failure(self, object_id: str) -> Failure | None:
        found = [f for f in self._s.failures if f.object_id == object_id and f.resolved_at is None]
        return found[-1] if found else None

    def resolve_failures(self, object_id: str, *, at: datetime) -> list[Failure]:
        done = [f for f in self._s.failures if f.object_id == object_id and f.resolved_at is None and f.at <= at]
        self._s.failures = [f.model_copy(update={"resolved_at": at}) if f in done else f for f in self._s.failures]
        return sorted(done, key=lambda f: f.at)

    def failures(self, repos: Sequence[str], *, since: datetime, until: datetime) -> list[Failure]:
        return [f for f in reversed(self._s.failures) if f.repo in repos and since <= f.at <= until]

    def add_build(self, build: ImageBuild, *, now: datetime) -> None:
        self._s.builds[(build.image, build.tag)] = build.model_copy(update={"at": build.at or now})

    def build(self, image: str, tag: str) -> ImageBuild | None:
        return self._s.builds.get((image, tag))


class _Drifts:
    def __init__(self, state: _State) -> None:
        self._s = state

    def add(self, drift: Drift) -> Drift | None:
        if any(d.key == drift.key for d in self._s.drifts.values()):
            return None
        stored = drift.model_copy(update={"id": self._s.new_id()})
        self._s.drifts[stored.id or 0] = stored
        return stored

    def get(self, drift_id: int) -> Drift | None:
        return self._s.drifts.get(drift_id)

    def open_for(self, object_id: str) -> Drift | None:
        found = [d for d in self._s.drifts.values() if d.object_id == object_id and d.corrected_at is None]
        return max(found, key=lambda d: d.id or 0, default=None)

    def correct(self, drift_id: int, *, at: datetime, correction: str) -> None:
        drift = self._s.drifts[drift_id]
        if drift.corrected_at is None:
            self._s.drifts[drift_id] = drift.model_copy(update={"corrected_at": at, "correction": correction,
                                                                "sync": None})

    def between(self, *, since: datetime, until: datetime, limit: int = 200) -> list[Drift]:
        found = [d for d in self._s.drifts.values() if since <= d.detected_at <= until]
        return sorted(found, key=lambda d: (d.detected_at, d.id or 0), reverse=True)[:limit]


class _Tx:
    def __init__(self, state: _State) -> None:
        self.incidents = _Incidents(state)
        self.alerts = _Alerts(state)
        self.timeline = _Timeline(state)
        self.changes = _Changes(state)
        self.rankings = _Rankings(state)
        self.actions = _Actions(state)
        self.chat = _Chat(state)
        self.watch = _Watch(state)
        self.verdicts = _Verdicts(state)
        self.author_notices = _Notices(state)
        self.follow_ups = _FollowUps(state)
        self.gitops = _GitOps(state)
        self.keys = _Keys(state)
        self.chat_marks = _ChatMarks(state)
        self.rooms = FakeRooms(state)
        self.roles = FakeRoles(state)
        self.drifts = _Drifts(state)
        self.held_events = FakeHeldEvents(state)


class InMemoryStore:
    """Each unit of work runs on a copy that replaces the state only when the work returns."""

    def __init__(self) -> None:
        self.state = _State()
        self.down = False
        self.runs = 0
        self._lock = threading.Lock()

    def read(self, work: Callable[[_Tx], T]) -> T:
        return self.run(work)

    def run(self, work: Callable[[_Tx], T]) -> T:
        if self.down:
            raise StorageUnavailable("the fake store is down")
        with self._lock:
            self.runs += 1
            draft = copy.deepcopy(self.state)
            result = work(_Tx(draft))
            self.state = draft
            return result


class GatedStore:
    """Wraps a store: every transaction waits until the test opens the gate; counts them."""

    def __init__(self, inner: Any) -> None:
        self.inner, self.gate, self.calls = inner, threading.Event(), 0
        self._count = threading.Condition()

    def run(self, work: Callable[[Any], T]) -> T:
        with self._count:
            self.calls += 1
            self._count.notify_all()
        self.gate.wait(timeout=60)
        return self.inner.run(work)

    def read(self, work: Callable[[Any], T]) -> T:
        return self.run(work)

    def wait_for(self, calls: int) -> None:
        """Until `calls` transactions have begun (and wait at the gate, while it is closed)."""
        with self._count:
            assert self._count.wait_for(lambda: self.calls >= calls, timeout=60), f"{self.calls} of {calls} began"
