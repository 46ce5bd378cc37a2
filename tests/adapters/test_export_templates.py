"""The post-mortem draft: golden files for the Markdown and JSON exports, templates a team can
override, a sandbox that keeps alert text data, links only to http(s), and the chart with its
markers where the events are."""

from __future__ import annotations

import io
import json
import os
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from jinja2.exceptions import SecurityError

from bot.adapters.export.chart import figure, render_png
from bot.adapters.export.render import ExportRenderer
from bot.domain.chart import ChartData, Marker
from bot.services.export import ExportLinks
from tests.unit.test_export import exported

GOLDEN = Path(__file__).resolve().parents[1] / "golden"
UPDATE = os.environ.get("UPDATE_GOLDEN") == "1"  # UPDATE_GOLDEN=1 pytest ...: rewrite them, then review the diff


def golden(name: str, text: str) -> None:
    path = GOLDEN / name
    if UPDATE:
        path.write_text(text, encoding="utf-8")
    assert text == path.read_text(encoding="utf-8"), f"{name} changed: UPDATE_GOLDEN=1 and review the diff"


def test_the_markdown_and_json_exports_match_their_golden_files(clock: Any) -> None:
    doc = exported(clock)
    golden("INC-1.json", json.dumps(doc, indent=2, ensure_ascii=False) + "\n")
    golden("INC-1.md", ExportRenderer().markdown(doc, chart="INC-1.png"))


def test_the_verdict_is_its_own_paragraph_not_part_of_the_last_suspects_list(clock: Any) -> None:
    """The responders' verdict, after a suspect with reasons, renders as a paragraph of its own, not
    inside the suspect's list item (a Markdown parser reads it so)."""
    from markdown_it import MarkdownIt

    doc = exported(clock)
    sha = "9" * 40
    doc["suspects"]["items"] = [{
        "rank": 1, "repo": "gitops", "sha": sha, "subject": "bump", "author": "Dev", "score": 0.9,
        "reasons": ["applied 8m before the incident started"], "warnings": [], "code": [], "code_note": None,
        "pr_ref": None, "pr_url": None, "url": None, "excluded": None, "verdict": "culprit"}]
    doc["suspects"]["best"] = sha
    doc["verdict"] = {"culprit": sha, "no_change": False, "ruled_out": []}
    tokens = MarkdownIt().parse(ExportRenderer().markdown(doc))
    depth = 0
    for token in tokens:
        depth += token.nesting if token.type.startswith(("list_item", "bullet_list", "ordered_list")) else 0
        if token.type == "inline" and token.content.startswith("Responders' verdict"):
            assert depth == 0, "the verdict is inside a list"
            assert f"`{sha[:12]}`" in token.content
            break
    else:
        raise AssertionError("no verdict paragraph")


def test_alert_text_is_data_never_template_code(clock: Any) -> None:
    doc = exported(clock)
    doc["incident"]["title"] = "{{ 7*7 }} {% for x in range(3) %}x{% endfor %}"
    doc["alerts"][0]["annotations"]["summary"] = "{{ ''.__class__.__mro__ }}"
    unescaped = re.sub(r"\\(.)", r"\1", ExportRenderer().markdown(doc))  # as Markdown shows it
    for text in (unescaped, ExportRenderer().html(doc)):
        assert "{{ 7*7 }}" in text
        assert "{% for x in range(3) %}x{% endfor %}" in text
        assert "49" not in text.split("\n", 1)[0]
        assert "__mro__" in text
        assert "<class" not in text


def test_a_team_template_overrides_one_file_and_runs_sandboxed(tmp_path: Path, clock: Any) -> None:
    doc = exported(clock)
    (tmp_path / "postmortem.md").write_text("# Review of {{ doc.incident.ref }}\n{{ doc.incident.title | md }}\n")
    renderer = ExportRenderer(tmp_path)
    assert renderer.markdown(doc).startswith("# Review of INC-1\n")
    assert "<h2>What changed</h2>" in renderer.html(doc), "the other templates stay the shipped ones"
    (tmp_path / "postmortem.md").write_text("{{ doc.__class__.__init__.__globals__ }}\n")
    with pytest.raises(SecurityError):
        ExportRenderer(tmp_path).markdown(doc)


def test_links_are_http_only_and_commits_link_to_the_forge(clock: Any) -> None:
    links = ExportLinks(commit=lambda repo, sha: f"https://github.com/acme/{repo}/commit/{sha}",
                        branch=lambda repo, branch: f"https://github.com/acme/{repo}/tree/{branch}",
                        page=lambda n: f"https://backout.example/incidents/INC-{n}")
    doc = exported(clock, links=links)
    doc["alerts"][0]["generator_url"] = "javascript:alert(1)"
    doc["incident"]["runbook_url"] = "file:///etc/passwd"
    markdown, html = ExportRenderer().markdown(doc), ExportRenderer().html(doc)
    sha = doc["suspects"]["items"][0]["sha"] if doc["suspects"]["items"] else None
    if sha:
        assert f"(<https://github.com/acme/gitops/commit/{sha}>)" in markdown
        assert f'href="https://github.com/acme/gitops/commit/{sha}"' in html
    assert "(<https://backout.example/incidents/INC-1>)" in markdown
    for text in (markdown, html):
        assert "javascript:" not in text
        assert "file:///etc" not in text.replace("file:\u200b//", "")
        assert 'href="file:' not in text


def test_the_page_reads_on_paper_and_a_phone_and_times_do_not_wrap(clock: Any) -> None:
    html = ExportRenderer().html(exported(clock), chart="data:image/png;base64,AAAA")
    assert "@media print" in html
    assert "@media (max-width" in html
    assert 'img-src data:' in html
    assert '<img class="chart" src="data:image/png;base64,AAAA"' in html
    assert "2026-11-21\u00a022:20:22\u00a0UTC" in html  # no break inside a timestamp


def test_the_chart_marks_each_event_where_it_happened() -> None:
    start = datetime(2026, 11, 21, 22, 0, tzinfo=UTC)
    series = [(start + timedelta(minutes=m), 0.01 if m < 20 else 0.12) for m in range(0, 60)]
    markers = [Marker(start + timedelta(minutes=18), "change", "abc1234"),
               Marker(start + timedelta(minutes=21), "alert_firing", "HighErrorRate"),
               Marker(start + timedelta(minutes=35), "action", "revert abc1234 pushed"),
               Marker(start + timedelta(minutes=44), "recovery", "resolved")]
    data = ChartData("INC-1: checkout", start, start + timedelta(minutes=60), "sum(rate(x[5m]))", series, markers)
    fig = figure(data)
    [axes] = fig.axes
    lines = {line.get_gid(): line for line in axes.get_lines()}
    assert "metric" in lines
    for index, marker in enumerate(markers):
        line = lines[f"marker-{marker.kind}-{index}"]
        assert line.get_xdata()[0] == pytest.approx(marker.at.timestamp() / 86400.0)
    assert [t.get_text() for t in axes.texts] == [m.label for m in markers]

    from PIL import Image

    png = render_png(data)
    image = Image.open(io.BytesIO(png)).convert("RGB")
    assert image.size == (1200, 480)
    fig.canvas.draw()
    change = markers[0]
    x, _ = axes.transData.transform((change.at.timestamp() / 86400.0, 0.05))
    _, top = axes.transAxes.transform((0, 0.5))
    row = int(480 - top)
    red = [image.getpixel((round(x) + dx, row)) for dx in (-1, 0, 1)]
    assert any(r > 150 and g < 100 and b < 100 for r, g, b in red), red  # the change's red line is drawn there
    away = image.getpixel((round(x) - 40, row))
    assert not (away[0] > 150 and away[1] < 100 and away[2] < 100), away  # and not elsewhere


def test_the_chart_frames_the_incident_and_marks_an_older_suspect_at_the_edge(clock: Any) -> None:
    """A 13-minute incident with a suspect applied 5 hours before: the time axis spans the incident
    with a margin (not 5 hours), the suspect in frame is drawn in place and the old one is named
    at the left edge with how long before the incident it was applied."""
    from dataclasses import replace

    from bot.config import load_playbooks
    from bot.domain.changes import AppliedSource
    from bot.domain.suspects import Ranking, RankingStatus, Suspect
    from bot.services.chart import chart_data
    from tests.conftest import PLAYBOOKS

    view = exported(clock, view=True)
    started = view.incident.started_at

    def suspect(sha: str, before: timedelta) -> Suspect:
        return Suspect(repo="gitops", sha=sha * 40, subject="bump", author="Dev", applied_at=started - before,
                       applied_source=AppliedSource.COMMIT_TIME, score=0.5, reasons=())

    ranking = Ranking(status=RankingStatus.RANKED, reason="two", suspects=(
        suspect("a", timedelta(minutes=8)), suspect("b", timedelta(hours=5))))
    data = chart_data(replace(view, ranking=ranking), playbooks=load_playbooks(PLAYBOOKS), metrics=None,
                      now=clock())
    assert view.incident.resolved_at is not None
    assert data.start <= started - timedelta(minutes=8)
    assert view.incident.resolved_at < data.end
    assert data.end - data.start < timedelta(minutes=45)
    changes = {m.label: m.at for m in data.markers if m.kind == "change"}
    assert changes == {"aaaaaaa": started - timedelta(minutes=8), "bbbbbbb, 5h before": started - timedelta(hours=5)}

    fig = figure(data)
    [axes] = fig.axes
    lines = [line.get_gid() for line in axes.get_lines()]
    assert "marker-change-1" in lines
    assert "marker-change-0" not in lines, "the old suspect draws no line"
    [edge] = [t for t in axes.texts if t.get_gid() == "label-left-0"]
    assert edge.get_text() == "\u25c0 bbbbbbb, 5h before"
    assert edge.xy[0] == pytest.approx(data.start.timestamp() / 86400.0)


def test_chart_labels_never_print_over_each_other_or_the_legend() -> None:
    """Crowded events (one moment, near the right edge, beside an edge marker): no two labels'
    rendered boxes overlap, none reaches into the legend, and each stays inside the plot."""
    start = datetime(2026, 11, 21, 22, 0, tzinfo=UTC)
    end = start + timedelta(minutes=20)
    series = [(start + timedelta(minutes=m), 0.01 * m) for m in range(21)]
    at = start + timedelta(minutes=12)
    markers = [Marker(start - timedelta(hours=5), "change", "0123456, 5h before"),
               Marker(start + timedelta(seconds=20), "change", "abcdef0"),
               Marker(at, "alert_firing", "HighErrorRate x2"), Marker(at, "change", "1234567"),
               Marker(at + timedelta(seconds=5), "action", "revert 1234567 pushed"),
               Marker(end - timedelta(seconds=10), "alert_resolved", "HighErrorRate x2"),
               Marker(end - timedelta(seconds=10), "action", "revert 1234567 merged"),
               Marker(end - timedelta(seconds=5), "recovery", "resolved")]
    fig = figure(ChartData("INC-9: checkout", start, end, "sum(rate(x[5m]))", series, markers))
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    [axes] = fig.axes
    plot = axes.get_window_extent(renderer)
    labels = [t.get_window_extent(renderer) for t in axes.texts]
    legend = axes.get_legend().get_window_extent(renderer)
    assert len(labels) == len(markers)
    for index, box in enumerate(labels):
        assert plot.x0 <= box.x0 <= box.x1 <= plot.x1, index
        assert plot.y0 <= box.y0 <= box.y1 <= plot.y1, index
        assert not box.overlaps(legend), index
        for other in labels[index + 1:]:
            assert not box.overlaps(other), (index, box, other)


def test_without_prometheus_the_chart_still_shows_the_events(clock: Any) -> None:
    from bot.config import load_playbooks
    from bot.services.chart import chart_data
    from tests.conftest import PLAYBOOKS

    store_view = exported(clock, view=True)
    data = chart_data(store_view, playbooks=load_playbooks(PLAYBOOKS), metrics=None, now=clock())
    assert data.series == []
    assert "Prometheus is not configured" in data.note
    kinds = [m.kind for m in data.markers]
    assert "alert_firing" in kinds
    assert "recovery" in kinds
    assert [m.at for m in data.markers] == sorted(m.at for m in data.markers)
    assert render_png(data).startswith(b"\x89PNG")


def test_the_chart_queries_the_playbooks_key_query_over_the_window(clock: Any) -> None:
    """The playbook's key query over the incident's window; without a playbook, the alert rule's
    expression from its generatorURL; a query that fails is said on the chart, not raised."""
    from bot.config import load_playbooks
    from bot.services.chart import chart_data
    from tests.conftest import PLAYBOOKS
    from tests.fakes.metrics import FakeMetrics

    playbooks = load_playbooks(PLAYBOOKS)
    view = exported(clock, view=True)
    [checkout] = [p for p in playbooks if p.name == "checkout"]
    assert checkout.key_query
    metrics = FakeMetrics()
    started = view.incident.started_at
    metrics.history[" ".join(checkout.key_query.split())] = [
        (started + timedelta(minutes=m), 0.01 if m < 0 else 0.2) for m in range(-30, 30)]
    data = chart_data(view, playbooks=playbooks, metrics=metrics, now=clock())
    assert data.query == checkout.key_query
    assert data.series
    assert data.start <= started <= data.end
    assert all(data.start <= at <= data.end for at, _ in data.series)

    alone = chart_data(view, playbooks=[], metrics=metrics, now=clock())
    assert alone.query == "x"  # the captured alert's generatorURL says g0.expr=x
    metrics.down = True
    failed = chart_data(view, playbooks=playbooks, metrics=metrics, now=clock())
    assert failed.series == []
    assert "the query failed" in failed.note
