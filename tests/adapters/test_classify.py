"""Classifying file changes from their parsed old and new content, and at import from a real mirror."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from bot.adapters.git.classify import classify
from bot.domain.changes import Effect
from tests.gitrepos import BASE, Remote, mirrors

DEPLOY = """\
# Owned by the checkout team.
apiVersion: apps/v1
kind: Deployment
metadata:
  name: checkout
  labels: {app: checkout}
spec:
  replicas: 3
  template:
    spec:
      containers:
        - name: checkout
          image: registry.example.com/checkout:1.4.0 # {"$imagepolicy": "flux-system:checkout"}
          env:
            - name: TIMEOUT_MS
              value: "1000"
"""


def effects(old: str | None, new: str | None, path: str = "apps/checkout/deploy.yaml") -> tuple[Effect, ...]:
    return classify(path, None if old is None else old.encode(), None if new is None else new.encode())[0]


def test_comments_whitespace_and_quoting_have_no_effect() -> None:
    """Equal parsed data is cosmetic: comments, the image-policy setter, indentation, quotes."""
    assert effects(DEPLOY, DEPLOY.replace("Owned by the checkout team.", "Ask #checkout first.")) == (
        Effect.COSMETIC,)
    assert effects(DEPLOY, DEPLOY.replace('"flux-system:checkout"', '"flux-system:checkout-v2"')) == (
        Effect.COSMETIC,)
    reindented = DEPLOY.replace("        - name: checkout\n", "      - name: checkout\n").replace(
        "          image", "        image").replace("          env:", "        env:").replace(
        "            - name: TIMEOUT", "          - name: TIMEOUT").replace("              value", "            value")
    assert effects(DEPLOY, reindented) == (Effect.COSMETIC,)
    assert effects(DEPLOY, DEPLOY.replace('"1000"', "'1000'")) == (Effect.COSMETIC,)


def test_an_unchanged_app_version_reindented_is_not_a_version_change() -> None:
    """`appVersion: "1.0"` moved and re-quoted is the same value."""
    chart = 'apiVersion: v2\nname: checkout\nversion: 0.3.0\nappVersion: "1.0"\n'
    assert effects(chart, "apiVersion: v2\nappVersion: '1.0'\nname: checkout\nversion: 0.3.0\n",
                   path="charts/checkout/Chart.yaml") == (Effect.COSMETIC,)


def test_image_and_version_changes_keep_old_and_new() -> None:
    """An image tag change is an image effect with `old -> new` in its note; a chart version too."""
    found, notes = classify("apps/checkout/deploy.yaml", DEPLOY.encode(), DEPLOY.replace("1.4.0", "1.5.0").encode())
    assert found == (Effect.IMAGE,)
    assert notes == ("image checkout 1.4.0 -> 1.5.0",)
    release = ("kind: HelmRelease\nmetadata: {name: checkout}\nspec:\n  chart:\n"
               "    spec: {chart: checkout, version: 6.5.0}\n")
    found, notes = classify("apps/checkout/release.yaml", release.encode(),
                            release.replace("6.5.0", "6.6.0").encode())
    assert found == (Effect.VERSION,)
    assert notes == ("spec.chart.spec.version 6.5.0 -> 6.6.0",)


def test_scale_config_metadata_resources_crds_and_policies() -> None:
    """Each kind of change is told apart by the changed key path or the object's kind."""
    assert effects(DEPLOY, DEPLOY.replace("replicas: 3", "replicas: 1")) == (Effect.SCALE,)
    assert effects(DEPLOY, DEPLOY.replace('"1000"', '"500"')) == (Effect.CONFIG,)
    assert effects(DEPLOY, DEPLOY.replace("{app: checkout}", "{app: checkout, tier: web}")) == (Effect.METADATA,)
    hpa = "---\napiVersion: autoscaling/v2\nkind: HorizontalPodAutoscaler\nmetadata: {name: checkout}\n"
    assert effects(DEPLOY, DEPLOY + hpa) == (Effect.SCALE,)
    assert effects(None, "apiVersion: v1\nkind: Service\nmetadata: {name: checkout}\n") == (Effect.RESOURCE,)
    assert effects(DEPLOY, None) == (Effect.RESOURCE,)
    crd = ("apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\nmetadata: {name: x.y}\n"
           "spec: {a: 1}\n")
    assert effects(crd, crd.replace("a: 1", "a: 2")) == (Effect.CRD,)
    policy = ("apiVersion: kyverno.io/v1\nkind: ClusterPolicy\nmetadata: {name: p}\n"
              "spec: {validationFailureAction: Audit}\n")
    assert effects(policy, policy.replace("Audit", "Enforce")) == (Effect.POLICY,)


def test_paths_decide_docs_and_ci_and_unreadable_files_are_unknown() -> None:
    """README and workflow files never deploy; a Helm template that is not YAML has an unknown effect."""
    assert effects("a", "b", path="apps/checkout/README.md") == (Effect.DOCS,)
    assert effects("image: a:1\n", "image: a:2\n", path=".github/workflows/ci.yaml") == (Effect.CI,)
    template = "spec:\n  replicas: {{ .Values.replicas }}\n  {{- include \"x\" . }}\n"
    assert effects(template, template + "# more\n", path="charts/c/templates/deploy.yaml") == (Effect.OTHER,)
    assert effects("a", "b", path="scripts/deploy.sh") == (Effect.OTHER,)


def test_import_classifies_each_file_and_records_reverts(tmp_path: Path) -> None:
    """A real mirror: per-file effects and line counts, and git's revert line recorded as a revert."""
    remote = Remote(tmp_path / "gitops")
    remote.commit("init", {"apps/checkout/deploy.yaml": DEPLOY, "apps/payments/deploy.yaml": DEPLOY})
    bump = remote.commit("checkout: 1.5.0, payments docs", {
        "apps/checkout/deploy.yaml": DEPLOY.replace("1.4.0", "1.5.0"),
        "apps/payments/README.md": "# payments\n"})
    remote.commit("comment only", {"apps/payments/deploy.yaml": DEPLOY.replace("Owned by", "Run by")})
    from tests.gitrepos import git

    git("revert", "--no-edit", bump, cwd=remote.work, when=remote.clock + timedelta(minutes=5))
    remote.push()
    fetched = mirrors(tmp_path, {"gitops": remote}).refresh(
        "gitops", since_sha=None, not_before=BASE - timedelta(days=1))
    by_subject = {c.subject: c for c in fetched.changes}
    files = {file.path: file for file in by_subject["checkout: 1.5.0, payments docs"].files}
    assert files["apps/checkout/deploy.yaml"].effects == (Effect.IMAGE,)
    assert files["apps/checkout/deploy.yaml"].notes == ("image checkout 1.4.0 -> 1.5.0",)
    assert (files["apps/checkout/deploy.yaml"].added, files["apps/checkout/deploy.yaml"].deleted) == (1, 1)
    assert files["apps/payments/README.md"].effects == (Effect.DOCS,)
    assert by_subject["comment only"].files[0].effects == (Effect.COSMETIC,)
    assert not by_subject["comment only"].image_bump
    [revert] = fetched.reverts
    assert revert.target == bump
    assert revert.by_sha == next(c.sha for c in fetched.changes if c.subject.startswith('Revert "checkout'))


def test_a_yaml_bomb_is_an_unknown_effect_not_a_hang() -> None:
    """Nested aliases (a "billion laughs") would make comparing the data exponential: unknown effect."""
    lines = ['a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    lines += [f"a{n}: &a{n} [" + ", ".join([f"*a{n - 1}"] * 9) + "]" for n in range(1, 12)]
    bomb = "\n".join(lines) + "\n"
    assert effects(bomb, bomb.replace('"lol"', '"lul"', 1), path="apps/checkout/bomb.yaml") == (Effect.OTHER,)


def test_image_bumps_are_read_from_containers_kustomize_and_helm_values() -> None:
    """The old and new tag of each image, wherever the manifests keep it."""
    from bot.adapters.git.classify import classify_file
    from bot.domain.changes import ImageBump

    def bumps(path: str, old: str, new: str) -> tuple[ImageBump, ...]:
        return classify_file(path, old.encode(), new.encode())[2]

    assert bumps("apps/checkout/deploy.yaml", DEPLOY, DEPLOY.replace("1.4.0", "1.5.0")) == (
        ImageBump(image="registry.example.com/checkout", old="1.4.0", new="1.5.0"),)
    kustomization = "images:\n- name: ghcr.io/acme/checkout\n  newTag: v1\n"
    assert bumps("k/kustomization.yaml", kustomization, kustomization.replace("v1", "v2")) == (
        ImageBump(image="ghcr.io/acme/checkout", old="v1", new="v2"),)
    values = "image:\n  repository: ghcr.io/acme/checkout\n  tag: 1.0.0\nreplicas: 2\n"
    assert bumps("charts/values.yaml", values, values.replace("1.0.0", "1.1.0")) == (
        ImageBump(image="ghcr.io/acme/checkout", old="1.0.0", new="1.1.0"),)
    assert bumps("charts/values.yaml", values, values.replace("replicas: 2", "replicas: 3")) == ()
