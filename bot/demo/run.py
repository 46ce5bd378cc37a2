"""`backout demo`: the whole flow on embedded defaults (SQLite, a local Git repository, the
console instead of Slack), fed Alertmanager deliveries over HTTP."""

from __future__ import annotations

import json
import math
import secrets
import shutil
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx

from bot import bootstrap
from bot.adapters.console import ConsoleNotifier
from bot.config import (
    AlertmanagerSettings,
    ApiSettings,
    GitSettings,
    LoggingSettings,
    RepoSettings,
    ServerSettings,
    Settings,
    StorageSettings,
    load_playbooks,
)
from bot.demo.replay import post_payloads
from bot.demo.repo import DemoRepo
from bot.domain.models import Actor, IncidentStatus
from bot.entrypoints.charts import chart_png, chart_uri
from bot.entrypoints.serving import serve_in_thread
from bot.services import act
from bot.services import incidents as incident_service
from bot.services.export import build_export
from bot.services.text import render_incident

Echo = Callable[[str], None]


def deliveries(started: datetime, resolved: datetime) -> list[tuple[str, bytes]]:
    """The captured checkout deliveries (firing, then resolved), moved to the demo's clock."""
    folder = resources.files("bot.demo.data") / "alertmanager"
    firing = json.loads((folder / "01-higherrorrate-firing-2alerts.json").read_text())
    for alert in firing["alerts"]:  # a believable alert (the captured one carries the tests' hostile text)
        alert["startsAt"] = started.isoformat()
        alert["annotations"] = {
            "summary": "More than 5% of checkout requests fail",
            "description": f"{alert['labels'].get('instance', 'checkout')} answers 5xx to 12% of requests "
                           "over the last 5 minutes",
            "runbook_url": "https://runbooks.example.com/checkout/high-error-rate",
        }
        alert["generatorURL"] = ("http://prometheus.example.com:9090/graph?g0.expr=" + quote(
            'sum(rate(http_requests_total{service="checkout",code=~"5.."}[5m])) '
            '/ sum(rate(http_requests_total{service="checkout"}[5m])) > 0.05'))
    done = json.loads(json.dumps(firing))
    done["status"] = "resolved"
    for alert in done["alerts"]:
        alert["status"], alert["endsAt"] = "resolved", resolved.isoformat()
    return [("firing", json.dumps(firing).encode()), ("resolved", json.dumps(done).encode())]


class ScenarioMetrics:
    """The key metric as the demo's scenario has it, for its chart (the demo runs no Prometheus):
    checkout's 5xx ratio near 0.4% until the bad change is applied, climbing as the short database
    pool timeout bites to 12% when the alert fires (above 5% for its last few minutes), back to
    normal within half a minute of the revert."""

    BASELINE, PEAK, RECOVERY = 0.004, 0.12, timedelta(seconds=30)

    def __init__(self, *, applied: datetime, started: datetime, reverted: datetime) -> None:
        self._applied, self._started, self._reverted = applied, started, reverted

    def value(self, query: str) -> float | None:
        return self._at(datetime.now(UTC))

    def series(self, query: str, *, start: datetime, end: datetime, step: timedelta) -> list[tuple[datetime, float]]:
        count = int((end - start) / step) + 1
        return [(start + step * n, self._at(start + step * n)) for n in range(count)]

    def _at(self, at: datetime) -> float:
        wiggle = 0.0015 * math.sin(at.timestamp() / 41) * math.cos(at.timestamp() / 17)  # reads as measured
        climb = (at - self._applied) / max(self._started - self._applied, timedelta(seconds=1))
        failing = self.BASELINE + (self.PEAK - self.BASELINE) * min(max(climb, 0.0), 1.0) ** 3
        if at <= self._reverted:
            return failing + wiggle
        back = min((at - self._reverted) / self.RECOVERY, 1.0)
        return failing * (1 - back) + self.BASELINE * back + wiggle


def wait_for_suspects(client: httpx.Client, ref: str, timeout: float = 30) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        answer: dict[str, Any] = client.get(f"/api/incidents/{ref}/suspects").json()
        if answer.get("status") == "ranked":
            return answer
        time.sleep(0.05)
    raise RuntimeError(f"{ref} was not ranked within {timeout:.0f}s")


def run_demo(*, out: Path, echo: Echo) -> int:
    """Run the demo; return the exit code."""
    began = time.monotonic()
    bootstrap.configure_logging(LoggingSettings(level="warning"))
    out = out.resolve()
    for stale in ("backout-demo.db", "gitops.git", "gitops-work", "mirrors"):
        path = out / stale
        shutil.rmtree(path, ignore_errors=True) if path.is_dir() else path.unlink(missing_ok=True)
    out.mkdir(parents=True, exist_ok=True)

    now = datetime.now(UTC).replace(microsecond=0)
    started = now - timedelta(minutes=1)
    repo = DemoRepo(out)
    bad = repo.build(incident_at=started)
    echo(f"1. A GitOps repository with three days of history for 4 services: {repo.bare}")
    echo(f"   (the bad change, {bad[:7]}, went to checkout 14 minutes before the alert)\n")

    data = resources.files("bot.demo.data")
    read_token = secrets.token_urlsafe(24)  # reads need a token, as in production
    with resources.as_file(data / "playbooks") as playbooks_dir:
        settings = Settings(
            server=ServerSettings(port=0),
            storage=StorageSettings(url=f"sqlite:///{out / 'backout-demo.db'}"),
            alertmanager=AlertmanagerSettings(auth="bearer", bearer_token=secrets.token_urlsafe(24)),
            api=ApiSettings(tokens=[read_token]),
            playbooks_dir=playbooks_dir,
            repos=[RepoSettings(name="gitops", url=str(repo.bare), branch="main")],
            git=GitSettings(mirror_dir=out / "mirrors"),
        )
        playbooks = load_playbooks(playbooks_dir, known_repos=["gitops"])
    app = bootstrap.build(settings, playbooks=playbooks, notifier=ConsoleNotifier())
    store = app.ctx.store
    firing, _ = deliveries(started, now)
    try:
        with serve_in_thread(app.http) as base_url, httpx.Client(
                base_url=base_url, timeout=10, headers={"Authorization": f"Bearer {read_token}"}) as client:
            echo(f"2. Backout serves on {base_url} (SQLite, console instead of Slack).")
            echo("   Alertmanager delivers HighErrorRate for checkout over HTTP:")
            for posted in post_payloads(base_url=base_url, settings=settings.alertmanager,
                                        payloads=[firing]):
                echo(f"   POST /webhooks/alertmanager -> {posted.status} {posted.body}\n")
            answer = wait_for_suspects(client, "INC-1")
            echo("3. What changed? GET /api/incidents/INC-1/suspects answers:")
            echo(f"   {answer['reason']}")
            for number, suspect in enumerate(answer["suspects"][:3], start=1):
                echo(f"   {number}. {suspect['sha'][:7]} score {suspect['score']:.2f}  {suspect['subject']}")
            if not answer["suspects"] or answer["suspects"][0]["sha"] != bad:
                echo("demo failed: the bad change was not ranked first")
                return 1

            echo("\n4. The on-call engineer rolls back: backout rollback INC-1 --yes")
            change = act.choose_commit(store=store, playbook=playbooks[0], incident_id=1, sha=None)
            result = act.rollback(store=store, git=app.ctx.git, notifier=app.ctx.notifier, incident_id=1,
                                  change=change, actor=Actor.USER, actor_id="demo:on-call",
                                  now=datetime.now(UTC))  # after the incident opened, as in life
            echo(f"   {result.message}\n")

            echo("5. The revert is applied and the alerts resolve; Alertmanager says so:")
            _, resolved = deliveries(started, datetime.now(UTC))  # resolved now, not ahead of the clock
            for posted in post_payloads(base_url=base_url, settings=settings.alertmanager,
                                        payloads=[resolved]):
                echo(f"   POST /webhooks/alertmanager -> {posted.status}\n")
            app.ctx.work_executor.submit(lambda: None).result(timeout=30)  # let the follow-up finish
        incident_service.add_note(store=store, incident_id=1, actor=Actor.USER, actor_id="demo:on-call",
                                  now=datetime.now(UTC),
                                  text=f"Confirmed: {bad[:7]} set DB_POOL_TIMEOUT_MS to 50; reverted.")
        view = incident_service.get_incident(store=store, incident_id=1)
        if view.incident.status is not IncidentStatus.RESOLVED:
            echo(f"demo failed: INC-1 is {view.incident.status.value}, not resolved")
            return 1
        echo(render_incident(view) + "\n")
        document = build_export(view, generated_at=datetime.now(UTC), links=app.ctx.export_links())
        applied = next(s.applied_at for s in view.ranking.suspects if s.sha == bad)
        metric = ScenarioMetrics(applied=applied, started=view.incident.started_at,
                                 reverted=result.action.created_at)
        png = chart_png(view, playbooks=app.ctx.playbooks, metrics=metric, now=app.ctx.clock())
        (out / "INC-1.png").write_bytes(png)
        (out / "INC-1.md").write_text(app.ctx.export.markdown(document, chart="INC-1.png"), encoding="utf-8")
        (out / "INC-1.json").write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
        (out / "INC-1.html").write_text(app.ctx.export.html(document, chart=chart_uri(png)), encoding="utf-8")
    finally:
        app.close()
    echo(f"6. The post-mortem draft: {out / 'INC-1.md'} and the page {out / 'INC-1.html'}, with the chart "
         f"{out / 'INC-1.png'} (the bad change and the revert marked on the scenario's error ratio: the demo "
         f"runs no Prometheus) and the data {out / 'INC-1.json'}")
    echo(f"   The revert branch is on the demo remote: git -C {repo.bare} log -1 {result.action.branch}")
    command = sys.argv[0] if Path(sys.argv[0]).name == "backout" else "backout"
    echo(f"\nDone in {time.monotonic() - began:.1f}s. Look again with: "
         f"BACKOUT_STORAGE__URL=sqlite:///{out / 'backout-demo.db'} {command} incidents show INC-1")
    return 0
