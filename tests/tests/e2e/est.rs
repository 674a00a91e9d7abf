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
    let tls_port = fleetca_e2e::free_port();
    let server = Fleetca::start_with(
        &dir.join("data"),
        &["--tls-listen", &format!("127.0.0.1:{tls_port}")],
        &[],
    );
    let admin = server.admin_token();
    let base = server.base.clone();
    let d = dir.path();
    // HTTP Basic sends the password itself: devices use it over HTTPS only.
    let ca = dir.write("ca.pem", &server.get("/ca.pem", None).body, false);
    let tls_base = format!("https://127.0.0.1:{tls_port}");

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
    let enroll = format!("{tls_base}/.well-known/est/acme/simpleenroll");
    let good = csr(d, "meter", "meter-7");
    let post = |file: &str, user: &str| {
        curl(
            d,
            &[
                "--cacert",
                "ca.pem",
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
    openssl_in(d, ["verify", "-CAfile", ca.to_str().unwrap(), "meter.pem"]).expect_success("openssl verify");
    // Over plain HTTP the right password is refused, unchecked, and Basic is not offered.
    let plain = run(
        Command::new(tool("curl")).current_dir(d).args([
            "-s",
            "-D",
            "-",
            "-o",
            "/dev/null",
            "-u",
            "meter-7:device-password-7",
            "-H",
            "Content-Type: application/pkcs10",
            "--data-binary",
            &format!("@{good}"),
            &format!("{base}/.well-known/est/acme/simpleenroll"),
        ]),
        Duration::from_secs(30),
    );
    let headers = plain.expect_success("curl over plain HTTP").to_ascii_lowercase();
    assert!(headers.starts_with("http/1.1 401"), "{headers}");
    assert!(
        headers.contains("www-authenticate: digest") && !headers.contains("www-authenticate: basic"),
        "{headers}"
    );

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
    // Guessing: after ten wrong passwords for a device, even the right one waits (429).
    server
        .post(
            "/api/v4/manage/devices/",
            Some(&admin),
            &json!({"device_id": "meter-6", "tenant": "acme", "password": "device-password-6"}),
        )
        .expect_json(201, "a device");
    let six = csr(d, "six", "meter-6");
    let wrong: Vec<u16> = (0..12).map(|i| post(&six, &format!("meter-6:guess-{i}")).0).collect();
    assert_eq!(&wrong[..10], &[401; 10], "{wrong:?}");
    assert_eq!(&wrong[10..], &[429, 429], "{wrong:?}");
    let (status, body) = post(&six, "meter-6:device-password-6");
    assert_eq!(status, 429, "locked out for the window: {body}");
    let failed = server
        .get(
            "/api/v4/manage/audit/?action=est.auth_failed&page_size=100",
            Some(&admin),
        )
        .expect_json(200, "the audit log");
    assert!(failed["count"].as_u64().unwrap() >= 10, "{failed}");

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

/// What nginx proves itself with (`FLEETCA_PROXY_SECRET`).
const PROXY_SECRET: &str = "nginx-proxy-secret-0123456789";

/// nginx terminating TLS in front of fleetca's plain listener, forwarding the client
/// certificate it checked against fleetca's CA as `X-SSL-Client-Cert`.
fn nginx_conf(dir: &Path, port: u16, upstream: u16) -> String {
    let d = dir.display();
    let secret = PROXY_SECRET;
    format!(
        "daemon off;
master_process off;
pid {d}/nginx.pid;
error_log {d}/nginx-error.log info;
events {{ worker_connections 64; }}
http {{
  access_log off;
  client_body_temp_path {d}/nginx-body;
  proxy_temp_path {d}/nginx-proxy;
  fastcgi_temp_path {d}/nginx-fastcgi;
  uwsgi_temp_path {d}/nginx-uwsgi;
  scgi_temp_path {d}/nginx-scgi;
  server {{
    listen 127.0.0.1:{port} ssl;
    ssl_certificate {d}/server.crt;
    ssl_certificate_key {d}/server.key;
    ssl_client_certificate {d}/ca.crt;
    ssl_verify_client optional;
    ssl_verify_depth 2;
    location /.well-known/est/ {{
      proxy_pass http://127.0.0.1:{upstream};
      proxy_set_header X-SSL-Client-Cert $ssl_client_escaped_cert;
      proxy_set_header X-Proxy-Secret \"{secret}\";
    }}
  }}
}}
"
    )
}

/// POSTs a base64 CSR file over HTTPS with curl; returns (status, body).
fn post_tls(dir: &Path, url: &str, csr: &str, extra: &[&str]) -> (u16, String) {
    let mut args = vec![
        "--cacert",
        "ca.crt",
        "-H",
        "Content-Type: application/pkcs10",
        "--data-binary",
    ];
    let data = format!("@{csr}");
    args.push(&data);
    args.extend_from_slice(extra);
    args.push(url);
    curl(dir, &args)
}

fn issued(dir: &Path, stem: &str, key: &str) -> fleetca_e2e::IssuedCertificate {
    fleetca_e2e::IssuedCertificate {
        id: String::new(),
        serial: String::new(),
        fingerprint: String::new(),
        cert: dir.join(format!("{stem}.pem")),
        key: dir.join(key),
        ca: dir.join("ca.crt"),
        created: serde_json::Value::Null,
    }
}

#[test]
fn digest_claims_and_renewal_over_tls_and_nginx_and_mosquitto_drops_the_superseded_certificate() {
    use crate::mosquitto::{assert_round_trip, handshake, mosquitto_conf, wait_for_port};
    use fleetca_e2e::{Daemon, free_port};
    let (mosquitto, nginx) = (tool("mosquitto"), tool("nginx"));
    let dir = Scratch::new("est-tls");
    let d = dir.path();
    let tls_port = free_port();
    // Renewal may start at once here, and the old certificate lives on for 7 s.
    let settings = dir.write(
        "fleetca.toml",
        "renewal_window_percent = 100\nrenewal_grace_hours = 0.002\ntrusted_proxies = [\"127.0.0.1/32\"]\n",
        false,
    );
    let reload = format!(
        "kill -HUP $(cat {}) 2>/dev/null || true",
        dir.join("mosquitto.pid").display()
    );
    let server = Fleetca::start_with(
        &dir.join("data"),
        &[
            "--config",
            settings.to_str().unwrap(),
            "--tls-listen",
            &format!("127.0.0.1:{tls_port}"),
            "--crl-file",
            dir.join("crl.pem").to_str().unwrap(),
            "--crl-reload-command",
            &reload,
        ],
        &[("FLEETCA_PROXY_SECRET", PROXY_SECRET)],
    );
    let admin = server.admin_token();
    let fleetca_tls = format!("https://127.0.0.1:{tls_port}/.well-known/est");

    // A broker certificate for mosquitto and nginx, and fleetca's CA.
    crate::mosquitto::broker_files(&server, &admin, &dir);

    // 1. A provisioned device enrolls with HTTP Digest (curl --digest answers the challenge).
    server
        .post(
            "/api/v4/manage/devices/",
            Some(&admin),
            &json!({"device_id": "meter-9", "tenant": "acme", "password": "device-password-9"}),
        )
        .expect_json(201, "a device");
    let first = csr(d, "first", "meter-9");
    let (status, body) = post_tls(
        d,
        &format!("{fleetca_tls}/acme/simpleenroll"),
        &first,
        &["--digest", "-u", "meter-9:device-password-9"],
    );
    assert_eq!(status, 200, "{body}");
    assert!(certificates(d, &body, "first").contains("urn:fleetca:device:acme:meter-9"));
    let (status, _) = post_tls(
        d,
        &format!("{fleetca_tls}/acme/simpleenroll"),
        &first,
        &["--digest", "-u", "meter-9:wrong-password"],
    );
    assert_eq!(status, 401);

    // 2. A factory claim: devices enroll over mTLS with it, directly and through nginx.
    let claim = server
        .post(
            "/api/v4/manage/claims/",
            Some(&admin),
            &json!({"name": "line 1", "tenant": "acme", "max_uses": 2, "register_unknown": true}),
        )
        .expect_json(201, "a claim");
    // The claim certificate and its intermediate: what the factory tool presents.
    let claim_chain = format!(
        "{}{}",
        claim["certificate_pem"].as_str().unwrap(),
        claim["chain_pem"].as_str().unwrap()
    );
    dir.write("claim.crt", &claim_chain, false);
    dir.write("claim.key", claim["private_key_pem"].as_str().unwrap(), true);
    let claim_auth = ["--cert", "claim.crt", "--key", "claim.key"];
    let f1 = csr(d, "factory-1", "factory-1");
    let (status, body) = post_tls(d, &format!("{fleetca_tls}/acme/simpleenroll"), &f1, &claim_auth);
    assert_eq!(status, 200, "{body}");
    assert!(certificates(d, &body, "factory-1").contains("urn:fleetca:device:acme:factory-1"));

    let nginx_port = free_port();
    let conf = dir.write("nginx.conf", &nginx_conf(d, nginx_port, server.port), false);
    let mut proxy = Daemon::spawn(
        "nginx",
        Command::new(&nginx)
            .arg("-e")
            .arg(dir.join("nginx-error.log"))
            .arg("-c")
            .arg(&conf),
        &dir.join("nginx"),
    );
    wait_for_port(&mut proxy, nginx_port);
    let via_nginx = format!("https://127.0.0.1:{nginx_port}/.well-known/est");
    let f2 = csr(d, "factory-2", "factory-2");
    let (status, body) = post_tls(d, &format!("{via_nginx}/acme/simpleenroll"), &f2, &claim_auth);
    assert_eq!(status, 200, "through nginx: {body}");
    // Used up; and a claim certificate cannot renew itself.
    let f3 = csr(d, "factory-3", "factory-3");
    let (status, body) = post_tls(d, &format!("{fleetca_tls}/acme/simpleenroll"), &f3, &claim_auth);
    assert_eq!(status, 403, "{body}");
    let (status, _) = post_tls(d, &format!("{fleetca_tls}/simplereenroll"), &f3, &claim_auth);
    assert_eq!(status, 403);
    let listed = server
        .get(
            &format!("/api/v4/manage/claims/{}/", claim["id"].as_str().unwrap()),
            Some(&admin),
        )
        .expect_json(200, "the claim");
    assert_eq!(listed["uses"], 2);

    // 3. mosquitto requires a certificate and reads fleetca's CRL.
    let mqtt_port = free_port();
    let mconf = dir.write("mosquitto.conf", &mosquitto_conf(d, mqtt_port), false);
    let mut broker = Daemon::spawn(
        "mosquitto",
        Command::new(&mosquitto).arg("-c").arg(&mconf),
        &dir.join("mosquitto"),
    );
    wait_for_port(&mut broker, mqtt_port);
    let old = issued(d, "first", "first.key");
    assert_round_trip(&dir, mqtt_port, &old, "enrolled");

    // 4. The device renews with its certificate over fleetca's TLS listener ...
    let second = csr(d, "second", "meter-9");
    let auth = ["--cert", "first.pem", "--key", "first.key"];
    let other = csr(d, "other", "meter-10");
    let (status, _) = post_tls(d, &format!("{fleetca_tls}/simplereenroll"), &other, &auth);
    assert_eq!(status, 403, "another subject");
    let (status, body) = post_tls(d, &format!("{fleetca_tls}/simplereenroll"), &second, &auth);
    assert_eq!(status, 200, "{body}");
    certificates(d, &body, "second");
    let new = issued(d, "second", "second.key");
    assert_round_trip(&dir, mqtt_port, &new, "renewed");
    // ... the old one works during the grace, and is refused once it has passed.
    let started = std::time::Instant::now();
    let refused = loop {
        let out = handshake(mqtt_port, &old);
        if out.combined().contains("certificate revoked") {
            break started.elapsed();
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "mosquitto still accepts the superseded certificate:\n{}",
            out.combined()
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(
        refused >= Duration::from_secs(5),
        "superseded before its grace: {refused:?}"
    );
    assert_round_trip(&dir, mqtt_port, &new, "still renewed");
    // The superseded one authenticates nothing, not even a renewal.
    let (status, _) = post_tls(d, &format!("{fleetca_tls}/simplereenroll"), &second, &auth);
    assert_eq!(status, 401);

    // 5. The renewal renews through nginx too.
    let third = csr(d, "third", "meter-9");
    let (status, body) = post_tls(
        d,
        &format!("{via_nginx}/simplereenroll"),
        &third,
        &["--cert", "second.pem", "--key", "second.key"],
    );
    assert_eq!(status, 200, "through nginx: {body}");
    let devices = server
        .get("/api/v4/manage/devices/acme/meter-9/certificates/", Some(&admin))
        .expect_json(200, "the device's certificates");
    assert_eq!(devices["count"], 3, "{devices}");
    drop(proxy);
    drop(broker);
}
