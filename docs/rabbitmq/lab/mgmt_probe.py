"""Start an MQTT client, poll both mgmt endpoints until it shows up, DELETE it, time on_disconnect."""
import json, sys, time, threading, base64, urllib.request, urllib.parse
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
API = "http://127.0.0.1:24615"
def req(method, path, user="admin", pw="adminpw", headers=None):
    r = urllib.request.Request(API + path, method=method, headers=headers or {})
    r.add_header("Authorization", "Basic " + base64.b64encode(f"{user}:{pw}".encode()).decode())
    try:
        with urllib.request.urlopen(r, timeout=10) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()
def run(cid, user, del_user="admin", del_pw="adminpw", via="name"):
    ev = {}
    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=cid)
    c.username_pw_set(user, "pw1")
    c.on_connect = lambda *a: ev.setdefault("connack", time.monotonic())
    def ondis(cl, ud, flags, rc, props):
        ev["disconnect"] = time.monotonic(); ev["rc"] = str(rc)
    c.on_disconnect = ondis
    c.connect("127.0.0.1", 24883, 30); c.loop_start()
    while "connack" not in ev: time.sleep(0.001)
    t_user = t_list = None; name = None
    while t_user is None or t_list is None:
        now = time.monotonic()
        if t_user is None:
            s, b = req("GET", "/api/connections/username/" + urllib.parse.quote(user, safe=""))
            if s == 200 and json.loads(b):
                t_user = now - ev["connack"]; name = json.loads(b)[0]["name"]
        if t_list is None:
            s, b = req("GET", "/api/connections?columns=name,user,client_properties.client_id")
            if s == 200 and any(x.get("client_properties", {}).get("client_id") == cid for x in json.loads(b)):
                t_list = now - ev["connack"]
        time.sleep(0.02)
    out = {"cid": cid, "visible_in_username_endpoint_s": round(t_user, 3), "visible_in_api_connections_s": round(t_list, 3)}
    t0 = time.monotonic()
    if via == "name":
        s, b = req("DELETE", "/api/connections/" + urllib.parse.quote(name, safe=""), del_user, del_pw, {"X-Reason": "revoked by fleetca"})
    else:
        s, b = req("DELETE", "/api/connections/username/" + urllib.parse.quote(user, safe=""), del_user, del_pw, {"X-Reason": "revoked by fleetca"})
    t1 = time.monotonic()
    out.update(delete_by=via, delete_status=s, delete_body=b[:200], delete_ms=round((t1 - t0) * 1000, 1))
    deadline = time.monotonic() + 5
    while "disconnect" not in ev and time.monotonic() < deadline: time.sleep(0.0005)
    if "disconnect" in ev:
        out.update(delete_to_on_disconnect_ms=round((ev["disconnect"] - t0) * 1000, 1), client_rc=ev["rc"])
    else:
        out.update(client="still connected after 5 s")
        c.disconnect()
    c.loop_stop()
    print(json.dumps(out), flush=True)
if __name__ == "__main__":
    via = sys.argv[1] if len(sys.argv) > 1 else "name"
    du, dp = (sys.argv[2], sys.argv[3]) if len(sys.argv) > 3 else ("admin", "adminpw")
    n = int(sys.argv[4]) if len(sys.argv) > 4 else 1
    for i in range(n):
        run(f"dev-1-{i}", "dev-1", du, dp, via)
