#!/usr/bin/env python3
"""fleetca's benchmark: the hot paths beside a peer and the machine's floor, in one run.

Scenarios (each against a release build on a fresh data directory, load from a second
process over loopback):
  1. issuance: POST /api/v4/manage/mqtt-certificates/ with server-side keys, 32 in flight,
     SQLite with durable commits; beside cfssl's `newcert` (P-256 key + certificate).
  2. broker auth, warm: /broker/auth with a device HMAC password, an EnOS sign-based device
     and an API-key token, wrk 2 threads / 64 connections; beside a bare actix-web endpoint
     (the floor).
  3. reconnect storm, cold: fleetca restarted, then every API key, every HA1 device and every
     sign-based device authenticates once, 64 at a time.
  4. revocation at scale: revoke (CRL re-signed, file written, reload command run) with 1,000
     and with 100,000 revoked certificates in the database.
  5. bulk provisioning: 10,000 devices in one request.
  6. memory: RSS idle and the peak during the scenarios.
  7. what the audit log and metrics cost: issuance and broker auth on two servers side by
     side, one with FLEETCA_BENCHMARK_BASELINE=1 (no audit records, webhook outbox or
     metrics), alternating, two rounds each.
  8. mass revocation: with 100,000 revoked, 10,000 more as single requests (64 in flight) and
     10,000 as one bulk request, each answered only once a CRL listing it is published; the
     reload command's runs counted. `--only mass` runs this one alone (`--only issuance` scenario 1).

Prints one markdown table and writes it to docs/performance.md. `--quick` runs every
scenario briefly (CI runs it so the benchmark never rots; its numbers mean nothing).
"""

import argparse
import concurrent.futures
import datetime
import hashlib
import hmac
import json
import os
import re
import secrets
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import uuid

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(ROOT, "target", "release")
ADMIN = "bench-admin-token-" + "x" * 32
HA1 = "939e7578ed9e3c518a452acee763bce9"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_mib(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


class Peak:
    """Samples a process's RSS every 20 ms while the block runs."""

    def __init__(self, pid):
        self.pid, self.peak, self._stop = pid, rss_mib(pid), threading.Event()

    def __enter__(self):
        def run():
            while not self._stop.is_set():
                self.peak = max(self.peak, rss_mib(self.pid))
                time.sleep(0.02)

        self._t = threading.Thread(target=run, daemon=True)
        self._t.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._t.join()


class Fleetca:
    def __init__(self, data_dir, *extra, env=None):
        self.data_dir, self.extra, self.env = data_dir, extra, env or {}
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.start()

    def start(self):
        env = dict(os.environ, FLEETCA_BOOTSTRAP_TOKEN=ADMIN, RUST_LOG="warn", **self.env)
        self.log = open(os.path.join(self.data_dir, "server.log"), "a")
        self.proc = subprocess.Popen(
            [os.path.join(BIN, "fleetca"), "serve", "--listen", f"127.0.0.1:{self.port}", "--data-dir", self.data_dir, *self.extra],
            env=env, stdout=subprocess.DEVNULL, stderr=self.log)
        wait_http(self.base + "/healthz")

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=30)

    def call(self, method, path, body=None, token=ADMIN):
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.base + path, data=data, method=method,
                                     headers={"Authorization": "Bearer " + token, "Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=120) as r:
                raw = r.read()
                return r.status, json.loads(raw) if raw else None
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read() or b"null")


def wait_http(url, timeout=60):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            urllib.request.urlopen(url, timeout=2)
            return
        except (urllib.error.URLError, ConnectionError):
            time.sleep(0.05)
    sys.exit(f"{url} did not answer")


def load(addr, lines, concurrency, expect, pid, seconds=None):
    with tempfile.NamedTemporaryFile("w", suffix=".jsonl", delete=False) as f:
        for line in lines:
            f.write(json.dumps(line) + "\n")
    args = [os.path.join(BIN, "fleetca-load"), "--addr", addr, "--file", f.name, "--concurrency", str(concurrency),
            "--expect", str(expect), "--pid", str(pid)]
    args += ["--seconds", str(seconds)] if seconds else ["--once"]
    out = json.loads(subprocess.run(args, check=True, capture_output=True, text=True).stdout)
    os.unlink(f.name)
    return out


def wrk(url, body, seconds, pid):
    script = tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False)
    script.write(f'wrk.method = "POST"\nwrk.body = {json.dumps(json.dumps(body))}\n'
                 'wrk.headers["Content-Type"] = "application/json"\n')
    script.close()
    with Peak(pid) as peak:
        out = subprocess.run(["wrk", "-t2", "-c64", f"-d{seconds}s", "--latency", "-s", script.name, url],
                             check=True, capture_output=True, text=True).stdout
    os.unlink(script.name)

    def ms(label):
        m = re.search(rf"^\s*{label}\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
        v = float(m.group(1))
        return v / 1000 if m.group(2) == "us" else v * 1000 if m.group(2) == "s" else v

    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {"rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)), "p50_ms": ms("50%"), "p99_ms": ms("99%"),
            "peak_rss_mib": peak.peak, "errors": int(non2xx.group(1)) if non2xx else 0}


def device_password(ts=None):
    ts = ts or int(time.time())
    sig = hmac.new(HA1.encode(), str(ts).encode(), hashlib.sha256).hexdigest()
    return f"signature={sig}&timestamp={ts}"


SIGN_PRODUCT = "benchproduct01"
SIGN_SECRET = "bench-device-secret-01"


def seed_sign_devices(f, n, prefix):
    s, body = f.call("POST", "/api/v4/manage/products/", {"product_key": SIGN_PRODUCT, "name": "bench", "scheme": "enos",
                                                          "enterprise": "bench"})
    assert s == 201, body
    for start in range(0, n, 10_000):
        rows = [{"device_key": f"{prefix}-{i:06d}", "device_secret": SIGN_SECRET} for i in range(start, min(n, start + 10_000))]
        s, body = f.call("POST", f"/api/v4/manage/products/{SIGN_PRODUCT}/devices/bulk/", rows)
        assert s == 201, str(body)[:300]


def sign_login(device_key, client_id):
    ts = str(int(time.time() * 1000))
    content = f"clientId{client_id}deviceKey{device_key}productKey{SIGN_PRODUCT}timestamp{ts}"
    password = hashlib.sha256((content + SIGN_SECRET).encode()).hexdigest().upper()
    return {"username": f"{device_key}&{SIGN_PRODUCT}", "password": password,
            "clientid": f"{client_id}|securemode=2,signmethod=sha256,timestamp={ts}|"}


def seed_keys(f, n, prefix):
    def one(i):
        s, body = f.call("POST", "/api/v4/manage/users/", {"username": f"{prefix}-{i:06d}", "is_service_account": True, "enterprise": "bench"})
        assert s == 201, body
        return body

    with concurrent.futures.ThreadPoolExecutor(8) as ex:
        return list(ex.map(one, range(n)))


def seed_devices(f, n, prefix):
    for start in range(0, n, 10_000):
        rows = [{"device_id": f"{prefix}-{i:06d}", "tenant": "bench", "ha1": HA1} for i in range(start, min(n, start + 10_000))]
        s, body = f.call("POST", "/api/v4/manage/devices/bulk/", rows)
        assert s == 201, str(body)[:300]


def scenario_issuance(q, results, peaks):
    d = tempfile.mkdtemp(prefix="fleetca-bench-")
    f = Fleetca(d)
    keys = seed_keys(f, 200 if q else 4000, "issue")
    lines = [{"method": "POST", "path": "/api/v4/manage/mqtt-certificates/", "headers": [["Authorization", "Bearer " + ADMIN]],
              "body": {"name": "bench", "api_key_id": k["id"]}} for _ in range(10) for k in keys]
    r = load(f"127.0.0.1:{f.port}", lines, 32, 201, f.proc.pid, seconds=1 if q else 10)
    peaks.append(r["peak_rss_mib"])
    results.append(("1. Issuance, server-side P-256 key, 32 in flight, SQLite durable", "fleetca", r))
    f.stop()
    # The peer: cfssl serve with a P-256 CA, issuing a new key and certificate per request.
    cd = tempfile.mkdtemp(prefix="cfssl-bench-")
    subprocess.run(["openssl", "ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", f"{cd}/ca-key.pem"], check=True)
    subprocess.run(["openssl", "req", "-x509", "-new", "-key", f"{cd}/ca-key.pem", "-subj", "/CN=cfssl bench CA", "-days", "3650",
                    "-out", f"{cd}/ca.pem"], check=True, capture_output=True)
    port = free_port()
    cfssl = subprocess.Popen(["cfssl", "serve", "-address", "127.0.0.1", "-port", str(port), "-ca", f"{cd}/ca.pem",
                              "-ca-key", f"{cd}/ca-key.pem"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 30
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            time.sleep(0.1)
    body = {"request": {"CN": "svc-bench", "names": [{"O": "bench"}], "key": {"algo": "ecdsa", "size": 256}}}
    r = load(f"127.0.0.1:{port}", [{"method": "POST", "path": "/api/v1/cfssl/newcert", "body": body}], 32, 200, cfssl.pid,
             seconds=1 if q else 10)
    results.append(("1. Issuance, server-side P-256 key, 32 in flight, SQLite durable", "cfssl serve (peer, no database)", r))
    cfssl.terminate()
    cfssl.wait()


def scenario_auth(q, results, peaks):
    d = tempfile.mkdtemp(prefix="fleetca-bench-")
    f = Fleetca(d)
    (key,) = seed_keys(f, 1, "auth")
    f.call("POST", "/api/v4/manage/devices/", {"device_id": "dev-1", "tenant": "bench", "ha1": HA1})
    seed_sign_devices(f, 1, "sign")
    secs = 1 if q else 10
    device = {"username": "device=dev-1&tenant=bench", "password": device_password(), "clientid": "dev-1"}
    token = {"username": key["username"], "password": key["token"], "clientid": "c1"}
    sign = sign_login("sign-000000", "c1")
    for label, body in [("device HMAC password", device), ("EnOS sign-based device", sign), ("API-key token", token)]:
        r = wrk(f.base + "/broker/auth", body, secs, f.proc.pid)
        assert r["errors"] == 0, r
        peaks.append(r["peak_rss_mib"])
        results.append(("2. Broker auth, warm, wrk -t2 -c64", f"fleetca, {label}", r))
    f.stop()
    port = free_port()
    floor = subprocess.Popen([os.path.join(BIN, "fleetca-floor"), f"127.0.0.1:{port}"])
    wait_http(f"http://127.0.0.1:{port}/")
    r = wrk(f"http://127.0.0.1:{port}/broker/auth", device, secs, floor.pid)
    results.append(("2. Broker auth, warm, wrk -t2 -c64", "bare actix-web 200 (floor)", r))
    floor.terminate()
    floor.wait()


def scenario_storm(q, results, peaks):
    n = 500 if q else 10_000
    d = tempfile.mkdtemp(prefix="fleetca-bench-")
    f = Fleetca(d)
    keys = seed_keys(f, n, "storm")
    seed_devices(f, n, "storm")
    seed_sign_devices(f, n, "sign")
    f.stop()
    f.start()  # cold: nothing cached
    lines = []
    for i, k in enumerate(keys):
        lines.append({"method": "POST", "path": "/broker/auth", "body": {"username": k["username"], "password": k["token"], "clientid": f"k{i}"}})
        lines.append({"method": "POST", "path": "/broker/auth",
                      "body": {"username": f"device=storm-{i:06d}&tenant=bench", "password": device_password(), "clientid": f"storm-{i:06d}"}})
        lines.append({"method": "POST", "path": "/broker/auth", "body": sign_login(f"sign-{i:06d}", f"s{i}")})
    r = load(f"127.0.0.1:{f.port}", lines, 64, 200, f.proc.pid)
    assert r["unexpected"] == 0, r
    peaks.append(r["peak_rss_mib"])
    results.append((f"3. Reconnect storm, cold: {n:,} keys + {n:,} HA1 devices + {n:,} sign devices once, 64 at a time", "fleetca", r))
    f.stop()


def seed_revoked(db, n):
    now = datetime.datetime.now(datetime.timezone.utc)
    ts = now.strftime("%Y-%m-%dT%H:%M:%S+00:00")
    later = (now + datetime.timedelta(days=365)).strftime("%Y-%m-%dT%H:%M:%S+00:00")
    con = sqlite3.connect(db)
    rows = ((uuid.uuid4().bytes, "seeded", "client", None, "bench", "40" + secrets.token_hex(15), secrets.token_hex(32), "-", ts, later, ts, ts,
             "superseded") for _ in range(n))
    con.executemany("INSERT INTO certificates (id, name, kind, api_key_id, enterprise, serial, fingerprint, certificate_pem, not_before,"
                    " not_after, created_at, revoked_at, revocation_reason) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)", rows)
    con.commit()
    con.close()


def scenario_revocation(q, results, peaks):
    for n in ([100, 2_000] if q else [1_000, 100_000]):
        d = tempfile.mkdtemp(prefix="fleetca-bench-")
        f = Fleetca(d)
        f.stop()
        seed_revoked(os.path.join(d, "fleetca.db"), n)
        f = Fleetca(d, "--crl-file", os.path.join(d, "crl.pem"), "--crl-reload-command", "true")
        (key,) = seed_keys(f, 1, f"rev{n}")
        times = []
        with Peak(f.proc.pid) as peak:
            for _ in range(5 if q else 40):
                s, cert = f.call("POST", "/api/v4/manage/mqtt-certificates/", {"name": "r", "api_key_id": key["id"]})
                assert s == 201, cert
                t = time.perf_counter()
                s, _ = f.call("POST", f"/api/v4/manage/mqtt-certificates/{cert['id']}/revoke/", {"reason": "keyCompromise"})
                times.append((time.perf_counter() - t) * 1000)
                assert s == 200
        times.sort()
        crl = load(f"127.0.0.1:{f.port}", [{"method": "GET", "path": "/crl.der"}], 8, 200, f.proc.pid, seconds=1)
        peaks.append(peak.peak)
        r = {"requests": len(times), "p50_ms": times[len(times) // 2], "p99_ms": times[-1], "peak_rss_mib": peak.peak}
        results.append(("4. Revoke (CRL re-signed, file written, reload run), sequential", f"{n:,} revoked in the database", r))
        results.append(("4. GET /crl.der from memory, 8 in flight", f"{n:,} revoked", crl))
        f.stop()


def seed_active(db, n, name):
    """n active client certificates (serials only: the CRL needs no more) for bulk revocation."""
    now = datetime.datetime.now(datetime.timezone.utc)
    ts = now.strftime("%Y-%m-%dT%H:%M:%S+00:00")
    later = (now + datetime.timedelta(days=365)).strftime("%Y-%m-%dT%H:%M:%S+00:00")
    ids = [uuid.uuid4() for _ in range(n)]
    con = sqlite3.connect(db)
    con.executemany("INSERT INTO certificates (id, name, kind, api_key_id, enterprise, serial, fingerprint, certificate_pem, not_before,"
                    " not_after, created_at) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                    ((u.bytes, name, "client", None, "bench", "41" + secrets.token_hex(15), secrets.token_hex(32), "-", ts, later, ts)
                     for u in ids))
    con.commit()
    con.close()
    return [str(u) for u in ids]


def scenario_mass(q, results, peaks):
    """Mass revocation: with `base` revoked already, revoke n more as single requests (64 in
    flight) and as one bulk request; each returns only after a CRL listing it is published
    (file written, reload command run). Counts the reload command's runs."""
    base, n = (2_000, 500) if q else (100_000, 10_000)
    d = tempfile.mkdtemp(prefix="fleetca-bench-")
    f = Fleetca(d)
    f.stop()
    db = os.path.join(d, "fleetca.db")
    seed_revoked(db, base)
    singles = seed_active(db, n, "single")
    bulk = seed_active(db, n, "bulk")
    reloads = os.path.join(d, "reloads")
    f = Fleetca(d, "--crl-file", os.path.join(d, "crl.pem"), "--crl-reload-command", f"echo >> {reloads}")

    def reload_count():
        return sum(1 for _ in open(reloads)) if os.path.exists(reloads) else 0

    before = reload_count()
    lines = [{"method": "POST", "path": f"/api/v4/manage/mqtt-certificates/{i}/revoke/", "headers": [["Authorization", "Bearer " + ADMIN]],
              "body": {"reason": "keyCompromise"}} for i in singles]
    r = load(f"127.0.0.1:{f.port}", lines, 64, 200, f.proc.pid)
    singles_reloads = reload_count() - before
    peaks.append(r["peak_rss_mib"])
    results.append((f"8. Mass revocation: {n:,} single revokes, 64 in flight ({singles_reloads} reloads)",
                    f"{base:,} revoked before", r))
    before = reload_count()
    with Peak(f.proc.pid) as peak:
        t = time.perf_counter()
        s, body = f.call("POST", "/api/v4/manage/mqtt-certificates/revoke/", {"ids": bulk, "reason": "keyCompromise"})
        secs = time.perf_counter() - t
    assert s == 200 and len(body["revoked"]) == n, str(body)[:300]
    results.append((f"8. Mass revocation: {n:,} in one bulk request ({reload_count() - before} reload)", f"{base + n:,} revoked before",
                    {"requests": 1, "seconds": secs, "p50_ms": secs * 1000, "p99_ms": secs * 1000, "peak_rss_mib": peak.peak}))
    f.stop()


def scenario_bulk(q, results):
    n = 1_000 if q else 10_000
    d = tempfile.mkdtemp(prefix="fleetca-bench-")
    f = Fleetca(d)
    idle = rss_mib(f.proc.pid)
    rows = [{"device_id": f"bulk-{i:06d}", "tenant": "bench", "password": f"password-{i:06d}"} for i in range(n)]
    with Peak(f.proc.pid) as peak:
        t = time.perf_counter()
        s, body = f.call("POST", "/api/v4/manage/devices/bulk/", rows)
        secs = time.perf_counter() - t
    assert s == 201, str(body)[:300]
    results.append((f"5. Bulk provisioning, {n:,} devices in one request", "fleetca",
                    {"requests": 1, "seconds": secs, "p50_ms": secs * 1000, "p99_ms": secs * 1000, "peak_rss_mib": peak.peak}))
    f.stop()
    return idle


def scenario_overhead(q, results):
    secs, per_round = (1, 100) if q else (6, 4000)
    modes = [("with audit log and metrics", {}), ("without (baseline)", {"FLEETCA_BENCHMARK_BASELINE": "1"})]
    servers = []
    for label, env in modes:
        f = Fleetca(tempfile.mkdtemp(prefix="fleetca-bench-"), env=env)
        keys = seed_keys(f, 2 * per_round, "ovh")
        f.call("POST", "/api/v4/manage/devices/", {"device_id": "dev-1", "tenant": "bench", "ha1": HA1})
        servers.append((label, f, keys))
    runs = {}
    for rnd in range(2):
        for label, f, keys in servers:
            batch = keys[rnd * per_round:(rnd + 1) * per_round]
            lines = [{"method": "POST", "path": "/api/v4/manage/mqtt-certificates/",
                      "headers": [["Authorization", "Bearer " + ADMIN]],
                      "body": {"name": "bench", "api_key_id": k["id"]}} for _ in range(10) for k in batch]
            r = load(f"127.0.0.1:{f.port}", lines, 32, 201, f.proc.pid, seconds=secs)
            runs.setdefault((label, "issuance, 32 in flight"), []).append(r)
            device = {"username": "device=dev-1&tenant=bench", "password": device_password(), "clientid": "dev-1"}
            r = wrk(f.base + "/broker/auth", device, secs, f.proc.pid)
            assert r["errors"] == 0, r
            runs.setdefault((label, "broker auth, device HMAC, wrk -c64"), []).append(r)
            token = {"username": keys[0]["username"], "password": keys[0]["token"], "clientid": "c1"}
            r = wrk(f.base + "/broker/auth", token, secs, f.proc.pid)
            assert r["errors"] == 0, r
            runs.setdefault((label, "broker auth, API-key token, wrk -c64"), []).append(r)
    for _, f, _ in servers:
        f.stop()
    summary = []
    for what in ["issuance, 32 in flight", "broker auth, device HMAC, wrk -c64", "broker auth, API-key token, wrk -c64"]:
        means = {}
        for label, _ in modes:
            rs = runs[(label, what)]
            mean = {k: sum(r[k] for r in rs) / len(rs) for k in ("rps", "p50_ms", "p99_ms")}
            means[label] = mean
            results.append(("7. Audit log and metrics overhead (mean of 2 alternating rounds)", f"fleetca {label}, {what}", mean))
        with_, without = means[modes[0][0]]["rps"], means[modes[1][0]]["rps"]
        summary.append(f"{what}: the audit log and metrics cost {100 * (1 - with_ / without):.1f} % of the throughput "
                       f"({with_:,.0f} with, {without:,.0f} req/s without; a negative cost is noise)")
    return summary


def fmt(v, unit=""):
    return "" if v is None else f"{v:,.1f}{unit}" if isinstance(v, float) else f"{v:,}{unit}"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="run every scenario briefly (CI)")
    ap.add_argument("--only", choices=["overhead", "mass", "issuance"], help="run one scenario and print it (docs/performance.md untouched)")
    args = ap.parse_args()
    q = args.quick
    results, peaks = [], []
    if args.only == "overhead":
        for line in scenario_overhead(q, results):
            print(line)
        for scenario, subject, r in results:
            print(f"| {scenario} | {subject} | {fmt(r.get('rps'))} | | {r['p50_ms']:.2f} | {r['p99_ms']:.2f} | |")
        return
    if args.only in ("mass", "issuance"):
        {"mass": scenario_mass, "issuance": scenario_issuance}[args.only](q, results, peaks)
        for scenario, subject, r in results:
            print(f"| {scenario} | {subject} | {fmt(r.get('rps'))} | {fmt(r.get('seconds'))} | {r['p50_ms']:.2f} | {r['p99_ms']:.2f} | |")
        return
    scenario_issuance(q, results, peaks)
    scenario_auth(q, results, peaks)
    scenario_storm(q, results, peaks)
    scenario_revocation(q, results, peaks)
    scenario_mass(q, results, peaks)
    idle = scenario_bulk(q, results)
    overhead = scenario_overhead(q, results)
    rows = ["| scenario | subject | throughput (req/s) | total s | p50 ms | p99 ms | server peak RSS MiB |",
            "| --- | --- | ---: | ---: | ---: | ---: | ---: |"]
    for scenario, subject, r in results:
        rows.append(f"| {scenario} | {subject} | {fmt(r.get('rps'))} | {fmt(r.get('seconds'))} | {r['p50_ms']:.2f} | {r['p99_ms']:.2f} | {fmt(r.get('peak_rss_mib'))} |")
    rows.append(f"| 6. Memory | fleetca idle after start | | | | | {idle:.1f} |")
    rows.append(f"| 6. Memory | fleetca peak during scenarios 1–4 | | | | | {max(peaks):.1f} |")
    table = "\n".join(rows) + "\n\nAudit log and metrics overhead (scenario 7):\n\n" + "\n".join(f"- {line}" for line in overhead)
    print(table)
    when = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    head = (f"# Performance\n\nMeasured by `scripts/bench{' --quick' if q else ''}` on {when}, {os.cpu_count()} cores "
            f"(the load generator shares them), release build, SQLite default with durable commits.\n\n")
    if q:
        print("(quick mode: docs/performance.md not written)")
    else:
        path = os.path.join(ROOT, "docs", "performance.md")
        notes = ""
        if os.path.exists(path):
            old = open(path).read()
            if "<!-- notes -->" in old:
                notes = "\n" + old[old.index("<!-- notes -->"):]
        with open(path, "w") as out:
            out.write(head + table + "\n" + notes)


if __name__ == "__main__":
    main()
