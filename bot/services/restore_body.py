"""What a restore pull request says: why the revision counts as good, every commit it undoes with
its author and revert-safety flags, the pins, what it does to the cluster once merged, and the
warning that the restored paths beside shared paths at head may be a combination that never ran."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from bot.domain.text import md
from bot.services.incidents import IncidentView
from bot.services.pull_requests import MERGE_NOTE

if TYPE_CHECKING:
    from bot.services.restore import RestorePlan


@dataclass(frozen=True)
class Undone:
    """A commit the restore undoes on the service's paths."""

    sha: str
    author: str
    subject: str
    warnings: tuple[str, ...] = ()  # its revert-safety flags


def restore_body(view: IncidentView, *, plan: RestorePlan, pinned: Sequence[str], unpinned: Sequence[str],
                 page_url: str | None, noun: str = "pull request") -> str:
    """The restore PR's body. `noun`: "merge request" on GitLab."""
    good = plan.good
    lines = [f"Backout opened this {noun} for **{plan.incident_ref}**: {md(view.incident.title)} "
             f"(severity {view.incident.severity.value}, service {md(plan.service)}).",
             *([f"Incident page: {page_url}"] if page_url else []),
             "", f"It puts {_paths(plan.paths)} back to their content at **{good.short}**, the last known good "
             f"revision of {md(plan.service)} ({md(good.subject)} by {md(good.author)}), in one commit on the head "
             "of the watched branch.", "", f"### Why {good.short} counts as good", ""]
    lines += [f"- {md(reason)}" for reason in good.reasons]
    lines += ["", f"### Commits it undoes ({len(plan.undone)})", ""]
    for undone in plan.undone:
        flags = "; ".join(md(w) for w in undone.warnings)
        lines.append(f"- {undone.sha[:7]} {md(undone.subject)} by {md(undone.author)}"
                     + (f": ⚠️ {flags}" if flags else ""))
    if plan.undone_more:
        lines.append(f"- … and older ones: only the newest commits after {good.short} were read; the diff has them all")
    if not plan.undone:
        lines.append("None known on these paths since the last refresh: check the diff.")
    if pinned or unpinned:
        lines += ["", "### Pinned against image automation", "",
                  "Image automation would undo a plain restore at its next run. This restore also:"]
        lines += [f"- {md(p)}" for p in pinned]
        lines += [f"- ⚠️ not pinned: {md(u)}" for u in unpinned]
    lines += ["", "### What it does to the cluster once merged", "",
              f"The controller that deploys {md(plan.service)} from {md(plan.repo)} applies the new head at its next "
              f"reconciliation: the objects under these paths go back to what ran at {good.short}. Objects added "
              "since are deleted only where the controller prunes (Flux `prune: true`, Argo CD "
              "`syncPolicy.automated.prune`); elsewhere they stay until removed by hand. Backout then follows the "
              "rollout and verifies the key metric as after a revert.",
              "", "### ⚠️ A combination that may never have run", "",
              f"Only {_paths(plan.paths)} go back to {good.short}; "
              + (f"the shared paths {_paths(plan.exclude)} stay as they are at head (name them with "
                 "`--include` to restore them too). " if plan.exclude else "")
              + "Everything else in the repository stays at head, so this state may never have run together: "
              "review what the other paths changed since " + good.short + "."]
    if plan.included:
        lines.append(f"Shared paths restored because a responder named them: {_paths(plan.included)}.")
    lines += ["", MERGE_NOTE, f"<!-- backout {plan.incident_ref} restore {good.sha} -->"]
    return "\n".join(lines)


def _paths(paths: Sequence[str]) -> str:
    return ", ".join(f"`{md(p)}`" for p in paths)


def restore_summary(plan: RestorePlan) -> str:
    """A few plain lines for chat: the good revision and why, the paths, the commits it undoes."""
    good = plan.good
    lines = [f"Restore {plan.service} on {plan.repo} to last known good {good.short} ({good.subject}, "
             f"{good.author}): {'; '.join(good.reasons)}.", f"Paths: {', '.join(plan.paths)}"
             + (f" (shared, left as at head: {', '.join(plan.exclude)})" if plan.exclude else "")]
    lines += [f"Undoes {u.sha[:7]} {u.subject} ({u.author})" + (f" ⚠️ {'; '.join(u.warnings)}" if u.warnings else "")
              for u in plan.undone[:10]]
    if len(plan.undone) > 10:
        lines.append(f"… and {len(plan.undone) - 10} more")
    lines.append("The service's paths at the good revision beside everything else at head may be a combination "
                 "that never ran.")
    return "\n".join(lines)
