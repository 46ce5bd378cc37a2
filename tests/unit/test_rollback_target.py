"""The rollback target over the fakes: never an excluded change by default, an override that
says why, a verdict that re-ranks at once, and accuracy judged on the first answer."""

from __future__ import annotations

from datetime import timedelta

import pytest

from bot.adapters.console import RecordingNotifier
from bot.domain.actions import ActionState
from bot.domain.errors import Conflict
from bot.domain.models import Actor
from bot.domain.timeline import EventKind
from bot.domain.verdicts import Answer, VerdictKind
from bot.services.act import choose_commit, confirmed_rollback, plan_rollback
from bot.services.incidents import get_incident
from bot.services.notify import incident_lines
from bot.services.verdicts import accuracy_report, record_verdict
from tests.fakes.git import FakeGit
from tests.fakes.store import InMemoryStore
from tests.unit.test_act import START, commit, open_incident, playbook, run

B, A = "b" * 40, "a" * 40  # b: applied 8 min before, the best suspect; a: 4 h before, below the floor


@pytest.fixture
def git() -> FakeGit:
    return FakeGit({"gitops": [commit("b", 8), commit("a", 240)]})


def opened(git: FakeGit) -> tuple[InMemoryStore, RecordingNotifier, int]:
    store, notes = InMemoryStore(), RecordingNotifier()
    number = open_incident(store, playbook("off"))
    run(store, git, playbook("off"), notes, number)
    return store, notes, number


def rule_out(store: InMemoryStore, number: int, sha: str, notes: RecordingNotifier | None = None) -> None:
    record_verdict(store=store, playbooks=[playbook("off")], incident_id=number, kind=VerdictKind.NOT_CULPRIT,
                   sha=sha[:7], actor=Actor.USER, actor_id="alice", now=START + timedelta(minutes=5),
                   notifier=notes)


def confirm(store: InMemoryStore, git: FakeGit, number: int, sha: str, *, force: bool = False) -> ActionState:
    return confirmed_rollback(store=store, git=git, notifier=RecordingNotifier(), forge=None,
                              playbooks=[playbook("off")], incident_id=number, sha=sha, actor=Actor.USER,
                              actor_id="bob", now=START + timedelta(minutes=6), page_url=None,
                              force=force).action.state


def test_a_ruled_out_change_drops_from_the_answer_at_once(git: FakeGit) -> None:
    """"Not this one" re-ranks the incident: the change is no longer the best suspect, its line
    says why, and the chat hears "suspects.changed"."""
    store, notes, number = opened(git)
    assert get_incident(store=store, incident_id=number).ranking.best.sha == B  # type: ignore[union-attr]
    rule_out(store, number, B, notes)
    view = get_incident(store=store, incident_id=number)
    assert view.ranking.best is None or view.ranking.best.sha != B
    line = next(line for line in incident_lines(view) if "change b" in line)
    assert "not a rollback target: ruled out by alice at 12:05 UTC" in line
    assert notes.notices[-1].kind == "suspects.changed"


def test_rollback_without_a_commit_refuses_when_no_suspect_is_a_target(git: FakeGit) -> None:
    """With the best suspect ruled out and the other below the floor there is no default target:
    the refusal names why for each."""
    store, _, number = opened(git)
    rule_out(store, number, B)
    with pytest.raises(Conflict) as refused:
        choose_commit(store=store, playbook=playbook("off"), incident_id=number, sha=None)
    assert "bbbbbbb ruled out by alice at 12:05 UTC" in str(refused.value)
    assert "aaaaaaa scores" in str(refused.value)
    assert "evidence floor" in str(refused.value)


def test_a_ruled_out_change_needs_force_and_the_timeline_says_it_was_forced(git: FakeGit) -> None:
    """Naming a ruled-out change: refused with the reason; with force it goes ahead, recorded."""
    store, _, number = opened(git)
    rule_out(store, number, B)
    plan = plan_rollback(store=store, git=git, playbooks=[playbook("off")], incident_id=number, sha=B)
    assert plan.excluded == "ruled out by alice at 12:05 UTC"
    with pytest.raises(Conflict, match=r"not a rollback target: ruled out by alice at 12:05 UTC; .*--force"):
        confirm(store, git, number, B)
    assert git.branches == {}
    assert confirm(store, git, number, B, force=True) is ActionState.PUSHED
    [forced] = [e for e in get_incident(store=store, incident_id=number).timeline
                if e.kind == EventKind.ROLLBACK_FORCED]
    assert forced.text == ("bob forced the rollback of bbbbbbb, which was no rollback target: ruled out by "
                           "alice at 12:05 UTC")


def test_a_change_below_the_floor_needs_force(git: FakeGit) -> None:
    """A weak suspect named by hand: refused with its score against the floor."""
    store, _, number = opened(git)
    with pytest.raises(Conflict, match=r"aaaaaaa is not a rollback target: scores 0\.\d\d, below the 0\.20"):
        confirm(store, git, number, A)
    assert confirm(store, git, number, A, force=True) is ActionState.PUSHED


def test_the_best_suspect_needs_no_override(git: FakeGit) -> None:
    """The default target goes ahead as before, with nothing forced on the timeline."""
    store, _, number = opened(git)
    assert plan_rollback(store=store, git=git, playbooks=[playbook("off")], incident_id=number,
                         sha=None).excluded is None
    assert confirm(store, git, number, B) is ActionState.PUSHED
    assert EventKind.ROLLBACK_FORCED not in [e.kind for e in get_incident(store=store, incident_id=number).timeline]


def test_accuracy_judges_the_first_answer_not_the_re_ranked_one(git: FakeGit) -> None:
    """Confident on b, then b ruled out and a named the culprit: the first answer was wrong,
    whatever the ranking says now."""
    store, _, number = opened(git)
    assert get_incident(store=store, incident_id=number).ranking.confident
    rule_out(store, number, B)
    record_verdict(store=store, playbooks=[playbook("off")], incident_id=number, kind=VerdictKind.CULPRIT,
                   sha="aaaaaaa", actor=Actor.USER, actor_id="alice", now=START + timedelta(minutes=7))
    report = accuracy_report(store=store, since=START - timedelta(days=1), now=START + timedelta(hours=1))
    assert (report["overall"]["confident"], report["overall"]["precision_at_1"]) == (1, 0.0)
    assert report["overall"]["recall_at_3"] == 1.0


def test_an_old_ranking_event_without_best_counts_its_first_suspect() -> None:
    """Events from before `best` was kept: their first suspect was the answer."""
    old = {"confident": True, "considered": 2, "suspects": [{"sha": B, "score": 0.8}, {"sha": A, "score": 0.1}]}
    assert Answer.from_event(old) == Answer(confident=True, best=B, shas=(B, A))
    assert Answer.from_event({**old, "best": None}) == Answer(confident=True, best=None, shas=(B, A))
    assert Answer.from_event({"text": "no answer kept"}) is None
