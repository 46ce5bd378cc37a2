"""The demo incident's Slack card, from the real renderer: its Block Kit JSON (the README shows it,
and a test holds the two equal) and a picture of it (docs/card.png), drawn by headless Chromium
from an HTML approximation of how Slack shows Block Kit (Slack's own fonts and spacing differ).

Usage: python -m bot.demo.card json | python -m bot.demo.card picture docs/card.png
"""

from __future__ import annotations

import argparse
import html
import json
import re
import shutil
import subprocess
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bot.adapters.slack.card import card_message
from bot.domain.changes import AppliedSource
from bot.domain.models import Actor, Incident, IncidentStatus, Severity, TimelineEvent
from bot.domain.plan import make_plan
from bot.domain.suspects import Ranking, RankingStatus, Suspect
from bot.domain.timeline import EventKind
from bot.services.card import card_payload
from bot.services.incidents import IncidentView

OPENED = datetime(2026, 3, 14, 3, 14, tzinfo=UTC)
PEOPLE = {"U0123ABCD": "alice"}  # how Slack would show the lead's mention
LINKS = [("Incident page", "https://backout.example.com/incidents/7?t=signed-link"),
         ("Runbook", "https://runbooks.example.com/checkout/high-error-rate")]
CHROMIUM_SECONDS = 60


def demo_view() -> IncidentView:
    """INC-7: checkout's error rate, acknowledged by alice, one confident suspect."""
    incident = Incident(id=7, group_key="demo", title="HighErrorRate on checkout: 5xx > 5% on checkout",
                        service="checkout", severity=Severity.CRITICAL, status=IncidentStatus.ACKNOWLEDGED,
                        playbook="checkout", started_at=OPENED, opened_at=OPENED,
                        acknowledged_at=OPENED + timedelta(minutes=3))
    culprit = Suspect(
        repo="gitops", sha="1a2b3c4d5e6f7a8b9c0d1e2f3a4b5c6d7e8f9a0b", subject="checkout: raise the DB pool to 200",
        author="Alice <alice@example.com>", applied_at=OPENED - timedelta(minutes=6),
        applied_source=AppliedSource.FLUX, score=0.82, pr_number=482,
        reasons=("applied by kustomization/checkout at 03:08:00 UTC, 4m before the problem began at 03:12 UTC "
                 "(2m before the alert)", "touched the service's paths: apps/checkout/deployment.yaml",
                 "changed configuration: DB_POOL_SIZE 50 -> 200", "score timing 0.91 x scope 1.00 x effect 0.90"))
    ranking = Ranking(status=RankingStatus.RANKED, confident=True, ranked_at=OPENED, floor=0.2, confidence=0.78,
                      reason="1a2b3c4 (checkout: raise the DB pool to 200) scores 0.82 (evidence floor 0.20), "
                             "5.1x the next candidate, 9f8e7d6.",
                      suspects=(culprit,))
    acknowledged = TimelineEvent(id=3, incident_id=7, at=OPENED + timedelta(minutes=3),
                                 kind=EventKind.INCIDENT_ACKNOWLEDGED.value, actor=Actor.USER, actor_id="U0123ABCD",
                                 text="Acknowledged by U0123ABCD")
    return IncidentView(incident=incident, alerts=[], timeline=[acknowledged], ranking=ranking, actions=[])


def demo_card() -> list[dict[str, Any]]:
    """The demo incident's card blocks, as Backout sends them."""
    view = demo_view()
    plan = make_plan(ranking=view.ranking, playbook=None, timeline=view.timeline, actions=view.actions,
                     reverted={}, now=OPENED + timedelta(minutes=4))
    payload = card_payload(view, plan) | {"firing": 2}
    return card_message(payload, incident_id=7, links=LINKS)[1]


def demo_json() -> str:
    return json.dumps({"blocks": demo_card()}, indent=2, ensure_ascii=False)


def card_html(blocks: list[dict[str, Any]]) -> str:
    """An approximation of how Slack shows the blocks: header, sections, context and buttons."""
    parts = []
    for block in blocks:
        if block["type"] == "header":
            parts.append(f"<h1>{html.escape(block['text']['text'])}</h1>")
        elif block["type"] == "section":
            parts.append(f"<p>{_mrkdwn(block['text']['text'])}</p>")
        elif block["type"] == "context":
            parts.append("<p class=context>" + " ".join(_mrkdwn(e["text"]) for e in block["elements"]) + "</p>")
        elif block["type"] == "actions":
            parts.append("<div class=actions>" + "".join(
                f"<span class='button {e.get('style', '')}'>{html.escape(e['text']['text'])}</span>"
                for e in block["elements"]) + "</div>")
    return ("<!doctype html><meta charset=utf-8><style>"
            "body{font:15px/1.46 'Lato','Helvetica Neue',Arial,sans-serif;color:#1d1c1d;margin:0;padding:16px 20px;"
            "width:640px}.who{font-weight:900}.who small{color:#616061;font-weight:400;margin-left:6px}"
            "h1{font-size:18px;margin:4px 0}p{margin:4px 0}a{color:#1264a3;text-decoration:none}"
            ".context{font-size:12px;color:#616061}code{color:#e01e5a;background:#f6f6f6;border:1px solid #ddd;"
            "border-radius:3px;padding:0 3px;font-size:12px}.mention{color:#1264a3;background:#e8f5fa;padding:0 2px}"
            ".actions{margin-top:8px}.button{display:inline-block;border:1px solid #bbb;border-radius:4px;"
            "padding:3px 12px;margin-right:8px;font-weight:700;font-size:13px}"
            ".primary{background:#007a5a;color:#fff;border-color:#007a5a}"
            ".danger{background:#e01e5a;color:#fff;border-color:#e01e5a}</style>"
            "<div class=who>Backout <small>APP 3:18 AM</small></div>" + "".join(parts))


def _mrkdwn(text: str) -> str:
    """Slack's mrkdwn, already escaped (&amp; &lt; &gt;, as HTML's), to HTML: links, mentions, bold, code."""
    text = re.sub(r"<(https?://[^|<>]+)\|([^<>]*)>", lambda m: f"<a href='{m[1]}'>{m[2]}</a>", text)
    text = re.sub(r"<@([A-Z0-9]+)>", lambda m: f"<span class=mention>@{PEOPLE.get(m[1], m[1])}</span>", text)
    text = re.sub(r"\*([^*\n]+)\*", r"<b>\1</b>", text)
    text = re.sub(r"`([^`\n]+)`", r"<code>\1</code>", text)
    return text.replace("\n", "<br>")


def picture(target: Path) -> None:
    """docs/card.png: the HTML approximation drawn by headless Chromium."""
    binary = shutil.which("chromium") or shutil.which("chromium-browser")
    if binary is None:
        raise SystemExit("chromium is needed to draw the card: apt-get install chromium")
    with tempfile.TemporaryDirectory(prefix="backout-card-") as folder:
        page = Path(folder) / "card.html"
        page.write_text(card_html(demo_card()), encoding="utf-8")
        subprocess.run([binary, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                        f"--user-data-dir={folder}/profile", f"--screenshot={target.resolve()}",
                        "--window-size=680,250", page.as_uri()],
                       check=True, capture_output=True, timeout=CHROMIUM_SECONDS)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("what", choices=["json", "picture"])
    parser.add_argument("target", nargs="?", default="docs/card.png", type=Path)
    args = parser.parse_args()
    if args.what == "json":
        print(demo_json())
    else:
        picture(args.target)


if __name__ == "__main__":
    main()
