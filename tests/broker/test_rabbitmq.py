"""A real RabbitMQ (Debian's rabbitmq-server, MQTT + HTTP auth backend + management plugins)
asking fleetca who may connect and what each client may do, and fleetca ending live sessions
through RabbitMQ's management API when a credential stops being valid.

One private node serves the whole module (own node name, ports below 32768, data directory;
stopped at the end with the epmd it started): starting one takes about 12 s. RabbitMQ checks
certificate clients against fleetca's CA and CRL itself (the CRL file fleetca writes, under
its hash name in a CRL directory), so a revoked certificate's reconnect fails the handshake.

RabbitMQ asks fleetca through nginx, as it would through a load balancer: the last test points
nginx at two fleetca instances on PostgreSQL and rotates their CAs with rolling restarts.
"""

import os
import json
import secrets
import shutil
import signal
import subprocess
import tempfile
import threading
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from conftest import (
    TIMEOUT,
    Client,
    Fleetca,
    TlsFiles,
    stop_process,
    tail,
    wait_for,
    write_pem,
)

RMQ_BIN = Path("/usr/lib/rabbitmq/bin")
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
MGMT_USER = "fleetca-rabbitmq"  # `fleetca-` is a prefix no fleetca user may take


def low_port() -> int:
    """A free port below 32768 (RabbitMQ's listeners clash with the ephemeral range)."""
    import socket

    for _ in range(200):
        port = 20000 + secrets.randbelow(12000)
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
                return port
            except OSError:
                continue
    raise AssertionError("no free port below 32768")


class RabbitMq:
    """A private RabbitMQ node whose MQTT listeners authenticate and authorise through fleetca."""

    def __init__(self, workdir: Path, fleetca_url: str, tls: TlsFiles, crl_dir: Path, mgmt_port: int, password: str):
        for tool in ("rabbitmq-server", "rabbitmqctl"):
            assert (RMQ_BIN / tool).exists(), f"{RMQ_BIN / tool} is missing: apt-get install rabbitmq-server"
        self.dir = workdir / "rabbitmq"
        self.dir.mkdir()
        (self.dir / "home").mkdir()
        cookie = self.dir / "home" / ".erlang.cookie"
        cookie.write_text(secrets.token_hex(16))
        cookie.chmod(0o400)
        self.ports = {k: low_port() for k in ("epmd", "amqp", "dist", "mqtt", "mqtts")}
        self.ports["mgmt"] = mgmt_port
        self.password = password  # the management user's, which fleetca's [[brokers]] entry uses
        self.node = f"fleetca{secrets.token_hex(3)}@localhost"
        self.env = dict(
            os.environ,
            HOME=str(self.dir / "home"),
            RABBITMQ_NODENAME=self.node,
            RABBITMQ_MNESIA_BASE=str(self.dir / "mnesia"),
            RABBITMQ_LOG_BASE=str(self.dir / "log"),
            RABBITMQ_ENABLED_PLUGINS_FILE=str(self.dir / "enabled_plugins"),
            RABBITMQ_CONFIG_FILE=str(self.dir / "rabbitmq.conf"),
            RABBITMQ_ADVANCED_CONFIG_FILE=str(self.dir / "advanced.config"),
            RABBITMQ_CONF_ENV_FILE=str(self.dir / "rabbitmq-env.conf"),
            RABBITMQ_PID_FILE=str(self.dir / "rabbitmq.pid"),
            RABBITMQ_NODE_PORT=str(self.ports["amqp"]),
            RABBITMQ_DIST_PORT=str(self.ports["dist"]),
            ERL_EPMD_PORT=str(self.ports["epmd"]),
            ERL_EPMD_ADDRESS="127.0.0.1",
            RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}",
        )
        (self.dir / "rabbitmq-env.conf").write_text("")
        (self.dir / "enabled_plugins").write_text(
            "[rabbitmq_mqtt,rabbitmq_auth_backend_http,rabbitmq_management].\n"
        )
        (self.dir / "rabbitmq.conf").write_text(
            rabbitmq_conf(fleetca_url, self.ports["amqp"], self.ports["mqtt"], self.ports["mqtts"], self.ports["mgmt"])
        )
        (self.dir / "advanced.config").write_text(advanced_config(tls, crl_dir))
        self.log = self.dir / "server.out"
        started = time.monotonic()
        with open(self.log, "wb") as out:
            self.proc = subprocess.Popen(
                [str(RMQ_BIN / "rabbitmq-server")],
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        wait_for(self._up, 60, "rabbitmq-server await_startup", self.proc, self.log)
        self.ctl("add_user", MGMT_USER, self.password)
        self.ctl("set_user_tags", MGMT_USER, "administrator")
        self.ctl("set_permissions", "-p", "/", MGMT_USER, ".*", ".*", ".*")
        print(f"rabbitmq-server ready in {time.monotonic() - started:.1f} s")

    def ctl(self, *args: str) -> str:
        out = subprocess.run(
            [str(RMQ_BIN / "rabbitmqctl"), "-q", *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert out.returncode == 0, f"rabbitmqctl {' '.join(args)}: {out.stdout}{out.stderr}"
        return out.stdout

    def _up(self) -> bool:
        out = subprocess.run(
            [str(RMQ_BIN / "rabbitmqctl"), "-q", "await_startup", "--timeout", "5"],
            env=self.env,
            capture_output=True,
            timeout=30,
        )
        return out.returncode == 0

    def connections(self, user: str) -> list:
        req = urllib.request.Request(f"http://127.0.0.1:{self.ports['mgmt']}/api/connections/username/{user}")
        import base64
        import json

        auth = base64.b64encode(f"{MGMT_USER}:{self.password}".encode()).decode()
        req.add_header("Authorization", f"Basic {auth}")
        with urllib.request.urlopen(req, timeout=TIMEOUT) as r:
            return json.loads(r.read())

    def stop(self) -> None:
        epmd = epmd_pid(self.ports["epmd"])
        if self.proc.poll() is None:
            subprocess.run(
                [str(RMQ_BIN / "rabbitmqctl"), "-q", "stop"], env=self.env, capture_output=True, timeout=60
            )
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)
        if epmd is not None:
            try:
                os.kill(epmd, signal.SIGTERM)
            except ProcessLookupError:
                pass


def epmd_pid(port: int):
    """The epmd listening on `port` (it outlives the node, reparented to PID 1)."""
    out = subprocess.run(["ss", "-ltnpH", f"sport = :{port}"], capture_output=True, text=True)
    for part in out.stdout.split("pid=")[1:]:
        digits = "".join(ch for ch in part if ch.isdigit() or ch == ",").split(",")[0]
        if digits:
            return int(digits)
    return None


def rabbitmq_conf(fleetca_url: str, amqp: int, mqtt: int, mqtts: int, mgmt: int) -> str:
    """The README's rabbitmq.conf, on this test's ports (TLS options are in advanced.config)."""
    return f"""listeners.tcp.1 = 127.0.0.1:{amqp}
loopback_users = none
log.file.level = info
log.console = false

auth_backends.1 = internal
auth_backends.2 = http
auth_http.http_method   = post
auth_http.user_path     = {fleetca_url}/broker/rabbitmq/user
auth_http.vhost_path    = {fleetca_url}/broker/rabbitmq/vhost
auth_http.resource_path = {fleetca_url}/broker/rabbitmq/resource
auth_http.topic_path    = {fleetca_url}/broker/rabbitmq/topic

mqtt.listeners.tcp.1 = 127.0.0.1:{mqtt}
mqtt.listeners.ssl.1 = 127.0.0.1:{mqtts}
mqtt.allow_anonymous = false
mqtt.ssl_cert_login  = true
ssl_cert_login_from  = common_name
mqtt.vhost    = /
mqtt.exchange = amq.topic

management.tcp.ip   = 127.0.0.1
management.tcp.port = {mgmt}
"""


def advanced_config(tls: TlsFiles, crl_dir: Path) -> str:
    """TLS for the MQTT listener, with fleetca's CA and CRL (all of `ssl_options` here: set in
    advanced.config it replaces, not extends, what rabbitmq.conf sets)."""
    return f"""[{{rabbit, [{{ssl_options, [
    {{cacertfile, "{tls.ca}"}},
    {{certfile, "{tls.cert}"}},
    {{keyfile, "{tls.key}"}},
    {{verify, verify_peer}},
    {{fail_if_no_peer_cert, true}},
    {{crl_check, peer}},
    {{crl_cache, {{ssl_crl_hash_dir, {{internal, [{{dir, "{crl_dir}"}}]}}}}}}
]}}]}}].
"""


class Front:
    """nginx in front of fleetca, as a load balancer: each request goes to one of the
    instances, and to the next when one refuses the connection or is not ready (503)."""

    def __init__(self, workdir: Path, upstreams: list[str]):
        assert Path(NGINX).exists(), f"{NGINX} is missing: apt-get install nginx-light"
        self.dir = workdir / "nginx"
        self.dir.mkdir()
        self.port = low_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.conf = self.dir / "nginx.conf"
        self.conf.write_text(self._conf(upstreams))
        self.proc = subprocess.Popen(
            [NGINX, "-p", str(self.dir), "-c", str(self.conf)],
            stdout=subprocess.DEVNULL,
            stderr=open(self.dir / "stderr.log", "wb"),
        )
        wait_for(self._up, 10, "nginx", self.proc, self.dir / "error.log")

    def _conf(self, upstreams: list[str]) -> str:
        d = self.dir
        servers = "".join(f"    server {u} max_fails=0;\n" for u in upstreams)
        # POSTs (RabbitMQ's auth_http) are retried on the next instance only when the first
        # refused the connection or answered 502/503: nothing was done there.
        # A master process: only it reloads its settings on SIGHUP (single-process mode does not).
        user = "user root;\n" if os.geteuid() == 0 else ""  # its workers reach this test's directory
        return f"""daemon off;
{user}pid {d}/nginx.pid;
error_log {d}/error.log info;
worker_processes 1;
events {{ worker_connections 256; }}
http {{
  access_log off;
  client_body_temp_path {d}/body;
  proxy_temp_path {d}/proxy;
  fastcgi_temp_path {d}/fastcgi;
  uwsgi_temp_path {d}/uwsgi;
  scgi_temp_path {d}/scgi;
  upstream fleetca {{
{servers}    keepalive 16;
  }}
  server {{
    listen 127.0.0.1:{self.port};
    location / {{
      proxy_pass http://fleetca;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_connect_timeout 2s;
      proxy_next_upstream error http_502 http_503 non_idempotent;
    }}
  }}
}}
"""

    def _up(self) -> bool:
        import socket

        with socket.socket() as s:
            return s.connect_ex(("127.0.0.1", self.port)) == 0

    def point(self, upstreams: list[str]) -> None:
        """Sends requests to these instances from now on (a graceful reload)."""
        self.conf.write_text(self._conf(upstreams))
        check = subprocess.run([NGINX, "-t", "-p", str(self.dir), "-c", str(self.conf)], capture_output=True, text=True)
        assert check.returncode == 0, check.stderr
        self.proc.send_signal(signal.SIGHUP)
        time.sleep(0.5)

    def stop(self) -> None:
        stop_process(self.proc)


class Stack:
    def __init__(self, fleetca: Fleetca, rabbit: RabbitMq, workdir: Path, ca_pem: str, front: Front):
        self.fleetca = fleetca
        self.rabbit = rabbit
        self.workdir = workdir
        self.ca_pem = ca_pem
        self.front = front

    def client(self, client_id, username=None, password=None, tls: TlsFiles | None = None) -> Client:
        port = self.rabbit.ports["mqtts" if tls else "mqtt"]
        return Client(port, client_id, username, password, tls)

    def tls_for(self, name: str, issued: dict) -> TlsFiles:
        return TlsFiles(self.workdir / name, issued, self.ca_pem)


@pytest.fixture(scope="module")
def stack(request, fleetca_bin):
    workdir = Path(tempfile.mkdtemp(prefix="fleetca-rabbitmq-"))
    crl_dir = workdir / "crls"
    crl_dir.mkdir()
    fleetca_port = low_port()
    mgmt_port = low_port()
    password = secrets.token_hex(16)
    # One file per CA ({ca} in the path): Erlang's ssl reads one CRL per file.
    settings = f"""crl_file = "{crl_dir / 'fleetca-crl-{ca}.pem'}"
disconnect_retry_hours = 1

[[brokers]]
kind = "rabbitmq"
name = "rabbit"
url = "http://127.0.0.1:{mgmt_port}"
username = "{MGMT_USER}"
password_env = "FLEETCA_RABBITMQ_PASSWORD"
"""
    fleetca = Fleetca(
        fleetca_bin,
        workdir,
        settings,
        port=fleetca_port,
        extra_env={"FLEETCA_RABBITMQ_PASSWORD": password},
    )
    rabbit = None
    front = None
    try:
        front = Front(workdir, [f"127.0.0.1:{fleetca_port}"])
        ca_pem = urllib.request.urlopen(fleetca.url + "/ca.pem", timeout=TIMEOUT).read().decode()
        # RabbitMQ (Erlang's ssl) finds a CRL by its issuer's hash, `<hash>.r0`, `.r1`, …, one
        # CRL per file: the root's, the intermediate's own and its 16 shards', each linked by
        # its issuer's hash by `openssl rehash`, as the README says.
        crls = sorted(crl_dir.glob("fleetca-crl-*.pem"))
        assert len(crls) == 18, crls
        subprocess.run(["openssl", "rehash", str(crl_dir)], check=True, capture_output=True)
        links = sorted(p.name for p in crl_dir.glob("*.r*"))
        assert len(links) == 18, links
        server = TlsFiles(workdir / "server", fleetca.create_server_certificate(), ca_pem)
        rabbit = RabbitMq(workdir, front.url, server, crl_dir, mgmt_port, password)
        yield Stack(fleetca, rabbit, workdir, ca_pem, front)
    finally:
        if rabbit is not None:
            rabbit.stop()
        if front is not None:
            front.stop()
        fleetca.stop()
        if request.session.testsfailed:
            print(f"fleetca's log (last lines):\n{tail(fleetca.log, 60)}")
            print(f"rabbitmq's log: {rabbit.dir / 'log' if rabbit else '-'}")
        shutil.rmtree(workdir, ignore_errors=True)


def expect_closed(client: Client, what: str, timeout: float = 10.0) -> float:
    """Waits until the broker closes the client's connection; returns when (monotonic)."""
    with client.lock:
        ok = client.lock.wait_for(lambda: client.disconnected, timeout)
    assert ok, f"{client.client_id}: still connected {timeout} s after {what}"
    return time.monotonic()


def refused(stack: Stack, client_id, username=None, password=None, tls=None) -> None:
    """A new connection is refused: CONNACK failure, or (a revoked certificate) the handshake."""
    c = stack.client(client_id, username, password, tls)
    try:
        rc = c.connect()
        assert rc.is_failure, f"{client_id}: connected although it must be refused"
    except (AssertionError, OSError, ConnectionError) as e:
        if "connected although" in str(e):
            raise
    finally:
        c.close()


def test_devices_publish_and_subscribe_within_their_topics(stack):
    f = stack.fleetca
    dev = f.create_device("rmq-dev-1", "acme", "device-password-1")
    c = stack.client(dev.device_id, dev.username, dev.password())
    assert not c.connect().is_failure
    assert c.subscribe("devices/acme/rmq-dev-1/#") in (0, 1)
    c.publish("devices/acme/rmq-dev-1/telemetry", "21.5")
    c.expect("devices/acme/rmq-dev-1/telemetry", "21.5")
    # Another device's topic: RabbitMQ closes the connection on a denied publish.
    c.c.publish("devices/acme/rmq-dev-2/telemetry", "spoofed", 1)
    expect_closed(c, "a publish outside its topics")
    c.close()
    # A wrong password, and a client id that is not the device id, are refused at CONNECT.
    refused(stack, dev.device_id, dev.username, "signature=00&timestamp=1")
    refused(stack, "someone-else", dev.username, dev.password())


def test_an_api_key_reads_its_enterprise_topics_with_its_token(stack):
    f = stack.fleetca
    key = f.create_api_key("svc-rmq-token", "nnn.acme")
    reader = stack.client("reader-1", key["username"], key["token"])
    assert not reader.connect().is_failure
    # The default rule: v4/groups/{enterprise}.master/# to read (a `.` in the enterprise is a
    # level boundary in RabbitMQ's routing keys, and the rule is read the same way).
    assert reader.subscribe("v4/groups/nnn.acme.master/#") in (0, 1)
    dev = f.create_device("rmq-dev-3", "acme", "device-password-3")
    writer = stack.client(dev.device_id, dev.username, dev.password())
    assert not writer.connect().is_failure
    writer.close()
    # Another enterprise's group: the subscription closes the connection.
    reader.c.subscribe("v4/groups/globex.master/#", 1)
    expect_closed(reader, "a subscription outside its rules")
    reader.close()
    refused(stack, "reader-2", key["username"], "fca_000000000000_wrong")


def dp_of(issued: dict) -> str:
    """The CRL distribution point a certificate names."""
    out = subprocess.run(["openssl", "x509", "-noout", "-ext", "crlDistributionPoints"], input=issued["certificate_pem"],
                         capture_output=True, text=True, check=True).stdout
    return next(w[4:] for w in out.split() if w.startswith("URI:"))


def test_certificate_clients_connect_until_revoked_and_are_disconnected_at_once(stack):
    f = stack.fleetca
    key = f.create_api_key("svc-rmq-cert", "nnn.acme")
    issued = f.create_certificate(key["id"])
    tls = stack.tls_for("svc-rmq-cert", issued)
    c = stack.client("cert-client-1", tls=tls)
    assert not c.connect().is_failure, "a certificate client of an active key connects"
    assert c.subscribe("v4/groups/nnn.acme.master/#") in (0, 1)
    wait_for(lambda: stack.rabbit.connections("svc-rmq-cert"), 5, "the connection listed")
    started = time.monotonic()
    f.revoke_certificate(issued["id"])
    ended = expect_closed(c, "its certificate was revoked")
    print(f"certificate revoked -> RabbitMQ connection closed: {(ended - started) * 1000:.0f} ms")
    c.close()
    # The reconnect fails RabbitMQ's own CRL check (fleetca's CRL file, published before the
    # revoke returned).
    refused(stack, "cert-client-2", tls=tls)
    # A certificate of another shard of the CA's CRL (certificates name the shards in turn)
    # still connects: RabbitMQ finds each certificate's shard among the CA's CRLs.
    other = f.create_certificate(key["id"])
    assert dp_of(other) != dp_of(issued), (dp_of(other), dp_of(issued))
    c = stack.client("cert-client-3", tls=stack.tls_for("svc-rmq-cert-other", other))
    assert not c.connect().is_failure, "a certificate of another CRL shard is refused"
    c.close()
    done = f.request("GET", "/api/v4/manage/disconnects/?status=done")
    assert any(d["action"] == "certificate.revoke" and d["done_brokers"] == ["rabbit"] for d in done["results"]), done


def test_a_deactivated_key_and_a_disabled_device_are_disconnected_and_refused(stack):
    f = stack.fleetca
    key = f.create_api_key("svc-rmq-deact", "nnn.acme")
    token_client = stack.client("deact-1", key["username"], key["token"])
    assert not token_client.connect().is_failure
    wait_for(lambda: stack.rabbit.connections(key["username"]), 5, "the key's connection listed")
    started = time.monotonic()
    f.set_user_active(key["id"], False)
    ended = expect_closed(token_client, "its key was deactivated")
    print(f"API key deactivated -> connection closed: {(ended - started) * 1000:.0f} ms")
    token_client.close()
    refused(stack, "deact-2", key["username"], key["token"])

    dev = f.create_device("rmq-dev-4", "acme", "device-password-4")
    c = stack.client(dev.device_id, dev.username, dev.password())
    assert not c.connect().is_failure
    wait_for(lambda: stack.rabbit.connections(dev.username), 5, "the device's connection listed")
    started = time.monotonic()
    f.set_device_active("acme", dev.device_id, False)
    ended = expect_closed(c, "the device was disabled")
    print(f"device disabled -> connection closed: {(ended - started) * 1000:.0f} ms")
    c.close()
    refused(stack, dev.device_id, dev.username, dev.password())


def test_an_enos_device_signs_in_and_is_refused_once_disabled(stack):
    from test_sign_devices import enos_login  # the EnOS sign login the amqtt tests use

    f = stack.fleetca
    f.create_product("rmqproduct0001", "enos")
    f.create_sign_device("rmqproduct0001", "rmq-sign-1", "sign-device-secret-1")
    login = enos_login("rmq-sign-1", "sign-device-secret-1", product_key="rmqproduct0001")
    client_id, username, password = login.client_id, login.username, login.password
    c = stack.client(client_id, username, password)
    assert not c.connect().is_failure
    assert c.subscribe("/sys/rmqproduct0001/rmq-sign-1/#") in (0, 1)
    c.publish("/sys/rmqproduct0001/rmq-sign-1/thing/event/post", "{}")
    c.expect("/sys/rmqproduct0001/rmq-sign-1/thing/event/post", "{}")
    f.set_sign_device_active("rmqproduct0001", "rmq-sign-1", False)
    expect_closed(c, "the device was disabled")
    c.close()
    refused(stack, client_id, username, password)


class PasswordFleet:
    """Password clients (API keys with their tokens, devices with their HA1 signatures) that
    connect through RabbitMQ, publish once and leave, round after round, in threads beside
    the test; and one deactivated API key that must be refused every round."""

    def __init__(self, stack: Stack, clients: list, refused_one: tuple):
        self.stack, self.clients, self.refused_one = stack, clients, refused_one
        self.rounds = 0
        self.failures: list[str] = []
        self.admitted: list[str] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _once(self, client_id: str, username: str, password) -> str | None:
        c = self.stack.client(client_id, username, password() if callable(password) else password)
        try:
            rc = c.connect()
            if rc.is_failure:
                return f"{client_id}: CONNACK {rc}"
            if username.startswith("svc-"):  # an API key reads its enterprise's group
                code = c.subscribe("v4/groups/nnn.ha.master/#")
                return None if code in (0, 1) else f"{client_id}: SUBACK {code}"
            c.publish(f"devices/ha/{client_id}/telemetry", "rotating")  # a device writes its own
            return None
        except (AssertionError, OSError, ConnectionError) as e:
            return f"{client_id}: {e}"
        finally:
            c.close()

    def _run(self) -> None:
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(max_workers=5) as pool:
            while not self.stop.is_set():
                results = list(pool.map(lambda c: self._once(*c), self.clients))
                self.failures += [f"round {self.rounds + 1}: {r}" for r in results if r]
                if self._once(*self.refused_one) is None:
                    self.admitted.append(f"round {self.rounds + 1}")
                self.rounds += 1

    def wait_rounds(self, n: int) -> None:
        target = self.rounds + n
        wait_for(lambda: self.rounds >= target or not self.thread.is_alive(), 120, f"{n} more rounds")

    def finish(self) -> None:
        self.stop.set()
        self.thread.join(timeout=120)


def test_password_clients_are_never_refused_through_an_issuing_ca_rotation_and_a_root_rollover(stack, fleetca_bin):
    """Two fleetca instances on one PostgreSQL behind the load balancer (nginx), as the README's
    "Running several instances" runs them, go through the README's "Rotating a CA" and "Root
    rollover" with a rolling restart at each "restart every instance". Fifty password clients
    reconnect through RabbitMQ all along: not one is refused, and a deactivated API key is
    refused in every round."""
    server_url = os.environ.get("FLEETCA_TEST_POSTGRES_URL")
    assert server_url, "FLEETCA_TEST_POSTGRES_URL is not set: scripts/test starts PostgreSQL and sets it"
    psql = shutil.which("psql")
    assert psql, "psql is missing: apt-get install postgresql-client"
    name = f"fleetca_ha_{secrets.token_hex(4)}"
    subprocess.run([psql, "-X", "-q", "-d", server_url, "-c", f'CREATE DATABASE "{name}"'], check=True, timeout=60)
    database_url = urllib.parse.urlunsplit(urllib.parse.urlsplit(server_url)._replace(path="/" + name))
    shared = {
        "FLEETCA_DATABASE_URL": database_url,
        "FLEETCA_MASTER_KEY": secrets.token_hex(32),
        "FLEETCA_PUBLIC_URL": stack.front.url,
    }
    instances: list[Fleetca] = []
    fleet = None
    try:
        for i in range(2):
            workdir = stack.workdir / f"ha-{i}"
            workdir.mkdir()
            instance = Fleetca(fleetca_bin, workdir, None, port=low_port(), extra_env=shared)
            if instances:
                instance.token = instances[0].token  # the first start bootstrapped the admin
            instances.append(instance)
        first = instances[0]
        stack.front.point([f"127.0.0.1:{i.port}" for i in instances])

        clients = []
        for n in range(25):
            key = first.create_api_key(f"svc-ha-{n:02}", "nnn.ha")
            clients.append((f"svc-ha-{n:02}-client", key["username"], key["token"]))
            dev = first.create_device(f"ha-dev-{n:02}", "ha", f"ha-device-password-{n:02}")
            clients.append((dev.device_id, dev.username, dev.password))
        gone = first.create_api_key("svc-ha-gone", "nnn.ha")
        first.set_user_active(gone["id"], False)
        fleet = PasswordFleet(stack, clients, ("svc-ha-gone-client", gone["username"], gone["token"]))
        fleet.wait_rounds(1)

        def restart_every_instance() -> None:
            for instance in instances:
                instance.restart()
                fleet.wait_rounds(1)

        # Rotating a CA: add, restart, activate, restart.
        first.offline("ca", "intermediate", "--new", "--common-name", "HA issuing CA 2")
        restart_every_instance()
        first.offline("ca", "activate", "3")
        restart_every_instance()
        # Root rollover: the new root, restart, its intermediate, restart, activate, restart.
        first.offline("ca", "root", "--common-name", "HA root CA 2")
        restart_every_instance()
        first.offline("ca", "intermediate", "--new", "--common-name", "HA issuing CA 3")
        restart_every_instance()
        first.offline("ca", "activate", "5")
        restart_every_instance()
        fleet.finish()

        listed = first.offline("ca", "list")
        assert any(line.startswith("5 ") and "active" in line for line in listed.splitlines()), listed
        print(f"{fleet.rounds} rounds of {len(clients)} password clients through 10 rolling restarts")
        assert not fleet.failures, (
            f"{len(fleet.failures)} refused:\n" + "\n".join(fleet.failures[:20])
            + "".join(f"\n--- {i.log}:\n{tail(i.log, 30)}" for i in instances)
        )
        assert not fleet.admitted, f"the deactivated key was admitted in {fleet.admitted}"
        assert fleet.rounds >= 11, f"only {fleet.rounds} rounds ran"

        # An intermediate revoked through one instance while the other still issues from it
        # (restarted before the activation): the other stops issuing at once, and its CRL of
        # the root lists the intermediate, within a second or so (the change log).
        second = instances[1]
        first.offline("ca", "intermediate", "--new", "--common-name", "HA issuing CA 4")
        for instance in instances:
            instance.restart()
        first.offline("ca", "activate", "6")
        first.restart()
        key = first.create_api_key("svc-ha-certs", "nnn.ha")
        body = {"name": "from CA 5", "api_key_id": key["id"]}
        second.request("POST", "/api/v4/manage/mqtt-certificates/", body, expect=201)
        out = first.request("POST", "/api/v4/manage/ca/5/revoke/", {"reason": "keyCompromise"})
        assert out["certificates_revoked"] == 1 and out["listed_by_root"], out

        def refuses_to_issue() -> bool:
            req = urllib.request.Request(
                second.url + "/api/v4/manage/mqtt-certificates/", data=json.dumps(body).encode(), method="POST",
                headers={"Authorization": f"Bearer {second.token}", "Content-Type": "application/json"},
            )
            try:
                urllib.request.urlopen(req, timeout=TIMEOUT)
                return False
            except urllib.error.HTTPError as e:
                return e.code == 503 and "revoked" in e.read().decode()

        def lists_ca_5() -> bool:
            pem = urllib.request.urlopen(second.url + "/crl/4.pem", timeout=TIMEOUT).read()
            text = subprocess.run(["openssl", "crl", "-noout", "-text"], input=pem, capture_output=True).stdout
            return out["serial"].upper() in text.decode().replace(":", "").upper()

        wait_for(refuses_to_issue, 5, "the other instance stops issuing from the revoked CA")
        wait_for(lists_ca_5, 5, "the other instance's root CRL lists the revoked CA")
    finally:
        if fleet is not None:
            fleet.finish()
        stack.front.point([f"127.0.0.1:{stack.fleetca.port}"])
        for instance in instances:
            instance.stop()
        subprocess.run([psql, "-X", "-q", "-d", server_url, "-c", f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'],
                       timeout=60)
