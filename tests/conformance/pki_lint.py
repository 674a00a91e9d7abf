"""pkilint and `openssl verify` on what a running fleetca issues: the CA certificate, a client
certificate with a key fleetca made, a client certificate for a CSR, a broker's server certificate
and the CRL (PEM and DER) listing a revoked certificate.

The gate: no pkilint finding at NOTICE severity or above; the good client certificate verifies
with `-x509_strict -crl_check`, the revoked one fails with "certificate revoked".
"""

from __future__ import annotations

import base64
import json
import re
import urllib.request
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from harness import Failure, Fleetca, require_tool

SEVERITIES = ["FATAL", "ERROR", "WARNING", "NOTICE", "INFO", "DEBUG"]
GATE = "NOTICE"  # this severity and above fail the run

# pkilint 0.13 checks a SAN URI with `validators.url`, which accepts only URLs with a host and
# so refuses every URN (even `urn:uuid:…`). RFC 5280 §4.2.1.6 asks a SAN URI for a scheme and
# a scheme-specific part, and a host only when it has an authority; RFC 8141 URNs have none.
# fleetca's device and claim certificates name their subject with such a URN
# (`urn:fleetca:device:{tenant}:{id}`, `urn:fleetca:claim:{tenant}:{id}`), so exactly this
# finding on exactly those URNs is waived — after the URN is checked against RFC 8141's
# syntax here instead. Any other URI finding still fails the run.
URN = re.compile(r"^urn:fleetca:(device|claim):[a-z0-9][a-z0-9.-]{0,63}:[A-Za-z0-9._:@-]{1,64}$")
RFC8141 = re.compile(
    r"^urn:[A-Za-z0-9][A-Za-z0-9-]{0,30}[A-Za-z0-9]:"
    r"(?:[A-Za-z0-9\-._~!$&'()*+,;=:@]|%[0-9A-Fa-f]{2})(?:[A-Za-z0-9\-._~!$&'()*+,;=:@/]|%[0-9A-Fa-f]{2})*$"
)


def waived(finding: dict) -> bool:
    if finding["code"] != "pkix.invalid_uri_syntax":
        return False
    value = (finding.get("message") or "").removeprefix('Invalid URI syntax: "').removesuffix('"')
    return bool(URN.match(value) and RFC8141.match(value))


@dataclass
class PkiReport:
    documents: int = 0
    findings: list[str] = field(default_factory=list)  # NOTICE and above: failures
    info: list[str] = field(default_factory=list)  # below NOTICE: printed only
    verify_ok: int = 0
    verify_runs: int = 0
    problems: list[str] = field(default_factory=list)  # everything else that failed


def run(cmd: list[str], **kw) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, **kw)


def lint(report: PkiReport, what: str, cmd: list[str]) -> None:
    """Runs a pkilint command with `-s INFO -f JSON` and sorts its findings by severity."""
    done = run(cmd + ["-s", "INFO", "-f", "JSON"])
    shown = " ".join(Path(c).name if "/" in c else c for c in cmd)
    try:
        results = json.loads(done.stdout)["results"]
    except (json.JSONDecodeError, KeyError, TypeError):
        report.problems.append(
            f"{what}: `{shown}` did not print pkilint JSON (exit {done.returncode})\n"
            f"  stdout: {done.stdout.strip()[:1000]}\n  stderr: {done.stderr.strip()[:1000]}"
        )
        return
    report.documents += 1
    for result in results:
        for finding in result["finding_descriptions"]:
            line = (
                f"{what}: {finding['severity']} {finding['code']}"
                + (f" ({finding['message']})" if finding.get("message") else "")
                + f" at {result['node_path']} [{result['validator']}]  <- `{shown}`"
            )
            if waived(finding):
                report.info.append(line + " (waived: an RFC 8141 URN, see URN above)")
            elif SEVERITIES.index(finding["severity"]) <= SEVERITIES.index(GATE):
                report.findings.append(line)
            else:
                report.info.append(line)


def verify(report: PkiReport, what: str, ca: Path, crl: Path, cert: Path, expect_revoked: bool, purpose: str):
    """`openssl verify -x509_strict -crl_check_all`: every certificate of the chain (the leaf,
    the intermediate, the root) checked against its issuer's CRL."""
    cmd = ["openssl", "verify", "-x509_strict", "-crl_check_all", "-purpose", purpose,
           "-CAfile", str(ca), "-CRLfile", str(crl), str(cert)]
    report.verify_runs += 1
    done = run(cmd)
    out = (done.stdout + done.stderr).strip()
    shown = " ".join(cmd).replace(str(cert.parent) + "/", "")
    if expect_revoked:
        ok = done.returncode != 0 and "certificate revoked" in out
    else:
        ok = done.returncode == 0 and out.endswith(": OK")
    if ok:
        report.verify_ok += 1
    else:
        want = '"certificate revoked"' if expect_revoked else "OK"
        report.problems.append(f"{what}: `{shown}` printed (exit {done.returncode}), expected {want}:\n  {out}")


def pem_field(result, name: str) -> str:
    value = result.json().get(name)
    if not isinstance(value, str) or "-----BEGIN" not in value:
        raise Failure(f"`{name}` missing from the response:\n  {result.describe()}")
    return value


def check(server: Fleetca, workdir: Path, signature: str) -> PkiReport:
    """Issues the documents on `server`, lints them and verifies chains; writes them to workdir.
    `signature` is what openssl names the CAs' signature algorithm (their key's algorithm is
    the installation's ca_key_algorithm)."""
    for tool in ("openssl", "lint_pkix_cert", "lint_crl", "lint_pkix_signer_signee_cert_chain"):
        require_tool(tool)
    report = PkiReport()
    workdir.mkdir(parents=True, exist_ok=True)

    def save(name: str, text: str | bytes) -> Path:
        path = workdir / name
        path.write_bytes(text if isinstance(text, bytes) else text.encode())
        return path

    # A new installation: a root (CA 1) and the intermediate that issues (CA 2). /ca.pem is
    # the trust bundle (the root, then the intermediate); answers give the root as
    # ca_certificate_pem and the intermediate as chain_pem.
    ca = save("ca.pem", server.expect("GET", "/ca.pem", auth=False).data)

    key = server.expect(
        "POST", "/api/v4/manage/users/",
        {"username": "svc-lint", "is_service_account": True, "enterprise": "acme"}, status=201,
    ).json()

    made = server.expect(
        "POST", "/api/v4/manage/mqtt-certificates/", {"name": "lint", "api_key_id": key["id"]}, status=201
    )
    client = save("client.pem", pem_field(made, "certificate_pem"))
    root = save("root.pem", pem_field(made, "ca_certificate_pem"))
    intermediate = save("intermediate.pem", pem_field(made, "chain_pem"))
    if root.read_text() + intermediate.read_text() != ca.read_text():
        report.problems.append(
            "POST /api/v4/manage/mqtt-certificates/: ca_certificate_pem + chain_pem differ from GET /ca.pem"
        )
    save("client.key", pem_field(made, "private_key_pem"))
    for name, path in (("root", root), ("intermediate", intermediate), ("client", client)):
        text = run(["openssl", "x509", "-in", str(path), "-noout", "-text"]).stdout
        if f"Signature Algorithm: {signature}" not in text:
            report.problems.append(f"the {name} certificate is not signed with {signature}:\n{text}")

    # CSRs for keys that never leave this directory: the kinds device stacks make.
    csr_certs: list[tuple[str, Path]] = []
    for label, genpkey in (
        ("P-256", ["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"]),
        ("P-384", ["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-384"]),
        ("Ed25519", ["-algorithm", "ED25519"]),
        ("RSA-2048", ["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"]),
        ("RSA-3072", ["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:3072"]),
        ("RSA-4096", ["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:4096"]),
    ):
        stem = "client-" + label.lower()
        csr_key = workdir / f"{stem}.key"
        for cmd in (
            ["openssl", "genpkey", *genpkey, "-out", str(csr_key)],
            ["openssl", "req", "-new", "-key", str(csr_key), "-subj", "/CN=device-made-csr", "-out", str(workdir / f"{stem}.csr")],
        ):
            done = run(cmd)
            if done.returncode != 0:
                raise Failure(f"`{' '.join(cmd)}` failed: {done.stderr.strip()}")
        from_csr = server.expect(
            "POST", "/api/v4/manage/mqtt-certificates/",
            {"name": f"lint-csr-{label}", "api_key_id": key["id"], "csr_pem": (workdir / f"{stem}.csr").read_text()},
            status=201,
        )
        csr_cert = save(f"{stem}.pem", pem_field(from_csr, "certificate_pem"))
        if from_csr.json().get("private_key_pem"):
            report.problems.append("POST /api/v4/manage/mqtt-certificates/ with csr_pem returned a private_key_pem")
        cert_pub = run(["openssl", "x509", "-in", str(csr_cert), "-noout", "-pubkey"]).stdout
        csr_pub = run(["openssl", "pkey", "-in", str(csr_key), "-pubout"]).stdout
        if not cert_pub or cert_pub != csr_pub:
            report.problems.append(f"the certificate issued for the {label} CSR does not carry the CSR's public key")
        csr_certs.append((label, csr_cert))

    server_made = server.expect(
        "POST", "/api/v4/manage/server-certificates/",
        {"dns_names": ["broker.test"], "ip_addresses": ["127.0.0.1"]}, status=201,
    )
    server_cert = save("server.pem", pem_field(server_made, "certificate_pem"))

    doomed_made = server.expect(
        "POST", "/api/v4/manage/mqtt-certificates/", {"name": "lint-revoked", "api_key_id": key["id"]}, status=201
    )
    doomed = save("revoked.pem", pem_field(doomed_made, "certificate_pem"))
    revoked = server.expect(
        "POST", f"/api/v4/manage/mqtt-certificates/{doomed_made.json()['id']}/revoke/",
        {"reason": "keyCompromise"},
    ).json()
    if revoked.get("status") != "revoked":
        report.problems.append(f"revoke answered status {revoked.get('status')!r}, expected 'revoked'")

    # A device certificate enrolled over EST (HTTP Basic, checked against the device's HA1).
    server.expect(
        "POST", "/api/v4/manage/devices/",
        {"device_id": "lint-device", "tenant": "acme", "password": "lint-device-password"}, status=201,
    )
    for cmd in (
        # RSA-3072 over EST (the REST path above takes each kind; renewal below an Ed25519 key).
        ["openssl", "req", "-new", "-newkey", "rsa:3072", "-nodes",
         "-keyout", str(workdir / "device.key"), "-subj", "/CN=lint-device", "-outform", "DER",
         "-out", str(workdir / "device.csr.der")],
    ):
        done = run(cmd)
        if done.returncode != 0:
            raise Failure(f"`{' '.join(cmd)}` failed: {done.stderr.strip()}")
    url = server.url + "/.well-known/est/acme/simpleenroll"
    enroll = urllib.request.Request(
        url,
        data=base64.b64encode((workdir / "device.csr.der").read_bytes()),
        method="POST",
        headers={"Content-Type": "application/pkcs10"},
    )
    # HTTP Digest: over plain HTTP fleetca takes no Basic (it would send the password itself).
    passwords = urllib.request.HTTPPasswordMgrWithDefaultRealm()
    passwords.add_password(None, url, "lint-device", "lint-device-password")
    opener = urllib.request.build_opener(urllib.request.HTTPDigestAuthHandler(passwords))
    with opener.open(enroll, timeout=30) as answer:
        (workdir / "device.p7").write_bytes(base64.b64decode(answer.read()))
    done = run(["openssl", "pkcs7", "-inform", "DER", "-in", str(workdir / "device.p7"), "-print_certs",
                "-out", str(workdir / "device.pem")])
    if done.returncode != 0:
        raise Failure(f"openssl could not read the EST answer: {done.stderr.strip()}")
    text = (workdir / "device.pem").read_text()
    device_cert = save("device.pem", text[text.index("-----BEGIN CERTIFICATE-----"):])

    claim = server.expect(
        "POST", "/api/v4/manage/claims/", {"name": "lint", "tenant": "acme", "max_uses": 1}, status=201
    )
    claim_cert = save("claim.pem", pem_field(claim, "certificate_pem"))
    renewed = server.expect(
        "POST", f"/api/v4/manage/mqtt-certificates/{made.json()['id']}/renew/",
        {"csr_pem": (workdir / "client-ed25519.csr").read_text()}, status=201,
    )
    renewed_cert = save("renewed.pem", pem_field(renewed, "certificate_pem"))
    renewed_pub = run(["openssl", "x509", "-in", str(renewed_cert), "-noout", "-pubkey"]).stdout
    if renewed_pub != run(["openssl", "pkey", "-in", str(workdir / "client-ed25519.key"), "-pubout"]).stdout:
        report.problems.append("the certificate renewed with an Ed25519 CSR does not carry the CSR's key")

    # Every CRL (/crl.pem: the root's, the intermediate's own, then its 16 shards), and each on
    # its own: the revoked certificate's is the shard its distribution point names.
    crl_pem = save("crl.pem", server.expect("GET", "/crl.pem", auth=False).data)
    dp = run(["openssl", "x509", "-in", str(doomed), "-noout", "-ext", "crlDistributionPoints"]).stdout
    dp_url = next((w[4:] for w in dp.split() if w.startswith("URI:")), "")
    shard_path = dp_url[dp_url.find("/crl/"):] if "/crl/2/" in dp_url else ""
    if not shard_path:
        raise Failure(f"the revoked certificate names no shard of CA 2's CRL: {dp!r}")
    issuing_crl = save("crl-2-shard.pem", server.expect("GET", shard_path.replace(".der", ".pem"), auth=False).data)
    issuing_crl_der = save("crl-2-shard.der", server.expect("GET", shard_path, auth=False).data)
    own_crl_der = save("crl-2.der", server.expect("GET", "/crl/2.der", auth=False).data)
    root_crl_der = save("crl-1.der", server.expect("GET", "/crl.der", auth=False).data)
    serial = run(["openssl", "x509", "-in", str(doomed), "-noout", "-serial"]).stdout.strip().split("=")[-1]
    crl_text = run(["openssl", "crl", "-in", str(issuing_crl), "-noout", "-text"]).stdout
    if not serial or serial.upper().lstrip("0") not in crl_text.replace(" ", "").upper():
        report.problems.append(f"GET {shard_path} does not list the revoked serial {serial}:\n{crl_text}")
    if "Key Compromise" not in crl_text:
        report.problems.append(f"GET {shard_path} does not give the reason keyCompromise:\n{crl_text}")
    if dp_url not in crl_text:
        report.problems.append(f"GET {shard_path} does not name {dp_url} as its Issuing Distribution Point:\n{crl_text}")
    if crl_pem.read_text().count("BEGIN X509 CRL") != 18 or issuing_crl.read_text().strip() not in crl_pem.read_text():
        report.problems.append("GET /crl.pem does not hold the root's CRL, the intermediate's and its 16 shards'")

    for name, path in (
        ("root CA certificate (ca_certificate_pem)", root),
        ("issuing intermediate CA certificate (chain_pem)", intermediate),
        ("client certificate, key made by fleetca", client),
        *((f"client certificate for a {label} CSR", path) for label, path in csr_certs),
        ("server certificate", server_cert),
        ("revoked client certificate", doomed),
        ("device certificate (EST)", device_cert),
        ("claim certificate", claim_cert),
        ("renewed client certificate", renewed_cert),
    ):
        lint(report, name, ["lint_pkix_cert", "lint", str(path)])
    for name, path in (
        ("client certificate", client),
        *((f"{label} CSR certificate", path) for label, path in csr_certs),
        ("server certificate", server_cert),
        ("device certificate", device_cert),
        ("claim certificate", claim_cert),
    ):
        lint(
            report,
            f"chain intermediate -> {name}",
            ["lint_pkix_signer_signee_cert_chain", "lint", str(intermediate), str(path)],
        )
    lint(
        report,
        "chain root -> intermediate",
        ["lint_pkix_signer_signee_cert_chain", "lint", str(root), str(intermediate)],
    )
    lint(report, f"intermediate's CRL shard (GET {shard_path.replace('.der', '.pem')})",
         ["lint_crl", "lint", "-t", "CRL", "-p", "PKIX", str(issuing_crl)])
    lint(report, f"intermediate's CRL shard (GET {shard_path})", ["lint_crl", "lint", "-t", "CRL", "-p", "PKIX", str(issuing_crl_der)])
    lint(report, "intermediate's own CRL (GET /crl/2.der)", ["lint_crl", "lint", "-t", "CRL", "-p", "PKIX", str(own_crl_der)])
    lint(report, "root's CRL (GET /crl.der)", ["lint_crl", "lint", "-t", "CRL", "-p", "PKIX", str(root_crl_der)])

    verify(report, "client certificate", ca, crl_pem, client, False, "sslclient")
    for label, path in csr_certs:
        verify(report, f"{label} CSR certificate", ca, crl_pem, path, False, "sslclient")
    verify(report, "server certificate", ca, crl_pem, server_cert, False, "sslserver")
    verify(report, "revoked certificate", ca, crl_pem, doomed, True, "sslclient")
    verify(report, "device certificate", ca, crl_pem, device_cert, False, "sslclient")
    verify(report, "renewed certificate", ca, crl_pem, renewed_cert, False, "sslclient")
    return report


def lint_crl_again(server: Fleetca, workdir: Path, label: str) -> PkiReport:
    """Lints the CRL as it is after the API fuzzing (which may have revoked more)."""
    report = PkiReport()
    # The intermediate's own CRL and every shard that lists something now.
    for crl in ["/crl/2.pem"] + [f"/crl/2/{n}.pem" for n in range(16)]:
        body = server.expect("GET", crl, auth=False).data
        path = workdir / f"crl-{label}-{crl.strip('/').replace('/', '-')}"
        path.write_bytes(body)
        listed = "Serial Number" in run(["openssl", "crl", "-in", str(path), "-noout", "-text"]).stdout
        if crl == "/crl/2.pem" or listed:
            lint(report, f"CRL {label} (GET {crl})", ["lint_crl", "lint", "-t", "CRL", "-p", "PKIX", str(path)])
    return report
