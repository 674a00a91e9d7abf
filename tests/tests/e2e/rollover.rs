//! A root rollover (RFC 4210 §4.4) in the README's order, on a real mosquitto: a new root
//! with its cross-certificates, its issuing intermediate, the activation. A broker that still
//! trusts only the old root accepts clients of both generations (the new ones present the
//! new root certified by the old, "new with old"); once the broker has the new bundle and a
//! server certificate of the new hierarchy, a device that trusts only the old root still
//! verifies it; a revoked certificate of either generation is refused.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use fleetca_e2e::{Fleetca, IssuedCertificate, Scratch, openssl_in, run, tool};

use crate::mosquitto::{assert_round_trip, handshake, start_broker};

use fleetca_e2e::offline as fleetca;

/// Every start names its CRLs under one public URL, as a real installation does (each test
/// server otherwise takes its own port's): a certificate's distribution point must stay the
/// one its CA's CRL names across restarts.
const PUBLIC: [(&str, &str); 1] = [("FLEETCA_PUBLIC_URL", "http://fleetca.test")];

/// A restart of fleetca: it trusts what was added and publishes its CRLs.
fn restart(data: &Path) {
    let mut server = Fleetca::start_with(data, &[], &PUBLIC);
    server.stop(Duration::from_secs(10));
}

/// The broker's server certificate and key as fleetca issues them now (the certificate and
/// its chain in `server.crt`).
fn server_certificate(server: &Fleetca, admin: &str, dir: &Scratch) {
    let created = server
        .post(
            "/api/v4/manage/server-certificates/",
            Some(admin),
            &serde_json::json!({"dns_names": ["localhost"], "ip_addresses": ["127.0.0.1"]}),
        )
        .expect_json(201, "the broker's server certificate");
    let text = |k: &str| created[k].as_str().unwrap_or_default().to_owned();
    dir.write("server.crt", &(text("certificate_pem") + &text("chain_pem")), false);
    dir.write("server.key", &text("private_key_pem"), true);
}

/// Waits until mosquitto refuses `client` as revoked (its CRL file reloaded).
fn until_refused(port: u16, client: &IssuedCertificate, broker: &mut fleetca_e2e::Daemon) {
    let started = Instant::now();
    loop {
        let out = handshake(port, client);
        if out.combined().contains("certificate revoked") {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "mosquitto still accepts the revoked certificate:\n{}\n{}",
            out.combined(),
            broker.log_tail(30)
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_root_rollover_keeps_both_generations_connected_and_refuses_revoked_certificates_of_either() {
    tool("mosquitto");
    for t in ["mosquitto_pub", "mosquitto_sub", "openssl", "curl"] {
        tool(t);
    }
    let dir = Scratch::new("rollover");
    let data = dir.join("data");
    let crl_file = dir.join("crl.pem");
    let reload = format!(
        "kill -HUP $(cat {}) 2>/dev/null || true",
        dir.join("mosquitto.pid").display()
    );
    let crl_args = [
        "--crl-file",
        crl_file.to_str().expect("UTF-8"),
        "--crl-reload-command",
        reload.as_str(),
    ];

    // Before: a new installation (root CA 1, issuing CA 2), a device of it, the broker's
    // certificate, and the old root — all a not-yet-updated device or broker trusts.
    let server = Fleetca::start_with(&data, &crl_args, &PUBLIC);
    let admin = server.admin_token();
    let key = server.create_api_key(&admin, "svc-rollover", "nnn.acme");
    let key_id = key["id"].as_str().expect("id").to_owned();
    let mut old = server.issue_certificate(&admin, &key_id, "old generation", dir.path(), "old");
    let old_root = old.created["ca_certificate_pem"].as_str().expect("roots").to_owned();
    dir.write("old-root.pem", &old_root, false);
    old.ca = dir.join("old-root.pem");
    server_certificate(&server, &admin, &dir);
    drop(server);

    // The rollover, in the README's order.
    let rolled = fleetca(&data, &["ca", "root", "--common-name", "fleetca root CA 2"]);
    let said = rolled.expect_success("fleetca ca root").to_owned();
    assert!(
        said.contains("root CA 3") && !said.contains("old with new only"),
        "{said}"
    );
    let again = fleetca(&data, &["ca", "root"]);
    assert!(
        !again.success() && again.stderr.contains("already the new root"),
        "a second rollover under way: {}",
        again.combined()
    );
    restart(&data);
    fleetca(
        &data,
        &["ca", "intermediate", "--new", "--common-name", "fleetca issuing CA 2"],
    )
    .expect_success("the new root's intermediate");
    restart(&data);
    fleetca(&data, &["ca", "activate", "4"]).expect_success("fleetca ca activate 4");
    let listed = fleetca(&data, &["ca", "list"]);
    let listed = listed.expect_success("fleetca ca list");
    for (id, state) in [
        ("1 ", "retiring"),
        ("2 ", "retiring"),
        ("3 ", "standby"),
        ("4 ", "active"),
    ] {
        assert!(
            listed.lines().any(|l| l.starts_with(id) && l.contains(state)),
            "CA {id}is {state}: {listed}"
        );
    }

    let server = Fleetca::start_with(&data, &crl_args, &PUBLIC);
    let mut new = server.issue_certificate(&admin, &key_id, "new generation", dir.path(), "new");
    new.ca = dir.join("old-root.pem");
    // Its chain: the new intermediate, then the new root certified by the old one.
    let chain = new.created["chain_pem"].as_str().expect("chain").to_owned();
    assert_eq!(chain.matches("BEGIN CERTIFICATE").count(), 2, "{chain}");
    dir.write(
        "new-leaf.pem",
        new.created["certificate_pem"].as_str().expect("pem"),
        false,
    );
    dir.write("new-chain.pem", &chain, false);
    openssl_in(
        dir.path(),
        [
            "verify",
            "-x509_strict",
            "-CAfile",
            "old-root.pem",
            "-untrusted",
            "new-chain.pem",
            "new-leaf.pem",
        ],
    )
    .expect_success("a device trusting only the old root verifies the new generation");
    // The bundle: both roots, both cross-certificates, the intermediates still in use.
    let bundle = server.get("/ca.pem", None);
    assert_eq!(bundle.body.matches("BEGIN CERTIFICATE").count(), 6, "{}", bundle.body);
    // EST's /cacerts: the same certificates, for EST clients building their chain.
    let cacerts = run(
        Command::new(tool("curl"))
            .args(["-sf", "-o"])
            .arg(dir.join("cacerts.p7"))
            .arg(server.url("/.well-known/est/cacerts")),
        Duration::from_secs(10),
    );
    assert!(cacerts.success(), "{}", cacerts.combined());
    let listed = openssl_in(
        dir.path(),
        ["base64", "-d", "-A", "-in", "cacerts.p7", "-out", "cacerts.der"],
    );
    listed.expect_success("base64");
    let certs = openssl_in(
        dir.path(),
        [
            "pkcs7",
            "-inform",
            "DER",
            "-in",
            "cacerts.der",
            "-print_certs",
            "-noout",
        ],
    );
    let certs = certs.expect_success("openssl pkcs7");
    assert_eq!(certs.matches("subject=").count(), 6, "{certs}");

    // A broker not yet updated: it trusts the old root only, and presents its old
    // certificate. Both generations connect.
    dir.write("ca.crt", &old_root, false);
    let (broker, port) = start_broker(&dir);
    assert_round_trip(&dir, port, &old, "old generation, old broker");
    assert_round_trip(&dir, port, &new, "new generation, old broker");
    drop(broker);

    // The broker updated as the README says: the new bundle, a certificate of the new
    // hierarchy. A device that still trusts only the old root verifies it through "new with
    // old"; both generations connect.
    dir.write("ca.crt", &bundle.body, false);
    server_certificate(&server, &admin, &dir);
    let (mut broker, port) = start_broker(&dir);
    assert_round_trip(&dir, port, &old, "old generation, updated broker");
    assert_round_trip(&dir, port, &new, "new generation, updated broker");

    // A revoked certificate of either generation is refused, from its own CA's CRL.
    server.revoke(&admin, &new.id, "keyCompromise");
    until_refused(port, &new, &mut broker);
    server.revoke(&admin, &old.id, "keyCompromise");
    until_refused(port, &old, &mut broker);
    assert!(broker.exited().is_none(), "mosquitto exited:\n{}", broker.log_tail(40));
}
