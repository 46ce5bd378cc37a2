"""Responders teach the ranking: verdicts on suspects, and how often Backout was right."""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from bot.domain.errors import InvalidInput, NotFound
from bot.domain.models import Actor
from bot.domain.playbooks import Playbook, playbook_named
from bot.domain.ports import Store, Transaction
from bot.domain.suspects import Ranking, pending
from bot.domain.timeline import EventKind, event
from bot.domain.verdicts import Verdict, VerdictKind, accuracy, finding
from bot.services.incidents import require

_SHA = re.compile(r"^[0-9a-f]{4,64}$")


def record_verdict(
    *, store: Store, playbooks: Sequence[Playbook], incident_id: int, kind: VerdictKind, sha: str | None,
    actor: Actor, actor_id: str, now: datetime,
) -> Verdict:
    """Store a responder's verdict on the timeline. A change is named by a unique sha prefix of
    a suspect or of a change in the incident's repositories; "no change" names none."""

    def work(tx: Transaction) -> Verdict:
        incident = require(tx, incident_id)
        repo, full = None, None
        if kind is VerdictKind.NO_CHANGE:
            if sha:
                raise InvalidInput("'no change caused it' names no commit")
        else:
            repo, full = _resolve(tx, playbook_named(playbooks, incident.playbook), incident_id, sha)
        verdict = Verdict(incident_id=incident_id, kind=kind, repo=repo, sha=full, actor=actor,
                          actor_id=actor_id, at=now)
        tx.verdicts.add(verdict)
        who = actor_id or actor.value
        text = {VerdictKind.CULPRIT: f"{who} marked {str(full)[:7]} as the change that caused it",
                VerdictKind.NOT_CULPRIT: f"{who} ruled out {str(full)[:7]}: not the cause",
                VerdictKind.NO_CHANGE: f"{who} marked it as caused by no change"}[kind]
        tx.timeline.append(event(incident_id=incident_id, at=now, kind=EventKind.VERDICT, actor=actor,
                                 actor_id=actor_id, text=text,
                                 data={"verdict": kind.value, "repo": repo, "sha": full}))
        return verdict

    return store.run(work)


def _resolve(tx: Transaction, playbook: Playbook | None, incident_id: int, sha: str | None) -> tuple[str, str]:
    prefix = (sha or "").strip().lower()
    if not _SHA.match(prefix):
        raise InvalidInput(f"not a commit sha: {prefix[:40]!r} (give at least 4 hex digits)")
    ranking = tx.rankings.get(incident_id) or pending()
    named = {(s.repo, s.sha) for s in ranking.suspects if s.sha.startswith(prefix)}
    if not named:
        repos = {entry.repo for entry in playbook.repos} if playbook else None
        named = {(c.repo, c.sha) for c in tx.changes.find(None, prefix) if repos is None or c.repo in repos}
    if not named:
        raise NotFound(f"no suspect or known change {prefix} in the incident's repositories")
    if len(named) > 1:
        raise InvalidInput(f"{prefix} is ambiguous: {', '.join(sorted(s[:7] for _, s in named))}")
    return next(iter(named))


def verdicts_of(*, store: Store, incident_id: int) -> list[Verdict]:
    return store.run(lambda tx: tx.verdicts.for_incident(incident_id))


def accuracy_report(*, store: Store, since: datetime, now: datetime) -> dict[str, Any]:
    """Precision@1 and recall@3 of incidents opened since `since` that responders judged."""

    def work(tx: Transaction) -> list[tuple[str, str | None, Ranking, Any]]:
        by_incident: dict[int, list[Verdict]] = {}
        for verdict in tx.verdicts.since(since):
            by_incident.setdefault(verdict.incident_id, []).append(verdict)
        cases = []
        for incident_id, verdicts in sorted(by_incident.items()):
            incident = tx.incidents.get(incident_id)
            found = finding(verdicts)
            if incident is None or found is None:
                continue
            cases.append((incident.service, incident.playbook, tx.rankings.get(incident_id) or pending(), found))
        return cases

    cases = store.run(work)
    return {"since": since.isoformat(), "generated_at": now.isoformat(), **accuracy(cases)}
