"""Authors hear about it: one comment per suspect pull request, kept current, only when asked."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from bot.domain.changes import Change, Effect, FileChange
from bot.domain.incidents import IncidentPolicy
from bot.domain.models import Actor, AlertStatus, Delivery, ReceivedAlert
from bot.domain.playbooks import Playbook
from bot.domain.ports import PullRequestRef, PullRequestStatus
from bot.domain.verdicts import VerdictKind
from bot.services.authors import notify_authors
from bot.services.ingest import ingest_delivery
from bot.services.investigate import rank_incident
from bot.services.verdicts import record_verdict
from tests.fakes.store import InMemoryStore

NOW = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)


class CommentingForge:
    """The Forge port, recording comments."""

    def __init__(self) -> None:
        self.comments: dict[int, tuple[int, str]] = {}  # id -> (pr, body)

    def handles(self, repo: str) -> bool:
        return repo == "gitops"

    def names_request(self, repo: str, ref: str) -> bool:
        return ref.startswith("#")

    def request_noun(self, repo: str) -> str:
        return "pull request"

    def open_pull_request(self, repo: str, **_: object) -> PullRequestRef:
        raise AssertionError("not here")

    def pull_request_status(self, repo: str, number: int) -> PullRequestStatus:
        raise AssertionError("not here")

    def comment(self, repo: str, number: int, *, body: str, marker: str, comment_id: int | None) -> int:
        assert marker in body
        comment_id = comment_id or len(self.comments) + 1
        self.comments[comment_id] = (number, body)
        return comment_id

    def revert_dry_run(self, repo: str, sha: str, *, branch: str) -> bool | None:
        return None

    def mark_ready(self, repo: str, number: int, *, reviewers: Sequence[str]) -> None:
        raise AssertionError("not used")

    def review_check(self, repo: str, *, sha: str, check: object) -> None:
        raise AssertionError("not used")


def playbooks(notify: bool) -> Sequence[Playbook]:
    return [Playbook.model_validate({
        "name": "checkout", "service": "checkout", "match": {"service": "checkout"},
        "repos": [{"repo": "gitops", "paths": ["apps/checkout/**"]}],
        "suspects": {"notify_authors": notify}})]


def setup(notify: bool) -> tuple[InMemoryStore, Sequence[Playbook]]:
    store = InMemoryStore()
    books = playbooks(notify)
    change = Change(repo="gitops", sha="a" * 40, parents=(), author="Dev <d@example.com>",
                    committed_at=NOW - timedelta(minutes=12), subject="checkout: bump (#42)", pr_number=42,
                    files=(FileChange(path="apps/checkout/deploy.yaml", status="M", effects=(Effect.IMAGE,)),))
    store.run(lambda tx: tx.changes.add_many([change]))
    alert = ReceivedAlert(fingerprint="f", starts_at=NOW, ends_at=None, status=AlertStatus.FIRING,
                          labels={"alertname": "Errors", "service": "checkout"}, annotations={})
    ingest_delivery(store=store, delivery=Delivery(group_key="g", status=AlertStatus.FIRING, alerts=(alert,)),
                    playbooks=books, policy=IncidentPolicy(), now=NOW)
    rank_incident(store=store, playbooks=books, incident_id=1, now=NOW)
    return store, books


def test_off_by_default_nothing_is_posted() -> None:
    """Without `suspects.notify_authors` no author is told."""
    store, books = setup(notify=False)
    forge = CommentingForge()
    assert notify_authors(store=store, forge=forge, playbooks=books, incident_id=1, now=NOW) == 0
    assert forge.comments == {}


def test_one_comment_edited_when_a_responder_rules_the_change_out() -> None:
    """Posted once with the score and reasons; unchanged state posts nothing; a ruling edits it."""
    store, books = setup(notify=True)
    forge = CommentingForge()
    page = "https://backout.example/incidents/1"
    assert notify_authors(store=store, forge=forge, playbooks=books, incident_id=1, now=NOW, page_url=page) == 1
    [(pr, body)] = forge.comments.values()
    assert pr == 42
    assert "suspect #1, score" in body
    assert "(confident)" in body
    assert "[incident page](https://backout.example/incidents/1)" in body
    assert notify_authors(store=store, forge=forge, playbooks=books, incident_id=1, now=NOW, page_url=page) == 0
    record_verdict(store=store, playbooks=books, incident_id=1, kind=VerdictKind.NOT_CULPRIT, sha="aaaa",
                   actor=Actor.USER, actor_id="U1", now=NOW)
    assert notify_authors(store=store, forge=forge, playbooks=books, incident_id=1, now=NOW, page_url=page) == 1
    assert len(forge.comments) == 1
    assert "ruled this change out" in forge.comments[1][1]
    kinds = [e.kind for e in store.run(lambda tx: tx.timeline.for_incident(1))]
    assert kinds.count("author.notified") == 1
