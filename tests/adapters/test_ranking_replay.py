"""The ranking benchmark's replay data: it loads and rebuilds as real Git histories of the pinned size."""

from __future__ import annotations

import subprocess
from datetime import timedelta
from pathlib import Path

import pytest

from bench.ranking.replay import build
from bench.ranking.replay_data import line_edits
from bench.ranking.replay_history import DATA_DIR, apply_edits, load

# file -> (pinned commit, commits in the window), as bench/ranking/replay/README.md lists them
PINNED = {
    "billimek-k8s-gitops": ("49eb69f3aae0bb9e76298b477eee64c346128e26", 250),
    "bjw-s-labs-home-ops": ("1b2e6420cf0988ef4332f742527616ca1a9dcdef", 250),
    "bjw-s-labs-home-ops-2023": ("8250fec812a1f213f3bddaba1eb384caa8bbe217", 240),
    "xunholy-k8s-gitops": ("d226e9bdfa18d97d0ae0426740391563d51a35a7", 250),
    "ricsanfre-pi-cluster": ("caca7d4a6211cbf6f84f5fe95535e7bf25a62f3d", 250),
}


def git(bare: Path, *args: str) -> str:
    return subprocess.run(["git", f"--git-dir={bare}", *args], check=True, capture_output=True,
                          text=True).stdout


@pytest.mark.parametrize("name", sorted(PINNED))
def test_a_replay_file_rebuilds_to_its_pinned_commits(tmp_path: Path, name: str) -> None:
    """The data loads, rebuilds with its times and one base commit, and each revert names the
    rebuilt sha of the commit it reverts; the README names the pinned commit."""
    pinned, count = PINNED[name]
    history = load(DATA_DIR / f"{name}.json")
    assert history.pinned == pinned
    assert len(history.commits) == count
    assert pinned in (DATA_DIR / "README.md").read_text()
    shas = build(tmp_path / "replay.git", history, shift=timedelta(days=1))
    assert git(tmp_path / "replay.git", "rev-list", "--count", "main").strip() == str(count + 1)
    assert git(tmp_path / "replay.git", "rev-parse", "main").strip() == shas[-1]
    last = history.commits[-1]
    assert git(tmp_path / "replay.git", "log", "-1", "--format=%ct", "main").strip() == str(
        int((last.at + timedelta(days=1)).timestamp()))
    for index, commit in enumerate(history.commits):
        if commit.reverts is not None:
            body = git(tmp_path / "replay.git", "log", "-1", "--format=%B", shas[index])
            assert f"This reverts commit {shas[commit.reverts]}." in body


def test_line_edits_turn_the_old_text_into_the_new() -> None:
    """Replaced, inserted and deleted lines, and a last line without a newline, come back exactly."""
    old = "a: 1\nb: 2\nc: 3\nd: 4\n"
    for new in ("a: 1\nb: 20\nc: 3\nd: 4\n", "x: 0\na: 1\nb: 2\nc: 3\nd: 4\ne: 5", "a: 1\nd: 4\n", ""):
        assert apply_edits(old, line_edits(old, new)) == new
