"""Ranking suspects on plain data: timing, scope, effect, breadth, reverts, onset and confidence."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from bot.domain.changes import (
    AppliedSource,
    Change,
    Effect,
    FileChange,
    Revert,
    effect_by_path,
    matches_any,
    pr_number_from,
    reverted_by,
    reverted_shas,
)
from bot.domain.playbooks import Playbook
from bot.domain.ranking import rank_changes
from bot.domain.suspects import Ranking, RankingStatus

START = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
PLAYBOOK = Playbook.model_validate({
    "name": "checkout", "service": "checkout", "match": {"service": "checkout"},
    "repos": [{"repo": "gitops", "paths": ["apps/checkout/**"], "shared_paths": ["infrastructure/**"]},
              {"repo": "platform", "paths": [], "shared_paths": ["policies/**"]},
              {"repo": "checkout-app", "role": "app"}],
    "suspects": {"lookback": "6h", "sync_delay": "2m"},
})
IMAGE = (Effect.IMAGE,)


def f(path: str, *effects: Effect, lines: int = 4, notes: tuple[str, ...] = ()) -> FileChange:
    return FileChange(path=path, status="M", added=lines // 2, deleted=lines - lines // 2,
                      effects=effects or (Effect.CONFIG,), notes=notes)


def change(sha: str, minutes_before: float, *files: FileChange, repo: str = "gitops",
           subject: str = "a change", applied_at: datetime | None = None) -> Change:
    return Change(
        repo=repo, sha=sha * 40, parents=("0" * 40,), author="Dev <dev@example.com>",
        committed_at=START - timedelta(minutes=minutes_before), subject=subject, files=files,
        additions=sum(x.added for x in files), deletions=sum(x.deleted for x in files), applied_at=applied_at,
        applied_source=AppliedSource.DEPLOYMENT if applied_at else AppliedSource.COMMIT_TIME,
    )


def rank(*changes: Change, reverts: tuple[Revert, ...] = (), onset: datetime | None = None,
         playbook: Playbook = PLAYBOOK) -> Ranking:
    return rank_changes(changes=changes, playbook=playbook, service="checkout", started_at=START,
                        now=START + timedelta(minutes=5), reverts=reverts, onset=onset)


def shas(ranking: Ranking) -> list[str]:
    return [s.sha[0] for s in ranking.suspects]


def test_a_recent_image_bump_to_the_service_is_a_confident_suspect() -> None:
    """Applied minutes before the start, on the service's paths, changing the image: first and confident."""
    ranking = rank(change("a", 10, f("apps/checkout/deploy.yaml", Effect.IMAGE, notes=("image checkout 1 -> 2",))),
                   change("b", 200, f("apps/checkout/config.yaml")))
    assert ranking.status is RankingStatus.RANKED
    assert ranking.confident, ranking.reason
    assert shas(ranking) == ["a", "b"]
    top = ranking.suspects[0]
    assert top.reasons[0] == "applied 8m before the incident started (commit time + sync delay)"
    assert "touched the service's paths: apps/checkout/deploy.yaml" in top.reasons
    assert "changed an image: image checkout 1 -> 2" in top.reasons
    assert top.reasons[-1].startswith("score timing 0.95 x scope 1.00 x effect 1.00")
    assert "477.5x the next candidate, bbbbbbb" in ranking.reason  # it ran 3h before a, with no alert


def test_a_docs_or_comment_commit_after_the_culprit_is_shown_last_and_never_confident() -> None:
    """No effect on the deployed state: last, with the reason, whatever its timing."""
    ranking = rank(change("a", 30, f("apps/checkout/deploy.yaml", Effect.IMAGE)),
                   change("d", 2, f("apps/checkout/README.md", Effect.DOCS)),
                   change("c", 3, f("apps/checkout/deploy.yaml", Effect.COSMETIC)))
    assert shas(ranking) == ["a", "d", "c"]
    assert ranking.confident
    docs = ranking.suspects[1]
    assert not docs.effective
    assert "no effect on the deployed state (docs only)" in docs.reasons
    assert "no effect on the deployed state (comments or whitespace only)" in ranking.suspects[2].reasons
    only_docs = rank(change("d", 2, f("apps/checkout/README.md", Effect.DOCS)))
    assert not only_docs.confident
    assert "1 with no effect on the deployed state" in only_docs.reason


def test_signals_count_only_the_files_under_the_service_paths() -> None:
    """Another service's image bump in the same commit is not an image change for this one."""
    mixed = change("m", 3, f("apps/payments/deploy.yaml", Effect.IMAGE),
                   f("apps/checkout/deploy.yaml", Effect.COSMETIC, lines=2),
                   f(".github/workflows/ci.yaml", Effect.CI, lines=40))
    ranking = rank(change("a", 25, f("apps/checkout/deploy.yaml", Effect.IMAGE)), mixed)
    assert shas(ranking) == ["a", "m"]
    assert ranking.confident
    assert not ranking.suspects[1].effective
    assert "size here: 2 lines in 1 file" in ranking.suspects[1].reasons


def test_a_broad_change_counts_for_the_share_of_its_effect_on_the_service() -> None:
    """A housekeeping commit over ten services is a weaker suspect than a targeted one."""
    broad = change("h", 5, *[f(f"apps/svc{n}/deploy.yaml") for n in range(9)], f("apps/checkout/deploy.yaml"))
    ranking = rank(broad, change("a", 15, f("apps/checkout/deploy.yaml", Effect.IMAGE)))
    assert shas(ranking) == ["a", "h"]
    assert "broad: 9 of its 10 files with an effect are outside this service's paths" in ranking.suspects[1].reasons


def test_two_effective_changes_close_together_are_a_tie_not_a_coin_toss() -> None:
    """Scores less than tie_ratio apart: not confident, both named."""
    ranking = rank(change("a", 10, f("apps/checkout/deploy.yaml", Effect.IMAGE)),
                   change("b", 18, f("apps/checkout/config.yaml", Effect.CONFIG)))
    assert not ranking.confident
    assert ranking.reason.startswith("Both likely:")
    assert "aaaaaaa" in ranking.reason
    assert "bbbbbbb" in ranking.reason


def test_a_lone_effective_change_on_shared_paths_is_confident() -> None:
    """Shared infrastructure can be the confident answer when nothing else in the window competes."""
    ranking = rank(change("s", 20, f("infrastructure/ingress.yaml", Effect.VERSION)),
                   change("d", 5, f("apps/checkout/README.md", Effect.DOCS)))
    assert ranking.confident, ranking.reason
    assert shas(ranking)[0] == "s"
    assert "touched shared paths: infrastructure/ingress.yaml" in ranking.suspects[0].reasons
    assert "the only change with an effect on checkout" in ranking.reason


def test_several_repositories_rank_together() -> None:
    """GitOps, platform and application repositories in one list, best first."""
    ranking = rank(change("p", 12, f("policies/registry.yaml", Effect.POLICY), repo="platform"),
                   change("g", 60, f("apps/checkout/deploy.yaml", Effect.IMAGE)),
                   change("k", 150, f("src/api.py", Effect.OTHER), repo="checkout-app"))
    assert [s.repo for s in ranking.suspects] == ["platform", "gitops", "checkout-app"]
    assert "a change to the service's application repository checkout-app" in ranking.suspects[2].reasons
    assert ranking.confident


def test_a_reverted_change_is_shown_as_reverted_and_never_proposed() -> None:
    """Its revert is on the branch: not a candidate, and the revert itself is never confident."""
    revert = Revert(repo="gitops", target="a" * 12, by_sha="r" * 40, at=START - timedelta(minutes=10))
    ranking = rank(change("a", 40, f("apps/checkout/deploy.yaml", Effect.IMAGE)),
                   change("r", 12, f("apps/checkout/deploy.yaml", Effect.IMAGE), subject='Revert "bump"'),
                   reverts=(revert,))
    assert not ranking.confident
    assert shas(ranking) == ["r", "a"]
    undone = ranking.suspects[1]
    assert undone.reverted_by == "r" * 40
    assert "reverted by rrrrrrr: already undone on the branch, not proposed again" in undone.reasons
    assert "is itself a revert" in ranking.reason
    assert "is itself a revert: it restores an earlier state" in ranking.suspects[0].reasons


def test_a_revert_known_only_after_the_ranking_time_does_not_count() -> None:
    """Ranking at time T sees the reverts committed by T, not the fix made later."""
    later = Revert(repo="gitops", target="a" * 40, by_sha="r" * 40, at=START + timedelta(hours=1))
    ranking = rank(change("a", 10, f("apps/checkout/deploy.yaml", Effect.IMAGE)), reverts=(later,))
    assert ranking.confident
    assert ranking.suspects[0].reverted_by is None


def test_a_revert_of_the_revert_reapplies_the_change() -> None:
    """X reverted by R, R reverted by R2: X is in effect again."""
    reverts = [Revert(repo="g", target="x" * 7, by_sha="r" * 40, at=START),
               Revert(repo="g", target="r" * 40, by_sha="s" * 40, at=START + timedelta(minutes=1))]
    assert reverted_by("x" * 40, reverts) is None
    assert reverted_by("r" * 40, reverts) == reverts[1]
    assert reverted_by("x" * 40, reverts[:1]) == reverts[0]


def test_the_metric_onset_sets_the_clock_and_rules_out_later_changes() -> None:
    """Timing counts from the onset; a change applied after it cannot have started it."""
    onset = START - timedelta(minutes=10)
    early = change("a", 16, f("apps/checkout/deploy.yaml", Effect.IMAGE))  # applied 4m before the onset
    late = change("b", 10, f("apps/checkout/deploy.yaml", Effect.IMAGE))  # applied 2m after it
    without = rank(early, late)
    assert not without.confident  # six minutes apart: a tie without the metric
    ranking = rank(early, late, onset=onset)
    assert ranking.confident, ranking.reason
    assert shas(ranking) == ["a", "b"]
    assert ranking.suspects[0].reasons[0].startswith("applied 4m before the problem began at 11:50 UTC")
    assert any(r.startswith("applied after the problem began at 11:50 UTC") for r in ranking.suspects[1].reasons)
    assert not any(r.startswith("ran ") for r in ranking.suspects[0].reasons)  # what came after the onset is no bake
    assert ranking.onset_at == onset


def test_a_weak_best_suspect_is_no_confident_suspect() -> None:
    """An effective change hours before is shown, but below the evidence floor."""
    ranking = rank(change("i", 300, f("apps/checkout/config.yaml")))
    assert len(ranking.suspects) == 1
    assert not ranking.confident
    assert "below the 0.20 evidence floor: no confident suspect" in ranking.reason


def test_changes_elsewhere_and_outside_the_window_are_not_suspects() -> None:
    """Other services, applied after the start, or older than the lookback: left out."""
    ranking = rank(change("c", 5, f("apps/payments/deploy.yaml", Effect.IMAGE)),
                   change("f", 1, f("apps/checkout/deploy.yaml", Effect.IMAGE)),  # applied 1m after the start
                   change("h", 7 * 60, f("apps/checkout/deploy.yaml", Effect.IMAGE)))
    assert ranking.suspects == ()
    assert "1 touched only other services" in ranking.reason


def test_real_applied_times_win_over_commit_times() -> None:
    """A deployment's applied time is used as is, without the sync delay."""
    applied = START - timedelta(minutes=3)
    top = rank(change("j", 120, f("apps/checkout/deploy.yaml"), applied_at=applied)).suspects[0]
    assert (top.applied_at, top.applied_source) == (applied, AppliedSource.DEPLOYMENT)
    assert top.reasons[0] == "applied 3m before the incident started"


def test_changes_imported_before_classification_count_as_unknown_effects() -> None:
    """Old rows have no effects: an unknown effect, or an image change where the old import said so."""
    old = Change(repo="gitops", sha="o" * 40, parents=(), author="a", committed_at=START - timedelta(minutes=10),
                 subject="old", files=(FileChange(path="apps/checkout/x.yaml", status="M"),), image_bump=True)
    top = rank(old).suspects[0]
    assert top.effective
    assert "changed an image" in top.reasons


def test_no_playbook_means_no_suspect_with_the_reason() -> None:
    """Without a playbook there are no repositories to look at, and the answer says so."""
    ranking = rank_changes(changes=[], playbook=None, service="x", started_at=START, now=START)
    assert (ranking.status, ranking.confident) == (RankingStatus.RANKED, False)
    assert "No playbook names the repositories" in ranking.reason


def test_paths_revert_messages_globs_and_pr_numbers() -> None:
    """Docs and CI by path; reverted shas from git's line, Backout's trailer and branch; globs; PRs."""
    assert effect_by_path("apps/checkout/README.md") is Effect.DOCS
    assert effect_by_path(".github/workflows/deploy.yaml") is Effect.CI
    assert effect_by_path("apps/checkout/deploy.yaml") is None
    assert reverted_shas('Revert "x"\n\nThis reverts commit ' + "a" * 40 + ".") == ("a" * 40,)
    assert reverted_shas("Merge pull request #9 from acme/backout/INC-7/revert-abc1234") == ("abc1234",)
    assert reverted_shas("Backout-Reverts: " + "b" * 40) == ("b" * 40,)
    assert matches_any("apps/checkout/a/b.yaml", ("apps/checkout/**",))
    assert not matches_any("apps/x/y/deploy.yaml", ("apps/*/deploy.yaml",))
    assert matches_any("kustomization.yaml", ("**/kustomization.yaml",))
    # gitignore's meaning: a folder covers what is under it; a name without a slash, any depth
    assert matches_any("apps/checkout/base/deploy.yaml", ("apps/checkout",))
    assert matches_any("clusters/prod/values.yaml", ("values.yaml",))
    assert matches_any("apps/b/deploy.yaml", ("apps/[ab]/deploy.yaml",))
    assert not matches_any("apps/checkout-v2/deploy.yaml", ("apps/checkout",))
    assert pr_number_from("Merge pull request #42 from acme/x") == 42
    assert pr_number_from("checkout: bump (#17)") == 17
    assert pr_number_from("no number here") is None
    # GitLab: the merge commit names its merge request in the body; a squash template may put it last
    assert pr_number_from("Merge branch 'fix' into 'main'",
                          "Fix the checkout\n\nSee merge request acme/platform/gitops!123\n") == 123
    assert pr_number_from("checkout: raise the pool (!45)") == 45
    assert pr_number_from("Merge branch 'fix' into 'main'", "See merge request elsewhere\n") is None


def test_a_next_candidate_scoring_zero_is_a_wide_margin() -> None:
    """With a long lookback a week-old candidate scores 0.000: the margin holds, nothing divides by it."""
    longer = PLAYBOOK.suspects.model_copy(update={"lookback": timedelta(days=8)})
    week = PLAYBOOK.model_copy(update={"suspects": longer})
    ranking = rank(change("a", 10, f("apps/checkout/deploy.yaml", Effect.IMAGE)),
                   change("o", 7 * 24 * 60, f("apps/checkout/config.yaml")), playbook=week)
    assert ranking.suspects[1].score == 0.0
    assert ranking.confident
    assert "far ahead of the next candidate" in ranking.reason


def test_a_change_that_ran_quietly_before_the_next_one_is_weak_evidence() -> None:
    """Several effective changes an hour: the latest is confident; the earlier one says it baked."""
    ranking = rank(change("a", 42, f("apps/checkout/deploy.yaml", Effect.IMAGE)),  # applied 40m before
                   change("b", 12, f("apps/checkout/deploy.yaml", Effect.IMAGE)))  # applied 10m before
    assert ranking.confident, ranking.reason
    assert shas(ranking) == ["b", "a"]
    earlier = ranking.suspects[1]
    assert "ran 30m before bbbbbbb was applied, with no alert" in earlier.reasons
    assert " x bake " in earlier.reasons[-1]
    assert not any(r.startswith("ran ") for r in ranking.suspects[0].reasons)  # nothing came after it


def test_only_a_later_candidate_makes_bake_time() -> None:
    """A docs commit or a reverted change after it says nothing of how long a change ran quietly."""
    reverted = Revert(repo="gitops", target="c" * 40, by_sha="r" * 40, at=START - timedelta(minutes=1))
    ranking = rank(change("a", 42, f("apps/checkout/deploy.yaml", Effect.IMAGE)),
                   change("d", 12, f("apps/checkout/README.md", Effect.DOCS)),
                   change("c", 20, f("apps/checkout/deploy.yaml", Effect.IMAGE)), reverts=(reverted,))
    first = next(s for s in ranking.suspects if s.sha[0] == "a")
    assert not any(r.startswith("ran ") for r in first.reasons)
    assert ranking.best is not None
    assert ranking.best.sha[0] == "a"


def test_the_hazard_falls_fast_then_flattens_and_bake_starts_after_the_alert_delay() -> None:
    """Timing is 1 at once, falls with the fast part, keeps a tail; a gap shorter than an alert's delay is no bake."""
    from bot.domain.ranking import HAZARD
    ages = [timedelta(minutes=m) for m in (0, 5, 15, 30, 60, 180, 360)]
    timings = [HAZARD.timing(age) for age in ages]
    assert timings[0] == 1.0
    assert timings == sorted(timings, reverse=True)
    assert timings[4] < 0.5 * timings[1]  # the fast part: most bad changes show within minutes
    assert timings[-1] > 0.1
    assert timings[-1] > 0.9 * timings[-2]
    assert HAZARD.bake(HAZARD.alert_delay) == 1.0
    assert HAZARD.bake(timedelta(minutes=45)) < 0.5


def test_a_ruled_out_change_is_shown_in_score_order_but_never_the_answer() -> None:
    """A responder's "not this one": discounted, named with who and when, and never best nor target."""
    changes = (change("a", 10, f("apps/checkout/deploy.yaml", Effect.IMAGE)),
               change("b", 200, f("apps/checkout/config.yaml")))
    ranking = rank_changes(changes=changes, playbook=PLAYBOOK, service="checkout", started_at=START,
                           now=START, ruled_out={"a" * 40: "ruled out by alice at 12:03 UTC"})
    ruled = next(s for s in ranking.suspects if s.sha[0] == "a")
    assert ruled.ruled_out == "ruled out by alice at 12:03 UTC"
    assert "ruled out by alice at 12:03 UTC" in ruled.reasons
    assert ruled.reasons[-1].endswith("x ruled out 0.05")
    assert not ruled.candidate(None)
    assert [s.score for s in ranking.suspects] == sorted((s.score for s in ranking.suspects), reverse=True)
    assert ranking.excluded(ruled) == "ruled out by alice at 12:03 UTC"
    assert ranking.best is None or ranking.best.sha[0] == "b"
    assert not ranking.confident or ranking.best is not None


def test_below_the_floor_is_no_rollback_target_and_confidence_is_the_share_of_evidence() -> None:
    """Ranking.excluded names the floor; a lone strong change holds most of the evidence, none holds 0."""
    weak = rank(change("i", 300, f("apps/checkout/config.yaml")))
    assert weak.best is None
    assert weak.excluded(weak.suspects[0]) == (
        f"scores {weak.suspects[0].score:.2f}, below the {weak.floor:.2f} evidence floor")
    strong = rank(change("a", 6, f("apps/checkout/deploy.yaml", Effect.IMAGE)))
    top = strong.suspects[0]
    assert strong.confidence == round(top.score / (top.score + strong.floor), 3)
    assert strong.confidence > 0.5
    assert rank().confidence == 0.0


def test_bake_time_counts_from_the_end_of_the_rollout() -> None:
    """A controller's healthy time starts the quiet run: a slow rollout is not time spent quietly."""
    applied = START - timedelta(minutes=40)
    slow = change("a", 45, f("apps/checkout/deploy.yaml", Effect.IMAGE), applied_at=applied)
    slow = slow.model_copy(update={"healthy_at": applied + timedelta(minutes=25)})
    ranking = rank(slow, change("b", 12, f("apps/checkout/deploy.yaml", Effect.IMAGE)))
    earlier = next(s for s in ranking.suspects if s.sha[0] == "a")
    assert "ran 5m before bbbbbbb was applied, with no alert" in earlier.reasons
    assert " x bake 1.00" in earlier.reasons[-1]  # within the 5 minutes an alert needs to fire
