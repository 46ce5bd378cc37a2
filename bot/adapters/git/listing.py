"""Which files of a tree a freeze reads: the YAML blobs of `git ls-tree -r -l -z`, bounded."""

from __future__ import annotations

MANIFEST_FILES = 20_000  # a GitOps repository's YAML, read whole for a freeze (4,400 files: 0.04 s)
MANIFEST_BYTES = 1_000_000


def yaml_blobs(listing: bytes) -> tuple[dict[str, str], bool]:
    """path -> blob id of each YAML file up to MANIFEST_BYTES (files alike share one blob), and
    whether the listing had more than MANIFEST_FILES of them (the rest left out)."""
    paths: dict[str, str] = {}
    for entry in listing.decode("utf-8", "replace").split("\0"):
        meta, _, path = entry.partition("\t")
        parts = meta.split()
        if (len(parts) == 4 and parts[1] == "blob" and path.endswith((".yaml", ".yml"))
                and parts[3].isdigit() and int(parts[3]) <= MANIFEST_BYTES):
            if len(paths) >= MANIFEST_FILES:
                return paths, True
            paths[path] = parts[2]
    return paths, False
