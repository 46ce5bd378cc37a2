"""When did the key metric change level? Change-point detection (PELT) on its recent history.

An alert's `startsAt` lags the real start of a problem by the rule's `for` and Alertmanager's
`group_wait`; the metric itself shows when things went wrong. Ranking measures timing from
that onset, and a change applied after it cannot have started it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import datetime, timedelta

import numpy as np

from bot.domain.errors import BackoutError
from bot.domain.playbooks import Playbook
from bot.domain.ports import MetricsQuery

SEARCH = timedelta(hours=2)  # how far before the incident's start the onset is looked for
AFTER = timedelta(minutes=2)  # and after it (the alert can fire before the next scrape)
MOST_POINTS = 600
MIN_SHIFT_SIGMAS = 4.0  # a level shift smaller than this many noise deviations is noise
EDGE_SIGMAS = 3.0  # a point this far from the old level has left it


def find_onset(*, metrics: MetricsQuery, playbook: Playbook | None, started_at: datetime,
               lookback: timedelta) -> datetime | None:
    """The onset of the playbook's key query before the incident started, or None when there is
    no key query, no data, no clear level shift, or Prometheus cannot answer (ranking goes on
    without it)."""
    if playbook is None or playbook.key_query is None:
        return None
    span = min(SEARCH, lookback)
    start, end = started_at - span, started_at + AFTER
    step = max(timedelta(seconds=15), (end - start) / MOST_POINTS)
    try:
        points = metrics.series(playbook.key_query, start=start, end=end, step=step)
    except BackoutError:
        return None
    return level_shift(points, before=started_at + AFTER, worse=playbook.worse_direction())


def level_shift(points: Sequence[tuple[datetime, float]], *, before: datetime, worse: int | None) -> datetime | None:
    """The time of the largest level shift (in the `worse` direction, +1 up or -1 down, when
    known) that is clearly above the noise, among the change points PELT finds."""
    clean = [(at, value) for at, value in points if math.isfinite(value) and at <= before]
    if len(clean) < 12:
        return None
    values = np.array([value for _, value in clean], dtype=float)
    sigma = _noise(values)
    if sigma == 0.0:
        sigma = max(float(np.abs(values).max()) * 1e-6, 1e-12)
    penalty = 2.0 * sigma**2 * math.log(len(values)) * 4
    # PELT with the linear kernel (the l2 cost, in ruptures' C implementation): exact and fast.
    # Imported here: ruptures brings scipy, about 60 MB a replica that never ranks with a metric.
    import ruptures

    breaks = ruptures.KernelCPD(kernel="linear", min_size=3).fit(values).predict(pen=penalty)
    bounds = [0, *(int(b) for b in breaks)]
    means = [float(values[bounds[k]:bounds[k + 1]].mean()) for k in range(len(bounds) - 1)]
    best: tuple[float, int] | None = None  # |shift|, segment index after the break
    for k in range(1, len(means)):
        shift = means[k] - means[k - 1]
        if worse is not None and shift * worse <= 0:
            continue
        if abs(shift) < MIN_SHIFT_SIGMAS * sigma:
            continue
        if best is None or abs(shift) > best[0]:
            best = (abs(shift), k)
    if best is None:
        return None
    k = best[1]
    direction = 1.0 if means[k] > means[k - 1] else -1.0
    # A rate() window turns a step into a ramp, which PELT may cut into several segments:
    # go back over the segments that lead up to the shift to the old level, then to the first
    # point that left it, which is when the problem began.
    base = k - 1
    while base >= 1 and (means[base] - means[base - 1]) * direction > EDGE_SIGMAS * sigma:
        base -= 1
    level = means[base]
    index = bounds[base + 1]
    while index - 1 > bounds[base] and (values[index - 1] - level) * direction > EDGE_SIGMAS * sigma:
        index -= 1
    # The shift happened between the last point of the old level and the first of the new.
    return clean[index - 1][0] + (clean[index][0] - clean[index - 1][0]) / 2


def _noise(values: np.ndarray) -> float:
    """The noise's standard deviation, robust to level shifts: from the median absolute first difference."""
    diffs = np.diff(values)
    return float(np.median(np.abs(diffs - np.median(diffs))) * 1.4826 / math.sqrt(2))
