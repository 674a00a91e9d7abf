"""A device running one of the platforms' official SDKs, unmodified, in a process of its own
(the SDKs need paho-mqtt 1.x; the rest of the suite runs 2.x). test_official_sdks.py starts
it with the SDKs' directory (tests/broker/.sdk) on PYTHONPATH and one JSON argument saying
what to do; it prints one JSON line of what happened and exits.

Only what a migrating customer changes differs from a device in the field: the host. For
Alibaba's HTTPS registration the SDK builds `https://iot-auth.{region}.aliyuncs.com/...`
itself; `registration_port` resolves that one name to fleetca's TLS listener on loopback,
standing in for a DNS record and a port forward.
"""

import json
import logging
import os
import queue
import socket
import sys
import time
from unittest import mock

WAIT = 10.0


class LogLines(logging.Handler):
    """The messages of one logger, to see a refused CONNECT (paho logs CONNACK code 5)."""

    def __init__(self, name: str):
        super().__init__(logging.DEBUG)
        self.lines: "queue.Queue[str]" = queue.Queue()
        logger = logging.getLogger(name)
        logger.addHandler(self)
        logger.setLevel(logging.DEBUG)

    def emit(self, record):
        self.lines.put(record.getMessage())

    def seen(self, text: str, timeout: float = WAIT) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if text in self.lines.get(timeout=0.1):
                    return True
            except queue.Empty:
                continue
        return False


def enos(args: dict) -> dict:
    from enos.core.MqttClient import MqttClient
    from enos.core.internal.Profile import Profile

    # The SDK stamps its login (client id and password) once, when the profile is made, and
    # sends it again on every reconnect: `booted_ago` simulates a device up that long.
    with mock.patch("time.time", return_value=time.time() - args.get("booted_ago", 0)):
        profile = Profile(args["url"], args["product_key"], args["device_key"], args.get("secret"), args.get("product_secret"))
    profile.set_sign_method(args.get("method", "hmacsha256"))
    log = LogLines("enos.core.internal.MqttConnection")
    client = MqttClient(profile=profile)

    class Callbacks:
        def on_connect(self):
            pass

        def on_disconnect(self):
            pass

        def on_connect_failed(self):
            pass

    # A dynamic activation (a product secret, no device secret): the SDK's own callback
    # receives the device secret from the activation message, which it never subscribes to.
    activated = queue.Queue()
    if args.get("activate"):
        client.on_device_dynamic_active = activated.put
    client.connect(Callbacks())
    deadline = time.monotonic() + WAIT
    out = {"client_id": profile.get_client_id()}
    while time.monotonic() < deadline and not client.is_connected():
        try:
            if "bad connection, error code: 5" in log.lines.get(timeout=0.05):
                out["refused"] = True
                break
        except queue.Empty:
            pass
    out["connected"] = client.is_connected()
    if out["connected"] and args.get("activate"):
        try:
            out["device_secret"] = activated.get(timeout=WAIT)
        except queue.Empty:
            pass
    if out["connected"] and args.get("reconnect"):
        client.reconnect()
        out["reconnected"] = client.is_connected()
    client.close()
    return out


def aliyun(args: dict) -> dict:
    from linkkit import linkkit

    events: "queue.Queue[tuple]" = queue.Queue()
    log = LogLines("Paho")
    kit = linkkit.LinkKit(
        host_name=args["region"],
        product_key=args["product_key"],
        device_name=args["device_name"],
        device_secret=args.get("secret") or "",
        product_secret=args.get("product_secret"),
    )
    # The one change: the endpoint (plain MQTT here, hence secure="") and the CA to trust.
    kit.config_mqtt(port=args["port"], secure="", endpoint="127.0.0.1", cadata=args.get("cadata"))
    kit.enable_logger(logging.DEBUG)
    kit.on_connect = lambda session, rc, userdata: events.put(("connect", rc))
    kit.on_subscribe_topic = lambda mid, granted, userdata: events.put(("suback", mid, list(granted)))
    kit.on_topic_message = lambda topic, payload, qos, userdata: events.put(("message", topic, payload.decode()))
    kit.on_device_dynamic_register = lambda rc, value, userdata: events.put(("register", rc, value))

    def next_event(kind: str):
        """The SDK's next `kind` event; for "connect", ("refused",) once paho logs a CONNACK
        with code 5 (the SDK itself reports nothing then), or a failed registration."""
        deadline = time.monotonic() + WAIT
        while time.monotonic() < deadline:
            while kind == "connect" and not log.lines.empty():
                if "Received CONNACK (0, 5)" in log.lines.get_nowait():
                    return ("refused",)
            try:
                event = events.get(timeout=0.05)
            except queue.Empty:
                continue
            if event[0] == kind or (kind == "connect" and event[0] == "register" and event[1] != 0):
                return event
        return None

    out: dict = {}
    real_getaddrinfo = socket.getaddrinfo
    port = args.get("registration_port")

    def resolve(host, service, *rest, **kwargs):
        if port and host == f"iot-auth.{args['region']}.aliyuncs.com":
            return real_getaddrinfo("127.0.0.1", port, *rest, **kwargs)
        return real_getaddrinfo(host, service, *rest, **kwargs)

    with mock.patch("socket.getaddrinfo", resolve):
        kit.connect_async()
        if args.get("product_secret") and not args.get("secret"):
            event = next_event("register")
            out["register"] = None if event is None else [event[1], event[2]]
            if event is None or event[1] != 0:
                return out
        event = next_event("connect")
    if event is None or event[0] != "connect":
        out["refused"] = event is not None and event[0] == "refused"
        out["connected"] = False
        return out
    out["connected"] = event[1] == 0
    out["subscribed"] = {}
    for topic in args.get("subscribe", []):
        rc, mid = kit.subscribe_topic(topic, 1)
        suback = next_event("suback")
        out["subscribed"][topic] = None if rc != 0 or suback is None or suback[1] != mid else suback[2]
    out["received"] = []
    for topic, payload in args.get("publish", []):
        kit.publish_topic(topic, payload, 1)
        message = next_event("message")
        if message is not None:
            out["received"].append([message[1], message[2]])
    kit.destruct()
    return out


def enos_activation_topics(args: dict) -> dict:
    """Which topics EnOS's SDK takes as its activation message (thing.activate.info)."""
    from enos.message.downstream.activate.DeviceActivateCommand import DeviceActivateCommand

    command = DeviceActivateCommand()
    return {topic: bool(command.match(topic)) for topic in args["topics"]}


def main() -> None:
    args = json.loads(sys.argv[1])
    result = {"enos": enos, "aliyun": aliyun, "enos-activation-topics": enos_activation_topics}[args["sdk"]](args)
    print(json.dumps(result), flush=True)
    # The SDKs leave threads of their own behind (LinkKit's after a refused registration
    # never ends): the device is done, so the process ends here, whatever they wait for.
    os._exit(0)


if __name__ == "__main__":
    main()
