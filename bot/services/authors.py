"""Authors hear about it: one comment on the pull request a suspect came from, kept current.

Off unless the playbook says `suspects.notify_authors: true`. The comment is posted once per
incident and change, edited when the ranking or a verdict changes what it says, and never
duplicated: a hidden marker lets a retry adopt the comment a lost answer left behind.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import structlog

from bot.domain.errors import BackoutError
from bot.domain.models import Actor
from bot.domain.playbooks import Playbook, playbook_named
from bot.domain.ports import AuthorNotice, Forge, Store, Transaction
from bot.domain.suspects import Suspect
from bot.domain.timeline import EventKind, event
from bot.domain.verdicts import finding
from bot.services.incidents import IncidentView, get_summary, require

log = structlog.get_logger(__name__)
MOST = 3  # only the first three candidates are worth an author's attention


def notify_authors(*, store: Store, forge: Forge | None, playbooks: Sequence[Playbook], incident_id: int,
                   now: datetime, page_url: str | None = None) -> int:
    """Post or edit the comments the incident's current state calls for; returns how many changed.
    A forge that fails is logged and tried again at the next ranking or verdict."""
    if forge is None:
        return 0
    incident = store.run(lambda tx: require(tx, incident_id))
    playbook = playbook_named(playbooks, incident.playbook)
    if playbook is None or not playbook.suspects.notify_authors:
        return 0
    view = get_summary(store=store, incident_id=incident_id)
    existing = {(n.repo, n.sha): n for n in store.run(lambda tx: tx.author_notices.for_incident(incident_id))}
    wanted: dict[tuple[str, str], tuple[int, Suspect | None]] = {}
    for place, candidate in enumerate(view.ranking.candidates[:MOST], start=1):
        ref = candidate.request
        if ref and forge.handles(candidate.repo) and forge.names_request(candidate.repo, ref):
            wanted[(candidate.repo, candidate.sha)] = (place, candidate)
    changed = 0
    for key in sorted(existing.keys() | wanted.keys()):
        notice = existing.get(key)
        rank, suspect = wanted.get(key, (0, None))
        if notice is None and suspect is None:
            continue
        body = _body(view, key[1], rank=rank, suspect=suspect, page_url=page_url)
        if notice is not None and notice.body == body:
            continue
        number = notice.pr_number if notice is not None else int(suspect.pr_number or 0) if suspect else 0
        try:
            comment_id = forge.comment(key[0], number, body=body, marker=_marker(view, key[1]),
                                       comment_id=notice.comment_id if notice else None)
        except BackoutError as exc:
            log.warning("authors.comment_failed", incident=incident_id, repo=key[0], pr=number, error=str(exc))
            continue
        saved = AuthorNotice(incident_id=incident_id, repo=key[0], sha=key[1], pr_number=number,
                             comment_id=comment_id, body=body, updated_at=now)
        ref = (suspect.request if suspect is not None else None) or f"#{number}"
        called = ("merge request " if ref.startswith("!") else "pull request ") + ref

        def record(tx: Transaction, saved: AuthorNotice = saved, first: bool = notice is None,
                   called: str = called) -> None:
            tx.author_notices.save(saved)
            if first:
                tx.timeline.append(event(
                    incident_id=incident_id, at=now, kind=EventKind.AUTHOR_NOTIFIED, actor=Actor.BACKOUT,
                    text=f"Commented on {called} of {saved.repo} ({saved.sha[:7]}) "
                         "to tell its author",
                    data={"repo": saved.repo, "pr_number": saved.pr_number, "comment_id": saved.comment_id}))

        store.run(record)
        changed += 1
    return changed


def _marker(view: IncidentView, sha: str) -> str:
    return f"<!-- backout:{view.incident.ref}:{sha} -->"


def _body(view: IncidentView, sha: str, *, rank: int, suspect: Suspect | None, page_url: str | None) -> str:
    """What the author reads. Text from commits and alerts is quoted as code, never as Markdown."""
    incident = view.incident
    found = finding(view.verdicts)
    link = f" ([incident page]({page_url}))" if page_url else ""
    head = f"**Backout**: incident {incident.ref}{link}, service `{_code(incident.service)}`."
    if found is not None and sha in found.ruled_out:
        said = "A responder ruled this change out: it did not cause the incident. Thank you for your patience."
    elif found is not None and found.culprit == sha:
        said = "A responder confirmed this change as the cause of the incident."
    elif suspect is None:
        said = "This change is no longer among the incident's suspects."
    else:
        confident = view.ranking.confident and rank == 1
        said = (f"This change is suspect #{rank}, score {suspect.score:.2f}"
                f"{' (confident)' if confident else ''}. Why:\n"
                + "\n".join(f"- `{_code(reason)}`" for reason in suspect.reasons))
    return f"{_marker(view, sha)}\n{head}\n\n{said}\n"


def _code(text: str) -> str:
    return " ".join(text.replace("`", "'").split())[:300]
