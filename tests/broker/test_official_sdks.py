"""The platforms' official device SDKs, installed from PyPI as shipped (sdk-requirements.txt:
enos-mqtt-sdk-python 0.1.1, aliyun-iot-linkkit 1.2.13) and driven unmodified through a real
amqtt broker that asks fleetca (`/broker/auth`, `/broker/acl`). Each device runs in a
process of its own (sdk_device.py), as a device would, with the SDKs' own paho-mqtt 1.6.1.

The only thing that differs from a device on its platform is what a migrating customer
changes: the host. EnOS's SDK takes a `tcp://host:port` URL; Alibaba's an `endpoint` and a
port through its own `config_mqtt`. For Alibaba's HTTPS registration the SDK builds
`https://iot-auth.{region}.aliyuncs.com/auth/register/device` itself: the device process
resolves that one name to fleetca's TLS listener (what a DNS record and a port forward do for
a real fleet), and fleetca's CA reaches the SDK through its own `config_mqtt(cadata=...)`;
fleetca's TLS certificate names that host (`tls_dns_names`).

What the SDKs send, and these tests prove fleetca accepts: EnOS's `signmethod=hmacsha256|
hmacsha1|hmacmd5` as plain digests of content + secret, its timestamp
`str(time.time() * 1000)` with a fraction; Alibaba's HMAC-SHA1 over a timestamp in seconds
with `ext=1,_ss=1,lan=Python,_v=1.2.13` in the client id. Both send their boot-time login on
every reconnect. A refused CONNECT is seen as the CONNACK code 5 in the SDKs' own logs, a
refused SUBSCRIBE as a granted QoS of 128 in the SDK's callback.

mosquitto with go-auth cannot be tried here: go-auth is built from Go sources that no
package registry reachable here carries.
"""

import json
import os
import subprocess
import sys
import urllib.request

import pytest

from conftest import HERE, free_port

REGION = "cn-shanghai"
REGISTRATION_HOST = f"iot-auth.{REGION}.aliyuncs.com"
TLS_PORT = free_port()
TLS_SETTINGS = f'tls_listen = "127.0.0.1:{TLS_PORT}"\ntls_dns_names = ["{REGISTRATION_HOST}"]\n'
SDK_DIR = HERE / ".sdk"

ENOS_PK = "EhoS3s9r"  # EnOS product keys have 8 characters, device keys often 10
ENOS_DK = "Xy7dK2mQ9a"
ENOS_SECRET = "Gq8vRk2LmT5xWz7NcY4pHb6JdF3sAe9U"
ALI_PK = "a1B2c3D4e5F"
ALI_SECRET = "Alibaba-device-secret-0001"


@pytest.fixture(scope="module", autouse=True)
def sdks_installed():
    for package in ["enos", "linkkit", "paho"]:
        if not (SDK_DIR / package).is_dir():
            pytest.fail(
                f"the official SDKs are not installed in {SDK_DIR}: run scripts/test, or "
                f"pip install --target {SDK_DIR} -r {HERE / 'sdk-requirements.txt'}"
            )


def device(**args) -> dict:
    """Runs one device session with an SDK; returns what it reported."""
    env = dict(os.environ, PYTHONPATH=str(SDK_DIR))
    proc = subprocess.run(
        [sys.executable, str(HERE / "sdk_device.py"), json.dumps(args)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    lines = proc.stdout.strip().splitlines()
    assert proc.returncode == 0 and lines, f"the device process failed ({proc.returncode}):\n{proc.stderr[-4000:]}"
    return json.loads(lines[-1])


def enos(broker, **args) -> dict:
    return device(sdk="enos", url=f"tcp://127.0.0.1:{broker.port}", product_key=ENOS_PK, **args)


def lamp(broker, **args) -> dict:
    return device(sdk="aliyun", region=REGION, port=broker.port, product_key=ALI_PK, **args)


def test_the_enos_sdk_logs_in_with_each_sign_method_it_offers_and_reconnects_long_after_boot(fleetca, broker):
    product = fleetca.create_product(ENOS_PK, "enos")
    assert product["max_clock_skew_seconds"] is None, "no freshness check by default, as on EnOS"
    fleetca.create_sign_device(ENOS_PK, ENOS_DK, ENOS_SECRET)
    for method in ["hmacsha256", "hmacsha1", "hmacmd5"]:
        out = enos(broker, device_key=ENOS_DK, secret=ENOS_SECRET, method=method)
        assert out["connected"], (method, out)
        assert f"signmethod={method}," in out["client_id"] and "." in out["client_id"].split("timestamp=")[1]
    wrong = enos(broker, device_key=ENOS_DK, secret="Wrong-secret-of-32-characters-xx")
    assert wrong.get("refused") and not wrong["connected"], wrong

    # A device that booted ten minutes ago, its login stamped then: accepted, and so is the
    # SDK's own reconnect with the same client id and password.
    late = enos(broker, device_key=ENOS_DK, secret=ENOS_SECRET, booted_ago=600, reconnect=True)
    assert late["connected"] and late["reconnected"], late
    # The same login is refused by a product that asks for a 300 s skew (the simulated
    # clock is real to fleetca), and accepted again once the product stops asking.
    fleetca.request("PATCH", f"/api/v4/manage/products/{ENOS_PK}/", {"max_clock_skew_seconds": 300})
    assert enos(broker, device_key=ENOS_DK, secret=ENOS_SECRET, booted_ago=600).get("refused")
    assert enos(broker, device_key=ENOS_DK, secret=ENOS_SECRET)["connected"], "a fresh login"
    fleetca.request("PATCH", f"/api/v4/manage/products/{ENOS_PK}/", {"max_clock_skew_seconds": None})

    fleetca.set_sign_device_active(ENOS_PK, ENOS_DK, False)
    assert enos(broker, device_key=ENOS_DK, secret=ENOS_SECRET).get("refused"), "a disabled device"


def test_the_enos_sdk_takes_both_of_fleetcas_activation_topics_as_its_activation_message():
    # The SDK never subscribes to its activation topic: EMQX's auto_subscribe delivers it
    # (README; amqtt, mosquitto and RabbitMQ cannot). What the SDK then handles as its
    # secret is any message whose topic its own pattern matches: both topics fleetca uses.
    documented = f"/ext/session/{ENOS_PK}/{ENOS_DK}/thing/activate/info"
    by_username = f"/ext/session/{ENOS_DK}&{ENOS_PK}/activation/thing/activate/info"
    elsewhere = f"/sys/{ENOS_PK}/{ENOS_DK}/thing/activate/info"
    out = device(sdk="enos-activation-topics", topics=[documented, by_username, elsewhere])
    assert out == {documented: True, by_username: True, elsewhere: False}, out


def test_the_alibaba_sdk_logs_in_with_seconds_uses_only_its_own_topics_and_is_refused_when_disabled(fleetca, broker):
    fleetca.create_product(ALI_PK, "aliyun")
    fleetca.create_sign_device(ALI_PK, "lamp-0001", ALI_SECRET)
    fleetca.create_sign_device(ALI_PK, "lamp-0002", "Alibaba-device-secret-0002")
    own = f"/{ALI_PK}/lamp-0001/user/update"
    other = f"/{ALI_PK}/lamp-0002/user/update"
    out = lamp(
        broker,
        device_name="lamp-0001",
        secret=ALI_SECRET,
        subscribe=[own, other],
        publish=[[own, '{"on": true}']],
    )
    assert out["connected"], out
    assert out["subscribed"] == {own: [1], other: [128]}, "another device's topic is refused"
    assert out["received"] == [[own, '{"on": true}']], out
    wrong = lamp(broker, device_name="lamp-0001", secret="Not-the-device-secret-0001")
    assert wrong["refused"], wrong

    # A product that checks the clock reads the SDK's seconds as seconds.
    fleetca.request("PATCH", f"/api/v4/manage/products/{ALI_PK}/", {"max_clock_skew_seconds": 300})
    assert lamp(broker, device_name="lamp-0001", secret=ALI_SECRET)["connected"]

    fleetca.set_sign_device_active(ALI_PK, "lamp-0001", False)
    assert lamp(broker, device_name="lamp-0001", secret=ALI_SECRET)["refused"], "a disabled device"


@pytest.mark.fleetca_settings(TLS_SETTINGS)
def test_the_alibaba_sdk_registers_over_https_with_an_imported_product_secret_then_logs_in(fleetca, broker):
    product_secret = "Alibaba-product-secret-01"
    created = fleetca.request(
        "POST",
        "/api/v4/manage/products/",
        {
            "product_key": ALI_PK,
            "name": "Lamps",
            "scheme": "aliyun",
            "dynamic_activation": True,
            "product_secret": product_secret,
        },
        expect=201,
    )
    assert "product_secret" not in created, "a given secret is never echoed"
    device_secret = fleetca.create_sign_device(ALI_PK, "lamp-0009")["device_secret"]
    with urllib.request.urlopen(fleetca.url + "/ca.pem", timeout=5) as r:
        ca_pem = r.read().decode()
    registering = dict(
        device_name="lamp-0009", product_secret=product_secret, cadata=ca_pem, registration_port=TLS_PORT
    )
    out = lamp(broker, **registering)
    assert out["register"] == [0, device_secret], "the SDK received the device's secret"
    assert out["connected"], f"and logged in with it: {out}"
    assert fleetca.get_sign_device(ALI_PK, "lamp-0009")["activated"] is True
    # Registering again is refused until an admin resets the activation.
    again = lamp(broker, **registering)
    assert again["register"][0] != 0, again
    # The wrong product secret never gets one.
    fleetca.reset_activation(ALI_PK, "lamp-0009")
    wrong = lamp(broker, **{**registering, "product_secret": "Not-the-product-secret-1"})
    assert wrong["register"][0] != 0, wrong
