"""Prometheus metrics on a registry of the app's own (so tests can build many apps)."""

from __future__ import annotations

import platform
from importlib.metadata import PackageNotFoundError, version

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, disable_created_metrics, generate_latest

# Counters without their `_created` series: half the lines, and nobody alerts on them.
disable_created_metrics()  # type: ignore[no-untyped-call]  # prometheus_client leaves it untyped


class Metrics:
    def __init__(self, *, github: bool = True, gitlab: bool = False) -> None:
        """`github`, `gitlab`: whether that forge is configured (else none of its series)."""
        self.registry = CollectorRegistry()
        Gauge("backout_build_info", "1, with the running version in the labels.", ["version", "python"],
              registry=self.registry).labels(_version(), platform.python_version()).set(1)
        self.incidents_active = Gauge(
            "backout_incidents_active", "Active incidents (open to verified), by status.", ["status"],
            registry=self.registry,
        )
        self.repo_refreshed = Gauge(
            "backout_repo_last_refresh_timestamp_seconds",
            "When each repository's history was last fetched without error (on the leader).", ["repo"],
            registry=self.registry,
        )
        self.controller_events = Counter(
            "backout_controller_events_total",
            "Flux and Argo CD webhook requests by controller and outcome.",
            ["controller", "outcome"],
            registry=self.registry,
        )
        self.backlog = Gauge(
            "backout_outbox_pending", "Work recorded and not done yet: chat summaries, follow-ups "
            "(investigate, announce), controller events held for a fetch, review heads to assess.", ["queue"],
            registry=self.registry,
        )
        self.webhook_requests = Counter(
            "backout_webhook_requests_total",
            "Alertmanager webhook requests by outcome.",
            ["outcome"],
            registry=self.registry,
        )
        self.alerts_ingested = Counter(
            "backout_alerts_ingested_total",
            "Alerts received, by what became of them (new, resolved, duplicate; set_aside: not stored, "
            "its start time out of range).",
            ["result"],
            registry=self.registry,
        )
        self.incidents_opened = Counter(
            "backout_incidents_opened_total",
            "Incidents opened (reopened ones are counted apart).",
            ["how"],
            registry=self.registry,
        )
        # Bound once: a labels() lookup per webhook costs as much as the counting.
        self.ingested = {result: self.alerts_ingested.labels(result)
                         for result in ("new", "resolved", "duplicate", "set_aside")}
        self.opened = {how: self.incidents_opened.labels(how) for how in ("new", "reopened")}
        self.webhook_accepted = self.webhook_requests.labels("accepted")
        self.request_latency = Histogram(
            "backout_http_request_duration_seconds",
            "HTTP request latency by route and method.",
            ["route", "method"],
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
            registry=self.registry,
        )

        self.write_queue = Gauge(
            "backout_write_queue", "Webhook items accepted and waiting for their batch to be committed "
            "(ingest: Alertmanager deliveries; controller_events: Flux and Argo CD).", ["queue"],
            registry=self.registry,
        )
        self.leader = Gauge(
            "backout_leader", "1 on the replica that runs the scheduled jobs, else 0.", ["replica"],
            registry=self.registry,
        )

        self.github_calls: Counter | None = None
        self.github_rate_remaining: Gauge | None = None
        if github:
            self.github_calls = Counter(
                "backout_github_calls_total",
                "GitHub API calls by endpoint and outcome (ok, 304s included; status code; rate_limited).",
                ["endpoint", "outcome"],
                registry=self.registry,
            )
            self.github_rate_remaining = Gauge(
                "backout_github_rate_limit_remaining",
                "Requests left in GitHub's primary rate limit, as its last answer said.",
                registry=self.registry,
            )

        self.gitlab_calls: Counter | None = None
        self.gitlab_rate_remaining: Gauge | None = None
        if gitlab:
            self.gitlab_calls = Counter(
                "backout_gitlab_calls_total",
                "GitLab API calls by endpoint and outcome (ok, 304s included; status code; rate_limited).",
                ["endpoint", "outcome"],
                registry=self.registry,
            )
            self.gitlab_rate_remaining = Gauge(
                "backout_gitlab_rate_limit_remaining",
                "Requests left in GitLab's rate limit, as its last RateLimit-Remaining said.",
                registry=self.registry,
            )

        self.job_runs = Counter(
            "backout_job_runs_total", "Scheduled job runs by job and outcome (ok, error, not_leader).",
            ["job", "outcome"], registry=self.registry,
        )
        self.job_duration = Histogram(
            "backout_job_duration_seconds", "Scheduled job run time.", ["job"],
            buckets=(0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 15.0, 60.0), registry=self.registry,
        )
        self.probe_value = Gauge(
            "backout_probe_value", "The last value of each health probe's query.", ["probe"], registry=self.registry,
        )
        self.probe_errors = Counter(
            "backout_probe_errors_total", "Probe evaluations that failed or returned no data.", ["probe"],
            registry=self.registry,
        )

    def observe_github(self, endpoint: str, outcome: str, remaining: int | None) -> None:
        if self.github_calls is not None:
            self.github_calls.labels(endpoint, outcome).inc()
        if remaining is not None and self.github_rate_remaining is not None:
            self.github_rate_remaining.set(remaining)

    def observe_gitlab(self, endpoint: str, outcome: str, remaining: int | None) -> None:
        if self.gitlab_calls is not None:
            self.gitlab_calls.labels(endpoint, outcome).inc()
        if remaining is not None and self.gitlab_rate_remaining is not None:
            self.gitlab_rate_remaining.set(remaining)

    def render(self) -> bytes:
        return generate_latest(self.registry)


def _version() -> str:
    try:
        return version("backout")
    except PackageNotFoundError:
        return "unknown"
