"""The rollback override over the API: a verdict re-ranks at once, the plan says why a change is
excluded, and rolling it back is a 409 naming why unless the body says `"force": true`."""

from __future__ import annotations

from collections.abc import Callable

from bot import bootstrap
from bot.adapters.console import RecordingNotifier
from bot.config import Settings
from tests.adapters.test_verdicts import API_TOKEN, BEARER, opened
from tests.conftest import Clock
from tests.fakes.git import FakeGit

A = "a" * 40


def test_a_ruled_out_change_is_a_409_without_force_and_forced_with_it(
    build: Callable[..., bootstrap.App], make_settings: Callable[..., Settings], fake_git: FakeGit, clock: Clock,
    notices: RecordingNotifier,
) -> None:
    """"Not this one" drops the change from the answer at once (the chat hears "suspects.changed");
    the default plan refuses naming why, the named plan carries `excluded`, the POST is a 409 with
    the reason until `force` is sent; then the timeline says it was forced and why."""
    client = opened(build, make_settings, fake_git, clock, tokens=[API_TOKEN])
    assert client.get("/api/incidents/INC-1/suspects", headers=BEARER).json()["best"] == A
    client.post("/api/incidents/INC-1/verdict", json={"verdict": "not_culprit", "sha": "aaaaaaa", "by": "alice"},
                headers=BEARER)
    assert notices.notices[-1].kind == "suspects.changed"
    suspects = client.get("/api/incidents/INC-1/suspects", headers=BEARER).json()
    assert suspects["best"] is None
    why = suspects["suspects"][0]["excluded"]
    assert why.startswith("ruled out by token-1 on behalf of alice at ")
    default = client.get("/api/incidents/INC-1/rollback", headers=BEARER)
    assert default.status_code == 409
    assert default.json()["detail"].startswith(f"INC-1 has no rollback target: aaaaaaa {why}")
    plan = client.get("/api/incidents/INC-1/rollback", params={"commit": "aaaaaaa"}, headers=BEARER).json()
    assert plan["excluded"] == why
    refused = client.post("/api/incidents/INC-1/rollback", json={"commit": A, "by": "bob"}, headers=BEARER)
    assert refused.status_code == 409
    assert refused.json()["detail"] == (f"aaaaaaa is not a rollback target: {why}; roll it back anyway with "
                                        "--force on the CLI, \"force\": true in the API")
    assert fake_git.branches == {}
    forced = client.post("/api/incidents/INC-1/rollback", json={"commit": A, "by": "bob", "force": True},
                         headers=BEARER)
    assert forced.status_code == 200, forced.text
    assert forced.json()["action"]["state"] == "pushed"
    timeline = client.get("/api/incidents/INC-1/timeline", headers=BEARER).json()["timeline"]
    [event] = [e for e in timeline if e["kind"] == "rollback.forced"]
    assert event["text"] == f"token-1 on behalf of bob forced the rollback of aaaaaaa, which was no rollback target: " \
                            f"{why}"
    assert event["data"]["excluded"] == why
