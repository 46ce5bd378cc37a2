"""Ranking suspects on plain data: timing, paths, image bumps, the window and confidence."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from bot.domain.changes import AppliedSource, Change, FileChange, glob_regex, pr_number_from
from bot.domain.playbooks import Playbook
from bot.domain.suspects import RankingStatus, rank_changes

START = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
PLAYBOOK = Playbook.model_validate({
    "name": "checkout", "service": "checkout", "match": {"service": "checkout"},
    "repos": [{"repo": "gitops", "paths": ["apps/checkout/**"], "shared_paths": ["infrastructure/**"]},
              {"repo": "checkout-app", "role": "app"}],
    "suspects": {"lookback": "6h", "sync_delay": "2m", "min_confidence": 0.6},
})


def change(sha: str, minutes_before: float, *paths: str, repo: str = "gitops", image: bool = False,
           lines: int = 4, subject: str = "a change", applied_at: datetime | None = None) -> Change:
    return Change(
        repo=repo, sha=sha * 40, parents=("0" * 40,), author="Dev <dev@example.com>",
        committed_at=START - timedelta(minutes=minutes_before), subject=subject,
        files=tuple(FileChange(path=p, status="M") for p in paths), additions=lines // 2,
        deletions=lines - lines // 2, image_bump=image, applied_at=applied_at,
        applied_source=AppliedSource.DEPLOYMENT if applied_at else AppliedSource.COMMIT_TIME,
    )


def rank(*changes: Change):  # type: ignore[no-untyped-def]
    return rank_changes(changes=changes, playbook=PLAYBOOK, service="checkout", started_at=START, now=START)


def test_a_recent_image_bump_to_the_service_is_a_confident_suspect() -> None:
    """Applied minutes before the start, on the service's paths, changing the image: ranked first."""
    ranking = rank(change("a", 10, "apps/checkout/deploy.yaml", image=True),
                   change("b", 200, "apps/checkout/config.yaml"))
    assert ranking.status is RankingStatus.RANKED
    assert ranking.confident
    assert [s.sha[0] for s in ranking.suspects] == ["a", "b"]
    top = ranking.suspects[0]
    assert top.score >= 0.6
    assert any("applied 8m before" in r for r in top.reasons), top.reasons  # 10m - 2m sync delay
    assert any("apps/checkout/deploy.yaml" in r for r in top.reasons)
    assert "changed an image tag or version" in top.reasons


def test_changes_to_other_services_are_not_suspects() -> None:
    """A change touching only another service's paths is left out, and the reason counts it."""
    ranking = rank(change("c", 5, "apps/payments/deploy.yaml", image=True))
    assert ranking.suspects == ()
    assert not ranking.confident
    assert "1 touched only other services" in ranking.reason


def test_shared_paths_count_less_than_the_service_paths() -> None:
    """Shared infrastructure is evidence, weaker than the service's own files."""
    ranking = rank(change("d", 10, "infrastructure/ingress.yaml"), change("e", 10, "apps/checkout/x.yaml"))
    assert [s.sha[0] for s in ranking.suspects] == ["e", "d"]
    assert "touched shared paths: infrastructure/ingress.yaml" in ranking.suspects[1].reasons


def test_a_change_applied_after_the_start_is_never_a_suspect() -> None:
    """Committed before the start but applied after it (sync delay), or later: not a cause."""
    ranking = rank(change("f", 1, "apps/checkout/deploy.yaml", image=True),
                   change("g", -5, "apps/checkout/deploy.yaml", image=True))
    assert ranking.suspects == ()


def test_outside_the_lookback_window_is_ignored() -> None:
    """Older than the lookback is out of the window."""
    assert rank(change("h", 7 * 60, "apps/checkout/deploy.yaml", image=True)).suspects == ()


def test_a_weak_best_suspect_is_no_confident_suspect() -> None:
    """An old small change to the service is shown, but the answer says it is not convincing."""
    ranking = rank(change("i", 300, "apps/checkout/config.yaml"))
    assert len(ranking.suspects) == 1
    assert not ranking.confident
    assert "below the 0.60 confidence threshold: no confident suspect" in ranking.reason


def test_real_applied_times_win_over_commit_times() -> None:
    """A deployment's applied time is used as is, without the sync delay."""
    applied = START - timedelta(minutes=3)
    ranking = rank(change("j", 120, "apps/checkout/deploy.yaml", applied_at=applied))
    top = ranking.suspects[0]
    assert top.applied_at == applied
    assert top.applied_source is AppliedSource.DEPLOYMENT
    assert "applied 3m before the incident started" in top.reasons


def test_app_repository_changes_and_size_and_reverts() -> None:
    """App-repo changes count; large changes get a reason; a revert scores lower."""
    ranking = rank(change("k", 20, "src/api.py", repo="checkout-app", lines=400),
                   change("l", 20, "apps/checkout/a.yaml", subject='Revert "bump"'))
    by_sha = {s.sha[0]: s for s in ranking.suspects}
    assert "large: 400 lines in 1 files" in by_sha["k"].reasons
    assert "is itself a revert" in by_sha["l"].reasons


def test_no_playbook_means_no_suspect_with_the_reason() -> None:
    """Without a playbook there are no repositories to look at, and the answer says so."""
    ranking = rank_changes(changes=[], playbook=None, service="x", started_at=START, now=START)
    assert (ranking.status, ranking.confident) == (RankingStatus.RANKED, False)
    assert "No playbook names the repositories" in ranking.reason


def test_scores_stay_within_zero_and_one() -> None:
    """Whatever adds up, a score is in [0, 1]."""
    ranking = rank(change("n", 2.5, "apps/checkout/a.yaml", image=True, lines=1000),
                   change("o", 300, "apps/checkout/b.yaml", subject='Revert "x"'))
    top, low = ranking.suspects
    assert 0.99 <= top.score <= 1.0
    assert 0.0 <= low.score < 0.3


def test_globs_and_pr_numbers() -> None:
    """`**` spans folders, `*` does not; PR numbers come from merge and squash subjects."""
    assert glob_regex("apps/checkout/**").fullmatch("apps/checkout/a/b.yaml")
    assert glob_regex("apps/*/deploy.yaml").fullmatch("apps/x/deploy.yaml")
    assert not glob_regex("apps/*/deploy.yaml").fullmatch("apps/x/y/deploy.yaml")
    assert glob_regex("**/kustomization.yaml").fullmatch("kustomization.yaml")
    assert pr_number_from("Merge pull request #42 from acme/x") == 42
    assert pr_number_from("checkout: bump (#17)") == 17
    assert pr_number_from("no number here") is None
