"""GitOps repositories as text: services, shared infrastructure and the edits people make to them.

A world is one GitOps repository (Flux or Argo CD layout) plus a shared platform repository.
Its state renders to real manifest text (comments, indentation styles, Flux image-policy
setter comments, Helm values, Kustomize overlays), so an edit that changes only a comment or
the indentation produces text that differs while the parsed data does not: the ranking code
has to find that out from the files, as it would in a real repository.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

GITOPS = "gitops"
PLATFORM = "platform"

TEAMS = ["payments", "storefront", "identity", "data"]
NAMES = ["checkout", "cart", "catalog", "search", "payments", "ledger", "auth", "profile", "orders",
         "shipping", "pricing", "reviews", "notify", "billing", "gateway", "inventory"]
COMMENTS = ["Owned by the {team} team.", "Keep in sync with the runbook.", "Managed by Flux.",
            "See docs/runbooks/{name}.md before changing limits.", "Production values.",
            "Reviewed in the weekly platform sync.", "Do not edit by hand during a freeze."]


@dataclass
class Service:
    name: str
    team: str
    helm: bool
    tag: tuple[int, int, int]
    chart: tuple[int, int, int]
    replicas: int
    cpu: int  # millicores
    memory: int  # MiB
    env: dict[str, str]
    comment: str
    indent: int = 2  # list indentation style: 0 or 2
    readme: int = 0
    extras: set[str] = field(default_factory=set)  # optional resources present (hpa, pdb)


@dataclass
class Shared:
    ingress_chart: tuple[int, int, int] = (4, 8, 0)
    policy_mode: str = "Audit"
    policy_registries: str = "registry.example.com/*"
    crd_version: int = 1
    netpol_ports: tuple[int, ...] = (8080, 9090)
    timeout: int = 60
    # per repository (gitops, platform): text that has no effect on the deployed state
    comment: dict[str, str] = field(default_factory=lambda: {GITOPS: "Shared by every service.",
                                                             PLATFORM: "Shared by every service."})
    readme: dict[str, int] = field(default_factory=lambda: {GITOPS: 0, PLATFORM: 0})
    ci: dict[str, int] = field(default_factory=lambda: {GITOPS: 0, PLATFORM: 0})


def version(v: tuple[int, int, int]) -> str:
    return f"{v[0]}.{v[1]}.{v[2]}"


class World:
    """One GitOps repository layout with its services, and a platform repository."""

    def __init__(self, name: str, layout: str, rng: random.Random, services: int = 8) -> None:
        self.name = name
        self.layout = layout  # "flux" or "argocd"
        self.rng = rng
        picked = rng.sample(NAMES, services)
        self.services = {n: Service(
            name=n, team=rng.choice(TEAMS), helm=rng.random() < 0.5,
            tag=(1, rng.randint(0, 20), rng.randint(0, 9)), chart=(0, rng.randint(1, 9), 0),
            replicas=rng.choice([2, 3, 4, 6]), cpu=rng.choice([100, 250, 500]),
            memory=rng.choice([128, 256, 512, 1024]),
            env={"LOG_LEVEL": "info", "TIMEOUT_MS": str(rng.choice([500, 1000, 2000])),
                 "FEATURE_NEW_FLOW": "false"},
            comment=rng.choice(COMMENTS).format(team="core", name=n),
        ) for n in picked}
        self.shared = Shared()

    # ---- where things live -------------------------------------------------------------

    def own_paths(self, name: str) -> list[str]:
        if self.layout == "flux":
            return [f"apps/base/{name}/**", f"apps/production/{name}/**", f"clusters/production/{name}.yaml"]
        team = self.services[name].team
        return [f"apps/{name}/**", f"argocd/applications/{name}.yaml", f"tenants/{team}/{name}/**"]

    def shared_paths(self) -> list[str]:
        return ["infrastructure/**"] if self.layout == "flux" else ["infrastructure/**", "argocd/projects/**"]

    def platform_shared_paths(self) -> list[str]:
        return ["policies/**", "ingress/**", "crds/**", "network/**"]

    def manifest(self, name: str) -> str:
        """The service file that holds its image, replicas and resources."""
        svc = self.services[name]
        if self.layout == "flux":
            return f"apps/base/{name}/{'helmrelease' if svc.helm else 'deployment'}.yaml"
        return f"apps/{name}/values.yaml"

    def readme(self, name: str) -> str:
        return f"apps/base/{name}/README.md" if self.layout == "flux" else f"apps/{name}/README.md"

    # ---- rendering -------------------------------------------------------------------------

    def render_service(self, name: str) -> dict[str, str | None]:
        svc = self.services[name]
        files: dict[str, str | None] = {}
        if self.layout == "flux":
            base = f"apps/base/{name}"
            if svc.helm:
                files[f"{base}/helmrelease.yaml"] = self._flux_helmrelease(svc)
                files[f"{base}/deployment.yaml"] = None
            else:
                files[f"{base}/deployment.yaml"] = self._deployment(svc)
                files[f"{base}/helmrelease.yaml"] = None
            resources = ["helmrelease.yaml" if svc.helm else "deployment.yaml", "service.yaml",
                         *sorted(f"{extra}.yaml" for extra in svc.extras)]
            files[f"{base}/kustomization.yaml"] = _kustomization(resources, svc.indent)
            files[f"{base}/service.yaml"] = _service(svc)
            for extra in ("hpa", "pdb"):
                files[f"{base}/{extra}.yaml"] = _extra(svc, extra) if extra in svc.extras else None
            files[f"{base}/README.md"] = _readme(svc)
            files[f"apps/production/{name}/kustomization.yaml"] = self._overlay(svc)
            files[f"apps/production/{name}/configmap.yaml"] = _configmap(svc)
            files[f"clusters/production/{name}.yaml"] = _flux_kustomization(svc)
        else:
            base = f"apps/{name}"
            files[f"{base}/Chart.yaml"] = _chart(svc)
            files[f"{base}/values.yaml"] = _values(svc)
            for extra in ("hpa", "pdb"):
                files[f"{base}/templates/{extra}.yaml"] = _extra(svc, extra) if extra in svc.extras else None
            files[f"{base}/README.md"] = _readme(svc)
            files[f"argocd/applications/{name}.yaml"] = _application(svc)
            files[f"tenants/{svc.team}/{name}/rbac.yaml"] = _rbac(svc)
        return files

    def render_shared(self) -> dict[str, str | None]:
        s = self.shared
        return {
            "infrastructure/ingress/helmrelease.yaml": (
                f"# {s.comment[GITOPS]}\napiVersion: helm.toolkit.fluxcd.io/v2\nkind: HelmRelease\n"
                f"metadata:\n  name: ingress-nginx\n  namespace: ingress\nspec:\n  interval: 10m\n"
                f"  chart:\n    spec:\n      chart: ingress-nginx\n      version: \"{version(s.ingress_chart)}\"\n"
                f"  values:\n    controller:\n      config:\n        proxy-read-timeout: \"{s.timeout}\"\n"),
            "infrastructure/network/default-deny.yaml": (
                "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata:\n  name: allow-app-ports\n"
                "spec:\n  podSelector: {}\n  ingress:\n    - ports:\n"
                + "".join(f"        - port: {p}\n" for p in s.netpol_ports)),
            "README.md": f"# {self.name} GitOps repository\n\nRevision notes {s.readme[GITOPS]}.\n",
            ".github/workflows/validate.yaml": (
                "name: validate\non: [pull_request]\njobs:\n  kubeconform:\n    runs-on: ubuntu-latest\n"
                f"    container:\n      image: ghcr.io/yannh/kubeconform:v0.6.{s.ci[GITOPS]}\n"
                "    steps:\n      - uses: actions/checkout@v4\n      - run: kubeconform -summary .\n"),
        }

    def render_platform(self) -> dict[str, str | None]:
        s = self.shared
        return {
            "policies/require-registry.yaml": (
                f"# {s.comment[PLATFORM]}\napiVersion: kyverno.io/v1\nkind: ClusterPolicy\nmetadata:\n"
                f"  name: require-registry\nspec:\n  validationFailureAction: {s.policy_mode}\n  rules:\n"
                "    - name: registry\n      match:\n        any:\n          - resources:\n"
                "              kinds: [Pod]\n      validate:\n        pattern:\n          spec:\n"
                f"            containers:\n              - image: \"{s.policy_registries}\"\n"),
            "crds/rollouts.yaml": (
                "apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\nmetadata:\n"
                "  name: rollouts.argoproj.io\nspec:\n  group: argoproj.io\n  names:\n    kind: Rollout\n"
                "    plural: rollouts\n  scope: Namespaced\n  versions:\n"
                + "".join(f"    - name: v1alpha{n}\n      served: true\n"
                          f"      storage: {str(n == s.crd_version).lower()}\n"
                          for n in range(1, s.crd_version + 1))),
            "README.md": f"# Platform\n\nShared policies and controllers. Notes {s.readme[PLATFORM]}.\n",
            ".gitlab-ci.yml": f"validate:\n  image: alpine:3.{18 + s.ci[PLATFORM]}\n  script: [\"true\"]\n",
        }

    # ---- templates that depend on the layout ------------------------------------------------

    def _deployment(self, svc: Service) -> str:
        pad = " " * svc.indent
        env = _env(svc, depth=8)
        return (f"# {svc.comment}\napiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: {svc.name}\n"
                f"  labels:\n    app: {svc.name}\nspec:\n  replicas: {svc.replicas}\n  selector:\n"
                f"    matchLabels:\n      app: {svc.name}\n  template:\n    metadata:\n      labels:\n"
                f"        app: {svc.name}\n    spec:\n      containers:\n"
                f"{pad}      - name: {svc.name}\n"
                f"{pad}        image: registry.example.com/{svc.name}:{version(svc.tag)} "
                f"# {{\"$imagepolicy\": \"flux-system:{svc.name}\"}}\n"
                f"{pad}        resources:\n{pad}          requests:\n{pad}            cpu: {svc.cpu}m\n"
                f"{pad}            memory: {svc.memory}Mi\n{pad}          limits:\n"
                f"{pad}            memory: {svc.memory}Mi\n{pad}        env:\n{env}")

    def _flux_helmrelease(self, svc: Service) -> str:
        env = _env(svc, depth=6)
        return (f"# {svc.comment}\napiVersion: helm.toolkit.fluxcd.io/v2\nkind: HelmRelease\nmetadata:\n"
                f"  name: {svc.name}\nspec:\n  interval: 5m\n  chart:\n    spec:\n      chart: {svc.name}\n"
                f"      version: \"{version(svc.chart)}\"\n      sourceRef:\n        kind: HelmRepository\n"
                f"        name: charts\n  values:\n    image:\n      repository: registry.example.com/{svc.name}\n"
                f"      tag: \"{version(svc.tag)}\" # {{\"$imagepolicy\": \"flux-system:{svc.name}:tag\"}}\n"
                f"    replicaCount: {svc.replicas}\n    resources:\n      requests:\n        cpu: {svc.cpu}m\n"
                f"        memory: {svc.memory}Mi\n    env:\n{env}")

    def _overlay(self, svc: Service) -> str:
        pad = " " * svc.indent
        return (f"# {svc.comment}\napiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\n"
                f"namespace: {svc.team}\nresources:\n{pad}- ../../base/{svc.name}\n{pad}- configmap.yaml\n")


def _env(svc: Service, *, depth: int) -> str:
    """A container's env list at `depth`, in the service's list indentation style."""
    pad = " " * (svc.indent + depth)
    return "".join(f"{pad}- name: {k}\n{pad}  value: \"{v}\"\n" for k, v in svc.env.items())


def _kustomization(resources: list[str], indent: int) -> str:
    pad = " " * indent
    return ("apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n"
            + "".join(f"{pad}- {r}\n" for r in resources))


def _service(svc: Service) -> str:
    return (f"apiVersion: v1\nkind: Service\nmetadata:\n  name: {svc.name}\nspec:\n  selector:\n"
            f"    app: {svc.name}\n  ports:\n    - port: 80\n      targetPort: 8080\n")


def _extra(svc: Service, kind: str) -> str:
    if kind == "hpa":
        return (f"apiVersion: autoscaling/v2\nkind: HorizontalPodAutoscaler\nmetadata:\n  name: {svc.name}\n"
                f"spec:\n  scaleTargetRef:\n    apiVersion: apps/v1\n    kind: Deployment\n    name: {svc.name}\n"
                f"  minReplicas: {svc.replicas}\n  maxReplicas: {svc.replicas * 3}\n")
    return (f"apiVersion: policy/v1\nkind: PodDisruptionBudget\nmetadata:\n  name: {svc.name}\nspec:\n"
            f"  minAvailable: {max(1, svc.replicas - 1)}\n  selector:\n    matchLabels:\n      app: {svc.name}\n")


def _readme(svc: Service) -> str:
    return (f"# {svc.name}\n\nOwned by {svc.team}. Dashboards and runbooks are linked below.\n\n"
            f"Revision {svc.readme} of these notes.\n")


def _configmap(svc: Service) -> str:
    return (f"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {svc.name}-config\ndata:\n"
            + "".join(f"  {k}: \"{v}\"\n" for k, v in svc.env.items()))


def _flux_kustomization(svc: Service) -> str:
    return (f"apiVersion: kustomize.toolkit.fluxcd.io/v1\nkind: Kustomization\nmetadata:\n  name: {svc.name}\n"
            f"  namespace: flux-system\nspec:\n  interval: 10m\n  path: ./apps/production/{svc.name}\n"
            f"  prune: true\n  sourceRef:\n    kind: GitRepository\n    name: flux-system\n")


def _chart(svc: Service) -> str:
    return (f"apiVersion: v2\nname: {svc.name}\nversion: {version(svc.chart)}\n"
            f"appVersion: \"{version(svc.tag)}\"\ndependencies:\n  - name: common\n    version: 2.1.0\n"
            f"    repository: oci://registry.example.com/charts\n")


def _values(svc: Service) -> str:
    env = _env(svc, depth=2)
    return (f"# {svc.comment}\nimage:\n  repository: registry.example.com/{svc.name}\n"
            f"  tag: \"{version(svc.tag)}\"\nreplicaCount: {svc.replicas}\nresources:\n  requests:\n"
            f"    cpu: {svc.cpu}m\n    memory: {svc.memory}Mi\n  limits:\n    memory: {svc.memory}Mi\nenv:\n{env}")


def _application(svc: Service) -> str:
    return (f"apiVersion: argoproj.io/v1alpha1\nkind: Application\nmetadata:\n  name: {svc.name}\n"
            f"  namespace: argocd\nspec:\n  project: {svc.team}\n  source:\n"
            f"    repoURL: https://git.example.com/platform/gitops.git\n    targetRevision: main\n"
            f"    path: apps/{svc.name}\n  destination:\n    server: https://kubernetes.default.svc\n"
            f"    namespace: {svc.team}\n  syncPolicy:\n    automated: {{prune: true, selfHeal: true}}\n")


def _rbac(svc: Service) -> str:
    return (f"apiVersion: rbac.authorization.k8s.io/v1\nkind: RoleBinding\nmetadata:\n  name: {svc.name}-deployers\n"
            f"  namespace: {svc.team}\nroleRef:\n  apiGroup: rbac.authorization.k8s.io\n  kind: ClusterRole\n"
            f"  name: edit\nsubjects:\n  - kind: Group\n    name: {svc.team}-oncall\n")
