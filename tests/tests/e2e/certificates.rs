//! Certificates and CRLs from the real binary, checked with someone else's parser: the
//! `openssl` command line.

use std::path::Path;

use fleetca_e2e::{Fleetca, Output, Scratch, openssl};
use serde_json::Value;

/// A scratch path as a command-line argument (scratch paths are UTF-8).
fn p(path: &Path) -> &str {
    path.to_str().expect("a UTF-8 path")
}

/// `openssl x509 -in {cert} {args...}`, which must succeed; returns stdout.
fn x509(cert: &Path, args: &[&str]) -> String {
    let mut all = vec!["x509", "-in", p(cert)];
    all.extend_from_slice(args);
    openssl(&all)
        .expect_success(&format!("openssl {}", all.join(" ")))
        .to_owned()
}

/// The value after the first `=` of a one-line `openssl x509` answer (`serial=…`).
fn after_equals(line: &str) -> &str {
    line.trim().split_once('=').map(|(_, v)| v.trim()).unwrap_or("")
}

/// The trimmed line after the one containing `label` in `openssl … -text` output.
fn line_after<'a>(text: &'a str, label: &str) -> &'a str {
    let mut lines = text.lines();
    lines
        .by_ref()
        .find(|l| l.contains(label))
        .unwrap_or_else(|| panic!("no {label:?} in:\n{text}"));
    lines.next().map(str::trim).unwrap_or("")
}

/// The CRL number in `openssl crl -text` output.
fn crl_number(text: &str) -> u64 {
    let value = line_after(text, "X509v3 CRL Number");
    value
        .parse()
        .unwrap_or_else(|_| panic!("CRL number {value:?} is not a decimal number:\n{text}"))
}

/// `openssl verify -crl_check_all` (every certificate of the chain checked against its
/// issuer's CRL) against a bundle of the CA certificates and `crl_pem` (every CRL).
fn verify_with_crl(dir: &Scratch, ca_pem: &str, crl_pem: &str, cert: &Path, name: &str) -> Output {
    let bundle = dir.write(name, &format!("{ca_pem}{crl_pem}"), false);
    openssl([
        "verify",
        "-x509_strict",
        "-crl_check_all",
        "-CAfile",
        p(&bundle),
        p(cert),
    ])
}

fn text<'a>(v: &'a Value, key: &str) -> &'a str {
    v[key].as_str().unwrap_or_else(|| panic!("no string {key:?} in {v}"))
}

#[test]
fn issued_certificates_pass_openssl_checks() {
    let dir = Scratch::new("openssl");
    let server = Fleetca::start(&dir.join("data"));
    let admin = server.admin_token();
    let key = server.create_api_key(&admin, "svc-mqtt-prod", "nnn.acme");
    let issued = server.issue_certificate(&admin, text(&key, "id"), "openssl checks", dir.path(), "client");
    let cert = issued.cert.as_path();

    // The certificate's contents, as openssl reads them.
    let t = x509(cert, &["-noout", "-text"]);
    for expected in [
        "Version: 3 (0x2)",
        "Signature Algorithm: ecdsa-with-SHA256",
        "Public Key Algorithm: id-ecPublicKey",
        "NIST CURVE: P-256",
        "Subject: O = nnn.acme, CN = svc-mqtt-prod",
        "X509v3 Key Usage: critical",
        "X509v3 Extended Key Usage",
        "X509v3 Basic Constraints",
        "CA:FALSE",
        "X509v3 Subject Key Identifier",
        "X509v3 Authority Key Identifier",
        "X509v3 CRL Distribution Points",
        // A new installation issues from its intermediate, CA 2: a shard of its CRL is the DP.
        &format!("URI:{}/crl/2/", server.base),
    ] {
        assert!(t.contains(expected), "no {expected:?} in the certificate:\n{t}");
    }
    let dp = t
        .split_whitespace()
        .find_map(|w| w.strip_prefix("URI:"))
        .expect("a distribution point")
        .to_owned();
    let shard_der = dp.strip_prefix(&server.base).expect("a URL of this server").to_owned();
    let shard_pem = shard_der.replace(".der", ".pem");
    assert_eq!(line_after(&t, "X509v3 Key Usage: critical"), "Digital Signature", "{t}");
    assert_eq!(
        line_after(&t, "X509v3 Extended Key Usage"),
        "TLS Web Client Authentication",
        "{t}"
    );
    // Issued by the intermediate (chain_pem), which the root (ca_certificate_pem) signed.
    let intermediate = dir.write("intermediate.crt", text(&issued.created, "chain_pem"), false);
    let issuer = after_equals(&x509(cert, &["-noout", "-issuer"])).to_owned();
    let ca_subject = after_equals(&x509(&intermediate, &["-noout", "-subject"])).to_owned();
    assert_eq!(issuer, ca_subject, "the issuer is not the intermediate's subject");
    let root_subject = after_equals(&x509(&issued.ca, &["-noout", "-subject"])).to_owned();
    let intermediate_issuer = after_equals(&x509(&intermediate, &["-noout", "-issuer"])).to_owned();
    assert_eq!(intermediate_issuer, root_subject, "the intermediate is not the root's");
    let i = x509(&intermediate, &["-noout", "-text"]);
    assert!(i.contains("CA:TRUE, pathlen:0"), "{i}");
    assert!(i.contains("Certificate Sign, CRL Sign"), "{i}");

    // The API's serial and fingerprint are openssl's.
    let serial = x509(cert, &["-noout", "-serial"]);
    assert!(
        after_equals(&serial).eq_ignore_ascii_case(&issued.serial),
        "API serial {} != openssl {serial}",
        issued.serial
    );
    let fingerprint = x509(cert, &["-noout", "-fingerprint", "-sha256"]);
    assert_eq!(
        after_equals(&fingerprint).replace(':', "").to_lowercase(),
        issued.fingerprint,
        "API fingerprint != openssl {fingerprint}"
    );

    // It chains to the CA, for TLS client use, and the key is the certificate's.
    let verified = openssl([
        "verify",
        "-x509_strict",
        "-purpose",
        "sslclient",
        "-CAfile",
        p(&issued.ca),
        "-untrusted",
        p(&intermediate),
        p(cert),
    ]);
    assert!(verified.stdout.contains(": OK"), "{}", verified.combined());
    let from_key = openssl(["pkey", "-in", p(&issued.key), "-pubout"]);
    let from_cert = x509(cert, &["-pubkey", "-noout"]);
    assert_eq!(
        from_key.expect_success("openssl pkey -pubout"),
        from_cert,
        "the private key does not match the certificate"
    );

    // Before revocation it verifies against the CRLs (/crl.pem holds every CRL: the root's,
    // the intermediate's own and its 16 shards'); after, it is "certificate revoked".
    let ca_pem = format!("{}{}", dir.read("ca.crt"), dir.read("intermediate.crt"));
    let before = server.get("/crl.pem", None);
    assert_eq!(before.status, 200);
    assert_eq!(before.body.matches("BEGIN X509 CRL").count(), 18, "{}", before.body);
    let issuing_before = server.get(&shard_pem, None);
    let crl_before = dir.write("crl-before.pem", &issuing_before.body, false);
    let before_text = openssl(["crl", "-in", p(&crl_before), "-noout", "-text"]);
    let number_before = crl_number(before_text.expect_success("openssl crl -text"));
    let ok = verify_with_crl(&dir, &ca_pem, &before.body, cert, "bundle-before.pem");
    assert!(
        ok.stdout.contains(": OK"),
        "verify -crl_check before revocation:\n{}",
        ok.combined()
    );

    let revoked = server.revoke(&admin, &issued.id, "keyCompromise");
    assert_eq!(revoked["status"], "revoked");
    assert_eq!(revoked["reason"], "keyCompromise");

    let after = server.get("/crl.pem", None);
    assert_eq!(after.status, 200);
    let refused = verify_with_crl(&dir, &ca_pem, &after.body, cert, "bundle-after.pem");
    assert!(
        !refused.success(),
        "verify -crl_check passed after revocation:\n{}",
        refused.combined()
    );
    assert!(
        refused.combined().contains("certificate revoked"),
        "verify -crl_check after revocation did not say \"certificate revoked\":\n{}",
        refused.combined()
    );

    // The certificate's CRL shard itself: v2, signed by the intermediate, with the extensions
    // brokers need, its scope the certificate's distribution point.
    let issuing_after = server.get(&shard_pem, None);
    let crl_after = dir.write("crl.pem", &issuing_after.body, false);
    let signed = openssl(["crl", "-in", p(&crl_after), "-CAfile", p(&intermediate), "-noout"]);
    assert!(signed.combined().contains("verify OK"), "{}", signed.combined());
    let shown = openssl(["crl", "-in", p(&crl_after), "-noout", "-text"]);
    let c = shown.expect_success("openssl crl -text");
    for expected in [
        "Version 2 (0x1)",
        "Signature Algorithm: ecdsa-with-SHA256",
        &format!("Issuer: {ca_subject}"),
        "X509v3 CRL Number",
        "X509v3 Authority Key Identifier",
        "X509v3 Issuing Distribution Point",
        &format!("URI:{dp}"),
        &format!("Serial Number: {}", issued.serial.to_uppercase()),
        "X509v3 CRL Reason Code",
        "Key Compromise",
    ] {
        assert!(c.contains(expected), "no {expected:?} in the CRL:\n{c}");
    }
    let number_after = crl_number(c);
    assert!(
        number_after > number_before,
        "the CRL number did not grow: {number_before} then {number_after}"
    );
    let ready = server.get("/readyz", None).expect_json(200, "readyz");
    assert_eq!(ready["crl"]["number"], number_after, "{ready}");

    // The shard's .der is the same CRL in DER, and /crl.pem holds it too.
    let der_path = dir.join("crl.der");
    let fetched = fleetca_e2e::run(
        std::process::Command::new(fleetca_e2e::tool("curl"))
            .args(["-sS", "--fail", "-o"])
            .arg(&der_path)
            .arg(&dp),
        std::time::Duration::from_secs(30),
    );
    fetched.expect_success("curl the certificate's CRL shard");
    let der_as_pem = openssl(["crl", "-inform", "DER", "-in", p(&der_path), "-outform", "PEM"]);
    let der_as_pem = der_as_pem.expect_success("openssl crl -inform DER").trim().to_owned();
    assert_eq!(der_as_pem, issuing_after.body.trim(), "the shard's DER and PEM differ");
    assert!(
        after.body.contains(&der_as_pem),
        "/crl.pem lacks the intermediate's CRL"
    );

    // The root's CRL (/crl.der, the intermediate's DP): signed by the root, listing no one.
    let root_der = dir.join("root-crl.der");
    fleetca_e2e::run(
        std::process::Command::new(fleetca_e2e::tool("curl"))
            .args(["-sS", "--fail", "-o"])
            .arg(&root_der)
            .arg(server.url("/crl.der")),
        std::time::Duration::from_secs(30),
    )
    .expect_success("curl /crl.der");
    let root_crl = openssl([
        "crl",
        "-inform",
        "DER",
        "-in",
        p(&root_der),
        "-CAfile",
        p(&issued.ca),
        "-noout",
        "-text",
    ]);
    let r = root_crl.combined();
    assert!(
        r.contains("verify OK") && r.contains(&format!("Issuer: {root_subject}")),
        "{r}"
    );
    assert!(r.contains("No Revoked Certificates"), "{r}");
}
