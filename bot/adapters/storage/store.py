"""SqlStore: the storage port on SQLAlchemy Core, one transaction per unit of work."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any, TypeVar

import sqlalchemy as sa
import structlog
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Connection, Engine, RowMapping

from bot.adapters.storage import tables as t
from bot.domain.errors import StorageUnavailable, WriteConflict
from bot.domain.models import Alert, Incident, IncidentStatus, TimelineEvent

T = TypeVar("T")
log = structlog.get_logger(__name__)

_INCIDENT_FIELDS = [c.name for c in t.incidents.columns if c.name != "id"]
_ALERT_FIELDS = [c.name for c in t.alerts.columns if c.name != "id"]


class SqlIncidentRepository:
    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    def add(self, incident: Incident) -> Incident:
        values = incident.model_dump(mode="python", include=set(_INCIDENT_FIELDS))
        new_id = self._conn.execute(t.incidents.insert().values(**values)).inserted_primary_key
        assert new_id is not None
        return incident.model_copy(update={"id": new_id[0]})

    def get(self, incident_id: int) -> Incident | None:
        row = self._conn.execute(
            sa.select(t.incidents).where(t.incidents.c.id == incident_id)
        ).mappings().first()
        return _incident(row) if row else None

    def save(self, incident: Incident) -> None:
        values = incident.model_dump(mode="python", include=set(_INCIDENT_FIELDS))
        self._conn.execute(
            t.incidents.update().where(t.incidents.c.id == incident.id).values(**values)
        )

    def find_latest(self, group_key: str) -> Incident | None:
        row = self._conn.execute(
            sa.select(t.incidents)
            .where(t.incidents.c.group_key == group_key)
            .order_by(t.incidents.c.id.desc())
            .limit(1)
        ).mappings().first()
        return _incident(row) if row else None

    def list(self, *, status: IncidentStatus | None = None, limit: int = 100) -> list[Incident]:
        query = sa.select(t.incidents).order_by(t.incidents.c.id.desc()).limit(limit)
        if status is not None:
            query = query.where(t.incidents.c.status == status.value)
        return [_incident(row) for row in self._conn.execute(query).mappings()]


class SqlAlertRepository:
    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    def get(self, fingerprint: str, starts_at: datetime) -> Alert | None:
        row = self._conn.execute(
            sa.select(t.alerts).where(
                t.alerts.c.fingerprint == fingerprint, t.alerts.c.starts_at == starts_at
            )
        ).mappings().first()
        return _alert(row) if row else None

    def add(self, alert: Alert) -> Alert:
        values = alert.model_dump(mode="python", include=set(_ALERT_FIELDS))
        new_id = self._conn.execute(t.alerts.insert().values(**values)).inserted_primary_key
        assert new_id is not None
        return alert.model_copy(update={"id": new_id[0]})

    def save(self, alert: Alert) -> None:
        values = alert.model_dump(mode="python", include=set(_ALERT_FIELDS))
        self._conn.execute(t.alerts.update().where(t.alerts.c.id == alert.id).values(**values))

    def for_incident(self, incident_id: int) -> list[Alert]:
        rows = self._conn.execute(
            sa.select(t.alerts).where(t.alerts.c.incident_id == incident_id).order_by(t.alerts.c.id)
        ).mappings()
        return [_alert(row) for row in rows]


class SqlTimelineRepository:
    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    def append(self, event: TimelineEvent) -> TimelineEvent:
        values = event.model_dump(mode="json", exclude={"id", "at"}) | {"at": event.at}
        new_id = self._conn.execute(
            t.timeline_events.insert().values(**values)
        ).inserted_primary_key
        assert new_id is not None
        return event.model_copy(update={"id": new_id[0]})

    def for_incident(self, incident_id: int) -> list[TimelineEvent]:
        rows = self._conn.execute(
            sa.select(t.timeline_events)
            .where(t.timeline_events.c.incident_id == incident_id)
            .order_by(t.timeline_events.c.id)
        ).mappings()
        return [TimelineEvent.model_validate(dict(row)) for row in rows]


class SqlTransaction:
    def __init__(self, conn: Connection) -> None:
        self.incidents = SqlIncidentRepository(conn)
        self.alerts = SqlAlertRepository(conn)
        self.timeline = SqlTimelineRepository(conn)


class SqlStore:
    """Runs units of work; maps database failures to domain errors."""

    def __init__(self, engine: Engine, *, conflict_attempts: int = 5) -> None:
        self.engine = engine
        self._attempts = conflict_attempts

    def run(self, work: Callable[[SqlTransaction], T]) -> T:
        for attempt in range(1, self._attempts + 1):
            try:
                with self.engine.begin() as conn:
                    return work(SqlTransaction(conn))
            except sa_exc.IntegrityError as exc:
                # Another writer inserted the same alert or incident first: run again and
                # find its row. Bounded, so a real bug surfaces as an error.
                log.info("storage.write_conflict", attempt=attempt, error=type(exc.orig).__name__)
                if attempt == self._attempts:
                    raise WriteConflict("concurrent writes kept conflicting") from exc
            except (sa_exc.OperationalError, sa_exc.InterfaceError) as exc:
                raise StorageUnavailable(_brief(exc)) from exc
        raise AssertionError("unreachable")

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


def _incident(row: RowMapping) -> Incident:
    return Incident.model_validate(dict(row))


def _alert(row: RowMapping) -> Alert:
    return Alert.model_validate(dict(row))
