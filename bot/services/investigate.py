"""Investigate: refresh the change log, rank suspects, apply the playbook's policy, tell people."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime, timedelta

from bot.domain.gitops import Failure
from bot.domain.models import Actor, Incident
from bot.domain.playbooks import Playbook, playbook_named
from bot.domain.ports import AppliedTimes, Forge, GitRepos, MetricsQuery, Notifier, Store, Transaction
from bot.domain.ranking import rank_changes
from bot.domain.ranking_drift import drift_suspects
from bot.domain.suspects import Ranking
from bot.domain.timeline import EventKind, event
from bot.domain.verdicts import finding
from bot.services import notify
from bot.services.act import apply_open_policy, revert_safety
from bot.services.applied import deploying_objects, service_changes
from bot.services.authors import notify_authors
from bot.services.changelog import RefreshReport, refresh_changes
from bot.services.code_changes import annotate_code
from bot.services.drift import drift_near
from bot.services.incidents import find_suspects, get_ranking, require, save_suspects
from bot.services.onset import MOST_ALERTS, KnownOnset, incident_onset, record_onset

OPENED = "incident.opened"  # the notice an investigation ends with


def rank_incident(
    *, store: Store, playbooks: Sequence[Playbook], incident_id: int, now: datetime,
    metrics: MetricsQuery | None = None, known_onset: KnownOnset | None = None,
) -> Ranking:
    """Rank the changes in the incident's window and store the result; a changed answer is
    recorded on the timeline. With Prometheus, timing counts from the key metric's onset
    (found once, outside any transaction, then kept with the ranking; `known_onset`: found
    already, before the batch's transaction). A resolved or closed incident keeps the ranking it has."""
    # Without Prometheus the onset is only what an earlier ranking kept: read in the same transaction.
    sought = (known_onset.at if known_onset is not None
              else _onset(store, playbooks, incident_id, metrics, now) if metrics is not None else None)

    def work(tx: Transaction) -> Ranking:
        incident = require(tx, incident_id)
        kept = tx.rankings.get(incident_id)
        if kept is not None and not incident.active:
            return kept  # a resolved incident is a record: its suspects stay as people saw them
        onset = sought if metrics is not None or known_onset is not None else kept.onset_at if kept else None
        playbook = playbook_named(playbooks, incident.playbook)
        changes, reverts, failures, drift = [], [], [], []
        if playbook is not None and playbook.repos:
            policy = playbook.suspects
            repos = [entry.repo for entry in playbook.repos]
            changes = service_changes(tx, playbook, since=incident.started_at - policy.lookback - policy.sync_delay,
                                      until=incident.started_at)
            reverts = tx.changes.reverts(repos, until=now)
            failures = relevant_failures(tx, playbook, since=incident.started_at - policy.lookback, until=now,
                                         open_at=incident.started_at)
            named: dict[str, set[str]] = {}
            for failure in failures:
                named.setdefault(failure.repo or "", set()).update(failure.shas)
            changes += [found for repo, shas in named.items() for found in tx.changes.get_many(repo, sorted(shas))]
            near = drift_near(tx, playbook, since=incident.started_at - policy.lookback, until=now)
            drift = drift_suspects(near, service=playbook.service, started_at=incident.started_at,
                                   lookback=policy.lookback, onset=onset)
        dry = [found for sha in sorted({c.dry_sha for c in changes if c.dry_sha})[:50]
               for found in tx.changes.find(None, sha)]
        ranking = rank_changes(changes=changes, playbook=playbook, service=incident.service,
                               started_at=incident.started_at, now=now, reverts=reverts, onset=onset,
                               failures=failures, dry=dry, ruled_out=ruled_out(tx, incident_id), drift=drift)
        ranking = _annotated_as_before(ranking, kept)
        tx.rankings.save(incident_id, ranking)
        if kept is None or _answer(kept) != _answer(ranking):
            top = [f"{s.short} {s.score:.2f} {s.subject[:80]}" for s in ranking.suspects[:3]]
            best = ranking.best
            tx.timeline.append(event(
                incident_id=incident_id, at=now, kind=EventKind.SUSPECTS_RANKED, actor=Actor.BACKOUT,
                text=ranking.reason + ("" if not top else " Top: " + "; ".join(top)),
                # the first of these events is the answer responders saw: the accuracy report judges it
                # every suspect listed: the Slack thread posts each one once, with its verdict buttons
                data={"confident": ranking.confident, "considered": len(changes),
                      "best": best.sha if best else None, "confidence": ranking.confidence,
                      "reason": ranking.reason,
                      "suspects": [{"sha": s.sha, "score": s.score} for s in ranking.suspects]},
            ))
        return ranking

    return store.run(work)


def _annotated_as_before(ranking: Ranking, previous: Ranking | None) -> Ranking:
    """Keep the revert-safety warnings and code found for a change before (they depend on the change
    alone), so a ranking again without git work (after a verdict) shows them still."""
    if previous is None:
        return ranking
    known = {(s.repo, s.sha): s for s in previous.suspects}
    suspects = []
    for suspect in ranking.suspects:
        before = known.get((suspect.repo, suspect.sha))
        if before is not None:
            suspect = suspect.model_copy(update={"warnings": before.warnings, "code": before.code,
                                                 "code_note": before.code_note})
        suspects.append(suspect)
    return ranking.model_copy(update={"suspects": tuple(suspects)})


def ruled_out(tx: Transaction, incident_id: int) -> dict[str, str]:
    """The changes responders said did not cause this incident (their last word), described."""
    verdicts = tx.verdicts.for_incident(incident_id)
    found = finding(verdicts)
    if found is None:
        return {}
    said: dict[str, str] = {}
    for verdict in sorted(verdicts, key=lambda v: v.at):
        if verdict.sha in found.ruled_out:
            said[verdict.sha] = f"ruled out by {verdict.who} at {verdict.at:%H:%M} UTC"
    return said


def relevant_failures(tx: Transaction, playbook: Playbook, *, since: datetime, until: datetime,
                      open_at: datetime) -> list[Failure]:
    """Failed reconciliations in the playbook's repositories still open at `open_at` (a failure
    its object's next success ended before the incident is history); of the objects that deploy
    the service, when Backout can tell (an object deploying another service says nothing of this one)."""
    repos = [entry.repo for entry in playbook.repos]
    failures = [f for f in tx.gitops.failures(repos, since=since, until=until)
                if f.resolved_at is None or f.resolved_at > open_at]
    chosen = deploying_objects(tx, playbook) if failures else None
    return failures if chosen is None else [f for f in failures if f.object_id in chosen]


def _onset(store: Store, playbooks: Sequence[Playbook], incident_id: int,
           metrics: MetricsQuery | None, now: datetime) -> datetime | None:
    incident, known = store.run(lambda tx: (require(tx, incident_id), tx.rankings.get(incident_id)))
    if known is not None and known.onset_at is not None:
        return known.onset_at  # found once, kept: a ranking again without Prometheus keeps it too
    if metrics is None:
        return None
    alerts = store.run(lambda tx: tx.alerts.earliest(incident_id, fingerprints=MOST_ALERTS))  # all it looks at
    onset = incident_onset(metrics=metrics, playbook=playbook_named(playbooks, incident.playbook), incident=incident,
                           alerts=alerts)
    record_onset(store=store, incident_id=incident_id, onset=onset, now=now)
    return onset.at


def annotate_safety(*, store: Store, git: GitRepos, incident_id: int, ranking: Ranking,
                    top: int = 3) -> Ranking:
    """Revert-safety warnings for the first candidates (the changes people may roll back: the list
    follows the scores, so a reverted or ruled-out change may come between them), so people see
    them before they roll back. Git work happens outside any transaction."""
    suspects = list(ranking.suspects)
    indexes = ranking.candidate_indexes(top)
    for index, change in zip(indexes, find_suspects(store, [suspects[i] for i in indexes]), strict=True):
        if change is not None:
            suspects[index] = suspects[index].model_copy(update={"warnings": revert_safety(git, change)})
    return save_suspects(store=store, incident_id=incident_id, ranking=ranking, suspects=suspects)


def _answer(ranking: Ranking) -> tuple[bool, str | None, tuple[str, ...]]:
    best = ranking.best
    return ranking.confident, best.sha if best else None, tuple(s.sha for s in ranking.suspects[:3])


def investigate(
    *,
    store: Store,
    git: GitRepos,
    notifier: Notifier,
    playbooks: Sequence[Playbook],
    incident_id: int,
    now: datetime,
    import_window: timedelta,
    forge: Forge | None = None,
    applied: AppliedTimes | None = None,
    applied_window: timedelta = timedelta(days=1),
    page_url: str | None = None,
    metrics: MetricsQuery | None = None,
    fetch_wait: float | None = None,
    clock: Callable[[], datetime] | None = None,
    later: Callable[[Sequence[str]], object] = lambda _: None,
    refreshed: RefreshReport | None = None,
    announce: bool = True,
    known_onset: KnownOnset | None = None,
) -> Ranking:
    """What runs when an incident opens: refresh its repositories, rank, act, announce.

    A fetch that takes longer than `fetch_wait` seconds (or a Git host not answering) does not
    hold the ranking: it ranks from the mirror, says so on the timeline, and hands those
    repositories (and any that failed) to `later`, which ranks again when their fetch lands. With
    a `clock`, the ranking is dated when it is made (the export's time to first suspect).
    `refreshed`: the repositories were just refreshed for a batch of incidents (the sweep): not
    fetched again, and what is pending is the batch's to hand to `later`, once. Without `announce`
    the caller tells people (a batch queues its messages together). `known_onset`: the onset the
    batch found before its transaction (Prometheus is not asked in it)."""
    incident = store.run(lambda tx: require(tx, incident_id))
    playbook = playbook_named(playbooks, incident.playbook)
    repos = [entry.repo for entry in playbook.repos] if playbook else []
    report = refreshed if refreshed is not None else refresh_changes(
        store=store, git=git, repos=repos, now=now, import_window=import_window, applied=applied,
        applied_window=applied_window, wait=fetch_wait)
    now = clock() if clock is not None else now
    failed = {repo: reason for repo, reason in report.failed.items() if repo in repos}
    pending = {repo: reason for repo, reason in report.pending.items() if repo in repos}
    if failed:
        _note_repos(store, incident_id, now, kind=EventKind.CHANGES_REFRESH_FAILED, key="failed", by_repo=failed,
                    says="Could not refresh the change log ({}); ranked with the changes known so far.")
    if pending:
        _note_repos(store, incident_id, now, kind=EventKind.CHANGES_FROM_MIRROR, key="pending", by_repo=pending,
                    says="Ranked from the mirror without waiting on Git ({}); ranked again when the fetch "
                         "brings new commits.")
    if (pending or failed) and refreshed is None:
        later(sorted({*pending, *failed}))
    ranking = rank_incident(store=store, playbooks=playbooks, incident_id=incident_id, now=now, metrics=metrics,
                            known_onset=known_onset)
    ranking = annotate_safety(store=store, git=git, incident_id=incident_id, ranking=ranking)
    ranking = annotate_code(store=store, git=git, playbooks=playbooks, incident_id=incident_id, ranking=ranking)
    notify_authors(store=store, forge=forge, playbooks=playbooks, incident_id=incident_id, now=now,
                   page_url=page_url)
    if playbook is not None:
        apply_open_policy(store=store, git=git, notifier=notifier, playbook=playbook,
                          incident_id=incident_id, ranking=ranking, now=now, forge=forge,
                          page_url=page_url)
    if announce:
        notify.incident_update(store=store, notifier=notifier, incident_id=incident_id, kind=OPENED)
    return ranking


def rerank_open_incidents(
    *, store: Store, notifier: Notifier, playbooks: Sequence[Playbook], repos: Sequence[str],
    now: datetime, git: GitRepos | None = None, metrics: MetricsQuery | None = None,
    forge: Forge | None = None, page_url: Callable[[int], str | None] = lambda _: None,
) -> int:
    """After new changes arrived: rank again every active incident whose playbook watches them. One
    never ranked yet is left to its pending investigation (after a restart, thousands may wait)."""
    count = 0
    for incident in store.run(_ranked_active):
        playbook = playbook_named(playbooks, incident.playbook)
        if playbook is None or not {e.repo for e in playbook.repos} & set(repos) or incident.id is None:
            continue
        rerank_incident(store=store, notifier=notifier, playbooks=playbooks, incident_id=incident.id, now=now,
                        git=git, metrics=metrics, authors=lambda number: notify_authors(
                            store=store, forge=forge, playbooks=playbooks, incident_id=number, now=now,
                            page_url=page_url(number)))
        count += 1
    return count


def _ranked_active(tx: Transaction) -> list[Incident]:
    return [incident for incident in tx.incidents.list(active=True, limit=1000)
            if incident.id is not None and tx.rankings.get(incident.id) is not None]


def rerank_incident(
    *, store: Store, notifier: Notifier | None, playbooks: Sequence[Playbook], incident_id: int, now: datetime,
    git: GitRepos | None = None, metrics: MetricsQuery | None = None,
    authors: Callable[[int], object] = lambda _: None,
) -> Ranking:
    """Rank one incident again (new changes, a responder's verdict); the chat message follows when
    the answer changed. `authors` runs between, to tell the authors of new suspects."""
    before = get_ranking(store=store, incident_id=incident_id)
    after = rank_incident(store=store, playbooks=playbooks, incident_id=incident_id, now=now, metrics=metrics)
    if git is not None:
        after = annotate_safety(store=store, git=git, incident_id=incident_id, ranking=after)
        after = annotate_code(store=store, git=git, playbooks=playbooks, incident_id=incident_id, ranking=after)
    authors(incident_id)
    if notifier is not None and _answer(before) != _answer(after):
        notify.incident_update(store=store, notifier=notifier, incident_id=incident_id, kind="suspects.changed")
    return after


def _note_repos(store: Store, incident_id: int, now: datetime, *, kind: EventKind, key: str,
                by_repo: dict[str, str], says: str) -> None:
    """A timeline event about some repositories, each with its reason, in `says` ({} for them)."""
    text = "; ".join(f"{repo}: {reason}" for repo, reason in by_repo.items())
    store.run(lambda tx: tx.timeline.append(event(
        incident_id=incident_id, at=now, kind=kind, actor=Actor.BACKOUT, text=says.format(text),
        data={key: by_repo},
    )))
