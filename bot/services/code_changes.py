"""Image bumps to the code that changed: when a suspect moves an image tag, the application
commits between the old and the new tag, so the team knows what to fix while the GitOps change
is what gets reverted."""

from __future__ import annotations

import re
from collections.abc import Sequence

from bot.domain.changes import Change, ImageBump
from bot.domain.errors import BackoutError
from bot.domain.playbooks import Playbook, PlaybookRepo, RepoRole, playbook_named
from bot.domain.ports import GitRepos, Store
from bot.domain.suspects import CodeChange, Ranking
from bot.services.incidents import find_suspects, require, save_suspects

MOST_COMMITS = 50
_SHA_TAG = re.compile(r"(?:^|[-_.])(?:g|sha-?)?([0-9a-f]{7,40})$")


def annotate_code(*, store: Store, git: GitRepos, playbooks: Sequence[Playbook], incident_id: int,
                  ranking: Ranking, top: int = 3) -> Ranking:
    """Add the application commits behind the image bumps of the top suspects (git work outside
    any transaction); store the ranking again only if something changed."""
    incident = store.run(lambda tx: require(tx, incident_id))
    playbook = playbook_named(playbooks, incident.playbook)
    if playbook is None:
        return ranking
    apps = [entry for entry in playbook.repos if entry.role is RepoRole.APP]
    suspects = list(ranking.suspects)
    indexes = ranking.candidate_indexes(top)
    for index, change in zip(indexes, find_suspects(store, [suspects[i] for i in indexes]), strict=True):
        suspect = suspects[index]
        bumps = [bump for file in (change.files if change else ()) for bump in file.bumps]
        if not bumps:
            continue
        code, note = app_commits(store=store, git=git, apps=apps, bumps=bumps, service=playbook.service)
        suspects[index] = suspect.model_copy(update={"code": code, "code_note": note or None})
    return save_suspects(store=store, incident_id=incident_id, ranking=ranking, suspects=suspects)


def app_commits(*, store: Store, git: GitRepos, apps: Sequence[PlaybookRepo], bumps: Sequence[ImageBump],
                service: str) -> tuple[tuple[CodeChange, ...], str]:
    """The commits between each bump's old and new tag in the application repositories that build
    its image, most telling first (code before docs and CI, larger before smaller), and how they
    were found. Another image's equal tag says nothing of this repository (redis 6.0.2 is no
    podinfo 6.0.2): only a CI build record maps an image the repository does not name."""
    if not apps:  # setup advice, not news about this incident: `backout check` gives it
        return (), ""
    notes: list[str] = []
    commits: dict[str, Change] = {}
    for bump in bumps:
        located = False
        for entry in apps:
            repo, named = entry.repo, entry.builds(bump.image, service=service)
            old, old_how = _revision(store, git, repo, bump.image, bump.old, named=named)
            new, new_how = _revision(store, git, repo, bump.image, bump.new, named=named)
            if old is None or new is None:
                continue
            located = True
            try:
                between = git.log_between(repo, old=old, new=new, limit=MOST_COMMITS)
            except BackoutError as exc:
                notes.append(f"{repo}: could not list {bump.old}..{bump.new}: {exc}")
                continue
            commits.update({c.sha: c for c in between})
            more = " (the most recent shown)" if len(between) >= MOST_COMMITS else ""
            notes.append(f"{repo}: {len(between)} commit{'s' * (len(between) != 1)} between {bump.old} "
                         f"({old_how}) and {bump.new} ({new_how}){more}")
            break
        if not located:
            notes.append(f"{bump.image.rsplit('/', 1)[-1]} {bump.old} -> {bump.new}: no Git tag or build "
                         f"record for both tags in {', '.join(_names(apps, bump.image, service))} (tag "
                         "releases, or have CI post to /webhooks/build)")
    ranked = sorted(commits.values(), key=lambda c: (not _effective(c), -(c.additions + c.deletions)))
    return tuple(_code(c) for c in ranked), "; ".join(notes)


def _names(apps: Sequence[PlaybookRepo], image: str, service: str) -> list[str]:
    """The repositories searched for an image, or why none was (for the note people read)."""
    named = [e.repo for e in apps if e.builds(image, service=service)]
    return named or [f"no application repository that builds {image} (name it under the repository's `images`)"]


def _revision(store: Store, git: GitRepos, repo: str, image: str, tag: str, *,
              named: bool) -> tuple[str | None, str]:
    """The application commit an image tag was built from: a CI build record, or, when the
    repository builds the image (`named`), a Git tag of the same name (or with a `v`) or a commit
    sha the tag carries (`sha-1a2b3c4`, `1.2.3-g1a2b3c4`)."""
    build = store.run(lambda tx: tx.gitops.build(image, tag))
    if build is not None and build.repo == repo:
        return git.resolve(repo, build.sha) or build.sha, "build record"
    if not named:
        return None, ""
    for name in dict.fromkeys([tag, f"v{tag}", tag.removeprefix("v")]):
        found = git.resolve(repo, f"refs/tags/{name}")
        if found:
            return found, f"tag {name}"
    match = _SHA_TAG.search(tag)
    if match:
        found = git.resolve(repo, match.group(1))
        if found:
            return found, f"commit {match.group(1)[:7]}"
    return None, ""


def _effective(change: Change) -> bool:
    return any(file.effective for file in change.files) or not change.files


def _code(change: Change) -> CodeChange:
    return CodeChange(repo=change.repo, sha=change.sha, subject=change.subject, author=change.author,
                      committed_at=change.committed_at, lines=change.additions + change.deletions,
                      files=len(change.files), pr_number=change.pr_number, pr_ref=change.pr_ref,
                      effective=_effective(change))
