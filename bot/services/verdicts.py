"""Responders teach the ranking: verdicts on suspects, and how often Backout was right."""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from bot.domain.drift import is_handle
from bot.domain.errors import InvalidInput, NotFound
from bot.domain.models import Actor
from bot.domain.playbooks import Playbook, playbook_named
from bot.domain.ports import MetricsQuery, Notifier, Store, Transaction
from bot.domain.suspects import pending
from bot.domain.timeline import EventKind, event
from bot.domain.verdicts import Answer, Verdict, VerdictKind, accuracy, finding
from bot.services.incidents import require
from bot.services.investigate import rerank_incident

_SHA = re.compile(r"^[0-9a-f]{4,64}$")


def record_verdict(
    *, store: Store, playbooks: Sequence[Playbook], incident_id: int, kind: VerdictKind, sha: str | None,
    actor: Actor, actor_id: str, now: datetime, notifier: Notifier | None = None,
    metrics: MetricsQuery | None = None, on_behalf_of: str = "",
) -> Verdict:
    """Store a responder's verdict on the timeline. A change is named by a unique sha prefix of
    a suspect or of a change in the incident's repositories; "no change" names none. An active
    incident is ranked again at once, so a change ruled out drops from the answer (and `notifier`,
    when given, hears "suspects.changed"); a resolved one keeps the ranking it was resolved with."""

    def work(tx: Transaction) -> tuple[Verdict, bool]:
        incident = require(tx, incident_id)
        repo, full = None, None
        if kind is VerdictKind.NO_CHANGE:
            if sha:
                raise InvalidInput("'no change caused it' names no commit")
        else:
            repo, full = _resolve(tx, playbook_named(playbooks, incident.playbook), incident_id, sha)
        verdict = Verdict(incident_id=incident_id, kind=kind, repo=repo, sha=full, actor=actor,
                          actor_id=actor_id, on_behalf_of=on_behalf_of, at=now)
        tx.verdicts.add(verdict)
        who = verdict.who
        short = str(full) if is_handle(str(full)) else str(full)[:7]
        text = {VerdictKind.CULPRIT: f"{who} marked {short} as the change that caused it",
                VerdictKind.NOT_CULPRIT: f"{who} ruled out {short}: not the cause",
                VerdictKind.NO_CHANGE: f"{who} marked it as caused by no change"}[kind]
        tx.timeline.append(event(incident_id=incident_id, at=now, kind=EventKind.VERDICT, actor=actor,
                                 actor_id=actor_id, text=text, on_behalf_of=on_behalf_of,
                                 data={"verdict": kind.value, "repo": repo, "sha": full}))
        return verdict, incident.active

    verdict, active = store.run(work)
    if active:
        rerank_incident(store=store, notifier=notifier, playbooks=playbooks, incident_id=incident_id, now=now,
                        metrics=metrics)
    return verdict


def _resolve(tx: Transaction, playbook: Playbook | None, incident_id: int, sha: str | None) -> tuple[str, str]:
    prefix = (sha or "").strip().lower()
    ranking = tx.rankings.get(incident_id) or pending()
    if is_handle(prefix):  # an out-of-band change among the suspects (`drift-12`)
        drift = next((s for s in ranking.suspects if s.sha == prefix), None)
        if drift is None:
            raise NotFound(f"{prefix} is not among the incident's suspects (`backout suspects` lists them)")
        return drift.repo[:100], drift.sha
    if not _SHA.match(prefix):
        raise InvalidInput(f"not a commit sha: {prefix[:40]!r} (give at least 4 hex digits, or a drift-<n>)")
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
    """Precision@1 and recall@3 of incidents opened since `since` that responders judged, each
    judged on the ranking's first answer: what responders saw before their verdicts re-ranked it."""

    def work(tx: Transaction) -> list[tuple[str, str | None, Answer, Any]]:
        by_incident: dict[int, list[Verdict]] = {}
        for verdict in tx.verdicts.since(since):
            by_incident.setdefault(verdict.incident_id, []).append(verdict)
        cases = []
        for incident_id, verdicts in sorted(by_incident.items()):
            incident = tx.incidents.get(incident_id)
            found = finding(verdicts)
            if incident is None or found is None:
                continue
            cases.append((incident.service, incident.playbook, _first_answer(tx, incident_id), found))
        return cases

    cases = store.run(work)
    return {"since": since.isoformat(), "generated_at": now.isoformat(), **accuracy(cases)}


def _first_answer(tx: Transaction, incident_id: int) -> Answer:
    """The first `suspects.ranked` event's answer; the stored ranking for incidents from before the
    events kept it."""
    ranked = min((e for e in tx.timeline.for_incident(incident_id) if e.kind == EventKind.SUSPECTS_RANKED),
                 key=lambda e: (e.at, e.id or 0), default=None)
    answer = Answer.from_event(ranked.data) if ranked is not None else None
    return answer or Answer.of(tx.rankings.get(incident_id) or pending())
