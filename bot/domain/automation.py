"""Image automation: the lines Flux ImageUpdateAutomation and argocd-image-updater own, and how a
revert pins what it restores so that automation does not undo it at its next run. Pure: text in,
text out.

Flux marks the fields it updates with setter comments (`# {"$imagepolicy": "ns:name"}`, or the
`:tag` and `:name` forms); a restored line that keeps its marker is rewritten to the policy's
newest tag at the next run. argocd-image-updater with Git write-back writes its overrides to
`.argocd-source-<app>.yaml` and takes its settings from the Application's annotations, where an
`<alias>.ignore-tags` annotation keeps it off a tag."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

SETTER = re.compile(r'\s*#\s*\{\s*"\$imagepolicy"\s*:\s*"([^"]+)"\s*\}\s*$')
WRITE_BACK_FILE = re.compile(r"(^|/)\.argocd-source-([^/]+)\.ya?ml$")
UPDATER = "argocd-image-updater.argoproj.io"
_IMAGE_LIST = re.compile(rf"^(\s*){re.escape(UPDATER)}/image-list:\s*(.+?)\s*$")
_IMAGE_VALUE = re.compile(r"^\s*(?:-\s*)?(?:image:\s*)?[\"']?(?P<image>[\w.-]+(?::\d+)?(?:/[\w.-]+)*)"
                          r":(?P<tag>[\w][\w.+-]{0,127})[\"']?\s*$")
_TAG_ALONE = re.compile(r"^\s*(?:-\s*)?(?:newTag|value|tag):\s*[\"']?(?P<tag>[\w][\w.+-]{0,127})[\"']?\s*$")


@dataclass(frozen=True)
class Pin:
    """One thing a revert did so automation leaves the restored state alone."""

    path: str
    line: int
    what: str  # for people: what was pinned and what to restore once the fix ships


def setter_policy(line: str) -> str | None:
    """The Flux image policy a line's setter marker names (`ns:name`, with `:tag` or `:name`)."""
    match = SETTER.search(line)
    return match.group(1) if match else None


def strip_setters(text: str, lines: Iterable[int], *, path: str) -> tuple[str, list[Pin]]:
    """Remove the setter markers from these 1-based lines: Flux stops updating them."""
    wanted = set(lines)
    out, pins = [], []
    for number, line in enumerate(text.splitlines(keepends=True), start=1):
        body = line.rstrip("\r\n")
        policy = setter_policy(body) if number in wanted else None
        if policy is None:
            out.append(line)
            continue
        kept = SETTER.sub("", body).rstrip()
        out.append(kept + line[len(body):])
        pins.append(Pin(path, number, (
            f"{path}:{number}: removed the Flux image policy marker {policy!r} so ImageUpdateAutomation "
            f"leaves `{kept.strip()}` alone; once the fix ships, restore the marker "
            f'(# {{"$imagepolicy": "{policy}"}})')))
    return "".join(out), pins


def write_back_app(path: str) -> str | None:
    """The Application an argocd-image-updater write-back file belongs to."""
    match = WRITE_BACK_FILE.search(path)
    return match.group(2) if match else None


def tags_in(lines: Sequence[str]) -> list[tuple[str | None, str]]:
    """(image, tag) pairs on these lines: `image: repo/name:tag`, a write-back list item
    `- repo/name:tag`; a kustomize `newTag:` or a Helm parameter `value:` gives a tag alone."""
    found: list[tuple[str | None, str]] = []
    for line in lines:
        text = line.split(" #", 1)[0].rstrip()
        match = _IMAGE_VALUE.match(text)
        if match:
            found.append((match.group("image"), match.group("tag")))
            continue
        match = _TAG_ALONE.match(text)
        if match:
            found.append((None, match.group("tag")))
    return found


def image_aliases(manifest: str) -> dict[str, str]:
    """alias -> image from an Application's `image-list` annotation (`alias=repo/name:constraint`)."""
    aliases: dict[str, str] = {}
    for line in manifest.splitlines():
        match = _IMAGE_LIST.match(line)
        if not match:
            continue
        for item in match.group(2).strip("\"'").split(","):
            alias, _, image = item.strip().rpartition("=")
            image = re.sub(r":[^/]*$", "", image.strip())
            aliases[alias or image] = image
    return aliases


def ignore_tag(manifest: str, *, app: str, alias: str, tag: str) -> str | None:
    """The Application manifest with `tag` added to `<alias>.ignore-tags`, or None when this
    manifest is not the Application `app` with an image-list annotation."""
    named = re.search(rf"^\s*name:\s*[\"']?{re.escape(app)}[\"']?\s*$", manifest, re.MULTILINE)
    if not named or not re.search(r"^kind:\s*Application\s*$", manifest, re.MULTILINE):
        return None
    key = f"{UPDATER}/{alias}.ignore-tags"
    lines = manifest.splitlines(keepends=True)
    for index, line in enumerate(lines):
        match = re.match(rf"^(\s*){re.escape(key)}:\s*(.*?)\s*$", line)
        if match:
            present = [t.strip() for t in match.group(2).strip("\"'").split(",") if t.strip()]
            if tag in present:
                return manifest
            value = ",".join([*present, tag])
            lines[index] = f'{match.group(1)}{key}: "{value}"\n'
            return "".join(lines)
    for index, line in enumerate(lines):
        match = _IMAGE_LIST.match(line.rstrip("\r\n"))
        if match:
            lines.insert(index + 1, f'{match.group(1)}{key}: "{tag}"\n')
            return "".join(lines)
    return None


def automation_warnings(paths: Sequence[str], patch: str) -> tuple[str, ...]:
    """Why a plain revert of this change would be undone by image automation."""
    found = []
    changed = [line[1:] for line in patch.splitlines() if line[:1] in "+-" and not line.startswith(("+++", "---"))]
    policies = sorted({p for line in changed if (p := setter_policy(line))})
    if policies:
        found.append(
            "image-automation: Flux ImageUpdateAutomation owns the image lines this change touched "
            f"(policy {', '.join(policies)}); a plain revert would be rewritten at its next run, so "
            "Backout pins the restored lines by removing their markers (restore them once the fix ships)")
    apps = sorted({a for p in paths if (a := write_back_app(p))})
    if apps:
        found.append(
            f"image-automation: argocd-image-updater writes back for {', '.join(apps)}; a plain revert "
            "would be re-committed at its next run, so Backout adds the reverted tag to the "
            "Application's ignore-tags where the Application lives in this repository (if it does "
            "not, pin the tag in Argo CD before merging)")
    return tuple(found)
