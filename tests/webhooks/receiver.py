#!/usr/bin/env python3
"""A webhook receiver for the end-to-end tests: verifies each delivery's signature with the
Standard Webhooks reference library (`standardwebhooks` on PyPI) and logs it.

    receiver.py DIR [FAIL_FIRST] [PORT]

Listens on loopback, on PORT or a free port, and writes the port to DIR/port. Reads the signing secret from
DIR/secret on every request (the test writes it once the endpoint exists). Appends one JSON
line per request to DIR/log: the webhook-id, the event type, whether the signature verified,
and the status answered. Answers 500 to the first FAIL_FIRST attempts of each webhook-id, then
204 to a verified delivery and 400 to one that does not verify.
"""

import json
import os
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from standardwebhooks.webhooks import Webhook, WebhookVerificationError

DIR = sys.argv[1]
FAIL_FIRST = int(sys.argv[2]) if len(sys.argv) > 2 else 0
PORT = int(sys.argv[3]) if len(sys.argv) > 3 else 0
attempts = {}
lock = threading.Lock()


class Handler(BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("content-length", "0")))
        headers = {k.lower(): v for k, v in self.headers.items()}
        msg_id = headers.get("webhook-id", "")
        try:
            with open(os.path.join(DIR, "secret")) as f:
                secret = f.read().strip()
            event = Webhook(secret).verify(body, headers)
            verified, kind = True, event.get("type")
        except (OSError, WebhookVerificationError, ValueError) as e:
            verified, kind = False, f"unverified: {e}"
        with lock:
            attempts[msg_id] = attempts.get(msg_id, 0) + 1
            n = attempts[msg_id]
        status = 500 if n <= FAIL_FIRST else (204 if verified else 400)
        record = {"id": msg_id, "type": kind, "verified": verified, "attempt": n, "status": status}
        if verified:
            record["data"] = event.get("data")
        with lock, open(os.path.join(DIR, "log"), "a") as f:
            f.write(json.dumps(record) + "\n")
        self.send_response(status)
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


server = ThreadingHTTPServer(("127.0.0.1", PORT), Handler)
with open(os.path.join(DIR, "port.tmp"), "w") as f:
    f.write(str(server.server_address[1]))
os.replace(os.path.join(DIR, "port.tmp"), os.path.join(DIR, "port"))
server.serve_forever()
