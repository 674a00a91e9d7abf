"""Fixtures: a fresh fleetca, a fresh amqtt broker that asks it over HTTP, and MQTT clients.

Each test gets its own fleetca data directory and its own amqtt process on free loopback
ports. Nothing here skips: a missing binary or package fails the test.
"""

import hashlib
import hmac
import json
import os
import queue
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import amqtt.contrib.http  # noqa: F401  (here, so a missing amqtt, aiohttp or SQLAlchemy fails at once)
import fleetca_amqtt  # noqa: F401  (the certificate-sending auth plugin the brokers load by name)
import paho.mqtt.client as mqtt
import pytest
import yaml

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
TIMEOUT = 5.0  # seconds for any single network step
ANSI = re.compile(r"\x1b\[[0-9;]*m")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(predicate, timeout: float, what: str, proc=None, log=None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"{what}: the process exited with {proc.returncode}\n{tail(log)}")
        time.sleep(0.02)
    raise AssertionError(f"{what}: not within {timeout} s\n{tail(log)}")


def tail(path, lines: int = 60) -> str:
    if path is None or not Path(path).exists():
        return ""
    text = ANSI.sub("", Path(path).read_text(encoding="utf-8", errors="replace")).splitlines()
    return "\n".join(text[-lines:])


def stop_process(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


# ---------------------------------------------------------------------------------------
# fleetca


def ha1(device_id: str, realm: str, password: str) -> str:
    return hashlib.md5(f"{device_id}:{realm}:{password}".encode()).hexdigest()


def device_password(ha1_hex: str, timestamp: int | None = None) -> str:
    """The MQTT password a device sends: HMAC-SHA256 of the unix time, keyed with its HA1."""
    ts = int(time.time()) if timestamp is None else timestamp
    signature = hmac.new(ha1_hex.encode(), str(ts).encode(), hashlib.sha256).hexdigest()
    return f"signature={signature}&timestamp={ts}"


class Fleetca:
    def __init__(
        self,
        binary: str,
        workdir: Path,
        settings_toml: str | None,
        port: int | None = None,
        extra_args: tuple[str, ...] = (),
        extra_env: dict | None = None,
    ):
        self.port = free_port() if port is None else port
        self.url = f"http://127.0.0.1:{self.port}"
        self.token = "adm-" + secrets.token_hex(24)
        self.data_dir = workdir / "fleetca-data"
        self.data_dir.mkdir()
        self.log = workdir / "fleetca.log"
        args = [binary]
        if settings_toml is not None:
            settings = workdir / "fleetca.toml"
            settings.write_text(settings_toml, encoding="utf-8")
            args += ["--config", str(settings)]
        args += ["serve", "--listen", f"127.0.0.1:{self.port}", "--data-dir", str(self.data_dir), *extra_args]
        env = {k: v for k, v in os.environ.items() if not k.startswith("FLEETCA_")}
        env.update(
            FLEETCA_BOOTSTRAP_TOKEN=self.token,
            FLEETCA_PUBLIC_URL=self.url,
            RUST_LOG=env.get("RUST_LOG", "debug"),
        )
        env.update(extra_env or {})
        self.args, self.env = args, env
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen(args, env=env, stdout=log, stderr=subprocess.STDOUT)
        wait_for(self._healthy, 15, "fleetca /healthz", self.proc, self.log)

    def _healthy(self, path: str = "/healthz") -> bool:
        try:
            with urllib.request.urlopen(self.url + path, timeout=1) as r:
                return r.status == 200
        except (urllib.error.URLError, OSError):
            return False

    def restart(self) -> None:
        """Stops the process (SIGTERM: it finishes what it is answering) and starts it again
        with the same port, data, settings and environment; returns once it is ready
        (`/readyz`, what a load balancer health-checks)."""
        self.stop()
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(self.args, env=self.env, stdout=log, stderr=subprocess.STDOUT)
        wait_for(lambda: self._healthy("/readyz"), 30, "fleetca /readyz after a restart", self.proc, self.log)

    def offline(self, *args: str) -> str:
        """`fleetca <args>` on this instance's database and settings (`fleetca ca …`);
        returns its output, failing the test when it fails."""
        i = self.args.index("serve")
        data_dir = self.args[self.args.index("--data-dir") + 1]
        out = subprocess.run(
            [*self.args[:i], "--data-dir", data_dir, *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert out.returncode == 0, f"fleetca {' '.join(args)}: {out.stdout}{out.stderr}"
        return out.stdout

    def request(self, method: str, path: str, body=None, expect: int = 200):
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.url + path, data=data, method=method)
        req.add_header("Authorization", f"Bearer {self.token}")
        if data is not None:
            req.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(req, timeout=TIMEOUT) as r:
                status, text = r.status, r.read().decode()
        except urllib.error.HTTPError as e:
            status, text = e.code, e.read().decode()
        assert status == expect, f"{method} {path}: {status} {text}"
        return json.loads(text) if text else None

    def create_api_key(self, username: str, enterprise: str) -> dict:
        body = {"username": username, "is_service_account": True, "enterprise": enterprise}
        return self.request("POST", "/api/v4/manage/users/", body, expect=201)

    def set_user_active(self, user_id: str, active: bool) -> dict:
        return self.request("PATCH", f"/api/v4/manage/users/{user_id}/", {"is_active": active})

    def create_device(self, device_id: str, tenant: str, password: str) -> "Device":
        body = {"device_id": device_id, "tenant": tenant, "password": password}
        out = self.request("POST", "/api/v4/manage/devices/", body, expect=201)
        assert out["mqtt_username"] == f"device={device_id}&tenant={tenant}"
        return Device(device_id, tenant, ha1(device_id, out["realm"], password))

    def set_device_active(self, tenant: str, device_id: str, active: bool) -> dict:
        return self.request("PATCH", f"/api/v4/manage/devices/{tenant}/{device_id}/", {"is_active": active})

    def create_certificate(self, api_key_id: str, name: str = "MQTT client") -> dict:
        """An MQTT client certificate for an API key, with its new private key."""
        body = {"name": name, "api_key_id": api_key_id, "validity_hours": 8760}
        return self.request("POST", "/api/v4/manage/mqtt-certificates/", body, expect=201)

    def revoke_certificate(self, certificate_id: str) -> dict:
        path = f"/api/v4/manage/mqtt-certificates/{certificate_id}/revoke/"
        return self.request("POST", path, {"reason": "keyCompromise"})

    def create_server_certificate(self) -> dict:
        """A TLS server certificate for a broker on 127.0.0.1 (admin only)."""
        body = {"name": "amqtt", "dns_names": ["localhost"], "ip_addresses": ["127.0.0.1"]}
        return self.request("POST", "/api/v4/manage/server-certificates/", body, expect=201)

    # Products of sign-based devices (EnOS, Alibaba Cloud IoT) and their devices.

    def create_product(self, product_key: str, scheme: str, dynamic_activation: bool = False, **extra) -> dict:
        """A product; the response holds its `product_secret`, shown this once."""
        body = {"product_key": product_key, "name": f"{scheme} product", "scheme": scheme}
        body.update(dynamic_activation=dynamic_activation, **extra)
        out = self.request("POST", "/api/v4/manage/products/", body, expect=201)
        assert out["product_key"] == product_key and len(out["product_secret"]) >= 8, out
        return out

    def create_sign_device(self, product_key: str, device_key: str, device_secret: str | None = None) -> dict:
        """A device of a product; `device_secret` in the response only when fleetca generated it."""
        body = {"device_key": device_key}
        if device_secret is not None:
            body["device_secret"] = device_secret
        out = self.request("POST", f"/api/v4/manage/products/{product_key}/devices/", body, expect=201)
        assert out["mqtt_username"] == f"{device_key}&{product_key}", out
        assert ("device_secret" in out) == (device_secret is None), out
        return out

    def sign_device_path(self, product_key: str, device_key: str) -> str:
        return f"/api/v4/manage/products/{product_key}/devices/{device_key}/"

    def get_sign_device(self, product_key: str, device_key: str) -> dict:
        return self.request("GET", self.sign_device_path(product_key, device_key))

    def set_sign_device_active(self, product_key: str, device_key: str, active: bool) -> dict:
        return self.request("PATCH", self.sign_device_path(product_key, device_key), {"is_active": active})

    def rotate_sign_device_secret(self, product_key: str, device_key: str) -> str:
        out = self.request("POST", self.sign_device_path(product_key, device_key) + "rotate-secret/")
        return out["device_secret"]

    def reset_activation(self, product_key: str, device_key: str) -> dict:
        return self.request("POST", self.sign_device_path(product_key, device_key) + "reset-activation/")

    def register_device(self, fields: dict | None, raw: bytes | None = None, content_type: str | None = None):
        """POST /auth/register/device (no Bearer token): returns (HTTP status, JSON body).

        `fields` are sent form-encoded; `raw` sends that body instead, as `content_type`.
        """
        data = raw if raw is not None else urllib.parse.urlencode(fields or {}).encode()
        req = urllib.request.Request(self.url + "/auth/register/device", data=data, method="POST")
        req.add_header("Content-Type", content_type or "application/x-www-form-urlencoded")
        try:
            with urllib.request.urlopen(req, timeout=TIMEOUT) as r:
                status, text, headers = r.status, r.read().decode(), r.headers
        except urllib.error.HTTPError as e:
            status, text, headers = e.code, e.read().decode(), e.headers
        assert status < 500, f"/auth/register/device answered HTTP {status}: {text}"
        if status == 200:
            assert headers.get("Cache-Control") == "no-store", f"a registration answer may hold a secret: {headers}"
        body = json.loads(text) if headers.get_content_type() == "application/json" else text
        return status, body

    def log_text(self) -> str:
        return ANSI.sub("", self.log.read_text(encoding="utf-8", errors="replace"))

    def stop(self) -> None:
        stop_process(self.proc)


def write_pem(path: Path, text: str, private: bool = False) -> Path:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600 if private else 0o644)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)
    return path


class TlsFiles:
    """PEM files for one side of a TLS connection: the CA to trust, a certificate and its key."""

    def __init__(self, directory: Path, issued: dict | None, ca_pem: str):
        directory.mkdir(exist_ok=True)
        self.ca = write_pem(directory / "ca.crt", ca_pem)
        self.cert = self.key = None
        if issued is not None:
            # The certificate and its intermediate: the chain the side presents whole.
            self.cert = write_pem(directory / "cert.crt", issued["certificate_pem"] + issued["chain_pem"])
            self.key = write_pem(directory / "cert.key", issued["private_key_pem"], private=True)


class Device:
    def __init__(self, device_id: str, tenant: str, ha1_hex: str):
        self.device_id = device_id
        self.tenant = tenant
        self.ha1 = ha1_hex

    @property
    def username(self) -> str:
        return f"device={self.device_id}&tenant={self.tenant}"

    def password(self, timestamp: int | None = None) -> str:
        return device_password(self.ha1, timestamp)


@pytest.fixture(scope="session")
def fleetca_bin() -> str:
    path = os.environ.get("FLEETCA_BIN") or str(REPO / "target" / "debug" / "fleetca")
    if not (Path(path).is_file() and os.access(path, os.X_OK)):
        pytest.fail(
            f"fleetca binary not found at {path}: run `cargo build --bin fleetca` "
            "in the workspace or set FLEETCA_BIN"
        )
    return path


@pytest.fixture
def workdir():
    d = Path(tempfile.mkdtemp(prefix="fleetca-amqtt-"))
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def fleetca(request, fleetca_bin, workdir):
    """A fresh fleetca. `@pytest.mark.fleetca_settings("...toml...")` passes a settings file."""
    marker = request.node.get_closest_marker("fleetca_settings")
    log_on_failure(request, workdir / "fleetca.log")
    service = Fleetca(fleetca_bin, workdir, marker.args[0] if marker else None)
    yield service
    service.stop()


# ---------------------------------------------------------------------------------------
# amqtt


STOCK_AUTH_PLUGIN = "amqtt.contrib.http.UserAuthHttpPlugin"  # sends username, password, client_id
CERT_AUTH_PLUGIN = "fleetca_amqtt.CertificateAuthHttpPlugin"  # ...and the client certificate


def amqtt_config(
    mqtt_port: int,
    fleetca_port: int,
    response_mode: str = "status",
    params_mode: str = "json",
    tls: TlsFiles | None = None,
    auth_plugin: str = STOCK_AUTH_PLUGIN,
) -> dict:
    """The broker settings: fleetca decides every CONNECT, SUBSCRIBE, PUBLISH and delivery.

    `response_mode: status` reads fleetca's 200 as allow, 403 as deny and 503 (cannot
    decide) as "no answer"; `json` needs fleetca's `?response=json` mode ({"ok": bool}).
    With `tls` the one listener speaks TLS with that server certificate and asks clients
    for a certificate from that CA (amqtt always makes it optional: `ssl.CERT_OPTIONAL`).
    """
    query = "?response=json" if response_mode == "json" else ""
    common = {
        "host": "127.0.0.1",
        "port": fleetca_port,
        "request_method": "post",
        "params_mode": params_mode,
        "response_mode": response_mode,
        "timeout": 5,
    }
    listener = {"type": "tcp", "bind": f"127.0.0.1:{mqtt_port}", "max_connections": 50}
    if tls is not None:
        listener.update(ssl=True, cafile=str(tls.ca), certfile=str(tls.cert), keyfile=str(tls.key))
    return {
        "listeners": {"default": listener},
        "plugins": {
            auth_plugin: {**common, "user_uri": f"/broker/auth{query}"},
            "amqtt.contrib.http.TopicAuthHttpPlugin": {**common, "topic_uri": f"/broker/acl{query}"},
        },
    }


class Amqtt:
    def __init__(
        self,
        workdir: Path,
        fleetca_port: int,
        response_mode: str,
        params_mode: str,
        name: str,
        tls: TlsFiles | None = None,
        auth_plugin: str = STOCK_AUTH_PLUGIN,
    ):
        self.port = free_port()
        self.config = amqtt_config(self.port, fleetca_port, response_mode, params_mode, tls, auth_plugin)
        config_path = workdir / f"{name}.yaml"
        config_path.write_text(yaml.safe_dump(self.config, sort_keys=False), encoding="utf-8")
        ready = workdir / f"{name}.ready"
        self.log = workdir / f"{name}.log"
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen(
                [sys.executable, str(HERE / "run_amqtt.py"), str(config_path), str(ready)],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        wait_for(ready.exists, 20, "amqtt start", self.proc, self.log)

    def stop(self) -> None:
        stop_process(self.proc)


@pytest.fixture
def start_broker(request, fleetca, workdir):
    """Starts an amqtt broker wired to this test's fleetca; several may run at once."""
    brokers = []

    def start(
        response_mode: str = "status",
        params_mode: str = "json",
        tls: TlsFiles | None = None,
        auth_plugin: str = STOCK_AUTH_PLUGIN,
    ) -> Amqtt:
        name = f"amqtt-{len(brokers)}"
        log_on_failure(request, workdir / f"{name}.log")
        b = Amqtt(workdir, fleetca.port, response_mode, params_mode, name, tls, auth_plugin)
        brokers.append(b)
        return b

    yield start
    for b in brokers:
        b.stop()


@pytest.fixture
def broker(start_broker) -> Amqtt:
    return start_broker()


class PublishingStack:
    """An amqtt broker and a fleetca whose activation publisher connects through it."""

    def __init__(self, fleetca: Fleetca, broker: Amqtt):
        self.fleetca = fleetca
        self.broker = broker


PUBLISHER_CONNECTED = "activation publisher connected to the broker"


@pytest.fixture
def publishing_stack(request, fleetca_bin, workdir):
    """fleetca started with `--mqtt-url` pointing at the amqtt broker's plain listener.

    The order matters: fleetca's publisher connects at start-up and, while the broker is not
    there, retries every second. So the broker comes first, wired to the port fleetca will
    listen on (amqtt asks fleetca nothing until a client connects), then fleetca. The
    publisher's own CONNECT goes through amqtt's auth plugin back to fleetca, which may not
    listen yet at its first try; the fixture waits for fleetca's log to say it connected.
    """
    marker = request.node.get_closest_marker("fleetca_settings")
    fleetca_port = free_port()
    log_on_failure(request, workdir / "amqtt-0.log")
    log_on_failure(request, workdir / "fleetca.log")
    broker = Amqtt(workdir, fleetca_port, "status", "json", "amqtt-0")
    service = None
    try:
        service = Fleetca(
            fleetca_bin,
            workdir,
            marker.args[0] if marker else None,
            port=fleetca_port,
            extra_args=("--mqtt-url", f"mqtt://127.0.0.1:{broker.port}"),
        )
        wait_for(lambda: PUBLISHER_CONNECTED in service.log_text(), 15, "fleetca's publisher", service.proc, service.log)
        yield PublishingStack(service, broker)
    finally:
        if service is not None:
            service.stop()
        broker.stop()


# ---------------------------------------------------------------------------------------
# MQTT clients (paho-mqtt 2.x, MQTT 3.1.1: amqtt speaks only 3.1.1)

NOT_AUTHORIZED = "Not authorized"  # paho's name for CONNACK return code 5
SUBACK_FAILURE = 0x80


class Client:
    def __init__(
        self, port: int, client_id: str, username: str | None, password: str | None, tls: TlsFiles | None = None
    ):
        self.port = port
        self.client_id = client_id
        self.c = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2,
            client_id=client_id,
            protocol=mqtt.MQTTv311,
            clean_session=True,
        )
        if username is not None:
            self.c.username_pw_set(username, password)
        if tls is not None:
            # Verifies the broker (its certificate names 127.0.0.1); presents tls.cert, if any.
            self.c.tls_set(ca_certs=str(tls.ca), certfile=tls.cert and str(tls.cert), keyfile=tls.key and str(tls.key))
        self.lock = threading.Condition()
        self.connack = None  # the CONNACK reason code, once it came
        self.disconnected = False
        self.looping = False
        self.subacks: dict[int, list[int]] = {}
        self.messages: queue.Queue = queue.Queue()
        self.c.on_connect = self._on_connect
        self.c.on_disconnect = self._on_disconnect
        self.c.on_subscribe = self._on_subscribe
        self.c.on_message = self._on_message

    def _on_connect(self, client, userdata, flags, reason_code, properties):
        with self.lock:
            self.connack = reason_code
            self.lock.notify_all()

    def _on_disconnect(self, client, userdata, flags, reason_code, properties):
        with self.lock:
            self.disconnected = True
            self.lock.notify_all()

    def _on_subscribe(self, client, userdata, mid, reason_codes, properties):
        with self.lock:
            self.subacks[mid] = [rc.value for rc in reason_codes]
            self.lock.notify_all()

    def _on_message(self, client, userdata, msg):
        self.messages.put((msg.topic, msg.payload.decode()))

    def connect(self):
        """Sends CONNECT and returns the CONNACK's reason code (paho ReasonCode)."""
        self.c.connect("127.0.0.1", self.port, keepalive=30)
        # Run paho's loop here until the CONNACK; start its thread only for an accepted
        # client (stopping that thread takes up to a second).
        deadline = time.monotonic() + TIMEOUT
        while self.connack is None and not self.disconnected and time.monotonic() < deadline:
            if self.c.loop(timeout=0.05) != mqtt.MQTT_ERR_SUCCESS:
                break
        assert self.connack is not None, f"{self.client_id}: no CONNACK within {TIMEOUT} s"
        if self.connack.is_failure:
            self.c.disconnect()
        else:
            self.c.loop_start()
            self.looping = True
        return self.connack

    def subscribe(self, topic: str, qos: int = 1) -> int:
        """Subscribes and returns the SUBACK return code (granted QoS, or 0x80)."""
        result, mid = self.c.subscribe(topic, qos)
        assert result == mqtt.MQTT_ERR_SUCCESS, f"subscribe {topic}: {result}"
        with self.lock:
            ok = self.lock.wait_for(lambda: mid in self.subacks, TIMEOUT)
        assert ok, f"{self.client_id}: no SUBACK for {topic} within {TIMEOUT} s"
        (code,) = self.subacks[mid]
        return code

    def publish(self, topic: str, payload: str, qos: int = 1) -> None:
        """Publishes and waits for the broker's PUBACK (amqtt acknowledges even a denied publish)."""
        info = self.c.publish(topic, payload, qos)
        info.wait_for_publish(TIMEOUT)
        assert info.is_published(), f"{self.client_id}: no PUBACK for {topic}"

    def expect(self, topic: str, payload: str, timeout: float = TIMEOUT) -> None:
        """Waits for this message; fails on any other message first."""
        try:
            got = self.messages.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"{self.client_id}: no message on {topic} within {timeout} s") from None
        assert got == (topic, payload), f"{self.client_id}: expected {(topic, payload)}, got {got}"

    def next_message(self, timeout: float = TIMEOUT) -> tuple[str, str]:
        """The next message (topic, payload), whatever it is."""
        try:
            return self.messages.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"{self.client_id}: no message within {timeout} s") from None

    def expect_nothing(self, within: float = 0.3) -> None:
        try:
            got = self.messages.get(timeout=within)
        except queue.Empty:
            return
        raise AssertionError(f"{self.client_id}: unexpected message {got}")

    def close(self) -> None:
        try:
            if self.c.is_connected():
                self.c.disconnect()
        finally:
            if self.looping:
                self.c.loop_stop()
                self.looping = False


@pytest.fixture
def mqtt_client():
    """Makes MQTT clients for a broker and closes them all at the end of the test."""
    clients = []

    def make(broker: Amqtt, client_id: str, username=None, password=None, tls: TlsFiles | None = None) -> Client:
        c = Client(broker.port, client_id, username, password, tls)
        clients.append(c)
        return c

    yield make
    for c in clients:
        c.close()


def log_on_failure(request, path: Path) -> None:
    if not hasattr(request.node, "logs_on_failure"):
        request.node.logs_on_failure = []
    request.node.logs_on_failure.append(path)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    """Attaches the ends of fleetca's and amqtt's logs to a failed test's report."""
    report = yield
    if report.failed:
        for path in getattr(item, "logs_on_failure", []):
            report.sections.append((f"{path.name} (last lines)", tail(path, 80)))
    return report
