"""Incident rooms and roles in memory: channel names by Slack's rules, the lead, handing roles over,
status updates, severity by hand, overdue-update reminders, and the command words."""

from __future__ import annotations

from datetime import timedelta

import pytest

from bot.config import load_playbooks
from bot.domain.chat import parse_command
from bot.domain.errors import Conflict, InvalidInput
from bot.domain.incidents import IncidentPolicy
from bot.domain.models import Actor, IncidentStatus, Severity
from bot.domain.playbooks import Playbook
from bot.domain.rooms import RoomPolicy, UpdateReminders, channel_name, mentioned_user
from bot.services import roles
from bot.services.incidents import change_status, get_incident
from bot.services.ingest import ingest_delivery
from tests.conftest import PLAYBOOKS, Clock, delivery
from tests.fakes.store import InMemoryStore


@pytest.fixture
def playbooks() -> list[Playbook]:
    return [p.model_copy(update={"room": RoomPolicy(roles=("comms", "scribe"))}) for p in load_playbooks(PLAYBOOKS)]


@pytest.fixture
def store(playbooks: list[Playbook], clock: Clock) -> InMemoryStore:
    found = InMemoryStore()
    ingest_delivery(store=found, delivery=delivery("01"), playbooks=playbooks, policy=IncidentPolicy(), now=clock())
    return found


def kinds(store: InMemoryStore) -> list[str]:
    return [e.kind for e in store.state.events.values()]


def ack(store: InMemoryStore, user: str, clock: Clock) -> None:
    change_status(store=store, incident_id=1, target=IncidentStatus.ACKNOWLEDGED, actor=Actor.USER, actor_id=user,
                  now=clock())


def test_channel_names_keep_to_slacks_rules() -> None:
    """Lowercase, only letters, digits, `-` and `_`, at most 80 characters, the suffix kept within them."""
    assert channel_name("inc-{id}-{service}", incident_id=7, service="Check Out/EU") == "inc-7-check-out-eu"
    long = channel_name("inc-{id}-{service}", incident_id=7, service="x" * 200, suffix=12)
    assert len(long) == 80
    assert long.endswith("-12")
    assert channel_name("{service}", incident_id=7, service="###") == "inc-7"
    with pytest.raises(InvalidInput, match="only \\{id\\} and \\{service\\}"):
        channel_name("inc-{when}", incident_id=7, service="x")


def test_a_mention_is_read_as_the_users_id() -> None:
    """`<@U123|bob>` (Slack's escaped mention) and `U123`; a bare name is refused with what to do."""
    assert mentioned_user("<@U0BOB|bob>") == "U0BOB"
    assert mentioned_user("U0BOB") == "U0BOB"
    with pytest.raises(InvalidInput, match="mention them"):
        mentioned_user("@bob")


def test_commands_take_the_incident_from_the_channel_when_the_id_is_left_out() -> None:
    """`update text` has no id (its channel says which); `role` needs a role and a person."""
    assert parse_command("update rolling back now").incident is None
    assert parse_command("update INC-3 rolling back").incident == "INC-3"
    assert parse_command("role lead <@U0BOB|bob>").args == ("lead", "<@U0BOB|bob>")
    with pytest.raises(InvalidInput, match="role ID ROLE @user"):
        parse_command("role INC-3 lead")
    with pytest.raises(InvalidInput, match="severity ID LEVEL"):
        parse_command("severity")


def test_the_first_to_acknowledge_leads_until_handed_over(store: InMemoryStore, playbooks: list[Playbook],
                                                          clock: Clock) -> None:
    """The first ack sets the lead; `role lead` hands it over, said on the timeline with who it was."""
    ack(store, "U0ALICE", clock)
    assert get_incident(store=store, incident_id=1).roles == {"lead": "U0ALICE"}
    said = roles.assign_role(store=store, playbooks=playbooks, incident_id=1, role="lead", user="U0BOB",
                             actor_id="U0ALICE", now=clock())
    assert said == "INC-1 lead: U0BOB (was U0ALICE), set by U0ALICE"
    roles.assign_role(store=store, playbooks=playbooks, incident_id=1, role="Comms", user="U0CAROL",
                      actor_id="U0BOB", now=clock())
    assert get_incident(store=store, incident_id=1).roles == {"lead": "U0BOB", "comms": "U0CAROL"}
    assert kinds(store).count("incident.role") == 3


def test_a_lead_set_before_the_ack_stays(store: InMemoryStore, playbooks: list[Playbook], clock: Clock) -> None:
    """Someone made lead first is not replaced by whoever acknowledges."""
    roles.assign_role(store=store, playbooks=playbooks, incident_id=1, role="lead", user="U0BOB", actor_id="U0X",
                      now=clock())
    ack(store, "U0ALICE", clock)
    assert get_incident(store=store, incident_id=1).roles == {"lead": "U0BOB"}


def test_a_role_the_playbook_does_not_list_is_refused_naming_the_roles(store: InMemoryStore,
                                                                       playbooks: list[Playbook],
                                                                       clock: Clock) -> None:
    """Only `lead` and the playbook's roles."""
    with pytest.raises(InvalidInput, match="the roles are lead, comms, scribe"):
        roles.assign_role(store=store, playbooks=playbooks, incident_id=1, role="chef", user="U0BOB",
                          actor_id="U0X", now=clock())


def test_a_resolved_incident_takes_no_role_update_or_severity(store: InMemoryStore, playbooks: list[Playbook],
                                                               clock: Clock) -> None:
    """A record: each is refused naming the state and how to reopen it."""
    change_status(store=store, incident_id=1, target=IncidentStatus.RESOLVED, actor=Actor.USER, actor_id="U0X",
                  now=clock())
    with pytest.raises(Conflict, match="INC-1 is resolved; it cannot change its roles; reopen it first"):
        roles.assign_role(store=store, playbooks=playbooks, incident_id=1, role="lead", user="U0BOB",
                          actor_id="U0X", now=clock())
    with pytest.raises(Conflict, match="is resolved"):
        roles.post_update(store=store, incident_id=1, text="all good", actor_id="U0X", now=clock())
    with pytest.raises(Conflict, match="is resolved"):
        roles.set_severity(store=store, incident_id=1, level="warning", actor_id="U0X", now=clock())


def test_status_updates_are_on_the_timeline(store: InMemoryStore, clock: Clock) -> None:
    """`update` is its own event (the channel sees it); an empty one is refused."""
    roles.post_update(store=store, incident_id=1, text="  rolling   back  ", actor_id="U0X", now=clock())
    [update] = [e for e in store.state.events.values() if e.kind == "incident.update"]
    assert (update.text, update.actor_id) == ("rolling back", "U0X")
    with pytest.raises(InvalidInput, match="needs some text"):
        roles.post_update(store=store, incident_id=1, text=" ", actor_id="U0X", now=clock())


def test_severity_is_raised_or_lowered_by_hand(store: InMemoryStore, clock: Clock) -> None:
    """Each change is an event saying from and to; the same level changes nothing; a wrong one is refused."""
    incident, changed = roles.set_severity(store=store, incident_id=1, level="Warning", actor_id="U0X", now=clock())
    assert (incident.severity, changed) == (Severity.WARNING, True)
    roles.set_severity(store=store, incident_id=1, level="critical", actor_id="U0X", now=clock())
    assert roles.set_severity(store=store, incident_id=1, level="critical", actor_id="U0X", now=clock())[1] is False
    assert kinds(store)[-2:] == ["incident.severity_lowered", "incident.severity_raised"]
    with pytest.raises(InvalidInput, match="one of info, warning, error, critical"):
        roles.set_severity(store=store, incident_id=1, level="sev1", actor_id="U0X", now=clock())


def test_a_reminder_when_no_update_was_posted_for_the_interval(store: InMemoryStore, clock: Clock) -> None:
    """Counted from the acknowledgement, then from the last update or reminder; never while open."""
    policy = UpdateReminders(updates={Severity.CRITICAL: timedelta(minutes=15)})
    clock.now += timedelta(hours=1)
    assert roles.remind_updates(store=store, policy=policy, now=clock()) == []  # open: the ack reminders' job
    ack(store, "U0ALICE", clock)
    clock.now += timedelta(minutes=14)
    assert roles.remind_updates(store=store, policy=policy, now=clock()) == []
    clock.now += timedelta(minutes=1)
    assert roles.remind_updates(store=store, policy=policy, now=clock()) == [1]
    [reminder] = [e for e in store.state.events.values() if e.kind == "incident.update_reminder"]
    assert "No status update for 15 min; lead: U0ALICE" in reminder.text
    clock.now += timedelta(minutes=10)
    roles.post_update(store=store, incident_id=1, text="still on it", actor_id="U0ALICE", now=clock())
    clock.now += timedelta(minutes=14)
    assert roles.remind_updates(store=store, policy=policy, now=clock()) == []
    clock.now += timedelta(minutes=1)
    assert roles.remind_updates(store=store, policy=policy, now=clock()) == [1]


def test_severities_without_an_interval_are_never_reminded(store: InMemoryStore, clock: Clock) -> None:
    """The `reminders.updates` map names the severities; others get none."""
    ack(store, "U0ALICE", clock)
    clock.now += timedelta(days=1)
    policy = UpdateReminders(updates={Severity.WARNING: timedelta(minutes=15)})
    assert roles.remind_updates(store=store, policy=policy, now=clock()) == []
