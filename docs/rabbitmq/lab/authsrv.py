#!/usr/bin/env python3
"""Fake HTTP auth service for rabbitmq_auth_backend_http.
Logs every request as one JSON line (method, path, query, headers, ordered form body)
and answers from rules.json (reloaded on every request).
rules.json: {"rules": [{"path": "/auth/user", "match": {"username": "u"}, "body": "allow",
                        "status": 200, "delay": 0}, ...],
             "default": {"/auth/user": "deny", ...}}
Also serves files under ./www/ on GET /files/<name> (for CRLs), logged too."""
import json, os, sys, time, threading
from http.server import ThreadingHTTPServer, BaseHTTPRequestHandler
from urllib.parse import urlsplit, parse_qsl

BASE = os.path.dirname(os.path.abspath(__file__))
LOG = os.environ.get("AUTHSRV_LOG", os.path.join(BASE, "auth-requests.jsonl"))
RULES = os.environ.get("AUTHSRV_RULES", os.path.join(BASE, "rules.json"))
lock = threading.Lock()

def log(entry):
    with lock, open(LOG, "a") as f:
        f.write(json.dumps(entry) + "\n")

def decide(path, form):
    try:
        cfg = json.load(open(RULES))
    except Exception:
        cfg = {}
    for r in cfg.get("rules", []):
        if r.get("path") not in (None, path):
            continue
        m = r.get("match", {})
        ok = True
        for k, v in m.items():
            if v == "<absent>":
                ok = ok and k not in form
            elif v == "<present>":
                ok = ok and k in form
            else:
                ok = ok and form.get(k) == v
        if ok:
            return r.get("status", 200), r.get("body", "allow"), r.get("delay", 0)
    return 200, cfg.get("default", {}).get(path, "deny"), 0

class H(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    wbufsize = 1 << 16            # one write per response (avoids Nagle/delayed-ACK 40 ms stalls)
    disable_nagle_algorithm = True
    def log_message(self, *a):
        pass
    def handle_any(self):
        t0 = time.time()
        u = urlsplit(self.path)
        n = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(n).decode("utf-8", "replace") if n else ""
        pairs = parse_qsl(raw if self.command == "POST" else u.query, keep_blank_values=True)
        form = dict(pairs)
        if self.command == "GET" and u.path.startswith("/files/"):
            fn = os.path.join(os.environ.get("AUTHSRV_WWW", os.path.join(BASE, "www")), os.path.basename(u.path))
            if os.path.exists(fn):
                data = open(fn, "rb").read(); status = 200
            else:
                data = b""; status = 404
            log({"t": round(t0, 3), "method": self.command, "path": u.path, "status": status,
                 "headers": dict(self.headers.items())})
            self.send_response(status)
            self.send_header("Content-Type", "application/pkix-crl")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers(); self.wfile.write(data); return
        status, body, delay = decide(u.path, form)
        log({"t": round(t0, 3), "method": self.command, "path": u.path, "query": u.query,
             "headers": dict(self.headers.items()), "raw_body": raw, "form": pairs,
             "answer_status": status, "answer": body, "delay": delay})
        if delay:
            time.sleep(delay)
        data = body.encode()
        try:
            self.send_response(status)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers(); self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            pass
    do_GET = handle_any
    do_POST = handle_any

if __name__ == "__main__":
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 24080
    srv = ThreadingHTTPServer(("127.0.0.1", port), H)
    srv.daemon_threads = True
    print(f"authsrv on 127.0.0.1:{port}", flush=True)
    srv.serve_forever()
