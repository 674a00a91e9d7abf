//! Fifty certificate clients reconnect to a real mosquitto throughout an issuing-CA rotation
//! and then a root rollover, each done in the README's order ("Rotating a CA", "Root
//! rollover"), renewing over EST with `fleetca renew` half-way through each: not one
//! connection is refused, and a revoked certificate of every generation is refused in every
//! round.

use std::path::PathBuf;
use std::time::Duration;

use fleetca_e2e::{Daemon, Fleetca, IssuedCertificate, Scratch, tool};

use crate::mosquitto::{handshake, publish, start_broker};

const CLIENTS: usize = 50;
/// One public URL for every start: certificates name their CA's CRL under it (its host, an
/// address, is also what the HTTPS listener's certificate names for `fleetca renew`).
const PUBLIC: (&str, &str) = ("FLEETCA_PUBLIC_URL", "http://127.0.0.1:9");

use fleetca_e2e::offline as fleetca;

struct Setup {
    dir: Scratch,
    data: PathBuf,
    args: Vec<String>,
    tls_port: u16,
}

impl Setup {
    fn start(&self) -> Fleetca {
        let args: Vec<&str> = self.args.iter().map(String::as_str).collect();
        Fleetca::start_with(&self.data, &args, &[PUBLIC])
    }

    /// Each client connects and publishes once; returns the ones refused, with why.
    fn round(&self, port: u16, clients: &[IssuedCertificate], what: &str) -> Vec<String> {
        let refused: Vec<String> = std::thread::scope(|s| {
            let handles: Vec<_> = clients
                .chunks(CLIENTS.div_ceil(6))
                .map(|chunk| {
                    s.spawn(move || {
                        chunk
                            .iter()
                            .filter_map(|c| {
                                let out = publish(port, c, what);
                                (!out.success()).then(|| format!("{}: {}", c.cert.display(), out.combined()))
                            })
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            handles
                .into_iter()
                .flat_map(|h| h.join().expect("a round's thread"))
                .collect()
        });
        refused
    }

    /// Renews `client` over EST with `fleetca renew` (due at once), in place.
    fn renew(&self, client: &IssuedCertificate) {
        let est = format!("https://127.0.0.1:{}", self.tls_port);
        let out = fleetca(
            &self.data,
            &[
                "renew",
                "--cert",
                client.cert.to_str().expect("UTF-8"),
                "--key",
                client.key.to_str().expect("UTF-8"),
                "--url",
                &est,
                "--ca-file",
                client.ca.to_str().expect("UTF-8"),
                "--after-percent",
                "0",
            ],
        );
        out.expect_success("fleetca renew");
    }
}

/// Asserts a revoked certificate is refused by the broker now.
fn assert_refused(port: u16, client: &IssuedCertificate, broker: &mut Daemon, what: &str) {
    let out = handshake(port, client);
    assert!(
        out.combined().contains("certificate revoked"),
        "{what}: the revoked {} was not refused:\n{}\n{}",
        client.cert.display(),
        out.combined(),
        broker.log_tail(20)
    );
}

/// Revokes `client` and waits until mosquitto (its CRL file reloaded) refuses it.
fn revoke(server: &Fleetca, admin: &str, client: &IssuedCertificate, port: u16, broker: &mut Daemon) {
    server.revoke(admin, &client.id, "keyCompromise");
    let started = std::time::Instant::now();
    while !handshake(port, client).combined().contains("certificate revoked") {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{} still accepted",
            client.cert.display()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = broker;
}

/// The broker's trust bundle as fleetca serves it now, and a restarted mosquitto with it.
fn update_broker(server: &Fleetca, dir: &Scratch, broker: Daemon) -> (Daemon, u16) {
    let bundle = server.get("/ca.pem", None);
    assert_eq!(bundle.status, 200);
    dir.write("ca.crt", &bundle.body, false);
    drop(broker);
    start_broker(dir)
}

#[test]
fn fifty_clients_stay_connected_through_an_issuing_ca_rotation_and_a_root_rollover() {
    tool("mosquitto");
    for t in ["mosquitto_pub", "openssl", "curl"] {
        tool(t);
    }
    let dir = Scratch::new("rotation");
    let data = dir.join("data");
    let tls_port = fleetca_e2e::free_port();
    // Renewal allowed at any point of a certificate's lifetime, so renewing is due at once.
    let config = dir.write(
        "fleetca.toml",
        "renewal_window_percent = 100\nrenewal_grace_hours = 0.01\n",
        false,
    );
    let crl_file = dir.join("crl.pem");
    let reload = format!(
        "kill -HUP $(cat {}) 2>/dev/null || true",
        dir.join("mosquitto.pid").display()
    );
    let setup = Setup {
        args: vec![
            "--config".into(),
            config.to_str().expect("UTF-8").into(),
            "--tls-listen".into(),
            format!("127.0.0.1:{tls_port}"),
            "--crl-file".into(),
            crl_file.to_str().expect("UTF-8").into(),
            "--crl-reload-command".into(),
            reload,
        ],
        dir,
        data,
        tls_port,
    };
    let dir = &setup.dir;

    // Fifty clients of a new installation (ten API keys, five each: a renewal may briefly
    // count twice against a key's limit of ten) and the broker.
    let mut server = setup.start();
    let admin = server.admin_token();
    let mut clients = Vec::new();
    for k in 0..CLIENTS / 5 {
        let key = server.create_api_key(&admin, &format!("svc-fleet-{k}"), "nnn.acme");
        let id = key["id"].as_str().expect("id").to_owned();
        for n in 0..5 {
            let sub = dir.join(&format!("c{k}-{n}"));
            std::fs::create_dir_all(&sub).expect("client dir");
            let mut c = server.issue_certificate(&admin, &id, &format!("device {k}-{n}"), &sub, "client");
            c.ca = sub.join("ca.crt");
            clients.push(c);
        }
    }
    // A spare key's certificate, revoked: refused in every round from now on.
    let spare = server.create_api_key(&admin, "svc-revoked", "nnn.acme");
    let spare_id = spare["id"].as_str().expect("id").to_owned();
    let revoked_dir = dir.join("revoked-1");
    std::fs::create_dir_all(&revoked_dir).expect("dir");
    let mut revoked = vec![server.issue_certificate(&admin, &spare_id, "revoked 1", &revoked_dir, "client")];
    let created = server
        .post(
            "/api/v4/manage/server-certificates/",
            Some(&admin),
            &serde_json::json!({"dns_names": ["localhost"], "ip_addresses": ["127.0.0.1"]}),
        )
        .expect_json(201, "the broker's certificate");
    let text = |k: &str| created[k].as_str().unwrap_or_default().to_owned();
    dir.write("server.crt", &(text("certificate_pem") + &text("chain_pem")), false);
    dir.write("server.key", &text("private_key_pem"), true);
    dir.write("ca.crt", &server.get("/ca.pem", None).body, false);
    let (mut broker, mut port) = start_broker(dir);
    revoke(&server, &admin, &revoked[0], port, &mut broker);

    let mut rounds = 0;
    let mut check = |port: u16, broker: &mut Daemon, revoked: &[IssuedCertificate], what: &str| {
        let refused = setup.round(port, &clients_snapshot(&setup), what);
        assert!(
            refused.is_empty(),
            "{what}: {} of {CLIENTS} refused:\n{}",
            refused.len(),
            refused.join("\n")
        );
        for r in revoked {
            assert_refused(port, r, broker, what);
        }
        rounds += 1;
    };
    // (The clients' files are rewritten in place by renewals; a round reads them afresh.)
    fn clients_snapshot(setup: &Setup) -> Vec<IssuedCertificate> {
        let mut out = Vec::new();
        for k in 0..CLIENTS / 5 {
            for n in 0..5 {
                let sub = setup.dir.join(&format!("c{k}-{n}"));
                out.push(IssuedCertificate {
                    id: String::new(),
                    serial: String::new(),
                    fingerprint: String::new(),
                    cert: sub.join("client.crt"),
                    key: sub.join("client.key"),
                    ca: sub.join("ca.crt"),
                    created: serde_json::Value::Null,
                });
            }
        }
        out
    }
    assert_eq!(clients.len(), CLIENTS);
    check(port, &mut broker, &revoked, "before");

    // Rotating the issuing CA, in the README's order, a round after each step.
    fleetca(
        &setup.data,
        &["ca", "intermediate", "--new", "--common-name", "fleetca issuing CA 2"],
    )
    .expect_success("add the intermediate");
    check(port, &mut broker, &revoked, "intermediate added");
    drop(server);
    server = setup.start();
    check(port, &mut broker, &revoked, "restarted: the intermediate trusted");
    (broker, port) = update_broker(&server, dir, broker);
    check(port, &mut broker, &revoked, "the broker has the new bundle");
    drop(server);
    fleetca(&setup.data, &["ca", "activate", "3"]).expect_success("activate");
    server = setup.start();
    check(port, &mut broker, &revoked, "the new intermediate issues");
    for c in clients.iter().take(CLIENTS / 2) {
        setup.renew(c);
    }
    check(port, &mut broker, &revoked, "half renewed from the new intermediate");
    let renewed = std::fs::read_to_string(&clients[0].cert).expect("renewed");
    assert_eq!(
        renewed.matches("BEGIN CERTIFICATE").count(),
        2,
        "the certificate and its intermediate: {renewed}"
    );
    let issuer = fleetca_e2e::openssl([
        "x509",
        "-in",
        clients[0].cert.to_str().expect("UTF-8"),
        "-noout",
        "-issuer",
    ]);
    assert!(issuer.expect_success("issuer").contains("fleetca issuing CA 2"));
    // A revoked certificate of the new generation.
    let second_dir = dir.join("revoked-2");
    std::fs::create_dir_all(&second_dir).expect("dir");
    let second = server.issue_certificate(&admin, &spare_id, "revoked 2", &second_dir, "client");
    revoke(&server, &admin, &second, port, &mut broker);
    revoked.push(second);
    check(port, &mut broker, &revoked, "a revoked certificate of each generation");

    // The root rollover, in the README's order.
    drop(server);
    fleetca(&setup.data, &["ca", "root", "--common-name", "fleetca root CA 2"]).expect_success("fleetca ca root");
    server = setup.start();
    check(port, &mut broker, &revoked, "the new root trusted");
    (broker, port) = update_broker(&server, dir, broker);
    check(port, &mut broker, &revoked, "the broker has both roots");
    drop(server);
    fleetca(
        &setup.data,
        &["ca", "intermediate", "--new", "--common-name", "fleetca issuing CA 3"],
    )
    .expect_success("the new root's intermediate");
    server = setup.start();
    (broker, port) = update_broker(&server, dir, broker);
    check(port, &mut broker, &revoked, "its intermediate trusted");
    drop(server);
    fleetca(&setup.data, &["ca", "activate", "5"]).expect_success("activate the new root's intermediate");
    server = setup.start();
    check(port, &mut broker, &revoked, "the new hierarchy issues");
    for c in clients.iter().skip(CLIENTS / 2) {
        setup.renew(c);
    }
    check(
        port,
        &mut broker,
        &revoked,
        "the other half renewed from the new hierarchy",
    );
    // What they present now: the certificate, the new intermediate, and the new root
    // certified by the old one (so a broker that still trusts only the old root accepts them).
    let last = std::fs::read_to_string(&clients[CLIENTS - 1].cert).expect("renewed");
    assert_eq!(last.matches("BEGIN CERTIFICATE").count(), 3, "{last}");
    let issuer = fleetca_e2e::openssl([
        "x509",
        "-in",
        clients[CLIENTS - 1].cert.to_str().expect("UTF-8"),
        "-noout",
        "-issuer",
    ]);
    assert!(issuer.expect_success("issuer").contains("fleetca issuing CA 3"));
    let third_dir = dir.join("revoked-3");
    std::fs::create_dir_all(&third_dir).expect("dir");
    let third = server.issue_certificate(&admin, &spare_id, "revoked 3", &third_dir, "client");
    revoke(&server, &admin, &third, port, &mut broker);
    revoked.push(third);
    check(
        port,
        &mut broker,
        &revoked,
        "a revoked certificate of each of three generations",
    );
    assert!(broker.exited().is_none(), "mosquitto exited:\n{}", broker.log_tail(40));
    eprintln!("{rounds} rounds of {CLIENTS} connections, none refused");
}
