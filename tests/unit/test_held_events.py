"""Settling held controller events, in memory: fetch only when a revision is missing, record once
under a claim, keep what cannot be recorded yet."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta

from bot.domain.gitops import Controller, ControllerEvent, Outcome
from bot.services.changelog import RefreshReport
from bot.services.gitops import ControllerReport
from bot.services.held_events import HeldWork, hold, settle
from tests.fakes.git import FakeGit
from tests.fakes.store import InMemoryStore

NOW = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)


def flux_event(sha: str) -> ControllerEvent:
    return ControllerEvent(controller=Controller.FLUX, kind="Kustomization", namespace="flux-system", name="apps",
                           outcome=Outcome.APPLIED, reason="ReconciliationSucceeded", revision=f"main@sha1:{sha}",
                           sha=sha, at=NOW)


class Recorder:
    """The record and refresh steps, counted; `pending`: the host does not answer."""

    def __init__(self, *, pending: bool = False, fails: bool = False) -> None:
        self.pending, self.fails = pending, fails
        self.refreshes = 0
        self.recorded: list[str] = []

    def refresh(self, repos: Sequence[str]) -> RefreshReport:
        self.refreshes += 1
        return RefreshReport(pending={"gitops": "Git host not answering"} if self.pending else {})

    def record(self, event: ControllerEvent) -> ControllerReport:
        if self.fails:
            raise RuntimeError("database gone")
        self.recorded.append(event.key)
        return ControllerReport()

    def work(self, store: InMemoryStore, git: FakeGit) -> HeldWork:
        return HeldWork(store=store, git=git, repos=["gitops"], refresh=self.refresh, record=self.record,
                        hold_for=timedelta(hours=1))


def held_store(*events: ControllerEvent) -> InMemoryStore:
    store = InMemoryStore()
    for event in events:
        hold(store, event, now=NOW, note="the fetch is still running")
    return store


def test_events_whose_revision_a_fetch_already_brought_are_recorded_without_another_fetch() -> None:
    """A storm waiting on one fetch: after it lands, each event is recorded, and none fetches again."""
    git = FakeGit()
    event = flux_event("a" * 40)
    git.resolve = lambda repo, rev: rev  # type: ignore[method-assign]
    store, steps = held_store(event), Recorder()
    settled = settle(steps.work(store, git), clock=lambda: NOW, events=[event])
    assert (settled.recorded, steps.refreshes, steps.recorded) == (1, 0, [event.key])
    assert store.run(lambda tx: tx.held_events.count()) == 0


def test_an_event_claimed_by_another_replica_is_left_to_it() -> None:
    """Another replica holds the claim: this one records nothing, the event stays held."""
    event = flux_event("b" * 40)
    store, steps = held_store(event), Recorder()
    store.run(lambda tx: tx.held_events.claim(now=NOW, until=NOW + timedelta(minutes=5)))
    settle(steps.work(store, FakeGit()), clock=lambda: NOW + timedelta(minutes=1))
    assert steps.recorded == []
    assert store.run(lambda tx: tx.held_events.count()) == 1


def test_a_failed_recording_keeps_the_event_held_and_says_why() -> None:
    """The record step raises: the event is given back, still held, with the error as its note."""
    event = flux_event("c" * 40)
    store, steps = held_store(event), Recorder(fails=True)
    settled = settle(steps.work(store, FakeGit()), clock=lambda: NOW)
    assert settled.failed == 1
    [held] = store.run(lambda tx: tx.held_events.claim(now=NOW, until=NOW))
    assert (held.attempts, held.note) == (1, "recording failed: RuntimeError: database gone")


def test_with_the_host_silent_an_event_is_held_until_hold_for_then_recorded() -> None:
    """Out of reach: held (with the host's reason) until `hold_for`, then recorded anyway."""
    event = flux_event("d" * 40)
    store, steps = held_store(event), Recorder(pending=True)
    work = steps.work(store, FakeGit())
    assert settle(work, clock=lambda: NOW + timedelta(minutes=59)).held == 1
    assert steps.recorded == []
    assert settle(work, clock=lambda: NOW + timedelta(hours=1)).expired == 1
    assert steps.recorded == [event.key]


def test_an_event_whose_alert_could_not_be_filed_stays_held_until_it_is() -> None:
    """Recorded, but what follows (its alert filed) raised: still held, so the next sweep files it
    (recording it again is a duplicate that files the open failure's alert)."""
    event = flux_event("e" * 40)
    git = FakeGit()
    git.resolve = lambda repo, rev: rev  # type: ignore[method-assign]
    store, steps = held_store(event), Recorder()
    filed: list[str] = []

    def follow(ev: ControllerEvent, report: ControllerReport) -> None:
        if not filed:
            filed.append("refused")
            raise RuntimeError("storage is unavailable")
        filed.append(ev.key)

    work = replace(steps.work(store, git), recorded=follow)
    assert settle(work, clock=lambda: NOW).failed == 1
    [held] = store.run(lambda tx: tx.held_events.claim(now=NOW, until=NOW))
    assert held.note == "recorded; what follows failed: RuntimeError: storage is unavailable"
    assert settle(work, clock=lambda: NOW + timedelta(minutes=10)).recorded == 1
    assert filed == ["refused", event.key]
    assert store.run(lambda tx: tx.held_events.count()) == 0
