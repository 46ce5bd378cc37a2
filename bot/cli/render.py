"""The CLI's text, from the API's JSON shapes (what `--json` prints): one rendering whether the
answer came from a running server or from the local database. Untrusted text goes through
`safe`; colour only on a terminal, and never with NO_COLOR set."""

from __future__ import annotations

import os
import sys
from datetime import datetime
from typing import Any

from bot.domain.text import safe

MAX_SUSPECTS = 5
STATUS_COLOUR = {"open": "red", "acknowledged": "yellow", "mitigating": "yellow", "mitigated": "green",
                 "verified": "green", "resolved": "green", "closed": "bright_black"}
_CODES = {"red": 31, "green": 32, "yellow": 33, "bold": 1, "bright_black": 90}


def colour_on(stream: Any = None) -> bool:
    """Colour for a terminal that has not asked for none (https://no-color.org)."""
    stream = stream or sys.stdout
    return "NO_COLOR" not in os.environ and hasattr(stream, "isatty") and stream.isatty()


def paint(text: str, colour: str | None, *, on: bool) -> str:
    if not on or colour is None or colour not in _CODES:
        return text
    return f"\x1b[{_CODES[colour]}m{text}\x1b[0m"


def when(value: str | None) -> str:
    """`2026-11-21 22:21:00Z` from the API's ISO time."""
    if not value:
        return "-"
    return datetime.fromisoformat(value).strftime("%Y-%m-%d %H:%M:%SZ")


def incident_table(incidents: list[dict[str, Any]], *, colour: bool = False) -> str:
    if not incidents:
        return "no incidents"
    lines = [f"{'ID':<8} {'STATUS':<13} {'SEVERITY':<9} {'SERVICE':<16} {'OPENED':<21} TITLE"]
    for incident in incidents:
        status = incident["status"]
        lines.append(f"{incident['ref']:<8} {paint(f'{status:<13}', STATUS_COLOUR.get(status), on=colour)} "
                     f"{incident['severity']:<9} {safe(incident['service'], 16):<16} "
                     f"{when(incident['opened_at']):<21} {safe(incident['title'], 80)}")
    return "\n".join(lines)


def incident_text(view: dict[str, Any], *, colour: bool = False) -> str:
    """The incident: state, alerts, suspects, actions, timeline."""
    status = view["status"]
    lines = [
        paint(f"{view['ref']}  {safe(view['title'])}", "bold", on=colour),
        f"  status {paint(status, STATUS_COLOUR.get(status), on=colour)}, severity {view['severity']}, "
        f"service {safe(view['service'])}, playbook {safe(view['playbook'] or '(none)')}",
        f"  started {when(view['started_at'])}, opened {when(view['opened_at'])}, resolved {when(view['resolved_at'])}",
        *([f"  page {view['page_url']}"] if view.get("page_url") else []),  # signed: opens in a browser
        f"  alerts ({len(view['alerts'])}):",
    ]
    for alert in view["alerts"]:
        labels = ", ".join(f"{k}={v}" for k, v in sorted(alert["labels"].items()))
        name = alert["labels"].get("alertname", "unnamed alert")
        lines.append(f"    [{alert['status']}] {safe(name, 80)} {{{safe(labels, 200)}}}")
    lines.append("  " + suspects_heading(view["suspects"]) + ":")
    lines.extend(f"    {line}" for line in suspect_lines(view["suspects"]))
    if view["actions"]:
        lines.append("  actions:")
        lines.extend(f"    {action_line(action)}" for action in view["actions"])
    lines.append("  timeline:")
    for event in view["timeline"]:
        who = event.get("who") or event["actor_id"] or event["actor"]  # a server before `who`: the actor alone
        lines.append(f"    {when(event['at'])}  {event['kind']:<24} {safe(who, 60):<14} {safe(event['text'])}")
    return "\n".join(lines)


def suspects_heading(ranking: dict[str, Any]) -> str:
    if ranking["status"] == "pending":
        return "Suspects (not ranked yet)"
    return "Suspects (confident)" if ranking["confident"] else "Suspects (no confident suspect)"


def suspect_lines(ranking: dict[str, Any]) -> list[str]:
    """The reason, then each suspect with its score, reasons and warnings."""
    lines = [safe(ranking["reason"], 2000)] if ranking.get("reason") else []
    for number, suspect in enumerate(ranking["suspects"][:MAX_SUSPECTS], start=1):
        ref = suspect.get("pr_ref") or (f"#{suspect['pr_number']}" if suspect.get("pr_number") else "")
        pr = f" ({safe(ref, 20)})" if ref and ref not in suspect["subject"] else ""
        short = suspect["sha"] if suspect.get("drift") else suspect["sha"][:7]  # drift-12: a drift's handle
        lines.append(f"{number}. {short} {safe(suspect['subject'], 100)}{pr} by "
                     f"{safe(suspect['author'], 80)} on {safe(suspect['repo'], 60)} — score {suspect['score']:.2f}"
                     + _standing(ranking, suspect))
        lines.extend(f"   - {safe(reason, 500)}" for reason in suspect["reasons"])
        lines.extend(f"   ! revert safety: {safe(warning, 500)}" for warning in suspect["warnings"])
    if len(ranking["suspects"]) > MAX_SUSPECTS:
        lines.append(f"... and {len(ranking['suspects']) - MAX_SUSPECTS} more (--json shows them all)")
    return lines


def plan_lines(plan: dict[str, Any]) -> list[str]:
    """The rollback plan: why, the order, then each step with its state, why it is there and when it
    is judged; the verification every step gets."""
    lines = [safe(plan["reason"], 2000), safe(plan["line"], 500)]
    for step in plan["steps"]:
        now = "  <- now" if step["number"] == plan["current"] else ""
        lines.append(f"{step['number']}. {step['state']:<13} {step['short']} {safe(step['subject'], 100)} on "
                     f"{safe(step['repo'], 60)}{now}")
        lines.append(f"   - {safe(step['why'], 500)}")
        if step["deadline"]:
            lines.append(f"   - its revert took effect at {when(step['reverted_at'])}; not recovered by "
                         f"{when(step['deadline'])}: the next step")
    if plan["steps"]:
        lines.append(f"verified by: {safe(plan['verify']['text'], 500)}")
    return lines


def _standing(ranking: dict[str, Any], suspect: dict[str, Any]) -> str:
    """The best suspect (the default rollback target), or why a suspect is none."""
    if suspect.get("excluded"):
        return f" (not a rollback target: {safe(suspect['excluded'], 300)})"
    return ", best suspect" if ranking.get("best") == suspect["sha"] else ""


def action_line(action: dict[str, Any]) -> str:
    what = {"revert": f"revert {action['commit_sha'][:7]}", "postmortem": "post-mortem draft"}.get(
        action["kind"], "incident branch")
    where = f" {action['url']}" if action.get("url") else ""
    return f"{what} on {safe(action['repo'], 60)}: {action['state']} {safe(action['branch'], 120)}{where}"


def plan_text(plan: dict[str, Any]) -> str:
    """What the confirmation shows: the commit, why, what it touches, the diff (shortened)."""
    lines = [f"Revert {plan['short']} on {safe(plan['repo'], 60)}: {safe(plan['subject'], 200)}",
             f"  by {safe(plan['author'], 80)}, committed {when(plan['committed_at'])}"]
    if plan.get("excluded"):
        lines.append(f"  ! not a rollback target: {safe(plan['excluded'], 500)} (rolling it back needs --force)")
    lines.append("  why:")
    lines.extend(f"    - {safe(reason, 500)}" for reason in plan["reasons"])
    for warning in plan["warnings"]:
        lines.append(f"  ! revert safety: {safe(warning, 500)}")
    lines.append(f"  files ({len(plan['files'])}):")
    lines.extend(f"    {safe(path, 300)}" for path in plan["files"][:20])
    if len(plan["files"]) > 20:
        lines.append(f"    ... and {len(plan['files']) - 20} more")
    if plan.get("diff"):
        lines.append("  the change being undone (the revert applies the reverse of this diff):")
        lines.extend(f"    {safe(line, 300)}" for line in plan["diff"].splitlines())
    lines.append(f"  branch: {safe(plan['branch'], 200)}")
    return "\n".join(lines)


def good_text(answer: dict[str, Any]) -> str:
    """A service's last known good per repository, with why it counts (or why none does)."""
    lines = []
    for repo in answer["repos"]:
        good = repo["good"]
        head = f"{safe(answer['service'], 100)} in {safe(repo['repo'], 60)}"
        if good is None:
            lines.append(f"{head}: no last known good: {safe(repo['reason'], 800)}")
            continue
        lines.append(f"{head}: last known good {good['short']} {safe(good['subject'], 200)} "
                     f"({safe(good['author'], 80)})")
        lines.extend(f"  - {safe(reason, 500)}" for reason in good["reasons"])
        if repo.get("current"):
            lines.append(f"  applied now: {repo['current'][:7]}")
    return "\n".join(lines) or f"{safe(answer['service'], 100)}: the playbook names no GitOps repository"


def restore_text(plan: dict[str, Any]) -> str:
    """What the restore confirmation shows: the good revision, why, the paths, the commits undone."""
    lines = [f"Restore {safe(plan['service'], 100)} on {safe(plan['repo'], 60)} to last known good "
             f"{plan['short']}: {safe(plan['subject'], 200)} ({safe(plan['author'], 80)})", "  why it counts:"]
    lines.extend(f"    - {safe(reason, 500)}" for reason in plan["reasons"])
    lines.append(f"  paths restored: {safe(', '.join(plan['paths']), 500)}")
    if plan["shared_left_alone"]:
        lines.append(f"  shared paths left as at head (--include to restore): "
                     f"{safe(', '.join(plan['shared_left_alone']), 500)}")
    lines.append(f"  commits undone ({len(plan['undone'])}):")
    for undone in plan["undone"]:
        lines.append(f"    {undone['short']} {safe(undone['subject'], 200)} ({safe(undone['author'], 80)})")
        lines.extend(f"      ! revert safety: {safe(w, 500)}" for w in undone["warnings"])
    lines.append("  ! the service's paths at the good revision beside everything else at head may be a "
                 "combination that never ran")
    lines.append(f"  branch: {safe(plan['branch'], 200)}")
    return "\n".join(lines)


def report_text(report: dict[str, Any], *, since: str, markdown: bool = False) -> str:
    """The team report as aligned text, or as a Markdown table for a review document."""
    from bot.domain.durations import human_duration

    scope = f"service {report['service']}" if report.get("service") else "all services"
    changes, reverts, accuracy = report["changes"], report["reverts"], report["accuracy"]
    share = "-" if changes["share"] is None else f"{changes['share']:.0%}"
    rows: list[tuple[str, str]] = [("incidents", str(report["incidents"]))]
    for name, label in (("to_acknowledge", "time to acknowledge"), ("to_mitigate", "time to mitigate"),
                        ("to_resolve", "time to resolve")):
        figures = report["durations_seconds"][name]
        rows.append((label, f"median {human_duration(figures['median'])}, p90 {human_duration(figures['p90'])} "
                            f"({figures['count']} incident{'s' * (figures['count'] != 1)})"))
    rows.append(("caused by a change", f"{share}: {changes['confirmed']} confirmed by responders, "
                                       f"{changes['reverted']} by a confident suspect reverted, "
                                       f"{changes['unconfirmed']} unconfirmed (a confident suspect, no verdict, "
                                       "not reverted: not counted), "
                                       f"{changes['no_change']} no change, {changes['unknown']} unknown"))
    rows.append(("reverts", f"{reverts['opened']} opened, {reverts['merged']} merged "
                            f"({reverts.get('merged_by_backout', 0)} merged by Backout by itself)"))
    precision = accuracy.get("precision_at_1")
    recall = accuracy.get("recall_at_3")
    rows.append(("first suspect right", "no verdicts yet" if not accuracy.get("incidents") else
                 f"precision@1 {precision:.2f}, recall@3 {recall:.2f} over {accuracy['incidents']} judged"
                 if precision is not None and recall is not None else f"{accuracy['incidents']} judged"))
    if markdown:
        lines = [f"## Incidents in the last {since} ({scope})", "", "| | |", "|---|---|"]
        return "\n".join([*lines, *(f"| {label} | {value} |" for label, value in rows)])
    width = max(len(label) for label, _ in rows)
    return "\n".join([f"Incidents opened in the last {since} ({scope})",
                      *(f"  {label:<{width}}  {value}" for label, value in rows)])
