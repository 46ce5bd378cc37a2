"""Settings: YAML, environment overrides, secret files, and errors that name file, key and line."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bot.cli import app as cli
from bot.config import ConfigError, load_playbooks, load_settings
from tests.conftest import PLAYBOOKS

ROOT = Path(__file__).resolve().parents[2]


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_defaults_without_a_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No config anywhere: the documented defaults."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("BACKOUT_CONFIG", raising=False)
    settings = load_settings()
    assert (settings.server.host, settings.server.port) == ("127.0.0.1", 8080)
    assert settings.storage.url == "sqlite:///backout.db"
    assert settings.server.max_body_bytes == 1024 * 1024
    assert settings.chat.kind == "console"


def test_environment_overrides_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """BACKOUT_SERVER__PORT beats the YAML file; the file beats the defaults."""
    config = write(tmp_path / "c.yaml", "server: {port: 9000, host: 0.0.0.0}\n")
    monkeypatch.setenv("BACKOUT_SERVER__PORT", "18080")
    monkeypatch.setenv("BACKOUT_ALERTMANAGER__AUTH", "bearer")
    settings = load_settings(config)
    assert settings.server.port == 18080
    assert settings.server.host == "0.0.0.0"
    assert settings.alertmanager.auth == "bearer"


def test_config_found_from_backout_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """BACKOUT_CONFIG names the file when --config is not given."""
    config = write(tmp_path / "c.yaml", "server: {port: 9001}\n")
    monkeypatch.setenv("BACKOUT_CONFIG", str(config))
    assert load_settings().server.port == 9001


def test_secret_from_file_never_shows(tmp_path: Path) -> None:
    """A *_file secret is read, stripped, kept as SecretStr and hidden from repr and dumps."""
    secret = write(tmp_path / "token", "s3cr3t-token-value\n")
    config = write(tmp_path / "c.yaml", f"alertmanager: {{auth: bearer, bearer_token_file: {secret}}}\n")
    settings = load_settings(config)
    assert settings.alertmanager.bearer_token is not None
    assert settings.alertmanager.bearer_token.get_secret_value() == "s3cr3t-token-value"
    assert "s3cr3t" not in repr(settings)
    assert "s3cr3t" not in settings.model_dump_json()


def test_secret_from_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Secrets can come from BACKOUT_* variables."""
    monkeypatch.setenv("BACKOUT_ALERTMANAGER__BEARER_TOKEN", "from-env")
    settings = load_settings(write(tmp_path / "c.yaml", "alertmanager: {auth: bearer}\n"))
    assert settings.alertmanager.bearer_token is not None
    assert settings.alertmanager.bearer_token.get_secret_value() == "from-env"


def test_errors_name_file_key_and_line(tmp_path: Path) -> None:
    """A wrong value is reported with its file, dotted key path and YAML line."""
    config = write(tmp_path / "c.yaml", "server:\n  host: x\n  port: huge\nstorage: {}\n")
    with pytest.raises(ConfigError) as caught:
        load_settings(config)
    [problem] = caught.value.problems
    assert (problem.key, problem.line) == ("server.port", 3)
    assert str(problem).startswith(f"{config}:3: server.port: ")


def test_unknown_keys_are_refused(tmp_path: Path) -> None:
    """A typo in a key is an error, not silently ignored."""
    with pytest.raises(ConfigError, match=r"alertmanager\.bearer_tokn"):
        load_settings(write(tmp_path / "c.yaml", "alertmanager: {bearer_tokn: x}\n"))


def test_unreadable_secret_file_is_reported_without_contents(tmp_path: Path) -> None:
    """A missing secret file names the key and path."""
    config = write(tmp_path / "c.yaml", "alertmanager: {auth: bearer, bearer_token_file: /nope/t}\n")
    with pytest.raises(ConfigError, match="bearer_token_file: cannot read /nope/t"):
        load_settings(config)


def test_broken_yaml_gives_the_parser_line(tmp_path: Path) -> None:
    """Invalid YAML is reported with the line the parser gives."""
    with pytest.raises(ConfigError) as caught:
        load_settings(write(tmp_path / "c.yaml", "server:\n  port: 1\n bad: [\n"))
    assert caught.value.problems[0].line is not None
    assert "not valid YAML" in str(caught.value)


def test_every_shipped_playbook_loads() -> None:
    """Each file in playbooks/ validates against the schema and the example config's repos."""
    playbooks = load_playbooks(PLAYBOOKS, known_repos=["gitops"])
    assert {p.name for p in playbooks} == {p.stem for p in PLAYBOOKS.glob("*.yaml")}
    assert len(playbooks) >= 2


def test_the_example_config_is_valid(tmp_path: Path) -> None:
    """config.example.yaml loads once its secret files exist, and its repos fit the playbooks."""
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    text = (ROOT / "config.example.yaml").read_text().replace("/run/secrets/", f"{secrets}/")
    for name in {line.split(f"{secrets}/")[1].split()[0] for line in text.splitlines()
                 if f"{secrets}/" in line and not line.lstrip().startswith("#")}:
        write(secrets / name, "secret\n")
    settings = load_settings(write(tmp_path / "config.yaml", text))
    load_playbooks(PLAYBOOKS, known_repos=[repo.name for repo in settings.repos])


def test_playbook_errors_name_the_file_key_and_line(tmp_path: Path) -> None:
    """A bad playbook names its file, key path and line; unknown repos are caught too."""
    write(tmp_path / "bad.yaml", "service: s\nmatch: {a: b}\nsuspects:\n  lookback: soon\n")
    write(tmp_path / "repo.yaml", "service: s\nmatch: {a: b}\nrepos:\n  - repo: nowhere\n")
    with pytest.raises(ConfigError) as caught:
        load_playbooks(tmp_path, known_repos=["gitops"])
    text = str(caught.value)
    assert f"{tmp_path / 'bad.yaml'}:4: suspects.lookback:" in text
    assert f"{tmp_path / 'repo.yaml'}:4: repos.0.repo: 'nowhere' is not a repository" in text


def test_check_command_passes_and_fails(tmp_path: Path) -> None:
    """`backout check` exits 0 on a good setup and 2 naming the problem otherwise."""
    shutil.copytree(PLAYBOOKS, tmp_path / "playbooks")
    good = write(tmp_path / "good.yaml",
                 f"alertmanager: {{auth: none}}\nplaybooks_dir: {tmp_path / 'playbooks'}\n"
                 "repos: [{name: gitops, url: /srv/gitops.git}]\n")
    result = CliRunner().invoke(cli, ["check", "--config", str(good)])
    assert result.exit_code == 0, result.output
    assert "2 playbooks" in result.output
    assert "warning:" in result.output
    assert "api.tokens: no API token" in result.output
    assert "api.link_secret" not in result.output, "unset, a key kept in the database signs the links"
    bad = write(tmp_path / "bad.yaml", f"playbooks_dir: {tmp_path / 'playbooks'}\n")
    result = CliRunner().invoke(cli, ["check", "--config", str(bad)])
    assert result.exit_code == 2
    assert "alertmanager.auth: not set" in result.output
    assert "repos.0.repo: 'gitops' is not a repository" in result.output


def test_check_names_missing_github_and_slack_credentials(tmp_path: Path) -> None:
    """forge github without credentials, and chat.kind slack without tokens, fail `check`."""
    shutil.copytree(PLAYBOOKS, tmp_path / "playbooks")
    config = write(tmp_path / "c.yaml",
                   f"alertmanager: {{auth: none}}\nplaybooks_dir: {tmp_path / 'playbooks'}\n"
                   "repos: [{name: gitops, url: /srv/g.git, forge: github, github_repo: acme/gitops}]\n"
                   "chat: {kind: slack}\n")
    result = CliRunner().invoke(cli, ["check", "--config", str(config)])
    assert result.exit_code == 2
    for key in ("github.token", "slack.bot_token", "slack.channel", "slack.app_token"):
        assert f"{key}:" in result.output


def test_gitlab_repositories_are_checked_as_github_ones_are(tmp_path: Path) -> None:
    """forge gitlab needs its project and a token; environments read GitLab only; the secret
    files of the gitlab section are read only when a repository is on GitLab."""
    base = "alertmanager: {auth: none}\nrepos:\n"

    def problems(text: str) -> str:
        with pytest.raises(ConfigError) as raised:
            load_settings(write(tmp_path / "c.yaml", base + text))
        return str(raised.value)

    assert "forge gitlab needs gitlab_project" in problems("  - {name: g, url: /srv/g.git, forge: gitlab}\n")
    assert "gitlab_project" in problems("  - {name: g, url: /srv/g.git, forge: gitlab, gitlab_project: 'bad name'}\n")
    assert "reads GitLab deployments: set forge gitlab (on GitHub, use applied.source deployments)" in problems(
        "  - {name: g, url: /srv/g.git, forge: github, github_repo: a/b, applied: {source: environments}}\n")
    assert "on GitLab, use applied.source environments" in problems(
        "  - {name: g, url: /srv/g.git, forge: gitlab, gitlab_project: a/b, applied: {source: deployments}}\n")
    for project in ("acme/platform/team/gitops", "1234"):
        settings = load_settings(write(tmp_path / "c.yaml", base + (
            f"  - {{name: g, url: /srv/g.git, forge: gitlab, gitlab_project: '{project}', "
            "applied: {source: environments, environment: prod}}\n")))
        assert settings.repos[0].gitlab_project == project
    # not on GitLab: an unreadable gitlab.token_file is not an error; on GitLab it is, at its key
    unread = f"gitlab: {{token_file: {tmp_path / 'missing'}}}\n"
    load_settings(write(tmp_path / "c.yaml", base + "  - {name: g, url: /srv/g.git}\n" + unread))
    assert "gitlab.token_file" in problems("  - {name: g, url: /srv/g.git, forge: gitlab, gitlab_project: a/b}\n"
                                           + unread)


def test_a_forge_token_over_plain_http_is_pointed_out(tmp_path: Path) -> None:
    """A self-managed GitLab (or GitHub Enterprise) on http:// elsewhere than this machine: the
    token would cross the network readable; loopback (a tunnel, a test) is fine."""
    from bot.config import config_warnings

    repos = "repos: [{name: g, url: /srv/g.git, forge: gitlab, gitlab_project: a/b}]\n"
    settings = load_settings(write(tmp_path / "c.yaml", "alertmanager: {auth: none}\n" + repos +
                                   "gitlab: {url: 'http://gitlab.internal', token: glpat-x}\n"))
    [warning] = [w for w in config_warnings(settings, file="c.yaml") if w.key == "gitlab.url"]
    assert "plain http to gitlab.internal" in warning.reason
    settings = load_settings(write(tmp_path / "c.yaml", "alertmanager: {auth: none}\n" + repos +
                                   "gitlab: {url: 'http://127.0.0.1:8929', token: glpat-x}\n"))
    assert not [w for w in config_warnings(settings, file="c.yaml") if w.key == "gitlab.url"]


def test_check_names_a_missing_gitlab_token(tmp_path: Path) -> None:
    shutil.copytree(PLAYBOOKS, tmp_path / "playbooks")
    config = write(tmp_path / "c.yaml",
                   f"alertmanager: {{auth: none}}\nplaybooks_dir: {tmp_path / 'playbooks'}\n"
                   "repos: [{name: gitops, url: /srv/g.git, forge: gitlab, gitlab_project: acme/gitops}]\n")
    result = CliRunner().invoke(cli, ["check", "--config", str(config)])
    assert result.exit_code == 2
    assert "gitlab.token:" in result.output


def test_relative_paths_in_the_file_resolve_against_its_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """As Prometheus and Alertmanager do: run from anywhere, the same files are meant."""
    folder = tmp_path / "etc"
    folder.mkdir()
    write(folder / "am-token", "token-0123456789abcdef\n")
    config = write(folder / "config.yaml", (
        "storage: {url: 'sqlite:///data/backout.db'}\nplaybooks_dir: playbooks\n"
        "alertmanager: {auth: bearer, bearer_token_file: am-token}\ngit: {mirror_dir: mirrors}\n"
        "repos:\n  - {name: local, url: ../gitops.git}\n  - {name: remote, url: 'git@github.com:acme/gitops.git'}\n"
        "  - {name: https, url: 'https://github.com/acme/gitops.git'}\n"))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("BACKOUT_GIT__MIRROR_DIR", "from-env")
    settings = load_settings(Path("etc/config.yaml"))
    assert settings.storage.url == f"sqlite:///{folder}/data/backout.db"
    assert settings.playbooks_dir == folder / "playbooks"
    assert settings.alertmanager.bearer_token is not None
    assert [repo.url for repo in settings.repos] == [
        str(folder / "../gitops.git"), "git@github.com:acme/gitops.git", "https://github.com/acme/gitops.git"]
    assert settings.git.mirror_dir == Path("from-env")  # the environment's paths are the shell's
    assert config.is_file()


@pytest.mark.parametrize(("text", "key", "line"), [
    ("server:\n  port: 1\n  host: x\n  port: 2\n", "server.port", 4),
    ("repos:\n  - name: a\n    url: u\n    name: b\n", "repos.0.name", 4),
    ("chat: {kind: console}\nchat: {kind: slack}\n", "chat", 2),
])
def test_a_key_set_twice_is_an_error_with_both_lines(tmp_path: Path, text: str, key: str, line: int) -> None:
    """YAML keeps the last of two equal keys, silently: Backout refuses the file instead."""
    with pytest.raises(ConfigError) as caught:
        load_settings(write(tmp_path / "c.yaml", text))
    [problem] = caught.value.problems
    assert (problem.key, problem.line) == (key, line)
    assert "set twice" in problem.reason


def test_an_unknown_key_suggests_the_close_one_and_errors_come_sorted_by_line(tmp_path: Path) -> None:
    config = write(tmp_path / "c.yaml", "storage: {url: 'sqlite:///x.db'}\nserver:\n  prot: 1\n"
                                        "alertmanager:\n  bearer_tokn: x\n")
    with pytest.raises(ConfigError) as caught:
        load_settings(config)
    assert [(p.line, p.key, p.reason) for p in caught.value.problems] == [
        (3, "server.prot", "unknown key; did you mean 'port'?"),
        (5, "alertmanager.bearer_tokn", "unknown key; did you mean 'bearer_token'?"),
    ]


def test_a_bad_value_from_the_environment_names_the_variable(tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BACKOUT_SERVER__PORT", "eighty")
    with pytest.raises(ConfigError) as caught:
        load_settings(write(tmp_path / "c.yaml", "server: {port: 8080}\n"))
    [problem] = caught.value.problems
    assert (problem.file, problem.key) == ("environment BACKOUT_SERVER__PORT", "server.port")
    assert str(problem).startswith("environment BACKOUT_SERVER__PORT: server.port: ")


def test_a_missing_secret_file_points_at_its_key_and_line(tmp_path: Path) -> None:
    config = write(tmp_path / "c.yaml", "server: {port: 1}\nalertmanager:\n  auth: bearer\n"
                                        "  bearer_token_file: /nope/t\n")
    with pytest.raises(ConfigError) as caught:
        load_settings(config)
    [problem] = caught.value.problems
    assert (problem.key, problem.line, problem.reason) == (
        "alertmanager.bearer_token_file", 4, "cannot read /nope/t: No such file or directory")


def test_the_copied_example_reports_only_the_secret_files_it_needs(tmp_path: Path) -> None:
    """Copied as the README says: the missing files it names, each at its key; Slack's are not
    needed while chat.kind is console, so they are not reported."""
    example = (ROOT / "config.example.yaml").read_text()
    config = write(tmp_path / "config.yaml", example)
    with pytest.raises(ConfigError) as caught:
        load_settings(config)
    keys = [p.key for p in caught.value.problems]
    assert keys
    assert all(key.endswith("_file") for key in keys), keys
    assert not any(key.startswith("slack.") for key in keys)
    assert "chat: {kind: console}" in example or "kind: console" in example
    settings = load_settings(config, secrets=False)  # a read command: the secrets are not needed
    assert settings.alertmanager.bearer_token is None


def test_check_finds_bad_globs_bad_promql_and_shadowed_playbooks(tmp_path: Path) -> None:
    """Globs keep gitignore's meaning and what git would take literally is an error; PromQL is
    parsed; probes without Prometheus and a playbook another one shadows are warnings."""
    folder = tmp_path / "playbooks"
    folder.mkdir()
    write(folder / "a.yaml", "service: a\nmatch: {service: a}\nrepos:\n  - repo: gitops\n"
                             "    paths: ['apps/{a,b}/**', 'apps/[x/**']\nkey_query: 'sum(rate(x[5m])'\n")
    with pytest.raises(ConfigError) as caught:
        load_playbooks(folder, known_repos=["gitops"])
    assert any(p.key == "repos.0.paths.0" and "{a,b} alternatives" in p.reason for p in caught.value.problems)
    assert any(p.key == "repos.0.paths.1" and "unclosed" in p.reason for p in caught.value.problems)
    assert any(p.key == "key_query" and "not valid PromQL" in p.reason for p in caught.value.problems)

    write(folder / "a.yaml", "service: a\nmatch: {service: a}\nprobes:\n  - {name: errors, query: 'up == 0', "
                             "above: 0}\n")
    write(folder / "b.yaml", "service: b\nmatch: {service: a}\n")
    config = write(tmp_path / "c.yaml", f"playbooks_dir: {folder}\nalertmanager: {{auth: none}}\n")
    result = CliRunner().invoke(cli, ["check", "--config", str(config), "--json"])
    assert result.exit_code == 0, result.output
    warnings = json.loads(result.stdout)["warnings"]
    assert any("a.probes" in w and "prometheus.url" in w for w in warnings), warnings
    assert any("b.match" in w and "playbook a's" in w for w in warnings), warnings


def test_prometheus_generators_map_hosts_to_urls(tmp_path: Path) -> None:
    """prometheus.generators maps a generatorURL host (host or host:port) to an http(s) URL; a
    scheme in the host, a URL that is none, or generators without prometheus.url are refused."""
    good = "prometheus:\n  url: http://prometheus:9090\n  generators: {Prom.Example.com: 'http://prometheus:9090/'}\n"
    settings = load_settings(write(tmp_path / "c.yaml", good))
    assert settings.prometheus.generators == {"prom.example.com": "http://prometheus:9090"}
    for text, message in [
        ("prometheus:\n  url: http://p:9090\n  generators: {'http://ruler:9090': 'http://ruler:9090'}\n",
         "a generatorURL host is host or host:port"),
        ("prometheus:\n  url: http://p:9090\n  generators: {'ruler:9090': 'ruler:9090'}\n", "not an http"),
        ("prometheus:\n  generators: {'ruler:9090': 'http://ruler:9090'}\n", "generators needs prometheus.url"),
    ]:
        with pytest.raises(ConfigError, match=message):
            load_settings(write(tmp_path / "c.yaml", text))
