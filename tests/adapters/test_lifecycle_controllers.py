"""Mitigated from a controller event, against real Git and SQLite: the revert Backout pushed is
merged, and the incident is mitigated when Flux reports applying it, not when it merged."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from bot.domain.models import Actor, IncidentStatus
from bot.services import lifecycle
from bot.services.act import rollback
from bot.services.changelog import refresh_changes
from bot.services.incidents import find_changes, get_incident
from tests.adapters import test_controllers
from tests.adapters.test_controllers import DEPLOY, World, flux_body, open_alert, post_flux, rank
from tests.gitrepos import git

world = test_controllers.world  # a GitOps remote, Backout on SQLite, Flux's webhook with its key


def test_the_revert_is_mitigated_when_flux_applies_it(world: World) -> None:
    """A revert of the bad bump, merged: still mitigating (Flux reports on this repository); Flux's
    success at the revert's revision: mitigated at Flux's time, naming the object."""
    start = world.remote.clock
    post_flux(world, flux_body("kustomization-succeeded", sha=world.init, at=start + timedelta(minutes=1)))
    bad = world.remote.commit("checkout 1.1", {"apps/checkout/deploy.yaml": DEPLOY.format(tag="1.1", replicas=2)})
    alert_at = world.remote.clock + timedelta(minutes=5)
    open_alert(world, alert_at)
    rank(world, alert_at)
    ctx = world.app.ctx
    [change] = find_changes(ctx.store, "gitops", bad)
    done = rollback(store=ctx.store, git=ctx.git, notifier=ctx.notifier, incident_id=1, change=change,
                    actor=Actor.USER, actor_id="alice", now=alert_at + timedelta(minutes=1))
    git("update-ref", "refs/heads/main", f"refs/heads/{done.action.branch}", cwd=world.remote.bare)  # merged
    revert = git("rev-parse", "refs/heads/main", cwd=world.remote.bare)
    world.clock.now = datetime.now(UTC).replace(microsecond=0) + timedelta(minutes=2)  # git committed it now
    refresh_changes(store=ctx.store, git=ctx.git, repos=["gitops"], now=world.clock(),  # the refresh job
                    import_window=timedelta(days=30))
    assert lifecycle.advance(store=ctx.store, notifier=ctx.notifier, playbooks=ctx.playbooks, now=world.clock()) == 0
    ctx.store.run(lambda tx: tx.incidents.save(tx.incidents.get(1).model_copy(  # type: ignore[union-attr]
        update={"status": IncidentStatus.MITIGATING})))

    applied_at = world.clock() - timedelta(minutes=1)
    answer = post_flux(world, flux_body("kustomization-succeeded", sha=revert, at=applied_at))
    assert answer.status_code == 202, answer.text
    view = get_incident(store=ctx.store, incident_id=1)
    assert (view.incident.status, view.incident.mitigated_at) == (IncidentStatus.MITIGATED, applied_at)
    mitigated = [e for e in view.timeline if e.kind == "incident.mitigated"]
    assert mitigated[0].text == f"Mitigated: Flux Kustomization flux-system/apps applied the revert {revert[:7]}"

