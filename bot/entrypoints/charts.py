"""The incident chart and page for the HTTP API, the CLI and the demo: the data from the services,
the PNG from the export adapter. Over HTTP both are rendered off the event loop and kept per
incident version (`renderings`)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from functools import partial
from typing import Any

from bot.adapters.export.chart import data_uri, render_png
from bot.domain.playbooks import Playbook, playbook_named
from bot.domain.ports import MetricsQuery
from bot.entrypoints.context import AppContext
from bot.entrypoints.renderings import slot
from bot.services.chart import chart_data
from bot.services.export import build_export
from bot.services.good import last_known_good
from bot.services.incidents import IncidentView, get_incident
from bot.services.presenters import good_dict


def incident_chart(ctx: AppContext, view: IncidentView) -> bytes:
    """The PNG: the key metric from Prometheus when there is one, the events on the time axis."""
    return chart_png(view, playbooks=ctx.playbooks, metrics=ctx.metrics_query, now=ctx.clock())


def chart_png(view: IncidentView, *, playbooks: Sequence[Playbook], metrics: MetricsQuery | None,
              now: datetime) -> bytes:
    return render_png(chart_data(view, playbooks=playbooks, metrics=metrics, now=now))


def chart_uri(png: bytes) -> str:
    """The PNG as a data: URI, to embed in the page (no outside asset)."""
    return data_uri(png)


def review_files(ctx: AppContext, view: IncidentView, chart_name: str) -> tuple[bytes, bytes]:
    """The post-mortem draft (naming its chart `chart_name`) and the chart, for the Slack thread
    and the post-mortem pull request."""
    document = build_export(view, generated_at=ctx.clock(), links=ctx.export_links())
    return ctx.export.markdown(document, chart=chart_name).encode(), incident_chart(ctx, view)


async def read_view(ctx: AppContext, number: int) -> tuple[IncidentView, str]:
    """The incident and its version (a digest of everything it shows), both on a page thread:
    neither the database nor the digest on the event loop. NotFound if there is none."""
    def read() -> tuple[IncidentView, str]:
        view = get_incident(store=ctx.store, incident_id=number)
        return view, view.version()

    return await ctx.renderings.run(read)


async def page_chart(ctx: AppContext, view: IncidentView, version: str) -> bytes:
    """The chart of this version of the incident, drawn once per time slot."""
    at = slot(view, ctx.clock())

    async def make() -> bytes:
        data = await ctx.renderings.run(partial(chart_data, view, playbooks=ctx.playbooks, metrics=ctx.metrics_query,
                                                now=at))
        return await ctx.chart_workers.render(data)

    return await ctx.renderings.get(("chart", view.incident.id, version, at), make)


async def page_html(ctx: AppContext, view: IncidentView, version: str) -> str:
    """The incident's review page, with its chart, rendered once per version and time slot."""
    at = slot(view, ctx.clock())

    async def make() -> str:
        png = await page_chart(ctx, view, version)

        def render() -> str:
            document = build_export(view, generated_at=at, links=ctx.export_links())
            document["last_good"] = last_good_rows(ctx, view.incident.playbook, now=at)
            return ctx.export.html(document, chart=chart_uri(png))

        return await ctx.renderings.run(render)

    return await ctx.renderings.get(("page", view.incident.id, version, at), make)


def last_good_rows(ctx: AppContext, playbook_name: str | None, *, now: datetime) -> list[dict[str, Any]]:
    """The service's last known good per GitOps repository, with links, for the page (not the
    JSON export: it is the service's state now, not the incident's record)."""
    playbook = playbook_named(ctx.playbooks, playbook_name)
    if playbook is None:
        return []
    links = ctx.export_links()
    answers = [good_dict(a) for a in last_known_good(store=ctx.store, playbook=playbook, now=now)]
    for answer in answers:
        if answer["good"] is not None:
            answer["good"]["url"] = links.commit(answer["repo"], answer["good"]["sha"])
    return answers
