"""Adapters: one module or folder per outside system, each implementing a port of `bot.domain.ports`.

`alertmanager/` (the webhook payload), `git/` (mirrors, reverts, classifying file changes),
`github.py` and `gitlab.py` (forges), `prometheus.py` (metrics and applied revisions),
`controllers.py` (Flux and Argo CD notification bodies), `slack/` (Block Kit and delivery),
`console.py` (the chat of the embedded default), `storage/` (SQLAlchemy, migrations, the leader
lock, replica epochs), `export/` (templates and the chart PNG), `embedded.py` (what stands in for a
part that is not configured), `replica.py` (this process's name, kept on disk). Paging joins as
one more module here. Tests replace each with its fake in `tests/fakes/`.

May import `bot.domain` and vendor libraries; never `bot.services`, `bot.config` or another
adapter (import-linter checks all three).
"""
