"""Git through its CLI: bare mirrors per watched repository (`mirror`), the runner that calls `git`
(`runner`), parsing its log (`parse`) and what each file change did (`classify`)."""
