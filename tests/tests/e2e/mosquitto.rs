//! A real mosquitto that takes fleetca's client certificates and CRL: fleetca writes the
//! CRL file and sends mosquitto SIGHUP through `--crl-reload-command`; a revoked
//! certificate is refused on its next connection while another certificate keeps working.

use std::net::TcpStream;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use fleetca_e2e::{Daemon, Fleetca, IssuedCertificate, Output, Scratch, distribution_point, free_port, run, tool};
use serde_json::json;

const TOPIC: &str = "v4/groups/nnn.acme.master/test";

/// The broker configuration: TLS only, a client certificate required and checked against
/// fleetca's CRL, the certificate's CN as the MQTT username. `user root` matters only when
/// the tests run as root: without it mosquitto 2.0.11 switches to the `mosquitto` user and
/// then cannot write its pid file into the root-owned scratch directory ("Unable to write
/// pid file") nor re-read the 0600 server key on SIGHUP. As any other user it is ignored.
pub(crate) fn mosquitto_conf(dir: &Path, port: u16) -> String {
    let d = dir.display();
    format!(
        "per_listener_settings false
user root
pid_file {d}/mosquitto.pid
allow_anonymous false
log_dest stderr
listener {port} 127.0.0.1
cafile {d}/ca.crt
certfile {d}/server.crt
keyfile {d}/server.key
require_certificate true
use_identity_as_username true
crlfile {d}/crl.pem
"
    )
}

/// The TLS and connection options of `mosquitto_pub`/`mosquitto_sub` for a client.
pub(crate) fn client_args(port: u16, client: &IssuedCertificate) -> Vec<String> {
    let path = |p: &Path| p.display().to_string();
    vec![
        "--cafile".into(),
        path(&client.ca),
        "--cert".into(),
        path(&client.cert),
        "--key".into(),
        path(&client.key),
        "-h".into(),
        "127.0.0.1".into(),
        "-p".into(),
        port.to_string(),
    ]
}

/// Publishes `message` once with `client`'s certificate.
pub(crate) fn publish(port: u16, client: &IssuedCertificate, message: &str) -> Output {
    run(
        Command::new(tool("mosquitto_pub"))
            .args(client_args(port, client))
            .args(["-t", TOPIC, "-q", "1", "-m", message]),
        Duration::from_secs(15),
    )
}

/// Subscribes with `client` and publishes with it until the subscriber has received
/// `message` (publishing again covers the moment before the subscription is in place).
pub(crate) fn assert_round_trip(dir: &Scratch, port: u16, client: &IssuedCertificate, message: &str) {
    let mut sub = Command::new(tool("mosquitto_sub"));
    sub.args(client_args(port, client))
        .args(["-t", TOPIC, "-C", "1", "-W", "10"]);
    let stem = client.cert.file_stem().and_then(|s| s.to_str()).unwrap_or("client");
    let mut sub = Daemon::spawn("mosquitto_sub", &mut sub, &dir.join(&format!("sub-{stem}")));
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(status) = sub.exited() {
            break status;
        }
        assert!(Instant::now() < deadline, "mosquitto_sub received nothing within 10 s");
        let out = publish(port, client, message);
        assert!(
            out.success(),
            "mosquitto_pub with {stem}'s certificate failed:\n{}",
            out.combined()
        );
        sub.wait_exit(Duration::from_millis(300));
    };
    assert!(
        status.success(),
        "mosquitto_sub failed ({status}):\n{}",
        sub.log_tail(20)
    );
    assert_eq!(sub.stdout().trim(), message, "mosquitto_sub got something else");
}

/// A TLS 1.2 handshake with `client`'s certificate: with TLS 1.2 the broker's verdict on
/// the client certificate arrives during the handshake, so its alert is in the output. The
/// intermediates after the certificate in its file are sent too (`s_client -cert` sends
/// only the first certificate of a file, unlike mosquitto's clients).
pub(crate) fn handshake(port: u16, client: &IssuedCertificate) -> Output {
    let pem = std::fs::read_to_string(&client.cert).expect("the client's certificate file");
    let mut cmd = Command::new(tool("openssl"));
    cmd.args(["s_client", "-connect", &format!("127.0.0.1:{port}"), "-tls1_2"]);
    if let Some(at) = pem
        .match_indices("-----BEGIN CERTIFICATE-----")
        .nth(1)
        .map(|(at, _)| at)
    {
        let chain = client.cert.with_extension("chain");
        fleetca_e2e::write_file(&chain, &pem[at..], false);
        cmd.arg("-cert_chain").arg(chain);
    }
    run(
        cmd.arg("-cert")
            .arg(&client.cert)
            .arg("-key")
            .arg(&client.key)
            .arg("-CAfile")
            .arg(&client.ca)
            .args(["-verify_return_error", "-verify_ip", "127.0.0.1"]),
        Duration::from_secs(15),
    )
}

/// A certificate for a key openssl makes here (`genpkey` arguments), through a CSR.
fn csr_certificate(
    server: &Fleetca,
    admin: &str,
    api_key_id: &str,
    dir: &Scratch,
    stem: &str,
    genpkey: &[&str],
) -> IssuedCertificate {
    let key = dir.join(&format!("{stem}.key"));
    let csr = dir.join(&format!("{stem}.csr"));
    let openssl = tool("openssl");
    let made = run(
        Command::new(&openssl)
            .arg("genpkey")
            .args(genpkey)
            .arg("-out")
            .arg(&key),
        Duration::from_secs(30),
    );
    assert!(made.success(), "openssl genpkey {stem}: {}", made.combined());
    let made = run(
        Command::new(&openssl)
            .args(["req", "-new", "-subj", "/CN=device-made"])
            .arg("-key")
            .arg(&key)
            .arg("-out")
            .arg(&csr),
        Duration::from_secs(30),
    );
    assert!(made.success(), "openssl req {stem}: {}", made.combined());
    let body = json!({"name": stem, "api_key_id": api_key_id, "csr_pem": std::fs::read_to_string(&csr).expect("CSR")});
    let created = server
        .post("/api/v4/manage/mqtt-certificates/", Some(admin), &body)
        .expect_json(201, &format!("a certificate for the {stem} CSR"));
    let field = |k: &str| created[k].as_str().unwrap_or_default().to_owned();
    let cert = dir.write(
        &format!("{stem}.crt"),
        &(field("certificate_pem") + &field("chain_pem")),
        false,
    );
    IssuedCertificate {
        id: field("id"),
        serial: field("serial"),
        fingerprint: field("fingerprint"),
        cert,
        key,
        ca: dir.join("ca.crt"),
        created,
    }
}

/// Asks fleetca for a broker certificate (localhost, 127.0.0.1) and writes what a broker
/// loads into `dir`, as the README says: server.crt (the certificate and its intermediates:
/// the broker presents the whole chain), server.key (0600) and ca.crt (the trust bundle,
/// `GET /ca.pem`: every CA certificate, so a device that presents only its own certificate,
/// as EST's simpleenroll returns it, verifies too). Returns the answer.
pub(crate) fn broker_files(server: &Fleetca, admin: &str, dir: &Scratch) -> serde_json::Value {
    let created = server
        .post(
            "/api/v4/manage/server-certificates/",
            Some(admin),
            &json!({"dns_names": ["localhost"], "ip_addresses": ["127.0.0.1"]}),
        )
        .expect_json(201, "the broker's server certificate");
    let pem = |k: &str| {
        created[k]
            .as_str()
            .unwrap_or_else(|| panic!("no {k} in {created}"))
            .to_owned()
    };
    dir.write("server.crt", &(pem("certificate_pem") + &pem("chain_pem")), false);
    dir.write("server.key", &pem("private_key_pem"), true);
    let bundle = server.get("/ca.pem", None);
    assert_eq!(bundle.status, 200, "GET /ca.pem");
    assert!(
        bundle.body.starts_with(pem("ca_certificate_pem").trim_end()),
        "/ca.pem starts with the roots"
    );
    dir.write("ca.crt", &bundle.body, false);
    created
}

/// Starts mosquitto on a free port with [`mosquitto_conf`] (ca.crt, server.crt,
/// server.key and crl.pem in `dir`) and waits until it listens.
pub(crate) fn start_broker(dir: &Scratch) -> (Daemon, u16) {
    let port = free_port();
    let conf = dir.write("mosquitto.conf", &mosquitto_conf(dir.path(), port), false);
    let mut broker = Daemon::spawn(
        "mosquitto",
        Command::new(tool("mosquitto")).arg("-c").arg(&conf),
        &dir.join("mosquitto"),
    );
    wait_for_port(&mut broker, port);
    (broker, port)
}

pub(crate) fn wait_for_port(broker: &mut Daemon, port: u16) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        if let Some(status) = broker.exited() {
            panic!("mosquitto exited ({status}):\n{}", broker.log_tail(40));
        }
        assert!(
            Instant::now() < deadline,
            "mosquitto did not listen on {port} within 10 s:\n{}",
            broker.log_tail(40)
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_revoked_certificate_is_refused_by_mosquitto_on_its_next_connection() {
    tool("mosquitto");
    for t in ["mosquitto_pub", "mosquitto_sub", "openssl", "curl"] {
        tool(t);
    }
    let dir = Scratch::new("mosquitto");
    let crl_file = dir.join("crl.pem");
    let reload = format!("kill -HUP $(cat {})", dir.join("mosquitto.pid").display());
    let server = Fleetca::start_with(
        &dir.join("data"),
        &[
            "--crl-file",
            crl_file.to_str().expect("UTF-8 path"),
            "--crl-reload-command",
            &reload,
        ],
        &[],
    );
    let admin = server.admin_token();

    // fleetca wrote the CRL at start; the reload failed (no mosquitto yet) and /readyz says so.
    assert!(dir.read("crl.pem").starts_with("-----BEGIN X509 CRL-----"));
    let ready = server
        .get("/readyz", None)
        .expect_json(503, "readyz before mosquitto runs");
    assert_eq!(ready["crl"]["publish"]["ok"], false, "{ready}");
    // The reload command's error output is for the log and signed-in users, not anyone.
    assert!(
        ready["crl"]["publish"].get("error").is_none(),
        "readyz shows the reload's error to anonymous callers: {ready}"
    );
    let stats = server
        .get("/api/v4/manage/stats/", Some(&admin))
        .expect_json(200, "stats");
    let error = stats["crl"]["publish"]["error"].as_str().unwrap_or("");
    assert!(
        error.contains("reload"),
        "stats does not name the failed reload: {stats}"
    );

    // The broker's certificate comes from fleetca.
    broker_files(&server, &admin, &dir);

    let (mut broker, port) = start_broker(&dir);

    // Two certificates of one API key: A will be revoked, B must keep working.
    let key = server.create_api_key(&admin, "svc-mqtt-prod", "nnn.acme");
    let key_id = key["id"].as_str().expect("id");
    let a = server.issue_certificate(&admin, key_id, "client A", dir.path(), "a");
    let b = server.issue_certificate(&admin, key_id, "client B", dir.path(), "b");

    assert_round_trip(&dir, port, &a, "hello from A");
    let before = handshake(port, &a);
    assert!(
        before.stdout.contains("Verify return code: 0 (ok)") && !before.combined().contains("alert"),
        "A's TLS handshake failed before revocation:\n{}",
        before.combined()
    );

    // Revoke A and try to connect with it until the broker refuses it.
    let started = Instant::now();
    let revoked = server.revoke(&admin, &a.id, "keyCompromise");
    let revoke_ms = started.elapsed().as_millis();
    assert_eq!(revoked["status"], "revoked");
    let mut attempts = 0;
    let mut accepted_after_revoke = 0;
    let refused_after = loop {
        attempts += 1;
        let out = handshake(port, &a);
        if out.combined().contains("certificate revoked") {
            break started.elapsed();
        }
        if out.stdout.contains("Verify return code: 0 (ok)") && !out.combined().contains("alert") {
            accepted_after_revoke += 1;
        } else {
            eprintln!(
                "attempt {attempts} failed without \"certificate revoked\":\n{}",
                out.combined()
            );
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "mosquitto still accepts A's certificate 10 s after revoking it ({attempts} attempts); last handshake:\n{}\n{}",
            out.combined(),
            broker.log_tail(40)
        );
        std::thread::sleep(Duration::from_millis(10));
    };
    println!(
        "revoke-to-refusal: {} ms (the revoke request took {revoke_ms} ms; refused on connection attempt {attempts}, \
         {accepted_after_revoke} handshake(s) accepted after the revoke request returned)",
        refused_after.as_millis()
    );
    let refused = publish(port, &a, "A after revocation");
    assert!(
        !refused.success(),
        "mosquitto_pub with A's revoked certificate succeeded"
    );

    // The reload command ran, so fleetca is ready now; B still gets through.
    server
        .get("/readyz", None)
        .expect_json(200, "readyz after a successful reload");
    assert_round_trip(&dir, port, &b, "hello from B");

    // Keys a device made itself, of the kinds device stacks make: each CSR's certificate
    // connects, its key never having left this directory.
    for (stem, genpkey) in [
        (
            "rsa2048",
            &["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"][..],
        ),
        (
            "rsa3072",
            &["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:3072"][..],
        ),
        (
            "rsa4096",
            &["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:4096"][..],
        ),
        ("p384", &["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-384"][..]),
        ("ed25519", &["-algorithm", "ED25519"][..]),
    ] {
        let client = csr_certificate(&server, &admin, key_id, &dir, stem, genpkey);
        let out = publish(port, &client, &format!("hello from a {stem} key"));
        assert!(
            out.success(),
            "mosquitto refused the {stem} key's certificate:\n{}\n{}",
            out.combined(),
            broker.log_tail(20)
        );
    }
    assert!(broker.exited().is_none(), "mosquitto exited:\n{}", broker.log_tail(40));
    let log = broker.stderr();
    assert!(log.contains("Reloading config"), "mosquitto never reloaded:\n{log}");
}

/// Whether mosquitto refuses `client`'s certificate as revoked (a TLS 1.2 handshake), or
/// accepts it.
fn refused_as_revoked(port: u16, client: &IssuedCertificate) -> bool {
    let out = handshake(port, client);
    if out.combined().contains("certificate revoked") {
        return true;
    }
    assert!(
        out.stdout.contains("Verify return code: 0 (ok)") && !out.combined().contains("alert"),
        "a handshake neither accepted nor refused as revoked:\n{}",
        out.combined()
    );
    false
}

#[test]
fn a_certificate_revoked_in_any_crl_shard_is_refused_by_mosquitto() {
    tool("mosquitto");
    for t in ["mosquitto_pub", "openssl", "curl"] {
        tool(t);
    }
    let dir = Scratch::new("mosquitto-shards");
    let crl_file = dir.join("crl.pem");
    let reload = format!("kill -HUP $(cat {})", dir.join("mosquitto.pid").display());
    let server = Fleetca::start_with(
        &dir.join("data"),
        &[
            "--crl-file",
            crl_file.to_str().expect("UTF-8 path"),
            "--crl-reload-command",
            &reload,
        ],
        &[],
    );
    let admin = server.admin_token();
    broker_files(&server, &admin, &dir);
    let (mut broker, port) = start_broker(&dir);

    // Seventeen certificates (two API keys: ten each at most) name the intermediate's
    // sixteen shards in turn: every shard, and one twice.
    let mut clients = Vec::new();
    for (k, count) in [("svc-shards-a", 9), ("svc-shards-b", 8)] {
        let key = server.create_api_key(&admin, k, "nnn.acme");
        let key_id = key["id"].as_str().expect("id");
        for n in 0..count {
            let stem = format!("{k}-{n}");
            let client = server.issue_certificate(&admin, key_id, &stem, dir.path(), &stem);
            let url = distribution_point(&client.cert);
            clients.push((url, client));
        }
    }
    let shard = |url: &str| -> u16 {
        url.rsplit('/')
            .next()
            .and_then(|f| f.strip_suffix(".der"))
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("{url} names no shard"))
    };
    for (url, _) in &clients {
        assert!(
            url.starts_with(&server.url("/crl/2/")),
            "a new certificate names {url}, not one of its CA's shards"
        );
    }
    let mut shards: Vec<u16> = clients.iter().map(|(url, _)| shard(url)).collect();
    shards.sort_unstable();
    shards.dedup();
    assert_eq!(
        shards,
        (0..16).collect::<Vec<u16>>(),
        "the certificates do not cover every shard"
    );

    // The file mosquitto loads holds the root's CRL, the intermediate's own and its shards'.
    let file = dir.read("crl.pem");
    assert_eq!(file.matches("BEGIN X509 CRL").count(), 18, "{file}");

    // Revoke the certificate of the first shard and of the last.
    let first = clients.iter().position(|(url, _)| shard(url) == 0).expect("shard 0");
    let last = clients.iter().position(|(url, _)| shard(url) == 15).expect("shard 15");
    for i in [first, last] {
        let revoked = server.revoke(&admin, &clients[i].1.id, "keyCompromise");
        assert_eq!(revoked["status"], "revoked");
    }
    for (i, (url, client)) in clients.iter().enumerate() {
        let revoked = i == first || i == last;
        assert_eq!(
            refused_as_revoked(port, client),
            revoked,
            "mosquitto {} the certificate of {url}\n{}",
            if revoked {
                "accepts the revoked"
            } else {
                "refuses the unrevoked"
            },
            broker.log_tail(20)
        );
    }

    // What EMQX does (its documented CRL check fetches each certificate's distribution
    // point): each revoked certificate's shard, fetched from the URL the certificate names,
    // lists it, names that URL as its scope, and makes `openssl verify` refuse it.
    let chain = dir.join("ca.crt");
    for i in [first, last] {
        let (url, client) = &clients[i];
        let der = dir.join(&format!("shard-{i}.der"));
        let fetched = run(
            Command::new(tool("curl")).args(["-sf", "-o"]).arg(&der).arg(url),
            Duration::from_secs(15),
        );
        assert!(fetched.success(), "curl {url}: {}", fetched.combined());
        let text = run(
            Command::new(tool("openssl"))
                .args(["crl", "-inform", "DER", "-noout", "-text", "-in"])
                .arg(&der),
            Duration::from_secs(15),
        );
        assert!(text.success(), "openssl crl {url}: {}", text.combined());
        assert!(
            text.stdout.to_uppercase().contains(&client.serial.to_uppercase()),
            "{url} does not list {}:\n{}",
            client.serial,
            text.stdout
        );
        assert!(
            text.stdout.contains("Issuing Distribution Point") && text.stdout.contains(url.as_str()),
            "{url} does not name itself as its scope:\n{}",
            text.stdout
        );
        let pem = dir.join(&format!("shard-{i}.pem"));
        let converted = run(
            Command::new(tool("openssl"))
                .args(["crl", "-inform", "DER", "-in"])
                .arg(&der)
                .arg("-out")
                .arg(&pem),
            Duration::from_secs(15),
        );
        assert!(converted.success(), "{}", converted.combined());
        let verify = run(
            Command::new(tool("openssl"))
                .args(["verify", "-crl_check"])
                .arg("-CAfile")
                .arg(&chain)
                .arg("-CRLfile")
                .arg(&pem)
                .arg("-untrusted")
                .arg(&client.cert)
                .arg(&client.cert),
            Duration::from_secs(15),
        );
        assert!(
            !verify.success() && verify.combined().contains("certificate revoked"),
            "openssl verify with {url} does not refuse the certificate:\n{}",
            verify.combined()
        );
    }
    assert!(broker.exited().is_none(), "mosquitto exited:\n{}", broker.log_tail(40));
}
