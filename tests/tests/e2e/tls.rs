//! The HTTPS listener: a server certificate fleetca issues itself for the host of its public
//! URL, checked by curl against fleetca's CA; client certificates requested, not required,
//! and accepted only when fleetca's CA signed them.

use std::process::Command;
use std::time::Duration;

use fleetca_e2e::{Fleetca, Scratch, free_port, openssl_in, run, tool};

fn curl(args: &[&str]) -> fleetca_e2e::Output {
    run(
        Command::new(tool("curl"))
            .args(["-sS", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "10"])
            .args(args),
        Duration::from_secs(20),
    )
}

#[test]
fn fleetca_serves_https_with_its_own_certificate_and_verifies_client_certificates() {
    let dir = Scratch::new("tls");
    let data = dir.join("data");
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let server = Fleetca::start_with(&data, &["--tls-listen", &listen], &[]);
    let admin = server.admin_token();
    let ca = dir.write("ca.pem", &server.get("/ca.pem", None).body, false);
    let url = format!("https://127.0.0.1:{port}/healthz");
    let ca_arg = ca.to_str().unwrap();

    // The server certificate chains to fleetca's CA and names the public URL's host.
    let out = curl(&["--cacert", ca_arg, &url]);
    assert_eq!(out.stdout.trim(), "200", "{}", out.combined());
    let key = data.join("tls.key");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(&key).unwrap().permissions().mode() & 0o777, 0o600);
    let listed = server
        .get("/api/v4/manage/server-certificates/", Some(&admin))
        .expect_json(200, "server certificates");
    assert_eq!(listed["count"], 1, "{listed}");

    // A client certificate of fleetca's CA is accepted.
    let api_key = server.create_api_key(&admin, "svc-tls", "acme");
    let issued = server.issue_certificate(
        &admin,
        api_key["id"].as_str().unwrap(),
        "tls client",
        dir.path(),
        "client",
    );
    let out = curl(&[
        "--cacert",
        ca_arg,
        "--cert",
        issued.cert.to_str().unwrap(),
        "--key",
        issued.key.to_str().unwrap(),
        &url,
    ]);
    assert_eq!(out.stdout.trim(), "200", "{}", out.combined());

    // A certificate of another CA fails the handshake.
    openssl_in(
        dir.path(),
        [
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            "foreign.key",
            "-out",
            "foreign.crt",
            "-subj",
            "/CN=svc-tls",
            "-days",
            "1",
        ],
    )
    .expect_success("a foreign certificate");
    let foreign = curl(&[
        "--cacert",
        ca_arg,
        "--cert",
        dir.join("foreign.crt").to_str().unwrap(),
        "--key",
        dir.join("foreign.key").to_str().unwrap(),
        &url,
    ]);
    assert!(
        !foreign.success() || foreign.stdout.trim() != "200",
        "a foreign client certificate was accepted"
    );

    // A restart reuses the certificate it issued.
    drop(server);
    let server = Fleetca::start_with(&data, &["--tls-listen", &listen], &[]);
    let out = curl(&["--cacert", ca_arg, &url]);
    assert_eq!(out.stdout.trim(), "200", "{}", out.combined());
    let listed = server
        .get("/api/v4/manage/server-certificates/", Some(&admin))
        .expect_json(200, "server certificates");
    assert_eq!(listed["count"], 1, "no second certificate on restart: {listed}");
}
