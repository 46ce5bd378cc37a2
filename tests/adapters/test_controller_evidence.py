"""The controller evidence, per object, over HTTP against real Git repositories and SQLite: a
service's applied times come from the objects that deploy it when every object reports, a
failure that recovered before the incident is history, and a rollout's start is its applied
time (its healthy time kept)."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

from bot.domain.changes import Change
from bot.domain.gitops import GitOpsPolicy
from bot.domain.playbooks import Playbook
from bot.domain.suspects import Ranking
from bot.services.applied import service_changes
from bot.services.investigate import investigate
from tests.adapters.test_controllers import (
    DEPLOY,
    World,
    argo_body,
    flux_body,
    open_alert,
    post_argo,
    post_flux,
)
from tests.adapters.test_controllers import world as controller_world

world = controller_world  # the same world: a checkout playbook, its Git remote, the app over HTTP

INFRA = "infrastructure"


def flux(world: World, fixture: str, *, sha: str, at: datetime, name: str = "apps") -> Any:
    """Post a Flux event of the Kustomization flux-system/<name>."""
    event = json.loads(flux_body(fixture, sha=sha, at=at))
    event["involvedObject"]["name"] = name
    answer = post_flux(world, json.dumps(event).encode())
    assert answer.status_code in (200, 202), answer.text
    return answer.json()


def rank_latest(world: World, at: datetime, playbooks: list[Playbook] | None = None) -> Ranking:
    """Rank the latest incident as the server does when it opens."""
    ctx = world.app.ctx
    latest = ctx.store.run(lambda tx: tx.incidents.list(active=True, limit=10))[0]
    assert latest.id is not None
    return investigate(store=ctx.store, git=ctx.git, notifier=ctx.notifier, playbooks=playbooks or ctx.playbooks,
                       incident_id=latest.id, now=at, import_window=timedelta(days=30))


def changes_of(world: World, playbook: Playbook, at: datetime) -> dict[str, Change]:
    found = world.app.ctx.store.run(lambda tx: service_changes(tx, playbook, since=at - timedelta(hours=6),
                                                               until=at))
    return {c.sha: c for c in found}


def test_with_every_object_reporting_the_services_own_object_times_its_changes(world: World) -> None:
    """The infrastructure Kustomization applied the culprit's revision three hours before the
    service's own `apps` did; the culprit was applied for checkout five minutes before the alert."""
    start = world.remote.clock
    for name in (INFRA, "apps"):
        flux(world, "kustomization-succeeded", sha=world.init, at=start + timedelta(minutes=1), name=name)
    culprit = world.remote.commit("checkout 1.1", {"apps/checkout/deploy.yaml": DEPLOY.format(tag="1.1", replicas=2)})
    early = world.remote.clock + timedelta(minutes=1)
    flux(world, "kustomization-succeeded", sha=culprit, at=early, name=INFRA)
    late = early + timedelta(hours=3)
    flux(world, "kustomization-succeeded", sha=culprit, at=late, name="apps")
    alert_at = late + timedelta(minutes=5)
    world.clock.now = alert_at
    open_alert(world, alert_at)
    ranking = rank_latest(world, alert_at)
    top = ranking.suspects[0]
    assert (top.sha, top.applied_at, top.applied_by) == (culprit, late, "Flux Kustomization flux-system/apps")
    assert ranking.confident, ranking.reason


def test_without_named_objects_the_object_whose_path_holds_the_service_times_it(world: World) -> None:
    """No object named: Argo CD's `platform` (path infrastructure) synced first, `checkout`
    (path apps/checkout, which holds the service's paths) an hour later: checkout's time counts."""
    playbook = world.app.ctx.playbooks[0].model_copy(update={"gitops": GitOpsPolicy()})
    culprit = world.remote.commit("checkout 1.3", {"apps/checkout/deploy.yaml": DEPLOY.format(tag="1.3", replicas=2)})
    first = world.remote.clock + timedelta(minutes=1)
    for app, path, at in (("platform", INFRA, first), ("checkout", "apps/checkout", first + timedelta(hours=1))):
        body = json.loads(argo_body("deployed", "application-synced", sha=culprit, at=at))
        body.update(app=app, path=path)
        assert post_argo(world, json.dumps(body).encode()).status_code == 202
    found = changes_of(world, playbook, first + timedelta(hours=2))[culprit]
    assert (found.applied_at, found.applied_by) == (first + timedelta(hours=1), "Argo CD Application argocd/checkout")


def test_a_failure_that_recovered_before_the_incident_is_history(world: World) -> None:
    """`apps` failed to apply a bad service type three hours before the alert, and applied the fix
    half an hour later; the image bump applied five minutes before the alert is the answer, not
    the long-fixed change."""
    start = world.remote.clock
    flux(world, "kustomization-succeeded", sha=world.init, at=start + timedelta(minutes=1))
    bad = world.remote.commit("checkout: ingress type", {"apps/checkout/service.yaml": "kind: Service\nspec:\n"
                                                         "  type: Ingress\n"})
    world.clock.now = world.remote.clock + timedelta(minutes=1)
    flux(world, "kustomization-validation-failed", sha=bad, at=world.clock.now)
    fix = world.remote.commit("checkout: back to ClusterIP", {"apps/checkout/service.yaml": "kind: Service\n"},
                              minutes=30)
    world.clock.now = world.remote.clock + timedelta(minutes=1)
    assert flux(world, "kustomization-succeeded", sha=fix, at=world.clock.now)["sha"] == fix
    culprit = world.remote.commit("checkout 1.2", {"apps/checkout/deploy.yaml": DEPLOY.format(tag="1.2", replicas=2)},
                                  minutes=150)
    flux(world, "kustomization-succeeded", sha=culprit, at=world.remote.clock + timedelta(minutes=1))
    alert_at = world.remote.clock + timedelta(minutes=6)
    world.clock.now = alert_at
    open_alert(world, alert_at)
    ranking = rank_latest(world, alert_at)
    assert ranking.suspects[0].sha == culprit
    assert all(s.failed is None for s in ranking.suspects)
    assert ranking.confident, ranking.reason


def test_a_flux_rollout_is_applied_when_it_starts_and_healthy_when_it_ends(world: World) -> None:
    """Progressing at 12:01, ReconciliationSucceeded (health checks passed) at 12:09: the change
    was applied at 12:01 and healthy at 12:09."""
    bump = world.remote.commit("checkout 2.0", {"apps/checkout/deploy.yaml": DEPLOY.format(tag="2.0", replicas=2)})
    began = world.remote.clock + timedelta(minutes=1)
    flux(world, "kustomization-progressing", sha=bump, at=began)
    flux(world, "kustomization-succeeded", sha=bump, at=began + timedelta(minutes=8))
    found = changes_of(world, world.app.ctx.playbooks[0], began + timedelta(minutes=20))[bump]
    assert (found.applied_at, found.healthy_at) == (began, began + timedelta(minutes=8))


def test_an_argocd_rollout_is_applied_at_the_syncs_start_and_healthy_at_the_health_transition(
    world: World,
) -> None:
    """deployed: the sync started at 12:01 and finished at 12:02, the app turned Healthy at 12:07."""
    bump = world.remote.commit("checkout 2.1", {"apps/checkout/deploy.yaml": DEPLOY.format(tag="2.1", replicas=2)})
    began = world.remote.clock + timedelta(minutes=1)
    body = argo_body("deployed", "application-synced", sha=bump, at=began + timedelta(minutes=1), started=began,
                     healthy=began + timedelta(minutes=6))
    assert post_argo(world, body).status_code == 202
    found = changes_of(world, world.app.ctx.playbooks[0], began + timedelta(minutes=20))[bump]
    assert (found.applied_at, found.healthy_at, found.applied_by) == (
        began, began + timedelta(minutes=6), "Argo CD Application argocd/checkout")


def test_without_named_objects_another_objects_failure_names_no_suspect(world: World) -> None:
    """No object named: `platform` (path infrastructure) failed to sync the revision that `checkout`
    (path apps/checkout) deployed fine; the failure says nothing of checkout."""
    playbook = world.app.ctx.playbooks[0].model_copy(update={"gitops": GitOpsPolicy()})
    bump = world.remote.commit("checkout 1.4", {"apps/checkout/deploy.yaml": DEPLOY.format(tag="1.4", replicas=2)})
    at = world.remote.clock + timedelta(minutes=1)
    for app, path, event in (("checkout", "apps/checkout", "deployed"), ("platform", INFRA, "sync-failed")):
        fixture = "application-synced" if event == "deployed" else "application-sync-failed"
        body = json.loads(argo_body(event, fixture, sha=bump, at=at))
        body.update(app=app, path=path)
        assert post_argo(world, json.dumps(body).encode()).status_code == 202
    world.clock.now = at + timedelta(minutes=5)
    open_alert(world, world.clock.now)
    ranking = rank_latest(world, world.clock.now, [playbook])
    assert ranking.suspects[0].sha == bump
    assert ranking.suspects[0].failed is None
