"""`backout check --online` against the real parts it can reach here (a Git remote, Prometheus)
and the fakes of the ones it cannot (Slack, GitHub), each answering well and then badly."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.fakes.github import FakeGitHub
from tests.fakes.slack import FakeSlack
from tests.gitrepos import Remote
from tests.integration.processes import Prometheus, free_port

pytestmark = pytest.mark.integration


def check(config: dict[str, Any], tmp_path: Path) -> tuple[int, dict[str, Any]]:
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    done = subprocess.run([sys.executable, "-m", "bot", "check", "--online", "--json", "-c", str(path)],
                          capture_output=True, text=True, timeout=120, check=False,
                          env={k: v for k, v in os.environ.items() if not k.startswith("BACKOUT_")})
    return done.returncode, json.loads(done.stdout)


def test_each_outside_part_is_reached_and_named(tmp_path: Path) -> None:
    remote = Remote(tmp_path / "gitops")
    head = remote.commit("init", {"apps/checkout/deploy.yaml": "image: c:1\n"})
    playbooks = tmp_path / "playbooks"
    playbooks.mkdir()
    (playbooks / "checkout.yaml").write_text(yaml.safe_dump({
        "service": "checkout", "match": {"service": "checkout"},
        "repos": [{"repo": "gitops", "paths": ["apps/checkout/**"]}],
        "key_query": "sum(up)", "probes": [{"name": "missing", "query": "nonexistent_metric", "above": 1}],
    }))
    prometheus = Prometheus(tmp_path / "prometheus", target_port=free_port()).start()
    try:
        with FakeSlack().serving() as slack, FakeGitHub(remote.bare).serving() as github:
            config: dict[str, Any] = {
                "storage": {"url": f"sqlite:///{tmp_path / 'b.db'}"}, "alertmanager": {"auth": "none"},
                "playbooks_dir": str(playbooks), "git": {"mirror_dir": str(tmp_path / "m")},
                "repos": [{"name": "gitops", "url": str(remote.bare), "forge": "github",
                           "github_repo": "acme/gitops"},
                          {"name": "gone", "url": str(tmp_path / "nowhere.git")}],
                "prometheus": {"url": prometheus.url},
                "chat": {"kind": "slack"},
                "slack": {"mode": "http", "bot_token": "xoxb-test", "signing_secret": "s" * 32,
                          "api_url": f"{slack.base_url}/api/", "channel": "#incidents"},
                "github": {"api_url": github.base_url, "token": "ghs_fake", "throttle": False, "max_wait": "2s"},
            }
            code, report = check(config, tmp_path)
            found = {item["what"].split(" (")[0]: item for item in report["online"]}
            assert code == 1, report  # one repository is gone
            assert found["repository gitops"]["ok"] is True
            assert head[:12] in found["repository gitops"]["detail"]
            assert found["repository gone"]["ok"] is False
            assert found["prometheus"]["ok"] is True
            assert found["query checkout.key_query"]["ok"] is True
            assert "no data now" in found["query checkout.probes.missing"]["detail"]
            assert found["slack"]["ok"] is True
            assert "team Acme" in found["slack"]["detail"]
            assert found["github acme/gitops"]["ok"] is True

            config["repos"] = config["repos"][:1]
            assert check(config, tmp_path)[0] == 0
            github.permissions = {"pull": True, "push": False}
            slack.fail("auth.test", error="invalid_auth")
            code, report = check(config, tmp_path)
            found = {item["what"].split(" (")[0]: item for item in report["online"]}
            assert code == 1
            assert "invalid_auth" in found["slack"]["detail"]
            assert "may not push" in found["github acme/gitops"]["detail"]
    finally:
        prometheus.stop()


def test_a_gitlab_project_and_its_token_are_checked_beside_a_github_one(tmp_path: Path) -> None:
    """Both forges in one config: each repository is asked of its own forge; a GitLab token
    without the api scope, or below Developer, is named."""
    from tests.fakes.gitlab import FakeGitLab

    remote = Remote(tmp_path / "gitops")
    remote.commit("init", {"a.txt": "1\n"})
    (tmp_path / "playbooks").mkdir()
    with FakeGitHub(remote.bare).serving() as github, FakeGitLab(remote.bare).serving() as gitlab:
        config: dict[str, Any] = {
            "storage": {"url": f"sqlite:///{tmp_path / 'b.db'}"}, "alertmanager": {"auth": "none"},
            "git": {"mirror_dir": str(tmp_path / "m")}, "playbooks_dir": str(tmp_path / "playbooks"),
            "repos": [{"name": "gitops", "url": str(remote.bare), "forge": "github", "github_repo": "acme/gitops"},
                      {"name": "platform", "url": str(remote.bare), "forge": "gitlab",
                       "gitlab_project": "acme/platform/gitops"}],
            "github": {"api_url": github.base_url, "token": "ghs_fake", "throttle": False, "max_wait": "2s"},
            "gitlab": {"url": gitlab.base_url, "token": "glpat-fake", "max_wait": "2s"},
        }
        code, report = check(config, tmp_path)
        found = {item["what"].split(" (")[0]: item for item in report["online"]}
        assert code == 0, report["online"]
        assert found["github acme/gitops"]["ok"] is True
        assert "may push and open merge requests" in found["gitlab acme/platform/gitops"]["detail"]
        gitlab.scopes = ["read_api", "write_repository"]
        code, report = check(config, tmp_path)
        found = {item["what"].split(" (")[0]: item for item in report["online"]}
        assert code == 1
        assert "needs the api scope" in found["gitlab acme/platform/gitops"]["detail"]
        assert found["github acme/gitops"]["ok"] is True


def test_a_github_app_without_checks_write_is_named_where_review_risk_is_on(tmp_path: Path) -> None:
    """As a GitHub App (app_id, private key, installation): the installation's permissions are read;
    checks: write is needed where review.risk is on, contents and pull requests everywhere."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    (tmp_path / "app.pem").write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                                         serialization.PrivateFormat.TraditionalOpenSSL,
                                                         serialization.NoEncryption()))
    remote = Remote(tmp_path / "gitops")
    remote.commit("init", {"a.txt": "1\n"})
    (tmp_path / "playbooks").mkdir()
    with FakeGitHub(remote.bare).serving() as github:
        github.as_app, github.permissions = True, None  # an installation's token: the repository says no permissions
        config: dict[str, Any] = {
            "storage": {"url": f"sqlite:///{tmp_path / 'b.db'}"}, "alertmanager": {"auth": "none"},
            "git": {"mirror_dir": str(tmp_path / "m")}, "playbooks_dir": str(tmp_path / "playbooks"),
            "repos": [{"name": "gitops", "url": str(remote.bare), "forge": "github", "github_repo": "acme/gitops",
                       "review": {"risk": True}}],
            "github": {"api_url": github.base_url, "app_id": 1234, "private_key_file": str(tmp_path / "app.pem"),
                       "installation_id": 99, "throttle": False, "max_wait": "2s"},
        }
        code, report = check(config, tmp_path)
        found = {item["what"].split(" (")[0]: item for item in report["online"]}
        assert code == 0, report["online"]
        assert "checks" in found["github acme/gitops"]["detail"]
        github.app_permissions["checks"] = "read"
        code, report = check(config, tmp_path)
        found = {item["what"].split(" (")[0]: item for item in report["online"]}
        assert code == 1
        assert "checks: write" in found["github acme/gitops"]["detail"]
        config["repos"][0]["review"] = {"risk": False}
        assert check(config, tmp_path)[0] == 0
