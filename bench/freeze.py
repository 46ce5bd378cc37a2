"""Freezing a service on a large GitOps repository, with real git: the seconds to read the
repository's YAML (fetch, ls-tree, one cat-file --batch), to plan the freeze in memory, and the
whole freeze branch (plan, commit, push); then the unfreeze plan.

The repository holds SERVICES services of FILES Deployment files each, every one with a Flux image
setter marker, one ImageRepository and ImagePolicy per service and one Argo CD Application each.
Usage: python bench/freeze.py [services] [files]
"""

from __future__ import annotations

import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bot.domain.freeze import Scope, Stamp, plan_freeze, plan_unfreeze
from bot.domain.gitops import ArgoApp
from tests.gitrepos import Remote, mirrors
from tests.layouts import APPLICATION, CHECKOUT

IMAGES = """apiVersion: image.toolkit.fluxcd.io/v1beta2
kind: ImageRepository
metadata:
  name: {name}
  namespace: flux-system
spec:
  image: registry.example.com/{name}
---
apiVersion: image.toolkit.fluxcd.io/v1beta2
kind: ImagePolicy
metadata:
  name: {name}
  namespace: flux-system
spec:
  imageRepositoryRef:
    name: {name}
"""


def build(root: Path, services: int, files: int) -> Remote:
    remote = Remote(root / "gitops")
    layout: dict[str, str] = {}
    for s in range(services):
        name = f"svc{s}"
        for f in range(files):
            layout[f"apps/{name}/deploy{f}.yaml"] = CHECKOUT.replace("checkout", name)
        layout[f"clusters/prod/images/{name}.yaml"] = IMAGES.format(name=name)
        layout[f"argocd/{name}.yaml"] = APPLICATION.replace("checkout", name)
    remote.commit("layout", layout)
    return remote


def main() -> None:
    services = int(sys.argv[1]) if len(sys.argv) > 1 else 50
    files = int(sys.argv[2]) if len(sys.argv) > 2 else 20
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        remote = build(root, services, files)
        git = mirrors(root, {"gitops": remote})
        git.manifests("gitops")  # the mirror cloned: what a running Backout has
        started = time.perf_counter()
        files_read = git.manifests("gitops")
        read = time.perf_counter() - started
        now = datetime.now(UTC)
        scope = Scope(paths=("apps/svc0/**",), argocd=(ArgoApp(app="svc0"),))
        started = time.perf_counter()
        plan = plan_freeze(files_read, scope, Stamp("INC-1", "bench", now, now + timedelta(hours=24)))
        planned = time.perf_counter() - started
        started = time.perf_counter()
        git.push_files("gitops", branch="backout/INC-1/freeze", message="freeze",
                       files={path: text.encode() for path, text in plan.files.items()})
        pushed = time.perf_counter() - started
        started = time.perf_counter()
        undone, missing = plan_unfreeze({**files_read, **plan.files}, plan.edits)
        unplanned = time.perf_counter() - started
        assert not missing
        assert all(undone[p] == files_read[p] for p in undone)
        print(f"{services} services x {files} files: {len(files_read)} YAML files, {len(plan.edits)} edits in "
              f"{len(plan.files)} files")
        print(f"read the repository's YAML: {read:.3f} s; plan: {planned:.3f} s; "
              f"commit and push: {pushed:.3f} s; unfreeze plan: {unplanned:.3f} s")


if __name__ == "__main__":
    main()
