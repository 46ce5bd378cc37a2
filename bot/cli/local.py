"""The CLI's work on the configured database, without a server: the same calls and the same
answers (the API's JSON shapes) as `bot.cli.remote.BackoutClient`, so every command prints the
same thing either way. Reads open only the store; actions build the app (Git, the forge, chat).
Neither creates a database: a read run from the wrong folder says so instead of finding none."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy.engine import make_url

from bot.config import Settings
from bot.domain.errors import BackoutError
from bot.domain.models import Actor, IncidentStatus, parse_incident_ref
from bot.domain.verdicts import VerdictKind

if TYPE_CHECKING:
    from bot.bootstrap import App
    from bot.domain.ports import Store
    from bot.services.restore import RestorePlan


class NoDatabase(BackoutError):
    """The configured SQLite file does not exist: nothing was ever recorded there."""


def sqlite_file(url: str) -> Path | None:
    """The file a SQLite URL names (None for another database or an in-memory one)."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or not parsed.database or parsed.database == ":memory:":
        return None
    return Path(parsed.database)


class LocalBackend:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        path = sqlite_file(settings.storage.url)
        if path is not None and not path.is_file():
            raise NoDatabase(f"no database at {path.resolve()} (storage.url {settings.storage.url}): "
                             "run from the config's folder, pass --config, or --server for a running Backout")
        self._store: Store | None = None
        self._app: App | None = None

    @property
    def store(self) -> Store:
        if self._store is None:
            if self._app is not None:
                self._store = self._app.ctx.store
            else:
                from bot.adapters.storage.engine import create_engine
                from bot.adapters.storage.store import SqlStore

                self._store = SqlStore(create_engine(self.settings.storage.url))
        return self._store

    @property
    def app(self) -> App:
        """The whole app, for the commands that act (Git, the forge, chat)."""
        if self._app is None:
            from bot import bootstrap

            self._app = bootstrap.build(self.settings, upgrade_sqlite=False)
        return self._app

    def close(self) -> None:
        if self._app is not None:
            self._app.close()

    # ---- reads ----
    def list_incidents(self, *, status: str | None, limit: int) -> dict[str, Any]:
        from bot.services import incidents
        from bot.services.presenters import incident_dict

        found = incidents.list_incidents(store=self.store, status=IncidentStatus(status) if status else None,
                                         limit=limit)
        return {"incidents": [incident_dict(incident) for incident in found]}

    def incident(self, ref: str) -> dict[str, Any]:
        """The incident as the API shows it, with its page signed as a server would (api.link_secret,
        or the key the database keeps for every replica)."""
        from bot.entrypoints.links import page_links, signed_page
        from bot.services import incidents
        from bot.services.presenters import incident_view_dict

        number = parse_incident_ref(ref)
        view = incident_view_dict(incidents.get_incident(store=self.store, incident_id=number))
        links = page_links(self.settings, store=self.store, clock=lambda: datetime.now(UTC))
        try:
            page = signed_page(self.settings, links, number, now=datetime.now(UTC))
        except BackoutError:  # the key's table not there yet (a schema before `db upgrade`): show without
            page = None
        return view | {"page_url": page}

    def suspects(self, ref: str) -> dict[str, Any]:
        from bot.services import incidents
        from bot.services.presenters import ranking_dict

        return ranking_dict(incidents.get_ranking(store=self.store, incident_id=parse_incident_ref(ref)))

    def plan(self, ref: str) -> dict[str, Any]:
        from bot.config import load_playbooks
        from bot.services.plan import incident_plan
        from bot.services.presenters import steps_plan_dict

        return steps_plan_dict(incident_plan(store=self.store, playbooks=load_playbooks(self.settings.playbooks_dir),
                                             incident_id=parse_incident_ref(ref), now=datetime.now(UTC)))

    def accuracy(self, *, since: str) -> dict[str, Any]:
        from bot.domain.durations import parse_duration
        from bot.services import verdicts

        now = datetime.now(UTC)
        return verdicts.accuracy_report(store=self.store, since=now - parse_duration(since), now=now)

    def report(self, *, since: str, service: str | None) -> dict[str, Any]:
        from bot.domain.durations import parse_duration
        from bot.services.report import team_report

        now = datetime.now(UTC)
        return team_report(store=self.store, since=now - parse_duration(since), now=now, service=service)

    def drift(self, *, since: str, service: str | None) -> dict[str, Any]:
        from bot.domain.durations import parse_duration
        from bot.services.drift import drift_report

        return drift_report(store=self.store, now=datetime.now(UTC), within=parse_duration(since), service=service)

    def sync_drift(self, ref: str, *, by: str) -> dict[str, Any]:
        from bot.services.drift import sync_drift

        ctx = self.app.ctx
        return sync_drift(store=ctx.store, argo=ctx.argo, playbooks=ctx.playbooks, handle=ref, actor_id=by,
                          now=ctx.clock())

    def export(self, ref: str, *, format: str) -> str | bytes:
        """The export as text, or the chart as PNG bytes (`format` png): the store, the templates,
        the playbooks and Prometheus, without the app's Git, forge or chat (nor their secrets)."""
        import json

        from bot.adapters.export.render import ExportRenderer
        from bot.adapters.prometheus import PrometheusQuery
        from bot.config import load_playbooks
        from bot.entrypoints.charts import chart_png, chart_uri
        from bot.entrypoints.context import export_links
        from bot.entrypoints.links import incident_page
        from bot.services import incidents
        from bot.services.export import ExportFormat, build_export

        settings = self.settings
        now = datetime.now(UTC)
        view = incidents.get_incident(store=self.store, incident_id=parse_incident_ref(ref))
        if format in (ExportFormat.PNG, ExportFormat.HTML):
            metrics = (PrometheusQuery(settings.prometheus.url, timeout=settings.prometheus.timeout.total_seconds())
                       if settings.prometheus.url else None)
            png = chart_png(view, playbooks=load_playbooks(settings.playbooks_dir), metrics=metrics, now=now)
            if format == ExportFormat.PNG:
                return png
        page = partial(incident_page, settings)  # plain: an export outlives any token
        document = build_export(view, generated_at=now, links=export_links(settings, page=page))
        renderer = ExportRenderer(settings.export.templates_dir)
        if format == ExportFormat.MARKDOWN:
            return renderer.markdown(document)
        if format == ExportFormat.HTML:
            return renderer.html(document, chart=chart_uri(png))
        return json.dumps(document, indent=2, ensure_ascii=False) + "\n"

    # ---- actions ----
    def acknowledge(self, ref: str, *, by: str) -> dict[str, Any]:
        return self._status(ref, IncidentStatus.ACKNOWLEDGED, by=by)

    def resolve(self, ref: str, *, by: str, note: str) -> dict[str, Any]:
        return self._status(ref, IncidentStatus.RESOLVED, by=by, note=note)

    def reopen(self, ref: str, *, by: str, note: str) -> dict[str, Any]:
        return self._status(ref, IncidentStatus.OPEN, by=by, note=note)

    def note(self, ref: str, *, by: str, text: str) -> dict[str, Any]:
        from bot.services import incidents
        from bot.services.presenters import event_dict

        ctx = self.app.ctx
        return event_dict(incidents.add_note(store=ctx.store, incident_id=parse_incident_ref(ref), text=text,
                                             actor=Actor.USER, actor_id=by, now=ctx.clock()))

    def update(self, ref: str, *, by: str, text: str) -> dict[str, Any]:
        from bot.services import roles

        ctx = self.app.ctx
        return {"ref": ref, "message": roles.post_update(store=ctx.store, incident_id=parse_incident_ref(ref),
                                                         text=text, actor_id=by, now=ctx.clock())}

    def role(self, ref: str, *, by: str, role: str, user: str) -> dict[str, Any]:
        from bot.services import roles

        ctx = self.app.ctx
        return {"ref": ref, "message": roles.assign_role(store=ctx.store, playbooks=ctx.playbooks, role=role,
                                                         incident_id=parse_incident_ref(ref), user=user,
                                                         actor_id=by, now=ctx.clock())}

    def severity(self, ref: str, *, by: str, level: str) -> dict[str, Any]:
        from bot.services import roles

        ctx = self.app.ctx
        incident, changed = roles.set_severity(store=ctx.store, incident_id=parse_incident_ref(ref), level=level,
                                               actor_id=by, now=ctx.clock())
        return {"ref": incident.ref, "severity": incident.severity.value, "changed": changed,
                "message": f"{incident.ref} severity is {incident.severity.value}"}

    def rollback_plan(self, ref: str, *, commit: str | None) -> dict[str, Any]:
        from bot.services import act
        from bot.services.presenters import plan_dict

        ctx = self.app.ctx
        number = parse_incident_ref(ref)
        warnings = self._refresh(number)
        plan = plan_dict(act.plan_rollback(store=ctx.store, git=ctx.git, playbooks=ctx.playbooks,
                                           incident_id=number, sha=commit))
        return {**plan, "refresh_warnings": warnings}

    def _refresh(self, number: int) -> list[str]:
        """Fetch the incident's repositories first: a plan must show what is there now. Returns
        what could not be refreshed."""
        from bot.domain.playbooks import playbook_named
        from bot.services import incidents
        from bot.services.changelog import refresh_changes

        ctx = self.app.ctx
        playbook = playbook_named(ctx.playbooks, incidents.get_summary(store=ctx.store, incident_id=number)
                                  .incident.playbook)
        if playbook is None:
            return []
        report = refresh_changes(store=ctx.store, git=ctx.git, repos=[r.repo for r in playbook.repos],
                                 now=ctx.clock(), import_window=ctx.settings.git.import_window, applied=ctx.applied)
        return [f"could not refresh {repo}: {reason}" for repo, reason in report.failed.items()]

    def good(self, service: str, *, repo: str | None) -> dict[str, Any]:
        from bot.config.playbooks import load_playbooks
        from bot.services.good import last_known_good, service_playbook
        from bot.services.presenters import good_dict

        playbook = service_playbook(load_playbooks(self.settings.playbooks_dir), service)
        answers = last_known_good(store=self.store, playbook=playbook, now=datetime.now(UTC), repo=repo)
        return {"service": playbook.service, "repos": [good_dict(a) for a in answers]}

    def restore_plan(self, ref: str, *, include: Sequence[str], repo: str | None) -> dict[str, Any]:
        from bot.services.presenters import restore_plan_dict

        number = parse_incident_ref(ref)
        warnings = self._refresh(number)
        return {**restore_plan_dict(self._restore_plan(number, include, repo)), "refresh_warnings": warnings}

    def _restore_plan(self, number: int, include: Sequence[str], repo: str | None) -> RestorePlan:
        from bot.services.restore import plan_restore

        ctx = self.app.ctx
        return plan_restore(store=ctx.store, git=ctx.git, playbooks=ctx.playbooks, incident_id=number,
                            now=ctx.clock(), include=include, repo=repo)

    def restore(self, ref: str, *, good: str, include: Sequence[str], repo: str | None, by: str) -> dict[str, Any]:
        from bot.domain.errors import Conflict
        from bot.services.presenters import rollback_dict
        from bot.services.restore import restore

        ctx = self.app.ctx
        number = parse_incident_ref(ref)
        plan = self._restore_plan(number, include, repo)
        if plan.good.sha != good:
            raise Conflict(f"the last known good is now {plan.good.short}, not {good[:7]}: look at the plan again")
        return rollback_dict(restore(store=ctx.store, git=ctx.git, notifier=ctx.notifier, plan=plan, actor=Actor.USER,
                                     actor_id=by, now=ctx.clock(), forge=ctx.forge,
                                     reviewers=ctx.reviewers(plan.playbook), page_url=ctx.page_url(number)))

    def rollback(self, ref: str, *, commit: str, by: str, force: bool = False) -> dict[str, Any]:
        from bot.services import act
        from bot.services.presenters import rollback_dict

        ctx = self.app.ctx
        number = parse_incident_ref(ref)
        return rollback_dict(act.confirmed_rollback(
            store=ctx.store, git=ctx.git, notifier=ctx.notifier, forge=ctx.forge, playbooks=ctx.playbooks,
            incident_id=number, sha=commit, actor=Actor.USER, actor_id=by, now=ctx.clock(),
            page_url=ctx.page_url(number), force=force))

    def hold(self, ref: str, *, by: str) -> dict[str, Any]:
        from bot.services import automerge

        ctx = self.app.ctx
        result = automerge.hold(store=ctx.store, notifier=ctx.notifier, incident_id=parse_incident_ref(ref),
                                actor=Actor.USER, actor_id=by, now=ctx.clock())
        return {"message": result.message, "changed": result.changed}

    def branch(self, ref: str, *, by: str, ready: bool) -> dict[str, Any]:
        from bot.services.incident_branch import branch_command

        ctx = self.app.ctx
        return branch_command(store=ctx.store, git=ctx.git, forge=ctx.forge, notifier=ctx.notifier,
                              playbooks=ctx.playbooks, incident_id=parse_incident_ref(ref), ready=ready, actor_id=by,
                              now=ctx.clock(), page_url=ctx.page_url)

    def verdict(self, ref: str, *, verdict: str, sha: str | None, by: str) -> dict[str, Any]:
        from bot.services import verdicts
        from bot.services.authors import notify_authors

        ctx = self.app.ctx
        number = parse_incident_ref(ref)
        found = verdicts.record_verdict(store=ctx.store, playbooks=ctx.playbooks, incident_id=number,
                                        kind=VerdictKind(verdict), sha=sha, actor=Actor.USER, actor_id=by,
                                        now=ctx.clock(), notifier=ctx.notifier, metrics=ctx.metrics_query)
        notify_authors(store=ctx.store, forge=ctx.forge, playbooks=ctx.playbooks, incident_id=number,
                       now=ctx.clock(), page_url=ctx.page_url(number))
        return found.model_dump(mode="json")

    def freeze(self, target: str, *, by: str, reconcile_disabled: bool) -> dict[str, Any]:
        from bot.services.freeze import freeze, incident_for
        from bot.services.presenters import freeze_dict

        ctx = self.app.ctx
        number = incident_for(ctx.store, target)
        return freeze_dict(freeze(store=ctx.store, git=ctx.git, notifier=ctx.notifier, forge=ctx.forge,
                                  playbooks=ctx.playbooks, incident_id=number, actor=Actor.USER, actor_id=by,
                                  now=ctx.clock(), reconcile_disabled=reconcile_disabled,
                                  page_url=ctx.page_url(number)))

    def unfreeze(self, target: str, *, by: str) -> dict[str, Any]:
        from bot.services.freeze import incident_for, unfreeze
        from bot.services.presenters import freeze_dict

        ctx = self.app.ctx
        number = incident_for(ctx.store, target)
        return freeze_dict(unfreeze(store=ctx.store, git=ctx.git, notifier=ctx.notifier, forge=ctx.forge,
                                    playbooks=ctx.playbooks, incident_id=number, actor=Actor.USER, actor_id=by,
                                    now=ctx.clock(), page_url=ctx.page_url(number)))

    def freezes(self) -> dict[str, Any]:
        from bot.services.freeze_follow import list_freezes
        from bot.services.presenters import freeze_rows_dict

        return freeze_rows_dict(list_freezes(store=self.store, now=datetime.now(UTC)))

    def _status(self, ref: str, target: IncidentStatus, *, by: str, note: str = "") -> dict[str, Any]:
        from bot.services import incidents
        from bot.services.notify import incident_update
        from bot.services.presenters import status_dict

        ctx = self.app.ctx
        number = parse_incident_ref(ref)
        result = incidents.change_status(store=ctx.store, incident_id=number, target=target, actor=Actor.USER,
                                         actor_id=by, now=ctx.clock(), note=note)
        if result.changed:
            incident_update(store=ctx.store, notifier=ctx.notifier, incident_id=number, kind=target.value)
        return status_dict(result)
