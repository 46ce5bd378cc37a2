"""Marked messages from Slack: the pin and reaction events parsed at the border, and one message
read back (conversations.history, or conversations.replies for a thread reply) with its permalink
(chat.getPermalink), by the channel's ID. Reads are bounded: a 429 is waited out when Slack asks
for a short wait, a few times; anything else gives up (the mark is then not recorded)."""

from __future__ import annotations

from typing import Any

import structlog
from pydantic import BaseModel, ConfigDict, ValidationError
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.web import SlackResponse
from tenacity import RetryCallState, Retrying, retry_if_exception, stop_after_attempt

from bot.domain.chat_marks import PIN, ChatMessage, Mark, emoji_counts, reaction_marker

log = structlog.get_logger(__name__)
ATTEMPTS = 3
LONGEST_WAIT = 10.0  # seconds: a longer Retry-After gives up (a listener thread is not held longer)


def slack_text(text: str) -> str:
    """Slack's message text as people read it: Slack escapes `&`, `<` and `>` as entities (and
    keeps `<@U123>`, `<!channel>` and `<url|label>` as its own markup, shown literally)."""
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


class _Message(BaseModel):
    model_config = ConfigDict(extra="ignore")

    ts: str
    text: str = ""
    user: str | None = None
    username: str | None = None
    bot_id: str | None = None
    thread_ts: str | None = None
    permalink: str | None = None


class _Item(BaseModel):
    model_config = ConfigDict(extra="ignore")

    type: str = "message"
    channel: str | None = None
    ts: str | None = None
    message: _Message | None = None


class _PinEvent(BaseModel):
    model_config = ConfigDict(extra="ignore")

    user: str = ""
    channel_id: str | None = None
    item: _Item


class _ReactionEvent(BaseModel):
    model_config = ConfigDict(extra="ignore")

    user: str = ""
    reaction: str
    item: _Item


def pin_mark(event: dict[str, Any]) -> tuple[Mark, ChatMessage | None] | None:
    """A pin_added or pin_removed event as a mark and the message it carries; None for a pin of
    something that is not a message (a file) or a payload that is not one."""
    try:
        parsed = _PinEvent.model_validate(event)
    except ValidationError:
        return None
    channel = parsed.item.channel or parsed.channel_id
    found = parsed.item.message
    ts = found.ts if found else parsed.item.ts
    if parsed.item.type != "message" or not channel or not ts:
        return None
    mark = Mark(channel=channel, ts=ts, marker=PIN, by=parsed.user, thread_ts=found.thread_ts if found else None)
    return mark, _message(channel, found) if found else None


def reaction_mark(event: dict[str, Any], emoji: frozenset[str]) -> Mark | None:
    """A reaction_added or reaction_removed event with one of `emoji` on a message, as a mark."""
    try:
        parsed = _ReactionEvent.model_validate(event)
    except ValidationError:
        return None
    item = parsed.item
    if item.type != "message" or not item.channel or not item.ts or not emoji_counts(parsed.reaction, emoji):
        return None
    return Mark(channel=item.channel, ts=item.ts, marker=reaction_marker(parsed.reaction.split("::")[0], parsed.user),
                by=parsed.user)


def _message(channel: str, found: _Message) -> ChatMessage:
    thread = found.thread_ts if found.thread_ts and found.thread_ts != found.ts else None
    return ChatMessage(channel=channel, ts=found.ts, author=found.user or found.username or found.bot_id or "",
                       text=slack_text(found.text), thread_ts=thread, permalink=found.permalink)


class SlackMessages:
    """The ChatMessages port on Slack's Web API."""

    def __init__(self, client: WebClient) -> None:
        self._client = client

    def message(self, channel: str, ts: str) -> ChatMessage | None:
        # In the channel: the newest message at or before `ts` is it. A thread reply is not in the
        # channel's history (unless also sent there): then the thread that holds it is read.
        page = self._call(lambda: self._client.conversations_history(
            channel=channel, latest=ts, inclusive=True, limit=1))
        found = _first(page, ts)
        if found is None:
            page = self._call(lambda: self._client.conversations_replies(
                channel=channel, ts=ts, oldest=ts, latest=ts, inclusive=True, limit=2))  # its parent, and it
            found = _first(page, ts)
        return _message(channel, found) if found else None

    def permalink(self, channel: str, ts: str) -> str | None:
        answer = self._call(lambda: self._client.chat_getPermalink(channel=channel, message_ts=ts))
        link = answer.get("permalink") if answer else None
        return str(link) if link else None

    def _call(self, call: Any) -> SlackResponse | None:
        try:
            for attempt in Retrying(stop=stop_after_attempt(ATTEMPTS), wait=_retry_after, reraise=True,
                                    retry=retry_if_exception(_short_rate_limit)):
                with attempt:
                    answer: SlackResponse = call()
                    return answer
        except SlackApiError as exc:
            log.warning("slack.message_unreadable", error=str(exc.response.get("error", "")),
                        status=exc.response.status_code)
        except (OSError, TimeoutError) as exc:
            log.warning("slack.message_unreadable", error=type(exc).__name__)
        return None


def _first(page: SlackResponse | None, ts: str) -> _Message | None:
    for raw in (page.get("messages") or []) if page else []:
        if isinstance(raw, dict) and raw.get("ts") == ts:
            try:
                return _Message.model_validate(raw)
            except ValidationError:
                return None
    return None


def _wait_hint(exc: BaseException | None) -> float | None:
    if not isinstance(exc, SlackApiError) or exc.response.status_code != 429:
        return None
    headers = exc.response.headers
    try:
        return float(headers.get("Retry-After", headers.get("retry-after", "1")))
    except ValueError:
        return 1.0


def _short_rate_limit(exc: BaseException) -> bool:
    hint = _wait_hint(exc)
    return hint is not None and hint <= LONGEST_WAIT


def _retry_after(state: RetryCallState) -> float:
    return _wait_hint(state.outcome.exception() if state.outcome else None) or 1.0
