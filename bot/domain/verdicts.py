"""What responders say caused an incident, and how often the ranking agreed. Pure."""

from __future__ import annotations

import bisect
import itertools
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict

from bot.domain.models import Actor, acting
from bot.domain.suspects import Ranking


class VerdictKind(StrEnum):
    CULPRIT = "culprit"  # this change caused it
    NOT_CULPRIT = "not_culprit"  # this change did not
    NO_CHANGE = "no_change"  # no change caused it


class Verdict(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    incident_id: int
    kind: VerdictKind
    repo: str | None = None
    sha: str | None = None
    actor: Actor
    actor_id: str = ""
    on_behalf_of: str = ""  # whom the actor said it acted for (an API caller's `by`)
    at: datetime

    @property
    def who(self) -> str:
        return acting(self.actor_id or self.actor.value, self.on_behalf_of)


@dataclass(frozen=True)
class Finding:
    """The responders' last word on one incident."""

    culprit: str | None  # the sha they confirmed, if any
    no_change: bool
    ruled_out: frozenset[str]


def finding(verdicts: Iterable[Verdict]) -> Finding | None:
    """Later verdicts correct earlier ones: a culprit or "no change" replaces the other; a change
    marked "not this one" is ruled out (and stops being the culprit). None without verdicts."""
    culprit: str | None = None
    no_change = False
    ruled_out: set[str] = set()
    seen = False
    for verdict in sorted(verdicts, key=lambda v: v.at):
        seen = True
        if verdict.kind is VerdictKind.CULPRIT and verdict.sha:
            culprit, no_change = verdict.sha, False
            ruled_out.discard(verdict.sha)
        elif verdict.kind is VerdictKind.NO_CHANGE:
            culprit, no_change = None, True
        elif verdict.kind is VerdictKind.NOT_CULPRIT and verdict.sha:
            ruled_out.add(verdict.sha)
            if culprit == verdict.sha:
                culprit = None
    return Finding(culprit=culprit, no_change=no_change, ruled_out=frozenset(ruled_out)) if seen else None


@dataclass(frozen=True)
class Answer:
    """What the ranking answered, as the accuracy report judges it."""

    confident: bool
    best: str | None  # the best suspect's sha: never a reverted, ruled-out or weak change
    shas: tuple[str, ...]  # the suspects listed, in order
    confidence: float | None = None  # the best suspect's share of the evidence; None before it was kept

    @classmethod
    def of(cls, ranking: Ranking) -> Answer:
        best = ranking.best
        return cls(confident=ranking.confident, best=best.sha if best else None,
                   shas=tuple(s.sha for s in ranking.suspects), confidence=ranking.confidence)

    @classmethod
    def from_event(cls, data: Mapping[str, Any]) -> Answer | None:
        """The answer a `suspects.ranked` event kept; None when it kept none. Events from before
        `best` was kept listed the best suspect first."""
        if "confident" not in data or "suspects" not in data:
            return None
        shas = tuple(str(s["sha"]) for s in data["suspects"])
        best = data["best"] if "best" in data else (shas[0] if shas else None)
        confidence = data.get("confidence")
        return cls(confident=bool(data["confident"]), best=best, shas=shas,
                   confidence=None if confidence is None else float(confidence))


# Confidence buckets of the calibration table: the share right in each says what a figure means.
CALIBRATION_BUCKETS = (0.0, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 1.0)


def bucket(confidence: float) -> int:
    """The calibration bucket a confidence falls in (the last one holds 1.0)."""
    return min(bisect.bisect_right(CALIBRATION_BUCKETS, confidence) - 1, len(CALIBRATION_BUCKETS) - 2)


@dataclass
class Tally:
    """Counts behind the accuracy figures of one group of incidents."""

    incidents: int = 0  # with a culprit or "no change" verdict
    caused: int = 0  # a responder named the culprit
    confident: int = 0  # the ranking named a confident first suspect
    confident_right: int = 0
    top3: int = 0  # the culprit among the first three suspects
    no_change: int = 0
    abstained_right: int = 0  # no confident suspect where no change caused it
    shas: list[str] = field(default_factory=list)
    # per calibration bucket: [answers, right] (right: the best suspect is the responders' culprit)
    buckets: list[list[int]] = field(default_factory=lambda: [[0, 0] for _ in CALIBRATION_BUCKETS[1:]])

    def add(self, answer: Answer, found: Finding) -> None:
        if found.culprit is None and not found.no_change:
            return  # only "not this one" so far: no ground truth yet
        self.incidents += 1
        right = found.culprit is not None and answer.best == found.culprit
        if answer.confidence is not None:
            cell = self.buckets[bucket(answer.confidence)]
            cell[0] += 1
            cell[1] += int(right)
        if answer.confident:
            self.confident += 1
            self.confident_right += int(right)
        if found.culprit is not None:
            self.caused += 1
            self.top3 += int(found.culprit in answer.shas[:3])
        else:
            self.no_change += 1
            self.abstained_right += int(not answer.confident)

    def figures(self) -> dict[str, Any]:
        """precision@1: confident and right over incidents a change caused; precision of confidence:
        right over confident answers (docs/ranking.md); the calibration table's buckets with answers."""
        return {
            "incidents": self.incidents,
            "precision_at_1": _share(self.confident_right, self.caused),
            "precision_of_confidence": _share(self.confident_right, self.confident),
            "recall_at_3": _share(self.top3, self.caused),
            "abstention_no_cause": _share(self.abstained_right, self.no_change),
            "confident": self.confident, "caused": self.caused, "no_change": self.no_change,
            "calibration": [
                {"confidence": f"{low:.1f}-{high:.1f}", "answers": answers, "right": _share(right, answers)}
                for (low, high), (answers, right) in zip(itertools.pairwise(CALIBRATION_BUCKETS), self.buckets,
                                                         strict=True) if answers],
        }


def accuracy(cases: Sequence[tuple[str, str | None, Answer, Finding]]) -> dict[str, object]:
    """Precision@1 and recall@3 over (service, playbook, answer, finding), overall and by
    service and playbook."""
    overall = Tally()
    by_service: dict[str, Tally] = {}
    by_playbook: dict[str, Tally] = {}
    for service, playbook, answer, found in cases:
        overall.add(answer, found)
        by_service.setdefault(service, Tally()).add(answer, found)
        by_playbook.setdefault(playbook or "(none)", Tally()).add(answer, found)
    return {
        "overall": overall.figures(),
        "by_service": {k: v.figures() for k, v in sorted(by_service.items()) if v.incidents},
        "by_playbook": {k: v.figures() for k, v in sorted(by_playbook.items()) if v.incidents},
    }


def _share(hits: int, total: int) -> float | None:
    return round(hits / total, 3) if total else None
