"""What a forge tells Backout of its repositories (webhooks or polling), in Backout's terms: the
commits of a push, and a pull (merge) request that changed state. Parsed at the border by the
forge adapters; no vendor shape reaches past them."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime


@dataclass(frozen=True)
class PushedCommit:
    sha: str
    author: str
    message: str
    files: tuple[str, ...] = ()  # added, modified and removed, in that order
    at: datetime | None = None

    @property
    def subject(self) -> str:
        return self.message.splitlines()[0] if self.message else ""


@dataclass(frozen=True)
class BranchPush:
    """Commits pushed to a branch of a forge's repository (`project`: `acme/gitops`)."""

    forge: str  # github, gitlab
    project: str
    branch: str
    pusher: str
    commits: tuple[PushedCommit, ...] = ()
    forced: bool = False
    deleted: bool = False


@dataclass(frozen=True)
class RequestChanged:
    """A pull (merge) request opened, pushed to, closed, merged, or marked ready, on `project`."""

    forge: str
    project: str
    number: int
    action: str  # opened, updated (new commits on its head), retargeted (its base changed), closed, merged, ready,
    # draft, other
    head: str  # its source branch
    by: str = ""
    merge_sha: str | None = None
    head_sha: str = ""  # the commit its head branch points at ("" when the forge did not say)
    base: str = ""  # the branch it would merge into
    closed: bool = False  # the request's state says closed or merged (a late or redelivered event)

    @property
    def open(self) -> bool:
        """Whether the request is open for review with this head (what review risk looks at)."""
        return self.action in ("opened", "updated", "ready", "retargeted") and bool(self.head_sha) and not self.closed


@dataclass(frozen=True)
class Delivery:
    """One verified webhook delivery: what it says, or why it says nothing Backout follows."""

    kind: str  # push, request, ignored
    push: BranchPush | None = None
    request: RequestChanged | None = None
    detail: str = field(default="")
