"""The team report: counts, time to acknowledge/mitigate/resolve (median and p90), incidents a
change caused, reverts opened and merged, over a window and for one service."""

from __future__ import annotations

from datetime import timedelta

from bot.cli.render import report_text
from bot.config import load_playbooks
from bot.domain.actions import Action, ActionKind, ActionState
from bot.domain.changes import AppliedSource
from bot.domain.incidents import IncidentPolicy
from bot.domain.models import Actor, IncidentStatus
from bot.domain.suspects import Ranking, RankingStatus, Suspect
from bot.domain.verdicts import Verdict, VerdictKind
from bot.services.incidents import change_status
from bot.services.ingest import ingest_delivery
from bot.services.report import team_report
from tests.conftest import PLAYBOOKS, Clock, delivery
from tests.fakes.store import InMemoryStore


def test_the_report_counts_times_changes_and_reverts(clock: Clock) -> None:
    store, playbooks = InMemoryStore(), load_playbooks(PLAYBOOKS)
    opened_at = clock()
    for prefix in ("01", "05", "07"):  # checkout, x, y: three incidents
        ingest_delivery(store=store, delivery=delivery(prefix), playbooks=playbooks, policy=IncidentPolicy(),
                        now=clock())
    started = {i.id: i.started_at for i in store.state.incidents.values()}
    for number, (ack, resolve) in {1: (5, 30), 2: (10, 60), 3: (None, None)}.items():
        if ack is not None:
            clock.now = started[number] + timedelta(minutes=ack)
            change_status(store=store, incident_id=number, target=IncidentStatus.ACKNOWLEDGED, actor=Actor.USER,
                          actor_id="U1", now=clock())
        if resolve is not None:
            clock.now = started[number] + timedelta(minutes=resolve)
            change_status(store=store, incident_id=number, target=IncidentStatus.RESOLVED, actor=Actor.USER,
                          actor_id="U1", now=clock())
    store.run(lambda tx: tx.actions.add(Action(
        incident_id=1, kind=ActionKind.REVERT, repo="gitops", commit_sha="a" * 40, state=ActionState.MERGED,
        branch="backout/INC-1/revert-aaaaaaa", created_at=clock(), updated_at=clock())))
    store.run(lambda tx: tx.verdicts.add(Verdict(incident_id=1, kind=VerdictKind.CULPRIT, repo="gitops", sha="a" * 40,
                                                  actor=Actor.USER, at=clock())))
    store.run(lambda tx: tx.verdicts.add(Verdict(incident_id=2, kind=VerdictKind.NO_CHANGE, actor=Actor.USER,
                                                  at=clock())))

    report = team_report(store=store, since=opened_at - timedelta(days=1), now=clock())
    assert report["incidents"] == 3
    assert report["by_status"] == {"open": 1, "resolved": 2}
    assert report["durations_seconds"]["to_acknowledge"] == {"count": 2, "median": 450.0, "p90": 600.0}
    assert report["durations_seconds"]["to_resolve"] == {"count": 2, "median": 2700.0, "p90": 3600.0}
    assert report["durations_seconds"]["to_mitigate"]["count"] == 0
    assert report["changes"] == {"confirmed": 1, "reverted": 0, "unconfirmed": 0, "no_change": 1, "unknown": 1,
                                 "share": 0.333}
    assert report["reverts"] == {"opened": 1, "merged": 1, "merged_by_backout": 0}

    only = team_report(store=store, since=opened_at - timedelta(days=1), now=clock(), service="checkout")
    assert (only["incidents"], only["reverts"]["merged"]) == (1, 1)
    later = team_report(store=store, since=clock() + timedelta(days=1), now=clock())
    assert later["incidents"] == 0

    text = report_text(report, since="30d")
    assert "median 7m30s, p90 10m" in text
    assert "33%: 1 confirmed by responders" in text
    assert report_text(report, since="30d", markdown=True).startswith("## Incidents in the last 30d")


def test_a_confident_suspect_is_a_cause_only_once_its_revert_is_merged(clock: Clock) -> None:
    """A confident suspect nobody judged or reverted is counted `unconfirmed`, not as a cause; one
    whose revert was merged counts (`reverted`) in the share of incidents a change caused."""
    store, playbooks = InMemoryStore(), load_playbooks(PLAYBOOKS)
    for prefix in ("01", "05"):
        ingest_delivery(store=store, delivery=delivery(prefix), playbooks=playbooks, policy=IncidentPolicy(),
                        now=clock())
    suspect = Suspect(repo="gitops", sha="b" * 40, subject="bump", author="Dev", applied_at=clock(),
                      applied_source=AppliedSource.COMMIT_TIME, score=0.9, reasons=("applied 8m before",))
    ranking = Ranking(status=RankingStatus.RANKED, confident=True, reason="one", suspects=(suspect,))
    for number in (1, 2):
        store.run(lambda tx, number=number: tx.rankings.save(number, ranking))
    store.run(lambda tx: tx.actions.add(Action(
        incident_id=2, kind=ActionKind.REVERT, repo="gitops", commit_sha="b" * 40, state=ActionState.MERGED,
        branch="backout/INC-2/revert-bbbbbbb", created_at=clock(), updated_at=clock())))

    changes = team_report(store=store, since=clock() - timedelta(days=1), now=clock())["changes"]
    assert changes == {"confirmed": 0, "reverted": 1, "unconfirmed": 1, "no_change": 0, "unknown": 0, "share": 0.5}
