"""schemathesis against the OpenAPI document that a running fleetca serves at /api/openapi.json,
as the bootstrapped admin, over every documented operation (the broker endpoints included: they
are documented, answer on loopback without Bearer auth, and must conform too).

Before the run, a few real objects are made (API keys, devices, client and server certificates)
and bound as schemathesis dictionaries to the path parameters and body fields that need them, so
that most generated requests reach the handlers instead of ending in 404. Each binding is taken
with a probability below 1: the rest of the values are still generated from the schema.

Phases: examples, coverage, fuzzing, stateful. The checks that gate are CHECKS below.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from harness import Failure, Fleetca, require_tool

CHECKS = [
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_schema_conformance",
    "response_headers_conformance",
    # A method a path does not take is a 405 that names the ones it does (Allow), and an
    # OPTIONS answer's Allow lists exactly the documented methods.
    "unsupported_method",
    "allow_header_conformance",
    # A request the document allows is accepted (2xx), or refused for what the caller may do or
    # what exists now (401, 403, 404, 409 conflict, 429 rate limit), never as malformed (400).
    "positive_data_acceptance",
]
# Every check schemathesis has; those not in CHECKS (or --extra-checks) are turned off in the
# configuration file rather than chosen with --checks, because --checks would override the
# per-operation settings below.
ALL_CHECKS = [
    "not_a_server_error", "status_code_conformance", "content_type_conformance", "response_headers_conformance",
    "response_schema_conformance", "negative_data_rejection", "positive_data_acceptance",
    "missing_required_header", "unsupported_method", "allow_header_conformance", "use_after_free",
    "ensure_resource_availability", "ignored_auth", "object_level_authorization",
]
ACCEPTED_STATUSES = ["2xx", "401", "403", "404", "409", "429"]
# Operations whose acceptance depends on more than a JSON Schema can say: another field, the
# time, or what exists. They are still fuzzed with every other check.
NOT_DESCRIBABLE = {
    "POST /api/v4/auth/password": "current_password must be the caller's password",
    "POST /api/v4/manage/users/": "role must agree with is_service_account; a human needs a password",
    "PATCH /api/v4/manage/users/{id}/": "the role must agree with the user's kind (API key or human)",
    "POST /api/v4/manage/devices/": "password or ha1, not both",
    "POST /api/v4/manage/devices/bulk/": "password or ha1, not both; device ids unique within the request",
    "PUT /api/v4/manage/devices/{tenant}/{device_id}/credentials/": "password or ha1, not both",
    "POST /api/v4/manage/claims/": "expires_at must be in the future",
    "POST /api/v4/manage/mqtt-certificates/": "api_key_id must name an existing API key; csr_pem must hold a valid CSR",
    "POST /api/v4/manage/mqtt-certificates/revoke/": "ids or api_key_id, not both, and existing",
    "POST /api/v4/manage/mqtt-certificates/{id}/renew/": "csr_pem must hold a valid CSR",
    "POST /api/v4/manage/ca/intermediates/": "common_name must be printable (no control characters, not blank)",
    "POST /api/v4/manage/ca/{id}/import/": "certificate_pem and root_pem must chain, for the pending CA's own key",
    "POST /api/v4/manage/server-certificates/": "at least one of dns_names and ip_addresses; names must be valid DNS names",
    "POST /api/v4/manage/webhooks/": "the URL must be public (no SSRF), checked by resolving it",
    "PATCH /api/v4/manage/webhooks/{id}/": "the URL must be public (no SSRF), checked by resolving it",
    "POST /api/v4/manage/products/{product_key}/devices/bulk/": "device keys unique within the request",
}
# Operations left out on purpose (EST simpleenroll and simplereenroll, with and without a label).
EXCLUDED_OPERATIONS = 4


@dataclass
class FuzzReport:
    generated: int = 0
    operations_tested: int = 0
    operations_selected: int = 0
    operations_total: int = 0
    failures: list[str] = field(default_factory=list)  # one line per kind of failure
    failure_count: int = 0  # unique failures, as schemathesis counts them
    never_accepted: list[str] = field(default_factory=list)  # operations that never answered 2xx
    warnings: dict[str, list] = field(default_factory=dict)
    seed: int | None = None
    seconds: float = 0.0
    exit_code: int = 0


def seed(server: Fleetca) -> dict[str, list]:
    """Makes the objects the fuzzer's requests refer to; returns dictionary name -> values."""

    def api_key(username: str) -> dict:
        body = {"username": username, "is_service_account": True, "enterprise": "acme"}
        return server.expect("POST", "/api/v4/manage/users/", body, status=201).json()

    def device(device_id: str) -> None:
        body = {"device_id": device_id, "tenant": "acme", "password": "fuzz-device-password"}
        server.expect("POST", "/api/v4/manage/devices/", body, status=201)

    def client_cert(key_id: str, name: str) -> str:
        body = {"name": name, "api_key_id": key_id}
        return server.expect("POST", "/api/v4/manage/mqtt-certificates/", body, status=201).json()["id"]

    def server_cert(name: str) -> str:
        body = {"name": name, "dns_names": ["broker.fuzz.test"], "ip_addresses": ["127.0.0.1"]}
        return server.expect("POST", "/api/v4/manage/server-certificates/", body, status=201).json()["id"]

    human = {"username": "fuzz-human", "is_service_account": False, "role": "manager",
             "password": "fuzz-human-passphrase"}
    server.expect("POST", "/api/v4/manage/users/", human, status=201)
    signed_in = server.expect("POST", "/api/v4/auth/login",
                              {"username": human["username"], "password": human["password"]}, auth=False)
    session = next(
        (c.split(";")[0] for c in signed_in.headers.get_all("Set-Cookie") or [] if c.startswith("fleetca_session=")),
        None,
    )
    if session is None:
        raise Failure(f"POST /api/v4/auth/login set no fleetca_session cookie: {signed_in.headers}")

    fuzz_key = api_key("svc-fuzz")
    doomed_key = api_key("svc-fuzz-delete")
    broker_key = api_key("svc-fuzz-broker")  # never touched by the management operations
    client_cert(broker_key["id"], "fuzz-broker")
    for device_id in ("dev-fuzz", "dev-fuzz-delete", "dev-fuzz-broker"):
        device(device_id)
    return {
        "session_cookie": [session],
        "login_username": [human["username"]],
        "login_password": [human["password"]],
        "new_password": ["a new fuzz passphrase"],
        "new_username": [f"fz-user-{i:03d}" for i in range(100)],
        "new_device_id": [f"fz-dev-{i:03d}" for i in range(300)],
        "page": [1, 2],
        "page_size": [1, 50, 500],
        "validity_hours": [8760, 17520, 87600],
        "validity_days": [1, 825, 3650],
        "dns_name": ["broker.fuzz.test", "mqtt.example.com", "a-1.example"],
        "ip_address": ["127.0.0.1", "::1", "192.0.2.7"],
        "user_id": [fuzz_key["id"]],
        "user_id_delete": [doomed_key["id"]],
        "api_key_id": [fuzz_key["id"], broker_key["id"]],
        "tenant": ["acme"],
        "device_id": ["dev-fuzz"],
        "device_id_delete": ["dev-fuzz-delete"],
        "client_cert_id": [client_cert(fuzz_key["id"], "fuzz-read")],
        "client_cert_id_revoke": [client_cert(fuzz_key["id"], f"fuzz-revoke-{i}") for i in range(3)],
        "server_cert_id": [server_cert("fuzz-read")],
        "server_cert_id_revoke": [server_cert(f"fuzz-revoke-{i}") for i in range(3)],
        "revoke_reason": ["keyCompromise", "superseded", "cessationOfOperation", "unspecified"],
        "broker_username": [
            broker_key["username"],
            "device=dev-fuzz-broker&tenant=acme",
        ],
        "broker_password": [broker_key["token"]],
        "broker_response": ["json"],
        "broker_clientid": ["dev-fuzz-broker", broker_key["username"]],
        "broker_topic": ["v4/groups/acme.master/telemetry", "devices/acme/dev-fuzz-broker/state"],
    } | seed_products(server)


PRODUCTS = "/api/v4/manage/products/"


def seed_products(server: Fleetca) -> dict[str, list]:
    """Products and their sign-based devices, when the served document has them."""
    spec = json.loads(server.expect("GET", "/api/openapi.json", auth=False).data)
    if PRODUCTS not in spec.get("paths", {}):
        return {}

    def product(name: str, scheme: str) -> str:
        body = {"name": name, "scheme": scheme, "enterprise": "acme", "dynamic_activation": True}
        return server.expect("POST", PRODUCTS, body, status=201).json()["product_key"]

    def sign_device(product_key: str, device_key: str) -> None:
        server.expect("POST", f"{PRODUCTS}{product_key}/devices/", {"device_key": device_key}, status=201)

    keys = [product("fuzz-aliyun", "aliyun"), product("fuzz-enos", "enos")]
    for key in keys:
        for device_key in ("fz-sign-1", "fz-sign-2", "fz-sign-delete"):
            sign_device(key, device_key)
    return {
        "product_key": keys,
        "product_key_delete": [product("fuzz-delete", "aliyun")],
        "new_product_key": [f"fzprod{i:05d}" for i in range(100)],
        "clock_skew": [1, 300, 86400],
        "sign_method": ["hmacmd5", "hmacsha1", "hmacsha256"],
        "sign_device_key": ["fz-sign-1", "fz-sign-2"],
        "sign_device_key_delete": ["fz-sign-delete"],
        "new_sign_device_key": [f"fz-sign-new-{i:03d}" for i in range(300)],
    }


def q(value) -> str:
    """A TOML value (JSON's strings, numbers and arrays are TOML too)."""
    return json.dumps(value)


def config_toml(
    server: Fleetca, dictionaries: dict[str, list], max_examples: int, report_dir: Path, checks: list[str]
) -> str:
    def bind(name: str, probability: float = 0.8) -> str:
        return f"{{ dictionary = {q(name)}, probability = {probability} }}"

    lines = [
        f"base-url = {q(server.url)}",
        "headers = { Authorization = \"Bearer ${FLEETCA_CONFORMANCE_TOKEN}\" }",
        "request-timeout = 30.0",
        # One worker: CPython 3.11 keeps the AST builder's recursion depth in state shared by
        # every thread, so hypothesis parsing lambda sources in two workers at once can fail
        # with "AST constructor recursion depth mismatch" (python/cpython#106905), a failure
        # of the tool, not of fleetca. One worker removes the race.
        "workers = 1",
        "[generation]",
        f"max-examples = {max_examples}",
        'database = "none"',
        "[phases.stateful]",
        "max-steps = 20",
        "[reports]",
        f"directory = {q(str(report_dir))}",
        "json.enabled = true",
        "junit.enabled = true",
        "ndjson.enabled = true",
        "[checks]",
        *(f"{c}.enabled = false" for c in ALL_CHECKS if c not in checks),
        f"positive_data_acceptance.expected-statuses = {q(ACCEPTED_STATUSES)}",
        "",
    ]
    for name, values in dictionaries.items():
        lines += [f"[dictionaries.{name}]", f"values = {q(values)}", ""]

    written: set[str] = set()

    def operation(path: str, method: str, params: dict[str, str]) -> None:
        # One filter, the operation's name: separate include-path and include-method filters
        # would match either (schemathesis ORs the include filters of an [[operations]] entry).
        name = f"{method} {path}"
        written.add(name)
        lines.append("[[operations]]")
        lines.append(f"include-name = {q(name)}")
        if params:
            lines.append("parameters = { " + ", ".join(f"{q(k)} = {v}" for k, v in params.items()) + " }")
        if name in NOT_DESCRIBABLE:
            lines.append("checks.positive_data_acceptance.enabled = false")
        lines.append("")

    # Only the session cookie reaches GET /api/v4/auth/me (a Bearer token is not looked at there).
    lines += ["[[operations]]", 'include-name = "GET /api/v4/auth/me"',
              f"headers = {{ Cookie = {q(dictionaries['session_cookie'][0])} }}", ""]
    operation("/api/v4/auth/login", "POST", {
        "body.username": bind("login_username", 0.5), "body.password": bind("login_password", 0.5),
    })
    operation("/api/v4/auth/password", "POST", {"body.new_password": bind("new_password", 0.5)})
    for path in ("users", "devices", "mqtt-certificates", "server-certificates"):
        operation(f"/api/v4/manage/{path}/", "GET", {
            "query.page": bind("page", 0.5), "query.page_size": bind("page_size", 0.5),
        } | ({"query.api_key_id": bind("api_key_id", 0.5)} if path == "mqtt-certificates" else {}))
    operation("/api/v4/manage/users/", "POST", {
        "body.username": bind("new_username", 0.7), "body.password": bind("new_password", 0.5),
    })
    operation("/api/v4/manage/devices/", "POST", {
        "body.device_id": bind("new_device_id", 0.7), "body.tenant": bind("tenant", 0.8),
    })
    operation("/api/v4/manage/devices/bulk/", "POST", {
        "body.[*].device_id": bind("new_device_id", 0.8), "body.[*].tenant": bind("tenant", 0.9),
    })
    operation("/api/v4/manage/server-certificates/", "POST", {
        "body.dns_names[*]": bind("dns_name", 0.8), "body.ip_addresses[*]": bind("ip_address", 0.8),
        "body.validity_days": bind("validity_days", 0.6),
    })

    if "product_key" in dictionaries:
        product = "/api/v4/manage/products/{product_key}/"
        sign_device = product + "devices/{device_key}/"
        pk = {"path.product_key": bind("product_key")}
        operation("/api/v4/manage/products/", "GET", {
            "query.page": bind("page", 0.5), "query.page_size": bind("page_size", 0.5),
        })
        operation("/api/v4/manage/products/", "POST", {
            "body.product_key": bind("new_product_key", 0.5), "body.enterprise": bind("tenant", 0.5),
            "body.max_clock_skew_seconds": bind("clock_skew", 0.5),
        })
        for method in ("GET", "PATCH"):
            operation(product, method, pk)
        operation(product, "DELETE", {"path.product_key": bind("product_key_delete")})
        operation(product + "rotate-secret/", "POST", pk)
        operation(product + "devices/", "GET", pk | {
            "query.page": bind("page", 0.5), "query.page_size": bind("page_size", 0.5),
        })
        operation(product + "devices/", "POST", pk | {"body.device_key": bind("new_sign_device_key", 0.7)})
        operation(product + "devices/bulk/", "POST", pk | {"body.[*].device_key": bind("new_sign_device_key", 0.8)})
        for method, path in (("GET", sign_device), ("PATCH", sign_device), ("POST", sign_device + "rotate-secret/"),
                             ("POST", sign_device + "reset-activation/")):
            operation(path, method, pk | {"path.device_key": bind("sign_device_key")})
        operation(sign_device, "DELETE", pk | {"path.device_key": bind("sign_device_key_delete")})
        # The registration answers 200 to everything (its outcome is a `code` in the body), so
        # schemathesis infers links from its failed answers and feeds their request values (an
        # empty deviceName) into other operations' path parameters, which then address another
        # route. It is still tested in the examples, coverage and fuzzing phases.
        lines += ["[[operations]]", 'include-name = "POST /auth/register/device"',
                  "phases.stateful.enabled = false",
                  "parameters = { " + ", ".join(f"{q(k)} = {v}" for k, v in {
                      "body.productKey": bind("product_key", 0.7), "body.deviceName": bind("sign_device_key", 0.6),
                      "body.signMethod": bind("sign_method", 0.6),
                  }.items()) + " }", ""]

    users = "/api/v4/manage/users/{id}/"
    for method in ("GET", "PATCH"):
        operation(users, method, {"path.id": bind("user_id")})
    operation(users, "DELETE", {"path.id": bind("user_id_delete")})
    operation("/api/v4/manage/users/{id}/rotate-token/", "POST", {"path.id": bind("user_id")})

    devices = "/api/v4/manage/devices/{tenant}/{device_id}/"
    for method in ("GET", "PATCH"):
        operation(devices, method, {"path.tenant": bind("tenant"), "path.device_id": bind("device_id")})
    operation(devices, "DELETE", {"path.tenant": bind("tenant"), "path.device_id": bind("device_id_delete")})
    operation(
        "/api/v4/manage/devices/{tenant}/{device_id}/credentials/", "PUT",
        {"path.tenant": bind("tenant"), "path.device_id": bind("device_id")},
    )

    operation("/api/v4/manage/mqtt-certificates/", "POST", {
        "body.api_key_id": bind("api_key_id"), "body.validity_hours": bind("validity_hours", 0.6),
    })
    operation("/api/v4/manage/mqtt-certificates/{id}/", "GET", {"path.id": bind("client_cert_id")})
    operation(
        "/api/v4/manage/mqtt-certificates/{id}/revoke/", "POST",
        {"path.id": bind("client_cert_id_revoke"), "body.reason": bind("revoke_reason", 0.7)},
    )
    operation("/api/v4/manage/server-certificates/{id}/", "GET", {"path.id": bind("server_cert_id")})
    operation(
        "/api/v4/manage/server-certificates/{id}/revoke/", "POST",
        {"path.id": bind("server_cert_id_revoke"), "body.reason": bind("revoke_reason", 0.7)},
    )
    for path in ("/broker/auth", "/broker/acl", "/broker/superuser", "/broker/emqx/authn", "/broker/emqx/authz",
                 "/broker/plugin/login", "/broker/plugin/acl"):
        extra = {"query.response": bind("broker_response", 0.5)} if path in ("/broker/auth", "/broker/acl") else {}
        operation(path, "POST", extra | {
            "body.username": bind("broker_username", 0.7),
            "body.password": bind("broker_password", 0.5),
            "body.clientid": bind("broker_clientid", 0.5),
            "body.topic": bind("broker_topic", 0.6),
        })
    for path in ("/broker/auth", "/broker/acl"):
        # The GET forms document only `response` (not the username, password or topic they read).
        operation(path, "GET", {"query.response": bind("broker_response", 0.5)})
    for name in sorted(NOT_DESCRIBABLE.keys() - written):
        method, path = name.split(" ", 1)
        operation(path, method, {})
    return "\n".join(lines)


def status_counts(report_dir: Path) -> dict[str, dict[int, int]]:
    """Per operation ("METHOD /path/{param}/"), how many responses had each status code."""
    counts: dict[str, dict[int, int]] = {}
    for events in report_dir.glob("*.ndjson"):
        with open(events, encoding="utf-8") as f:
            for line in f:
                if not line.startswith('{"ScenarioFinished"'):
                    continue
                recorder = json.loads(line)["ScenarioFinished"].get("recorder", {})
                cases = recorder.get("cases", {})
                for case_id, interaction in recorder.get("interactions", {}).items():
                    case = cases.get(case_id, {}).get("value", {})
                    response = interaction.get("response") or {}
                    if not case or "status_code" not in response:
                        continue
                    name = f"{case['method'].upper()} {case['path']}"
                    per = counts.setdefault(name, {})
                    per[response["status_code"]] = per.get(response["status_code"], 0) + 1
    return counts


def check(
    server: Fleetca, workdir: Path, max_examples: int, seed_value: int | None, extra_checks: list[str]
) -> FuzzReport:
    st = require_tool("schemathesis")
    workdir.mkdir(parents=True, exist_ok=True)
    report_dir = workdir / "schemathesis-report"
    config = workdir / "schemathesis.toml"
    unknown = sorted(set(extra_checks) - set(ALL_CHECKS))
    if unknown:
        raise Failure(f"unknown schemathesis checks: {', '.join(unknown)}")
    config.write_text(config_toml(server, seed(server), max_examples, report_dir, CHECKS + extra_checks),
                      encoding="utf-8")

    # EST's enrollment and re-enrollment take a base64 DER PKCS#10 as `application/pkcs10`,
    # a media type schemathesis cannot serialize ("Serialization not possible");
    # tests/tests/e2e/est.rs drives them with curl and openssl instead (and api/tests/api/
    # enrollment.rs with bad bodies). EST's cacerts and csrattrs stay in.
    cmd = [st, "--config-file", str(config), "run", f"{server.url}/api/openapi.json", "--no-color",
           "--phases", "examples,coverage,fuzzing,stateful",
           "--exclude-path-regex", "simple(re)?enroll"]
    if seed_value is not None:
        cmd += ["--seed", str(seed_value)]
    print("$ FLEETCA_CONFORMANCE_TOKEN=... " + " ".join(cmd).replace(str(workdir) + "/", ""), flush=True)
    env = dict(os.environ, FLEETCA_CONFORMANCE_TOKEN=server.token)
    with open(workdir / "schemathesis.out", "w", encoding="utf-8") as out:
        proc = subprocess.Popen(cmd, cwd=workdir, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                text=True, errors="replace")
        assert proc.stdout is not None
        for line in proc.stdout:  # shown as it runs, and kept
            sys.stdout.write(line)
            sys.stdout.flush()
            out.write(line)
        returncode = proc.wait()

    reports = sorted(report_dir.glob("*.json"))
    if not reports:
        raise Failure(f"schemathesis wrote no JSON report (exit {returncode})")
    data = json.loads(reports[-1].read_text())
    report = FuzzReport(
        generated=data["test_cases"]["generated"],
        operations_tested=data["operations"]["tested"],
        operations_selected=data["operations"]["selected"],
        operations_total=data["operations"]["total"],
        warnings={k: v for k, v in data.get("warnings", {}).items() if v},
        seed=data.get("seed"),
        seconds=data.get("running_time", 0.0),
        exit_code=returncode,
    )
    spec = json.loads(server.expect("GET", "/api/openapi.json", auth=False).data)
    documented = {
        f"{method.upper()} {path}"
        for path, item in spec.get("paths", {}).items()
        for method in item
        if method in ("get", "put", "post", "delete", "patch", "head", "options", "trace")
    }
    # Only documented operations (the coverage phase also tries undocumented methods: 405).
    statuses = {k: v for k, v in status_counts(report_dir).items() if k in documented}
    statuses.update({name: {} for name in documented - statuses.keys()})
    (workdir / "statuses.txt").write_text(
        "".join(f"{name}: {dict(sorted(counts.items()))}\n" for name, counts in sorted(statuses.items())),
        encoding="utf-8",
    )
    report.never_accepted = sorted(
        name for name, counts in statuses.items() if not any(200 <= code < 300 for code in counts)
    )
    for failure in data.get("failures", []):  # grouped by kind; the details are in the output above
        operations = failure.get("operations", [])
        report.failure_count += int(failure.get("count") or 1)
        report.failures.append(
            f"{failure.get('code')} {failure.get('title')} x{failure.get('count')} on "
            f"{len(operations)} operations: {', '.join(operations)}"
        )
    for error in data.get("errors", []):
        report.failure_count += 1
        report.failures.append("error: " + json.dumps(error)[:3000])
    if returncode != 0 and not report.failures:
        report.failures.append(f"schemathesis exited with {returncode} (see its output above)")
    # Every operation but the excluded ones (EST's four enrollment paths, see above).
    if report.operations_tested < report.operations_total - EXCLUDED_OPERATIONS:
        report.failures.append(
            f"schemathesis tested {report.operations_tested} of {report.operations_total} operations"
        )
    return report
