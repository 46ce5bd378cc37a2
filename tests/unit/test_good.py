"""Last known good in the domain, with plain data: good_after, incidents during and before a
revision, a verification that did not recover, and the reason when nothing counts."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from bot.domain.good import Deployed, IncidentSpan, last_good

NOW = datetime.now(UTC).replace(microsecond=0)
HALF_HOUR = timedelta(minutes=30)


def deployed(sha: str, hours_ago: float, *, healthy: bool = True) -> Deployed:
    at = NOW - timedelta(hours=hours_ago)
    return Deployed(repo="gitops", sha=sha * 40, applied_at=at, healthy_at=at if healthy else None, how="test")


def good(revisions: list[Deployed], incidents: Sequence[IncidentSpan] = ()) -> str | None:
    answer = last_good(revisions, incidents, service="checkout", repo="gitops", good_after=HALF_HOUR, now=NOW)
    return answer.good.sha[0] if answer.good else None


def test_the_newest_revision_in_place_good_after_counts() -> None:
    """In place 29 minutes: not yet; the one before, in place for hours, is."""
    assert good([deployed("a", 5), deployed("b", 29 / 60)]) == "a"
    assert good([deployed("a", 5), deployed("b", 31 / 60)]) == "b"


def test_an_incident_that_started_under_a_revision_rules_it_out() -> None:
    """INC-1 started while b was in place (even though resolved since): a is the last good."""
    span = IncidentSpan(ref="INC-1", started_at=NOW - timedelta(hours=2), resolved_at=NOW - timedelta(hours=1))
    assert good([deployed("a", 5), deployed("b", 3)], [span]) == "a"


def test_a_revision_applied_during_an_incident_counts_from_its_resolution() -> None:
    """c came in while INC-1 was open: its clean time starts at the resolution, and a verification
    that did not recover under it rules it out."""
    span = IncidentSpan(ref="INC-1", started_at=NOW - timedelta(hours=3), resolved_at=NOW - timedelta(minutes=20),
                        verified="recovered", verified_at=NOW - timedelta(hours=1))
    revisions = [deployed("a", 5), deployed("b", 3.5), deployed("c", 2)]
    assert good(revisions, [span]) == "a"
    span = span.model_copy(update={"resolved_at": NOW - timedelta(minutes=40)})
    assert good(revisions, [span]) == "c"
    assert good(revisions, [span.model_copy(update={"verified": "not_recovered"})]) == "a"


def test_nothing_counts_says_why() -> None:
    """Never healthy, or no revision at all: no good revision, and the reason names each."""
    answer = last_good([deployed("a", 5, healthy=False)], [], service="checkout", repo="gitops",
                       good_after=HALF_HOUR, now=NOW)
    assert answer.good is None
    assert "never reported healthy" in answer.reason
    empty = last_good([], [], service="checkout", repo="gitops", good_after=HALF_HOUR, now=NOW)
    assert empty.reason == "no applied revision of gitops is known for checkout yet"
