"""Playbooks: per service or alert family, what to match, where it is deployed from, what to do."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from datetime import timedelta
from enum import StrEnum
from typing import Annotated, Literal

import promql_parser
from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, model_validator

from bot.domain.automerge import MergeMode
from bot.domain.changes import glob_problem
from bot.domain.durations import Duration
from bot.domain.gitops import GitOpsPolicy
from bot.domain.paging import PagerDutyPolicy
from bot.domain.review_risk import BLOCK_RULES, LOOKBACK
from bot.domain.rooms import RoomPolicy


def _valid_regex(value: str) -> str:
    try:
        re.compile(value)
    except re.error as exc:
        raise ValueError(f"not a valid regular expression: {exc}") from exc
    return value


Regex = Annotated[str, AfterValidator(_valid_regex)]


def _valid_glob(value: str) -> str:
    if (problem := glob_problem(value)) is not None:
        raise ValueError(f"the glob {value!r} {problem}")
    return value


Glob = Annotated[str, AfterValidator(_valid_glob)]  # gitignore's meaning: see changes.glob_regex


def _valid_promql(value: str) -> str:
    """Parsed here, so a typo is found by `backout check`, not by the first probe run."""
    try:
        promql_parser.parse(value)
    except ValueError as exc:
        raise ValueError(f"not valid PromQL: {exc}") from None
    return value


PromQL = Annotated[str, AfterValidator(_valid_promql)]
_NAME = r"^[a-z0-9][a-z0-9._-]{0,62}$"


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RepoRole(StrEnum):
    GITOPS = "gitops"
    APP = "app"


_IMAGE = r"^[a-z0-9][a-z0-9._/:-]{0,254}$"  # a registry path without a tag: ghcr.io/acme/checkout


def image_name(image: str) -> str:
    """An image as Docker resolves it, for comparing: `redis` and `docker.io/library/redis` are one."""
    name = image.strip().lower().split("@", 1)[0]
    last = name.rsplit("/", 1)[-1]
    if ":" in last:
        name = name[: len(name) - len(last)] + last.split(":", 1)[0]
    for prefix in ("index.docker.io/", "docker.io/", "library/"):
        name = name.removeprefix(prefix)
    return name


class PlaybookRepo(Strict):
    repo: str = Field(description="a name from the config's `repos`")
    role: RepoRole = RepoRole.GITOPS
    paths: tuple[Glob, ...] = ("**",)
    shared_paths: tuple[Glob, ...] = ()
    # role app: the images built from it, so an image bump is matched to its repository, not by tag alone
    images: tuple[Annotated[str, Field(pattern=_IMAGE)], ...] = ()

    @model_validator(mode="after")
    def _images_of_apps(self) -> PlaybookRepo:
        if self.images and self.role is not RepoRole.APP:
            raise ValueError(f"`images` names what an application repository builds: {self.repo} has role "
                             f"{self.role.value}; set `role: app` or drop `images`")
        return self

    def builds(self, image: str, *, service: str) -> bool:
        """Whether this application repository builds `image`: one of its `images`; without any,
        an image named as the service or as a part of the repository's name (`checkout-app`)."""
        if self.images:
            return image_name(image) in {image_name(i) for i in self.images}
        name = image_name(image).rsplit("/", 1)[-1]
        return name in (service, self.repo) or name in re.split(r"[-_.]", self.repo)


class SuspectPolicy(Strict):
    lookback: Duration = timedelta(hours=6)
    sync_delay: Duration = timedelta(minutes=2)
    # The evidence floor: the top candidate's score (relevance x timing) must reach it. 0.2 is an
    # effective change to the service's own paths about two hours old with nothing after it.
    min_confidence: float = Field(default=0.2, ge=0.0, le=1.0)
    # The margin: the top candidate must score this many times the next one, else it is a tie.
    tie_ratio: float = Field(default=1.5, ge=1.0, le=100.0)
    # Comment on the pull request a suspect came from (its author hears about it), kept current.
    notify_authors: bool = False


class ActionMode(StrEnum):
    OFF = "off"
    PROPOSE = "propose"
    OPEN_PR = "open_pr"


def _yaml_off(value: object) -> object:
    # YAML 1.1 reads a bare `off` as false; the user meant the mode.
    return ActionMode.OFF if value is False else value


def _merge_off(value: object) -> object:
    return MergeMode.OFF if value is False else value


class PlanPolicy(StrEnum):
    CONFIDENT_ONLY = "confident_only"  # `on_open` acts only on a confident suspect
    FIRST_STEP = "first_step"  # and, with none, on the rollback plan's first step (docs: playbooks/README.md)


class ActionPolicy(Strict):
    on_open: Annotated[ActionMode, BeforeValidator(_yaml_off)] = ActionMode.PROPOSE
    plan: PlanPolicy = PlanPolicy.CONFIDENT_ONLY
    min_confidence: float | None = Field(default=None, ge=0.0, le=1.0)
    max_per_hour: int = Field(default=2, ge=0, le=100)
    reviewers: tuple[str, ...] = ()
    # The one exception to "Backout never merges" (docs/automerge.md): off unless a playbook opts in.
    merge: Annotated[MergeMode, BeforeValidator(_merge_off)] = MergeMode.OFF
    merge_after: Duration = timedelta(minutes=5)  # the veto window announced before merging

    @model_validator(mode="after")
    def _window_long_enough(self) -> ActionPolicy:
        if self.merge_after < timedelta(minutes=1):
            raise ValueError("`merge_after` must be at least 1m: people need time to press Hold")
        return self


class ReviewPolicy(Strict):
    """Review risk on the playbook's repositories: which revert-safety flags block a merge (where the
    repository's protection requires the `backout/risk` check), and how far back past causes count."""

    block_on: tuple[str, ...] = ()
    lookback: Duration = LOOKBACK

    @model_validator(mode="after")
    def _known_rules(self) -> ReviewPolicy:
        unknown = [rule for rule in self.block_on if rule not in BLOCK_RULES]
        if unknown:
            raise ValueError(f"unknown block_on {', '.join(map(repr, unknown))}: "
                             f"choose from {', '.join(sorted(BLOCK_RULES))}")
        if self.lookback < timedelta(days=1):
            raise ValueError("`lookback` must be at least 1d: past causes are weeks or months old")
        return self


class FreezePolicy(Strict):
    """`backout freeze`: how long a freeze of automation may stay before it is reported expired."""

    expires_after: Duration = timedelta(hours=24)


class Owners(Strict):
    slack_users: tuple[Annotated[str, Field(pattern=r"^[UW][A-Z0-9]{2,}$")], ...] = ()
    slack_groups: tuple[Annotated[str, Field(pattern=r"^S[A-Z0-9]{2,}$")], ...] = ()


class ChatSettings(Strict):
    channel: str | None = Field(default=None, pattern=r"^[#@]?[a-zA-Z0-9._-]{1,80}$|^[CG][A-Z0-9]{2,}$")


class Probe(Strict):
    name: str = Field(pattern=_NAME)
    query: PromQL = Field(min_length=1)
    above: float | None = None
    below: float | None = None
    for_: Duration = Field(default=timedelta(0), alias="for")
    every: Duration = timedelta(seconds=30)
    labels: dict[str, str] = Field(default_factory=dict)
    severity: Literal["info", "warning", "error", "critical"] | None = None  # default: the playbook's

    @model_validator(mode="after")
    def _one_threshold(self) -> Probe:
        if (self.above is None) == (self.below is None):
            raise ValueError("a probe needs exactly one of `above` or `below`")
        if self.every < timedelta(seconds=1):
            raise ValueError("`every` must be at least 1s")
        return self

    def holds(self, value: float) -> bool:
        """True when the value is unhealthy (beyond the threshold)."""
        return value > self.above if self.above is not None else value < (self.below or 0.0)

    def describe(self) -> str:
        return f"above {self.above}" if self.above is not None else f"below {self.below}"


class Verify(Strict):
    """After a rollback: when is the key query healthy again, and for how long must it stay so."""

    below: float | None = None  # healthy when the key query is below this
    above: float | None = None  # or above this
    stay: Duration = timedelta(minutes=5)
    within: Duration = timedelta(minutes=30)

    @model_validator(mode="after")
    def _at_most_one(self) -> Verify:
        if self.below is not None and self.above is not None:
            raise ValueError("verify takes `below` or `above`, not both")
        return self


class Reminders(Strict):
    ack_within: Duration = timedelta(minutes=10)
    every: Duration = timedelta(minutes=10)
    max: int = Field(default=3, ge=0, le=50)


class Playbook(Strict):
    """One validated playbook file."""

    name: str = Field(pattern=_NAME, description="defaults to the file name")
    service: str = Field(min_length=1, max_length=100)
    description: str = ""
    severity: Literal["info", "warning", "error", "critical"] = "warning"  # of the alerts its probes raise
    match: dict[str, Regex] = Field(min_length=1)
    group_by: tuple[str, ...] = ("alertname", "service")
    repos: tuple[PlaybookRepo, ...] = ()
    suspects: SuspectPolicy = SuspectPolicy()
    actions: ActionPolicy = ActionPolicy()
    owners: Owners = Owners()
    chat: ChatSettings = ChatSettings()
    runbook: str | None = Field(default=None, pattern=r"^https?://")
    key_query: PromQL | None = None
    probes: tuple[Probe, ...] = ()
    verify: Verify = Verify()
    # A revision counts as last known good once it ran this long with no incident open (bot/domain/good.py).
    good_after: Duration = timedelta(minutes=30)
    reminders: Reminders = Reminders()
    room: RoomPolicy = RoomPolicy()  # a channel per declared incident: when, private, who, roles
    freeze: FreezePolicy = FreezePolicy()
    gitops: GitOpsPolicy = GitOpsPolicy()  # the Flux and Argo CD objects that deploy the service
    pagerduty: PagerDutyPolicy = PagerDutyPolicy()  # its PagerDuty service, on-call and paging
    review: ReviewPolicy = ReviewPolicy()  # review risk on its repositories' pull requests

    @model_validator(mode="after")
    def _unique_probe_names(self) -> Playbook:
        names = [probe.name for probe in self.probes]
        if len(names) != len(set(names)):
            raise ValueError("probe names must be unique within a playbook")
        return self

    def health_check(self) -> tuple[str, Callable[[float], bool]] | None:
        """The key query and a test of a healthy value: `verify`'s threshold, else the inverse of
        the first probe on the same query. None when there is no key query or no threshold."""
        if self.key_query is None:
            return None
        if self.verify.below is not None:
            limit = self.verify.below
            return self.key_query, lambda value: value < limit
        if self.verify.above is not None:
            low = self.verify.above
            return self.key_query, lambda value: value > low
        probe = self._key_probe()
        if probe is None:
            return None
        return self.key_query, lambda value: not probe.holds(value)

    def healthy_when(self) -> str | None:
        """`health_check`'s threshold in words ("below 0.05", "no longer above 0.05"); None without one."""
        if self.key_query is None:
            return None
        if self.verify.below is not None:
            return f"below {self.verify.below:g}"
        if self.verify.above is not None:
            return f"above {self.verify.above:g}"
        probe = self._key_probe()
        return f"no longer {probe.describe()}" if probe is not None else None

    def _key_probe(self) -> Probe | None:
        """The first probe on the key query, whose threshold says what unhealthy is."""
        wanted = " ".join((self.key_query or "").split())
        return next((p for p in self.probes if " ".join(p.query.split()) == wanted), None)

    def worse_direction(self) -> int | None:
        """Which way the key query goes when things get worse: +1 up, -1 down, None unknown."""
        if self.key_query is None:
            return None
        if self.verify.below is not None:
            return 1
        if self.verify.above is not None:
            return -1
        probe = self._key_probe()
        if probe is None:
            return None
        return 1 if probe.above is not None else -1

    def matches(self, labels: Mapping[str, str]) -> bool:
        """Every matcher must fully match its label (a missing label is the empty string)."""
        return all(re.fullmatch(rx, labels.get(key, "")) for key, rx in self.match.items())

    def group_key(self, labels: Mapping[str, str]) -> str:
        values = ",".join(f"{key}={labels.get(key, '')}" for key in self.group_by)
        return f"playbook:{self.name}:{{{values}}}"


def find_playbook(playbooks: Sequence[Playbook], labels: Mapping[str, str]) -> Playbook | None:
    """The playbook for an alert: the one with the most matchers that all hold; ties by order."""
    best: Playbook | None = None
    for playbook in playbooks:
        if playbook.matches(labels) and (best is None or len(playbook.match) > len(best.match)):
            best = playbook
    return best


def playbook_named(playbooks: Sequence[Playbook], name: str | None) -> Playbook | None:
    """The playbook an incident was opened under (by its name), if it still exists."""
    return next((p for p in playbooks if p.name == name), None) if name else None
