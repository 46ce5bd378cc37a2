"""The demo's GitOps repository: a few days of realistic history and one bad change."""

from __future__ import annotations

import os
import random
import subprocess
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from pathlib import Path

SERVICES = ("checkout", "payments", "search", "inventory")
MANIFEST = """apiVersion: apps/v1
kind: Deployment
metadata:
  name: {service}
  namespace: prod
spec:
  replicas: {replicas}
  template:
    spec:
      containers:
        - name: {service}
          image: registry.example.com/{service}:{version}
          env:
            - name: DB_POOL_TIMEOUT_MS
              value: "{timeout}"
"""


@dataclass
class Service:
    replicas: int = 3
    version: str = "1.0.0"
    timeout: int = 2000


class DemoRepo:
    """A bare remote (`gitops.git`) and the clone the demo's developers commit from."""

    def __init__(self, root: Path) -> None:
        self.bare = root / "gitops.git"
        self.work = root / "gitops-work"
        self.state = {name: Service() for name in SERVICES}

    def _git(self, *args: str, when: datetime | None = None, author: str = "Dana Ops") -> str:
        email = author.lower().replace(" ", ".") + "@example.com"
        env = {**os.environ, "GIT_AUTHOR_NAME": author, "GIT_AUTHOR_EMAIL": email,
               "GIT_COMMITTER_NAME": author, "GIT_COMMITTER_EMAIL": email, "GIT_CONFIG_NOSYSTEM": "1"}
        if when is not None:
            env["GIT_AUTHOR_DATE"] = env["GIT_COMMITTER_DATE"] = when.isoformat()
        done = subprocess.run(["git", *args], cwd=self.work, env=env, capture_output=True, text=True,
                              check=False, timeout=60)
        if done.returncode != 0:
            raise RuntimeError(f"git {args[0]} failed: {done.stderr.strip()}")
        return done.stdout.strip()

    def _write(self, service: str) -> None:
        path = self.work / "apps" / service / "deployment.yaml"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(MANIFEST.format(service=service, **asdict(self.state[service])))

    def commit(self, message: str, when: datetime, author: str, *services: str) -> str:
        for service in services:
            self._write(service)
        self._git("add", "-A")
        self._git("commit", "--quiet", "-m", message, when=when, author=author)
        return self._git("rev-parse", "HEAD")

    def build(self, *, incident_at: datetime) -> str:
        """Three days of history ending shortly before `incident_at`; returns the bad commit."""
        subprocess.run(["git", "init", "--quiet", "--bare", "--initial-branch=main", str(self.bare)],
                       check=True, capture_output=True)
        self.work.mkdir(parents=True)
        self._git("init", "--quiet", "--initial-branch=main")
        (self.work / "infrastructure").mkdir()
        (self.work / "infrastructure" / "ingress.yaml").write_text("kind: Ingress\n")
        self.commit("Bootstrap the prod cluster", incident_at - timedelta(days=3), "Dana Ops", *SERVICES)
        people = ("Dana Ops", "Sam Rivera", "Lee Chen", "Ari Patel")
        rng = random.Random(7)  # noqa: S311 - a fixed, readable demo history, not security
        when = incident_at - timedelta(days=3)
        number = 100
        while when < incident_at - timedelta(hours=4):
            when += timedelta(minutes=rng.randint(60, 300))
            service = rng.choice(SERVICES)
            number += 1
            state = self.state[service]
            major, minor, patch = (int(x) for x in state.version.split("."))
            if rng.random() < 0.6:
                state.version = f"{major}.{minor}.{patch + 1}"
                message = f"{service}: bump to {state.version} (#{number})"
            else:
                state.replicas += 1
                message = f"{service}: scale to {state.replicas} replicas (#{number})"
            self.commit(message, when, rng.choice(people), service)
        self.state["search"].version = "3.1.0"
        self.commit("search: bump to 3.1.0 (#141)", incident_at - timedelta(hours=2), "Lee Chen", "search")
        self.state["checkout"].version = "2.4.0"
        self.state["checkout"].timeout = 50
        bad = self.commit("checkout: bump to 2.4.0 and tighten DB pool timeout (#142)",
                          incident_at - timedelta(minutes=14), "Sam Rivera", "checkout")
        self.state["payments"].replicas = 6
        self.commit("payments: scale to 6 replicas (#143)", incident_at - timedelta(minutes=6),
                    "Ari Patel", "payments")
        self._git("push", "--quiet", str(self.bare), "HEAD:refs/heads/main")
        return bad
