"""What the README says of Slack stays true: the card's Block Kit is the renderer's, and the table
of scopes and events names everything the app manifest asks for."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from bot.adapters.slack.card import CARD_TEXT_MOST, MOST_BUTTONS, card_message, visible_text
from bot.demo.card import card_html, demo_card, demo_json

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text(encoding="utf-8")


def test_the_readme_shows_the_card_the_renderer_makes() -> None:
    """The JSON between the card markers is `python -m bot.demo.card json`, to the character."""
    found = re.search(r"<!-- card:start -->\n```json\n(.*?)```\n<!-- card:end -->", README, re.DOTALL)
    assert found is not None, "the README's card markers are gone"
    assert found.group(1) == demo_json() + "\n", "regenerate it: python -m bot.demo.card json"
    assert (ROOT / "docs" / "card.png").is_file()


def test_the_demo_card_is_within_the_card_limits_and_its_picture_shows_it_literally() -> None:
    """The README's card keeps to the limits, and the picture's HTML has no tag from the card's text."""
    blocks = demo_card()
    assert len(visible_text(blocks)) <= CARD_TEXT_MOST
    assert sum(len(b.get("elements", [])) for b in blocks if b["type"] == "actions") <= MOST_BUTTONS
    _, hostile = card_message({"title": "INC-7 <script>x</script>", "answer": "<script>y</script> <!channel>",
                               "status": "open"}, incident_id=7)
    page = card_html(hostile)
    assert "<script>" not in page
    assert "&lt;script&gt;x" in page
    assert "&lt;script&gt;y" in page


def test_the_readme_names_every_scope_and_event_the_manifest_asks_for() -> None:
    """Each bot scope and bot event of slack-app-manifest.yaml is in the README's table, which says
    which feature needs it, and the issue's new ones are there."""
    manifest = yaml.safe_load((ROOT / "slack-app-manifest.yaml").read_text(encoding="utf-8"))
    scopes = manifest["oauth_config"]["scopes"]["bot"]
    events = manifest["settings"]["event_subscriptions"]["bot_events"]
    assert {"channels:manage", "groups:write", "pins:read", "reactions:read", "users:read.email"} <= set(scopes)
    assert set(events) == {"pin_added", "pin_removed", "reaction_added", "reaction_removed"}
    table = README[README.index("#### Slack scopes and events"):]
    table = table[:table.index("Set up:")]
    for name in [*scopes, *events]:
        assert f"`{name}`" in table, name
