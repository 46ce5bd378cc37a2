"""`backout demo`: the whole app on embedded defaults (SQLite, console), fed real payloads over HTTP."""

from __future__ import annotations

import secrets
import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from importlib import resources
from pathlib import Path

import uvicorn

from bot import bootstrap
from bot.config import (
    AlertmanagerSettings,
    ServerSettings,
    Settings,
    StorageSettings,
    load_playbooks,
)
from bot.replay import post_payloads
from bot.services import incidents as incident_service
from bot.services.text import render_incident, render_incident_list

Echo = Callable[[str], None]


@contextmanager
def serve_in_thread(app: bootstrap.App, host: str = "127.0.0.1") -> Iterator[str]:
    """Serve the app with uvicorn on a free loopback port; yields the base URL."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app.http, log_level="warning", access_log=False))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        while not server.started:
            if not thread.is_alive():
                raise RuntimeError("the demo server did not start")
            thread.join(0.02)
        yield f"http://{host}:{port}"
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()


def run_demo(*, out: Path, echo: Echo) -> int:
    """Run the demo; return the exit code."""
    out.mkdir(parents=True, exist_ok=True)
    database = out / "backout-demo.db"
    database.unlink(missing_ok=True)
    data = resources.files("bot.demo_data")
    with resources.as_file(data / "playbooks") as playbooks_dir:
        settings = Settings(
            server=ServerSettings(port=0),
            storage=StorageSettings(url=f"sqlite:///{database}"),
            alertmanager=AlertmanagerSettings(auth="bearer", bearer_token=secrets.token_urlsafe(24)),
            playbooks_dir=playbooks_dir,
        )
        playbooks = load_playbooks(playbooks_dir)
    payloads = sorted(
        (entry.name, entry.read_bytes())
        for entry in (data / "alertmanager").iterdir()
        if entry.name.endswith(".json")
    )
    app = bootstrap.build(settings, playbooks=playbooks)
    try:
        with serve_in_thread(app) as base_url:
            echo(f"Backout is serving on {base_url} (SQLite at {database})")
            echo(f"Replaying {len(payloads)} real Alertmanager deliveries over HTTP:\n")
            for posted in post_payloads(base_url=base_url, settings=settings.alertmanager,
                                        payloads=payloads):
                echo(f"  {posted.name}: HTTP {posted.status}")
                if posted.status >= 300:
                    echo(f"demo failed: {posted.body}")
                    return 1
        store = app.ctx.store
        found = incident_service.list_incidents(store=store)
        echo("\n" + render_incident_list(found) + "\n")
        for incident in reversed(found):
            assert incident.id is not None
            echo(render_incident(incident_service.get_incident(store=store, incident_id=incident.id)))
            echo("")
    finally:
        app.close()
    echo(f"Done. Look again with: BACKOUT_STORAGE__URL=sqlite:///{database} "
         "backout incidents list")
    return 0
