"""Labelled incident scenarios over generated GitOps histories, seeded and repeatable.

Each scenario takes a nine-hour slot of a world's history: background commits by other teams
all through it, the family's own commits before the incident starts, and sometimes the fix
(a revert of the culprit) after it. Families are the situations replays of real GitOps
histories showed ranking gets wrong (see docs/ranking.md).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from bench.ranking.drift import FAMILIES as DRIFT_FAMILIES
from bench.ranking.drift import DriftSpec, corrected_drift, culprit_drift
from bench.ranking.edits import Edit, Edits
from bench.ranking.worlds import GITOPS, PLATFORM, World

SLOT_BEFORE = 420  # minutes of history before the incident in each slot
SLOT_AFTER = 120

# family -> what a good answer is: "culprit" (confident, right), "tie" (not confident, the
# culprit in the top two), "abstain" (not confident: no change caused it)
FAMILIES: dict[str, str] = {
    "image": "culprit", "chart": "culprit", "values": "culprit", "resources": "culprit",
    "added_removed": "culprit", "docs_after": "culprit", "comment_after": "culprit",
    "reformat_after": "culprit", "ci_after": "culprit", "other_service_after": "culprit",
    "housekeeping": "culprit", "burst": "culprit", "shared_infra": "culprit",
    "platform_repo": "culprit", "reverted_before": "culprit", "two_close": "tie",
    "already_reverted": "abstain", "no_cause": "abstain",
    # Shaped like real histories: a service takes several effective changes an hour.
    "dense": "culprit",  # the culprit is the latest of several effective changes to the service
    "slow_burn": "tie",  # a culprit 25-90 minutes old, an innocent effective change after it
    "replay": "culprit",  # real public GitOps histories, incidents laid after real commits (replay.py)
    "replay_close": "tie",  # the same, with another effective change to the service minutes before
    **DRIFT_FAMILIES,  # out-of-band changes (bench/ranking/drift.py)
}
REAL = ("replay", "replay_close")  # not generated here


@dataclass
class Commit:
    repo: str
    at: datetime
    subject: str
    files: dict[str, str | None]
    mark: int = 0
    reverts_mark: int | None = None  # a revert: the message names that commit's sha


@dataclass
class Scenario:
    number: int
    world: str
    family: str
    service: str
    started_at: datetime
    onset: datetime | None = None  # when the key metric moved
    variant: str = ""
    culprit: int | None = None  # a commit mark
    reverted: list[int] = field(default_factory=list)  # marks that must never be proposed
    culprit_sha: str | None = None
    culprit_repo: str | None = None
    reverted_shas: list[str] = field(default_factory=list)
    drift: DriftSpec | None = None  # an out-of-band change in the slot (the culprit when no commit is)


class Writer:
    """Turns a world's state changes into commits: the files whose text changed."""

    def __init__(self, world: World) -> None:
        self.world = world
        self.commits: list[Commit] = []
        self.text = {GITOPS: self._render(GITOPS), PLATFORM: self._render(PLATFORM)}
        self.marks = 0

    def _render(self, repo: str) -> dict[str, str | None]:
        if repo == PLATFORM:
            return self.world.render_platform()
        files: dict[str, str | None] = {}
        for name in self.world.services:
            files.update(self.world.render_service(name))
        files.update(self.world.render_shared())
        return files

    def initial(self, at: datetime) -> None:
        for repo in (GITOPS, PLATFORM):
            files = {p: t for p, t in self.text[repo].items() if t is not None}
            self._add(Commit(repo=repo, at=at, subject="Initial import", files=files))

    def commit(self, edit: Edit, at: datetime, *, reverts: int | None = None) -> int:
        repo, subject = edit()
        new = self._render(repo)
        old = self.text[repo]
        files = {p: t for p, t in new.items() if t != old.get(p)}
        assert files, f"the edit {subject!r} changed no file"
        self.text[repo] = new
        return self._add(Commit(repo=repo, at=at, subject=subject, files=files, reverts_mark=reverts))

    def _add(self, commit: Commit) -> int:
        self.marks += 1
        commit.mark = self.marks
        self.commits.append(commit)
        return commit.mark


def generate(*, worlds: int, per_family: int, seed: int, end: datetime) -> tuple[list[Writer], list[Scenario]]:
    """Worlds with their commits, and the scenarios laid over them, ending before `end`."""
    rng = random.Random(seed)
    families = [f for f in FAMILIES if f not in REAL for _ in range(per_family)]
    rng.shuffle(families)
    per_world = [families[i::worlds] for i in range(worlds)]
    slot = timedelta(minutes=SLOT_BEFORE + SLOT_AFTER)
    writers, scenarios = [], []
    number = 0
    for index, assigned in enumerate(per_world):
        world = World(f"w{index}", "flux" if index % 2 == 0 else "argocd", random.Random(seed * 100 + index))
        writer = Writer(world)
        edits = Edits(world, rng)
        begin = end - slot * (len(assigned) + 1)
        writer.initial(begin)
        for n, family in enumerate(assigned):
            number += 1
            t0 = begin + slot * (n + 1) + timedelta(minutes=SLOT_BEFORE)
            scenarios.append(_slot(writer, edits, rng, family=family, t0=t0, number=number))
        writers.append(writer)
    return writers, scenarios


def _slot(writer: Writer, edits: Edits, rng: random.Random, *, family: str, t0: datetime,
          number: int) -> Scenario:
    world = writer.world
    names = list(world.services)
    target = rng.choice(names)
    others = [n for n in names if n != target]
    scenario = Scenario(number=number, world=world.name, family=family, service=target, started_at=t0)
    plan: list[tuple[float, Callable[[datetime], None]]] = []

    def at(minutes: float, edit: Edit, *, culprit: bool = False, undo: Edit | None = None) -> None:
        def run(when: datetime) -> None:
            mark = writer.commit(edit, when)
            if culprit:
                scenario.culprit = mark
            if undo is not None:
                edits.undo[mark] = undo
        plan.append((minutes, run))

    # Background: other teams' changes all through the slot, and now and then an earlier
    # effective change to this service, hours before the incident.
    for _ in range(rng.randint(6, 14)):
        minute = rng.uniform(-SLOT_BEFORE + 5, SLOT_AFTER - 5)
        other = rng.choice(others)
        kind = rng.random()
        if kind < 0.7:
            at(minute, edits.effective(other)[0])
        elif kind < 0.85:
            at(minute, rng.choice([edits.docs, edits.comment, edits.reformat])(other))
        else:
            at(minute, edits.shared_no_effect())
    if family != "no_cause" and rng.random() < 0.3:
        at(rng.uniform(-400, -150), edits.effective(target)[0])

    # Alerts fire minutes after a bad change (the rule's `for`, group_wait); some problems take
    # longer to show (a cache to expire, traffic to peak).
    delay = rng.uniform(4, 25) if rng.random() < 0.85 else rng.uniform(25, 90)
    culprit_at = -delay
    culprit_minute = culprit_at
    onset_minute = -rng.uniform(6, 10)  # for incidents no change caused
    fix_later = rng.random() < 0.4

    def reverted_pair(bad_at: float, revert_at: float) -> None:
        """A bad change to the service, and its revert ("This reverts commit ...") later."""
        bad_do, bad_undo = edits.effective(target)
        made: list[int] = []

        def bad(when: datetime) -> None:
            made.append(writer.commit(bad_do, when))
            scenario.reverted.append(made[0])

        def revert(when: datetime) -> None:
            writer.commit(bad_undo, when, reverts=made[0])
        plan.append((bad_at, bad))
        plan.append((revert_at, revert))

    def culprit_edit(edit_pair: tuple[Edit, Edit]) -> None:
        do, undo = edit_pair
        at(culprit_at, do, culprit=True, undo=undo)

    if family in ("image", "chart", "values", "resources", "added_removed"):
        culprit_edit(getattr(edits, family)(target))
    elif family in ("docs_after", "comment_after", "reformat_after", "ci_after", "other_service_after"):
        culprit_edit(edits.effective(target))
        later = rng.uniform(culprit_at + 0.5, -0.5)
        noise = {"docs_after": lambda: edits.docs(target), "comment_after": lambda: edits.comment(target),
                 "reformat_after": lambda: edits.reformat(target),
                 "ci_after": lambda: edits.ci_with_docs(target),
                 "other_service_after": lambda: edits.other_service_with_comment(target, rng.choice(others))}
        at(later, noise[family]())
    elif family == "housekeeping":
        culprit_edit(edits.effective(target))
        at(rng.uniform(culprit_at - 20, -0.5), edits.housekeeping(effective=rng.random() < 0.5))
    elif family == "burst":
        culprit_edit(edits.effective(target))
        for other in rng.sample(others, rng.randint(4, min(7, len(others)))):
            at(culprit_at + rng.uniform(-3, 3), edits.effective(other)[0])
    elif family in ("shared_infra", "platform_repo"):
        culprit_edit(edits.shared(platform=family == "platform_repo"))
    elif family == "reverted_before":
        reverted_pair(rng.uniform(-240, -150), rng.uniform(-130, -70))
        culprit_edit(edits.effective(target))
    elif family == "already_reverted":
        reverted_pair(rng.uniform(-120, -60), rng.uniform(-50, -15))
        fix_later = False
    elif family == "dense":
        # Real services take an effective change every 10 to 40 minutes; the culprit is the latest.
        culprit_edit(edits.effective(target))
        earlier = culprit_at
        for _ in range(rng.randint(2, 5)):
            earlier -= rng.uniform(10, 40)
            at(earlier, edits.effective(target)[0])
    elif family == "slow_burn":
        # The problem takes 25 to 90 minutes to show; meanwhile an innocent change went out.
        culprit_at = culprit_minute = -rng.uniform(25, 90)
        culprit_edit(edits.effective(target))
        innocent = rng.uniform(culprit_at + 5, -3)
        scenario.variant = f"innocent {-innocent:.0f}m before"
        at(innocent, edits.effective(target)[0])
        fix_later = False
    elif family == "two_close":
        first = edits.effective(target)
        second = edits.effective(target)
        gap = rng.uniform(3, 12)
        pick_second = rng.random() < 0.5
        at(culprit_at - gap, first[0], culprit=not pick_second)
        at(culprit_at, second[0], culprit=pick_second)
        culprit_minute = culprit_at if pick_second else culprit_at - gap
        fix_later = False
    elif family == "drift":  # the culprit is a live edit: no commit
        scenario.drift = culprit_drift(rng, culprit_at)
        scenario.variant = scenario.drift.source
    elif family == "drift_corrected_before":
        culprit_edit(edits.effective(target))
        scenario.drift = corrected_drift(rng, culprit_at)
    elif family == "no_cause":
        variant = rng.choice(["quiet", "no_effect", "earlier", "shared_earlier", "elsewhere", "during",
                              "innocent_nearby"])
        scenario.variant = variant
        if variant == "during":  # a change applied after the metric moved, before the alert fired
            at(onset_minute + rng.uniform(1, 4), edits.effective(target)[0])
        elif variant == "innocent_nearby":  # an effective change shortly before: nothing tells it apart
            at(rng.uniform(-45, -15), edits.effective(target)[0])
        if variant == "no_effect":
            for _ in range(rng.randint(1, 3)):
                at(rng.uniform(-40, -1), rng.choice([edits.docs, edits.comment, edits.reformat,
                                                     edits.ci_with_docs])(target))
        elif variant == "earlier":
            at(rng.uniform(-330, -150), edits.effective(target)[0])
        elif variant == "shared_earlier":
            at(rng.uniform(-330, -150), edits.shared(platform=rng.random() < 0.5)[0])
        elif variant == "elsewhere":
            for other in rng.sample(others, 3):
                at(rng.uniform(-30, -1), edits.effective(other)[0])
        fix_later = False

    # The key metric: it moves a minute or so after the culprit is applied, or (slow problems,
    # or no change at all) a few minutes before the alert fires.
    if family in ("no_cause", "already_reverted"):
        onset = onset_minute if family == "no_cause" else -rng.uniform(4, 10)
    else:
        onset = min(-1.0, max(culprit_minute + rng.uniform(0.5, 3), -rng.uniform(4, 10)))
    scenario.onset = t0 + timedelta(minutes=onset)

    if fix_later and family != "two_close":
        def fix(when: datetime) -> None:
            if scenario.culprit is not None and scenario.culprit in edits.undo:
                writer.commit(edits.undo[scenario.culprit], when, reverts=scenario.culprit)
        plan.append((rng.uniform(15, SLOT_AFTER - 10), fix))

    for minutes, run in sorted(plan, key=lambda item: item[0]):
        run(t0 + timedelta(minutes=minutes) - timedelta(minutes=2))  # applied = commit + 2m sync
    return scenario
