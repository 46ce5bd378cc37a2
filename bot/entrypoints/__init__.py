"""Entrypoints: what drives the use cases, whatever library it is built on.

The HTTP server (`http` and its route groups `http_actions`, `http_gitops`, `http_pages`,
`http_slack`, with `http_common` and `webhook_auth`), the Slack listeners (`slack_app`), the
scheduler (`scheduler`), the webhooks' group commit (`batch_queue`), Prometheus metrics
(`metrics`), serving on a thread (`serving`), charts (`charts`), the incident pages' links, plain
and signed (`links`), and the `AppContext` that `bootstrap.build()` hands them (`context`).

May import `bot.adapters`, `bot.services`, `bot.domain` and `bot.config`; never `bootstrap`,
`cli` or `demo`.
"""
