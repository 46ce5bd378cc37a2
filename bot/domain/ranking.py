"""Ranking suspects: which applied changes most likely caused an incident, and why. Pure."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from types import MappingProxyType

from bot.domain.changes import (
    NO_EFFECT,
    AppliedSource,
    Change,
    Effect,
    FileChange,
    Revert,
    matches_any,
    reverted_by,
)
from bot.domain.durations import format_duration
from bot.domain.gitops import Failure
from bot.domain.playbooks import Playbook, PlaybookRepo, RepoRole, SuspectPolicy
from bot.domain.suspects import ONSET_GRACE, Ranking, RankingStatus, Suspect

# A suspect's score is relevance x timing, each a factor in (0, 1] with its reason:
#   timing: how likely a bad change is to show first at this age (the hazard of the time from
#     being applied to the reference: the metric's onset when known, else the incident's start);
#   bake: a later effective change to the service was applied after it with no alert in between,
#     so it had already run that long in production without showing: weak evidence;
#   scope: the service's own paths, its application repository, or its shared paths;
#   effect: what the change did there (an image or version first, labels only last);
#   breadth: the share of the change's effect that falls on this service;
#   revert: a revert restores a state that ran before, so it is a weaker suspect.
# See docs/ranking.md for why each exists and what the benchmark says of it.


@dataclass(frozen=True)
class Hazard:
    """When a bad change shows: most within minutes of the rollout (the fast part), some only
    after a cache expires or traffic peaks (the slow tail). A mixture of two exponentials, fitted
    on the benchmark's generated families (docs/ranking.md)."""

    fast_share: float
    fast_half_life: timedelta
    slow_half_life: timedelta
    # An alert fires a rule's `for` and Alertmanager's `group_wait` after the problem begins: a
    # change followed by another within this had no chance to alert, so that part is no bake.
    alert_delay: timedelta = timedelta(0)

    def survival(self, age: timedelta) -> float:
        """The share of bad changes that have not shown yet at `age`."""
        return (self.fast_share * _halved(age, self.fast_half_life)
                + (1 - self.fast_share) * _halved(age, self.slow_half_life))

    def timing(self, age: timedelta) -> float:
        """The hazard at `age` against the hazard at once, in (0, 1]: how likely a bad change is
        to show now, given it has not yet. It falls with the fast part, then flattens on the tail."""
        def density(at: timedelta) -> float:
            return (self.fast_share * _halved(at, self.fast_half_life) / self.fast_half_life.total_seconds()
                    + (1 - self.fast_share) * _halved(at, self.slow_half_life) / self.slow_half_life.total_seconds())
        age = max(age, timedelta(0))
        return density(age) / self.survival(age) / density(timedelta(0))

    def bake(self, baked: timedelta) -> float:
        """A change that ran `baked` with no alert before the next change: the share of bad
        changes that would have stayed quiet that long."""
        return self.survival(max(baked - self.alert_delay, timedelta(0)))


def _halved(age: timedelta, half_life: timedelta) -> float:
    return math.exp(-math.log(2) * (age / half_life))


# Fitted with bench/ranking/fit.py on the generated families (seed 7), checked on seed 11 and the
# replay family: 90% of bad changes show with a 10-minute half-life, the rest with an hour's; an
# alert takes about 5 minutes (`for`, group_wait) to fire after the problem begins.
HAZARD = Hazard(fast_share=0.9, fast_half_life=timedelta(minutes=10), slow_half_life=timedelta(minutes=60),
                alert_delay=timedelta(minutes=5))
SCOPE_OWN, SCOPE_APP, SCOPE_SHARED = 1.0, 0.8, 0.8
EFFECT_WEIGHTS: dict[Effect, float] = {
    Effect.IMAGE: 1.0, Effect.VERSION: 1.0, Effect.CONFIG: 0.9, Effect.RESOURCE: 0.9, Effect.CRD: 0.9,
    Effect.POLICY: 0.9, Effect.SCALE: 0.85, Effect.OTHER: 0.8, Effect.METADATA: 0.4,
}
REVERT_FACTOR = 0.5
UNNAMED_FACTOR = 0.5  # a failed reconciliation names other changes: this one reconciled
DISCOUNT = 0.05  # no effect, reverted, ruled out, or applied after the onset: shown, never a candidate
_NONE_RULED_OUT: Mapping[str, str] = MappingProxyType({})


def rank_changes(
    *,
    changes: Iterable[Change],
    playbook: Playbook | None,
    service: str,
    started_at: datetime,
    now: datetime,
    reverts: Sequence[Revert] = (),
    onset: datetime | None = None,
    failures: Sequence[Failure] = (),
    dry: Sequence[Change] = (),
    ruled_out: Mapping[str, str] = _NONE_RULED_OUT,
    limit: int = 10,
    drift: Sequence[Suspect] = (),
) -> Ranking:
    """Rank the changes applied in the playbook's lookback window before the incident started.

    Candidates (changes with an effect on the service, not reverted, applied before the
    metric's onset) come first, those a failed reconciliation names ahead of the rest, best
    first; the rest follow with the reason they are not.
    Confidence needs evidence (the top candidate's score at the playbook's floor) and a margin
    (`tie_ratio` times the next candidate's score); otherwise the answer says why not.
    `ruled_out` maps a sha a responder ruled out to the words that say so: never a candidate.
    `drift`: out-of-band changes already scored (`bot.domain.ranking_drift`), ranked beside the commits."""
    if playbook is None or not playbook.repos:
        return Ranking(status=RankingStatus.RANKED, ranked_at=now, reason=(
            f"No playbook names the repositories that deploy {service}, so no change can be "
            "tied to it: no confident suspect."))
    policy = playbook.suspects
    window_start = started_at - policy.lookback
    repos = {entry.repo: entry for entry in playbook.repos}
    known = [r for r in reverts if r.at <= now]
    suspects: list[Suspect] = []
    elsewhere = 0
    # Each change's first failure (the failure it was new in), by exact sha: failure ranges are
    # first-parent shas from the mirror.
    failed_in: dict[tuple[str, str], Failure] = {}
    for failed in sorted(failures, key=lambda f: f.at):
        for sha in failed.shas:
            failed_in.setdefault((failed.repo or "", sha), failed)
    seen: set[tuple[str, str]] = set()
    window: list[tuple[Change, PlaybookRepo, datetime, Failure | None]] = []
    for change in changes:
        entry = repos.get(change.repo)
        if entry is None or (change.repo, change.sha) in seen:
            continue
        seen.add((change.repo, change.sha))
        applied = change.applied(sync_delay=policy.sync_delay)
        failure = failed_in.get((change.repo, change.sha))
        if failure is None and not window_start <= applied <= started_at:
            continue  # outside the window; a change applied after the start cannot be the cause
        window.append((change, entry, applied, failure))

    def score(change: Change, entry: PlaybookRepo, applied: datetime, failure: Failure | None,
              after: tuple[str, datetime] | None = None) -> Suspect | None:
        suspect = _score(change, entry, applied=applied, started_at=started_at, onset=onset,
                         reverts=[r for r in known if r.repo == change.repo], failure=failure,
                         others_failed=failures[0] if failed_in and failure is None else None, after=after)
        if suspect is not None and change.sha in ruled_out:
            suspect = _rule_out(suspect, ruled_out[change.sha])
        return suspect

    # Bake time needs the candidates' applied times first: score once without it, then again.
    first = [score(*item) for item in window]
    reference = onset if onset is not None else started_at
    applied_candidates = sorted((s.applied_at, s.short) for s in first
                                if s is not None and s.candidate(onset) and s.applied_at <= reference + ONSET_GRACE)
    for (change, entry, applied, failure), suspect in zip(window, first, strict=True):
        if suspect is not None and failure is None and suspect.candidate(onset):
            after = next(((short, at) for at, short in applied_candidates if at > applied), None)
            if after is not None:
                suspect = score(change, entry, applied, failure, after)
        if suspect is None:
            elsewhere += 1
        elif change.dry_sha:
            suspects.append(_as_dry(suspect, change, dry))
        else:
            suspects.append(suspect)
    suspects += [_rule_out(s, ruled_out[s.sha]) if s.sha in ruled_out else s for s in drift]
    # Best first, and the order follows the scores: a failed reconciliation's changes lead (their
    # timing is the controller's word), then every suspect by score, the more recent on a tie.
    suspects.sort(key=lambda s: (not (s.failed is not None and s.candidate(onset)), -s.score,
                                 not s.candidate(onset), started_at - s.applied_at))
    # A dry source commit may stand for several hydrated commits, and be watched itself: once each.
    unique: dict[tuple[str, str], Suspect] = {}
    for suspect in suspects:
        unique.setdefault((suspect.repo, suspect.sha), suspect)
    suspects = list(unique.values())
    confident, reason = _verdict(suspects, onset=onset, service=service, policy=policy, elsewhere=elsewhere)
    ranking = Ranking(status=RankingStatus.RANKED, ranked_at=now, confident=confident, reason=reason,
                      suspects=tuple(suspects[:limit]), onset_at=onset, floor=policy.min_confidence)
    if ranking.best is None or ranking.best.score <= 0:
        return ranking
    evidence = sum(s.score for s in suspects if s.candidate(onset)) + policy.min_confidence
    return ranking.model_copy(update={"confidence": round(min(1.0, ranking.best.score / evidence), 3)})


def _rule_out(suspect: Suspect, why: str) -> Suspect:
    """A responder's "not this one" is the strongest evidence there is: shown, never a candidate."""
    factors = suspect.reasons[-1].removeprefix("score ")
    score = round(suspect.score * DISCOUNT, 3)
    return suspect.model_copy(update={
        "ruled_out": why, "score": score,
        "reasons": (*suspect.reasons[:-1], why, f"score {factors} x ruled out {DISCOUNT:.2f}")})


def _verdict(suspects: list[Suspect], *, onset: datetime | None, service: str, policy: SuspectPolicy,
             elsewhere: int) -> tuple[bool, str]:
    window = format_duration(policy.lookback)
    candidates = [s for s in suspects if s.candidate(onset)]
    if not candidates:
        if not suspects:
            other = f" ({elsewhere} touched only other services)" if elsewhere else ""
            return False, (f"No change to {service} was applied in the {window} before the incident "
                           f"started{other}: no confident suspect.")
        idle = sum(not s.effective for s in suspects)
        undone = sum(s.reverted_by is not None for s in suspects)
        late = len(suspects) - idle - undone
        parts = [f"{idle} with no effect on the deployed state" if idle else "",
                 f"{undone} already reverted" if undone else "",
                 f"{late} applied after the problem began" if late else ""]
        return False, (f"No change with an effect on {service} can explain it ("
                       + ", ".join(p for p in parts if p) + "): no confident suspect.")
    top = candidates[0]
    floor = policy.min_confidence
    name = f"{top.short} ({_clip(top.subject)})"
    if top.is_revert:
        return False, (f"The strongest candidate, {name}, is itself a revert: restoring a state that ran "
                       "before rarely causes an incident. No confident suspect: check it by hand.")
    if top.score < floor:
        return False, (f"The strongest candidate, {name}, scores {top.score:.2f}, below the {floor:.2f} "
                       "evidence floor: no confident suspect.")
    if len(candidates) > 1:
        runner = candidates[1]
        if top.score < policy.tie_ratio * runner.score:
            return False, (f"Both likely: {name} ({top.score:.2f}) and {runner.short} "
                           f"({_clip(runner.subject)}, {runner.score:.2f}) are less than "
                           f"{policy.tie_ratio:g}x apart. No confident suspect: check both.")
        ahead = f"{top.score / runner.score:.1f}x" if runner.score > 0 else "far ahead of"
        margin = f"{ahead} the next candidate, {runner.short}"
    else:
        margin = f"the only change with an effect on {service} in the {window} before"
    return True, f"{name} scores {top.score:.2f} (evidence floor {floor:.2f}), {margin}."


def _score(change: Change, entry: PlaybookRepo, *, applied: datetime, started_at: datetime,
           onset: datetime | None, reverts: Sequence[Revert], failure: Failure | None = None,
           others_failed: Failure | None = None, after: tuple[str, datetime] | None = None) -> Suspect | None:
    if entry.role is RepoRole.APP:
        own, shared = list(change.files), []
    else:
        own = [f for f in change.files if _hits(f, entry.paths)]
        shared = [f for f in change.files if f not in own and _hits(f, entry.shared_paths)]
    if not own and not shared:
        return None
    scoped = own + shared
    reasons: list[str] = []
    factors: list[tuple[str, float]] = []

    source = "" if change.applied_source is not AppliedSource.COMMIT_TIME else " (commit time + sync delay)"
    when = f"applied by {change.applied_by} at {applied:%H:%M:%S} UTC, " if change.applied_by else "applied "
    late = failure is None and onset is not None and applied > onset + ONSET_GRACE
    if failure is not None:
        # The controller itself names this revision: that is the timing evidence.
        reasons.append(failure.describe())
        factors.append(("failed to apply", 1.0))
    elif onset is not None and not late:
        before = max(onset - applied, timedelta(0))
        reasons.append(f"{when}{_ago(before)} before the problem began at {onset:%H:%M} UTC "
                       f"({_ago(started_at - onset)} before the alert){source}")
        factors.append(("timing", HAZARD.timing(before)))
    else:
        before = started_at - applied
        reasons.append(f"{when}{_ago(before)} before the incident started{source}")
        factors.append(("timing", HAZARD.timing(before)))
    if after is not None:
        # It ran from the end of its rollout (when the controller says so) until the next change began.
        later, at = after
        ran = at - max(applied, min(change.healthy_at or applied, at))
        reasons.append(f"ran {_ago(ran)} before {later} was applied, with no alert")
        factors.append(("bake", HAZARD.bake(ran)))

    if entry.role is RepoRole.APP:
        factors.append(("scope", SCOPE_APP))
        reasons.append(f"a change to the service's application repository {change.repo}")
    elif own:
        factors.append(("scope", SCOPE_OWN))
        reasons.append(f"touched the service's paths: {_list([f.path for f in own])}")
    else:
        factors.append(("scope", SCOPE_SHARED))
        reasons.append(f"touched shared paths: {_list([f.path for f in shared])}")

    working = [f for f in scoped if f.effective]
    effective = bool(working)
    if effective:
        effects = {e for f in working for e in _effects(f, change)} - NO_EFFECT
        weight = max(EFFECT_WEIGHTS.get(e, EFFECT_WEIGHTS[Effect.OTHER]) for e in effects)
        factors.append(("effect", weight))
        notes = [note for f in working for note in f.notes]
        reasons.append(f"changed {_effect_names(effects)}" + (f": {'; '.join(notes[:3])}" if notes else ""))
        everywhere = [f for f in change.files if f.effective]
        if len(everywhere) > len(working):
            share = len(working) / len(everywhere)
            factors.append(("breadth", 0.5 + 0.5 * share))
            reasons.append(f"broad: {len(everywhere) - len(working)} of its {len(everywhere)} files "
                           "with an effect are outside this service's paths")
    else:
        kinds = _effect_names({e for f in scoped for e in f.effects})
        reasons.append(f"no effect on the deployed state ({kinds} only)")
        factors.append(("no effect", DISCOUNT))

    lines = sum(f.lines for f in scoped) if any(f.lines for f in change.files) else (
        change.additions + change.deletions)
    reasons.append(f"size here: {lines} line{'s' * (lines != 1)} in {len(scoped)} file{'s' * (len(scoped) != 1)}")
    is_revert = change.is_revert or any(r.by_sha == change.sha for r in reverts)
    if is_revert:
        factors.append(("revert", REVERT_FACTOR))
        reasons.append("is itself a revert: it restores an earlier state")
    undone = reverted_by(change.sha, reverts)
    if undone is not None:
        factors.append(("reverted", DISCOUNT))
        reasons.append(f"reverted by {undone.by_sha[:7]}: already undone on the branch, not proposed again")
    if others_failed is not None:
        factors.append(("not the failed revision", UNNAMED_FACTOR))
        reasons.append(f"not among the changes {others_failed.label} failed to apply at "
                       f"{others_failed.revision[:7]}")
    if late and onset is not None:
        factors.append(("after onset", DISCOUNT))
        reasons.append(f"applied after the problem began at {onset:%H:%M} UTC: it cannot have started it")

    score = 1.0
    for _, factor in factors:
        score *= factor
    reasons.append("score " + " x ".join(f"{label} {value:.2f}" for label, value in factors))
    return Suspect(
        repo=change.repo, sha=change.sha, subject=change.subject, author=change.author,
        applied_at=applied, applied_source=change.applied_source,
        score=round(min(1.0, max(0.0, score)), 3), reasons=tuple(reasons), pr_number=change.pr_number,
        pr_ref=change.pr_ref, effective=effective, reverted_by=undone.by_sha if undone else None, is_revert=is_revert,
        applied_by=change.applied_by, failed=failure.describe() if failure is not None else None,
    )


def _as_dry(suspect: Suspect, hydrated: Change, dry: Sequence[Change]) -> Suspect:
    """Argo CD's source hydrator rendered `hydrated` from a dry source commit: that commit is the
    suspect people read and revert (the hydrated branch is rewritten at the next hydration); the
    hydrated commit, whose rendered diff gave the evidence, is named beside it."""
    source = next((c for c in dry if hydrated.dry_sha and c.sha.startswith(hydrated.dry_sha)), None)
    where = f"{hydrated.repo}@{hydrated.sha}"
    if source is None:
        note = (f"rendered by Argo CD's source hydrator from dry commit {(hydrated.dry_sha or '')[:7]}, which "
                "no watched repository holds: add the dry source repository to revert it there")
        return suspect.model_copy(update={"reasons": (*suspect.reasons[:-1], note, suspect.reasons[-1])})
    note = (f"dry source commit of {hydrated.repo} {hydrated.short} (rendered by Argo CD's source hydrator): "
            "the evidence is the rendered change; the revert is of the dry commit")
    return suspect.model_copy(update={
        "repo": source.repo, "sha": source.sha, "subject": source.subject, "author": source.author,
        "pr_number": source.pr_number, "pr_ref": source.pr_ref, "hydrated": where,
        "reasons": (*suspect.reasons[:-1], note, suspect.reasons[-1])})


def _effects(file: FileChange, change: Change) -> tuple[Effect, ...]:
    """A file's effects; one imported before classification existed is an unknown effect
    (or an image change, as the old import flagged it)."""
    if file.effects:
        return file.effects
    return (Effect.IMAGE,) if change.image_bump else (Effect.OTHER,)


def _effect_names(effects: set[Effect]) -> str:
    names = {Effect.IMAGE: "an image", Effect.VERSION: "a version", Effect.CONFIG: "configuration",
             Effect.RESOURCE: "resources added or removed", Effect.CRD: "a CRD", Effect.POLICY: "a policy",
             Effect.SCALE: "replicas or resources", Effect.OTHER: "files of unknown effect",
             Effect.METADATA: "labels or annotations", Effect.DOCS: "docs", Effect.CI: "CI",
             Effect.COSMETIC: "comments or whitespace"}
    ordered = sorted(effects, key=list(Effect).index)
    return ", ".join(names[e] for e in ordered) or "nothing"


def _hits(file: FileChange, globs: tuple[str, ...]) -> bool:
    return bool(matches_any(file.path, globs) or (file.old_path and matches_any(file.old_path, globs)))


def _list(paths: list[str], most: int = 3) -> str:
    shown = ", ".join(paths[:most])
    return shown + (f" and {len(paths) - most} more" if len(paths) > most else "")


def _ago(delta: timedelta) -> str:
    minutes = int(delta.total_seconds() // 60)
    if minutes < 1:
        return f"{int(delta.total_seconds())}s"
    return format_duration(timedelta(minutes=minutes))


def _clip(text: str, most: int = 60) -> str:
    return text if len(text) <= most else text[: most - 1] + "…"
