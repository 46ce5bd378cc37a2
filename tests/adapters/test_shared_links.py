"""Signed page links without api.link_secret: a key made once and kept in the database signs them,
so every replica (and the next start) opens the links any of them handed out."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path

import yaml
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from bot import bootstrap
from bot.cli import app as cli
from bot.config import ApiSettings, ServerSettings, Settings, SlackSettings
from tests.conftest import AUTH, PLAYBOOKS, payload_bytes
from tests.fakes.slack import FakeSlack

TOKEN = "read-token-abcdefghijklmnop"


def replica(build: Callable[..., bootstrap.App], make_settings: Callable[..., Settings]) -> bootstrap.App:
    """One replica: the shared database of make_settings, no link_secret, a public URL."""
    return build(make_settings(api=ApiSettings(tokens=[TOKEN]), server=ServerSettings(public_url="https://b.example")))


def test_replicas_on_one_database_open_each_others_links(
    build: Callable[..., bootstrap.App], make_settings: Callable[..., Settings],
) -> None:
    """Two app instances (and a third, started later) on one SQLite database, none with a
    link_secret: a link either hands out opens its page on all of them; a forged one on none."""
    first, second = replica(build, make_settings), replica(build, make_settings)
    with TestClient(first.http) as client:
        client.post("/webhooks/alertmanager", content=payload_bytes("01"), headers=AUTH)
    links = [first.ctx.signed_page_url(1), second.ctx.signed_page_url(1)]
    later = replica(build, make_settings)
    for link in links:
        assert link is not None
        assert "?t=" in link
        query = link.split("/incidents/INC-1", 1)[1]
        for app in (first, second, later):
            with TestClient(app.http) as client:
                assert client.get(f"/incidents/INC-1{query}").status_code == 200, "a replica refused another's link"
                assert client.get(f"/incidents/INC-1{query[:-4]}0000").status_code == 401


def test_durable_text_links_carry_no_token(
    build: Callable[..., bootstrap.App], make_settings: Callable[..., Settings],
) -> None:
    """The page link written where it outlives its token (pull requests, Markdown drafts, exports)
    is the plain page: a signed-in browser opens it. Chat and the CLI hand out signed ones."""
    app = replica(build, make_settings)
    with TestClient(app.http) as client:
        client.post("/webhooks/alertmanager", content=payload_bytes("01"), headers=AUTH)
        bearer = {"Authorization": f"Bearer {TOKEN}"}
        markdown = client.get("/api/incidents/INC-1/export", params={"format": "markdown"}, headers=bearer).text
        document = client.get("/api/incidents/INC-1/export", headers=bearer).json()
        page = client.get("/incidents/INC-1", headers=bearer).text
        shown = client.get("/api/incidents/INC-1", headers=bearer).json()
    assert app.ctx.page_url(1) == "https://b.example/incidents/INC-1"
    assert "(<https://b.example/incidents/INC-1>)" in markdown
    assert document["incident"]["page_url"] == "https://b.example/incidents/INC-1"
    for text in (markdown, page, str(document)):
        assert "?t=" not in text
        assert "&amp;t=" not in text
    assert shown["page_url"].startswith("https://b.example/incidents/INC-1?t="), "the API hands out a signed link"


def test_slack_hands_out_a_signed_link_that_any_replica_opens(
    build: Callable[..., bootstrap.App], make_settings: Callable[..., Settings],
) -> None:
    """The incident card's "Incident page" link carries a fresh signed link; another replica
    on the same database opens it."""
    with FakeSlack().serving() as slack:
        settings = make_settings(
            api=ApiSettings(tokens=[TOKEN]), server=ServerSettings(public_url="https://b.example"),
            chat={"kind": "slack"}, slack=SlackSettings(mode="http", bot_token="xoxb-test", signing_secret="s" * 32,
                                                       api_url=f"{slack.base_url}/api/", channel="#incidents"))
        app = build(settings)
        with TestClient(app.http) as client:
            client.post("/webhooks/alertmanager", content=payload_bytes("01"), headers=AUTH)
        assert app.ctx.slack is not None
        app.ctx.slack.delivery.drain()
        posts = slack.called("chat.postMessage")
    text = " ".join(element["text"] for posted in posts for block in posted.get("blocks") or []
                    if block["type"] == "context" for element in block["elements"])
    [page] = re.findall(r"<(https://b\.example/incidents/INC-1\?t=[^|>]+)\|Incident page>", text)
    assert page.startswith("https://b.example/incidents/INC-1?t=")
    with TestClient(replica(build, make_settings).http) as other:
        assert other.get(page.removeprefix("https://b.example")).status_code == 200


def test_the_cli_prints_a_signed_link_that_the_server_opens(
    build: Callable[..., bootstrap.App], make_settings: Callable[..., Settings], tmp_path: Path,
) -> None:
    """`backout incidents show` on the database signs the page's link with the key every replica
    shares; a running server opens it."""
    server = replica(build, make_settings)
    with TestClient(server.http) as client:
        client.post("/webhooks/alertmanager", content=payload_bytes("01"), headers=AUTH)
    config = tmp_path / "cli.yaml"
    config.write_text(yaml.safe_dump({
        "storage": {"url": server.ctx.settings.storage.url}, "server": {"public_url": "https://b.example"},
        "alertmanager": {"auth": "none"}, "playbooks_dir": str(PLAYBOOKS)}))
    shown = CliRunner().invoke(cli, ["incidents", "show", "INC-1", "--config", str(config)])
    assert shown.exit_code == 0, shown.output
    [link] = re.findall(r"page (https://b\.example/incidents/INC-1\?t=\S+)", shown.output)
    shown_json = CliRunner().invoke(cli, ["incidents", "show", "INC-1", "--json", "--config", str(config)])
    as_json = json.loads(shown_json.output)
    assert as_json["page_url"].startswith("https://b.example/incidents/INC-1?t=")
    with TestClient(server.http) as client:
        assert client.get(link.removeprefix("https://b.example")).status_code == 200


def test_the_cli_shows_the_incident_without_a_link_on_a_schema_before_the_key(
    build: Callable[..., bootstrap.App], make_settings: Callable[..., Settings], tmp_path: Path,
) -> None:
    """A database not yet upgraded (no server_keys table): `incidents show` still shows the
    incident, without a page link, rather than failing."""
    server = replica(build, make_settings)
    with TestClient(server.http) as client:
        client.post("/webhooks/alertmanager", content=payload_bytes("01"), headers=AUTH)
    assert server.engine is not None
    with server.engine.begin() as conn:
        conn.exec_driver_sql("DROP TABLE server_keys")
    config = tmp_path / "cli.yaml"
    config.write_text(yaml.safe_dump({
        "storage": {"url": server.ctx.settings.storage.url}, "server": {"public_url": "https://b.example"},
        "alertmanager": {"auth": "none"}, "playbooks_dir": str(PLAYBOOKS)}))
    shown = CliRunner().invoke(cli, ["incidents", "show", "INC-1", "--config", str(config)])
    assert shown.exit_code == 0, shown.output
    assert "HighErrorRate" in shown.output
    assert "  page " not in shown.output
