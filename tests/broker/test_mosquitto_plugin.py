"""Debian's real mosquitto 2.0.11 loading fleetca's own plugin (`fleetca_mosquitto.so`, the
`mosquitto/` crate), against a real fleetca: logins, ACLs, certificates, live cuts, EnOS
activation through the official SDK, fleetca going away and coming back, and fuzzed input.

One fleetca and one mosquitto serve the whole module (each test uses names of its own), as a
broker serves a fleet. mosquitto has three listeners:

- `plain`: usernames and passwords (API keys, HA1 devices, EnOS and Alibaba devices);
- `tls_password`: TLS without client certificates (the N-Hub recipe with a token);
- `tls`: a client certificate required; the plugin reads it in the login and fleetca decides
  (its CN becomes the username), so a revoked certificate is refused at CONNECT;
- `identity`: `use_identity_as_username` and no CRL file: mosquitto asks no login there, and
  the plugin checks the certificate at the client's first topic and kicks a revoked one.
"""

import os
import queue
import ssl
import random
import signal
import socket
import struct
import subprocess
import time
import urllib.request
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest

from conftest import (
    REPO,
    TIMEOUT,
    Client,
    Fleetca,
    TlsFiles,
    free_port,
    stop_process,
    tail,
    wait_for,
    write_pem,
)
from test_official_sdks import ALI_PK, ALI_SECRET, ENOS_DK, ENOS_PK, REGION, SDK_DIR, device

SECRET = "plugin-broker-secret-0123456789abcdef"
BROKER = "mosq"
SETTINGS = f"""
# On for brokers that cannot send certificates; the plugin always sends one, so a login
# without a password or a certificate stays refused through it.
broker_trust_username_for_certificates = true

[[brokers]]
kind = "mosquitto-plugin"
name = "{BROKER}"

[[acl.api_key]]
pattern = "v4/groups/{{enterprise}}.master/#"
access = ["read", "subscribe"]

[[acl.device]]
pattern = "devices/{{tenant}}/{{device_id}}/#"
access = ["read", "write", "subscribe"]

[[acl.device]]
pattern = "v4/groups/{{tenant}}.master/{{device_id}}/uplinks"
access = ["write"]
"""


def plugin_path() -> Path:
    path = os.environ.get("FLEETCA_MOSQUITTO_PLUGIN") or str(REPO / "target" / "debug" / "libfleetca_mosquitto.so")
    if not Path(path).is_file():
        pytest.fail(
            f"the plugin is not built at {path}: run `cargo build -p fleetca-mosquitto` or set FLEETCA_MOSQUITTO_PLUGIN"
        )
    return Path(path)


class Listener:
    """What conftest's `mqtt_client` needs of a broker: its port."""

    def __init__(self, port: int):
        self.port = port


class Mosquitto:
    def __init__(self, directory: Path, fleetca: Fleetca, plugin: Path, cache: bool = True):
        self.dir = directory
        self.log = directory / "mosquitto.log"
        self.plain, self.tls_password, self.tls, self.identity = (Listener(free_port()) for _ in range(4))
        ca_pem = urllib.request.urlopen(fleetca.url + "/ca.pem", timeout=TIMEOUT).read().decode()
        server = fleetca.create_server_certificate()
        write_pem(directory / "ca.crt", ca_pem)
        write_pem(directory / "server.crt", server["certificate_pem"] + server["chain_pem"])
        write_pem(directory / "server.key", server["private_key_pem"], private=True)
        write_pem(directory / "secret", SECRET + "\n", private=True)
        d = directory
        server_tls = f"cafile {d}/ca.crt\ncertfile {d}/server.crt\nkeyfile {d}/server.key\n"
        tls = server_tls + "require_certificate true\n"
        (directory / "mosquitto.conf").write_text(
            f"""per_listener_settings false
user root
allow_anonymous false
log_dest stderr
log_type error
log_type warning
log_type notice
log_type information
plugin {plugin}
plugin_opt_url {fleetca.url}
plugin_opt_secret_file {d}/secret
plugin_opt_broker {BROKER}
plugin_opt_cache {"true" if cache else "false"}
listener {self.plain.port} 127.0.0.1
listener {self.tls_password.port} 127.0.0.1
{server_tls}
listener {self.tls.port} 127.0.0.1
{tls}
listener {self.identity.port} 127.0.0.1
{tls}use_identity_as_username true
""",
            encoding="utf-8",
        )
        self.start()

    def start(self) -> None:
        binary = "/usr/sbin/mosquitto" if Path("/usr/sbin/mosquitto").exists() else "mosquitto"
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen([binary, "-c", str(self.dir / "mosquitto.conf")], stdout=log, stderr=log)
        wait_for(lambda: "fleetca_mosquitto" in self.log_text() and listening(self.plain.port), 10, "mosquitto", self.proc, self.log)

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self) -> None:
        stop_process(self.proc)


def listening(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
        return True
    except OSError:
        return False


@pytest.fixture(scope="module")
def stack(fleetca_bin, tmp_path_factory):
    """One fleetca (a `mosquitto-plugin` broker entry, a broker secret) and one mosquitto."""
    work = tmp_path_factory.mktemp("plugin")
    service = Fleetca(fleetca_bin, work, SETTINGS, extra_env={"FLEETCA_BROKER_SECRET": SECRET})
    broker = None
    try:
        broker = Mosquitto(work, service, plugin_path())
        # The plugin follows fleetca's feed before the first test.
        wait_for(lambda: "following fleetca's changes" in broker.log_text(), 10, "the plugin following fleetca's feed")
        yield service, broker
    finally:
        if broker is not None:
            broker.stop()
        service.stop()
        for name in ["mosquitto.log", "fleetca.log"]:
            print(f"--- {name}\n{tail(work / name, 40)}")


def wait_closed(client: Client, timeout: float = TIMEOUT) -> float:
    """Seconds until the broker closed `client`'s session; fails after `timeout`."""
    start = time.monotonic()
    with client.lock:
        closed = client.lock.wait_for(lambda: client.disconnected, timeout)
    assert closed, f"{client.client_id}: still connected after {timeout} s"
    return time.monotonic() - start


def tls_files(directory: Path, issued: dict, ca_pem: str) -> TlsFiles:
    return TlsFiles(directory, issued, ca_pem)


def ca_pem(service: Fleetca) -> str:
    return urllib.request.urlopen(service.url + "/ca.pem", timeout=TIMEOUT).read().decode()


def test_api_keys_and_ha1_devices_log_in_and_use_only_their_topics(stack, mqtt_client):
    service, broker = stack
    key = service.create_api_key("plugin-reader", "acme")
    token = key["token"]
    dev = service.create_device("plug-dev-1", "acme", "device-password-1")

    reader = mqtt_client(broker.plain, "reader-1", "plugin-reader", token)
    assert not reader.connect().is_failure
    assert reader.subscribe("v4/groups/acme.master/#") == 1
    assert reader.subscribe("v4/groups/globex.master/#") == 0x80, "another enterprise's topics"
    assert reader.subscribe("devices/acme/plug-dev-1/#") == 0x80

    device = mqtt_client(broker.plain, "plug-dev-1", dev.username, dev.password())
    assert not device.connect().is_failure
    assert device.subscribe("devices/acme/plug-dev-1/cmd") == 1
    assert device.subscribe("devices/acme/other-device/cmd") == 0x80
    device.publish("devices/acme/plug-dev-1/up", "hello")

    wrong = mqtt_client(broker.plain, "reader-2", "plugin-reader", "not-the-token")
    assert wrong.connect().is_failure
    nobody = mqtt_client(broker.plain, "nobody", "no-such-key", "x")
    assert nobody.connect().is_failure
    anonymous = mqtt_client(broker.plain, "anon")
    assert anonymous.connect().is_failure
    for password in (None, ""):
        name_only = mqtt_client(broker.plain, "reader-3", "plugin-reader", password)
        assert name_only.connect().is_failure, "a username alone is no certificate"


def test_a_revoked_certificate_is_closed_and_refused_on_both_certificate_listeners(stack, mqtt_client, tmp_path):
    service, broker = stack
    key = service.create_api_key("plugin-cert", "acme")
    kept = service.create_certificate(key["id"], "kept")
    doomed = service.create_certificate(key["id"], "doomed")
    ca = ca_pem(service)
    kept_tls = tls_files(tmp_path / "kept", kept, ca)
    doomed_tls = tls_files(tmp_path / "doomed", doomed, ca)

    a = mqtt_client(broker.tls, "cert-a", tls=doomed_tls)
    assert not a.connect().is_failure, "the certificate's CN is the username fleetca knows"
    assert a.subscribe("v4/groups/acme.master/#") == 1
    b = mqtt_client(broker.identity, "cert-b", tls=doomed_tls)
    assert not b.connect().is_failure
    assert b.subscribe("v4/groups/acme.master/#") == 1
    k = mqtt_client(broker.tls, "cert-k", tls=kept_tls)
    assert not k.connect().is_failure

    service.revoke_certificate(doomed["id"])
    took = [wait_closed(a), wait_closed(b)]
    print(f"revoked certificate sessions closed after {took} s (from the API's answer)")

    again = mqtt_client(broker.tls, "cert-a2", tls=doomed_tls)
    assert again.connect().is_failure, "refused at CONNECT, before any CRL reload"
    identity = mqtt_client(broker.identity, "cert-b2", tls=doomed_tls)
    if not identity.connect().is_failure:
        # mosquitto asks no login on this listener: the first topic is refused and the
        # session kicked.
        identity.c.subscribe("v4/groups/acme.master/#", 1)
        wait_closed(identity)
    assert k.subscribe("v4/groups/acme.master/#") == 1, "the key's other certificate still works"


def test_a_deactivated_key_and_a_disabled_device_are_closed(stack, mqtt_client):
    service, broker = stack
    key = service.create_api_key("plugin-cut", "acme")
    dev = service.create_device("plug-cut-1", "acme", "device-password-2")
    c = mqtt_client(broker.plain, "cut-key", "plugin-cut", key["token"])
    assert not c.connect().is_failure
    d = mqtt_client(broker.plain, "plug-cut-1", dev.username, dev.password())
    assert not d.connect().is_failure

    service.set_user_active(key["id"], False)
    took_key = wait_closed(c)
    service.set_device_active("acme", "plug-cut-1", False)
    took_device = wait_closed(d)
    print(f"deactivated key closed after {took_key:.3f} s, disabled device after {took_device:.3f} s")
    assert mqtt_client(broker.plain, "cut-key-2", "plugin-cut", key["token"]).connect().is_failure
    again = mqtt_client(broker.plain, "plug-cut-1", dev.username, dev.password())
    assert again.connect().is_failure

    service.set_user_active(key["id"], True)
    back = mqtt_client(broker.plain, "cut-key-3", "plugin-cut", key["token"])
    assert not back.connect().is_failure, "reactivated: the cached refusal is gone"


def test_the_enos_sdk_activates_through_the_plugin_unmodified(stack):
    service, broker = stack
    if not (SDK_DIR / "enos").is_dir():
        pytest.fail(f"the official SDKs are not installed in {SDK_DIR}: run scripts/test")
    product_secret = "EnOS-product-secret-for-plugin1"
    service.request(
        "POST",
        "/api/v4/manage/products/",
        {
            "product_key": ENOS_PK,
            "name": "Meters",
            "scheme": "enos",
            "dynamic_activation": True,
            "product_secret": product_secret,
        },
        expect=201,
    )
    secret = service.create_sign_device(ENOS_PK, ENOS_DK)["device_secret"]
    url = f"tcp://127.0.0.1:{broker.plain.port}"
    out = device(sdk="enos", url=url, product_key=ENOS_PK, device_key=ENOS_DK, product_secret=product_secret, activate=True)
    assert out.get("device_secret") == secret, f"the SDK was handed its secret without subscribing: {out}"
    logged_in = device(sdk="enos", url=url, product_key=ENOS_PK, device_key=ENOS_DK, secret=secret)
    assert logged_in["connected"], logged_in
    assert service.get_sign_device(ENOS_PK, ENOS_DK)["activated"] is True
    again = device(sdk="enos", url=url, product_key=ENOS_PK, device_key=ENOS_DK, product_secret=product_secret, activate=True)
    assert again.get("refused") and "device_secret" not in again, "an activated device does not activate again"


def test_fuzzed_logins_and_topics_never_crash_the_broker(stack, mqtt_client):
    """A bounded run: CONNECTs, SUBSCRIBEs and PUBLISHes with usernames, passwords, client
    ids and topics of many lengths and every byte, sent raw (paho would refuse some)."""
    service, broker = stack
    key = service.create_api_key("plugin-fuzz", "acme")
    rng = random.Random(20261207)
    lengths = [0, 1, 2, 7, 64, 255, 256, 1000, 4096, 65535]

    def blob() -> bytes:
        n = rng.choice(lengths)
        alphabet = rng.choice([bytes(range(256)), b"/+#&=%\x00 a", b"device=&tenant=|,securemode=3"])
        return bytes(rng.choice(alphabet) for _ in range(n))

    for i in range(150):
        fields = {
            "client_id": blob(),
            "username": rng.choice([None, blob(), b"plugin-fuzz"]),
            "password": rng.choice([None, blob(), key["token"].encode()]),
        }
        topics = [blob() for _ in range(3)]
        raw_session(broker.plain.port, fields, topics)
        assert broker.alive(), f"mosquitto died at case {i}: {fields!r}\n{tail(broker.log, 30)}"
    good = mqtt_client(broker.plain, "after-fuzz", "plugin-fuzz", key["token"])
    assert not good.connect().is_failure
    assert good.subscribe("v4/groups/acme.master/#") == 1


def mqtt_string(b: bytes) -> bytes:
    return struct.pack(">H", len(b) & 0xFFFF) + b[:0xFFFF]


def packet(kind: int, body: bytes) -> bytes:
    n, length = len(body), b""
    while True:
        digit, n = n % 128, n // 128
        length += bytes([digit | (0x80 if n else 0)])
        if not n:
            break
    return bytes([kind]) + length + body


def raw_session(port: int, fields: dict, topics: list[bytes]) -> None:
    flags = 0x02
    payload = mqtt_string(fields["client_id"])
    if fields["username"] is not None:
        flags |= 0x80
        payload += mqtt_string(fields["username"])
        if fields["password"] is not None:
            flags |= 0x40
            payload += mqtt_string(fields["password"])
    connect = packet(0x10, mqtt_string(b"MQTT") + bytes([4, flags]) + struct.pack(">H", 30) + payload)
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
            s.sendall(connect)
            for i, topic in enumerate(topics):
                s.sendall(packet(0x82, struct.pack(">H", i + 1) + mqtt_string(topic) + b"\x01"))
                s.sendall(packet(0x30, mqtt_string(topic) + b"payload"))
            s.settimeout(0.3)
            try:
                while s.recv(65536):
                    pass
            except OSError:
                pass
    except OSError:
        pass


def test_fleetca_away_refuses_new_logins_keeps_open_sessions_and_comes_back(stack, mqtt_client):
    service, broker = stack
    key = service.create_api_key("plugin-away", "acme")
    dev = service.create_device("plug-away-1", "acme", "device-password-3")
    open_session = mqtt_client(broker.plain, "plug-away-1", dev.username, dev.password())
    assert not open_session.connect().is_failure
    assert open_session.subscribe("devices/acme/plug-away-1/cmd") == 1
    open_session.publish("devices/acme/plug-away-1/cmd", "before")
    open_session.expect("devices/acme/plug-away-1/cmd", "before")

    service.proc.send_signal(signal.SIGKILL)
    service.proc.wait(timeout=10)
    started = time.monotonic()
    refused = mqtt_client(broker.plain, "away-new", "plugin-away", key["token"])
    assert refused.connect().is_failure, "fail closed: fleetca cannot be asked"
    assert time.monotonic() - started < TIMEOUT
    open_session.publish("devices/acme/plug-away-1/cmd", "during")
    open_session.expect("devices/acme/plug-away-1/cmd", "during")
    assert not open_session.disconnected, "the open session stays"

    service.restart()
    wait_for(
        lambda: not mqtt_client(broker.plain, f"away-back-{time.monotonic()}", "plugin-away", key["token"]).connect().is_failure,
        15,
        "a login after fleetca came back",
    )
    assert broker.alive(), "mosquitto was never restarted"


def nhub_recipe(port: int, ca: Path, subscribe: str, cert: TlsFiles | None = None, credentials=None):
    """The N-Hub document's paho-mqtt recipe as written (VERSION2 callbacks, TLS with the
    platform's CA, subscribe in on_connect), with only the host changed; returns the client
    and the queue its messages arrive on."""
    got: queue.Queue = queue.Queue()
    subscribed: queue.Queue = queue.Queue()

    def on_connect(client, userdata, flags, rc, properties=None):
        client.subscribe(subscribe)

    def on_subscribe(client, userdata, mid, reason_codes, properties=None):
        subscribed.put([rc.value for rc in reason_codes])

    def on_message(client, userdata, msg):
        got.put((msg.topic, msg.payload.decode()))

    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
    if cert is not None:
        client.tls_set(ca_certs=str(ca), certfile=str(cert.cert), keyfile=str(cert.key), tls_version=ssl.PROTOCOL_TLS_CLIENT)
    else:
        client.tls_set(ca_certs=str(ca), tls_version=ssl.PROTOCOL_TLS_CLIENT)
    if credentials is not None:
        client.username_pw_set(*credentials)
    client.on_connect = on_connect
    client.on_subscribe = on_subscribe
    client.on_message = on_message
    client.connect("127.0.0.1", port)
    client.loop_start()
    assert subscribed.get(timeout=TIMEOUT) == [0], "subscribed to the enterprise's uplinks"
    return client, got


def test_the_nhub_paho_recipes_over_tls_receive_their_enterprises_uplinks(stack, mqtt_client, tmp_path):
    service, broker = stack
    key = service.create_api_key("svc-mqtt-prod", "acme")
    issued = service.create_certificate(key["id"])
    files = tls_files(tmp_path / "recipe", issued, ca_pem(service))
    dev = service.create_device("meter-7", "acme", "device-password-7")
    uplinks = "v4/groups/acme.master/+/uplinks"
    by_cert, cert_got = nhub_recipe(broker.tls.port, files.ca, uplinks, cert=files)
    by_token, token_got = nhub_recipe(broker.tls_password.port, files.ca, uplinks, credentials=("svc-mqtt-prod", key["token"]))
    try:
        meter = mqtt_client(broker.plain, "meter-7", dev.username, dev.password())
        assert not meter.connect().is_failure
        meter.publish("v4/groups/acme.master/meter-7/uplinks", "reading-1")
        meter.publish("v4/groups/acme.master/meter-8/uplinks", "spoofed")  # refused: not its slot
        for got in (cert_got, token_got):
            assert got.get(timeout=TIMEOUT) == ("v4/groups/acme.master/meter-7/uplinks", "reading-1")
            with pytest.raises(queue.Empty):
                got.get(timeout=0.3)
    finally:
        for c in (by_cert, by_token):
            c.loop_stop()
            c.disconnect()


def test_the_alibaba_sdk_logs_in_and_uses_only_its_own_topics(stack):
    service, broker = stack
    service.create_product(ALI_PK, "aliyun")
    service.create_sign_device(ALI_PK, "lamp-0001", ALI_SECRET)
    service.create_sign_device(ALI_PK, "lamp-0002", "Alibaba-device-secret-0002")
    own, other = f"/{ALI_PK}/lamp-0001/user/update", f"/{ALI_PK}/lamp-0002/user/update"
    lamp = dict(sdk="aliyun", region=REGION, port=broker.plain.port, product_key=ALI_PK, device_name="lamp-0001")
    out = device(**lamp, secret=ALI_SECRET, subscribe=[own, other], publish=[[own, '{"on": true}']])
    assert out["connected"], out
    assert out["subscribed"] == {own: [1], other: [128]}, "another device's topic is refused"
    assert out["received"] == [[own, '{"on": true}']], out
    assert device(**lamp, secret="Not-the-device-secret-0001")["refused"]
    service.set_sign_device_active(ALI_PK, "lamp-0001", False)
    assert device(**lamp, secret=ALI_SECRET)["refused"], "a disabled device"
