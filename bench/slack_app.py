"""The app as the Slack benchmarks run it: HTTP mode on SQLite with a real git remote, the fake
GitHub and the fake Slack Web API; one playbook per service `svc<n>`; requests signed as Slack signs them."""

from __future__ import annotations

import hashlib
import hmac
import time
from pathlib import Path

from bot.config import Settings
from bot.domain.playbooks import Playbook

SECRET = "bench-signing-secret"
OWNER = "U0OWNER01"


def signed(body: str) -> dict[str, str]:
    timestamp = str(int(time.time()))
    digest = hmac.new(SECRET.encode(), f"v0:{timestamp}:{body}".encode(), hashlib.sha256).hexdigest()
    return {"X-Slack-Request-Timestamp": timestamp, "X-Slack-Signature": f"v0={digest}",
            "Content-Type": "application/x-www-form-urlencoded"}


def slack_settings(root: Path, *, remote: Path, github_url: str, slack_url: str) -> Settings:
    return Settings.model_validate({
        "storage": {"url": f"sqlite:///{root / 'bench.db'}"},
        "alertmanager": {"auth": "none"},
        "repos": [{"name": "gitops", "url": str(remote), "forge": "github", "github_repo": "acme/gitops"}],
        "git": {"mirror_dir": str(root / "mirrors"), "import_window": "30d"},
        "github": {"api_url": github_url, "token": "ghs_bench", "throttle": False},
        "chat": {"kind": "slack"},
        "slack": {"mode": "http", "bot_token": "xoxb-bench", "signing_secret": SECRET,
                  "api_url": f"{slack_url}/api/", "channel": "#incidents"},
    })


def service_playbooks(count: int) -> list[Playbook]:
    """`svc1`..`svc<count>`, each watching `apps/svc<n>/**` in gitops, OWNER allowed to roll back."""
    return [Playbook.model_validate({
        "name": f"svc{n}", "service": f"svc{n}", "match": {"service": f"svc{n}"},
        "repos": [{"repo": "gitops", "paths": [f"apps/svc{n}/**"]}], "suspects": {"lookback": "30d"},
        "actions": {"on_open": "off"}, "owners": {"slack_users": [OWNER]}}) for n in range(1, count + 1)]
