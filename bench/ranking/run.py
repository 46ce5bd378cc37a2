"""How often is the first suspect right and confident? Labelled scenarios through the real path.

Builds seeded GitOps histories (Flux and Argo CD layouts, each with a shared platform
repository) as real bare Git repositories, imports them with Backout's own mirror and change
log into SQLite, opens one incident per scenario through the ingestion service and ranks it
with the same call the server makes. Prints, per family and overall: precision@1 (of the
confident answers, the share whose first suspect is the culprit), top-1, recall@3, abstention
on incidents no change caused, wrong abstention on caused ones, and the ranking time.

Usage: python bench/ranking/run.py [--per-family N] [--seed S] [--json FILE]
"""

from __future__ import annotations

import argparse
import itertools
import json
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from bench.ranking.scenarios import FAMILIES, Scenario, Writer, generate
from bench.ranking.worlds import GITOPS, PLATFORM
from bot import bootstrap
from bot.adapters.console import RecordingNotifier
from bot.config import AlertmanagerSettings, GitSettings, LoggingSettings, RepoSettings, Settings, StorageSettings
from bot.domain.incidents import IncidentPolicy
from bot.domain.models import AlertStatus, Delivery, ReceivedAlert
from bot.domain.playbooks import Playbook
from bot.domain.suspects import Ranking
from bot.domain.verdicts import CALIBRATION_BUCKETS, bucket
from bot.services.changelog import refresh_changes
from bot.services.ingest import ingest_delivery
from bot.services.investigate import rank_incident

TARGETS = {"precision@1": (">=", 0.95), "precision of confidence": (">=", 0.97), "recall@3": (">=", 0.99),
           "abstention (no cause)": (">=", 0.9), "wrong abstention": ("<=", 0.03),
           "confident and wrong": ("<=", 0.03)}
NEW_FAMILIES = ("dense", "slow_burn", "replay", "replay_close",  # shaped like real histories (docs/ranking.md)
                "drift", "drift_corrected_before")  # out-of-band changes (bench/ranking/drift.py)


def build_repo(bare: Path, writer: Writer, repo: str) -> dict[int, str]:
    """Write the world's commits of one repository with git fast-import; marks -> shas."""
    subprocess.run(["git", "init", "--quiet", "--bare", "--initial-branch=main", str(bare)], check=True)
    marks_file = bare / "marks"
    proc = subprocess.Popen(["git", "fast-import", "--quiet", f"--export-marks={marks_file}"], cwd=bare,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    assert proc.stdin is not None
    assert proc.stdout is not None
    for commit in writer.commits:
        if commit.repo != repo:
            continue
        message = commit.subject
        if commit.reverts_mark is not None:
            proc.stdin.write(f"get-mark :{commit.reverts_mark}\n".encode())
            proc.stdin.flush()
            reverted = proc.stdout.readline().decode().strip()
            message += f"\n\nThis reverts commit {reverted}.\n"
        data = message.encode()
        out = [b"commit refs/heads/main\n", f"mark :{commit.mark}\n".encode(),
               f"committer Dev <dev@example.com> {int(commit.at.timestamp())} +0000\n".encode(),
               b"data %d\n%s\n" % (len(data), data)]
        for path, text in sorted(commit.files.items()):
            if text is None:
                out.append(f"D {path}\n".encode())
            else:
                body = text.encode()
                out.append(f"M 100644 inline {path}\n".encode() + b"data %d\n%s\n" % (len(body), body))
        proc.stdin.write(b"".join(out) + b"\n")
    proc.stdin.close()
    proc.stdout.close()
    if proc.wait() != 0:
        raise SystemExit(f"git fast-import failed for {bare}")
    marks = {}
    for line in marks_file.read_text().splitlines():
        mark, sha = line.split()
        marks[int(mark[1:])] = sha
    return marks


class KeyMetric:
    """The MetricsQuery port over generated series: each scenario's error ratio moves at its onset,
    ramping over five minutes as a `rate()[5m]` does, with noise."""

    def __init__(self, scenarios: list[Scenario]) -> None:
        self._by_query: dict[str, list[Scenario]] = defaultdict(list)
        for scenario in scenarios:
            self._by_query[key_query(scenario.world, scenario.service)].append(scenario)

    def value(self, query: str) -> float | None:
        return None

    def series(self, query: str, *, start: datetime, end: datetime, step: timedelta) -> list[tuple[datetime, float]]:
        scenario = next((s for s in self._by_query[query] if start <= s.started_at <= end), None)
        if scenario is None or scenario.onset is None:
            return []
        rng = random.Random(scenario.number)
        base = rng.uniform(0.002, 0.02)
        noise = base * rng.uniform(0.1, 0.3)
        high = base + rng.uniform(0.05, 0.3)
        points, at = [], start
        while at <= end:
            ramp = min(1.0, max(0.0, (at - scenario.onset) / timedelta(minutes=5)))
            points.append((at, max(0.0, base + (high - base) * ramp + rng.gauss(0, noise))))
            at += step
        return points


def metrics_mode(mode: str) -> bool:
    return mode == "with the key metric"


def key_query(world: str, service: str) -> str:
    return f'error_ratio{{world="{world}",service="{service}"}}'


def playbooks_for(writers: list[Writer]) -> list[Playbook]:
    found = []
    for writer in writers:
        world = writer.world
        for name in world.services:
            found.append(Playbook.model_validate({
                "name": f"{world.name}-{name}", "service": name, "match": {"world": world.name, "service": name},
                "repos": [
                    {"repo": f"{world.name}-{GITOPS}", "paths": world.own_paths(name),
                     "shared_paths": world.shared_paths()},
                    {"repo": f"{world.name}-{PLATFORM}", "paths": [], "shared_paths": world.platform_shared_paths()},
                ],
                "actions": {"on_open": "off"},
                "key_query": key_query(world.name, name), "verify": {"below": 0.05},
            }))
    return found


def evaluate(scenario: Scenario, ranking: Ranking) -> dict[str, Any]:
    shas = [s.sha for s in ranking.suspects]
    answer = getattr(ranking, "best", ranking.top)  # older rankings had no `best`: so the bench runs on them too
    best = answer.sha if answer else None
    first = next((s.sha for s in ranking.suspects if s.candidate(ranking.onset_at)), None)
    expected = FAMILIES[scenario.family]
    caused = scenario.culprit_sha is not None
    right = caused and first == scenario.culprit_sha  # first of the candidates, at the floor or not
    return {
        "family": scenario.family, "expected": expected, "confident": ranking.confident,
        "confidence": getattr(ranking, "confidence", 0.0),
        "right": right,
        # A confident answer is right only where one change is the answer: in a tie family it
        # should have said "check both", and with no cause it should have said nothing.
        "confident_right": ranking.confident and right and expected == "culprit",
        "top3": caused and scenario.culprit_sha in shas[:3],
        "top2": caused and scenario.culprit_sha in shas[:2],
        "reverted_proposed": bool(best and best in scenario.reverted_shas and ranking.confident),
        "number": scenario.number, "variant": scenario.variant, "reason": ranking.reason,
        "onset": str(getattr(ranking, "onset_at", None)),
        "true_onset": str(scenario.onset), "started": str(scenario.started_at),
        "top_reasons": list(ranking.suspects[0].reasons) if ranking.suspects else [],
    }


def summarize(rows: list[dict[str, Any]]) -> dict[str, float | int | None]:
    """The figures docs/ranking.md defines. precision@1: confident and right over incidents one
    change caused; precision of confidence: right over confident answers (a confident answer in a
    tie or no-cause family is wrong); confident-and-wrong: over every incident."""
    def share(hits: int, total: int) -> float | None:
        return hits / total if total else None
    confident = [r for r in rows if r["confident"]]
    caused = [r for r in rows if r["expected"] != "abstain"]
    expect_confident = [r for r in rows if r["expected"] == "culprit"]
    no_cause = [r for r in rows if r["expected"] == "abstain"]
    ties = [r for r in rows if r["expected"] == "tie"]
    return {
        "scenarios": len(rows),
        "precision@1": share(sum(r["confident_right"] for r in expect_confident), len(expect_confident)),
        "precision of confidence": share(sum(r["confident_right"] for r in confident), len(confident)),
        "confident and wrong": share(sum(not r["confident_right"] for r in confident), len(rows)),
        "top-1": share(sum(r["right"] for r in caused), len(caused)),
        "recall@3": share(sum(r["top3"] for r in caused), len(caused)),
        "abstention (no cause)": share(sum(not r["confident"] for r in no_cause), len(no_cause)),
        "wrong abstention": share(sum(not r["confident"] for r in expect_confident), len(expect_confident)),
        "tie or right": share(sum((r["top2"] and not r["confident"]) or (r["right"] and r["confident"])
                                  for r in ties), len(ties)),
        "reverted proposed": sum(r["reverted_proposed"] for r in rows),
    }


def calibration(rows: list[dict[str, Any]]) -> list[tuple[str, int, float | None, float | None]]:
    """Confidence buckets against the share right: (bucket, answers, share right, share confident).
    Right: the best suspect is the culprit of an incident one change caused."""
    table = []
    for low, high in itertools.pairwise(CALIBRATION_BUCKETS):
        inside = [r for r in rows if CALIBRATION_BUCKETS[bucket(r["confidence"])] == low]
        label = f"{low:.1f}-{high:.1f}"
        right = sum(r["right"] and r["expected"] == "culprit" for r in inside)
        table.append((label, len(inside), right / len(inside) if inside else None,
                      sum(r["confident"] for r in inside) / len(inside) if inside else None))
    return table


@dataclass
class Bench:
    """The generated histories built, imported and opened as incidents, ready to rank."""

    scenarios: list[Scenario]
    incidents: list[int]
    store: Any
    playbooks: list[Playbook]
    commits: int
    repos: int
    built: float  # seconds
    imported: float

    def rank(self, metrics: KeyMetric | None) -> tuple[list[dict[str, Any]], list[float]]:
        """Rank every scenario's incident as the server does; the rows and the seconds each took."""
        rows, timings = [], []
        for scenario, incident_id in zip(self.scenarios, self.incidents, strict=True):
            began = time.perf_counter()
            extra = {"metrics": metrics} if metrics is not None else {}  # so older code runs it too
            ranking = rank_incident(store=self.store, playbooks=self.playbooks, incident_id=incident_id,
                                    now=scenario.started_at + timedelta(minutes=3), **extra)
            timings.append(time.perf_counter() - began)
            rows.append(evaluate(scenario, ranking))
        return rows, timings


def open_incident(store: Any, scenario: Scenario, playbooks: list[Playbook], *, world: str | None = None) -> int:
    """The scenario's incident, opened through the ingestion service a minute after its alert starts."""
    alert = ReceivedAlert(
        fingerprint=f"{scenario.number:016x}", starts_at=scenario.started_at, ends_at=None,
        status=AlertStatus.FIRING, annotations={},
        labels={"alertname": f"Bench{scenario.number}", "service": scenario.service,
                "world": world or scenario.world})
    outcome = ingest_delivery(
        store=store, delivery=Delivery(group_key=f"g{scenario.number}", status=AlertStatus.FIRING, alerts=(alert,)),
        playbooks=playbooks, policy=IncidentPolicy(), now=scenario.started_at + timedelta(minutes=1))
    return outcome.opened[0].id or 0


def add_drift(store: Any, scenario: Scenario) -> None:
    """The scenario's out-of-band change, as Backout holds it when it ranks (3 minutes after the start);
    when no commit is the culprit, it is."""
    if getattr(scenario, "drift", None) is None:
        return
    from bench.ranking.drift import stored_drift

    drift = stored_drift(scenario.drift, number=scenario.number, world=scenario.world,  # type: ignore[arg-type]
                         service=scenario.service, started_at=scenario.started_at,
                         now=scenario.started_at + timedelta(minutes=3))
    stored = store.run(lambda tx: tx.drifts.add(drift)) if drift is not None else None
    if scenario.culprit is None and FAMILIES[scenario.family] == "culprit":
        scenario.culprit_sha = stored.handle if stored is not None else "drift-unknown"


@contextmanager
def bench(*, per_family: int, worlds: int, seed: int, replay: bool = True,
          per_repository: int = 60) -> Iterator[Bench]:
    """Generate, build as real bare repositories, import with Backout's mirror, open the incidents;
    with `replay`, the replay family's real histories beside them (bench/ranking/replay.py)."""
    end = (datetime.now(UTC) - timedelta(days=1)).replace(second=0, microsecond=0)
    started = time.perf_counter()
    writers, scenarios = generate(worlds=worlds, per_family=per_family, seed=seed, end=end)
    with tempfile.TemporaryDirectory(prefix="backout-ranking-") as tmp_name:
        tmp = Path(tmp_name)
        marks: dict[str, dict[int, str]] = {}
        repos = []
        for writer in writers:
            for repo in (GITOPS, PLATFORM):
                name = f"{writer.world.name}-{repo}"
                marks[name] = build_repo(tmp / f"{name}.git", writer, repo)
                repos.append(RepoSettings(name=name, url=str(tmp / f"{name}.git"), branch="main"))
        for scenario in scenarios:
            by_mark = {**marks[f"{scenario.world}-{GITOPS}"]}
            writer = next(w for w in writers if w.world.name == scenario.world)
            if scenario.culprit is not None:
                commit = next(c for c in writer.commits if c.mark == scenario.culprit)
                scenario.culprit_repo = f"{scenario.world}-{commit.repo}"
                scenario.culprit_sha = marks[scenario.culprit_repo][scenario.culprit]
            scenario.reverted_shas = [by_mark[m] for m in scenario.reverted]
        built = time.perf_counter() - started

        oldest = min(w.commits[0].at for w in writers)
        playbooks = playbooks_for(writers)
        commits = sum(len(w.commits) for w in writers)
        if replay:
            from bench.ranking import replay as replayed  # it builds on this module

            real = replayed.replay(tmp / "replay", end, seed=seed, per_repository=per_repository)
            print("\n".join(real.notes), file=sys.stderr)
            repos += real.repos
            playbooks += real.playbooks
            scenarios += real.scenarios
            oldest = min(oldest, real.oldest)
            commits += real.commits
        window = end - oldest + timedelta(days=2)
        settings = Settings(
            storage=StorageSettings(url=f"sqlite:///{tmp / 'bench.db'}"),
            alertmanager=AlertmanagerSettings(auth="none"), repos=repos,
            git=GitSettings(mirror_dir=tmp / "mirrors", import_window=window), playbooks_dir=tmp)
        app = bootstrap.build(settings, playbooks=playbooks, notifier=RecordingNotifier())
        store = app.ctx.store
        started = time.perf_counter()
        report = refresh_changes(store=store, git=app.ctx.git, repos=[r.name for r in repos], now=end,
                                 import_window=window)
        imported = time.perf_counter() - started
        assert not report.failed, report.failed

        incidents = [open_incident(store, scenario, playbooks) for scenario in scenarios]
        for scenario in scenarios:
            add_drift(store, scenario)
        try:
            yield Bench(scenarios=scenarios, incidents=incidents, store=store, playbooks=playbooks,
                        commits=commits, repos=len(repos), built=built,
                        imported=imported)
        finally:
            app.close()


def main() -> int:
    bootstrap.configure_logging(LoggingSettings(level="warning"))
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-family", type=int, default=60, help="scenarios per family")
    parser.add_argument("--worlds", type=int, default=4)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument("--git-only", action="store_true", help="skip the run with the key metric")
    args = parser.parse_args()

    modes: dict[str, list[dict[str, Any]]] = {}
    timings: dict[str, list[float]] = {}
    with bench(per_family=args.per_family, worlds=args.worlds, seed=args.seed) as built:
        runs = [("git only", None), ("with the key metric", KeyMetric(built.scenarios))][:1 if args.git_only else 2]
        for mode, metrics in runs:
            modes[mode], timings[mode] = built.rank(metrics)
    scenarios = built.scenarios
    print(f"{len(scenarios)} scenarios, {built.commits:,} commits in {built.repos} repositories "
          f"(built in {built.built:.1f}s, imported by Backout in {built.imported:.1f}s)")

    columns = ["scenarios", "precision@1", "precision of confidence", "confident and wrong", "top-1", "recall@3",
               "abstention (no cause)", "wrong abstention", "tie or right"]
    met = True
    report: dict[str, Any] = {}
    for mode, rows in modes.items():
        by_family: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for row in rows:
            by_family[row["family"]].append(row)
        figures = {family: summarize(by_family[family]) for family in FAMILIES}
        figures["overall"] = summarize(rows)
        ms = sorted(t * 1000 for t in timings[mode])
        report[mode] = {"figures": figures, "ranking_ms_p50": statistics.median(ms), "scenarios": rows}
        print(f"\n== {mode} ==")
        labels = ["scenarios", "prec@1", "prec-conf", "conf-wrong", "top-1", "recall@3", "abstain(no)",
                  "wrong-abst", "tie|right"]
        print(f"{'family':<20}" + "".join(f"{label:>12}" for label in labels))
        for family, figure in figures.items():
            cells = []
            for column in columns:
                value = figure[column]
                cells.append(f"{'-':>12}" if value is None else
                             f"{value:>12}" if isinstance(value, int) else f"{value:>12.3f}")
            print(f"{family:<20}" + "".join(cells))
        print(f"ranking time per incident: p50 {statistics.median(ms):.1f} ms, p95 {ms[int(len(ms) * 0.95)]:.1f} ms, "
              f"max {ms[-1]:.1f} ms")
        print(f"reverted changes proposed as confident first suspects: {figures['overall']['reverted proposed']}")
        print("calibration (confidence bucket: answers, share right, share confident):")
        for label, count, right, sure in calibration(rows):
            if count:
                print(f"  {label}: {count:>5} {right:>7.3f} {sure:>7.3f}")
        checks = [(f"{name} {op} {target}", figures["overall"][name], op, target)
                  for name, (op, target) in TARGETS.items()]
        checks += [(f"{family}: precision of confidence >= 0.97", figures[family]["precision of confidence"],
                    ">=", 0.97) for family in FAMILIES if figures[family]["precision of confidence"] is not None]
        checks += [(f"{family}: precision@1 >= 0.95", figures[family]["precision@1"], ">=", 0.95)
                   for family in NEW_FAMILIES if figures[family]["precision@1"] is not None]
        checks += [("dense: wrong abstention <= 0.05", figures["dense"]["wrong abstention"], "<=", 0.05),
                   ("ranking p50 ms <= 10", statistics.median(ms), "<=", 10.0)]
        for name, value, op, target in checks:
            ok = value is not None and (value >= target if op == ">=" else value <= target)
            if not metrics_mode(mode):
                met &= ok  # the exit code speaks for git alone: the targets hold without Prometheus
            print(f"target {name}: {'-' if value is None else f'{value:.3f}'} {'met' if ok else 'NOT MET'}")
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
