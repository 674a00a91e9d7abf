#!/usr/bin/env python3
"""fleetca's benchmark: the hot paths beside a peer and the machine's floor, in one run.

Scenarios (each against a release build on a fresh data directory, load from a second
process over loopback):
  1. issuance: POST /api/v4/manage/mqtt-certificates/ with server-side keys, 32 in flight (also with the
     issuing CA key in a SoftHSM2 token, on SQLite),
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
  9. EST enrollment: RFC 7030 simpleenroll with an API key's token and a CSR, 32 in flight.
 10. mosquitto 2.0.11 with fleetca's plugin: connect storms (cold, warm) and a QoS 1 publish
     storm whose every publish is an ACL check, with the plugin's cache on and off (off asks
     fleetca once per connect and per check, as mosquitto-go-auth does). `--only plugin`.

Scenarios 1-5, 8 and 9 run on SQLite (a file, every commit flushed before its answer) and on PostgreSQL (a
throw-away cluster started here, `fsync` and `synchronous_commit` on); 7 on SQLite. The whole
set runs `--runs` times (3 by default); each row reports the median and the spread (min-max).
Prints the table and writes it, dated, to docs/performance.md (the part after `<!-- notes -->`
is kept). `--quick` runs every scenario once and briefly (CI runs it so the benchmark never
rots; its numbers mean nothing).
"""

import argparse
import atexit
import base64
import concurrent.futures
import csv
import datetime
import glob
import hashlib
import hmac
import io
import json
import os
import re
import pwd
import secrets
import statistics
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
    """The process's resident memory without its file-backed pages: RssAnon + RssShmem of
    /proc/PID/status (Linux reports them apart from RssFile). RssFile holds the pages of
    SQLite's memory-mapped database file (mmap_size 256 MiB), which the kernel reclaims at
    will, and of the binary itself; counting them made a large database look like a leak."""
    kb = 0
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(("RssAnon:", "RssShmem:")):
                    kb += int(line.split()[1])
    except OSError:
        pass
    return kb / 1024


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


class Postgres:
    """A throw-away PostgreSQL cluster on loopback (durable: fsync and synchronous_commit on)."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="fleetca-bench-pg-")
        bins = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(p.split("/")[-2]))
        if not bins:
            sys.exit("PostgreSQL is not installed (scripts/bench installs it)")
        self.bin = bins[-1]
        self.as_pg = []
        if os.getuid() == 0:
            pw = pwd.getpwnam("postgres")
            os.chown(self.dir, pw.pw_uid, pw.pw_gid)
            self.as_pg = ["runuser", "-u", "postgres", "--"]
        self.port = free_port()
        atexit.register(self.stop)
        data = os.path.join(self.dir, "data")
        subprocess.run(self.as_pg + [f"{self.bin}/initdb", "-D", data, "-A", "trust", "-U", "postgres"], check=True, stdout=subprocess.DEVNULL)
        subprocess.run(self.as_pg + [f"{self.bin}/pg_ctl", "-D", data, "-l", os.path.join(self.dir, "log"), "-w", "start", "-o",
                                     f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c max_connections=200"],
                       check=True, stdout=subprocess.DEVNULL)

    def create_db(self):
        name = "bench_" + secrets.token_hex(6)
        self.psql("postgres", f'CREATE DATABASE "{name}"')
        return f"postgres://postgres@127.0.0.1:{self.port}/{name}"

    def psql(self, db, sql, stdin=None):
        subprocess.run(["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", "-d", db,
                        "-c", sql], input=stdin, text=True, check=True, capture_output=True)

    def version(self):
        return self.bin.split("/")[-2]

    def stop(self):
        if not os.path.isdir(self.dir):
            return
        subprocess.run(self.as_pg + [f"{self.bin}/pg_ctl", "-D", os.path.join(self.dir, "data"), "-m", "immediate", "stop"],
                       capture_output=True)
        subprocess.run(["rm", "-rf", self.dir])


class Backend:
    """Where a scenario's servers keep their data: "SQLite" (a file in the data directory) or
    "PostgreSQL" (a fresh database of the bench's cluster per server)."""

    def __init__(self, name, pg=None):
        self.name, self.pg = name, pg

    def server(self, data_dir, *extra, env=None):
        url = self.pg.create_db() if self.pg else None
        return Fleetca(data_dir, *extra, env=env, db_url=url)


class Fleetca:
    def __init__(self, data_dir, *extra, env=None, db_url=None):
        self.data_dir, self.extra, self.env, self.db_url = data_dir, extra, env or {}, db_url
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.start()

    def start(self):
        env = dict(os.environ, FLEETCA_BOOTSTRAP_TOKEN=ADMIN, RUST_LOG="warn", **self.env)
        self.log = open(os.path.join(self.data_dir, "server.log"), "a")
        self.proc = subprocess.Popen(
            [os.path.join(BIN, "fleetca"), "serve", "--listen", f"127.0.0.1:{self.port}", "--data-dir", self.data_dir, *self.extra,
             *(["--database-url", self.db_url] if self.db_url else [])],
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


USER_COLUMNS = ("id", "username", "is_service_account", "enterprise", "role", "is_active", "token_lookup", "token_hash",
                "password_hash", "created_at", "updated_at")


def seed_issuing_keys(f, n, prefix):
    """n API keys for issuance, which names a key but never uses its token: one made through the
    API, the rest copied from its row straight into the database (with new ids, names and token
    lookups), the server stopped meanwhile and started again. Enough keys that a run never meets
    the 10-per-key limit: every answer counted is a certificate issued."""
    (first,) = seed_keys(f, 1, prefix)
    f.stop()
    if f.db_url:
        db = f.db_url.rsplit("/", 1)[1]
        row = subprocess.run(["psql", "-X", "-At", "-F", "\t", "-h", "127.0.0.1", "-p", str(PG.port), "-U", "postgres", "-d", db, "-c",
                              f"SELECT role, token_hash, created_at FROM users WHERE id = '{first['id']}'"],
                             check=True, capture_output=True, text=True).stdout.strip().split("\t")
    else:
        con = sqlite3.connect(os.path.join(f.data_dir, "fleetca.db"))
        row = con.execute("SELECT role, token_hash, created_at FROM users WHERE id = ?", (uuid.UUID(first["id"]).bytes,)).fetchone()
    role, token_hash, created = row
    ids = [uuid.uuid4() for _ in range(n - 1)]
    rows = [(u, f"{prefix}-{i:06d}", True, "bench", role, True, secrets.token_hex(16), token_hash, None, created, created)
            for i, u in enumerate(ids, start=1)]
    if f.db_url:
        text = io.StringIO()
        csv.writer(text).writerows(["" if v is None else str(v).lower() if isinstance(v, bool) else v for v in row] for row in rows)
        PG.psql(db, f"\\copy users ({', '.join(USER_COLUMNS)}) FROM STDIN WITH (FORMAT csv)", stdin=text.getvalue())
        PG.psql(db, "ANALYZE users")
    else:
        con.executemany(f"INSERT INTO users ({', '.join(USER_COLUMNS)}) VALUES ({','.join('?' * len(USER_COLUMNS))})",
                        ((u.bytes, *rest) for u, *rest in rows))
        con.commit()
        con.close()
    f.start()
    return [first] + [{"id": str(u)} for u in ids]


def seed_devices(f, n, prefix):
    for start in range(0, n, 10_000):
        rows = [{"device_id": f"{prefix}-{i:06d}", "tenant": "bench", "ha1": HA1} for i in range(start, min(n, start + 10_000))]
        s, body = f.call("POST", "/api/v4/manage/devices/bulk/", rows)
        assert s == 201, str(body)[:300]


# Keys for the issuance runs: 10 certificates each, so a 10-second run has room for 20,000
# issued a second (1 second for the quick run) before any request would meet the limit.
ISSUING_KEYS, ISSUING_KEYS_QUICK = 20_000, 2_000


def issuance_lines(keys):
    return [{"method": "POST", "path": "/api/v4/manage/mqtt-certificates/", "headers": [["Authorization", "Bearer " + ADMIN]],
             "body": {"name": "bench", "api_key_id": k["id"]}} for _ in range(10) for k in keys]


def scenario_issuance(q, be, out):
    d = tempfile.mkdtemp(prefix="fleetca-bench-")
    f = be.server(d)
    keys = seed_issuing_keys(f, ISSUING_KEYS_QUICK if q else ISSUING_KEYS, "issue")
    r = load(f"127.0.0.1:{f.port}", issuance_lines(keys), 32, 201, f.proc.pid, seconds=1 if q else 10)
    assert r["unexpected"] == 0, r
    out.add("1. Issuance, server-side P-256 key, 32 in flight, durable commits", f"fleetca, {be.name}", r)
    f.stop()


def scenario_issuance_hsm(q, out):
    """Scenario 1 with the issuing CA's key in a SoftHSM2 token (signing through PKCS#11), SQLite."""
    d = tempfile.mkdtemp(prefix="fleetca-bench-hsm-")
    os.makedirs(f"{d}/tokens")
    with open(f"{d}/softhsm2.conf", "w") as c:
        c.write(f"directories.tokendir = {d}/tokens\nobjectstore.backend = file\nlog.level = ERROR\n")
    env = {"SOFTHSM2_CONF": f"{d}/softhsm2.conf", "FLEETCA_PKCS11_PIN": "4711"}
    subprocess.run(["softhsm2-util", "--init-token", "--free", "--label", "bench", "--pin", "4711", "--so-pin", "1234567"],
                   env=dict(os.environ, **env), check=True, capture_output=True)
    with open(f"{d}/fleetca.toml", "w") as c:
        c.write('[pkcs11]\nmodule = "/usr/lib/softhsm/libsofthsm2.so"\ntoken = "bench"\n')
    data = f"{d}/data"
    os.makedirs(data)

    def cli(*args):
        subprocess.run([os.path.join(BIN, "fleetca"), "--data-dir", data, "--config", f"{d}/fleetca.toml", *args],
                       env=dict(os.environ, RUST_LOG="warn", FLEETCA_BOOTSTRAP_TOKEN=ADMIN, **env), check=True, capture_output=True)

    cli("ca", "intermediate", "--new", "--token-key", "bench-issuing")
    Fleetca(data, "--config", f"{d}/fleetca.toml", env=env).stop()  # publishes its CRL: it may be activated
    cli("ca", "activate", "3")
    f = Fleetca(data, "--config", f"{d}/fleetca.toml", env=env)
    keys = seed_issuing_keys(f, ISSUING_KEYS_QUICK if q else ISSUING_KEYS, "issue")
    r = load(f"127.0.0.1:{f.port}", issuance_lines(keys), 32, 201, f.proc.pid, seconds=1 if q else 10)
    assert r["unexpected"] == 0, r
    out.add("1. Issuance, server-side P-256 key, 32 in flight, durable commits", "fleetca, SQLite, CA key in SoftHSM2 (PKCS#11)", r)
    f.stop()


def scenario_cfssl(q, out):
    """The peer: cfssl serve with a P-256 CA, issuing a new key and certificate per request."""
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
    out.add("1. Issuance, server-side P-256 key, 32 in flight, durable commits", "cfssl serve (peer, no database)", r)
    cfssl.terminate()
    cfssl.wait()


AUTH = "2. Broker auth, warm, wrk -t2 -c64"


def scenario_auth(q, be, out):
    d = tempfile.mkdtemp(prefix="fleetca-bench-")
    f = be.server(d)
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
        out.add(AUTH, f"fleetca, {label}, {be.name}", r)
    f.stop()


def scenario_floor(q, out):
    port = free_port()
    floor = subprocess.Popen([os.path.join(BIN, "fleetca-floor"), f"127.0.0.1:{port}"])
    wait_http(f"http://127.0.0.1:{port}/")
    device = {"username": "device=dev-1&tenant=bench", "password": device_password(), "clientid": "dev-1"}
    r = wrk(f"http://127.0.0.1:{port}/broker/auth", device, 1 if q else 10, floor.pid)
    out.add(AUTH, "bare actix-web 200 (floor)", r, server=False)
    floor.terminate()
    floor.wait()


def scenario_storm(q, be, out):
    n = 500 if q else 10_000
    d = tempfile.mkdtemp(prefix="fleetca-bench-")
    f = be.server(d)
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
    out.add(f"3. Reconnect storm, cold: {n:,} keys + {n:,} HA1 devices + {n:,} sign devices once, 64 at a time", f"fleetca, {be.name}", r)
    f.stop()


CERT_COLUMNS = ("id", "name", "kind", "api_key_id", "enterprise", "serial", "fingerprint", "certificate_pem", "not_before", "not_after",
                "created_at", "revoked_at", "revocation_reason", "issuer_id", "crl_shard")
# As a new installation issues them: by its intermediate (CA 2), naming its CRL's 16 shards in turn.
ISSUING_CA, CRL_SHARDS = 2, 16


def seed_certificates(f, n, name, serial_prefix, revoked):
    """n client certificates of no API key, straight into the stopped server's database (serials
    only: the CRL needs no more); revoked ones as superseded. Returns their ids."""
    now = datetime.datetime.now(datetime.timezone.utc)
    ts = now.strftime("%Y-%m-%dT%H:%M:%S+00:00")
    later = (now + datetime.timedelta(days=365)).strftime("%Y-%m-%dT%H:%M:%S+00:00")
    ids = [uuid.uuid4() for _ in range(n)]
    rows = [(u, name, "client", None, "bench", serial_prefix + secrets.token_hex(15), secrets.token_hex(32), "-", ts, later, ts,
             ts if revoked else None, "superseded" if revoked else None, ISSUING_CA, i % CRL_SHARDS) for i, u in enumerate(ids)]
    if f.db_url:
        lines = "".join(",".join("" if v is None else str(v) for v in row) + "\n" for row in rows)
        PG.psql(f.db_url.rsplit("/", 1)[1], f"\\copy certificates ({', '.join(CERT_COLUMNS)}) FROM STDIN WITH (FORMAT csv)", stdin=lines)
        PG.psql(f.db_url.rsplit("/", 1)[1], "ANALYZE certificates")
    else:
        con = sqlite3.connect(os.path.join(f.data_dir, "fleetca.db"))
        con.executemany(f"INSERT INTO certificates ({', '.join(CERT_COLUMNS)}) VALUES ({','.join('?' * len(CERT_COLUMNS))})",
                        ((u.bytes, *rest) for u, *rest in rows))
        con.commit()
        con.close()
    return [str(u) for u in ids]


def scenario_revocation(q, be, out):
    for n in ([100, 2_000] if q else [1_000, 100_000]):
        d = tempfile.mkdtemp(prefix="fleetca-bench-")
        f = be.server(d)
        f.stop()
        seed_certificates(f, n, "seeded", "40", revoked=True)
        f = Fleetca(d, "--crl-file", os.path.join(d, "crl.pem"), "--crl-reload-command", "true", db_url=f.db_url)
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
                # Lone revocations: the CRL file and reload are published at most every 100 ms
                # (start to start), so back-to-back revokes would measure that interval.
                time.sleep(0.1)
        times.sort()
        crl = load(f"127.0.0.1:{f.port}", [{"method": "GET", "path": "/crl/2/0.der"}], 8, 200, f.proc.pid, seconds=1)
        r = {"requests": len(times), "p50_ms": times[len(times) // 2], "p99_ms": times[-1], "peak_rss_mib": peak.peak}
        out.add("4. Revoke (CRL re-signed, file written, reload run), one at a time, 0.1 s apart", f"{n:,} revoked in the database, {be.name}", r)
        out.add("4. GET a CRL shard (/crl/2/0.der, a sixteenth of them) from memory, 8 in flight", f"{n:,} revoked, {be.name}", crl)
        f.stop()


def scenario_mass(q, be, out):
    """Mass revocation: with `base` revoked already, revoke n more as single requests (64 in
    flight) and as one bulk request; each returns only after a CRL listing it is published
    (file written, reload command run). Counts the reload command's runs."""
    base, n = (2_000, 500) if q else (100_000, 10_000)
    d = tempfile.mkdtemp(prefix="fleetca-bench-")
    f = be.server(d)
    f.stop()
    seed_certificates(f, base, "seeded", "40", revoked=True)
    singles = seed_certificates(f, n, "single", "41", revoked=False)
    bulk = seed_certificates(f, n, "bulk", "42", revoked=False)
    reloads = os.path.join(d, "reloads")
    f = Fleetca(d, "--crl-file", os.path.join(d, "crl.pem"), "--crl-reload-command", f"echo >> {reloads}", db_url=f.db_url)

    def reload_count():
        return sum(1 for _ in open(reloads)) if os.path.exists(reloads) else 0

    before = reload_count()
    lines = [{"method": "POST", "path": f"/api/v4/manage/mqtt-certificates/{i}/revoke/", "headers": [["Authorization", "Bearer " + ADMIN]],
              "body": {"reason": "keyCompromise"}} for i in singles]
    r = load(f"127.0.0.1:{f.port}", lines, 64, 200, f.proc.pid)
    r["reloads"] = reload_count() - before
    out.add(f"8. Mass revocation, {base:,} revoked before: {n:,} single revokes, 64 in flight", f"fleetca, {be.name}", r)
    before = reload_count()
    with Peak(f.proc.pid) as peak:
        t = time.perf_counter()
        s, body = f.call("POST", "/api/v4/manage/mqtt-certificates/revoke/", {"ids": bulk, "reason": "keyCompromise"})
        secs = time.perf_counter() - t
    assert s == 200 and len(body["revoked"]) == n, str(body)[:300]
    out.add(f"8. Mass revocation, {base + n:,} revoked before: {n:,} in one bulk request", f"fleetca, {be.name}",
            {"requests": 1, "seconds": secs, "p50_ms": secs * 1000, "p99_ms": secs * 1000, "peak_rss_mib": peak.peak,
             "reloads": reload_count() - before})
    f.stop()


def scenario_bulk(q, be, out):
    n = 1_000 if q else 10_000
    d = tempfile.mkdtemp(prefix="fleetca-bench-")
    f = be.server(d)
    time.sleep(0.5)
    out.add("6. Memory", f"fleetca idle after start, {be.name}", {"peak_rss_mib": rss_mib(f.proc.pid)})
    rows = [{"device_id": f"bulk-{i:06d}", "tenant": "bench", "password": f"password-{i:06d}"} for i in range(n)]
    with Peak(f.proc.pid) as peak:
        t = time.perf_counter()
        s, body = f.call("POST", "/api/v4/manage/devices/bulk/", rows)
        secs = time.perf_counter() - t
    assert s == 201, str(body)[:300]
    out.add(f"5. Bulk provisioning, {n:,} devices in one request", f"fleetca, {be.name}",
            {"requests": 1, "seconds": secs, "p50_ms": secs * 1000, "p99_ms": secs * 1000, "peak_rss_mib": peak.peak})
    f.stop()


def scenario_est(q, be, out):
    """EST simpleenroll (RFC 7030) with API keys' tokens: each key's CSR names it; 10 per key."""
    n = 50 if q else 500
    d = tempfile.mkdtemp(prefix="fleetca-bench-")
    f = be.server(d)
    keys = seed_keys(f, n, "est")
    subprocess.run(["openssl", "ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", f"{d}/csr-key.pem"], check=True)
    lines = []
    for k in keys:
        der = subprocess.run(["openssl", "req", "-new", "-key", f"{d}/csr-key.pem", "-subj", f"/CN={k['username']}", "-outform", "DER"],
                             check=True, capture_output=True).stdout
        lines.append({"method": "POST", "path": "/.well-known/est/simpleenroll", "raw": base64.b64encode(der).decode(),
                      "headers": [["Authorization", "Bearer " + k["token"]], ["Content-Type", "application/pkcs10"]]})
    # Every token verified once first (argon2 on the first use), then ten enrollments per key.
    load(f"127.0.0.1:{f.port}", [{"method": "POST", "path": "/broker/auth", "body": {"username": k["username"], "password": k["token"],
                                                                                     "clientid": "w"}} for k in keys], 8, 200, f.proc.pid)
    r = load(f"127.0.0.1:{f.port}", lines * 10, 32, 200, f.proc.pid)
    assert r["unexpected"] == 0, r
    out.add(f"9. EST simpleenroll, API-key token + CSR, {n * 10:,} enrollments, 32 in flight", f"fleetca, {be.name}", r)
    f.stop()


def scenario_overhead(q, out):
    """The same loads on a server with the audit log and metrics and on one without, in
    rounds whose order alternates (with, without; without, with; ...), so that neither is
    always the one measured first, nor the one measured while the disk still writes what the
    seeding or the round before left; and the disk is synced before every load."""
    rounds, secs, per_round = (2, 1, 3_000) if q else (OVERHEAD_ROUNDS, 3, 6_000)
    assert rounds % 2 == 0, "an even number of rounds, so that each server is first as often"
    modes = [("with audit log and metrics", {}), ("without (baseline)", {"FLEETCA_BENCHMARK_BASELINE": "1"})]
    servers = []
    for label, env in modes:
        f = Fleetca(tempfile.mkdtemp(prefix="fleetca-bench-"), env=env)
        keys = seed_keys(f, 1, "ovh-token") + seed_issuing_keys(f, rounds * per_round, "ovh")
        f.call("POST", "/api/v4/manage/devices/", {"device_id": "dev-1", "tenant": "bench", "ha1": HA1})
        servers.append((label, f, keys))
    runs = {}
    for rnd in range(rounds):
        for label, f, keys in (servers if rnd % 2 == 0 else servers[::-1]):
            batch = keys[1 + rnd * per_round:1 + (rnd + 1) * per_round]
            os.sync()
            r = load(f"127.0.0.1:{f.port}", issuance_lines(batch), 32, 201, f.proc.pid, seconds=secs)
            assert r["unexpected"] == 0, r
            runs.setdefault((label, "issuance, 32 in flight"), []).append(r)
            device = {"username": "device=dev-1&tenant=bench", "password": device_password(), "clientid": "dev-1"}
            os.sync()
            r = wrk(f.base + "/broker/auth", device, secs, f.proc.pid)
            assert r["errors"] == 0, r
            runs.setdefault((label, "broker auth, device HMAC, wrk -c64"), []).append(r)
            token = {"username": keys[0]["username"], "password": keys[0]["token"], "clientid": "c1"}
            os.sync()
            r = wrk(f.base + "/broker/auth", token, secs, f.proc.pid)
            assert r["errors"] == 0, r
            runs.setdefault((label, "broker auth, API-key token, wrk -c64"), []).append(r)
    for _, f, _ in servers:
        f.stop()
    for what in OVERHEAD_LOADS:
        means = {}
        for label, _ in modes:
            rs = runs[(label, what)]
            means[label] = {k: sum(r[k] for r in rs) / len(rs) for k in ("rps", "p50_ms", "p99_ms")}
            out.add(f"7. Audit log and metrics overhead, SQLite (mean of {rounds} rounds, order alternating)", f"fleetca {label}, {what}", means[label],
                    server=False)
        out.derived(f"audit log and metrics cost, {what}", 100 * (1 - means[modes[0][0]]["rps"] / means[modes[1][0]]["rps"]), "%")


OVERHEAD_ROUNDS = 4
OVERHEAD_LOADS = ["issuance, 32 in flight", "broker auth, device HMAC, wrk -c64", "broker auth, API-key token, wrk -c64"]


class Results:
    """Rows of one or more runs, keyed by (scenario, subject), in first-seen order; derived
    figures (ratios, costs) per run."""

    def __init__(self):
        self.rows, self.derived_values, self.run = {}, {}, 0

    def add(self, scenario, subject, r, server=True):
        self.rows.setdefault((scenario, subject), []).append(dict(r, server=server))

    def derived(self, name, value, unit=""):
        self.derived_values.setdefault(name, ([], unit))[0].append(value)

    def get(self, scenario, subject, key="rps"):
        runs = self.rows.get((scenario, subject), [])
        return runs[-1].get(key) if runs else None

    def derive_run(self):
        """Ratios within the run just finished (rows compared within one run only)."""
        issue = "1. Issuance, server-side P-256 key, 32 in flight, durable commits"
        cfssl = self.get(issue, "cfssl serve (peer, no database)")
        floor = self.get(AUTH, "bare actix-web 200 (floor)")
        hsm = self.get(issue, "fleetca, SQLite, CA key in SoftHSM2 (PKCS#11)")
        sealed = self.get(issue, "fleetca, SQLite")
        if hsm and sealed:
            self.derived("issuance with the CA key in SoftHSM2 / in the database (SQLite)", hsm / sealed, "×")
        for kind in ["connect storm, warm (round-robin, 32 in flight)", "publish QoS 1, 16 HA1 devices, each publish an ACL check"]:
            on = self.get(PLUGIN, f"{kind}, cache on")
            off = self.get(PLUGIN, f"{kind}, cache off (one HTTP decision per connect and per ACL check, as go-auth)")
            if on and off:
                self.derived(f"mosquitto plugin, {kind.split(',')[0]}: cache on / off", on / off, "×")
        for be in BACKENDS:
            fl = self.get(issue, f"fleetca, {be}")
            if fl and cfssl:
                self.derived(f"issuance on {be} / cfssl", fl / cfssl, "×")
            for label in ["device HMAC password", "EnOS sign-based device", "API-key token"]:
                a = self.get(AUTH, f"fleetca, {label}, {be}")
                if a and floor:
                    self.derived(f"broker auth, {label}, {be}: share of the floor", 100 * a / floor, "%")
            rev = "4. Revoke (CRL re-signed, file written, reload run), one at a time, 0.1 s apart"
            small = [self.get(rev, f"{n:,} revoked in the database, {be}", "p50_ms") for n in (100, 1_000)]
            large = [self.get(rev, f"{n:,} revoked in the database, {be}", "p50_ms") for n in (2_000, 100_000)]
            small, large = next((x for x in small if x), None), next((x for x in large if x), None)
            if small and large:
                self.derived(f"revoke p50, large / small revoked set, {be}", large / small, "×")


BACKENDS = ["SQLite", "PostgreSQL"]


def spread(values, f):
    values = [v for v in values if v is not None]
    if not values:
        return ""
    m = statistics.median(values)
    if len(values) == 1:
        return f(m)
    return f"{f(m)} ({f(min(values))}–{f(max(values))})"


def fmt(v, unit=""):
    return "" if v is None else f"{v:,.1f}{unit}" if isinstance(v, float) else f"{v:,}{unit}"


PLUGIN = "10. mosquitto 2.0.11 with fleetca's plugin, SQLite"


def mosquitto_with_plugin(d, f, cache):
    """mosquitto with the plugin asking `f`, on a plain listener; returns (process, port)."""
    port = free_port()
    conf = os.path.join(d, f"mosquitto-{cache}.conf")
    with open(conf, "w") as c:
        c.write(f"per_listener_settings false\nuser root\nallow_anonymous false\nlog_dest stderr\nlog_type error\n"
                f"log_type warning\nconnection_messages false\nplugin {os.path.join(BIN, 'libfleetca_mosquitto.so')}\n"
                f"plugin_opt_url {f.base}\nplugin_opt_broker bench\nplugin_opt_cache {'true' if cache else 'false'}\n"
                f"listener {port} 127.0.0.1\n")
    log = open(os.path.join(d, f"mosquitto-{cache}.log"), "w")
    proc = subprocess.Popen(["/usr/sbin/mosquitto", "-c", conf], stdout=log, stderr=log)
    deadline = time.time() + 10
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            break
        except OSError:
            time.sleep(0.05)
    time.sleep(0.5)  # the plugin's first poll of the feed
    return proc, port


def mqtt_load(port, mode, logins, seconds=None, concurrency=32):
    with tempfile.NamedTemporaryFile("w", suffix=".jsonl", delete=False) as f:
        for line in logins:
            f.write(json.dumps(line) + "\n")
    args = [os.path.join(BIN, "fleetca-mqtt-load"), "--addr", f"127.0.0.1:{port}", "--mode", mode, "--file", f.name,
            "--concurrency", str(concurrency)]
    args += ["--seconds", str(seconds)] if seconds else ["--once"]
    r = json.loads(subprocess.run(args, check=True, capture_output=True, text=True).stdout)
    os.unlink(f.name)
    assert r["errors"] == 0, r
    return r


def scenario_plugin(q, out):
    """Connect storms (every login once on a fresh broker, then round-robin) and a publish
    storm (QoS 1, each publish an ACL check), with the plugin's cache on and off (off: one
    HTTP decision per connect and per check, as mosquitto-go-auth makes them)."""
    d = tempfile.mkdtemp(prefix="fleetca-bench-")
    settings = os.path.join(d, "fleetca.toml")
    with open(settings, "w") as c:
        c.write('[[brokers]]\nkind = "mosquitto-plugin"\nname = "bench"\n')
    f = Fleetca(d, env={"FLEETCA_CONFIG": settings})
    n = 32 if q else 256
    keys = seed_keys(f, n, "plug")
    seed_devices(f, 16, "pdev")
    logins = [{"username": k["username"], "password": k["token"], "client_id": f"c-{k['username']}"} for k in keys]
    devices = [{"username": f"device=pdev-{i:06d}&tenant=bench", "password": device_password(), "client_id": f"pdev-{i:06d}",
                "topic": f"devices/bench/pdev-{i:06d}/telemetry"} for i in range(16)]
    secs = 1 if q else 10
    # fleetca's own caches (tokens) warm first, as in a running fleet whose broker restarts.
    proc, port = mosquitto_with_plugin(d, f, False)
    mqtt_load(port, "connect", logins)
    proc.terminate()
    proc.wait()
    for cache in (False, True):
        label = "cache on" if cache else "cache off (one HTTP decision per connect and per ACL check, as go-auth)"
        proc, port = mosquitto_with_plugin(d, f, cache)
        with Peak(f.proc.pid):
            out.add(PLUGIN, f"connect storm, cold (each of {n} API keys once, 32 in flight), {label}",
                    mqtt_load(port, "connect", logins))
            out.add(PLUGIN, f"connect storm, warm (round-robin, 32 in flight), {label}",
                    mqtt_load(port, "connect", logins, seconds=secs))
            out.add(PLUGIN, f"publish QoS 1, 16 HA1 devices, each publish an ACL check, {label}",
                    mqtt_load(port, "publish", devices, seconds=secs))
        proc.terminate()
        proc.wait()
    f.stop()


def one_run(q, out, backends, only):
    def want(name):
        return only is None or only == name

    peak_from = {k: len(v) for k, v in out.rows.items()}
    if want("issuance"):
        for be in backends:
            scenario_issuance(q, be, out)
        if any(be.name == "SQLite" for be in backends):
            scenario_issuance_hsm(q, out)
        scenario_cfssl(q, out)
    if want("auth"):
        for be in backends:
            scenario_auth(q, be, out)
        scenario_floor(q, out)
    if only is None:
        for be in backends:
            scenario_storm(q, be, out)
    if want("revocation"):
        for be in backends:
            scenario_revocation(q, be, out)
    if want("mass"):
        for be in backends:
            scenario_mass(q, be, out)
    if only is None:
        for be in backends:
            scenario_bulk(q, be, out)
        for be in backends:
            scenario_est(q, be, out)
    if want("overhead"):
        scenario_overhead(q, out)
    if want("plugin"):
        scenario_plugin(q, out)
    peaks = [r["peak_rss_mib"] for k, rs in out.rows.items() for r in rs[peak_from.get(k, 0):]
             if r.get("server") and r.get("peak_rss_mib") and k[0] != "6. Memory"]
    if only is None and peaks:
        out.add("6. Memory", "fleetca peak during the run (any scenario, either database)", {"peak_rss_mib": max(peaks)}, server=False)
    out.derive_run()


def table(out, runs):
    rows = ["| scenario | subject | throughput req/s | total s | p50 ms | p99 ms | server peak RSS MiB | reloads |",
            "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for (scenario, subject), rs in out.rows.items():
        def col(key, f=lambda v: f"{v:,.0f}" if v >= 100 else f"{v:,.2f}"):
            return spread([r.get(key) for r in rs], f)
        rows.append(f"| {scenario} | {subject} | {col('rps')} | {col('seconds', lambda v: f'{v:,.1f}')} | {col('p50_ms')} | "
                    f"{col('p99_ms')} | {spread([r.get('peak_rss_mib') for r in rs], lambda v: f'{v:,.0f}')} | "
                    f"{spread([r.get('reloads') for r in rs], lambda v: f'{v:,.0f}')} |")
    lines = ["", f"Figures within one run compared, then the median of the {runs} runs (min–max):", ""]
    for name, (values, unit) in out.derived_values.items():
        f = (lambda v: f"{v:.2f}{unit}") if unit == "×" else (lambda v: f"{v:.1f}{unit}")
        lines.append(f"- {name}: {spread(values, f)}")
    return "\n".join(rows + lines)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="run every scenario once, briefly (CI)")
    ap.add_argument("--runs", type=int, help="how many times to run the set (default 3; 1 with --quick)")
    ap.add_argument("--only", choices=["issuance", "auth", "revocation", "mass", "overhead", "plugin"], help="run one scenario (docs/performance.md untouched)")
    ap.add_argument("--backends", default="sqlite,postgres", help="sqlite, postgres or both (default)")
    args = ap.parse_args()
    q = args.quick
    runs = args.runs or (1 if q else 3)
    global PG
    # A stopped benchmark (CI's timeout, ^C) still stops its PostgreSQL cluster (atexit).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    names = [b.strip() for b in args.backends.split(",") if b.strip()]
    if not names or any(b not in ("sqlite", "postgres") for b in names):
        sys.exit("--backends takes sqlite, postgres or sqlite,postgres")
    PG = Postgres() if "postgres" in names else None
    backends = [Backend("SQLite") if b == "sqlite" else Backend("PostgreSQL", PG) for b in names]
    out = Results()
    started = datetime.datetime.now(datetime.timezone.utc)
    try:
        for i in range(runs):
            print(f"run {i + 1} of {runs}", file=sys.stderr)
            one_run(q, out, backends, args.only)
    finally:
        if PG:
            PG.stop()
    text = table(out, runs)
    print(text)
    if q or args.only or args.backends != "sqlite,postgres":
        print("(docs/performance.md is written only by a full run on both databases)")
        return
    when = started.strftime("%Y-%m-%d %H:%M UTC")
    head = (f"# Performance\n\nMeasured by `scripts/bench` ({runs} runs of every scenario, one after another) started {when}, on "
            f"{os.cpu_count()} cores shared with the load generator; release build; SQLite in WAL mode, every answer after its commit is on disk (`synchronous=FULL`; the issuance writer flushes its commits on a thread of its own) and "
            f"PostgreSQL {PG.version()} with `fsync` and `synchronous_commit` on, both on this machine's disk. Each cell: the median "
            f"of the runs (min–max).\n\n")
    path = os.path.join(ROOT, "docs", "performance.md")
    notes = ""
    if os.path.exists(path):
        old = open(path).read()
        if "<!-- notes -->" in old:
            notes = "\n" + old[old.index("<!-- notes -->"):]
    with open(path, "w") as f:
        f.write(head + text + "\n" + notes)


PG = None

if __name__ == "__main__":
    main()
