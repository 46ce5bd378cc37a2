"""Changes: commits on a watched branch, with what they touched and when they were applied."""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime, timedelta
from enum import StrEnum
from functools import lru_cache

from pathspec.patterns.gitignore import GitIgnorePatternError
from pathspec.patterns.gitignore.basic import GitIgnoreBasicPattern
from pydantic import BaseModel, ConfigDict


class AppliedSource(StrEnum):
    """Where a change's applied time comes from, best first."""

    FLUX = "flux"  # a Flux object reported applying it
    ARGOCD = "argocd"  # an Argo CD Application reported syncing it
    DEPLOYMENT = "deployment"
    COMMIT_STATUS = "commit_status"
    PROMETHEUS = "prometheus"
    COMMIT_TIME = "commit_time"  # commit time on the branch plus the playbook's sync delay
    DRIFT = "drift"  # no commit: an out-of-band change, timed by its window (last clean reconcile to detection)


class Effect(StrEnum):
    """What a file change did to the deployed state, classified once, at import."""

    DOCS = "docs"  # documentation: never deployed
    CI = "ci"  # CI and repository tooling: never deployed
    COSMETIC = "cosmetic"  # comments or whitespace only: the parsed data is equal
    IMAGE = "image"  # an image tag or digest
    VERSION = "version"  # a chart, app or source version
    SCALE = "scale"  # replicas, resources, disruption budgets, autoscaling
    CONFIG = "config"  # env, config values, any other spec field
    METADATA = "metadata"  # labels and annotations only
    RESOURCE = "resource"  # a Kubernetes object added or removed
    CRD = "crd"  # a CustomResourceDefinition
    POLICY = "policy"  # network, admission, RBAC and similar policies
    OTHER = "other"  # a file whose effect cannot be read (templates, scripts, code)


CONTROLLER_SOURCES = frozenset({AppliedSource.FLUX, AppliedSource.ARGOCD})
NO_EFFECT = frozenset({Effect.DOCS, Effect.CI, Effect.COSMETIC})


class ImageBump(BaseModel):
    """An image tag a file change moved: which application build now runs."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    image: str  # without the tag: registry.example.com/checkout
    old: str
    new: str


class FileChange(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    path: str
    status: str  # git's letter: A, M, D, R, C, T
    old_path: str | None = None
    added: int = 0
    deleted: int = 0
    # Empty for changes imported before classification existed: treated as an unknown effect.
    effects: tuple[Effect, ...] = ()
    notes: tuple[str, ...] = ()  # what changed, for people: "image checkout 1.4.0 -> 1.5.0"
    bumps: tuple[ImageBump, ...] = ()  # image tags it moved

    @property
    def effective(self) -> bool:
        """True unless the file is known to leave the deployed state alone."""
        return not self.effects or any(e not in NO_EFFECT for e in self.effects)

    @property
    def lines(self) -> int:
        return self.added + self.deleted


class Change(BaseModel):
    """A commit on a watched branch (first-parent history: merges stand for their PR)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    repo: str
    sha: str
    parents: tuple[str, ...]
    author: str
    committed_at: datetime
    subject: str
    files: tuple[FileChange, ...]
    additions: int = 0
    deletions: int = 0
    pr_number: int | None = None
    pr_ref: str | None = None  # as its forge writes it: "#12" (a pull request), "!12" (a GitLab merge request)
    image_bump: bool = False
    applied_at: datetime | None = None
    applied_source: AppliedSource = AppliedSource.COMMIT_TIME
    applied_by: str | None = None  # the controller object that applied it: "Flux Kustomization flux-system/apps"
    # When that object reported the rollout healthy (applied_at is when it started); not stored
    # on the change: it comes from the service's objects at ranking time.
    healthy_at: datetime | None = None
    dry_sha: str | None = None  # Argo CD source hydrator: the dry source commit it was rendered from

    @property
    def short(self) -> str:
        return self.sha[:7]

    @property
    def is_merge(self) -> bool:
        return len(self.parents) > 1

    @property
    def is_revert(self) -> bool:
        return self.subject.startswith('Revert "')

    @property
    def paths(self) -> tuple[str, ...]:
        """Every path touched, old names of renames included."""
        found: list[str] = []
        for file in self.files:
            found.append(file.path)
            if file.old_path:
                found.append(file.old_path)
        return tuple(found)

    def applied(self, *, sync_delay: timedelta) -> datetime:
        """When the change took effect: a recorded time, else commit time plus the sync delay."""
        if self.applied_at is not None and self.applied_source is not AppliedSource.COMMIT_TIME:
            return self.applied_at
        return self.committed_at + sync_delay


_PR_PATTERNS = (  # (pattern, the sigil its forge writes before the number)
    (re.compile(r"^Merge pull request #(\d+)\b"), "#"),
    (re.compile(r"^Merged in .* \(pull request #(\d+)\)"), "#"),
    (re.compile(r"\(#(\d+)\)\s*$"), "#"),
    (re.compile(r"^Merge branch .* into .*\(!(\d+)\)"), "!"),
    (re.compile(r"\(!(\d+)\)\s*$"), "!"),  # a GitLab squash template with %{reference}
)
# GitLab's merge commits: "Merge branch 'x' into 'main'", then the title, then this line.
_MR_REFERENCE = re.compile(r"^See merge request (?:[\w.-]+/)+[\w.-]+!(\d+)\s*$", re.MULTILINE)


def pr_reference(subject: str, body: str = "") -> str | None:
    """The pull (or merge) request a merge or squash commit names, as its forge writes it ("#12",
    "!12"): in its subject, or in the body line GitLab writes into its merge commits."""
    for pattern, sigil in _PR_PATTERNS:
        match = pattern.search(subject)
        if match:
            return f"{sigil}{match.group(1)}"
    match = _MR_REFERENCE.search(body)
    return f"!{match.group(1)}" if match else None


def pr_number_from(subject: str, body: str = "") -> int | None:
    """The number of the pull (or merge) request a commit names, if any."""
    reference = pr_reference(subject, body)
    return int(reference[1:]) if reference else None


def pr_label(pr_ref: str | None, pr_number: int | None) -> str | None:
    """How to show it: its own reference, or "#N" for what was recorded before references were."""
    return pr_ref or (f"#{pr_number}" if pr_number else None)


# Paths that are never deployed, whatever their content (gitignore-style globs).
DOC_GLOBS = ("**/*.md", "**/*.markdown", "**/*.rst", "**/*.adoc", "**/*.txt", "docs/**", "**/LICENSE*",
             "**/CODEOWNERS", "**/OWNERS", "**/OWNERS_ALIASES", "**/*.png", "**/*.jpg", "**/*.svg", "**/*.gif")
CI_GLOBS = (".github/**", ".gitlab-ci.yml", ".gitlab/**", ".circleci/**", "**/Jenkinsfile", ".buildkite/**",
            ".drone.yml", ".travis.yml", "azure-pipelines.yml", ".pre-commit-config.yaml", "renovate.json",
            "renovate.json5", ".renovaterc*", "**/.yamllint*", "**/.editorconfig", "**/.gitignore",
            "**/.gitattributes", ".woodpecker/**", ".woodpecker.yml")


def effect_by_path(path: str) -> Effect | None:
    """Documentation and CI files have no effect on the deployed state, whatever they say."""
    if matches_any(path, CI_GLOBS):
        return Effect.CI
    if matches_any(path, DOC_GLOBS):
        return Effect.DOCS
    return None


_REVERTS = re.compile(r"(?:This reverts commit|Backout-Reverts:)\s+([0-9a-f]{7,64})")
_BACKOUT_BRANCH = re.compile(r"backout/INC-\d+/revert-([0-9a-f]{7,40})\b")


def reverted_shas(message: str) -> tuple[str, ...]:
    """The commits a message says it reverts: git's own line, Backout's trailer, or the name of
    a Backout revert branch in a merge subject. Full shas or prefixes."""
    found = [m.group(1) for m in _REVERTS.finditer(message)]
    found += [m.group(1) for m in _BACKOUT_BRANCH.finditer(message)]
    return tuple(dict.fromkeys(found))


class Revert(BaseModel):
    """A commit on a watched branch that reverts another (`target` may be a prefix)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    repo: str
    target: str
    by_sha: str
    at: datetime


def reverted_by(sha: str, reverts: Sequence[Revert]) -> Revert | None:
    """The revert that undid `sha`, unless that revert was itself reverted (a re-apply)."""
    return _reverted_by(sha, reverts, depth=0)


def _reverted_by(sha: str, reverts: Sequence[Revert], *, depth: int) -> Revert | None:
    if depth > 8:
        return None
    for revert in sorted(reverts, key=lambda r: r.at):
        if sha.startswith(revert.target) and _reverted_by(revert.by_sha, reverts, depth=depth + 1) is None:
            return revert
    return None


@lru_cache(maxsize=4096)
def glob_regex(pattern: str) -> re.Pattern[str]:
    """A path glob with gitignore's meaning (pathspec's implementation): `**` spans folders,
    `*`, `?` and `[...]` stay within one, a pattern without a slash matches at any depth, and a
    folder matches everything under it."""
    regex = GitIgnoreBasicPattern(pattern).regex
    return regex if regex is not None else re.compile(r"(?!)")


def glob_problem(pattern: str) -> str | None:
    """Why a playbook glob cannot mean what its author meant, or None. Git would take these
    literally and they would never match."""
    if not pattern.strip():
        return "is empty"
    if pattern.startswith("!"):
        return "negation (!) is not supported here: list the paths that belong"
    if re.search(r"\{[^}]*,[^}]*\}", pattern):
        return "has {a,b} alternatives, which gitignore globs do not have: list each path"
    for segment in pattern.split("/"):
        if segment.count("[") != segment.count("]") or re.search(r"\[\]|\[!?\]", segment):
            return f"has an unclosed or empty [...] in {segment!r}"
    try:
        GitIgnoreBasicPattern(pattern)
    except GitIgnorePatternError as exc:
        return f"is not a valid glob: {exc}"
    return None


def matches_any(path: str, globs: tuple[str, ...]) -> str | None:
    """The first glob that matches the path, or None."""
    for pattern in globs:
        if glob_regex(pattern).match(path):
            return pattern
    return None
