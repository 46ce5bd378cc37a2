"""`backout check --online`: reach every outside part the config names and say what each
answered: each repository (`git ls-remote` of its branch, with its credentials), Prometheus (up,
and every playbook query parsed and run there), Slack (`auth.test`) and GitHub (the token's
permissions on each repository)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial

from bot.config import Settings
from bot.domain.errors import BackoutError
from bot.domain.playbooks import Playbook


@dataclass(frozen=True)
class Finding:
    what: str
    ok: bool
    detail: str


def check_online(settings: Settings, playbooks: Sequence[Playbook]) -> list[Finding]:
    found = [*_repositories(settings), *_prometheus(settings, playbooks)]
    if settings.chat.kind == "slack":
        found.append(_slack(settings))
    found.extend(_forges(settings))
    return found


def _attempt(what: str, call: Callable[[], str]) -> Finding:
    try:
        return Finding(what, True, call())
    except BackoutError as exc:
        return Finding(what, False, str(exc))


def _repositories(settings: Settings) -> list[Finding]:
    from bot.bootstrap import build_git

    git = build_git(settings)

    def listed(name: str, branch: str) -> str:
        sha = git.remote_branch(name, branch)
        if sha is None:
            raise BackoutError(f"reachable, but it has no branch {branch!r}")
        return f"branch {branch} at {sha[:12]}"

    return [_attempt(f"repository {repo.name} ({repo.url})", partial(listed, repo.name, repo.branch))
            for repo in settings.repos]


def _prometheus(settings: Settings, playbooks: Sequence[Playbook]) -> list[Finding]:
    queries = [(f"{p.name}.key_query", p.key_query) for p in playbooks if p.key_query]
    queries += [(f"{p.name}.probes.{probe.name}", probe.query) for p in playbooks for probe in p.probes]
    if not settings.prometheus.url:
        return [Finding("prometheus", False, f"prometheus.url is not set, so {len(queries)} queries cannot run")
                ] if queries else []
    from bot.adapters.prometheus import PrometheusQuery

    prometheus = PrometheusQuery(settings.prometheus.url, timeout=settings.prometheus.timeout.total_seconds(),
                                 attempts=1)
    up = _attempt(f"prometheus ({settings.prometheus.url})",
                  lambda: f"answers (vector(1) = {prometheus.value('vector(1)')})")
    if not up.ok:
        return [up]

    def run(query: str) -> str:
        value = prometheus.value(query)
        return "no data now (the query parses and runs)" if value is None else f"runs: {value:g} now"

    return [up, *(_attempt(f"query {where}", partial(run, query)) for where, query in queries)]


def _slack(settings: Settings) -> Finding:
    from slack_sdk import WebClient
    from slack_sdk.errors import SlackApiError, SlackClientError

    slack = settings.slack
    if slack.bot_token is None:
        return Finding("slack", False, "no bot token (slack.bot_token_file)")
    client = WebClient(token=slack.bot_token.get_secret_value(), base_url=slack.api_url, timeout=10)
    try:
        answer = client.auth_test()
    except SlackApiError as exc:
        return Finding("slack", False, f"auth.test refused: {exc.response.get('error', 'unknown error')}")
    except (SlackClientError, OSError) as exc:
        return Finding("slack", False, f"cannot reach {slack.api_url}: {type(exc).__name__}")
    return Finding("slack", True, f"auth.test ok: team {answer.get('team')}, bot user {answer.get('user')}")


def _forges(settings: Settings) -> list[Finding]:
    """Each GitHub repository and GitLab project: may the token push and open pull (merge) requests?"""
    hosted = {repo.name: (repo.forge, repo.github_repo or repo.gitlab_project or "") for repo in settings.repos
              if repo.forge in ("github", "gitlab")}
    if not hosted:
        return []
    from bot.bootstrap import build_forge
    from bot.config import ConfigError
    from bot.entrypoints.metrics import Metrics

    try:
        forge, _applied = build_forge(settings, Metrics(github=True, gitlab=True))
    except (BackoutError, ConfigError) as exc:
        return [Finding("forge", False, str(exc))]
    access = getattr(forge, "access", None)
    if access is None:
        return []
    review = {repo.name for repo in settings.repos if repo.review.risk}
    return [_attempt(f"{kind} {full}", partial(access, name, review=name in review))
            for name, (kind, full) in hosted.items()]
