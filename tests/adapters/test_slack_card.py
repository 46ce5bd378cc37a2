"""The incident's card in Slack: short in every state, only the buttons the state allows, the answer
in one line; the suspects, their reasons and the verdict buttons in the thread, each once. The whole
app in HTTP mode against the fake Slack Web API over HTTP, its delivery drained by hand."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient

from bot import bootstrap
from bot.config import Settings, SlackSettings
from bot.domain.actions import Action, ActionKind, ActionState
from bot.domain.automerge import window_state
from bot.domain.changes import AppliedSource, Change, FileChange
from bot.domain.models import Actor, IncidentStatus
from bot.domain.suspects import Ranking, RankingStatus, Suspect
from bot.domain.timeline import EventKind, event
from bot.services import notify
from bot.services.incidents import get_incident
from tests.adapters.test_slack_http import OWNER, SECRET, STRANGER, button, interaction, wait_for
from tests.conftest import AUTH, Clock, payload_bytes
from tests.fakes.git import FakeGit
from tests.fakes.slack import FakeSlack

A, B = "a" * 40, "c" * 40  # two changes to checkout: A the older, B applied after it
LONG = "x" * 400 + " <!channel>"
ACK, ROLL, BRANCH, RESOLVE, REOPEN, HOLD = ("backout_ack", "backout_rollback", "backout_branch",
                                            "backout_resolve", "backout_reopen", "backout_hold")


@pytest.fixture
def slack(clock: Clock) -> Iterator[FakeSlack]:
    with FakeSlack(clock=clock).serving() as fake:
        yield fake


@pytest.fixture
def app(slack: FakeSlack, build: Callable[..., bootstrap.App], make_settings: Callable[..., Settings],
        fake_git: FakeGit, clock: Clock) -> Iterator[tuple[bootstrap.App, TestClient]]:
    """INC-1 of checkout opened by the recorded webhook; two changes Backout knows, which the tests
    make suspects (or not) by the rankings they keep."""
    fake_git.changes["gitops"] = [
        Change(repo="gitops", sha=sha, parents=("b" * 40,), author="Dev <d@example.com>",
               committed_at=clock.now - timedelta(minutes=minutes), subject=f"checkout: bump {sha[:3]}",
               files=(FileChange(path="apps/other/deploy.yaml", status="M"),), additions=1, deletions=1)
        for sha, minutes in ((B, 5), (A, 12))]
    settings = make_settings(chat={"kind": "slack"}, slack=SlackSettings(
        mode="http", bot_token="xoxb-test", signing_secret=SECRET, api_url=f"{slack.base_url}/api/",
        channel="#incidents", workers=4))
    built = build(settings)
    with TestClient(built.http) as client:
        client.post("/webhooks/alertmanager", content=payload_bytes("01"), headers=AUTH)
        yield built, client


def drain(app: bootstrap.App, clock: Clock, kind: str = "incident.changed") -> None:
    """A notice, then a drain past the card's update debounce."""
    notify.incident_update(store=app.ctx.store, notifier=app.ctx.notifier, incident_id=1, kind=kind)
    clock.now += timedelta(seconds=3)
    assert app.ctx.slack is not None
    app.ctx.slack.delivery.drain()


def card(slack: FakeSlack) -> list[dict[str, Any]]:
    """The card's blocks as last sent (posted, then updated in place)."""
    sent = [args for name, args in slack.calls
            if name == "chat.update" or (name == "chat.postMessage" and not args.get("thread_ts"))]
    blocks = sent[-1]["blocks"]
    return json.loads(blocks) if isinstance(blocks, str) else list(blocks)


def replies(slack: FakeSlack) -> list[dict[str, Any]]:
    return [c for c in slack.called("chat.postMessage") if c.get("thread_ts")]


def read(blocks: Sequence[Mapping[str, Any]]) -> str:
    """What a person reads: every text, links by their label, button labels too."""
    texts = []
    for block in blocks:
        for part in [block.get("text"), *block.get("elements", [])]:
            if isinstance(part, Mapping):
                text = part.get("text")
                texts.append(str(text.get("text", "")) if isinstance(text, Mapping) else str(text or ""))
    return re.sub(r"<[^|<>]*\|([^<>]*)>", r"\1", "\n".join(t for t in texts if t))


def buttons(blocks: Sequence[Mapping[str, Any]]) -> list[str]:
    return [e["action_id"] for b in blocks if b["type"] == "actions" for e in b["elements"]
            if e["type"] == "button" and "url" not in e]


def suspect(sha: str, *, score: float, minutes: int, clock: Clock, long: bool = False) -> Suspect:
    return Suspect(repo="gitops", sha=sha, subject=LONG if long else f"checkout: bump {sha[:3]}",
                   author=("Dev " + LONG) if long else "Dev <d@example.com>",
                   applied_at=clock.now - timedelta(minutes=minutes), applied_source=AppliedSource.COMMIT_TIME,
                   score=score, pr_number=12,
                   reasons=(f"applied {minutes}m before the incident started " + (LONG if long else ""),
                            f"touched the service's paths: apps/checkout/{sha[:3]}.yaml", "score timing 0.90"))


def rank(app: bootstrap.App, clock: Clock, ranking: Ranking) -> None:
    """Keep `ranking` for INC-1 and say so on the timeline, as the investigation does."""
    def work(tx: Any) -> None:
        tx.rankings.save(1, ranking)
        tx.timeline.append(event(incident_id=1, at=clock.now, kind=EventKind.SUSPECTS_RANKED, actor=Actor.BACKOUT,
                                 text=ranking.reason, data={"confident": ranking.confident, "reason": ranking.reason,
                                                            "suspects": [{"sha": s.sha, "score": s.score}
                                                                         for s in ranking.suspects]}))
    app.ctx.store.run(work)


def put(app: bootstrap.App, status: IncidentStatus, **changes: Any) -> None:
    incident = get_incident(store=app.ctx.store, incident_id=1).incident
    app.ctx.store.run(lambda tx: tx.incidents.save(incident.model_copy(update={"status": status, **changes})))


def revert(app: bootstrap.App, clock: Clock, state: ActionState) -> None:
    def work(tx: Any) -> None:
        found = tx.actions.get(1, ActionKind.REVERT, A)
        action = found or tx.actions.add(Action(
            incident_id=1, kind=ActionKind.REVERT, repo="gitops", commit_sha=A, state=state,
            branch="backout/INC-1/revert-aaaaaaa", created_at=clock.now, updated_at=clock.now,
            url="https://github.example/acme/gitops/pull/" + "9" * 120, detail={"pr_number": 9}))
        tx.actions.save(action.model_copy(update={"state": state, "updated_at": clock.now}))
    app.ctx.store.run(work)


def worst_case(app: bootstrap.App, clock: Clock) -> None:
    """A 400-character title and service, ten suspects with 400-character subjects and reasons."""
    put(app, IncidentStatus.OPEN, title=LONG, service="checkout-" + LONG)
    rank(app, clock, Ranking(status=RankingStatus.RANKED, confident=True, reason=LONG, ranked_at=clock.now,
                             floor=0.2, confidence=0.9, suspects=(
                                 suspect(A, score=0.9, minutes=12, clock=clock, long=True),
                                 *[suspect(f"{n:040x}", score=0.1, minutes=30 + n, clock=clock, long=True)
                                   for n in range(1, 10)])))


def test_the_card_is_short_with_at_most_five_buttons_in_every_state(app: tuple[bootstrap.App, TestClient],
                                                                     slack: FakeSlack, clock: Clock) -> None:
    """The worst case (long title, service, subjects and reasons, ten suspects, a revert with a long
    pull request link) in each state: at most 600 characters to read and 5 buttons."""
    built, _ = app
    worst_case(built, clock)
    states = [(IncidentStatus.OPEN, None), (IncidentStatus.ACKNOWLEDGED, None),
              (IncidentStatus.MITIGATING, ActionState.PR_OPEN), (IncidentStatus.MITIGATED, ActionState.MERGED),
              (IncidentStatus.VERIFIED, ActionState.MERGED), (IncidentStatus.RESOLVED, ActionState.MERGED),
              (IncidentStatus.CLOSED, ActionState.MERGED)]
    for status, action in states:
        put(built, status)
        if action is not None:
            revert(built, clock, action)
        drain(built, clock)
        blocks = card(slack)
        assert len(read(blocks)) <= 600, (status, len(read(blocks)), read(blocks))
        assert len(buttons(blocks)) <= 5, (status, buttons(blocks))
        assert "<!channel>" not in json.dumps(blocks)


def test_the_card_offers_only_the_buttons_its_state_allows(app: tuple[bootstrap.App, TestClient],
                                                           slack: FakeSlack, clock: Clock) -> None:
    """Open: acknowledge, roll back, branch, resolve; acknowledged: no Acknowledge; a revert open or
    merged: no Roll back; resolved: Reopen alone; closed: nothing."""
    built, _ = app
    rank(built, clock, Ranking(status=RankingStatus.RANKED, confident=True, reason="aaaaaaa it is.", floor=0.2,
                               ranked_at=clock.now, suspects=(suspect(A, score=0.9, minutes=12, clock=clock),)))
    expected = [(IncidentStatus.OPEN, None, [ACK, ROLL, BRANCH, RESOLVE]),
                (IncidentStatus.ACKNOWLEDGED, None, [ROLL, BRANCH, RESOLVE]),
                (IncidentStatus.MITIGATING, ActionState.PR_OPEN, [BRANCH, RESOLVE]),
                (IncidentStatus.MITIGATED, ActionState.MERGED, [BRANCH, RESOLVE]),
                (IncidentStatus.RESOLVED, ActionState.MERGED, [REOPEN]),
                (IncidentStatus.CLOSED, ActionState.MERGED, [])]
    for status, action, allowed in expected:
        put(built, status)
        if action is not None:
            revert(built, clock, action)
        drain(built, clock)
        assert buttons(card(slack)) == allowed, status


def test_the_answer_is_one_line(app: tuple[bootstrap.App, TestClient], slack: FakeSlack, clock: Clock) -> None:
    """Confident: the suspect and its best reason; two plausible changes: the plan's next step, the
    most recent first, and Roll back names it; nothing plausible: no change explains it."""
    built, _ = app
    rank(built, clock, Ranking(status=RankingStatus.RANKED, confident=True, reason="aaaaaaa it is.", floor=0.2,
                               ranked_at=clock.now, suspects=(suspect(A, score=0.9, minutes=12, clock=clock),)))
    drain(built, clock)
    text = read(card(slack))
    assert "Suspect aaaaaaa “checkout: bump aaa” by Dev (#12): applied 12m before the incident started" in text
    assert "touched the service's paths" not in text, "one reason on the card; the others are in the thread"
    rank(built, clock, Ranking(status=RankingStatus.RANKED, confident=False, reason="Both likely.", floor=0.2,
                               ranked_at=clock.now, suspects=(suspect(A, score=0.5, minutes=12, clock=clock),
                                                              suspect(B, score=0.45, minutes=5, clock=clock))))
    drain(built, clock)
    blocks = card(slack)
    assert "Plan: roll back ccccccc first, then aaaaaaa" in read(blocks)
    [roll] = [e for b in blocks if b["type"] == "actions" for e in b["elements"] if e["action_id"] == ROLL]
    assert (roll["text"]["text"], roll["value"]) == ("Roll back ccccccc", f"1:{B}")
    rank(built, clock, Ranking(status=RankingStatus.RANKED, confident=False, reason="Too weak.", floor=0.2,
                               ranked_at=clock.now, suspects=(suspect(A, score=0.05, minutes=12, clock=clock),)))
    drain(built, clock)
    assert "No change explains it (1 listed in the thread, none convincing)" in read(card(slack))
    assert ROLL not in buttons(card(slack))


def test_roll_back_on_the_card_opens_the_plan_steps_confirmation(app: tuple[bootstrap.App, TestClient],
                                                                 slack: FakeSlack, clock: Clock) -> None:
    """The button names the plan's step to take now; pressing it asks to confirm that commit's revert."""
    built, client = app
    rank(built, clock, Ranking(status=RankingStatus.RANKED, confident=False, reason="Both likely.", floor=0.2,
                               ranked_at=clock.now, suspects=(suspect(A, score=0.5, minutes=12, clock=clock),
                                                              suspect(B, score=0.45, minutes=5, clock=clock))))
    drain(built, clock)
    assert interaction(client, button(slack, ROLL, incident=f"1:{B}")).status_code == 200
    [opened] = wait_for(lambda: slack.called("views.open"))
    assert json.loads(opened["view"]["private_metadata"])["sha"] == B


def test_suspects_reasons_and_controller_events_reach_the_thread_once(app: tuple[bootstrap.App, TestClient],
                                                                      slack: FakeSlack, clock: Clock) -> None:
    """The card updated several times, ranked again with one more suspect, a controller event: the
    thread has each suspect's reasons once, with its verdict buttons, and the controller event once."""
    built, _ = app
    first = Ranking(status=RankingStatus.RANKED, confident=True, reason="aaaaaaa it is.", floor=0.2,
                    ranked_at=clock.now, suspects=(suspect(A, score=0.9, minutes=12, clock=clock),))
    rank(built, clock, first)
    for _ in range(3):
        drain(built, clock)
    rank(built, clock, first.model_copy(update={"reason": "Ranked again.", "suspects": (
        *first.suspects, suspect(B, score=0.1, minutes=5, clock=clock))}))
    built.ctx.store.run(lambda tx: tx.timeline.append(event(
        incident_id=1, at=clock.now, kind=EventKind.RECONCILE_FAILED, actor=Actor.CONTROLLER,
        actor_id="flux/checkout", text="Kustomization checkout failed: image pull back-off")))
    for _ in range(3):
        drain(built, clock)
    thread = json.dumps([[r.get("text"), r.get("blocks")] for r in replies(slack)])
    assert thread.count("touched the service's paths: apps/checkout/aaa.yaml") == 1
    assert thread.count("touched the service's paths: apps/checkout/ccc.yaml") == 1
    assert thread.count("image pull back-off") == 1
    posts = [r for r in replies(slack) if r.get("blocks")]
    ids = [buttons(json.loads(p["blocks"]) if isinstance(p["blocks"], str) else p["blocks"]) for p in posts]
    assert ids == [["backout_verdict_none"],  # the ranking at the webhook: no suspect
                   ["backout_verdict_culprit_aaaaaaa", "backout_verdict_not_aaaaaaa", "backout_verdict_none"],
                   ["backout_verdict_culprit_ccccccc", "backout_verdict_not_ccccccc", "backout_verdict_none"]]
    assert "touched the service's paths" not in json.dumps(card(slack))


def test_a_verdict_button_in_the_thread_is_recorded(app: tuple[bootstrap.App, TestClient],
                                                    slack: FakeSlack, clock: Clock) -> None:
    """"Caused it" from the thread's suspects post records the verdict with who pressed it."""
    built, client = app
    rank(built, clock, Ranking(status=RankingStatus.RANKED, confident=True, reason="aaaaaaa it is.", floor=0.2,
                               ranked_at=clock.now, suspects=(suspect(A, score=0.9, minutes=12, clock=clock),)))
    drain(built, clock)
    [post] = [r for r in replies(slack) if "backout_verdict_culprit_aaaaaaa" in json.dumps(r.get("blocks"))]
    blocks = json.loads(post["blocks"]) if isinstance(post["blocks"], str) else post["blocks"]
    [culprit] = [e for b in blocks if b["type"] == "actions" for e in b["elements"]
                 if e["action_id"].startswith("backout_verdict_culprit_")]
    assert interaction(client, button(slack, culprit["action_id"], incident=culprit["value"])).status_code == 200
    wait_for(lambda: slack.responses)
    timeline = client.get("/api/incidents/1/timeline").json()["timeline"]
    assert [e["actor_id"] for e in timeline if e["kind"] == "verdict.recorded"] == [OWNER]


def test_during_an_automatic_merge_window_the_card_offers_hold(app: tuple[bootstrap.App, TestClient],
                                                               slack: FakeSlack, clock: Clock) -> None:
    """Hold comes first after Acknowledge, within five buttons, while Backout's merge waits; a stranger's
    press is refused privately with the reason; an owner's holds it, and the button goes."""
    built, client = app
    rank(built, clock, Ranking(status=RankingStatus.RANKED, confident=True, reason="aaaaaaa it is.", floor=0.2,
                               ranked_at=clock.now, suspects=(suspect(A, score=0.9, minutes=12, clock=clock),)))
    revert(built, clock, ActionState.PR_OPEN)

    def window_open(tx: Any) -> None:
        action = tx.actions.get(1, ActionKind.REVERT, A)
        tx.actions.save(action.model_copy(update={"detail": {**action.detail, "auto_merge": {
            "state": "waiting", "due_at": (clock.now + timedelta(minutes=5)).isoformat()}}}))

    built.ctx.store.run(window_open)
    put(built, IncidentStatus.OPEN)
    drain(built, clock)
    shown = buttons(card(slack))
    assert shown[:2] == [ACK, HOLD]
    assert len(shown) <= 5
    assert interaction(client, button(slack, HOLD, user=STRANGER)).status_code == 200
    answer = wait_for(lambda: slack.responses)[0]
    assert "You may not hold INC-1" in answer["text"]
    assert interaction(client, button(slack, HOLD)).status_code == 200
    wait_for(lambda: window_state(get_incident(store=built.ctx.store, incident_id=1).actions[0]) == "held")
    drain(built, clock)
    assert HOLD not in buttons(card(slack))
