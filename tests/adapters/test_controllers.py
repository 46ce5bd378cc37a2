"""Flux and Argo CD events over HTTP, against real Git repositories and SQLite: applied times from
the controller, failed reconciliations as the strongest suspects, incidents opened and resolved
by them, signatures, bad bodies and redeliveries."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Executor, Future
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
import yaml
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot import bootstrap
from bot.adapters.console import RecordingNotifier
from bot.config import load_settings
from bot.domain.errors import StorageUnavailable
from bot.domain.models import AlertStatus, Delivery, ReceivedAlert
from bot.entrypoints.serving import serve_in_thread
from bot.services.ingest import ingest_delivery
from bot.services.investigate import investigate
from tests.conftest import Clock
from tests.fakes.argocd import render, template_body
from tests.fakes.git import InlineExecutor
from tests.fakes.store import GatedStore
from tests.gitrepos import Remote

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
FIXTURE_SHA = "731f7eaddfb6af01cb2173e18f0f75b0ba780ef1"
KEY = "flux-hmac-key-0123"
ARGO_TOKEN = "argo-token-0123"
DEPLOY = ("apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: checkout, namespace: checkout}}\n"
          "spec:\n  replicas: {replicas}\n  template:\n    spec:\n      containers:\n"
          "      - name: checkout\n        image: registry.example.com/checkout:{tag}\n")
SERVICE = "apiVersion: v1\nkind: Service\nmetadata: {{name: checkout}}\nspec:\n  type: {kind}\n"
PLAYBOOK = {
    "service": "checkout", "match": {"service": "checkout"},
    "repos": [{"repo": "gitops", "paths": ["apps/checkout/**"]}],
    "suspects": {"lookback": "6h", "sync_delay": "2m"},
    "actions": {"on_open": "off"},
    "gitops": {"flux": [{"kind": "Kustomization", "namespace": "flux-system", "name": "apps"}],
               "argocd": [{"app": "checkout"}], "open_on": ["reconcile_failed"]},
}


@dataclass
class World:
    remote: Remote
    app: bootstrap.App
    client: TestClient
    clock: Clock
    init: str


@contextmanager
def built_world(tmp_path: Path, *, playbook: dict[str, Any] = PLAYBOOK,
                argocd: dict[str, Any] | None = None) -> Iterator[World]:
    """The app on SQLite and a real Git repository, with one playbook; `argocd`: more settings."""
    remote = Remote(tmp_path / "gitops")
    init = remote.commit("init", {"apps/checkout/deploy.yaml": DEPLOY.format(tag="1.0", replicas=2),
                                  "apps/checkout/service.yaml": SERVICE.format(kind="ClusterIP"),
                                  "README.md": "x\n"})
    (tmp_path / "playbooks").mkdir()
    (tmp_path / "playbooks" / "checkout.yaml").write_text(yaml.safe_dump(playbook))
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({
        "storage": {"url": f"sqlite:///{tmp_path / 'backout.db'}"},
        "alertmanager": {"auth": "none"}, "api": {"auth": "none"},
        "flux": {"hmac_key": KEY}, "argocd": {"token": ARGO_TOKEN, **(argocd or {})},
        "playbooks_dir": str(tmp_path / "playbooks"),
        "repos": [{"name": "gitops", "url": str(remote.bare), "branch": "main"}],
        "git": {"mirror_dir": str(tmp_path / "mirrors"), "import_window": "30d"},
    }))
    clock = Clock(remote.clock)
    app = bootstrap.build(load_settings(config), notifier=RecordingNotifier(), clock=clock,
                          work_executor=InlineExecutor())
    with TestClient(app.http) as client:
        yield World(remote, app, client, clock, init)
    app.close()


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    with built_world(tmp_path) as built:
        yield built


def flux_body(name: str, *, sha: str, at: datetime, revision: str | None = None, **changes: Any) -> bytes:
    event = json.loads((FIXTURES / "flux" / f"{name}.json").read_text())
    for key, value in event["metadata"].items():
        event["metadata"][key] = value.replace(FIXTURE_SHA, sha) if revision is None else revision
    event["timestamp"] = at.strftime("%Y-%m-%dT%H:%M:%SZ")
    event.update(changes)
    return json.dumps(event).encode()


def post_flux(world: World, body: bytes, *, key: str = KEY, headers: dict[str, str] | None = None):  # type: ignore[no-untyped-def]
    signature = "sha256=" + hmac.new(key.encode(), body, hashlib.sha256).hexdigest()
    return world.client.post("/webhooks/flux", content=body, headers={
        "Content-Type": "application/json", "X-Signature": signature, **(headers or {})})


def open_alert(world: World, at: datetime) -> None:
    alert = ReceivedAlert(fingerprint="f1", starts_at=at, ends_at=None, status=AlertStatus.FIRING,
                          labels={"alertname": "HighErrorRate", "service": "checkout"}, annotations={})
    ingest_delivery(store=world.app.ctx.store, playbooks=world.app.ctx.playbooks, now=at,
                    policy=world.app.ctx.settings.incidents,
                    delivery=Delivery(group_key="g", status=AlertStatus.FIRING, alerts=(alert,)))


def rank(world: World, at: datetime) -> Any:
    ctx = world.app.ctx
    return investigate(store=ctx.store, git=ctx.git, notifier=ctx.notifier, playbooks=ctx.playbooks,
                       incident_id=1, now=at, import_window=timedelta(days=30))


def test_a_flux_success_moves_applied_times_and_changes_the_ranking(world: World) -> None:
    """By commit time the config change is the newer suspect; Flux says both were applied together
    four minutes before the alert, so the image bump, the stronger effect, comes first."""
    start = world.remote.clock
    assert post_flux(world, flux_body("kustomization-succeeded", sha=world.init,
                                      at=start + timedelta(minutes=1))).status_code == 202
    bump = world.remote.commit("checkout 1.1", {"apps/checkout/deploy.yaml": DEPLOY.format(tag="1.1", replicas=2)})
    config = world.remote.commit("checkout: 3 replicas",
                                 {"apps/checkout/deploy.yaml": DEPLOY.format(tag="1.1", replicas=3)}, minutes=50)
    alert_at = world.remote.clock + timedelta(minutes=8)
    open_alert(world, alert_at)
    before = rank(world, alert_at)
    assert before.top is not None
    assert before.top.sha == config

    applied_at = alert_at - timedelta(minutes=4)
    answer = post_flux(world, flux_body("kustomization-succeeded", sha=config, at=applied_at))
    assert answer.status_code == 202, answer.text
    assert (answer.json()["applied"], answer.json()["sha"]) == (2, config)
    after = rank(world, alert_at)
    assert [s.sha for s in after.suspects[:2]] == [bump, config]
    top = after.suspects[0]
    assert (top.applied_at, top.applied_source.value) == (applied_at, "flux")
    assert top.reasons[0].startswith(
        f"applied by Flux Kustomization flux-system/apps at {applied_at:%H:%M:%S} UTC, 4m before")


def test_a_flux_failure_opens_an_incident_whose_top_suspect_is_the_failed_change(world: World) -> None:
    """ValidationFailed at X: the changes since the last good revision are the suspects, X's own
    service change first; the next success resolves the incident."""
    start = world.remote.clock
    post_flux(world, flux_body("kustomization-succeeded", sha=world.init, at=start + timedelta(minutes=1)))
    bad = world.remote.commit("checkout: expose through an ingress type",
                              {"apps/checkout/service.yaml": SERVICE.format(kind="Ingress")})
    docs = world.remote.commit("docs", {"README.md": "y\n"}, minutes=1)
    failed_at = world.remote.clock + timedelta(minutes=1)
    world.clock.now = failed_at
    answer = post_flux(world, flux_body("kustomization-validation-failed", sha=docs, at=failed_at))
    assert answer.status_code == 202, answer.text
    assert answer.json()["incidents"] == ["INC-1"]
    incident = world.client.get("/api/incidents/INC-1").json()
    assert (incident["service"], incident["status"]) == ("checkout", "open")
    assert incident["timeline"][0]["actor"] == "controller"
    suspects = world.client.get("/api/incidents/INC-1/suspects").json()
    assert suspects["suspects"][0]["sha"] == bad
    assert suspects["suspects"][0]["reasons"][0].startswith(
        f"revision {docs[:7]} failed to apply (Flux Kustomization flux-system/apps, ValidationFailed at")
    assert "Unsupported value" in suspects["suspects"][0]["reasons"][0]
    assert suspects["confident"] is True, suspects["reason"]
    assert "not among the changes Flux Kustomization flux-system/apps failed to apply" in \
        " ".join(suspects["suspects"][1]["reasons"])

    again = post_flux(world, flux_body("kustomization-validation-failed", sha=docs, at=failed_at))
    assert (again.status_code, again.json()["status"]) == (200, "duplicate")
    fixed = world.remote.commit("checkout: back to ClusterIP", {"apps/checkout/service.yaml": SERVICE.format(
        kind="ClusterIP")})
    world.clock.now = world.remote.clock + timedelta(minutes=1)
    # Flux sees the fix before Backout's next refresh: the unknown revision refreshes the mirror.
    done = post_flux(world, flux_body("kustomization-succeeded", sha=fixed, at=world.clock.now))
    assert (done.status_code, done.json()["sha"]) == (202, fixed)
    incident = world.client.get("/api/incidents/INC-1").json()
    assert incident["status"] == "resolved"
    kinds = [e["kind"] for e in incident["timeline"]]
    assert "alert.resolved" in kinds


def test_a_health_check_failure_after_apply_names_the_revision_itself(world: World) -> None:
    """Progressing applied X, then its health check failed: X is the suspect."""
    start = world.remote.clock
    post_flux(world, flux_body("kustomization-succeeded", sha=world.init, at=start + timedelta(minutes=1)))
    bump = world.remote.commit("checkout 2.0", {"apps/checkout/deploy.yaml": DEPLOY.format(tag="2.0", replicas=2)})
    at = world.remote.clock + timedelta(minutes=1)
    assert post_flux(world, flux_body("kustomization-progressing", sha=bump, at=at)).json()["applied"] == 1
    world.clock.now = at + timedelta(minutes=5)
    failed = post_flux(world, flux_body("kustomization-health-failed", sha=bump, at=world.clock.now))
    assert failed.json()["incidents"] == ["INC-1"]
    top = world.client.get("/api/incidents/INC-1/suspects").json()["suspects"][0]
    assert top["sha"] == bump
    assert "HealthCheckFailed" in top["reasons"][0]


def test_flux_signatures_bodies_and_unknown_revisions(world: World) -> None:
    """Wrong or missing signatures are 401; a bad body is 422 with the field path; a revision no
    watched repository has is accepted and said so; never a 5xx."""
    body = flux_body("kustomization-succeeded", sha=world.init, at=world.remote.clock)
    assert post_flux(world, body, key="wrong").status_code == 401
    unsigned = world.client.post("/webhooks/flux", content=body, headers={"Content-Type": "application/json"})
    assert unsigned.status_code == 401
    assert "X-Signature" in unsigned.json()["detail"]
    broken = json.loads(body)
    del broken["involvedObject"]["name"]
    answer = post_flux(world, json.dumps(broken).encode())
    assert answer.status_code == 422
    assert answer.json()["detail"][0]["loc"] == "involvedObject.name"
    assert post_flux(world, b'{"involvedObject": ').status_code == 400
    stranger = post_flux(world, flux_body("kustomization-succeeded", sha="ab" * 20, at=world.remote.clock))
    assert stranger.status_code == 202
    assert "in none of the watched repositories" in stranger.json()["detail"]
    helm = post_flux(world, flux_body("helmrelease-upgrade-succeeded", sha=world.init, at=world.remote.clock,
                                      revision="6.5.4"))
    assert helm.status_code == 202
    assert "names no Git commit" in helm.json()["detail"]


def argo_body(event: str, fixture: str, *, sha: str, at: datetime, started: datetime | None = None,
              healthy: datetime | None = None) -> bytes:
    application = json.loads((FIXTURES / "argocd" / f"{fixture}.json").read_text().replace(FIXTURE_SHA, sha))
    application["status"]["operationState"]["finishedAt"] = at.strftime("%Y-%m-%dT%H:%M:%SZ")
    application["status"]["operationState"]["startedAt"] = (started or at).strftime("%Y-%m-%dT%H:%M:%SZ")
    if healthy is not None:
        application["status"]["health"]["lastTransitionTime"] = healthy.strftime("%Y-%m-%dT%H:%M:%SZ")
    return render(template_body(f"backout-{event}"), application).encode()


def post_argo(world: World, body: bytes, token: str = ARGO_TOKEN):  # type: ignore[no-untyped-def]
    return world.client.post("/webhooks/argocd", content=body, headers={
        "Content-Type": "application/json", "Authorization": f"Bearer {token}"})


def test_argocd_notifications_from_the_shipped_templates(world: World) -> None:
    """The shipped templates' output: deployed sets the applied time, sync-failed opens the
    incident on the failed revision; a wrong token is 401."""
    start = world.remote.clock
    assert post_argo(world, argo_body("deployed", "application-synced", sha=world.init,
                                      at=start + timedelta(minutes=1))).status_code == 202
    bump = world.remote.commit("checkout 1.2", {"apps/checkout/deploy.yaml": DEPLOY.format(tag="1.2", replicas=2)})
    at = world.remote.clock + timedelta(minutes=3)
    deployed = post_argo(world, argo_body("deployed", "application-synced", sha=bump, at=at))
    assert (deployed.status_code, deployed.json()["applied"]) == (202, 1)
    change = world.app.ctx.store.run(lambda tx: tx.changes.find("gitops", bump))[0]
    assert (change.applied_at, change.applied_by) == (at, "Argo CD Application argocd/checkout")

    bad = world.remote.commit("checkout: drop the image", {"apps/checkout/deploy.yaml": DEPLOY.format(
        tag="", replicas=2)})
    world.clock.now = world.remote.clock + timedelta(minutes=2)
    failed = post_argo(world, argo_body("sync-failed", "application-sync-failed", sha=bad, at=world.clock.now))
    assert failed.json()["incidents"] == ["INC-1"]
    top = world.client.get("/api/incidents/INC-1/suspects").json()["suspects"][0]
    assert top["sha"] == bad
    assert "SyncFailed" in top["reasons"][0]
    assert "Required value" in top["reasons"][0]
    assert post_argo(world, argo_body("deployed", "application-synced", sha=bump, at=at),
                     token="nope").status_code == 401


def test_build_notices_need_an_api_token_and_a_known_repository(world: World, tmp_path: Path) -> None:
    """`/webhooks/build` records image -> commit; unknown repositories and bad shas are 422."""
    ok = world.client.post("/webhooks/build", json={"image": "registry.example.com/checkout:1.2", "tag": "1.2",
                                                    "repo": "gitops", "sha": world.init})
    assert ok.status_code == 202
    assert ok.json()["image"] == "registry.example.com/checkout"
    build = world.app.ctx.store.run(lambda tx: tx.gitops.build("registry.example.com/checkout", "1.2"))
    assert build is not None
    assert build.sha == world.init
    unknown = world.client.post("/webhooks/build", json={"image": "x", "tag": "1", "repo": "nope", "sha": "abcdef1"})
    assert (unknown.status_code, unknown.json()["detail"][0]["loc"]) == (422, "repo")
    assert world.client.post("/webhooks/build", json={"image": "x", "tag": "1", "repo": "gitops",
                                                      "sha": "zz"}).status_code == 422


def test_parse_revision_forms() -> None:
    from bot.domain.gitops import parse_revision

    sha = "731f7eaddfb6af01cb2173e18f0f75b0ba780ef1"
    assert parse_revision(f"main@sha1:{sha}") == sha
    assert parse_revision(f"main/{sha}") == sha
    assert parse_revision(f"sha1:{sha}") == sha
    assert parse_revision(f"refs/heads/release/1.x@sha1:{sha}") == sha
    assert parse_revision("6.5.4+731f7eaddfb6") == "731f7eaddfb6"
    assert parse_revision("6.5.4") is None
    assert parse_revision("latest@sha256:" + "a" * 64) is None
    assert parse_revision(sha.upper()) == sha


def test_when_flux_events_arrive_out_of_order_the_older_one_changes_no_state(world: World) -> None:
    """A late event for an older revision does not move the object back."""
    start = world.remote.clock
    bump = world.remote.commit("checkout 1.1", {"apps/checkout/deploy.yaml": DEPLOY.format(tag="1.1", replicas=2)})
    post_flux(world, flux_body("kustomization-succeeded", sha=bump, at=start + timedelta(minutes=30)))
    post_flux(world, flux_body("kustomization-succeeded", sha=world.init, at=start + timedelta(minutes=5)))
    state = world.app.ctx.store.run(lambda tx: tx.gitops.object("flux:Kustomization/flux-system/apps"))
    assert state is not None
    assert state.applied_sha == bump
    assert state.applied_at == (start + timedelta(minutes=30)).astimezone(UTC)


def test_the_shipped_flux_manifests_are_the_real_kinds() -> None:
    """deploy/flux/notification.yaml: a generic-hmac Provider at /webhooks/flux, an Alert that
    sends successes and failures, and the Secret whose `token` is the HMAC key."""
    root = Path(__file__).resolve().parents[2]
    docs = {d["kind"]: d for d in yaml.safe_load_all((root / "deploy" / "flux" / "notification.yaml").read_text())}
    assert docs["Provider"]["apiVersion"] == "notification.toolkit.fluxcd.io/v1beta3"
    assert docs["Provider"]["spec"]["type"] == "generic-hmac"
    assert docs["Provider"]["spec"]["address"].endswith("/webhooks/flux")
    assert docs["Provider"]["spec"]["secretRef"]["name"] == docs["Secret"]["metadata"]["name"]
    assert "token" in docs["Secret"]["stringData"]
    assert docs["Alert"]["spec"]["eventSeverity"] == "info"
    assert {s["kind"] for s in docs["Alert"]["spec"]["eventSources"]} == {"Kustomization", "HelmRelease"}


def test_controller_events_are_counted(world: World) -> None:
    post_flux(world, flux_body("kustomization-succeeded", sha=world.init, at=world.remote.clock))
    post_flux(world, b"{}", key="wrong")
    metrics = world.client.get("/metrics").text
    assert 'backout_controller_events_total{controller="flux",outcome="applied"} 1.0' in metrics
    assert 'backout_controller_events_total{controller="flux",outcome="unauthorized"} 1.0' in metrics


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=20)
FLUX_FIELDS = st.fixed_dictionaries({}, optional={
    "involvedObject": JSON | st.fixed_dictionaries({"kind": st.text(max_size=300), "name": st.text(max_size=300)}),
    "severity": st.sampled_from(["info", "error", "trace", "warning", ""]) | JSON,
    "timestamp": st.sampled_from(["2026-11-30T12:03:07Z", "yesterday", "2026-11-30T12:03:07"]) | JSON,
    "reason": st.sampled_from(["ReconciliationSucceeded", "ValidationFailed", ""]) | JSON,
    "reportingController": st.text(max_size=30) | JSON,
    "metadata": st.dictionaries(st.text(max_size=40), st.text(max_size=80), max_size=3) | JSON,
    "message": st.text(max_size=200) | JSON,
})


@settings(max_examples=int(os.environ.get("FUZZ_EXAMPLES", "300")) // 3, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=FLUX_FIELDS)
def test_no_flux_body_gets_a_5xx(world: World, body: dict[str, Any]) -> None:
    """Signed bodies of every shape: 202 or 200, or a 4xx naming the field; never a 5xx."""
    answer = post_flux(world, json.dumps(body).encode())
    assert answer.status_code in (200, 202, 400, 422), answer.text


def test_an_unreachable_repository_still_gets_the_event_counted(
    build: Any, make_settings: Any, fake_git: Any,
) -> None:
    """The Git host is down when Flux reports: the event is accepted (202) and says why it moved no
    time; Flux would not send it again, so a 5xx would only lose it."""
    from bot.config import FluxSettings

    fake_git.unreachable.add("gitops")
    app = build(make_settings(flux=FluxSettings(hmac_key=KEY)))
    with TestClient(app.http) as client:
        world = World(remote=None, app=app, client=client, clock=None, init="")  # type: ignore[arg-type]
        answer = post_flux(world, flux_body("kustomization-validation-failed", sha="ab" * 20,
                                            at=datetime.now(UTC)))
    assert answer.status_code == 202
    assert answer.json()["outcome"] == "failed"
    assert "none of the watched repositories" in answer.json()["detail"]


class Deferred(Executor):
    """Keeps the work it is given without running it."""

    def __init__(self) -> None:
        self.jobs: list[Callable[[], Any]] = []

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        self.jobs.append(fn)
        done: Future[Any] = Future()
        done.set_result(None)
        return done


def test_a_burst_of_flux_events_is_recorded_whole_in_a_few_transactions(world: World) -> None:
    """Events that arrive while one is written are recorded together: every event of the burst is
    stored and answered, each object ends at its newest revision, in far fewer transactions, and
    the re-ranking they ask for is queued once, not once an event."""
    shas = [world.remote.commit(f"checkout 1.{n}", {"apps/checkout/deploy.yaml": DEPLOY.format(tag=f"1.{n}",
                                                                                              replicas=2)})
            for n in range(1, 7)]
    start = world.remote.clock
    bodies = [flux_body("kustomization-succeeded", sha=sha, at=start + timedelta(minutes=n),
                        involvedObject={"kind": "Kustomization", "namespace": "flux-system", "name": f"apps-{o}"})
              for n, sha in enumerate(shas) for o in range(5)]
    ctx = world.app.ctx
    store = GatedStore(ctx.store)
    later = Deferred()
    app = bootstrap.build(ctx.settings, store=store, clock=world.clock, notifier=RecordingNotifier(),
                          work_executor=later)
    answers: list[int] = []
    with serve_in_thread(app.http) as base:
        def send(body: bytes) -> None:
            signature = "sha256=" + hmac.new(KEY.encode(), body, hashlib.sha256).hexdigest()
            answers.append(httpx.post(f"{base}/webhooks/flux", content=body, timeout=60, headers={
                "Content-Type": "application/json", "X-Signature": signature}).status_code)

        senders = [threading.Thread(target=send, args=(body,)) for body in bodies]
        for sender in senders:
            sender.start()
        store.wait_for(1)  # the writer holds the first batch at the gate; the others queue behind it
        deadline = time.monotonic() + 60
        while app.ctx.controller_queue.waiting < len(bodies) and time.monotonic() < deadline:
            time.sleep(0.01)
        store.gate.set()
        for sender in senders:
            sender.join()
    app.close()
    assert answers == [202] * len(bodies)
    assert store.calls < len(bodies) / 2  # one transaction an event would be 2 x 30
    assert len(later.jobs) == 2  # one re-ranking of the repository, one lifecycle pass
    objects = ctx.store.run(lambda tx: [tx.gitops.object(f"flux:Kustomization/flux-system/apps-{o}")
                                        for o in range(5)])
    assert [state.applied_sha if state else None for state in objects] == [shas[-1]] * 5
    assert world.app.engine is not None
    with world.app.engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM controller_events")).scalar() == len(bodies)


def test_a_failure_whose_alert_could_not_be_filed_is_answered_503_and_filed_when_flux_sends_it_again(
        world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    """The event is stored in one transaction and its alert filed in the next: if the second fails,
    Flux is told to send it again (503, not a 500 after the event was kept), and the copy, a
    duplicate event, still files the failure's alert while the failure is open."""
    start = world.remote.clock
    post_flux(world, flux_body("kustomization-succeeded", sha=world.init, at=start + timedelta(minutes=1)))
    bad = world.remote.commit("checkout: expose through an ingress type",
                              {"apps/checkout/service.yaml": SERVICE.format(kind="Ingress")})
    failed_at = world.remote.clock + timedelta(minutes=1)
    world.clock.now = failed_at
    queue = world.app.ctx.ingest_queue
    real = queue.submit
    calls = []

    async def down_once(delivery: Delivery) -> Any:
        calls.append(delivery)
        if len(calls) == 1:
            raise StorageUnavailable("database is locked")
        return await real(delivery)

    monkeypatch.setattr(queue, "submit", down_once)
    body = flux_body("kustomization-validation-failed", sha=bad, at=failed_at)
    first = post_flux(world, body)
    assert first.status_code == 503, first.text
    assert world.client.get("/api/incidents").json()["incidents"] == []
    again = post_flux(world, body)
    assert (again.status_code, again.json()["status"]) == (200, "duplicate")
    assert again.json()["incidents"] == ["INC-1"]
    assert world.client.get("/api/incidents/INC-1/suspects").json()["suspects"][0]["sha"] == bad
    post_flux(world, body)  # filed again while open: ingest keeps one incident
    assert len(world.client.get("/api/incidents").json()["incidents"]) == 1
