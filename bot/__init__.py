"""Backout: an incident-response bot for GitOps teams.

The layers, each importing only those below it (import-linter checks, see CONTRIBUTING.md):
`cli` (the command line) > `demo` > `bootstrap` (the composition root) > `entrypoints` (HTTP,
Slack, scheduler) > `adapters` (one per outside system) > `services` (use cases) > `domain`
(pure models, rules and ports). `config` (the settings) is read only by `cli`, `demo`,
`bootstrap` and `entrypoints`.
"""

__version__ = "0.1.0"
