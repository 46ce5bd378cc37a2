"""Drift intake over HTTP, against real Git repositories and SQLite: Flux's HelmRelease drift
detection and a Kustomization that put back a live edit at its own revision, Argo CD's OutOfSync at
the revision it last synced with the fields from its API (a fake Argo CD served over HTTP)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from bot.domain.drift import Drift
from tests.adapters.test_controllers import (
    FIXTURE_SHA,
    FIXTURES,
    PLAYBOOK,
    World,
    argo_body,
    built_world,
    flux_body,
    post_argo,
    post_flux,
)
from tests.fakes.argocd import API_TOKEN, FakeArgoCdApi, render, template_body

DRIFT_PLAYBOOK = {**PLAYBOOK, "gitops": {**PLAYBOOK["gitops"], "flux": [  # type: ignore[dict-item]
    {"kind": "Kustomization", "namespace": "flux-system", "name": "apps"},
    {"kind": "HelmRelease", "namespace": "apps", "name": "podinfo"}]}}


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    with built_world(tmp_path, playbook=DRIFT_PLAYBOOK) as built:
        yield built


def drifts(world: World) -> list[Drift]:
    far = datetime(2999, 1, 1, tzinfo=UTC)
    return world.app.ctx.store.run(lambda tx: tx.drifts.between(since=datetime(1970, 1, 1, tzinfo=UTC), until=far))


def helm_event(name: str, at: datetime) -> bytes:
    event = json.loads((FIXTURES / "flux" / f"{name}.json").read_text())
    event["timestamp"] = at.strftime("%Y-%m-%dT%H:%M:%SZ")
    return json.dumps(event).encode()


def test_helm_drift_detected_is_drift_not_a_failed_reconciliation(world: World) -> None:
    """helm-controller's DriftDetected comes with severity error: it is recorded as drift (no
    failure, no incident on `open_on: reconcile_failed`), and DriftCorrected closes that drift."""
    detected_at = world.remote.clock + timedelta(minutes=5)
    answer = post_flux(world, helm_event("helmrelease-drift-detected", detected_at))
    assert answer.status_code == 202, answer.text
    assert (answer.json()["outcome"], answer.json()["incidents"], answer.json()["drift"]) == ("drifted", [], "drift-1")
    failures = world.app.ctx.store.run(lambda tx: tx.gitops.open_failure("flux:HelmRelease/apps/podinfo"))
    assert failures is None
    [drift] = drifts(world)
    assert [r.ref for r in drift.resources] == ["Deployment apps/podinfo", "Secret apps/podinfo-token"]
    assert [r.how for r in drift.resources] == ["changed", "removed"]
    assert (drift.services, drift.corrected_at, drift.sync) == (
        ("checkout",), None, "flux reconcile helmrelease podinfo -n apps --force")

    corrected_at = detected_at + timedelta(minutes=2)
    assert post_flux(world, helm_event("helmrelease-drift-corrected", corrected_at)).status_code == 202
    [drift] = drifts(world)
    assert (drift.id, drift.corrected_at, drift.sync) == (1, corrected_at, None)
    assert drift.describe() == (
        "out-of-band change to Deployment apps/podinfo; Secret apps/podinfo-token (removed), "
        f"corrected by Flux at {corrected_at:%H:%M} UTC")


def test_a_kustomization_that_configured_objects_at_its_own_revision_corrected_drift(world: World) -> None:
    """A change set at the revision the Kustomization already ran is Flux putting back a live edit:
    drift from the last clean reconcile to that event, corrected then. At a new revision it is a deploy."""
    clean = world.remote.clock + timedelta(minutes=1)
    assert post_flux(world, flux_body("kustomization-succeeded", sha=world.init, at=clean)).status_code == 202
    first = post_flux(world, flux_body("kustomization-progressing", sha=world.init, at=clean - timedelta(seconds=5)))
    assert first.json()["drift"] is None  # older than what the object ran: proves nothing
    bump = world.remote.commit("checkout 1.1", {"apps/checkout/deploy.yaml": "kind: Deployment\n"})
    deploy = post_flux(world, flux_body("kustomization-progressing", sha=bump, at=world.remote.clock))
    assert (deploy.json()["drift"], deploy.json()["applied"]) == (None, 1)

    fixed_at = world.remote.clock + timedelta(minutes=20)
    answer = post_flux(world, flux_body("kustomization-progressing", sha=bump, at=fixed_at))
    assert answer.json()["drift"] == "drift-1", answer.text
    [drift] = drifts(world)
    assert (drift.since, drift.detected_at, drift.corrected_at) == (world.remote.clock, fixed_at, fixed_at)
    assert [r.ref for r in drift.resources] == ["Deployment checkout/checkout"]  # `unchanged` is not drift
    assert drift.label == "Flux Kustomization flux-system/apps"


def drifted_body(sha: str, *, synced: str | None = None, auto_sync: dict[str, Any] | None = None) -> bytes:
    application = json.loads((FIXTURES / "argocd" / "application-drifted.json").read_text().replace(FIXTURE_SHA, sha))
    if synced is not None:
        application["status"]["operationState"]["syncResult"]["revision"] = synced
    if auto_sync is not None:
        application["spec"]["syncPolicy"]["automated"] = auto_sync
    return render(template_body("backout-drifted"), application).encode()


def test_argo_out_of_sync_at_the_synced_revision_with_fields_from_the_api(tmp_path: Path) -> None:
    """The shipped on-drifted template's body: Backout asks Argo CD's API (outbound token, a 503
    retried) which fields moved and says so; OutOfSync after a new commit is no drift."""
    with FakeArgoCdApi().serving() as argo:
        argo.drift("checkout", kind="Deployment", namespace="checkout", name="checkout",
                   target={"apiVersion": "apps/v1", "kind": "Deployment", "spec": {"replicas": 6}},
                   live={"apiVersion": "apps/v1", "kind": "Deployment", "spec": {"replicas": 1, "paused": False},
                         "status": {"replicas": 1}})
        argo.drift("checkout", kind="Service", namespace="checkout", name="checkout", group="",
                   target={"spec": {"type": "ClusterIP"}}, live={"spec": {"type": "ClusterIP"}})
        argo.fail(503)
        settings = {"api_url": argo.base_url, "api_token": API_TOKEN}
        with built_world(tmp_path, playbook=DRIFT_PLAYBOOK, argocd=settings) as world:
            assert post_argo(world, argo_body("deployed", "application-synced", sha=world.init,
                                              at=world.remote.clock)).status_code == 202
            later = world.remote.commit("next", {"README.md": "y\n"})
            moved = post_argo(world, drifted_body(later, synced=world.init))
            assert (moved.json()["outcome"], moved.json()["drift"]) == ("other", None)

            answer = post_argo(world, drifted_body(world.init))
            assert answer.status_code == 202, answer.text
            [drift] = drifts(world)
    assert argo.requests == ["checkout", "checkout"]
    assert drift.describe() == ("out-of-band change to Deployment checkout/checkout (spec.replicas 6 -> 1), "
                                "not corrected: Argo CD auto-sync is off")
    assert drift.since == datetime(2026, 11, 30, 12, 3, 7, tzinfo=UTC)
    assert drift.detected_at == datetime(2026, 11, 30, 12, 9, 12, tzinfo=UTC)
    assert drift.sync is not None
    assert drift.sync.startswith("argocd app sync checkout")


def test_argo_drift_without_the_api_names_the_objects_the_notification_gives(world: World) -> None:
    """No outbound token: the objects from the Application's status, and self-heal said as it is."""
    answer = post_argo(world, drifted_body(world.init, auto_sync={"prune": True, "selfHeal": True}))
    assert answer.json()["drift"] == "drift-1"
    [drift] = drifts(world)
    assert drift.describe() == ("out-of-band change to Deployment checkout/checkout, "
                                "Argo CD self-heal syncs it back")
    assert drift.sync == "argocd app sync checkout"


def test_drift_is_listed_by_the_api_and_the_cli(world: World, tmp_path: Path) -> None:
    """GET /api/drift and `backout drift`, of one service or all; another service's filter is empty."""
    from typer.testing import CliRunner

    from bot.cli import app as cli

    detected_at = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
    post_flux(world, helm_event("helmrelease-drift-detected", detected_at))
    world.clock.now = detected_at + timedelta(minutes=5)
    listed = world.client.get("/api/drift", params={"service": "checkout"}).json()
    [entry] = listed["drift"]
    assert (entry["id"], entry["source"], entry["corrected_at"]) == ("drift-1", "Flux HelmRelease apps/podinfo", None)
    assert entry["resources"][0] == {"kind": "Deployment", "namespace": "apps", "name": "podinfo", "how": "changed",
                                     "fields": []}
    assert world.client.get("/api/drift", params={"service": "payments"}).json()["drift"] == []
    assert world.client.get("/api/drift", params={"since": "a while"}).status_code == 422

    result = CliRunner().invoke(cli, ["drift", "--service", "checkout", "--config", str(tmp_path / "config.yaml")])
    assert result.exit_code == 0, result.output
    assert result.output.splitlines() == [
        f"drift-1  {detected_at:%Y-%m-%d %H:%M} UTC  out-of-band change to Deployment apps/podinfo; "
        "Secret apps/podinfo-token (removed)  [Flux HelmRelease apps/podinfo]",
        "    sync from Git: flux reconcile helmrelease podinfo -n apps --force"]
    as_json = CliRunner().invoke(cli, ["drift", "--json", "--config", str(tmp_path / "config.yaml")])
    assert json.loads(as_json.output)["drift"][0]["id"] == "drift-1"
    sync = CliRunner().invoke(cli, ["drift", "sync", "drift-1", "--config", str(tmp_path / "config.yaml")])
    assert sync.exit_code != 0
    assert "run `flux reconcile helmrelease podinfo -n apps --force`" in sync.output


def test_the_post_mortem_shows_drift_beside_the_commits(tmp_path: Path) -> None:
    """'What changed' lists the drift with its source and action, no commit link, next to a commit."""
    from bot.adapters.console import RecordingNotifier
    from bot.adapters.export.render import ExportRenderer
    from bot.services.export import ExportLinks, build_export
    from bot.services.incidents import get_incident
    from tests.fakes.git import FakeGit
    from tests.fakes.store import InMemoryStore
    from tests.unit.test_act import START, commit, open_incident, playbook, run
    from tests.unit.test_drift import drift

    store, book = InMemoryStore(), playbook("off")
    store.run(lambda tx: tx.drifts.add(drift(since_min=9, detected_min=2).model_copy(update={"id": None})))
    number = open_incident(store, book)
    run(store, FakeGit({"gitops": [commit("b", 40)]}), book, RecordingNotifier(), number)
    doc = build_export(get_incident(store=store, incident_id=number), generated_at=START,
                       links=ExportLinks(commit=lambda repo, sha: f"https://git.example.com/{repo}/commit/{sha}"))
    [first, second] = doc["suspects"]["items"]
    assert (first["sha"], first["url"], first["drift"]["source"]) == (
        "drift-1", None, "Flux Kustomization flux-system/apps")
    assert (second["sha"][:7], second["drift"]) == ("bbbbbbb", None)
    text = ExportRenderer().markdown(doc)
    changed = text.split("## What changed", 1)[1]
    assert ("1. `drift-1` out-of-band change to Deployment checkout/api (spec.replicas 6 -> 1), out of band "
            "(no commit), seen by Flux Kustomization flux-system/apps") in changed
    assert "action: sync from Git: flux reconcile kustomization apps -n flux-system --with-source" in changed
    assert "2. [bbbbbbbbbbbb](<https://git.example.com/gitops/commit/" in changed
    html = ExportRenderer().html(doc)
    assert "<code>drift-1</code> out-of-band change to Deployment checkout/api" in html


def test_a_drift_is_synced_from_git_through_argo_cds_api_and_never_otherwise(tmp_path: Path) -> None:
    """POST /api/drift/{id}/sync: Argo CD's API syncs the Application (its 429 waited out, the sync
    on the incident's timeline); a Flux drift or a corrected one gets 409 with what to do instead."""
    from bot.domain.models import AlertStatus, Delivery, ReceivedAlert
    from bot.services.ingest import ingest_delivery

    with FakeArgoCdApi().serving() as argo:
        argo.drift("checkout", kind="Deployment", namespace="checkout", name="checkout",
                   target={"spec": {"replicas": 6}}, live={"spec": {"replicas": 1}})
        argo.fail(429)
        with built_world(tmp_path, playbook=DRIFT_PLAYBOOK,
                         argocd={"api_url": argo.base_url, "api_token": API_TOKEN}) as world:
            alert = ReceivedAlert(fingerprint="f1", starts_at=world.remote.clock, ends_at=None,
                                  status=AlertStatus.FIRING, annotations={},
                                  labels={"alertname": "HighErrorRate", "service": "checkout"})
            ingest_delivery(store=world.app.ctx.store, playbooks=world.app.ctx.playbooks, now=world.remote.clock,
                            policy=world.app.ctx.settings.incidents,
                            delivery=Delivery(group_key="g", status=AlertStatus.FIRING, alerts=(alert,)))
            assert post_argo(world, drifted_body(world.init)).json()["drift"] == "drift-1"
            assert post_flux(world, helm_event("helmrelease-drift-detected", world.remote.clock)).json()[
                "drift"] == "drift-2"
            synced = world.client.post("/api/drift/drift-1/sync", json={"by": "alice"})
            assert synced.status_code == 200, synced.text
            assert (synced.json()["synced"], synced.json()["phase"]) == (True, "Running")
            timeline = world.client.get("/api/incidents/INC-1/timeline").json()["timeline"]
            flux = world.client.post("/api/drift/drift-2/sync", json={})
            assert post_flux(world, helm_event("helmrelease-drift-corrected", world.remote.clock
                                               + timedelta(minutes=1))).status_code == 202
            corrected = world.client.post("/api/drift/drift-2/sync")
            unknown = world.client.post("/api/drift/drift-9/sync")
            bad = world.client.post("/api/drift/1a2b3c4/sync")
    assert argo.requests == ["checkout", "checkout"]  # the 429, then the answer
    assert argo.syncs == [("checkout", {"prune": False})]
    assert any(e["kind"] == "gitops.drift_synced" and "drift-1" in e["text"] for e in timeline)
    assert flux.status_code == 409
    assert "run `flux reconcile helmrelease podinfo -n apps --force`" in flux.json()["detail"]
    assert corrected.status_code == 409
    assert "needs no sync: corrected by Flux" in corrected.json()["detail"]
    assert (unknown.status_code, bad.status_code) == (404, 400)
