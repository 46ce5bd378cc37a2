"""Kubernetes manifests as lines: the documents of a YAML file, their kind, name and namespace, and
where a key's block starts and ends. Pure, and line-based on purpose: a freeze must change only
the lines it means to, so the file is never re-serialised (comments, quoting and order stay)."""

from __future__ import annotations

import re
from dataclasses import dataclass

_SEPARATOR = re.compile(r"^(---|\.\.\.)\s*(#.*)?$")
_KEY = re.compile(r"^(?P<indent>\s*)(?P<dash>-\s+)?(?P<key>[\w./-]+):(?:\s+(?P<value>.*?))?\s*$")


def indent_of(line: str) -> int:
    return len(line) - len(line.lstrip(" "))


def scalar(value: str | None) -> str:
    """A plain YAML scalar as written: quotes and a trailing comment taken off."""
    text = (value or "").split(" #", 1)[0].strip()
    return text[1:-1] if len(text) >= 2 and text[0] == text[-1] and text[0] in "\"'" else text


def key_of(line: str) -> tuple[str, str] | None:
    """(key, value) of a `key: value` line, or None."""
    match = _KEY.match(line.rstrip("\r\n"))
    return (match.group("key"), match.group("value") or "") if match else None


@dataclass(frozen=True)
class Block:
    """A key's line and the lines below it that belong to it: [start, end)."""

    start: int
    end: int
    child_indent: int  # the indentation of its first child (its own plus two when it has none)


@dataclass(frozen=True)
class Document:
    """One YAML document of a file: lines [start, end) of `lines`."""

    path: str
    lines: tuple[str, ...]
    start: int
    end: int

    @property
    def kind(self) -> str:
        block = self.block(())
        return next((scalar(v) for k, v in self._keys(block, 0) if k == "kind"), "")

    @property
    def name(self) -> str:
        return self.value(("metadata", "name"))

    @property
    def namespace(self) -> str:
        return self.value(("metadata", "namespace"))

    def block(self, keys: tuple[str, ...]) -> Block:
        """The block of a key path (`("spec", "syncPolicy")`); the whole document for `()`.
        A missing key gives an empty block at the document's end."""
        found = Block(self.start, self.end, 0)
        for key in keys:
            inner = self._child(found, key)
            if inner is None:
                return Block(self.end, self.end, 0)
            found = inner
        return found

    def has(self, keys: tuple[str, ...]) -> bool:
        return self.block(keys).start < self.end

    def value(self, keys: tuple[str, ...]) -> str:
        """A scalar at a key path, or ""."""
        if not keys or not self.has(keys):
            return ""
        line = self.lines[self.block(keys).start]
        parsed = key_of(line.lstrip(" -") if line.lstrip().startswith("- ") else line)
        return scalar(parsed[1]) if parsed else ""

    def _keys(self, block: Block, indent: int) -> list[tuple[str, str]]:
        found = []
        for index in range(block.start, block.end):
            line = self.lines[index]
            if indent_of(line) == indent and not line.lstrip().startswith(("#", "- ")):
                parsed = key_of(line)
                if parsed:
                    found.append(parsed)
        return found

    def _child(self, parent: Block, key: str) -> Block | None:
        first = parent.start if parent.start == self.start and parent.child_indent == 0 else parent.start + 1
        want = parent.child_indent
        for index in range(first, parent.end):
            line = self.lines[index]
            if not line.strip() or line.lstrip().startswith("#") or indent_of(line) != want:
                continue
            parsed = key_of(line)
            if parsed is None or parsed[0] != key:
                continue
            end = index + 1
            while end < parent.end and (not self.lines[end].strip() or indent_of(self.lines[end]) > want
                                        or self.lines[end].lstrip().startswith("#")):
                end += 1
            while end > index + 1 and not self.lines[end - 1].strip():
                end -= 1  # trailing blank lines belong to what follows
            children = [indent_of(self.lines[i]) for i in range(index + 1, end)
                        if self.lines[i].strip() and not self.lines[i].lstrip().startswith("#")]
            return Block(index, end, children[0] if children else want + 2)
        return None


def documents(path: str, text: str) -> list[Document]:
    """The documents of a YAML file, in order."""
    lines = tuple(text.splitlines(keepends=True))
    found, start = [], 0
    for index, line in enumerate(lines):
        if _SEPARATOR.match(line.rstrip("\r\n")):
            found.append(Document(path, lines, start, index))
            start = index + 1
    found.append(Document(path, lines, start, len(lines)))
    return [doc for doc in found if doc.kind]


def ending(line: str) -> str:
    """A line's own end of line ("\\n", "\\r\\n" or "" on a last line without one)."""
    return line[len(line.rstrip("\r\n")):]
