"""Investigation and actions over the fakes: ranking on open, the playbook policy, rollbacks."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from bot.adapters.console import RecordingNotifier
from bot.domain.actions import ActionKind, ActionState
from bot.domain.changes import Change, FileChange
from bot.domain.errors import UpstreamError
from bot.domain.incidents import IncidentPolicy
from bot.domain.models import Actor, AlertStatus, Delivery, ReceivedAlert
from bot.domain.playbooks import Playbook
from bot.services.act import choose_commit, rollback
from bot.services.incidents import get_incident
from bot.services.ingest import ingest_delivery
from bot.services.investigate import investigate
from tests.fakes.git import FakeGit
from tests.fakes.store import InMemoryStore

START = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)


def playbook(mode: str = "propose", **actions: object) -> Playbook:
    return Playbook.model_validate({
        "name": "checkout", "service": "checkout", "match": {"service": "checkout"},
        "repos": [{"repo": "gitops", "paths": ["apps/checkout/**"]}],
        "actions": {"on_open": mode, **actions},
    })


def commit(sha: str, minutes_before: float, path: str = "apps/checkout/deploy.yaml") -> Change:
    return Change(repo="gitops", sha=sha * 40, parents=("0" * 40,), author="Dev <d@example.com>",
                  committed_at=START - timedelta(minutes=minutes_before), subject=f"change {sha}",
                  files=(FileChange(path=path, status="M"),), additions=1, deletions=1, image_bump=True)


@pytest.fixture
def git() -> FakeGit:
    return FakeGit({"gitops": [commit("b", 8), commit("a", 240), commit("c", 30, "apps/payments/x")]})


def open_incident(store: InMemoryStore, book: Playbook, fingerprint: str = "f1") -> int:
    alert = ReceivedAlert(fingerprint=fingerprint, starts_at=START, ends_at=None, status=AlertStatus.FIRING,
                          labels={"alertname": "HighErrorRate", "service": "checkout"}, annotations={})
    outcome = ingest_delivery(store=store, delivery=Delivery(group_key="g", status=AlertStatus.FIRING,
                                                              alerts=(alert,)),
                              playbooks=[book], policy=IncidentPolicy(), now=START + timedelta(minutes=1))
    return outcome.opened[0].id or 0


def run(store: InMemoryStore, git: FakeGit, book: Playbook, notes: RecordingNotifier, number: int,
        minutes: float = 1) -> None:
    investigate(store=store, git=git, notifier=notes, playbooks=[book], incident_id=number,
                now=START + timedelta(minutes=minutes), import_window=timedelta(days=7))


def test_opening_ranks_suspects_records_them_and_tells_people(git: FakeGit) -> None:
    """Investigation refreshes the change log, ranks, records the timeline and notifies."""
    store, notes, book = InMemoryStore(), RecordingNotifier(), playbook("off")
    number = open_incident(store, book)
    run(store, git, book, notes, number)
    view = get_incident(store=store, incident_id=number)
    assert view.ranking.confident
    assert [s.sha[0] for s in view.ranking.suspects] == ["b", "a"]
    assert "suspects.ranked" in [e.kind for e in view.timeline]
    [notice] = notes.notices
    assert notice.kind == "incident.opened"
    assert any("change b" in line for line in notice.lines)
    assert view.actions == []


def test_propose_records_the_revert_without_making_it(git: FakeGit) -> None:
    """`propose` stores a proposed revert of the top suspect and pushes nothing."""
    store, notes, book = InMemoryStore(), RecordingNotifier(), playbook("propose")
    number = open_incident(store, book)
    run(store, git, book, notes, number)
    [action] = get_incident(store=store, incident_id=number).actions
    assert (action.state, action.commit_sha[0]) == (ActionState.PROPOSED, "b")
    assert git.branches == {}


def test_a_person_running_a_proposed_revert_makes_it_theirs_not_automatic(git: FakeGit) -> None:
    """The revert Backout proposed, once a person runs it, is recorded as not automatic (`auto` false)."""
    store, notes, book = InMemoryStore(), RecordingNotifier(), playbook("propose")
    number = open_incident(store, book)
    run(store, git, book, notes, number)
    [proposed] = get_incident(store=store, incident_id=number).actions
    assert proposed.auto
    change = choose_commit(store=store, playbook=book, incident_id=number, sha=None)
    rollback(store=store, git=git, notifier=notes, incident_id=number, change=change, actor=Actor.USER,
             actor_id="U1", now=START + timedelta(minutes=3))
    [action] = get_incident(store=store, incident_id=number).actions
    assert (action.state, action.auto, action.actor_id) == (ActionState.PUSHED, False, "U1")


def test_open_pr_makes_the_revert_within_the_hourly_cap(git: FakeGit) -> None:
    """`open_pr` pushes the revert branch; past max_per_hour it falls back to proposing."""
    store, notes, book = InMemoryStore(), RecordingNotifier(), playbook("open_pr", max_per_hour=1)
    first = open_incident(store, book, "f1")
    run(store, git, book, notes, first)
    [action] = get_incident(store=store, incident_id=first).actions
    assert action.state is ActionState.PUSHED
    assert action.branch == f"backout/INC-{first}/revert-bbbbbbb"
    store.state.incidents[first] = store.state.incidents[first].model_copy(update={"group_key": "old"})
    second = open_incident(store, book.model_copy(update={"group_by": ("instance",)}), "f2")
    run(store, git, book, notes, second, minutes=5)
    view = get_incident(store=store, incident_id=second)
    assert [a.state for a in view.actions] == [ActionState.PROPOSED]
    assert "action.skipped" in [e.kind for e in view.timeline]


def test_rollback_twice_is_one_action_and_one_branch(git: FakeGit) -> None:
    """Running the same rollback again reports it done and pushes nothing more."""
    store, notes, book = InMemoryStore(), RecordingNotifier(), playbook("off")
    number = open_incident(store, book)
    run(store, git, book, notes, number)
    change = choose_commit(store=store, playbook=book, incident_id=number, sha=None)
    first = rollback(store=store, git=git, notifier=notes, incident_id=number, change=change,
                     actor=Actor.USER, actor_id="U1", now=START)
    second = rollback(store=store, git=git, notifier=notes, incident_id=number, change=change,
                      actor=Actor.USER, actor_id="U1", now=START)
    assert first.action.state is ActionState.PUSHED
    assert second.message.startswith("already done")
    assert len(store.state.actions) == 1
    assert len(git.branches) == 1


def test_a_conflict_makes_the_incident_branch_and_says_which_files(git: FakeGit) -> None:
    """On conflict: revert action conflicted with files, incident branch pushed, timeline says so."""
    store, notes, book = InMemoryStore(), RecordingNotifier(), playbook("off")
    number = open_incident(store, book)
    run(store, git, book, notes, number)
    git.conflicts = ("apps/checkout/deploy.yaml",)
    change = choose_commit(store=store, playbook=book, incident_id=number, sha="bbbb")
    result = rollback(store=store, git=git, notifier=notes, incident_id=number, change=change,
                      actor=Actor.USER, actor_id="U1", now=START)
    assert result.action.state is ActionState.CONFLICTED
    assert result.branch_action is not None
    assert result.branch_action.kind is ActionKind.INCIDENT_BRANCH
    assert list(git.branches) == [("gitops", f"backout/INC-{number}/incident")]
    texts = " ".join(e.text for e in get_incident(store=store, incident_id=number).timeline)
    assert "conflicts with later changes in apps/checkout/deploy.yaml" in texts


def test_a_failed_push_is_recorded_and_can_be_retried(git: FakeGit) -> None:
    """An unreachable remote fails the action visibly; the next attempt succeeds."""
    store, notes, book = InMemoryStore(), RecordingNotifier(), playbook("off")
    number = open_incident(store, book)
    run(store, git, book, notes, number)
    change = choose_commit(store=store, playbook=book, incident_id=number, sha=None)
    git.unreachable = {"gitops"}
    with pytest.raises(UpstreamError):
        rollback(store=store, git=git, notifier=notes, incident_id=number, change=change,
                 actor=Actor.USER, actor_id="U1", now=START)
    [action] = get_incident(store=store, incident_id=number).actions
    assert action.state is ActionState.FAILED
    git.unreachable = set()
    retried = rollback(store=store, git=git, notifier=notes, incident_id=number, change=change,
                       actor=Actor.USER, actor_id="U1", now=START)
    assert retried.action.state is ActionState.PUSHED
    assert len(store.state.actions) == 1


def test_an_unreachable_remote_leaves_the_incident_unharmed(git: FakeGit) -> None:
    """Refresh failure is on the timeline; ranking still runs on what is known."""
    store, notes, book = InMemoryStore(), RecordingNotifier(), playbook("off")
    number = open_incident(store, book)
    git.unreachable = {"gitops"}
    run(store, git, book, notes, number)
    view = get_incident(store=store, incident_id=number)
    assert view.incident.active
    kinds = [e.kind for e in view.timeline]
    assert "changes.refresh_failed" in kinds
    assert view.ranking.status.value == "ranked"
    assert not view.ranking.confident


def test_top_suspects_carry_revert_safety_warnings(git: FakeGit) -> None:
    """Before anyone rolls back, the top suspects show what a revert may not undo."""
    store, notes, book = InMemoryStore(), RecordingNotifier(), playbook("off")
    git.patches["b" * 40] = "+kind: SealedSecret\n+metadata: {}\n"
    number = open_incident(store, book)
    run(store, git, book, notes, number)
    top = get_incident(store=store, incident_id=number).ranking.suspects[0]
    assert top.warnings[0].startswith("secret:")
    assert any("revert safety: secret" in line for line in notes.notices[-1].lines)
