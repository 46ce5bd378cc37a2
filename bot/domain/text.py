"""Untrusted text made safe for a terminal: one sanitizer for every path that prints it. Pure."""

from __future__ import annotations

import re

# Alert and user text is untrusted. Anything that can drive a terminal or fake a line: C0 and C1
# controls (escape sequences, carriage return, bell, newline), Unicode line and paragraph
# separators, bidi overrides and isolates, zero-width and other invisible format characters,
# tag characters, and lone surrogates.
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u180e\u200b-\u200f\u2028-\u202e\u2060-\u206f"
                     "\ufeff\ufff9-\ufffb\U000e0000-\U000e007f\ud800-\udfff]")
_SHOWN = {"\n": "\\n", "\r": "\\r", "\t": " "}


def safe(text: str, limit: int = 300) -> str:
    """Untrusted text for a terminal, on one line: every character that could move the cursor,
    recolour, ring, reorder the line or start a new one is shown as an escape (`\\x1b`, `\\n`,
    `\\u202e`), so a label cannot forge one of Backout's own lines. Bounded length. The one
    sanitizer for the CLI, the console notifier and Markdown."""
    cleaned = _UNSAFE.sub(_escape, text)
    return cleaned if len(cleaned) <= limit else cleaned[: limit - 1] + "…"


def _escape(match: re.Match[str]) -> str:
    char = match.group(0)
    if char in _SHOWN:
        return _SHOWN[char]
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


_MD_INLINE = re.compile(r"([\\`*_\[\]|~])")
_MD_BLOCK_START = re.compile(r"^(\s*)([#+\-=>]|\d+[.)])")
_HTML_START = re.compile(r"<(?=[A-Za-z/!?])")  # what would open a tag, a comment or an autolink
_ENTITY = re.compile(r"&(?=#?\w+;)")  # what would be read as an entity


def md(text: object) -> str:
    """Untrusted text as literal Markdown on one line (it may sit in a table cell): emphasis,
    code, link and table characters backslashed; `<` that would open a tag and `&` that would
    start an entity backslashed; a leading heading, list or quote marker neutralised; URLs broken
    so they do not autolink. `5xx > 5%` stays `5xx > 5%`."""
    text = safe(re.sub(r"\s*[\r\n]+\s*", " ", str(text)), limit=100_000)
    text = _MD_INLINE.sub(r"\\\1", text)
    text = _HTML_START.sub(r"\\<", text)
    text = _ENTITY.sub(r"\\&", text)
    text = _MD_BLOCK_START.sub(_neutralise_marker, text)
    return text.replace("://", ":\u200b//")


def _neutralise_marker(match: re.Match[str]) -> str:
    marker = match.group(2)
    if marker[0].isdigit():
        return match.group(1) + marker[:-1] + "\\" + marker[-1]  # 1. -> 1\.
    return match.group(1) + "\\" + marker
