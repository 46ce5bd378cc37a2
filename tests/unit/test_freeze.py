"""Freezing in Git, as text: the service's own lines only, each change stamped, refusals said,
and an unfreeze that gives back the frozen files byte for byte."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from bot.domain.freeze import Scope, Stamp, plan_freeze, plan_unfreeze
from bot.domain.gitops import ArgoApp, FluxObject

AT = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)
STAMP = Stamp("INC-7", "U1", AT, AT + timedelta(hours=24))
CHECKOUT = ('apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: checkout\nspec:\n  template:\n'
            '    spec:\n      containers:\n      - name: checkout\n'
            '        image: registry.example.com/checkout:1.2.3 # {"$imagepolicy": "flux-system:checkout"}\n')
PAYMENTS = CHECKOUT.replace("checkout", "payments")
IMAGES = """apiVersion: image.toolkit.fluxcd.io/v1beta2
kind: ImageRepository
metadata:
  name: checkout
  namespace: flux-system
spec:
  image: registry.example.com/checkout
  interval: 1m
---
apiVersion: image.toolkit.fluxcd.io/v1beta2
kind: ImagePolicy
metadata:
  name: checkout
  namespace: flux-system
spec:
  imageRepositoryRef:
    name: checkout
  policy:
    semver:
      range: 1.x
---
apiVersion: image.toolkit.fluxcd.io/v1beta2
kind: ImagePolicy
metadata:
  name: payments
  namespace: flux-system
spec:
  imageRepositoryRef:
    name: {repo}
"""
KUSTOMIZATION = """apiVersion: kustomize.toolkit.fluxcd.io/v1
kind: Kustomization
metadata:
  name: checkout
  namespace: flux-system
spec:
  interval: 5m
  path: ./apps/checkout
"""
APPLICATION = """apiVersion: argoproj.io/v1alpha1
kind: Application
metadata:
  name: checkout
  namespace: argocd
  annotations:
    argocd-image-updater.argoproj.io/image-list: app=registry.example.com/checkout:~1
    argocd-image-updater.argoproj.io/write-back-method: git
spec:
  project: default
  syncPolicy:
    automated:
      prune: true
      selfHeal: true
    syncOptions:
    - CreateNamespace=true
"""
APPSET = """apiVersion: argoproj.io/v1alpha1
kind: ApplicationSet
metadata:
  name: apps
spec:
  generators:
  - git:
      directories:
      - path: apps/*
  template:
    metadata:
      name: '{{path.basename}}'
    spec:
      project: default
"""


def flux_files(shared: bool) -> dict[str, str]:
    return {"apps/checkout/deploy.yaml": CHECKOUT, "apps/payments/deploy.yaml": PAYMENTS,
            "clusters/prod/images.yaml": IMAGES.format(repo="checkout" if shared else "payments"),
            "clusters/prod/checkout.yaml": KUSTOMIZATION}


def changed_lines(before: str, after: str) -> tuple[list[str], list[str]]:
    old, new = before.splitlines(), after.splitlines()
    return [line for line in old if line not in new], [line for line in new if line not in old]


def test_setter_markers_are_removed_on_the_service_lines_only() -> None:
    """The marker goes from checkout's image line, stamped; payments' line is untouched."""
    plan = plan_freeze(flux_files(shared=True), Scope(paths=("apps/checkout/**",)), STAMP)
    assert "apps/payments/deploy.yaml" not in plan.files
    gone, added = changed_lines(CHECKOUT, plan.files["apps/checkout/deploy.yaml"])
    assert gone == [CHECKOUT.splitlines()[-1]]
    assert added[1] == "        image: registry.example.com/checkout:1.2.3"
    assert added[0].startswith("        # backout-freeze INC-7: ") and "by U1 at 2030-01-01T12:00Z" in added[0]
    assert "expires 2030-01-02T12:00Z" in added[0] and "$imagepolicy" not in added[0]


def test_an_image_repository_only_the_service_uses_is_suspended() -> None:
    """checkout's own ImageRepository gets `suspend: true` under spec, nothing else in the file moves."""
    files = flux_files(shared=False)
    plan = plan_freeze(files, Scope(paths=("apps/checkout/**",)), STAMP)
    gone, added = changed_lines(files["clusters/prod/images.yaml"], plan.files["clusters/prod/images.yaml"])
    assert gone == []
    assert added[1] == "  suspend: true" and "backout-freeze INC-7" in added[0]
    assert not plan.notes


def test_a_shared_image_repository_is_not_suspended_and_says_why() -> None:
    """Used by payments too: left alone, with the reason."""
    plan = plan_freeze(flux_files(shared=True), Scope(paths=("apps/checkout/**",)), STAMP)
    assert "clusters/prod/images.yaml" not in plan.files
    [note] = plan.notes
    assert "flux-system/checkout is not suspended" in note and "apps/payments/deploy.yaml" in note


def test_reconcile_disabled_only_when_asked_and_never_on_flux_system() -> None:
    """Flux's reconcile: disabled is added on request, with its warning; flux-system is refused."""
    files = flux_files(shared=True)
    checkout = FluxObject(kind="Kustomization", name="checkout")
    system = FluxObject(kind="Kustomization", name="flux-system")
    unasked = plan_freeze(files, Scope(paths=("apps/checkout/**",), flux=(checkout,)), STAMP)
    assert "clusters/prod/checkout.yaml" not in unasked.files
    asked = plan_freeze(files, Scope(paths=("apps/checkout/**",), flux=(checkout, system),
                                     reconcile_disabled=True), STAMP)
    text = asked.files["clusters/prod/checkout.yaml"]
    assert "  annotations:\n    kustomize.toolkit.fluxcd.io/reconcile: disabled\n" in text
    assert any("blocks every later change" in e.what for e in asked.edits)
    assert any("flux-system is Flux itself" in n for n in asked.notes)


def test_argo_application_loses_automated_sync_and_ignores_every_tag() -> None:
    """syncPolicy.automated removed (syncOptions kept), ignore-tags "*" added under its alias."""
    files = {"argocd/checkout.yaml": APPLICATION}
    plan = plan_freeze(files, Scope(paths=("apps/checkout/**",), argocd=(ArgoApp(app="checkout"),)), STAMP)
    text = plan.files["argocd/checkout.yaml"]
    live = [line for line in text.splitlines() if not line.lstrip().startswith("#")]
    assert not [line for line in live if "automated" in line or "selfHeal" in line]
    assert "    - CreateNamespace=true\n" in text
    assert '    argocd-image-updater.argoproj.io/app.ignore-tags: "*"\n' in text
    assert any("argocd app set checkout --sync-policy none" in e.what for e in plan.edits)


def test_an_application_set_generated_app_is_refused() -> None:
    """An Application an ApplicationSet generates is not frozen, and the note says why."""
    files = {"argocd/apps.yaml": APPSET}
    plan = plan_freeze(files, Scope(paths=("apps/checkout/**",), argocd=(ArgoApp(app="checkout"),)), STAMP)
    assert plan.edits == () and plan.files == {}
    [note] = plan.notes
    assert "generated by ApplicationSet apps" in note and "rewrites" in note


def test_an_application_outside_the_repository_gets_the_command() -> None:
    """No manifest: the note shows the argocd command to run."""
    plan = plan_freeze({}, Scope(paths=("apps/**",), argocd=(ArgoApp(app="checkout"),)), STAMP)
    assert plan.notes == ("Application checkout has no manifest in this repository: run "
                          "`argocd app set checkout --sync-policy none` to stop its automated sync",)


def test_unfreeze_gives_back_the_frozen_files_byte_for_byte() -> None:
    """Freeze then unfreeze: every file as it was, even with a later unrelated change in it."""
    files = {**flux_files(shared=False), "argocd/checkout.yaml": APPLICATION.replace("\n", "\r\n")}
    scope = Scope(paths=("apps/checkout/**",), flux=(FluxObject(name="checkout"),),
                  argocd=(ArgoApp(app="checkout"),), reconcile_disabled=True)
    plan = plan_freeze(files, scope, STAMP)
    assert set(plan.files) == {"apps/checkout/deploy.yaml", "clusters/prod/images.yaml",
                               "clusters/prod/checkout.yaml", "argocd/checkout.yaml"}
    later = {**files, **plan.files}
    later["clusters/prod/checkout.yaml"] += "  prune: true\n"
    undone, missing = plan_unfreeze(later, plan.edits)
    assert missing == []
    for path in plan.files:
        expected = files[path] + ("  prune: true\n" if path == "clusters/prod/checkout.yaml" else "")
        assert undone[path] == expected, path


def test_unfreeze_names_an_edit_changed_since() -> None:
    """A frozen line someone edited is left alone and named."""
    files = flux_files(shared=True)
    plan = plan_freeze(files, Scope(paths=("apps/checkout/**",)), STAMP)
    edited = {**files, "apps/checkout/deploy.yaml": plan.files["apps/checkout/deploy.yaml"].replace("1.2.3", "1.2.4")}
    undone, missing = plan_unfreeze(edited, plan.edits)
    assert undone == {} and "changed since" in missing[0]
