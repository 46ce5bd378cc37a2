"""The demo: Backout end to end on embedded defaults, with no account and no config.

`run` plays the scenario (`backout demo`), `repo` builds its throwaway Git repository, `data/`
holds the recorded Alertmanager payloads and playbooks (package data, shipped in the wheel), and
`replay` posts Alertmanager payloads to a running server, as Alertmanager would (the demo and
`backout replay` both use it).

May import `bootstrap`, `entrypoints`, `adapters`, `services`, `domain` and `config`; never
`bot.cli`.
"""

from bot.demo.run import run_demo

__all__ = ["run_demo"]
