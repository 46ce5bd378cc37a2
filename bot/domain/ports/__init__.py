"""The ports: small interfaces the services call and the adapters implement.

`storage` holds the repositories (one Protocol per aggregate), the `Transaction` that groups
them and the `Store` that runs work in one; `outside` the ports to outside systems: Git,
chat (`Notifier`), forges, applied times, metrics and alert states, the leader lock, and the
`Clock`. Tests drive the services through fakes of them (`tests/fakes/`); paging will join
`outside` as one more small port.

Part of the pure core: imports only `bot.domain` and the standard library.
"""

from bot.domain.ports.outside import (
    AlertStates,
    AppliedTimes,
    Clock,
    FetchedChanges,
    Forge,
    GitRepos,
    IncidentMessage,
    LeaderGate,
    MetricsQuery,
    Notice,
    Notifier,
    PullRequestRef,
    PullRequestStatus,
    RevertResult,
)
from bot.domain.ports.storage import (
    ActionRepository,
    AlertIdentity,
    AlertRepository,
    AuthorNotice,
    AuthorNoticeRepository,
    ChangeRepository,
    ChatRepository,
    ChatThread,
    FollowUp,
    FollowUpRepository,
    GitOpsRepository,
    IncidentRepository,
    PendingSummary,
    RankingRepository,
    Store,
    TimelineRepository,
    Transaction,
    VerdictRepository,
    Verification,
    WatchRepository,
)

__all__ = [
    "ActionRepository",
    "AlertIdentity",
    "AlertRepository",
    "AlertStates",
    "AppliedTimes",
    "AuthorNotice",
    "AuthorNoticeRepository",
    "ChangeRepository",
    "ChatRepository",
    "ChatThread",
    "Clock",
    "FetchedChanges",
    "FollowUp",
    "FollowUpRepository",
    "Forge",
    "GitOpsRepository",
    "GitRepos",
    "IncidentMessage",
    "IncidentRepository",
    "LeaderGate",
    "MetricsQuery",
    "Notice",
    "Notifier",
    "PendingSummary",
    "PullRequestRef",
    "PullRequestStatus",
    "RankingRepository",
    "RevertResult",
    "Store",
    "TimelineRepository",
    "Transaction",
    "VerdictRepository",
    "Verification",
    "WatchRepository",
]
