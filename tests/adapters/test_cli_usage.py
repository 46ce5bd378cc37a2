"""What a new user meets first on the command line: the help, the usage errors and the words of an
error, with no server or database behind them unless a test builds one."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
import typer
import yaml
from typer.testing import CliRunner

from bot import bootstrap
from bot.cli import app as cli
from bot.cli.remote import BackoutClient, RemoteError
from bot.config import Settings
from tests.adapters.test_verdicts import API_TOKEN, opened
from tests.conftest import PLAYBOOKS, Clock
from tests.fakes.git import FakeGit

runner = CliRunner()


def every_help() -> dict[str, str]:
    """The help of the program, each group and each command, by the words that open it."""
    root = typer.main.get_command(cli)
    found: dict[str, str] = {}

    def walk(path: list[str], command: object) -> None:
        found[" ".join(path)] = runner.invoke(cli, [*path, "--help"], terminal_width=100).output
        for name, child in getattr(command, "commands", {}).items():
            walk([*path, name], child)

    walk([], root)
    return found


def test_help_names_values_as_they_are_typed_and_lists_commands_in_order() -> None:
    """No Python types (`<bool>`, `<list[Path]>`) nor `{incident}` in any help; `--server URL`,
    `INCIDENT`; each environment variable named once; the commands alphabetical."""
    helps = every_help()
    assert len(helps) > 20
    for words, text in helps.items():
        assert text.startswith("Usage: "), (words, text)
        for leak in ("<bool>", "<str>", "<path>", "<int", "list[", "{incident}", "{commit}", "{files}"):
            assert leak not in text, (words, leak)
    top = helps[""]
    assert "--server URL" in top
    assert [top.count(f"{name}]") for name in ("BACKOUT_URL", "BACKOUT_TOKEN", "BACKOUT_TOKEN_FILE")] == [1, 1, 1]
    assert "(env BACKOUT" not in top
    assert "verdict [OPTIONS] INCIDENT COMMIT\n" in helps["verdict"]
    assert "replay [OPTIONS] FILES...\n" in helps["replay"]
    rows = top.split("Commands:")[1].splitlines()
    listed = [row.split()[0] for row in rows if row.startswith("  ") and row[2:3] != " "]
    assert listed == sorted(listed)
    assert {"rollback", "incidents", "report"} <= set(listed)


def test_a_server_that_is_no_url_is_a_usage_error() -> None:
    """`--server not-a-url` (or BACKOUT_URL) exits 2 saying what a URL looks like, before any request."""
    result = runner.invoke(cli, ["--server", "not-a-url", "incidents", "list"])
    assert result.exit_code == 2
    assert "'not-a-url' is not a URL" in " ".join(result.output.replace("│", " ").split())
    from_env = runner.invoke(cli, ["incidents", "list"], env={"BACKOUT_URL": "backout:8080"})
    assert from_env.exit_code == 2


def test_health_and_replay_ask_the_server_given(tmp_path: Path) -> None:
    """`--server` is the server `health` and `replay` ask, not the config's; `replay --url` stays."""
    config = tmp_path / "c.yaml"
    config.write_text("alertmanager: {auth: none}\nserver: {port: 9}\n")
    health = runner.invoke(cli, ["--server", "http://127.0.0.1:1", "health", "-c", str(config)])
    assert health.exit_code == 1
    assert "http://127.0.0.1:1/healthz" in health.output
    payload = tmp_path / "alert.json"
    payload.write_text("{}")
    replayed = runner.invoke(cli, ["--server", "http://127.0.0.1:1", "replay", str(payload), "-c", str(config)])
    assert (replayed.exit_code, "cannot reach http://127.0.0.1:1" in replayed.output) == (1, True)
    alias = runner.invoke(cli, ["replay", str(payload), "--url", "http://127.0.0.1:2", "-c", str(config)])
    assert "cannot reach http://127.0.0.1:2" in alias.output


def test_check_in_a_folder_without_a_config_says_where_it_looked(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """No --config, no BACKOUT_CONFIG, no ./config.yaml: `check` says so, naming the folder."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("BACKOUT_CONFIG", raising=False)
    result = runner.invoke(cli, ["check"])
    assert "no config file found" in result.output
    assert str(tmp_path) in result.output
    assert result.output.index("no config file found") < result.output.index("alertmanager.auth")


def test_check_counts_in_words_and_gives_the_setup_advice(tmp_path: Path) -> None:
    """"1 repository"; a playbook without an application repository is advice from `check`."""
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump({"alertmanager": {"auth": "none"}, "playbooks_dir": str(PLAYBOOKS),
                                      "repos": [{"name": "gitops", "url": str(tmp_path / "gitops.git")}]}))
    result = runner.invoke(cli, ["check", "-c", str(config)])
    assert result.exit_code == 0, result.output
    assert ", 1 repository, " in result.output
    assert "checkout.repos: names no application repository" in result.output


def test_report_takes_json_and_markdown_flags_and_format_stays_hidden(tmp_path: Path,
                                                                       make_settings: Callable[..., Settings]) -> None:
    """`report --json` like every other command, `--markdown` for the table; `-f json` still works
    for the scripts written before, and the help no longer offers it."""
    settings = make_settings()
    bootstrap.build(settings).close()
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump({"storage": {"url": settings.storage.url}, "alertmanager": {"auth": "none"}}))
    assert json.loads(runner.invoke(cli, ["report", "--json", "-c", str(config)]).output)["incidents"] == 0
    assert json.loads(runner.invoke(cli, ["report", "-f", "json", "-c", str(config)]).output)["incidents"] == 0
    assert runner.invoke(cli, ["report", "--markdown", "-c", str(config)]).output.startswith("## Incidents")
    assert "--format" not in runner.invoke(cli, ["report", "--help"]).output


def test_server_errors_read_as_sentences_without_status_codes(
    build: Callable[..., bootstrap.App], make_settings: Callable[..., Settings], fake_git: FakeGit, clock: Clock,
) -> None:
    """"INC-99 does not exist", not "404: ..."; a refused body names the field without pydantic's
    "Value error,"; the status stays on the error for code that needs it."""
    client = opened(build, make_settings, fake_git, clock, tokens=[API_TOKEN])

    def through_app(request: httpx.Request) -> httpx.Response:
        answer = client.request(request.method, str(request.url), headers=request.headers, content=request.content)
        return httpx.Response(answer.status_code, headers=answer.headers, content=answer.content)

    remote = BackoutClient("http://testserver", token=API_TOKEN, transport=httpx.MockTransport(through_app))
    with pytest.raises(RemoteError) as missing:
        remote.incident("INC-99")
    assert (str(missing.value), missing.value.status) == ("INC-99 does not exist", 404)
    with pytest.raises(RemoteError) as refused:
        remote.note("INC-1", by="alice", text="")
    assert (str(refused.value), refused.value.status) == ("body.text: String should have at least 1 character", 422)
    # A validator's ValueError reaches the API's answer as pydantic words it: "Value error, ..."
    answer = {"error": "invalid_request", "detail": [{"loc": "query.since", "msg": "Value error, not a duration"}]}
    validator = BackoutClient("http://testserver", token=None,
                              transport=httpx.MockTransport(lambda _: httpx.Response(422, json=answer)))
    with pytest.raises(RemoteError, match=r"^query.since: not a duration$"):
        validator.report(since="soon", service=None)
