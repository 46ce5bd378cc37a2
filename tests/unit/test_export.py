"""The post-incident export: the versioned JSON document and Markdown that shows alert text literally."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

from bot.adapters.console import RecordingNotifier
from bot.adapters.export.html import render_markdown
from bot.config import load_playbooks
from bot.domain.incidents import IncidentPolicy
from bot.domain.models import Actor, IncidentStatus
from bot.domain.text import md
from bot.services.export import SCHEMA_VERSION, ExportLinks, build_export
from bot.services.incidents import change_status, get_incident
from bot.services.ingest import ingest_delivery
from bot.services.investigate import investigate
from tests.conftest import PLAYBOOKS, Clock, delivery
from tests.fakes.git import FakeGit
from tests.fakes.store import InMemoryStore


def exported(clock: Clock, *, links: ExportLinks | None = None, view: bool = False) -> Any:
    """The export document of a resolved incident (or, with `view`, the incident view itself)."""
    store, playbooks = InMemoryStore(), load_playbooks(PLAYBOOKS)
    ingest_delivery(store=store, delivery=delivery("01"), playbooks=playbooks, policy=IncidentPolicy(),
                    now=clock())
    investigate(store=store, git=FakeGit(), notifier=RecordingNotifier(), playbooks=playbooks,
                incident_id=1, now=clock() + timedelta(seconds=2), import_window=timedelta(days=1))
    clock.now += timedelta(minutes=3)
    change_status(store=store, incident_id=1, target=IncidentStatus.ACKNOWLEDGED, actor=Actor.USER,
                  actor_id="U1", now=clock())
    clock.now += timedelta(minutes=10)
    for prefix in ("02", "04"):
        ingest_delivery(store=store, delivery=delivery(prefix), playbooks=playbooks,
                        policy=IncidentPolicy(), now=clock())
    found = get_incident(store=store, incident_id=1)
    return found if view else build_export(found, generated_at=clock(), links=links)


def test_the_json_document_is_versioned_and_complete(clock: Clock) -> None:
    """Schema version, incident, durations, alerts, suspects, actions and the ordered timeline."""
    doc = exported(clock)
    assert doc["schema_version"] == SCHEMA_VERSION
    assert doc["incident"]["ref"] == "INC-1"
    assert doc["incident"]["status"] == "resolved"
    started = "2026-11-21T22:20:22.313008+00:00"
    assert doc["incident"]["started_at"] == started
    durations = doc["durations_seconds"]
    assert durations["to_first_suspect"] == 2.0
    assert durations["to_acknowledge"] == 217.687  # from the alert's start to the ack
    assert durations["to_mitigate"] is None
    assert durations["to_resolve"] == 817.687
    assert [a["status"] for a in doc["alerts"]] == ["resolved", "resolved"]
    assert doc["suspects"]["status"] == "ranked"
    times = [entry["at"] for entry in doc["timeline"]]
    assert times == sorted(times)
    assert {"U1", ""} >= {entry["actor_id"] for entry in doc["timeline"]}


def test_markdown_shows_alert_text_literally(clock: Clock) -> None:
    """The fixture's `<!channel>`, mrkdwn and link stay text: no HTML, no link, no formatting."""
    text = render_markdown(exported(clock))
    assert not re.search(r"(?<!\\)<!channel>", text), "every < that could open a tag is backslashed"
    assert r"\<!channel>" in text  # backslashed, not an HTML entity
    assert "https://evil" not in text
    assert "## Timeline" in text
    assert "| Resolved | 13m37s |" in text
    assert "## Root cause" in text


def test_md_escaping() -> None:
    """Emphasis, links, tables, HTML and leading block markers are neutralised."""
    assert md("*x* _y_ `z` [a](b) c|d <b>") == r"\*x\* \_y\_ \`z\` \[a\](b) c\|d \<b>"
    assert md("5xx > 5% & more") == "5xx > 5% & more"  # read the same on GitHub, in Confluence and Slack
    assert md("&amp; &#60;") == r"\&amp; \&#60;"
    assert md("# title") == r"\# title"
    assert md("2. second\nline") == r"2\. second line"
    assert md("see https://x.example") == "see https:\u200b//x.example"
