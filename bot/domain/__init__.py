"""The pure core: models, rules and ports. Time is passed in; nothing here reads a clock, a file, the
network or the database.

Incidents (`models`, `incidents` the state machine, `grouping`, `timeline`), changes and their
ranking (`changes`, `suspects`, `ranking`, `plan`, `safety`, `automation`, `gitops`), actions,
playbooks, probes, verdicts, chat rules, durations, text, `errors` (the exception tree) and
`ports/` (the Protocols the services call and the adapters implement).

May import only itself, the standard library, pydantic and pure helpers (pathspec for path globs,
promql_parser for queries); import-linter refuses vendor SDKs and I/O libraries here.
"""
