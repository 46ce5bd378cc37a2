"""The incident's card in Block Kit (one message, updated in place) and its thread's suspects posts,
rendered from what `bot.services.card` decided. The card stays short (about 600 characters a
person reads, at most 5 buttons); the suspects, their reasons and the verdict buttons are in the
thread. Every string from an alert, a commit or a person is escaped: it shows literally and pings no one."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from slack_sdk.models.blocks import (
    ActionsBlock,
    Block,
    ButtonElement,
    ContextBlock,
    HeaderBlock,
    MarkdownTextObject,
    PlainTextObject,
    SectionBlock,
)

from bot.adapters.slack.blocks import ActionId
from bot.domain.chat import SECTION_LIMIT, clip, escape_mrkdwn

CARD_TEXT_MOST = 600  # characters a person reads on the card (tests hold every state to it)
MOST_BUTTONS = 5
TITLE_MOST, FACT_MOST, ANSWER_MOST = 100, 40, 240
SLACK_USER = re.compile(r"[UW][A-Z0-9]{2,}")  # a Slack user ID is shown as a mention (the person's name)
_LINK = re.compile(r"<[^|<>]*\|([^<>]*)>")


def card_message(payload: Mapping[str, Any], *, incident_id: int,
                 links: Sequence[tuple[str, str]] = ()) -> tuple[str, list[dict[str, Any]]]:
    """(fallback text, blocks) for an incident's card: title; state, severity, service and lead;
    the answer in one line; links; the buttons its state allows."""
    title = _line(str(payload.get("title", f"INC-{incident_id}")), TITLE_MOST)
    facts = " · ".join([
        f"*{str(payload.get('status', 'open')).capitalize()}*",
        f"severity {_escaped(str(payload.get('severity', 'none')), FACT_MOST)}",
        f"service {_escaped(str(payload.get('service', '')), FACT_MOST)}",
        f"lead {_lead(payload.get('lead'))}",
    ])
    answer = _escaped(str(payload.get("answer", "")), ANSWER_MOST)
    blocks: list[Block] = [HeaderBlock(text=PlainTextObject(text=title, emoji=False)),
                           SectionBlock(text=MarkdownTextObject(text=f"{facts}\n{answer}"))]
    context = [f"<{escape_mrkdwn(url)}|{_escaped(label, 30)}>"
               for label, url in [*[(str(a), str(b)) for a, b in payload.get("links", [])], *links]]
    firing = int(payload.get("firing", 0))
    if firing:
        context.append(f"{firing} alert{'s' * (firing != 1)} firing")
    if context:
        blocks.append(ContextBlock(elements=[MarkdownTextObject(text=" · ".join(context))]))
    buttons = card_buttons(payload, incident_id=incident_id)
    if buttons:
        blocks.append(ActionsBlock(block_id=f"incident_{incident_id}", elements=buttons))
    return clip(escape_mrkdwn(title), 300), [block.to_dict() for block in blocks]


def card_buttons(payload: Mapping[str, Any], *, incident_id: int) -> list[ButtonElement]:
    """What the state allows (docs/lifecycle.md): acknowledge while open; hold during an automatic
    merge's veto window; roll back the plan's step
    to take now (none while its revert is under way or done); an incident branch until one exists;
    resolve while active. A resolved incident is a record, reopened by a person; a closed one offers nothing."""
    status, value = str(payload.get("status", "open")), str(incident_id)
    if status == "resolved":
        return [ButtonElement(text="Reopen", action_id=ActionId.REOPEN, value=value)]
    if status == "closed":
        return []
    buttons = []
    if status == "open":
        buttons.append(ButtonElement(text="Acknowledge", action_id=ActionId.ACK, value=value, style="primary"))
    if payload.get("hold"):  # before the rest: it is the one button with a deadline
        buttons.append(ButtonElement(text="Hold automatic merge", action_id=ActionId.HOLD, value=value,
                                     style="danger"))
    rollback = payload.get("rollback")  # [sha, short]
    if rollback:
        buttons.append(ButtonElement(text=f"Roll back {rollback[1]}", action_id=ActionId.ROLLBACK,
                                     value=f"{incident_id}:{rollback[0]}", style="danger"))
    if payload.get("branch", True):
        buttons.append(ButtonElement(text="Open incident branch", action_id=ActionId.BRANCH, value=value))
    buttons.append(ButtonElement(text="Resolve", action_id=ActionId.RESOLVE, value=value))
    return buttons[:MOST_BUTTONS]


def suspects_message(post: Mapping[str, Any], *, incident_id: int) -> list[dict[str, Any]]:
    """The blocks of a thread post for one ranking: its reason, then each suspect it lists for the
    first time with its reasons and its verdict buttons, and "No change caused it"."""
    blocks: list[Block] = [SectionBlock(text=MarkdownTextObject(text=clip(
        f"*Suspects* · {escape_mrkdwn(str(post.get('reason', '')))}", SECTION_LIMIT)))]
    suspects = list(post.get("suspects", []))
    for number, suspect in enumerate(suspects, start=int(post.get("before", 0)) + 1):
        blocks.append(SectionBlock(text=MarkdownTextObject(text=clip(_suspect_text(number, suspect), SECTION_LIMIT))))
        sha, short = str(suspect["sha"]), str(suspect["short"])
        blocks.append(ActionsBlock(block_id=f"verdict_{incident_id}_{short}", elements=[
            ButtonElement(text=f"Caused it: {short}", action_id=f"{ActionId.CULPRIT}_{short}",
                          value=f"{incident_id}:{sha}"),
            ButtonElement(text=f"Not {short}", action_id=f"{ActionId.NOT_CULPRIT}_{short}",
                          value=f"{incident_id}:{sha}")]))
    blocks.append(ActionsBlock(block_id=f"verdict_{incident_id}", elements=[
        ButtonElement(text="No change caused it", action_id=ActionId.NO_CHANGE, value=str(incident_id))]))
    if not suspects and post.get("before"):
        blocks.insert(1, ContextBlock(elements=[MarkdownTextObject(
            text="The suspects are those listed above; their verdict buttons are there.")]))
    return [block.to_dict() for block in blocks]


def _suspect_text(number: int, suspect: Mapping[str, Any]) -> str:
    request = suspect.get("request")
    subject = _line(str(suspect.get("subject", "")), 100)
    pr = f" ({request})" if request and request not in subject else ""
    why = suspect.get("excluded")
    standing = f" (not a rollback target: {why})" if why else (", best suspect" if suspect.get("best") else "")
    lines = [f"*{number}. `{suspect['short']}`* {escape_mrkdwn(subject + pr)} by "
             f"{escape_mrkdwn(str(suspect.get('author', '')))} — score {float(suspect.get('score', 0)):.2f}"
             f"{escape_mrkdwn(standing)}"]
    lines += [f"• {escape_mrkdwn(str(reason))}" for reason in suspect.get("reasons", [])]
    lines += [f"⚠ revert safety: {escape_mrkdwn(str(warning))}" for warning in suspect.get("warnings", [])]
    lines += [escape_mrkdwn(str(line)) for line in suspect.get("code", [])]
    return "\n".join(lines)


def visible_text(blocks: Sequence[Mapping[str, Any]]) -> str:
    """What a person reads of a message, a line per text: links by their label, button labels too."""
    texts: list[str] = []
    for block in blocks:
        for part in [block.get("text"), *block.get("elements", [])]:
            if isinstance(part, Mapping):
                text = part.get("text")
                texts.append(str(text.get("text", "")) if isinstance(text, Mapping) else str(text or ""))
    return "\n".join(_LINK.sub(r"\1", text) for text in texts if text)


def _lead(lead: object) -> str:
    """The lead as Slack shows a person (a mention of their ID), else their name; "—" before anyone leads."""
    if not lead:
        return "—"
    text = str(lead)
    return f"<@{text}>" if SLACK_USER.fullmatch(text) else _escaped(text, FACT_MOST)


def _line(text: str, most: int) -> str:
    return clip(" ".join(text.split()), most)


def _escaped(text: str, most: int) -> str:
    """Clipped on one line first, then escaped: an escape is never cut in half."""
    return escape_mrkdwn(_line(text, most))
