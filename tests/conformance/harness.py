"""A throw-away fleetca for the conformance checkers: free port, fresh data directory, fresh
database (SQLite in the data directory, or a new database on FLEETCA_TEST_POSTGRES_URL), a known
admin token and master key. Nothing here skips: a missing tool or a server that does not come up
raises `Failure`.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
ANSI = re.compile(r"\x1b\[[0-9;]*m")
TIMEOUT = 30.0  # seconds for one HTTP request of the harness (certificate issuance included)


class Failure(Exception):
    """A conformance failure or a broken environment: the run must end non-zero."""


def require_tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise Failure(f"`{name}` is not on PATH (install tests/conformance/requirements.txt / Debian's package)")
    return path


def fleetca_binary() -> Path:
    if os.environ.get("FLEETCA_BIN"):
        binary = Path(os.environ["FLEETCA_BIN"])
    else:
        target = Path(os.environ.get("CARGO_TARGET_DIR", REPO / "target"))
        if not target.is_absolute():
            target = REPO / target
        binary = target / "debug" / "fleetca"
    if not os.access(binary, os.X_OK):
        raise Failure(f"no fleetca binary at {binary} (run `cargo build --locked --bin fleetca` first)")
    return binary


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def tail(path: Path, lines: int = 40) -> str:
    if not path.exists():
        return ""
    text = ANSI.sub("", path.read_text(encoding="utf-8", errors="replace")).splitlines()
    return "\n".join(text[-lines:])


class PostgresDatabase:
    """A new, empty database on the server of FLEETCA_TEST_POSTGRES_URL, dropped afterwards."""

    def __init__(self, server_url: str, label: str):
        self.psql = require_tool("psql")
        self.server_url = server_url
        self.name = f"fleetca_conformance_{label}_{secrets.token_hex(4)}"
        self._sql(f'CREATE DATABASE "{self.name}"')
        parts = urllib.parse.urlsplit(server_url)
        self.url = urllib.parse.urlunsplit(parts._replace(path="/" + self.name))

    def _sql(self, statement: str) -> None:
        done = subprocess.run(
            [self.psql, "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", self.server_url, "-c", statement],
            capture_output=True,
            text=True,
            timeout=60,
        )
        if done.returncode != 0:
            raise Failure(f"psql `{statement}` failed ({done.returncode}): {done.stderr.strip()}")

    def drop(self) -> None:
        self._sql(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')


class HttpResult:
    def __init__(self, method: str, url: str, body: bytes | None, status: int, headers, data: bytes):
        self.method, self.url, self.body = method, url, body
        self.status, self.headers, self.data = status, headers, data

    def json(self):
        return json.loads(self.data)

    def curl(self) -> str:
        """The request as a curl command line (the token left as $FLEETCA_ADMIN_TOKEN)."""
        cmd = f"curl -sS -X {self.method} '{self.url}' -H 'Authorization: Bearer $FLEETCA_ADMIN_TOKEN'"
        if self.body is not None:
            cmd += f" -H 'Content-Type: application/json' -d '{self.body.decode()}'"
        return cmd

    def describe(self) -> str:
        return f"{self.curl()}\n  -> {self.status} {self.data.decode(errors='replace')[:2000]}"


class Fleetca:
    """One fleetca process; `stop()` ends it and returns what its log says went wrong."""

    def __init__(self, binary: Path, workdir: Path, database_url: str | None, settings: str = ""):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.token = "adm-" + secrets.token_hex(24)
        self.master_key = secrets.token_hex(32)
        self.data_dir = workdir / "fleetca-data"
        self.data_dir.mkdir(parents=True)
        self.log = workdir / "fleetca.log"
        env = {k: v for k, v in os.environ.items() if not k.startswith("FLEETCA_")}
        env.update(
            FLEETCA_LISTEN=f"127.0.0.1:{self.port}",
            FLEETCA_DATA_DIR=str(self.data_dir),
            FLEETCA_PUBLIC_URL=self.url,
            FLEETCA_BOOTSTRAP_TOKEN=self.token,
            FLEETCA_MASTER_KEY=self.master_key,
            RUST_LOG=os.environ.get("RUST_LOG", "info"),
        )
        if database_url is not None:
            env["FLEETCA_DATABASE_URL"] = database_url
        if settings:
            config = workdir / "fleetca.toml"
            config.write_text(settings)
            env["FLEETCA_CONFIG"] = str(config)
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen([str(binary), "serve"], env=env, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while not self._healthy():
            if self.proc.poll() is not None:
                raise Failure(f"fleetca exited with {self.proc.returncode} at start\n{tail(self.log)}")
            if time.monotonic() > deadline:
                self.stop()
                raise Failure(f"fleetca did not answer /healthz within 60 s\n{tail(self.log)}")
            time.sleep(0.05)

    def _healthy(self) -> bool:
        try:
            with urllib.request.urlopen(self.url + "/healthz", timeout=1) as r:
                return r.status == 200
        except (urllib.error.URLError, OSError):
            return False

    def call(self, method: str, path: str, body=None, auth: bool = True) -> HttpResult:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.url + path, data=data, method=method)
        if auth:
            req.add_header("Authorization", f"Bearer {self.token}")
        if data is not None:
            req.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(req, timeout=TIMEOUT) as r:
                return HttpResult(method, self.url + path, data, r.status, r.headers, r.read())
        except urllib.error.HTTPError as e:
            return HttpResult(method, self.url + path, data, e.code, e.headers, e.read())

    def expect(self, method: str, path: str, body=None, status: int = 200, auth: bool = True) -> HttpResult:
        result = self.call(method, path, body, auth)
        if result.status != status:
            raise Failure(f"expected {status}:\n  {result.describe()}")
        return result

    def stop(self) -> list[str]:
        """Stops the server; returns the log lines that show a panic (always a bug)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        text = ANSI.sub("", self.log.read_text(encoding="utf-8", errors="replace"))
        return [line for line in text.splitlines() if "panicked" in line]
