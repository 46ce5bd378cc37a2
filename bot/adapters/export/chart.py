"""The incident chart as a PNG (matplotlib, Agg: no display, no outside asset): the key metric as
a line, a vertical marker for each event, labelled; legible at 1200 px wide."""

from __future__ import annotations

import base64
import io
import threading
from datetime import datetime
from typing import Any

from bot.domain.chart import ChartData
from bot.domain.text import safe

STYLE = {  # colour, line style, legend
    "change": ("#c0392b", "-", "change applied"),
    "alert_firing": ("#e67e22", "--", "alert firing"),
    "alert_resolved": ("#7f8c8d", ":", "alert resolved"),
    "action": ("#2471a3", "-.", "revert / branch"),
    "recovery": ("#1e8449", "-", "resolved"),
}
WIDTH, HEIGHT, DPI = 12.0, 4.8, 100  # 1200 x 480 px
_LOCK = threading.Lock()  # pyplot's state is global; one figure at a time


def figure(data: ChartData) -> Any:
    """The matplotlib Figure (the tests read its artists back)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.dates as mdates
    from matplotlib.figure import Figure

    fig = Figure(figsize=(WIDTH, HEIGHT), dpi=DPI)
    axes = fig.add_subplot()
    if data.series:
        axes.plot([_x(t) for t, _ in data.series], [v for _, v in data.series],
                  color="#1d2433", linewidth=1.6, label="key metric", gid="metric")
    else:
        axes.set_yticks([])
        axes.text(0.5, 0.5, safe(data.note or "no metric", 200), transform=axes.transAxes, ha="center",
                  va="center", color="#667", fontsize=11)
    axes.set_xlim(_x(data.start), _x(data.end))
    seen: set[str] = set()
    for index, marker in enumerate(data.markers):
        colour, style, legend = STYLE.get(marker.kind, ("#555", "-", marker.kind))
        at = _x(marker.at)
        axes.axvline(at, color=colour, linestyle=style, linewidth=1.4, gid=f"marker-{marker.kind}-{index}",
                     label=None if marker.kind in seen else legend)
        seen.add(marker.kind)
        axes.annotate(safe(marker.label, 30), xy=(at, 1.0), xycoords=("data", "axes fraction"),
                      xytext=(3, -4 - 12 * (index % 4)), textcoords="offset points", fontsize=8, color=colour,
                      va="top", rotation=0)
    axes.xaxis.set_major_formatter(mdates.DateFormatter("%H:%M\n%b %d", tz=data.start.tzinfo))  # type: ignore[no-untyped-call]
    axes.set_title(safe(data.title, 120), loc="left", fontsize=12)
    if data.query:
        axes.set_xlabel(f"{safe(data.query, 140)}  (UTC)", fontsize=8, color="#445")
    axes.grid(True, color="#eef")
    if seen or data.series:
        axes.legend(loc="upper left", bbox_to_anchor=(1.005, 1.0), fontsize=8, frameon=False)
    fig.tight_layout()
    return fig


def _x(at: datetime) -> float:
    """matplotlib's date number (days since its default epoch, 1970-01-01 UTC)."""
    return at.timestamp() / 86400.0


def render_png(data: ChartData) -> bytes:
    with _LOCK:
        fig = figure(data)
        out = io.BytesIO()
        fig.savefig(out, format="png")
    return out.getvalue()


def data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode()
