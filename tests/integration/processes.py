"""Real processes for integration tests: Backout itself, Alertmanager and PostgreSQL, on loopback."""

from __future__ import annotations

import atexit
import http.server
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import yaml

from tests.conftest import need_binary

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def rollback_killed_after_push(
    config: Path, bare: Path, scratch: Path,
) -> Callable[[], subprocess.CompletedProcess[str]]:
    """`backout rollback INC-1 --yes` killed (-9) by the remote's post-receive hook, right after
    its push and before its pull (merge) request; returns the same command to run again, whole."""
    pid_file = scratch / "rollback.pid"
    hook = bare / "hooks" / "post-receive"
    hook.write_text(f"#!/bin/sh\n[ -f {pid_file} ] && kill -9 $(cat {pid_file})\nexit 0\n")
    hook.chmod(0o755)
    env = {k: v for k, v in os.environ.items() if not k.startswith("BACKOUT_")}
    command = [sys.executable, "-m", "bot", "rollback", "INC-1", "--yes", "--config", str(config)]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    pid_file.write_text(str(proc.pid))
    proc.communicate(timeout=60)
    assert proc.returncode == -9, "the rollback was not killed after its push"
    pid_file.unlink()
    return lambda: subprocess.run(command, capture_output=True, text=True, env=env, timeout=60, check=False)


def wait_until(check: Callable[[], bool], *, timeout: float, what: str, every: float = 0.1) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except (httpx.HTTPError, OSError):
            pass
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


@contextmanager
def silent_git_host() -> Iterator[str]:
    """A Git host that takes connections and never answers: investigations wait on it."""
    class Silent(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            released.wait(120)

        def log_message(self, *_: object) -> None:
            pass

    released = threading.Event()
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Silent)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/gitops.git"
    finally:
        released.set()
        httpd.shutdown()
        httpd.server_close()


READ_TOKEN = "integration-read-token-0123456789"


class BackoutServer:
    """`python -m bot serve` in a child process, with its own config file."""

    def __init__(self, workdir: Path, config: dict[str, Any]) -> None:
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        # Reads need a token by default, as in production; api() sends it.
        config = {**config, "server": {**config.get("server", {}), "port": self.port},
                  "api": config.get("api", {"tokens": [READ_TOKEN]})}
        self.config_path = workdir / "config.yaml"
        self.config_path.write_text(yaml.safe_dump(config))
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = workdir / "backout.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> BackoutServer:
        env = {k: v for k, v in os.environ.items() if not k.startswith("BACKOUT_")}
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "bot", "serve", "--config", str(self.config_path)],
                cwd=self.workdir, stdout=log, stderr=subprocess.STDOUT, env=env,
            )
        wait_until(self._ready, timeout=30, what=f"backout on {self.url}")
        return self

    def _ready(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise AssertionError(f"backout exited {self.proc.returncode}:\n{self.log.read_text()}")
        return httpx.get(f"{self.url}/readyz", timeout=1).status_code == 200

    def kill(self) -> None:
        """SIGKILL: no shutdown code runs, as in a crash or an OOM kill."""
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)

    def api(self, path: str) -> Any:
        response = httpx.get(f"{self.url}{path}", timeout=5, headers={"Authorization": f"Bearer {READ_TOKEN}"})
        response.raise_for_status()
        return response.json()


class Alertmanager:
    """The real Alertmanager binary posting to Backout with a bearer token; alone, or one member of
    an HA pair (`cluster_port` and `peers`)."""

    def __init__(self, workdir: Path, *, webhook_url: str, token: str, cluster_port: int | None = None,
                 peers: tuple[int, ...] = ()) -> None:
        self.binary = need_binary("prometheus-alertmanager")
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        # An HA pair: each member gossips with the others on its cluster port.
        self.cluster = ([f"--cluster.listen-address=127.0.0.1:{cluster_port}", "--cluster.peer-timeout=2s",
                         "--cluster.gossip-interval=100ms", "--cluster.pushpull-interval=1s",
                         *(f"--cluster.peer=127.0.0.1:{peer}" for peer in peers)]
                        if cluster_port else ["--cluster.listen-address="])
        self.url = f"http://127.0.0.1:{self.port}"
        config = {
            "route": {"receiver": "backout", "group_by": ["alertname", "service"],
                      "group_wait": "1s", "group_interval": "1s", "repeat_interval": "1h"},
            "receivers": [{"name": "backout", "webhook_configs": [{
                "url": webhook_url, "send_resolved": True,
                "http_config": {"authorization": {"type": "Bearer", "credentials": token}},
            }]}],
        }
        self.config_path = workdir / "alertmanager.yml"
        self.config_path.write_text(yaml.safe_dump(config))
        self.log = workdir / "alertmanager.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Alertmanager:
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                [self.binary, f"--config.file={self.config_path}",
                 f"--storage.path={self.workdir / 'data'}",
                 f"--web.listen-address=127.0.0.1:{self.port}",
                 *self.cluster, "--log.level=debug"],
                stdout=log, stderr=subprocess.STDOUT,
            )
        wait_until(lambda: httpx.get(f"{self.url}/-/ready", timeout=1).status_code == 200,
                   timeout=20, what=f"alertmanager on {self.url}")
        return self

    def post_alerts(self, alerts: list[dict[str, Any]]) -> None:
        httpx.post(f"{self.url}/api/v2/alerts", json=alerts, timeout=5).raise_for_status()

    def failed_notifications(self) -> float:
        text = httpx.get(f"{self.url}/metrics", timeout=5).text
        return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                   if line.startswith("alertmanager_notifications_failed_total"))

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)


class Postgres:
    """A throwaway PostgreSQL server from the machine's binaries, on loopback."""

    def __init__(self) -> None:
        self.initdb = need_binary("initdb")
        self.pg_ctl = need_binary("pg_ctl")
        # Not under pytest's root-only temp folder: the postgres user must be able to reach it.
        self.workdir = Path(tempfile.mkdtemp(prefix="backout-pg-"))
        self.datadir = self.workdir / "pgdata"
        self.port = free_port()
        self.url = f"postgresql+psycopg://backout@127.0.0.1:{self.port}/backout"

    def _run(self, *args: str) -> None:
        command = list(args)
        if os.geteuid() == 0:
            # initdb refuses to run as root: run the server as the postgres user.
            command = ["runuser", "-u", "postgres", "--", *command]
        done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(command)} failed:\n{done.stdout}{done.stderr}")

    def start(self) -> Postgres:
        atexit.register(self.stop)  # however the run ends (an error, Ctrl-C, a SIGTERM made an interrupt)
        if os.geteuid() == 0:
            shutil.chown(self.workdir, "postgres", "postgres")
        self._run(self.initdb, "-D", str(self.datadir), "-U", "backout", "--auth=trust",
                  "--no-sync", "-E", "UTF8")
        self._run(self.pg_ctl, "-D", str(self.datadir), "-l", str(self.workdir / "pg.log"), "-w",
                  "-o", f"-p {self.port} -k {self.workdir} -c listen_addresses=127.0.0.1 -c fsync=off",
                  "start")
        import psycopg

        with psycopg.connect(host="127.0.0.1", port=self.port, user="backout", dbname="postgres",
                             autocommit=True) as conn:
            conn.execute("CREATE DATABASE backout")
        return self

    def pause(self) -> None:
        """Stop the server, keeping its data (a database outage)."""
        self._run(self.pg_ctl, "-D", str(self.datadir), "-m", "fast", "-w", "stop")

    def resume(self) -> None:
        self._run(self.pg_ctl, "-D", str(self.datadir), "-l", str(self.workdir / "pg.log"), "-w",
                  "-o", f"-p {self.port} -k {self.workdir} -c listen_addresses=127.0.0.1 -c fsync=off",
                  "start")

    def stop(self) -> None:
        atexit.unregister(self.stop)
        if (self.datadir / "postmaster.pid").exists():
            self._run(self.pg_ctl, "-D", str(self.datadir), "-m", "immediate", "stop")
        shutil.rmtree(self.workdir, ignore_errors=True)


class Exporter:
    """A tiny metrics endpoint the test controls: set `text` to what Prometheus should scrape."""

    def __init__(self) -> None:
        import http.server

        self.text = ""
        exporter = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                body = exporter.text.encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *_: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def start(self) -> Exporter:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class Prometheus:
    """The real Prometheus binary scraping one target every second (and evaluating `rules`, alerting
    rules as a rules file lists them, every second)."""

    def __init__(self, workdir: Path, *, target_port: int, rules: list[dict[str, Any]] | None = None,
                 external_labels: dict[str, str] | None = None) -> None:
        self.binary = need_binary("prometheus")
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config: dict[str, Any] = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s",
                       **({"external_labels": external_labels} if external_labels else {})},
            "scrape_configs": [{"job_name": "test",
                                "static_configs": [{"targets": [f"127.0.0.1:{target_port}"]}]}],
        }
        if rules:
            (workdir / "rules.yml").write_text(yaml.safe_dump({"groups": [{"name": "test", "rules": rules}]}))
            config["rule_files"] = [str(workdir / "rules.yml")]
        (workdir / "prometheus.yml").write_text(yaml.safe_dump(config))
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Prometheus:
        with (self.workdir / "prometheus.log").open("ab") as log:
            self.proc = subprocess.Popen(
                [self.binary, f"--config.file={self.workdir / 'prometheus.yml'}",
                 f"--storage.tsdb.path={self.workdir / 'data'}",
                 f"--web.listen-address=127.0.0.1:{self.port}"],
                stdout=log, stderr=subprocess.STDOUT,
            )
        wait_until(lambda: httpx.get(f"{self.url}/-/ready", timeout=1).status_code == 200,
                   timeout=30, what=f"prometheus on {self.url}")
        return self

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(15)
