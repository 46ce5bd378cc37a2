"""Named API tokens: `name: token` lines in api.token_file, `{name, token}` entries in api.tokens;
the old unnamed forms still load, named token-1, token-2, ..."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.config import ConfigError, load_settings


def names_and_tokens(config: Path) -> list[tuple[str, str]]:
    return [(t.name, t.token.get_secret_value()) for t in load_settings(config).api.tokens]


def test_named_tokens_from_the_file_and_the_list(tmp_path: Path) -> None:
    """A file of `name: token` lines and a list of {name, token} entries both load with their names."""
    (tmp_path / "tokens").write_text("# who holds which\nci-bot: tok-ci-0123456789\nalice: tok-alice-0123456789\n")
    config = tmp_path / "c.yaml"
    config.write_text("api:\n  token_file: tokens\n  tokens:\n    - {name: deploy-bot, token: tok-deploy-0123456789}\n")
    assert names_and_tokens(config) == [("deploy-bot", "tok-deploy-0123456789"), ("ci-bot", "tok-ci-0123456789"),
                                        ("alice", "tok-alice-0123456789")]


def test_the_old_unnamed_forms_load_as_token_1_token_2(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Plain strings in api.tokens (YAML or BACKOUT_API__TOKENS) and bare lines in the file are
    numbered in order, the list first; a named token keeps its name among them."""
    (tmp_path / "tokens").write_text("tok-third-0123456789\nbob: tok-bob-0123456789\ntok-fourth-0123456789\n")
    config = tmp_path / "c.yaml"
    config.write_text("api:\n  token_file: tokens\n  tokens: [tok-first-0123456789, tok-second-0123456789]\n")
    assert names_and_tokens(config) == [
        ("token-1", "tok-first-0123456789"), ("token-2", "tok-second-0123456789"),
        ("token-3", "tok-third-0123456789"), ("bob", "tok-bob-0123456789"), ("token-4", "tok-fourth-0123456789")]
    bare = tmp_path / "bare.yaml"
    bare.write_text("alertmanager: {auth: none}\n")
    monkeypatch.setenv("BACKOUT_API__TOKENS", '["tok-env-a-0123456789", "tok-env-b-0123456789"]')
    assert names_and_tokens(bare) == [("token-1", "tok-env-a-0123456789"), ("token-2", "tok-env-b-0123456789")]
    monkeypatch.setenv("BACKOUT_API__TOKENS", '[{"name": "ci", "token": "tok-env-c-0123456789"}]')
    assert names_and_tokens(bare) == [("ci", "tok-env-c-0123456789")]


@pytest.mark.parametrize(("tokens", "reason"), [
    ("[{name: ci, token: tok-a-0123456789}, {name: ci, token: tok-b-0123456789}]", "two tokens are named 'ci'"),
    ("[{name: ci, token: tok-a-0123456789}, {name: cd, token: tok-a-0123456789}]", "'ci' and 'cd' are the same token"),
    ("[{name: 'the cto', token: tok-a-0123456789}]", "api.tokens.0.name"),
])
def test_ambiguous_or_malformed_names_are_refused(tmp_path: Path, tokens: str, reason: str) -> None:
    """A name stands for whoever holds the token on the timeline: it must be unique, and so must the token."""
    config = tmp_path / "c.yaml"
    config.write_text(f"api:\n  tokens: {tokens}\n")
    with pytest.raises(ConfigError, match=reason):
        load_settings(config)


def test_the_cli_reads_its_token_from_a_named_line_too(tmp_path: Path) -> None:
    """`--token-file` takes the first token of a file in either form: `name: token` or the token alone."""
    from bot.cli.remote import read_token

    named = tmp_path / "named"
    named.write_text("# mine\nlaptop: tok-laptop-0123456789\nother: tok-other-0123456789\n")
    bare = tmp_path / "bare"
    bare.write_text("tok-bare-0123456789\n")
    assert read_token(None, named) == "tok-laptop-0123456789"
    assert read_token(None, bare) == "tok-bare-0123456789"
