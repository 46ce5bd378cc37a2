"""The git adapter's restore on real repositories: the service's paths put back to a good revision
byte for byte (files changed, added and deleted since), nothing else changed, pins against image
automation, adoption, a refused push."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.domain.errors import Conflict, UpstreamError
from tests.gitrepos import Remote, git, mirrors

DEPLOY = "image: registry.example.com/checkout:{tag}\nreplicas: {replicas}\n"
ARGO_APP = """apiVersion: argoproj.io/v1alpha1
kind: Application
metadata:
  name: checkout
spec:
  source: {{path: apps/checkout}}
  syncPolicy: {{automated: {{prune: true}}}}
# {note}
"""
FLUX_DEPLOY = ("spec:\n  containers:\n  - name: checkout\n"
               '    image: registry.example.com/checkout:{tag} # {{"$imagepolicy": "flux-system:checkout"}}\n')
UPDATED_APP = """apiVersion: argoproj.io/v1alpha1
kind: Application
metadata:
  name: checkout
  namespace: argocd
  annotations:
    argocd-image-updater.argoproj.io/image-list: app=registry.example.com/checkout:~1
    argocd-image-updater.argoproj.io/write-back-method: git
spec:
  project: default
  source: {path: apps/checkout}
  syncPolicy: {automated: {prune: true}}
"""
WRITE_BACK = "kustomize:\n  images:\n  - registry.example.com/checkout:{tag}\n"
SERVICE = ("apps/checkout/**",)
SHARED = ("infrastructure/**",)


def ls_tree(remote: Remote, rev: str, prefix: str) -> list[str]:
    """`git ls-tree -r` of `rev` (mode, type, object id and path of every file) under `prefix`."""
    return [line for line in git("ls-tree", "-r", "--full-tree", rev, cwd=remote.bare).splitlines()
            if line.split("\t", 1)[1].startswith(prefix)]


@pytest.fixture
def argo(tmp_path: Path) -> tuple[Remote, str]:
    """An Argo CD layout: a good revision, then changes to the service, another service and shared paths."""
    remote = Remote(tmp_path / "gitops")
    good = remote.commit("Initial layout", {
        "apps/checkout/deploy.yaml": DEPLOY.format(tag="1.0", replicas=3),
        "apps/checkout/old-config.yaml": "feature: on\n",
        "apps/checkout/application.yaml": ARGO_APP.format(note="v1"),
        "apps/payments/deploy.yaml": DEPLOY.format(tag="2.0", replicas=2),
        "infrastructure/ingress.yaml": "class: nginx\n"})
    remote.commit("checkout: bump to 1.1", {"apps/checkout/deploy.yaml": DEPLOY.format(tag="1.1", replicas=3)})
    remote.commit("checkout: new sidecar, drop old config", {
        "apps/checkout/sidecar.yaml": "sidecar: envoy\n", "apps/checkout/old-config.yaml": None,
        "apps/checkout/application.yaml": ARGO_APP.format(note="v2")})
    remote.commit("payments: scale up", {"apps/payments/deploy.yaml": DEPLOY.format(tag="2.0", replicas=6)})
    remote.commit("ingress: new class", {"infrastructure/ingress.yaml": "class: traefik\n"})
    git("update-index", "--chmod=+x", "apps/checkout/deploy.yaml", cwd=remote.work)
    git("commit", "--quiet", "-m", "checkout: executable by mistake", cwd=remote.work)
    remote.push()
    return remote, good


def test_the_restore_puts_the_service_paths_back_byte_for_byte_and_nothing_else(
    tmp_path: Path, argo: tuple[Remote, str],
) -> None:
    """One commit on the branch's head: the service's tree equals the good revision's (contents,
    modes, a file deleted since back, one added since gone); other services and shared paths as at head."""
    remote, good = argo
    result = mirrors(tmp_path, {"gitops": remote}).push_restore(
        "gitops", good_sha=good, paths=SERVICE, exclude=SHARED, branch="backout/INC-1/restore-" + good[:7],
        message="Restore checkout")
    assert result.pushed_sha is not None
    assert not result.adopted
    branch = "backout/INC-1/restore-" + good[:7]
    assert git("rev-parse", f"{branch}^", cwd=remote.bare) == git("rev-parse", "main", cwd=remote.bare)
    assert ls_tree(remote, branch, "apps/checkout/") == ls_tree(remote, good, "apps/checkout/")
    assert ls_tree(remote, branch, "apps/payments/") == ls_tree(remote, "main", "apps/payments/")
    assert ls_tree(remote, branch, "infrastructure/") == ls_tree(remote, "main", "infrastructure/")
    changed = git("diff", "--name-only", "main", branch, cwd=remote.bare).splitlines()
    assert changed == ["apps/checkout/application.yaml", "apps/checkout/deploy.yaml",
                       "apps/checkout/old-config.yaml", "apps/checkout/sidecar.yaml"]


def test_a_shared_path_is_restored_only_when_named(tmp_path: Path, argo: tuple[Remote, str]) -> None:
    """Paths `**` with shared `infrastructure/**` excluded leave the ingress alone; naming it restores it."""
    remote, good = argo
    repos = mirrors(tmp_path, {"gitops": remote})
    repos.push_restore("gitops", good_sha=good, paths=("**",), exclude=SHARED, branch="backout/INC-1/restore-a",
                       message="r")
    assert ls_tree(remote, "backout/INC-1/restore-a", "infrastructure/") == ls_tree(remote, "main", "infrastructure/")
    repos.push_restore("gitops", good_sha=good, paths=("**",), exclude=(), branch="backout/INC-1/restore-b",
                       message="r")
    assert ls_tree(remote, "backout/INC-1/restore-b", "") == ls_tree(remote, good, "")


def test_a_restore_is_pinned_against_flux_image_automation(tmp_path: Path) -> None:
    """The restored image line loses its setter marker (as a revert's does); the rest is the good content."""
    remote = Remote(tmp_path / "gitops")
    good = remote.commit("checkout 1.0", {"apps/checkout/deploy.yaml": FLUX_DEPLOY.format(tag="1.0")})
    remote.commit("checkout 1.1 (automation)", {"apps/checkout/deploy.yaml": FLUX_DEPLOY.format(tag="1.1")})
    result = mirrors(tmp_path, {"gitops": remote}).push_restore(
        "gitops", good_sha=good, paths=SERVICE, exclude=(), branch="backout/INC-2/restore-x", message="r")
    assert result.pinned
    assert "imagepolicy" in result.pinned[0]
    restored = git("show", "backout/INC-2/restore-x:apps/checkout/deploy.yaml", cwd=remote.bare)
    assert "checkout:1.0" in restored
    assert "$imagepolicy" not in restored
    assert "Pinned against image automation" in git("log", "-1", "--format=%B", "backout/INC-2/restore-x",
                                                    cwd=remote.bare)


def test_a_restore_run_again_adopts_its_branch(tmp_path: Path, argo: tuple[Remote, str]) -> None:
    """The branch already on the remote (a crash after the push) is adopted as it is: one branch."""
    remote, good = argo
    repos = mirrors(tmp_path, {"gitops": remote})
    first = repos.push_restore("gitops", good_sha=good, paths=SERVICE, exclude=SHARED, branch="backout/INC-1/restore-c",
                               message="r")
    again = repos.push_restore("gitops", good_sha=good, paths=SERVICE, exclude=SHARED, branch="backout/INC-1/restore-c",
                               message="r")
    assert again.adopted
    assert again.pushed_sha == first.pushed_sha
    assert remote.branches() == ["backout/INC-1/restore-c", "main"]


def test_nothing_to_restore_is_a_conflict_and_pushes_nothing(tmp_path: Path, argo: tuple[Remote, str]) -> None:
    """Paths already as at the good revision: Conflict, no branch."""
    remote, _good = argo
    head = git("rev-parse", "main", cwd=remote.bare)
    with pytest.raises(Conflict, match="nothing to restore"):
        mirrors(tmp_path, {"gitops": remote}).push_restore(
            "gitops", good_sha=head, paths=SERVICE, exclude=(), branch="backout/INC-1/restore-d", message="r")
    assert remote.branches() == ["main"]


def test_a_restore_refused_by_branch_protection_says_which_rule(tmp_path: Path, argo: tuple[Remote, str]) -> None:
    """A pre-receive hook's refusal comes back as an error in the hook's words."""
    remote, good = argo
    hook = remote.bare / "hooks" / "pre-receive"
    hook.write_text("#!/bin/sh\nwhile read old new ref; do case $ref in refs/heads/backout/*)\n"
                    "echo 'GH006: Protected branch rule backout/** requires signed commits' >&2; exit 1;; "
                    "esac; done\n")
    hook.chmod(0o755)
    with pytest.raises(UpstreamError, match="Protected branch rule backout/\\*\\* requires signed commits"):
        mirrors(tmp_path, {"gitops": remote}).push_restore(
            "gitops", good_sha=good, paths=SERVICE, exclude=(), branch="backout/INC-1/restore-e", message="r")


def test_a_restore_is_pinned_against_argocd_image_updater(tmp_path: Path) -> None:
    """The write-back file goes back to the good tag; the tag it undoes joins the Application's
    ignore-tags, so argocd-image-updater does not write it back; the rest is the good tree."""
    remote = Remote(tmp_path / "gitops")
    good = remote.commit("checkout 1.0", {"apps/checkout/application.yaml": UPDATED_APP,
                                          "apps/checkout/.argocd-source-checkout.yaml": WRITE_BACK.format(tag="1.0")})
    remote.commit("build: automatic update of checkout",
                  {"apps/checkout/.argocd-source-checkout.yaml": WRITE_BACK.format(tag="1.1")})
    result = mirrors(tmp_path, {"gitops": remote}).push_restore(
        "gitops", good_sha=good, paths=SERVICE, exclude=(), branch="backout/INC-3/restore-y", message="r")
    assert any("1.1" in pin and "ignore-tags" in pin for pin in result.pinned), result
    branch = "backout/INC-3/restore-y"
    assert git("show", f"{branch}:apps/checkout/.argocd-source-checkout.yaml", cwd=remote.bare) == \
        WRITE_BACK.format(tag="1.0").strip()
    assert "ignore-tags" in git("show", f"{branch}:apps/checkout/application.yaml", cwd=remote.bare)
