"""Last known good from controller events, against real Git, SQLite and Flux's webhook: a revision
counts once Flux reported it applied and healthy, it stayed good_after with no incident open, and,
where a verification ran while it was in place, the key metric recovered."""

from __future__ import annotations

from datetime import datetime, timedelta

from bot.domain.good import LastGood
from bot.domain.models import IncidentStatus
from bot.domain.ports import Verification
from bot.services.good import last_known_good
from tests.adapters import test_controllers
from tests.adapters.test_controllers import DEPLOY, World, argo_body, flux_body, open_alert, post_argo, post_flux, rank

world = test_controllers.world  # a GitOps remote, Backout on SQLite, Flux's webhook with its key


def flux(world: World, name: str, sha: str, at: datetime) -> None:
    answer = post_flux(world, flux_body(name, sha=sha, at=at))
    assert answer.status_code == 202, answer.text


def good_now(world: World, now: datetime) -> LastGood:
    [answer] = last_known_good(store=world.app.ctx.store, playbook=world.app.ctx.playbooks[0], now=now)
    return answer


def incident_under(world: World, *, bad: str, applied: datetime) -> tuple[datetime, datetime]:
    """INC-1 opens five minutes after `bad` was applied; its rollback's revision is applied half an
    hour later and its verification starts then; it resolves ten minutes after. Returns both times."""
    flux(world, "kustomization-succeeded", bad, applied)
    opened = applied + timedelta(minutes=5)
    open_alert(world, opened)
    rank(world, opened)
    fixed_at = applied + timedelta(minutes=35)
    resolved = fixed_at + timedelta(minutes=10)
    store = world.app.ctx.store
    store.run(lambda tx: tx.incidents.save(tx.incidents.get(1).model_copy(  # type: ignore[union-attr]
        update={"status": IncidentStatus.RESOLVED, "resolved_at": resolved})))
    return fixed_at, resolved


def test_a_revision_counts_once_flux_reported_it_healthy_and_it_ran_good_after(world: World) -> None:
    """Applied but only progressing: not good; healthy, in place 30 min with no incident: good, with
    Flux named in why; the revision INC-1 started under never is."""
    start = world.remote.clock
    flux(world, "kustomization-succeeded", world.init, start + timedelta(minutes=1))
    tuned = world.remote.commit("checkout: 3 replicas",
                                {"apps/checkout/deploy.yaml": DEPLOY.format(tag="1.0", replicas=3)}, minutes=60)
    applied = world.remote.clock + timedelta(minutes=1)
    flux(world, "kustomization-progressing", tuned, applied)
    assert good_now(world, applied + timedelta(hours=2)).good.sha == world.init  # type: ignore[union-attr]
    flux(world, "kustomization-succeeded", tuned, applied + timedelta(minutes=3))
    assert good_now(world, applied + timedelta(minutes=20)).good.sha == world.init  # type: ignore[union-attr]
    answer = good_now(world, applied + timedelta(minutes=40))
    assert answer.good is not None
    assert answer.good.sha == tuned
    assert answer.good.reasons[0].startswith(f"applied and healthy at {applied + timedelta(minutes=3):%Y-%m-%d %H:%M}")
    assert "Flux Kustomization flux-system/apps" in answer.good.reasons[0]
    bad = world.remote.commit("checkout 1.1", {"apps/checkout/deploy.yaml": DEPLOY.format(tag="1.1", replicas=3)},
                              minutes=120)
    incident_under(world, bad=bad, applied=world.remote.clock + timedelta(minutes=1))
    later = good_now(world, world.remote.clock + timedelta(hours=1))
    assert later.current == bad
    assert later.good is not None
    assert later.good.sha == tuned


def test_the_rollback_revision_counts_when_the_key_metric_recovered(world: World) -> None:
    """The revision applied while INC-1 was open counts from INC-1's resolution, with its recovered
    verification among the reasons; a verification that did not recover rules it out."""
    start = world.remote.clock
    flux(world, "kustomization-succeeded", world.init, start + timedelta(minutes=1))
    bad = world.remote.commit("checkout 1.1", {"apps/checkout/deploy.yaml": DEPLOY.format(tag="1.1", replicas=2)},
                              minutes=120)
    fix = world.remote.commit("Revert checkout 1.1", {"apps/checkout/deploy.yaml": DEPLOY.format(tag="1.0",
                                                                                                 replicas=2)})
    fixed_at, resolved = incident_under(world, bad=bad, applied=world.remote.clock - timedelta(minutes=9))
    flux(world, "kustomization-succeeded", fix, fixed_at)
    store = world.app.ctx.store
    store.run(lambda tx: tx.watch.save_verification(Verification(
        incident_id=1, query="errors", started_at=fixed_at + timedelta(minutes=1), outcome="recovered")))
    assert good_now(world, resolved + timedelta(minutes=20)).good.sha == world.init  # type: ignore[union-attr]
    answer = good_now(world, resolved + timedelta(minutes=31))
    assert answer.good is not None
    assert answer.good.sha == fix
    assert "INC-1's key metric recovered while it was in place" in answer.good.reasons[-1]
    store.run(lambda tx: tx.watch.save_verification(Verification(
        incident_id=1, query="errors", started_at=fixed_at + timedelta(minutes=1), outcome="not_recovered")))
    assert good_now(world, resolved + timedelta(hours=3)).good.sha == world.init  # type: ignore[union-attr]


def test_the_incident_page_and_the_api_show_the_last_known_good(world: World) -> None:
    """The page names the good revision with why it counts and how to restore to it; the API
    answers the same revision."""
    start = world.remote.clock
    flux(world, "kustomization-succeeded", world.init, start + timedelta(minutes=1))
    bad = world.remote.commit("checkout 1.1", {"apps/checkout/deploy.yaml": DEPLOY.format(tag="1.1", replicas=2)},
                              minutes=120)
    opened = world.remote.clock + timedelta(minutes=5)
    flux(world, "kustomization-succeeded", bad, opened - timedelta(minutes=4))
    open_alert(world, opened)
    rank(world, opened)
    world.clock.now = opened + timedelta(minutes=10)
    page = world.client.get("/incidents/INC-1")
    assert page.status_code == 200, page.text
    assert "Last known good" in page.text
    assert f"{world.init[:7]}</code> init by Dev One" in page.text
    assert "reported it applied and healthy" in page.text
    assert "backout restore INC-1" in page.text
    answer = world.client.get("/api/services/checkout/good").json()
    assert answer["repos"][0]["good"]["sha"] == world.init
    assert answer["repos"][0]["current"] == bad
    missing = world.client.get("/api/services/nosuch/good")
    assert missing.status_code == 404
    assert "no playbook for service 'nosuch'" in missing.json()["detail"]


def test_argo_cd_deployed_notifications_give_the_last_known_good(world: World) -> None:
    """Argo CD's on-deployed (synced and healthy): the revision counts after good_after, named by
    its Application; a newer one still inside good_after does not yet."""
    start = world.remote.clock
    first = post_argo(world, argo_body("deployed", "application-synced", sha=world.init,
                                           at=start + timedelta(minutes=1)))
    assert first.status_code == 202, first.text
    bump = world.remote.commit("checkout 1.2", {"apps/checkout/deploy.yaml": DEPLOY.format(tag="1.2", replicas=2)},
                               minutes=60)
    deployed = world.remote.clock + timedelta(minutes=3)
    assert post_argo(world, argo_body("deployed", "application-synced", sha=bump, at=deployed)).status_code == 202
    early = good_now(world, deployed + timedelta(minutes=10))
    assert early.good is not None
    assert early.good.sha == world.init
    answer = good_now(world, deployed + timedelta(minutes=45))
    assert answer.good is not None
    assert answer.good.sha == bump
    assert "Argo CD Application argocd/checkout reported it applied and healthy" in answer.good.reasons[0]
