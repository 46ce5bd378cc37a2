"""The incident chart as a PNG (matplotlib, Agg: no display, no outside asset): the key metric as
a line, a vertical marker for each event, labelled; legible at 1200 px wide.

Drawn with matplotlib's object API (a `Figure` and its own `FigureCanvasAgg` per call), never
pyplot, whose state is global: so charts draw on any thread, or in worker processes, at once,
with no lock."""

from __future__ import annotations

import base64
import io
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
# Alert and query text is drawn as written: `$...$` would be mathtext (which raises on an unknown
# command) and TeX would run an outside program. Every text from data is drawn with these.
PLAIN: dict[str, Any] = {"parse_math": False, "usetex": False}


def figure(data: ChartData) -> Any:
    """The matplotlib Figure (the tests read its artists back)."""
    import matplotlib.dates as mdates
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(WIDTH, HEIGHT), dpi=DPI)
    FigureCanvasAgg(fig)  # a renderer to measure the labels with before they are placed
    axes = fig.add_subplot()
    note = None
    if data.series:
        axes.plot([_x(t) for t, _ in data.series], [v for _, v in data.series],
                  color="#1d2433", linewidth=1.6, label="key metric", gid="metric")
    else:
        axes.set_yticks([])
        note = axes.text(0.5, 0.5, safe(data.note or "no metric", 200), transform=axes.transAxes, ha="center",
                         va="center", color="#667", fontsize=11, **PLAIN)
    axes.set_xlim(_x(data.start), _x(data.end))
    seen: set[str] = set()
    labels: list[tuple[Any, str]] = []  # (text, where: line | left | right)
    for index, marker in enumerate(data.markers):
        colour, style, legend = STYLE.get(marker.kind, ("#555", "-", marker.kind))
        where = "left" if marker.at < data.start else "right" if marker.at > data.end else "line"
        if where == "line":
            axes.axvline(_x(marker.at), color=colour, linestyle=style, linewidth=1.4,
                         gid=f"marker-{marker.kind}-{index}", label=None if marker.kind in seen else legend)
            seen.add(marker.kind)
        at = {"line": _x(marker.at), "left": _x(data.start), "right": _x(data.end)}[where]
        # outside the frame: an arrow at the edge says the event is there, further on
        text = {"line": "{}", "left": "\u25c0 {}", "right": "{} \u25b6"}[where].format(safe(marker.label, 40))
        labels.append((axes.annotate(text, xy=(at, 1.0), xycoords=("data", "axes fraction"), xytext=(3, -4),
                                     textcoords="offset points", fontsize=8, color=colour, va="top",
                                     gid=f"label-{where}-{index}", bbox=LABEL_BOX, **PLAIN), where))
    axes.xaxis.set_major_formatter(mdates.DateFormatter("%H:%M\n%b %d", tz=data.start.tzinfo))  # type: ignore[no-untyped-call]
    axes.set_title(safe(data.title, 120), loc="left", fontsize=12, **PLAIN)
    if data.query:
        axes.set_xlabel(f"{safe(data.query, 140)}  (UTC)", fontsize=8, color="#445", **PLAIN)
    axes.grid(True, color="#eef")
    if seen or data.series:
        axes.legend(loc="upper left", bbox_to_anchor=(1.005, 1.0), fontsize=8, frameon=False)
    fig.tight_layout()
    lowest = _place(fig, axes, labels, obstacles=[note] if note is not None else [])
    if data.series and lowest < 1.0:  # room above the line for the labels, so they do not hide it
        bottom, top = axes.get_ylim()
        axes.set_ylim(bottom, bottom + (top - bottom) / max(lowest - 0.04, 0.3))
    return fig


LABEL_BOX = {"boxstyle": "square,pad=0.1", "facecolor": "white", "edgecolor": "none", "alpha": 0.85}
ROW = 12  # points between label rows


def _place(fig: Any, axes: Any, labels: list[tuple[Any, str]], *, obstacles: list[Any]) -> float:
    """Put each label in the first row where it overlaps no other label and stays inside the axes
    (so never over the legend, which is outside them): right of its line, or left where the right
    has no room. Returns the lowest label's bottom as a fraction of the axes' height."""
    renderer = fig.canvas.get_renderer()
    bounds = axes.get_window_extent(renderer)
    taken = [o.get_window_extent(renderer) for o in obstacles]
    lowest = 1.0
    for text, where in labels:
        for row in range(len(labels) + len(taken) + 1):
            box = _try(text, renderer, where=where, row=row, right_edge=bounds.x1)
            if not any(box.overlaps(other) for other in taken) or box.y0 < bounds.y0 + ROW:
                break
        taken.append(box)
        lowest = min(lowest, (box.y0 - bounds.y0) / bounds.height)
    return lowest


def _try(text: Any, renderer: Any, *, where: str, row: int, right_edge: float) -> Any:
    """The label's box with the label at `row`, right of its x, or left of it where it would cross
    the axes' right edge (or at the right edge's arrow)."""
    text.set_horizontalalignment("left")
    text.set_position((3, -4 - ROW * row))
    box = text.get_window_extent(renderer)
    if where == "right" or box.x1 > right_edge:
        text.set_horizontalalignment("right")
        text.set_position((-3, -4 - ROW * row))
        box = text.get_window_extent(renderer)
    return box.padded(1)


def _x(at: datetime) -> float:
    """matplotlib's date number (days since its default epoch, 1970-01-01 UTC)."""
    return at.timestamp() / 86400.0


def render_png(data: ChartData) -> bytes:
    out = io.BytesIO()
    figure(data).savefig(out, format="png")
    return out.getvalue()


def warm() -> None:
    """Import what drawing needs (a worker process does it once, before its first chart)."""
    import matplotlib.backends.backend_agg
    import matplotlib.dates
    import matplotlib.figure  # noqa: F401


def data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode()
