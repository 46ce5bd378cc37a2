"""A resolved incident is a record, on real Git history: a failed reconciliation of a later
revision opens a new incident that follows it, and neither that nor any re-ranking rewrites its
suspects; a reopen keeps its earlier ranking on the timeline."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

from bot.adapters.console import RecordingNotifier
from bot.domain.incidents import IncidentPolicy
from bot.domain.models import AlertStatus, Delivery, IncidentStatus, ReceivedAlert
from bot.domain.playbooks import Playbook
from bot.services.incidents import get_incident
from bot.services.ingest import ingest_delivery
from bot.services.investigate import investigate, rank_incident, rerank_open_incidents
from bot.services.notify import incident_lines
from tests.fakes.store import InMemoryStore
from tests.gitrepos import Remote, mirrors

DEPLOY = "image: registry.example.com/checkout:{tag}\n"
BOOK = Playbook.model_validate({"name": "checkout", "service": "checkout", "match": {"service": "checkout"},
                                "repos": [{"repo": "gitops", "paths": ["apps/checkout/**"]}],
                                "suspects": {"lookback": "6h", "sync_delay": "1m"}})


class World:
    """A GitOps remote with a bad bump, mirrored; INC-1 opened by HighErrorRate and ranked."""

    def __init__(self, tmp: Path) -> None:
        self.remote = Remote(tmp / "gitops")
        self.remote.commit("init", {"apps/checkout/deploy.yaml": DEPLOY.format(tag="1.0"), "README.md": "x\n"})
        self.bad = self.remote.commit("checkout: bump to 1.1", {"apps/checkout/deploy.yaml": DEPLOY.format(tag="1.1")})
        self.git, self.store, self.notes = mirrors(tmp, {"gitops": self.remote}), InMemoryStore(), RecordingNotifier()
        self.t0 = self.remote.clock + timedelta(minutes=4)
        self.deliver("am", "HighErrorRate", "am1", AlertStatus.FIRING, 0)
        self.investigate(1, 1)

    def at(self, minutes: float) -> datetime:
        return self.t0 + timedelta(minutes=minutes)

    def deliver(self, group: str, name: str, fingerprint: str, status: AlertStatus, minutes: float,
                source: str = "alertmanager") -> None:
        alert = ReceivedAlert(fingerprint=fingerprint, starts_at=self.at(0 if fingerprint == "am1" else minutes),
                              ends_at=self.at(minutes) if status is AlertStatus.RESOLVED else None, status=status,
                              source=source, labels={"alertname": name, "service": "checkout"}, annotations={})
        ingest_delivery(store=self.store, delivery=Delivery(group_key=group, status=status, alerts=(alert,)),
                        playbooks=[BOOK], policy=IncidentPolicy(), now=self.at(minutes))

    def investigate(self, incident_id: int, minutes: float) -> None:
        investigate(store=self.store, git=self.git, notifier=self.notes, playbooks=[BOOK], incident_id=incident_id,
                    now=self.at(minutes), import_window=timedelta(days=90))


def test_a_failure_after_resolution_opens_a_new_incident_and_leaves_the_record_alone(tmp_path: Path) -> None:
    """INC-1 resolved with 1.1 as its suspect; 1.2 is pushed and Flux fails to apply it: INC-2
    follows INC-1; INC-1 stays resolved, its suspects and timeline untouched by INC-2's ranking
    and by re-ranking every incident after the new commit."""
    world = World(tmp_path)
    before = get_incident(store=world.store, incident_id=1)
    assert before.ranking.suspects[0].sha == world.bad
    world.deliver("am", "HighErrorRate", "am1", AlertStatus.RESOLVED, 10)
    resolved = get_incident(store=world.store, incident_id=1)
    world.remote.clock = world.at(12)
    world.remote.commit("checkout: bump to 1.2", {"apps/checkout/deploy.yaml": DEPLOY.format(tag="1.2")}, minutes=0)
    world.deliver("flux:kustomization/checkout", "ReconcileFailed", "flux1", AlertStatus.FIRING, 15, source="flux")
    world.investigate(2, 16)
    rerank_open_incidents(store=world.store, notifier=world.notes, playbooks=[BOOK], repos=["gitops"],
                          now=world.at(17), git=world.git)
    assert rank_incident(store=world.store, playbooks=[BOOK], incident_id=1, now=world.at(18)) == resolved.ranking

    after = get_incident(store=world.store, incident_id=1)
    assert after.incident == resolved.incident
    assert after.ranking == resolved.ranking
    assert after.timeline == resolved.timeline
    second = get_incident(store=world.store, incident_id=2)
    assert (second.incident.status, second.incident.follows) == (IncidentStatus.OPEN, 1)
    assert second.timeline[0].text.startswith("Opened by ReconcileFailed for service checkout (playbook checkout); "
                                              "follows INC-1, resolved at")
    assert [a.name for a in second.alerts] == ["ReconcileFailed"]
    assert incident_lines(second)[0] == "open · severity none · service checkout · follows INC-1"


def test_a_reopen_keeps_the_earlier_ranking_on_the_timeline(tmp_path: Path) -> None:
    """The same alert group fires again within the window: INC-1 reopens saying what fired; the
    ranking it had is written on the timeline before it is ranked again."""
    world = World(tmp_path)
    world.deliver("am", "HighErrorRate", "am1", AlertStatus.RESOLVED, 10)
    world.deliver("am", "HighErrorRate", "am2", AlertStatus.FIRING, 25)
    view = get_incident(store=world.store, incident_id=1)
    assert view.incident.status is IncidentStatus.OPEN
    kinds = [e.kind for e in view.timeline]
    assert kinds[-3:] == ["incident.reopened", "suspects.kept", "alert.firing"]
    reopened, kept = view.timeline[-3:-1]
    assert reopened.text == "Reopened: HighErrorRate fired again within 30m of the resolution"
    assert f"{world.bad[:7]} " in kept.text
    assert kept.data["suspects"][0]["sha"] == world.bad
