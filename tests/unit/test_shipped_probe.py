"""The shipped checkout probe on plain data: counters scraped every 15s, the probe's query computed
as Prometheus computes a ratio of two rates, and the probe stepped at its own interval."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest

from bot.config import load_playbooks
from bot.domain.durations import parse_duration
from bot.domain.playbooks import Probe
from bot.domain.probes import ProbeChange, ProbeState, step
from tests.conftest import PLAYBOOKS

T0 = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
SCRAPE = timedelta(seconds=15)
ONSET, RECOVERY = timedelta(minutes=10), timedelta(minutes=25)
[CHECKOUT] = [book for book in load_playbooks(PLAYBOOKS) if book.name == "checkout"]
[PROBE] = CHECKOUT.probes


def window(query: str) -> timedelta:
    """The one range every selector of the query takes (`[1m]`)."""
    [only] = set(re.findall(r"\[(\w+)\]", query))
    return parse_duration(only)


def error_ratio(elapsed: timedelta, *, bad: float, span: timedelta) -> float | None:
    """sum(rate(errors[span])) / sum(rate(requests[span])) at `elapsed`, from counters scraped every
    15s at 20 requests a second, 1% failing outside the incident and `bad` of them during it;
    rate()'s extrapolation cancels in the ratio, which is the ratio of the two increases."""
    def counters(at: timedelta) -> tuple[float, float]:
        seconds = at.total_seconds()
        bad_seconds = max(0.0, min(seconds, RECOVERY.total_seconds()) - ONSET.total_seconds())
        return 20 * (0.01 * seconds + (bad - 0.01) * bad_seconds), 20 * seconds

    samples = [SCRAPE * n for n in range(int(elapsed / SCRAPE), -1, -1) if elapsed - SCRAPE * n < span]
    if len(samples) < 2:
        return None  # rate() needs two samples in its window
    (errors_new, total_new), (errors_old, total_old) = counters(samples[0]), counters(samples[-1])
    return (errors_new - errors_old) / (total_new - total_old)


def run(probe: Probe, *, bad: float, phase: timedelta) -> dict[ProbeChange, timedelta]:
    """When the probe started and stopped firing, from the start of the data."""
    span, state, elapsed = window(probe.query), ProbeState(key="k"), phase
    seen: dict[ProbeChange, timedelta] = {}
    while elapsed < RECOVERY + timedelta(minutes=10):
        state, change = step(state, probe, value=error_ratio(elapsed, bad=bad, span=span), now=T0 + elapsed)
        seen.setdefault(change, elapsed)
        elapsed += probe.every
    return seen


@pytest.mark.parametrize("bad", [0.1, 0.3, 1.0])
def test_the_shipped_probe_sees_a_recovery_within_about_a_minute(bad: float) -> None:
    """Whatever the error ratio and however evaluations fall between scrapes, the probe stops
    firing within a minute of the errors stopping (the `[5m]` window took up to 5 minutes)."""
    for phase in (timedelta(seconds=s) for s in range(0, int(PROBE.every.total_seconds()), 3)):
        seen = run(PROBE, bad=bad, phase=phase)
        assert seen[ProbeChange.STOPPED] - RECOVERY <= timedelta(minutes=1), (bad, phase)


@pytest.mark.parametrize("bad", [0.1, 1.0])
def test_the_shipped_probe_still_waits_its_for_before_firing(bad: float) -> None:
    """A shorter window does not make the probe hastier: it fires after `for`, within a minute more."""
    seen = run(PROBE, bad=bad, phase=timedelta(0))
    assert PROBE.for_ <= seen[ProbeChange.STARTED] - ONSET <= PROBE.for_ + timedelta(minutes=1)


def test_a_five_minute_window_keeps_the_incident_open_for_minutes() -> None:
    """Why the window is short: the same probe over `[5m]` still fires minutes after the recovery."""
    old = PROBE.model_copy(update={"query": re.sub(r"\[\w+\]", "[5m]", PROBE.query)})
    assert window(old.query) == timedelta(minutes=5)
    assert run(old, bad=1.0, phase=timedelta(0))[ProbeChange.STOPPED] - RECOVERY > timedelta(minutes=4)
