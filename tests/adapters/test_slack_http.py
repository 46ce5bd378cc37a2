"""Slack in HTTP mode: requests signed exactly as Slack signs them, sent to the running app's
/slack/events, against the fake Slack Web API over HTTP."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any
from urllib.parse import urlencode

import pytest
from fastapi.testclient import TestClient

from bot import bootstrap
from bot.config import Settings, SlackSettings
from bot.domain.changes import Change, FileChange
from bot.domain.ports import RevertResult
from tests.conftest import AUTH, Clock, payload_bytes
from tests.fakes.git import FakeGit
from tests.fakes.slack import FakeSlack
from tests.layouts import CHECKOUT

SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
OWNER, STRANGER = "U0123ABCD", "U0STRANGER"


def signed(body: str, *, secret: str = SECRET, age: float = 0) -> dict[str, str]:
    """Headers exactly as Slack makes them: v0= HMAC-SHA256 of `v0:{timestamp}:{body}`."""
    timestamp = str(int(time.time() - age))
    digest = hmac.new(secret.encode(), f"v0:{timestamp}:{body}".encode(), hashlib.sha256).hexdigest()
    return {"X-Slack-Request-Timestamp": timestamp, "X-Slack-Signature": f"v0={digest}",
            "Content-Type": "application/x-www-form-urlencoded"}


def seed_suspect(fake_git: FakeGit, clock: Clock) -> None:
    """One change twelve minutes before the alert: the incident's best suspect, a rollback target."""
    fake_git.changes["gitops"] = [Change(
        repo="gitops", sha="a" * 40, parents=("b" * 40,), author="Dev <d@example.com>",
        committed_at=clock.now - timedelta(minutes=12), subject="checkout: bump <!channel>",
        files=(FileChange(path="apps/checkout/migrations/001.sql", status="A"),), additions=3,
        deletions=0, image_bump=True)]


@pytest.fixture
def slack() -> Iterator[FakeSlack]:
    with FakeSlack().serving() as fake:
        yield fake


@pytest.fixture
def client(slack: FakeSlack, build: Callable[..., bootstrap.App], make_settings: Callable[..., Settings],
           fake_git: FakeGit, clock: Clock) -> Iterator[TestClient]:
    seed_suspect(fake_git, clock)
    settings = make_settings(
        chat={"kind": "slack"},
        slack=SlackSettings(mode="http", bot_token="xoxb-test", signing_secret=SECRET,
                            api_url=f"{slack.base_url}/api/", channel="#incidents", workers=4))
    app = build(settings)
    with TestClient(app.http) as test_client:
        test_client.post("/webhooks/alertmanager", content=payload_bytes("01"), headers=AUTH)
        yield test_client


def command(text: str, user: str = OWNER) -> str:
    return urlencode({"token": "legacy", "team_id": "T1", "channel_id": "C1", "user_id": user,
                      "command": "/incident", "text": text, "trigger_id": "1.2.3",
                      "response_url": "RESPONSE_URL"})


def post_command(client: TestClient, slack: FakeSlack, text: str, user: str = OWNER) -> Any:
    body = command(text, user).replace("RESPONSE_URL", f"{slack.base_url}/respond/{text.split()[0] or 'x'}")
    return client.post("/slack/events", content=body, headers=signed(body))


def interaction(client: TestClient, data: dict[str, Any]) -> Any:
    body = urlencode({"payload": json.dumps(data)})
    return client.post("/slack/events", content=body, headers=signed(body))


def button(slack: FakeSlack, action: str, user: str = OWNER, incident: str = "1") -> dict[str, Any]:
    return {"type": "block_actions", "user": {"id": user}, "team": {"id": "T1"}, "trigger_id": "4.5.6",
            "channel": {"id": "C1"}, "container": {"type": "message", "message_ts": "1.1"},
            "response_url": f"{slack.base_url}/respond/{action}",
            "actions": [{"action_id": action, "block_id": "incident_1", "value": incident, "type": "button",
                         "action_ts": f"{time.time():.6f}"}]}


def wait_for(check: Callable[[], Any], timeout: float = 5.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.02)
    raise AssertionError("timed out")


def test_help_and_unknown_commands_answer_privately(client: TestClient, slack: FakeSlack) -> None:
    """The usage, privately, for help and for anything unknown."""
    assert post_command(client, slack, "help").status_code == 200
    assert post_command(client, slack, "dance INC-1").status_code == 200
    answers = wait_for(lambda: len(slack.responses) >= 2 and slack.responses)
    assert {a["response_type"] for a in answers} == {"ephemeral"}
    assert "rollback ID [SHA]" in answers[0]["text"]


def test_ack_is_recorded_with_the_slack_user(client: TestClient, slack: FakeSlack) -> None:
    """`/incident ack INC-1`: acknowledged, on the timeline with the user, said in the channel."""
    post_command(client, slack, "ack INC-1")
    answer = wait_for(lambda: slack.responses)[0]
    assert answer["response_type"] == "in_channel"
    timeline = client.get("/api/incidents/1/timeline").json()["timeline"]
    acked = [e for e in timeline if e["kind"] == "incident.acknowledged"]
    assert acked[0]["actor_id"] == OWNER
    assert any(e["kind"] == "chat.command" and e["actor_id"] == OWNER for e in timeline)


def test_rollback_by_a_stranger_is_refused_privately_and_audited(client: TestClient, slack: FakeSlack) -> None:
    """Not an owner nor a responder: a private explanation and a chat.refused event."""
    post_command(client, slack, "rollback INC-1", user=STRANGER)
    answer = wait_for(lambda: slack.responses)[0]
    assert answer["response_type"] == "ephemeral"
    assert "may not rollback INC-1" in answer["text"]
    assert slack.called("views.open") == []
    timeline = client.get("/api/incidents/1/timeline").json()["timeline"]
    assert any(e["kind"] == "chat.refused" and e["actor_id"] == STRANGER for e in timeline)


def test_rollback_asks_first_then_runs_on_confirmation(client: TestClient, slack: FakeSlack,
                                                         fake_git: FakeGit) -> None:
    """An owner gets a modal with the commit, its reasons and the safety warnings; submitting it
    pushes the revert."""
    post_command(client, slack, "rollback INC-1")
    [opened] = wait_for(lambda: slack.called("views.open"))
    view = opened["view"]
    text = json.dumps(view["blocks"])
    assert "aaaaaaaaaaaa" in text
    assert "database-migration" in text
    assert "&lt;!channel&gt;" in text
    assert "*Files*" in text, "what the revert touches is shown before it is confirmed"
    assert fake_git.branches == {}, "nothing runs before the confirmation"
    submission = {"type": "view_submission", "user": {"id": OWNER}, "team": {"id": "T1"},
                  "view": {**view, "id": "V1", "state": {"values": {}}}}
    assert interaction(client, submission).status_code == 200
    wait_for(lambda: fake_git.branches)
    assert list(fake_git.branches) == [("gitops", "backout/INC-1/revert-aaaaaaa")]


def test_buttons_acknowledge_once_even_when_pressed_twice(client: TestClient, slack: FakeSlack) -> None:
    """Two presses of Acknowledge: one acknowledgement, one answer."""
    assert interaction(client, button(slack, "backout_ack")).status_code == 200
    assert interaction(client, button(slack, "backout_ack")).status_code == 200
    wait_for(lambda: slack.responses)
    time.sleep(0.3)
    timeline = client.get("/api/incidents/1/timeline").json()["timeline"]
    assert [e["kind"] for e in timeline].count("incident.acknowledged") == 1
    assert len(slack.responses) == 1


def test_forged_old_and_replayed_requests_run_nothing(client: TestClient, slack: FakeSlack) -> None:
    """Bad signature, a timestamp over five minutes old, and a replay are refused with 401."""
    body = command("ack INC-1").replace("RESPONSE_URL", f"{slack.base_url}/respond/ack")
    assert client.post("/slack/events", content=body, headers=signed(body, secret="wrong")).status_code == 401
    assert client.post("/slack/events", content=body, headers=signed(body, age=400)).status_code == 401
    headers = signed(body)
    assert client.post("/slack/events", content=body, headers=headers).status_code == 200
    replay = client.post("/slack/events", content=body, headers=headers)
    assert (replay.status_code, replay.json()["error"]) == (401, "replayed")
    time.sleep(0.3)
    timeline = client.get("/api/incidents/1/timeline").json()["timeline"]
    assert [e["kind"] for e in timeline].count("incident.acknowledged") == 1


def test_export_uploads_a_file(client: TestClient, slack: FakeSlack) -> None:
    """`/incident export INC-1 json` uploads the document (files_upload_v2: three requests)."""
    post_command(client, slack, "export INC-1 json")
    wait_for(lambda: slack.called("files.completeUploadExternal"))
    assert json.loads(next(iter(slack.files.values())))["incident"]["ref"] == "INC-1"


def test_the_ack_comes_at_once_while_github_is_slow(client: TestClient, slack: FakeSlack,
                                                     fake_git: FakeGit) -> None:
    """The confirmation's ack returns well within Slack's 3 s while the push takes 3 s."""
    slow = fake_git.push_revert

    def push_slowly(repo: str, **kwargs: Any) -> RevertResult:
        time.sleep(3)
        return slow(repo, **kwargs)

    fake_git.push_revert = push_slowly  # type: ignore[method-assign]
    post_command(client, slack, "rollback INC-1")
    [opened] = wait_for(lambda: slack.called("views.open"))
    submission = {"type": "view_submission", "user": {"id": OWNER}, "team": {"id": "T1"},
                  "view": {**opened["view"], "id": "V1", "state": {"values": {}}}}
    started = time.monotonic()
    assert interaction(client, submission).status_code == 200
    assert time.monotonic() - started < 1.0
    wait_for(lambda: fake_git.branches, timeout=10)


def test_a_member_of_an_owner_group_may_roll_back(client: TestClient, slack: FakeSlack) -> None:
    """Owners can be user groups: membership comes from usergroups.users.list."""
    slack.groups["S0456DEFG"] = ["U0GROUPIE"]
    post_command(client, slack, "rollback INC-1", user="U0GROUPIE")
    wait_for(lambda: slack.called("views.open"))
    assert slack.called("usergroups.users.list")[0]["usergroup"] == "S0456DEFG"


def test_slack_retries_run_once(client: TestClient, slack: FakeSlack) -> None:
    """The same delivery retried (X-Slack-Retry-Num, new signature) is acknowledged and ignored."""
    body = command("note INC-1 once").replace("RESPONSE_URL", f"{slack.base_url}/respond/note")
    assert client.post("/slack/events", content=body, headers=signed(body)).status_code == 200
    time.sleep(1.1)  # a retry comes later, signed anew
    retry = client.post("/slack/events", content=body, headers={**signed(body), "X-Slack-Retry-Num": "1"})
    assert retry.json() == {"ok": True, "duplicate": True}
    time.sleep(0.3)
    timeline = client.get("/api/incidents/1/timeline").json()["timeline"]
    assert [e["text"] for e in timeline].count("once") == 1


def test_a_forged_request_is_not_logged(client: TestClient, slack: FakeSlack,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    """Nothing of a refused body (tokens, response_url) reaches the logs."""
    body = command("ack INC-1").replace("RESPONSE_URL", "https://hooks.slack.com/secret-response-url")
    assert client.post("/slack/events", content=body, headers=signed(body, secret="forged")).status_code == 401
    logged = capsys.readouterr()
    assert "secret-response-url" not in logged.out + logged.err
    assert "slack.bad_signature" in logged.out + logged.err


def test_the_branch_button_is_for_owners(client: TestClient, slack: FakeSlack, fake_git: FakeGit) -> None:
    """Open incident branch: refused privately for a stranger, pushed for an owner."""
    interaction(client, button(slack, "backout_branch", user=STRANGER))
    assert "may not open an incident branch" in wait_for(lambda: slack.responses)[0]["text"]
    interaction(client, button(slack, "backout_branch"))
    wait_for(lambda: fake_git.branches)
    assert list(fake_git.branches) == [("gitops", "backout/INC-1/incident")]
    assert "backout/INC-1/incident" in wait_for(lambda: len(slack.responses) > 1 and slack.responses)[1]["text"]


def test_freeze_by_service_is_for_owners_and_pushes_the_freeze_branch(client: TestClient, slack: FakeSlack,
                                                                      fake_git: FakeGit) -> None:
    """`/incident freeze checkout`: refused for a stranger; for an owner, the freeze branch of INC-1
    with the marker taken off checkout's line, said in the channel."""
    fake_git.manifest_files["gitops"] = {"apps/checkout/deploy.yaml": CHECKOUT}
    post_command(client, slack, "freeze checkout", user=STRANGER)
    assert "may not freeze INC-1" in wait_for(lambda: slack.responses)[0]["text"]
    post_command(client, slack, "freeze checkout")
    answer = wait_for(lambda: len(slack.responses) > 1 and slack.responses)[1]
    assert answer["response_type"] == "in_channel"
    assert answer["text"].startswith("INC-1 freeze: freeze of gitops: backout/INC-1/freeze (pushed)")
    pushed = fake_git.pushed_files[("gitops", "backout/INC-1/freeze")]["apps/checkout/deploy.yaml"].decode()
    assert "$imagepolicy" not in pushed
    assert "# backout-freeze INC-1:" in pushed


def test_suspect_buttons_record_verdicts_with_the_slack_user(client: TestClient, slack: FakeSlack) -> None:
    """The thread's suspects post offers "Caused it" and "Not" for each suspect and "No change caused
    it"; a press records the verdict with who pressed it, once, and answers privately."""
    posted = wait_for(lambda: [c for c in slack.called("chat.postMessage") if c.get("thread_ts") and c.get("blocks")])
    ids = [e["action_id"] for b in json.loads(json.dumps(posted[0]["blocks"])) if b["type"] == "actions"
           for e in b["elements"]]
    assert {"backout_verdict_culprit_aaaaaaa", "backout_verdict_not_aaaaaaa", "backout_verdict_none"} <= set(ids)
    def press() -> dict[str, Any]:
        return button(slack, "backout_verdict_culprit_aaaaaaa", user=STRANGER, incident="1:" + "a" * 40)
    assert interaction(client, press()).status_code == 200
    assert interaction(client, press()).status_code == 200
    answer = wait_for(lambda: slack.responses)[0]
    assert answer["response_type"] == "ephemeral"
    assert "marked aaaaaaa as the cause" in answer["text"]
    time.sleep(0.3)
    timeline = client.get("/api/incidents/1/timeline").json()["timeline"]
    verdicts = [e for e in timeline if e["kind"] == "verdict.recorded"]
    assert [(e["actor_id"], e["text"]) for e in verdicts] == [
        (STRANGER, f"{STRANGER} marked aaaaaaa as the change that caused it")]
    assert interaction(client, button(slack, "backout_verdict_none")).status_code == 200
    wait_for(lambda: len(slack.responses) >= 2)
    exported = client.get("/api/incidents/1/export").json()
    assert exported["verdict"]["no_change"] is True


def test_a_ruled_out_change_takes_a_second_confirmation_naming_why(client: TestClient, slack: FakeSlack,
                                                                   fake_git: FakeGit, clock: Clock) -> None:
    """"Not aaaaaaa" re-ranks at once: the message loses its Roll back button, `/incident rollback`
    answers privately why there is no target, and naming the change opens the modal with a warning
    whose submit asks again, naming the reason; only the second submit rolls back, recorded as forced."""
    wait_for(lambda: slack.called("chat.postMessage"))
    first = [e["text"]["text"] for b in slack.called("chat.postMessage")[0]["blocks"] if b["type"] == "actions"
             for e in b["elements"] if e["action_id"] == "backout_rollback"]
    assert first == ["Roll back aaaaaaa"], "the button names the best suspect"
    clock.now += timedelta(seconds=3)  # past the message's update debounce
    interaction(client, button(slack, "backout_verdict_not_aaaaaaa", incident="1:" + "a" * 40))
    updated = wait_for(lambda: slack.called("chat.update"))[-1]
    assert "backout_rollback" not in json.dumps(updated["blocks"]), "no best suspect: no Roll back button"
    post_command(client, slack, "rollback INC-1")
    refusal = wait_for(lambda: [r for r in slack.responses if "no rollback target" in r.get("text", "")])[0]
    assert refusal["response_type"] == "ephemeral"
    assert f"aaaaaaa ruled out by {OWNER} at" in refusal["text"]
    post_command(client, slack, "rollback INC-1 aaaaaaa")
    view = wait_for(lambda: slack.called("views.open"))[0]["view"]
    assert "Not a rollback target:* ruled out by" in json.dumps(view["blocks"])
    assert view["submit"]["text"] == "Continue"
    submit = {"type": "view_submission", "user": {"id": OWNER}, "team": {"id": "T1"},
              "view": {**view, "id": "V1", "state": {"values": {}}}}
    second = interaction(client, submit).json()
    assert second["response_action"] == "update"
    assert f"It is not a rollback target: ruled out by {OWNER} at" in json.dumps(second["view"]["blocks"])
    assert second["view"]["submit"]["text"] == "Roll back anyway"
    time.sleep(0.3)
    assert fake_git.branches == {}, "the first confirmation alone rolls nothing back"
    interaction(client, {**submit, "view": {**second["view"], "id": "V1", "state": {"values": {}}}})
    wait_for(lambda: fake_git.branches)
    timeline = client.get("/api/incidents/1/timeline").json()["timeline"]
    [forced] = [e for e in timeline if e["kind"] == "rollback.forced"]
    assert forced["actor_id"] == OWNER
    assert "which was no rollback target: ruled out by" in forced["text"]


def test_restore_is_for_owners_and_shows_the_plan_or_why_there_is_none(client: TestClient, slack: FakeSlack) -> None:
    """`/incident restore INC-1`: a stranger is refused and audited; for an owner, a private answer
    (here: no revision counts as good yet, and why), nothing pushed."""
    post_command(client, slack, "restore INC-1", user=STRANGER)
    refused = wait_for(lambda: slack.responses)[0]
    assert refused["response_type"] == "ephemeral"
    assert "You may not restore INC-1" in refused["text"]
    post_command(client, slack, "restore INC-1")
    answer = wait_for(lambda: len(slack.responses) >= 2 and slack.responses)[1]
    assert answer["response_type"] == "ephemeral"
    assert "no last known good revision of checkout in gitops" in answer["text"]
    timeline = client.get("/api/incidents/1/timeline").json()["timeline"]
    assert not [e for e in timeline if e["kind"] == "action.started"]
