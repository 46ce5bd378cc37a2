"""Block Kit for Backout's Slack messages (the action ids, thread lines and the rollback modals; the
incident's card is `card`), built with slack_sdk.models.blocks. Every string from
an alert, a commit or a person is escaped: it shows literally and pings no one."""

from __future__ import annotations

import json
from collections.abc import Sequence
from enum import StrEnum
from typing import Any

from slack_sdk.models.blocks import (
    Block,
    DividerBlock,
    MarkdownTextObject,
    PlainTextObject,
    SectionBlock,
)
from slack_sdk.models.views import View

from bot.domain.chat import SECTION_LIMIT, clip, escape_mrkdwn


class ActionId(StrEnum):
    """Every interactive element's id, in one place."""

    ACK = "backout_ack"
    ROLLBACK = "backout_rollback"
    BRANCH = "backout_branch"
    HOLD = "backout_hold"  # stop the automatic merge during its veto window (actions.merge: confident)
    RESOLVE = "backout_resolve"
    REOPEN = "backout_reopen"  # on a resolved incident's message
    TIMELINE = "backout_timeline"
    LINK = "backout_link"
    CONFIRM_ROLLBACK = "backout_confirm_rollback"  # the modal's callback id
    CULPRIT = "backout_verdict_culprit"  # value "<incident>:<sha>"
    NOT_CULPRIT = "backout_verdict_not"  # value "<incident>:<sha>"
    NO_CHANGE = "backout_verdict_none"  # value "<incident>"


def thread_line(*, when: str, kind: str, who: str, text: str) -> str:
    return clip(f"`{when}` {escape_mrkdwn(kind)} · {escape_mrkdwn(who)}: {escape_mrkdwn(text)}", 3900)


def rollback_view(*, incident_ref: str, incident_id: int, sha: str, repo: str, subject: str, author: str,
                  reasons: Sequence[str], warnings: Sequence[str], branch: str, files: Sequence[str] = (),
                  diff: str = "", excluded: str | None = None) -> dict[str, Any]:
    """The confirmation modal: the commit, why it is a suspect, what it touches (files and the
    start of its diff), and what a revert may not undo. For a change the ranking excluded, a
    warning first saying why, and its submit leads to a second confirmation (`override_view`)."""
    lines = [f"*Revert* `{sha[:12]}` on *{escape_mrkdwn(repo)}*: {escape_mrkdwn(subject)}",
             f"by {escape_mrkdwn(author)}", f"Branch `{escape_mrkdwn(branch)}`"]
    blocks: list[Block] = [SectionBlock(text=MarkdownTextObject(text=clip("\n".join(lines), SECTION_LIMIT)))]
    if excluded:
        blocks.insert(0, SectionBlock(text=MarkdownTextObject(text=clip(
            f"*:no_entry: Not a rollback target:* {escape_mrkdwn(excluded)}. Backout would not roll it back; "
            "continuing asks you to confirm the override.", SECTION_LIMIT))))
    if reasons:
        blocks.append(SectionBlock(text=MarkdownTextObject(text=clip(
            "*Why*\n" + "\n".join(f"• {escape_mrkdwn(r)}" for r in reasons), SECTION_LIMIT))))
    if files:
        shown = "\n".join(f"• `{escape_mrkdwn(path)}`" for path in files[:10])
        more = f"\n… and {len(files) - 10} more" if len(files) > 10 else ""
        blocks.append(SectionBlock(text=MarkdownTextObject(text=clip(f"*Files*\n{shown}{more}", SECTION_LIMIT))))
    if diff:
        lines = diff.splitlines()
        excerpt = escape_mrkdwn("\n".join(lines[:20])).replace("`" * 3, "'" * 3)  # cannot close the block
        tail = f"\n… {len(lines) - 20} more lines" if len(lines) > 20 else ""
        blocks.append(SectionBlock(text=MarkdownTextObject(text=clip(f"*Diff*\n```{excerpt}```{tail}",
                                                                     SECTION_LIMIT))))
    if warnings:
        blocks.append(DividerBlock())
        blocks.append(SectionBlock(text=MarkdownTextObject(text=clip(
            "*:warning: Revert safety*\n" + "\n".join(f"• {escape_mrkdwn(w)}" for w in warnings),
            SECTION_LIMIT))))
    view = View(
        type="modal", callback_id=ActionId.CONFIRM_ROLLBACK,
        title=PlainTextObject(text=f"Roll back {incident_ref}"),
        submit=PlainTextObject(text="Continue" if excluded else "Roll back"), close=PlainTextObject(text="Cancel"),
        blocks=blocks, private_metadata=json.dumps({"incident": incident_id, "sha": sha}),
    )
    return view.to_dict()


def override_view(*, incident_ref: str, incident_id: int, sha: str, excluded: str) -> dict[str, Any]:
    """The second confirmation for a change the ranking excluded: it names why again; its submit
    rolls back with the override, which the timeline records."""
    text = (f"*Roll back `{sha[:12]}` anyway?*\nIt is not a rollback target: {escape_mrkdwn(excluded)}.\n"
            "The timeline will say the rollback was forced, by you, and why it had been excluded.")
    view = View(
        type="modal", callback_id=ActionId.CONFIRM_ROLLBACK,
        title=PlainTextObject(text=f"Override for {incident_ref}"[:24]),
        submit=PlainTextObject(text="Roll back anyway"), close=PlainTextObject(text="Cancel"),
        blocks=[SectionBlock(text=MarkdownTextObject(text=clip(text, SECTION_LIMIT)))],
        private_metadata=json.dumps({"incident": incident_id, "sha": sha, "force": True}),
    )
    return view.to_dict()
