"""Services: the use cases, written against the ports: ingest, investigate, act, notify, export,
watching, lifecycle, GitOps controllers, chat commands, reports and the rest, one module each.

Functions take the ports they need as keyword arguments (`store=`, `git=`, `notifier=`) and time
as an argument. May import `bot.domain`, each other and pure libraries (structlog for logs, numpy
and ruptures for the onset); never an adapter, `bot.config`, a vendor SDK or an I/O library
(import-linter checks).
"""
