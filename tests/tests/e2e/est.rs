//! EST (RFC 7030) with curl and openssl as the client: the CA certificates as PKCS#7, a
//! provisioned device enrolling with its password (HTTP Basic, checked against the HA1
//! fleetca already stores), an API key enrolling with its token, and the refusals.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use fleetca_e2e::{Fleetca, Scratch, openssl_in, run, tool};
use serde_json::json;

/// `curl` with a body from `file`; returns (status, body).
fn curl(dir: &Path, args: &[&str]) -> (u16, String) {
    let out = run(
        Command::new(tool("curl"))
            .current_dir(dir)
            .args(["-sS", "--max-time", "20", "-w", "\n%{http_code}"])
            .args(args),
        Duration::from_secs(30),
    );
    out.expect_success("curl");
    let (body, status) = out.stdout.rsplit_once('\n').unwrap_or(("", ""));
    (status.trim().parse().unwrap_or(0), body.to_owned())
}

/// A P-256 key and a base64 DER CSR for `cn`, made by openssl.
fn csr(dir: &Path, stem: &str, cn: &str) -> String {
    openssl_in(
        dir,
        [
            "req",
            "-new",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            &format!("{stem}.key"),
            "-subj",
            &format!("/CN={cn}"),
            "-outform",
            "DER",
            "-out",
            &format!("{stem}.der"),
        ],
    )
    .expect_success("openssl req");
    openssl_in(
        dir,
        ["base64", "-in", &format!("{stem}.der"), "-out", &format!("{stem}.b64")],
    )
    .expect_success("base64");
    format!("{stem}.b64")
}

/// Decodes an EST answer (base64 PKCS#7) with openssl and returns its certificates as text.
fn certificates(dir: &Path, body: &str, stem: &str) -> String {
    std::fs::write(dir.join(format!("{stem}.p7.b64")), body).unwrap();
    openssl_in(
        dir,
        [
            "base64",
            "-d",
            "-A",
            "-in",
            &format!("{stem}.p7.b64"),
            "-out",
            &format!("{stem}.p7"),
        ],
    )
    .expect_success("base64 -d");
    openssl_in(
        dir,
        [
            "pkcs7",
            "-inform",
            "DER",
            "-in",
            &format!("{stem}.p7"),
            "-print_certs",
            "-out",
            &format!("{stem}.pem"),
        ],
    )
    .expect_success("openssl pkcs7");
    openssl_in(dir, ["x509", "-in", &format!("{stem}.pem"), "-noout", "-text"])
        .expect_success("openssl x509")
        .to_owned()
}

#[test]
fn devices_and_api_keys_enroll_over_est_and_openssl_reads_the_answers() {
    let dir = Scratch::new("est");
    let server = Fleetca::start(&dir.join("data"));
    let admin = server.admin_token();
    let base = server.base.clone();
    let d = dir.path();

    let (status, body) = curl(d, &[&format!("{base}/.well-known/est/cacerts")]);
    assert_eq!(status, 200);
    assert!(certificates(d, &body, "cacerts").contains("fleetca root CA"));

    server
        .post(
            "/api/v4/manage/devices/",
            Some(&admin),
            &json!({"device_id": "meter-7", "tenant": "acme", "password": "device-password-7"}),
        )
        .expect_json(201, "a device");
    let enroll = format!("{base}/.well-known/est/acme/simpleenroll");
    let good = csr(d, "meter", "meter-7");
    let post = |file: &str, user: &str| {
        curl(
            d,
            &[
                "-u",
                user,
                "-H",
                "Content-Type: application/pkcs10",
                "--data-binary",
                &format!("@{file}"),
                &enroll,
            ],
        )
    };
    let (status, body) = post(&good, "meter-7:device-password-7");
    assert_eq!(status, 200, "{body}");
    let text = certificates(d, &body, "meter");
    assert!(text.contains("CN=meter-7") || text.contains("CN = meter-7"), "{text}");
    assert!(text.contains("URI:urn:fleetca:device:acme:meter-7"), "{text}");
    assert!(text.contains("TLS Web Client Authentication"), "{text}");
    let ca = dir.write("ca.pem", &server.get("/ca.pem", None).body, false);
    openssl_in(d, ["verify", "-CAfile", ca.to_str().unwrap(), "meter.pem"]).expect_success("openssl verify");

    // Refusals: a wrong password (401 with a challenge), another subject (403), not base64 (400).
    let (status, _) = post(&good, "meter-7:wrong-password");
    assert_eq!(status, 401);
    let other = csr(d, "other", "meter-8");
    let (status, body) = post(&other, "meter-7:device-password-7");
    assert_eq!(status, 403, "{body}");
    std::fs::write(d.join("junk.b64"), "not base64 at all!").unwrap();
    let (status, _) = post("junk.b64", "meter-7:device-password-7");
    assert_eq!(status, 400);
    // At most two active certificates per device.
    assert_eq!(post(&good, "meter-7:device-password-7").0, 200);
    let (status, body) = post(&good, "meter-7:device-password-7");
    assert_eq!(status, 403, "{body}");

    // An API key enrolls its own MQTT client certificate with its token.
    let key = server.create_api_key(&admin, "svc-est", "acme");
    let token = key["token"].as_str().unwrap();
    let mine = csr(d, "svc", "svc-est");
    let (status, body) = curl(
        d,
        &[
            "-H",
            &format!("Authorization: Bearer {token}"),
            "--data-binary",
            &format!("@{mine}"),
            &format!("{base}/.well-known/est/simpleenroll"),
        ],
    );
    assert_eq!(status, 200, "{body}");
    assert!(certificates(d, &body, "svc").contains("svc-est"));
    let listed = server
        .get(
            &format!(
                "/api/v4/manage/mqtt-certificates/?api_key_id={}",
                key["id"].as_str().unwrap()
            ),
            Some(&admin),
        )
        .expect_json(200, "the key's certificates");
    assert_eq!(listed["count"], 1, "{listed}");
    let theirs = csr(d, "theirs", "svc-other");
    let (status, _) = curl(
        d,
        &[
            "-H",
            &format!("Authorization: Bearer {token}"),
            "--data-binary",
            &format!("@{theirs}"),
            &format!("{base}/.well-known/est/simpleenroll"),
        ],
    );
    assert_eq!(status, 403);
}
