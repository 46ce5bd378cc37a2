"""The key metric's onset: change points found by PELT, clear of the noise, in the worse direction."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

from bot.domain.playbooks import Playbook
from bot.services.onset import find_onset, level_shift
from tests.fakes.metrics import FakeMetrics

START = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
STEP = timedelta(seconds=15)


def series(shift_at: datetime | None, *, base: float = 0.01, to: float = 0.2, noise: float = 0.002,
           ramp: int = 1, seed: int = 1) -> list[tuple[datetime, float]]:
    """Two hours at 15 s steps up to the start; a level shift (over `ramp` steps) at `shift_at`."""
    rng = random.Random(seed)  # noqa: S311 - test data, not secrets
    points = []
    at = START - timedelta(hours=2)
    while at <= START:
        level = base
        if shift_at is not None and at >= shift_at:
            done = min(1.0, ((at - shift_at) / STEP + 1) / ramp)
            level = base + (to - base) * done
        points.append((at, level + rng.gauss(0, noise)))
        at += STEP
    return points


def test_a_clear_step_is_found_within_a_step() -> None:
    """The onset is placed between the last old and the first new value."""
    shift = START - timedelta(minutes=17)
    found = level_shift(series(shift), before=START, worse=1)
    assert found is not None
    assert abs((found - shift).total_seconds()) <= 15


def test_a_ramp_like_a_rate_window_is_found_where_it_begins() -> None:
    """rate()[5m] turns a step into a five-minute ramp: the onset is where the ramp leaves the old level."""
    shift = START - timedelta(minutes=30)
    found = level_shift(series(shift, ramp=20), before=START, worse=1)
    assert found is not None
    assert shift - STEP <= found <= shift + timedelta(seconds=45)


def test_noise_alone_and_a_shift_the_wrong_way_are_no_onset() -> None:
    """No level shift clearly above the noise, or one toward health, gives None."""
    assert level_shift(series(None, noise=0.005), before=START, worse=1) is None
    assert level_shift(series(START - timedelta(minutes=20), to=0.001), before=START, worse=1) is None
    assert level_shift(series(START - timedelta(minutes=20), to=0.001), before=START, worse=-1) is not None
    assert level_shift(series(START)[:5], before=START, worse=None) is None


def test_find_onset_asks_the_key_query_and_survives_prometheus_errors() -> None:
    """The playbook's key query over the search span; an error or no key query is no onset."""
    playbook = Playbook.model_validate({
        "name": "checkout", "service": "checkout", "match": {"service": "checkout"},
        "key_query": "error_ratio", "verify": {"below": 0.05}})
    metrics = FakeMetrics()
    shift = START - timedelta(minutes=12)
    metrics.history["error_ratio"] = series(shift)
    found = find_onset(metrics=metrics, playbook=playbook, started_at=START, lookback=timedelta(hours=6))
    assert found is not None
    assert abs((found - shift).total_seconds()) <= 15
    assert playbook.worse_direction() == 1
    metrics.down = True
    assert find_onset(metrics=metrics, playbook=playbook, started_at=START, lookback=timedelta(hours=6)) is None
    bare = playbook.model_copy(update={"key_query": None})
    assert find_onset(metrics=metrics, playbook=bare, started_at=START, lookback=timedelta(hours=6)) is None
