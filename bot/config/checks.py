"""What `check` and `serve` say about a valid config: warnings, and the problems that stop `serve`."""

from __future__ import annotations

from collections.abc import Sequence
from urllib.parse import urlsplit

from bot.config.problems import Problem
from bot.config.settings import Settings
from bot.domain.playbooks import Playbook, RepoRole


def config_warnings(settings: Settings, *, file: str) -> list[Problem]:
    """What `check` and `serve` point out without refusing to start."""
    found = settings.api.warnings()
    used = {repo.forge for repo in settings.repos}
    for forge, key, url, token in (("github", "github.api_url", settings.github.api_url, settings.github.token),
                                   ("gitlab", "gitlab.url", settings.gitlab.url, settings.gitlab.token)):
        host = urlsplit(url).hostname or ""
        if forge in used and token and url.lower().startswith("http://") and host not in _LOOPBACK:
            found.append((key, f"plain http to {host}: the {forge} token crosses the network readable; use https"))
    return [Problem(file, key, reason) for key, reason in found]


_LOOPBACK = ("localhost", "127.0.0.1", "::1")


def playbook_warnings(settings: Settings, playbooks: Sequence[Playbook], *, file: str) -> list[Problem]:
    """Playbooks that cannot do what they say: probes with no Prometheus to ask, a match that an
    earlier playbook already takes, controller events the config cannot authenticate, image bumps
    with no application repository to find their code in."""
    found = []
    folder = str(settings.playbooks_dir)
    if not settings.prometheus.url:
        for playbook in playbooks:
            if playbook.probes:
                found.append(Problem(folder, f"{playbook.name}.probes", "prometheus.url is not set in the config, "
                                     "so these probes never run"))
    for index, playbook in enumerate(playbooks):
        earlier = next((p for p in playbooks[:index] if p.match == playbook.match), None)
        if earlier is not None:
            found.append(Problem(folder, f"{playbook.name}.match", f"the same as playbook {earlier.name}'s, which "
                                 "comes first: alerts never reach this one (narrow its match)"))
    for playbook in playbooks:
        if not any(entry.role is RepoRole.APP for entry in playbook.repos):
            found.append(Problem(folder, f"{playbook.name}.repos", "names no application repository (a repos entry "
                                 "with role: app): when a suspect bumps an image, the code commits between the "
                                 "tags cannot be listed"))
    if any(p.gitops.flux for p in playbooks) and not (settings.flux.hmac_key or settings.flux.token):
        found.append(Problem(file, "flux.hmac_key", "playbooks name Flux objects, but /webhooks/flux has no key: "
                             "set flux.hmac_key_file (generic-hmac) or flux.token_file, or every event is refused"))
    if any(p.gitops.argocd for p in playbooks) and not settings.argocd.token:
        found.append(Problem(file, "argocd.token", "playbooks name Argo CD applications, but /webhooks/argocd has "
                             "no token: set argocd.token_file, or every notification is refused"))
    return found


def serve_problems(settings: Settings, *, file: str) -> list[Problem]:
    """What `serve` refuses to start with, beyond what validation already caught."""
    found = settings.alertmanager.problems()
    if settings.chat.kind == "slack":
        found += settings.slack.problems()
    if any(repo.forge == "github" for repo in settings.repos):
        found += settings.github.problems()
    if any(repo.forge == "gitlab" for repo in settings.repos):
        found += settings.gitlab.problems()
    return [Problem(file, key, reason) for key, reason in found]
