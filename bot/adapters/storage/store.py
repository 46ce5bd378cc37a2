"""SqlStore: the storage port on SQLAlchemy Core, one transaction per unit of work."""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from datetime import datetime
from typing import Any, TypeVar

import sqlalchemy as sa
import structlog
from sqlalchemy import bindparam
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Connection, Engine, RowMapping

from bot.adapters.storage import tables as t
from bot.adapters.storage.replicas import Holder, Released, next_epoch, release_earlier
from bot.adapters.storage.store_changes import SqlActionRepository, SqlChangeRepository, SqlRankingRepository
from bot.adapters.storage.store_drift import SqlDriftRepository
from bot.adapters.storage.store_gitops import SqlGitOpsRepository
from bot.adapters.storage.store_held import SqlHeldEventRepository
from bot.adapters.storage.store_marks import SqlChatMarkRepository
from bot.adapters.storage.store_paging import SqlPagerRepository
from bot.adapters.storage.store_rooms import SqlRoleRepository, SqlRoomRepository
from bot.adapters.storage.store_work import (
    SqlAuthorNoticeRepository,
    SqlChatRepository,
    SqlFollowUpRepository,
    SqlKeyRepository,
    SqlVerdictRepository,
    SqlWatchRepository,
)
from bot.domain.errors import StorageUnavailable, WriteConflict
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
from bot.domain.ports import AlertIdentity

T = TypeVar("T")
log = structlog.get_logger(__name__)

_INCIDENT_FIELDS = {c.name for c in t.incidents.columns if c.name != "id"}
_ALERT_FIELDS = {c.name for c in t.alerts.columns if c.name != "id"}

# Statements are built once: building them per call costs more than running them on SQLite.
_INSERT_INCIDENT = t.incidents.insert()
_GET_INCIDENT = sa.select(t.incidents).where(t.incidents.c.id == bindparam("id"))
_UPDATE_INCIDENT = t.incidents.update().where(t.incidents.c.id == bindparam("_id"))
_LATEST_INCIDENT = (
    sa.select(t.incidents)
    .where(t.incidents.c.group_key == bindparam("group_key"))
    .order_by(t.incidents.c.id.desc())
    .limit(1)
)
_INSERT_ALERT = t.alerts.insert()


@functools.cache
def _alert_states(size: int) -> sa.Select[Any]:
    """`fingerprint IN (:f0 .. :fN)` with a fixed count: an expanding IN is compiled anew on
    every call, which cost more than the query. Sizes go by powers of two; callers pad."""
    c = t.alerts.c
    return sa.select(c.fingerprint, c.starts_at, c.id, c.incident_id, c.status).where(
        c.fingerprint.in_([bindparam(f"f{i}") for i in range(size)])
    )


_COUNT_FIRING = sa.select(sa.func.count()).where(
    t.alerts.c.incident_id == bindparam("incident_id"), t.alerts.c.status == "firing"
)
# Conditional: a replica handling the same resolution at the same moment finds the rows already
# resolved (PostgreSQL re-checks the WHERE after the other commits) and records nothing again.
_RESOLVE_ALERTS = (t.alerts.update()
                   .where(t.alerts.c.id.in_(bindparam("ids", expanding=True)),
                          t.alerts.c.status == AlertStatus.FIRING.value)
                   .values(status=AlertStatus.RESOLVED.value, ends_at=bindparam("ends_at"))
                   .returning(t.alerts.c.id))
_INCIDENT_ALERTS = (
    sa.select(t.alerts).where(t.alerts.c.incident_id == bindparam("incident_id")).order_by(t.alerts.c.id)
)
# The summary: counts by status (one pass over the incident's index entries, no row built in
# Python) and the first alerts of one status, in id order along the incident_id index.
_ALERT_COUNTS = (sa.select(t.alerts.c.status, sa.func.count(),
                           sa.func.max(sa.func.coalesce(t.alerts.c.ends_at, t.alerts.c.received_at)))
                 .where(t.alerts.c.incident_id == bindparam("incident_id")).group_by(t.alerts.c.status))
_FIRST_ALERTS = (_INCIDENT_ALERTS.where(t.alerts.c.status == bindparam("status")).limit(bindparam("first")))
_ALERT_SOURCES = sa.select(t.alerts.c.source).where(t.alerts.c.incident_id == bindparam("incident_id")).distinct()
_FIRST_STARTS = (sa.select(t.alerts.c.fingerprint, sa.func.min(t.alerts.c.starts_at).label("first"))
                 .where(t.alerts.c.incident_id == bindparam("incident_id")).group_by(t.alerts.c.fingerprint)
                 .order_by(sa.literal_column("first")).limit(bindparam("fingerprints")).subquery())
_EARLIEST_ALERTS = (sa.select(t.alerts).join(_FIRST_STARTS, sa.and_(
    t.alerts.c.fingerprint == _FIRST_STARTS.c.fingerprint, t.alerts.c.starts_at == _FIRST_STARTS.c.first))
    .where(t.alerts.c.incident_id == bindparam("incident_id")).order_by(t.alerts.c.starts_at))
_INSERT_EVENT = t.timeline_events.insert()
_SHOWN_EVENTS = sa.select(*[c for c in t.timeline_events.c if c.name != "hidden"]).where(
    t.timeline_events.c.hidden == sa.false())  # a hidden entry stays stored, out of every reading
_INCIDENT_EVENTS = (
    _SHOWN_EVENTS.where(t.timeline_events.c.incident_id == bindparam("incident_id"))
    .order_by(t.timeline_events.c.id)
)
# A delivery's count event, found by the delivery's digest in its data (on the incident's index).
_DELIVERY_EVENT = (_SHOWN_EVENTS.where(t.timeline_events.c.incident_id == bindparam("incident_id"),
                                       t.timeline_events.c.kind == bindparam("kind"),
                                       t.timeline_events.c.data["delivery"].as_string() == bindparam("delivery"))
                   .order_by(t.timeline_events.c.id.desc()).limit(1))
_RECOUNT_EVENT = (t.timeline_events.update().where(t.timeline_events.c.id == bindparam("_id"))
                  .values(text=bindparam("text"), data=bindparam("data")))


class SqlIncidentRepository:
    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    def add(self, incident: Incident) -> Incident:
        values = incident.model_dump(mode="python", include=_INCIDENT_FIELDS)
        new_id = self._conn.execute(_INSERT_INCIDENT, values).inserted_primary_key
        assert new_id is not None
        return incident.model_copy(update={"id": new_id[0]})

    def get(self, incident_id: int) -> Incident | None:
        row = self._conn.execute(_GET_INCIDENT, {"id": incident_id}).mappings().first()
        return _incident(row) if row else None

    def get_many(self, incident_ids: Sequence[int]) -> dict[int, Incident]:
        found: dict[int, Incident] = {}
        for start in range(0, len(incident_ids), 500):
            part = list(incident_ids[start:start + 500])
            rows = self._conn.execute(sa.select(t.incidents).where(t.incidents.c.id.in_(part))).mappings()
            found.update({row["id"]: _incident(row) for row in rows})
        return found

    def save(self, incident: Incident) -> None:
        values = incident.model_dump(mode="python", include=_INCIDENT_FIELDS)
        self._conn.execute(_UPDATE_INCIDENT, {"_id": incident.id, **values})

    def find_latest(self, group_key: str) -> Incident | None:
        row = self._conn.execute(_LATEST_INCIDENT, {"group_key": group_key}).mappings().first()
        return _incident(row) if row else None

    def latest_of_playbook(self, playbook: str, service: str) -> Incident | None:
        row = self._conn.execute(sa.select(t.incidents).where(
            t.incidents.c.playbook == playbook, t.incidents.c.service == service,
        ).order_by(t.incidents.c.id.desc()).limit(1)).mappings().first()
        return _incident(row) if row else None

    def count_active(self) -> dict[IncidentStatus, int]:
        rows = self._conn.execute(sa.select(t.incidents.c.status, sa.func.count()).where(
            t.incidents.c.status.in_([s.value for s in ACTIVE_STATUSES])).group_by(t.incidents.c.status))
        found = {status: 0 for status in ACTIVE_STATUSES}
        found.update({IncidentStatus(status): count for status, count in rows})
        return found

    def list(
        self, *, status: IncidentStatus | None = None, active: bool = False, limit: int = 100
    ) -> list[Incident]:
        query = sa.select(t.incidents).order_by(t.incidents.c.id.desc()).limit(limit)
        if status is not None:
            query = query.where(t.incidents.c.status == status.value)
        if active:
            query = query.where(t.incidents.c.status.in_([s.value for s in ACTIVE_STATUSES]))
        return [_incident(row) for row in self._conn.execute(query).mappings()]


class SqlAlertRepository:
    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    def states(self, identities: Sequence[AlertIdentity]) -> dict[AlertIdentity, AlertState]:
        if not identities:
            return {}
        wanted = set(identities)
        fingerprints = sorted({fp for fp, _ in wanted})
        size = 1 << (len(fingerprints) - 1).bit_length()
        padded = fingerprints + [fingerprints[-1]] * (size - len(fingerprints))
        rows = self._conn.execute(_alert_states(size), {f"f{i}": fp for i, fp in enumerate(padded)})
        return {(fp, starts): AlertState(id_, incident_id, AlertStatus(status))
                for fp, starts, id_, incident_id, status in rows if (fp, starts) in wanted}

    def add_many(self, alerts: Sequence[Alert]) -> None:
        if alerts:  # one executemany; building the rows by hand costs less than model_dump
            self._conn.execute(_INSERT_ALERT, [{name: getattr(a, name) for name in _ALERT_FIELDS} for a in alerts])

    def count_firing(self, incident_id: int) -> int:
        return int(self._conn.execute(_COUNT_FIRING, {"incident_id": incident_id}).scalar_one())

    def resolve_many(self, ends: Sequence[tuple[int, datetime | None]]) -> set[int]:
        by_end: dict[datetime | None, list[int]] = {}
        for alert_id, ends_at in ends:
            by_end.setdefault(ends_at, []).append(alert_id)
        changed: set[int] = set()
        for ends_at, ids in by_end.items():  # a group's resolution usually shares one endsAt
            for start in range(0, len(ids), 5000):
                rows = self._conn.execute(_RESOLVE_ALERTS, {"ids": ids[start:start + 5000], "ends_at": ends_at})
                changed.update(row[0] for row in rows)
        return changed

    def for_incident(self, incident_id: int) -> list[Alert]:
        rows = self._conn.execute(_INCIDENT_ALERTS, {"incident_id": incident_id}).mappings()
        return [_alert(row) for row in rows]

    def sources(self, incident_id: int) -> set[str]:
        return set(self._conn.execute(_ALERT_SOURCES, {"incident_id": incident_id}).scalars())

    def has(self, incident_id: int, *, fingerprint: str | None = None, name: str | None = None) -> bool:
        c = t.alerts.c
        query = sa.select(c.id).where(c.incident_id == incident_id).limit(1)
        if fingerprint is not None:
            query = query.where(c.fingerprint == fingerprint)
        if name is not None:
            query = query.where(c.labels["alertname"].as_string() == name)
        return self._conn.execute(query).first() is not None

    def earliest(self, incident_id: int, *, fingerprints: int) -> list[Alert]:
        rows = self._conn.execute(_EARLIEST_ALERTS, {"incident_id": incident_id, "fingerprints": fingerprints})
        return [_alert(row) for row in rows.mappings()]

    def summary(self, incident_id: int, *, first: int) -> tuple[AlertCounts, list[Alert]]:
        by_status = {status: (count, cleared) for status, count, cleared
                     in self._conn.execute(_ALERT_COUNTS, {"incident_id": incident_id})}
        firing, resolved = (by_status.get(s.value, (0, None)) for s in (AlertStatus.FIRING, AlertStatus.RESOLVED))
        ends = [at for _, at in (firing, resolved) if at is not None]
        counts = AlertCounts(firing[0], resolved[0], max(ends, default=None))
        alerts: list[Alert] = []
        for status, count in ((AlertStatus.FIRING, firing[0]), (AlertStatus.RESOLVED, resolved[0])):
            if count and len(alerts) < first:
                rows = self._conn.execute(_FIRST_ALERTS, {"incident_id": incident_id, "status": status.value,
                                                          "first": first - len(alerts)}).mappings()
                alerts.extend(_alert(row) for row in rows)
        return counts, alerts


class SqlTimelineRepository:
    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    def append(self, event: TimelineEvent) -> TimelineEvent:
        new_id = self._conn.execute(_INSERT_EVENT, _event_values(event)).inserted_primary_key
        assert new_id is not None
        return event.model_copy(update={"id": new_id[0]})

    def append_many(self, events: Sequence[TimelineEvent]) -> None:
        if events:
            self._conn.execute(_INSERT_EVENT, [_event_values(event) for event in events])

    def after(self, incident_id: int, event_id: int, limit: int = 50) -> list[TimelineEvent]:
        rows = self._conn.execute(
            _SHOWN_EVENTS.where(t.timeline_events.c.incident_id == incident_id, t.timeline_events.c.id > event_id)
            .order_by(t.timeline_events.c.id).limit(limit)).mappings()
        return [TimelineEvent.model_validate(dict(row)) for row in rows]

    def of_delivery(self, incident_id: int, kind: str, delivery: str) -> TimelineEvent | None:
        row = self._conn.execute(_DELIVERY_EVENT, {"incident_id": incident_id, "kind": kind,
                                                   "delivery": delivery}).mappings().first()
        return TimelineEvent.model_validate(dict(row)) if row else None

    def recount(self, event: TimelineEvent) -> None:
        values = _event_values(event)
        self._conn.execute(_RECOUNT_EVENT, {"_id": event.id, "text": values["text"], "data": values["data"]})

    def hide(self, event_id: int, *, hidden: bool = True) -> None:
        self._conn.execute(t.timeline_events.update().where(t.timeline_events.c.id == event_id).values(hidden=hidden))

    def for_incident(self, incident_id: int) -> list[TimelineEvent]:
        rows = self._conn.execute(_INCIDENT_EVENTS, {"incident_id": incident_id}).mappings()
        return [TimelineEvent.model_validate(dict(row)) for row in rows]


class SqlTransaction:
    def __init__(self, conn: Connection, holder: Holder | None = None) -> None:
        self.conn = conn  # for the adapter's own statements (start_replica)
        self.incidents = SqlIncidentRepository(conn)
        self.alerts = SqlAlertRepository(conn)
        self.timeline = SqlTimelineRepository(conn)
        self.changes = SqlChangeRepository(conn)
        self.rankings = SqlRankingRepository(conn)
        self.actions = SqlActionRepository(conn)
        self.chat = SqlChatRepository(conn, holder)
        self.watch = SqlWatchRepository(conn)
        self.verdicts = SqlVerdictRepository(conn)
        self.author_notices = SqlAuthorNoticeRepository(conn)
        self.follow_ups = SqlFollowUpRepository(conn, holder)
        self.gitops = SqlGitOpsRepository(conn)
        self.pager = SqlPagerRepository(conn)
        self.keys = SqlKeyRepository(conn)
        self.chat_marks = SqlChatMarkRepository(conn)
        self.rooms = SqlRoomRepository(conn)
        self.roles = SqlRoleRepository(conn)
        self.drifts = SqlDriftRepository(conn)
        self.held_events = SqlHeldEventRepository(conn, holder)


READ_ONLY = "backout_read_only"  # the execution option `engine` begins a read-only transaction for


class SqlStore:
    """Runs units of work; maps database failures to domain errors."""

    def __init__(self, engine: Engine, *, conflict_attempts: int = 5) -> None:
        self.engine = engine
        self._attempts = conflict_attempts
        self.holder: Holder | None = None  # set by start_replica (`serve`): who this process's claims name
        # SQLite has one writer at a time. Queueing our own threads on a lock is fair and
        # immediate; leaving them to SQLite's busy handler makes them sleep and retry.
        self._lock: AbstractContextManager[Any] = (
            threading.Lock() if engine.dialect.name == "sqlite" else nullcontext()
        )

    def run(self, work: Callable[[SqlTransaction], T]) -> T:
        for attempt in range(1, self._attempts + 1):
            try:
                with self._lock, self.engine.begin() as conn:
                    return work(SqlTransaction(conn, self.holder))
            except sa_exc.IntegrityError as exc:
                # Another writer inserted the same alert or incident first: run again and
                # find its row. Bounded, so a real bug surfaces as an error.
                log.info("storage.write_conflict", attempt=attempt, error=type(exc.orig).__name__)
                if attempt == self._attempts:
                    raise WriteConflict("concurrent writes kept conflicting") from exc
            except (sa_exc.OperationalError, sa_exc.InterfaceError) as exc:
                raise StorageUnavailable(_brief(exc)) from exc
        raise AssertionError("unreachable")

    def read(self, work: Callable[[SqlTransaction], T]) -> T:
        try:  # on SQLite a deferred transaction: a WAL snapshot, without the writers' lock
            with self.engine.connect() as conn, conn.execution_options(**{READ_ONLY: True}).begin():
                return work(SqlTransaction(conn))
        except (sa_exc.OperationalError, sa_exc.InterfaceError) as exc:
            raise StorageUnavailable(_brief(exc)) from exc

    def start_replica(self, name: str, *, at: datetime) -> tuple[Holder, Released]:
        """This process starts as replica `name`: take the name's next epoch, free what its earlier
        runs held (they are dead: the caller keeps the name to one live process), and name this run
        on every claim from now on."""
        def work(tx: SqlTransaction) -> tuple[Holder, Released]:
            holder = next_epoch(tx.conn, name, at=at)
            return holder, release_earlier(tx.conn, holder, now=at)

        holder, released = self.run(work)
        self.holder = holder
        return holder, released

    def ping(self) -> None:
        try:
            with self.engine.connect() as conn:
                conn.execute(sa.text("SELECT 1"))
        except sa_exc.SQLAlchemyError as exc:
            raise StorageUnavailable(_brief(exc)) from exc


def _brief(exc: sa_exc.SQLAlchemyError) -> str:
    """The driver's message without the SQL or parameters (they may hold alert text)."""
    original: Any = getattr(exc, "orig", None) or exc
    return str(original).splitlines()[0][:200] if str(original) else type(original).__name__


def _event_values(event: TimelineEvent) -> dict[str, Any]:
    return event.model_dump(mode="json", exclude={"id", "at"}) | {"at": event.at}


def _incident(row: RowMapping) -> Incident:
    return Incident.model_validate(dict(row))


def _alert(row: RowMapping) -> Alert:
    # Rows were validated on the way in; building without validation keeps a 10,000-alert group fast.
    values = dict(row)
    values["status"] = AlertStatus(values["status"])
    return Alert.model_construct(**values)
