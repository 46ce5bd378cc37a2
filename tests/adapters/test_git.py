"""The git adapter on real repositories: the change log, reverts, conflicts and remote failures."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from bot.adapters.git.listing import MANIFEST_BYTES, MANIFEST_FILES, yaml_blobs
from bot.adapters.git.runner import GitCommandError, GitRunner
from bot.domain.errors import Conflict, UpstreamError
from tests.gitrepos import BASE, Remote, git, mirrors

DEPLOY = "image: registry.example.com/checkout:{tag}\nreplicas: 3\n"
EARLY = BASE - timedelta(days=30)


@pytest.fixture
def remote(tmp_path: Path) -> Remote:
    remote = Remote(tmp_path / "gitops")
    remote.commit("Initial layout", {"apps/checkout/deploy.yaml": DEPLOY.format(tag="1.0"),
                                     "apps/payments/deploy.yaml": DEPLOY.format(tag="2.0"),
                                     "README.md": "gitops\n"})
    return remote


def test_a_new_mirror_imports_history_with_files_sizes_and_image_bumps(
    tmp_path: Path, remote: Remote
) -> None:
    """The first refresh reads the branch's first-parent history with what each commit touched."""
    bump = remote.commit("checkout: bump to 1.1 (#12)",
                         {"apps/checkout/deploy.yaml": DEPLOY.format(tag="1.1")})
    docs = remote.commit("Fix typo in README", {"README.md": "GitOps\n"})
    fetched = mirrors(tmp_path, {"gitops": remote}).refresh("gitops", since_sha=None, not_before=EARLY)
    assert fetched.head == docs
    assert [c.sha for c in fetched.changes][:2] == [docs, bump]
    change = fetched.changes[1]
    assert change.subject == "checkout: bump to 1.1 (#12)"
    assert change.pr_number == 12
    assert change.image_bump
    assert not fetched.changes[0].image_bump
    assert [(f.path, f.status) for f in change.files] == [("apps/checkout/deploy.yaml", "M")]
    assert (change.additions, change.deletions) == (1, 1)
    assert change.author == "Dev One <dev@example.com>"
    assert change.committed_at == remote.clock - timedelta(minutes=10)


def test_refresh_reads_only_what_is_new(tmp_path: Path, remote: Remote) -> None:
    """After the first import, a refresh returns the commits since the known head, no more."""
    git_repos = mirrors(tmp_path, {"gitops": remote})
    first = git_repos.refresh("gitops", since_sha=None, not_before=EARLY)
    assert git_repos.refresh("gitops", since_sha=first.head, not_before=EARLY).changes == ()
    new = remote.commit("payments: scale up", {"apps/payments/deploy.yaml": "replicas: 5\n"})
    again = git_repos.refresh("gitops", since_sha=first.head, not_before=EARLY)
    assert [c.sha for c in again.changes] == [new]
    assert again.complete


def test_merges_stand_for_their_pull_request_with_first_parent_files(tmp_path: Path, remote: Remote) -> None:
    """A merge commit is one change: its files are the diff against the first parent."""
    git("checkout", "--quiet", "-b", "feature", cwd=remote.work)
    remote.commit("bump checkout", {"apps/checkout/deploy.yaml": DEPLOY.format(tag="1.2")}, push=False)
    remote.commit("add config", {"apps/checkout/config.yaml": "a: 1\n"}, push=False)
    git("checkout", "--quiet", "main", cwd=remote.work)
    remote.commit("unrelated on main", {"README.md": "x\n"}, push=False)
    git("merge", "--quiet", "--no-ff", "feature", "-m", "Merge pull request #7 from acme/feature",
        cwd=remote.work, when=remote.clock + timedelta(minutes=5))
    remote.push()
    fetched = mirrors(tmp_path, {"gitops": remote}).refresh("gitops", since_sha=None, not_before=EARLY)
    merge = fetched.changes[0]
    assert merge.is_merge
    assert merge.pr_number == 7
    assert sorted(f.path for f in merge.files) == ["apps/checkout/config.yaml", "apps/checkout/deploy.yaml"]
    assert merge.image_bump
    assert "bump checkout" not in [c.subject for c in fetched.changes], "first-parent history only"


def test_a_gitlab_merge_commit_names_its_merge_request(tmp_path: Path, remote: Remote) -> None:
    """GitLab writes "See merge request group/project!N" into the merge commit's body."""
    git("checkout", "--quiet", "-b", "fix", cwd=remote.work)
    remote.commit("raise the pool", {"apps/checkout/config.yaml": "pool: 20\n"}, push=False)
    git("checkout", "--quiet", "main", cwd=remote.work)
    git("merge", "--quiet", "--no-ff", "fix", "-m", "Merge branch 'fix' into 'main'", "-m", "Raise the pool",
        "-m", "See merge request acme/platform/gitops!31", cwd=remote.work, when=remote.clock + timedelta(minutes=5))
    remote.push()
    fetched = mirrors(tmp_path, {"gitops": remote}).refresh("gitops", since_sha=None, not_before=EARLY)
    assert (fetched.changes[0].subject, fetched.changes[0].pr_number) == ("Merge branch 'fix' into 'main'", 31)


def test_renames_are_detected(tmp_path: Path, remote: Remote) -> None:
    """A moved file is one rename with its old path, so both paths can match a playbook."""
    git("mv", "apps/checkout/deploy.yaml", "apps/checkout/deployment.yaml", cwd=remote.work)
    remote.commit("rename manifest", {})
    fetched = mirrors(tmp_path, {"gitops": remote}).refresh("gitops", since_sha=None, not_before=EARLY)
    [renamed] = fetched.changes[0].files
    assert (renamed.status, renamed.old_path, renamed.path) == (
        "R", "apps/checkout/deploy.yaml", "apps/checkout/deployment.yaml")


def test_a_force_push_reads_the_window_again(tmp_path: Path, remote: Remote) -> None:
    """When the known head is no longer in the history, the import window is read instead."""
    git_repos = mirrors(tmp_path, {"gitops": remote})
    old = remote.commit("to be rewritten", {"README.md": "old\n"})
    git_repos.refresh("gitops", since_sha=None, not_before=EARLY)
    git("reset", "--quiet", "--hard", "HEAD~1", cwd=remote.work)
    remote.commit("rewritten", {"README.md": "new\n"}, push=False)
    remote.push("--force")
    again = git_repos.refresh("gitops", since_sha=old, not_before=EARLY)
    assert not again.complete
    assert again.changes[0].subject == "rewritten"


def test_revert_branch_equals_git_revert(tmp_path: Path, remote: Remote) -> None:
    """The pushed branch's tree is what `git revert` gives, with a message naming the incident."""
    bad = remote.commit("checkout: bump to 1.3", {"apps/checkout/deploy.yaml": DEPLOY.format(tag="1.3")})
    remote.commit("payments: note", {"apps/payments/NOTES": "hi\n"})
    git_repos = mirrors(tmp_path, {"gitops": remote})
    result = git_repos.push_revert("gitops", sha=bad, branch="backout/INC-7/revert-abc1234",
                                   message="Revert it\n\nBackout-Incident: INC-7\n")
    assert result.pushed_sha
    assert (result.adopted, result.conflicts) == (False, ())
    git("revert", "--no-edit", bad, cwd=remote.work)
    assert remote.tree("backout/INC-7/revert-abc1234") == git("rev-parse", "HEAD^{tree}", cwd=remote.work)
    message = git("log", "-1", "--format=%B", "backout/INC-7/revert-abc1234", cwd=remote.bare)
    assert "Backout-Incident: INC-7" in message
    assert git("log", "-1", "--format=%an", "backout/INC-7/revert-abc1234", cwd=remote.bare) == "Backout"


def test_a_second_revert_adopts_the_branch(tmp_path: Path, remote: Remote) -> None:
    """Pushing the same revert branch again finds it and changes nothing."""
    bad = remote.commit("bump", {"apps/checkout/deploy.yaml": DEPLOY.format(tag="1.4")})
    git_repos = mirrors(tmp_path, {"gitops": remote})
    first = git_repos.push_revert("gitops", sha=bad, branch="backout/INC-1/revert-x", message="r")
    second = git_repos.push_revert("gitops", sha=bad, branch="backout/INC-1/revert-x", message="r")
    assert second.adopted
    assert second.pushed_sha == first.pushed_sha
    assert remote.branches() == ["backout/INC-1/revert-x", "main"]


def test_reverting_a_merge_uses_the_first_parent(tmp_path: Path, remote: Remote) -> None:
    """A merge is reverted with mainline 1: the whole pull request goes."""
    git("checkout", "--quiet", "-b", "feature", cwd=remote.work)
    remote.commit("bump", {"apps/checkout/deploy.yaml": DEPLOY.format(tag="9.9")}, push=False)
    git("checkout", "--quiet", "main", cwd=remote.work)
    git("merge", "--quiet", "--no-ff", "feature", "-m", "Merge pull request #9", cwd=remote.work)
    remote.push()
    merge = git("rev-parse", "HEAD", cwd=remote.work)
    git_repos = mirrors(tmp_path, {"gitops": remote})
    git_repos.push_revert("gitops", sha=merge, branch="backout/INC-2/revert-m", message="r")
    content = git("show", "backout/INC-2/revert-m:apps/checkout/deploy.yaml", cwd=remote.bare)
    assert "checkout:1.0" in content


def test_a_conflicting_revert_pushes_nothing_and_names_the_files(tmp_path: Path, remote: Remote) -> None:
    """A later change to the same lines makes the revert conflict: files reported, no branch."""
    bad = remote.commit("bump 1.5", {"apps/checkout/deploy.yaml": DEPLOY.format(tag="1.5")})
    remote.commit("bump 1.6", {"apps/checkout/deploy.yaml": DEPLOY.format(tag="1.6")})
    git_repos = mirrors(tmp_path, {"gitops": remote})
    result = git_repos.push_revert("gitops", sha=bad, branch="backout/INC-3/revert-c", message="r")
    assert result.conflicts == ("apps/checkout/deploy.yaml",)
    assert result.pushed_sha is None
    assert remote.branches() == ["main"]
    tip = git_repos.push_branch("gitops", branch="backout/INC-3/incident")
    assert remote.branches() == ["backout/INC-3/incident", "main"]
    assert tip == git("rev-parse", "main", cwd=remote.bare)


def test_a_revert_that_changes_nothing_is_a_conflict(tmp_path: Path, remote: Remote) -> None:
    """Reverting an already reverted commit says so instead of pushing an empty commit."""
    bad = remote.commit("bump 1.7", {"apps/checkout/deploy.yaml": DEPLOY.format(tag="1.7")})
    git("revert", "--no-edit", bad, cwd=remote.work)
    remote.push()
    git("reset", "--quiet", "--hard", "HEAD", cwd=remote.work)
    with pytest.raises((Conflict, GitCommandError)):
        mirrors(tmp_path, {"gitops": remote}).push_revert("gitops", sha=bad, branch="backout/INC-4/revert-e",
                                                        message="r")
    assert remote.branches() == ["main"]


def test_a_push_refused_by_the_remote_says_why(tmp_path: Path, remote: Remote) -> None:
    """A pre-receive hook's refusal comes back as an error with the hook's words."""
    hook = remote.bare / "hooks" / "pre-receive"
    hook.write_text("#!/bin/sh\nwhile read old new ref; do case $ref in refs/heads/backout/*)\n"
                    "echo 'branch protection: backout/* needs approval' >&2; exit 1;; esac; done\n")
    hook.chmod(0o755)
    bad = remote.commit("bump 1.8", {"apps/checkout/deploy.yaml": DEPLOY.format(tag="1.8")})
    with pytest.raises(UpstreamError, match="branch protection: backout/\\* needs approval"):
        mirrors(tmp_path, {"gitops": remote}).push_revert("gitops", sha=bad, branch="backout/INC-5/revert-h",
                                                        message="r")


def test_an_unreachable_remote_is_a_clear_error_without_the_token(tmp_path: Path) -> None:
    """A remote that cannot be reached fails fast, and the token never shows in the error."""
    remote = Remote(tmp_path / "gone")
    remote.bare.rename(tmp_path / "moved.git")
    token = "ghp_secret_token_123"
    with pytest.raises(UpstreamError) as caught:
        mirrors(tmp_path, {"gone": remote}, token=token).refresh("gone", since_sha=None, not_before=EARLY)
    assert "git fetch failed" in str(caught.value)
    assert token not in str(caught.value)


def test_the_token_travels_in_the_environment_not_the_arguments() -> None:
    """Credentials go in GIT_CONFIG_* as an Authorization header and are scrubbed from output."""
    runner = GitRunner(token="tok-abc")
    env = runner.env()
    assert env["GIT_CONFIG_KEY_0"] == "http.extraHeader"
    assert env["GIT_CONFIG_VALUE_0"].startswith("Authorization: Basic ")
    assert runner.scrub(f"fatal: auth failed for tok-abc {env['GIT_CONFIG_VALUE_0'][21:]}") == (
        "fatal: auth failed for *** ***")


def test_manifests_reads_every_yaml_file_of_the_tip_even_alike_ones(tmp_path: Path, remote: Remote) -> None:
    """Two YAML files with the same content (one blob) are both read; files of other kinds are not."""
    remote.commit("twins", {"apps/a/deploy.yaml": "kind: X\n", "apps/b/deploy.yml": "kind: X\n",
                            "apps/c/notes.txt": "kind: X\n"})
    found = mirrors(tmp_path, {"gitops": remote}).manifests("gitops")
    assert found["apps/a/deploy.yaml"] == found["apps/b/deploy.yml"] == "kind: X\n"
    assert set(found) == {"apps/a/deploy.yaml", "apps/b/deploy.yml", "apps/checkout/deploy.yaml",
                          "apps/payments/deploy.yaml"}


def test_a_listing_past_the_bound_says_it_was_cut() -> None:
    """More YAML files than MANIFEST_FILES: the first ones, and `truncated`; a big file is left out."""
    entries = [f"100644 blob {i:040x}     12\tapps/f{i}.yaml" for i in range(MANIFEST_FILES + 1)]
    entries.insert(0, f"100644 blob {'b' * 40} {MANIFEST_BYTES + 1}\tapps/big.yaml")
    paths, truncated = yaml_blobs("\0".join(entries).encode())
    assert truncated
    assert len(paths) == MANIFEST_FILES
    assert "apps/big.yaml" not in paths
    assert yaml_blobs("\0".join(entries[:4]).encode()) == ({f"apps/f{i}.yaml": f"{i:040x}" for i in range(3)}, False)


def test_a_commit_patch_is_read_from_git_once(tmp_path: Path, remote: Remote) -> None:
    """A commit never changes: its patch, asked for by thousands of incidents after a restart, runs
    `git show` once; a branch name, which moves, is read each time."""
    bump = remote.commit("checkout: bump to 1.1", {"apps/checkout/deploy.yaml": DEPLOY.format(tag="1.1")})
    git_repos = mirrors(tmp_path, {"gitops": remote})
    git_repos.refresh("gitops", since_sha=None, not_before=EARLY)
    shows: list[str] = []

    class Counting(GitRunner):
        def run(self, args, **kwargs):  # type: ignore[no-untyped-def,override]
            if args[0] == "show":
                shows.append(args[-1])
            return super().run(args, **kwargs)

    spec = git_repos._repos["gitops"]
    git_repos._repos["gitops"] = type(spec)(name=spec.name, url=spec.url, branch=spec.branch,
                                            runner=Counting(timeout=30))
    patches = [git_repos.patch("gitops", bump) for _ in range(3)]
    assert len(set(patches)) == 1
    assert "+image: registry.example.com/checkout:1.1" in patches[0]
    git_repos.patch("gitops", "origin/main")
    git_repos.patch("gitops", "origin/main")
    assert shows == [bump, "origin/main", "origin/main"]
