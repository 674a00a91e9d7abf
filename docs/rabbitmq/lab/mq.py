#!/usr/bin/env python3
"""paho-mqtt 2.2.0 probe client. Prints timestamped events as JSON lines.
mq.py [--tls CERTNAME] [--user U] [--password P|--empty-password] [--id CID]
      [--sub TOPIC ...] [--pub TOPIC ...] [--qos N] [--hold SECONDS]"""
import argparse, json, ssl, sys, time, threading
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
import os
LAB = os.environ.get("LAB", "/tmp/rmq-lab/run")
ap = argparse.ArgumentParser()
ap.add_argument("--tls"); ap.add_argument("--user"); ap.add_argument("--password")
ap.add_argument("--empty-password", action="store_true"); ap.add_argument("--id", default="cid-1")
ap.add_argument("--sub", action="append", default=[]); ap.add_argument("--pub", action="append", default=[])
ap.add_argument("--qos", type=int, default=1); ap.add_argument("--hold", type=float, default=1.5)
ap.add_argument("--port", type=int)
a = ap.parse_args()
T0 = time.time()
def ev(kind, **kw):
    print(json.dumps({"t": round(time.time() - T0, 4), "ev": kind, **kw}), flush=True)
c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=a.id, protocol=mqtt.MQTTv311)
port = a.port or (24884 if a.tls else 24883)
if a.tls:
    ctx = ssl.create_default_context(cafile=f"{LAB}/pki/ca.pem")
    ctx.load_cert_chain(f"{LAB}/pki/{a.tls}.pem", f"{LAB}/pki/{a.tls}.key")
    c.tls_set_context(ctx)
if a.user is not None:
    c.username_pw_set(a.user, "" if a.empty_password else a.password)
done = threading.Event()
def on_connect(cl, ud, flags, rc, props):
    ev("connack", rc=str(rc), rc_value=rc.value)
    if rc.is_failure: return
    for t in a.sub:
        r, mid = cl.subscribe(t, qos=a.qos); ev("subscribe_sent", topic=t, mid=mid)
    for t in a.pub:
        info = cl.publish(t, b"hello", qos=a.qos); ev("publish_sent", topic=t, mid=info.mid)
def on_subscribe(cl, ud, mid, rcs, props):
    ev("suback", mid=mid, rcs=[str(r) for r in rcs])
def on_publish(cl, ud, mid, rc, props):
    ev("puback", mid=mid, rc=str(rc))
def on_message(cl, ud, m):
    ev("message", topic=m.topic, payload=m.payload.decode(errors="replace"))
def on_disconnect(cl, ud, flags, rc, props):
    ev("disconnect", rc=str(rc)); done.set()
c.on_connect = on_connect; c.on_subscribe = on_subscribe; c.on_publish = on_publish
c.on_message = on_message; c.on_disconnect = on_disconnect
try:
    c.connect("127.0.0.1", port, keepalive=30)
except Exception as e:
    ev("connect_exception", err=repr(e)); sys.exit(0)
c.loop_start()
done.wait(a.hold)
if not done.is_set():
    ev("closing"); c.disconnect(); done.wait(2)
c.loop_stop()
