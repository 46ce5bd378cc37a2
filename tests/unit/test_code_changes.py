"""The code behind an image bump: what an incident says when the playbook cannot find it."""

from __future__ import annotations

from bot.domain.changes import ImageBump
from bot.services.code_changes import app_commits
from tests.fakes.git import FakeGit
from tests.fakes.store import InMemoryStore


def test_a_playbook_with_no_application_repository_adds_no_note_to_the_incident() -> None:
    """Setup advice ("names no application repository") is `backout check`'s to give: the suspect
    carries no code list and no note, rather than the same advice in every incident message."""
    bump = ImageBump(image="registry.example.com/checkout", old="1.0", new="1.1")
    found = app_commits(store=InMemoryStore(), git=FakeGit(), apps=[], bumps=[bump], service="checkout")
    assert found == ((), "")
