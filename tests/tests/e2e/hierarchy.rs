//! Bring your own root: fleetca makes an issuing intermediate's key and CSR, the operator's
//! root (made here with openssl, its key never shown to fleetca) signs it, fleetca imports
//! it and issues from it. A mosquitto that trusts only the operator's root accepts
//! fleetca's clients, and refuses one revoked on the intermediate's own CRL.

use std::process::Command;
use std::time::{Duration, Instant};

use fleetca_e2e::{Fleetca, Scratch, openssl_in, run, tool};

use crate::mosquitto::{assert_round_trip, broker_files, handshake, start_broker};

use fleetca_e2e::offline as fleetca;

#[test]
fn an_intermediate_signed_by_the_operators_root_issues_what_a_broker_trusting_only_that_root_accepts() {
    tool("mosquitto");
    for t in ["mosquitto_pub", "mosquitto_sub", "openssl"] {
        tool(t);
    }
    let dir = Scratch::new("hierarchy");
    let data = dir.join("data");

    // fleetca makes the key and the CSR; nothing is waiting before.
    let refused = fleetca(&data, &["ca", "intermediate", "--import", "x.pem", "--root", "y.pem"]);
    assert!(
        !refused.success(),
        "an import with no files succeeded: {}",
        refused.combined()
    );
    let csr = dir.join("intermediate.csr");
    fleetca(
        &data,
        &[
            "ca",
            "intermediate",
            "--csr-out",
            csr.to_str().expect("UTF-8"),
            "--common-name",
            "Acme issuing CA 1",
        ],
    )
    .expect_success("fleetca ca intermediate --csr-out");
    openssl_in(dir.path(), ["req", "-in", "intermediate.csr", "-noout", "-verify"])
        .expect_success("the CSR's self-signature verifies");

    // The operator's root, and its signature on the CSR with an issuing CA's extensions.
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
            "root.key",
            "-out",
            "root.pem",
            "-days",
            "3650",
            "-subj",
            "/CN=Acme Root/O=Acme",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ],
    )
    .expect_success("the operator's root");
    dir.write(
        "ext.cnf",
        "basicConstraints=critical,CA:TRUE,pathlen:0\nkeyUsage=critical,keyCertSign,cRLSign\n\
         subjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n",
        false,
    );
    openssl_in(
        dir.path(),
        [
            "x509",
            "-req",
            "-in",
            "intermediate.csr",
            "-CA",
            "root.pem",
            "-CAkey",
            "root.key",
            "-days",
            "1825",
            "-sha256",
            "-extfile",
            "ext.cnf",
            "-out",
            "intermediate.pem",
        ],
    )
    .expect_success("the root signs the intermediate");

    // A certificate that is not a CA is refused, saying why; the real one is imported.
    let path = |name: &str| dir.join(name).to_str().expect("UTF-8").to_owned();
    let wrong = fleetca(
        &data,
        &[
            "ca",
            "intermediate",
            "--import",
            &path("root.pem"),
            "--root",
            &path("root.pem"),
        ],
    );
    assert!(!wrong.success(), "the root imported as its own intermediate");
    fleetca(
        &data,
        &[
            "ca",
            "intermediate",
            "--import",
            &path("intermediate.pem"),
            "--root",
            &path("root.pem"),
        ],
    )
    .expect_success("fleetca ca intermediate --import");
    // A new installation's CAs are 1 (root) and 2 (its intermediate); the imported
    // intermediate is 3 and stands by, the operator's root is 4. Only an intermediate that
    // stands by can be made the issuing CA.
    let list = fleetca(&data, &["ca", "list"]);
    let listed = list.expect_success("fleetca ca list");
    assert!(
        listed
            .lines()
            .any(|l| l.starts_with("3 ") && l.contains("standby") && l.contains("Acme issuing CA 1")),
        "{listed}"
    );
    let refused = fleetca(&data, &["ca", "activate", "4"]);
    assert!(
        !refused.success() && refused.stderr.contains("only a standby intermediate"),
        "{}",
        refused.combined()
    );
    // Not before an instance has started with it (trusted, its CRL published): the README's
    // order. A start, then the activation, then the start that issues from it.
    let early = fleetca(&data, &["ca", "activate", "3"]);
    assert!(
        !early.success() && early.stderr.contains("never been published"),
        "{}",
        early.combined()
    );
    let mut first = Fleetca::start(&data);
    let standby_crl = first.get("/crl/3.pem", None);
    assert_eq!(standby_crl.status, 200, "a standby intermediate's CRL is published");
    first.stop(Duration::from_secs(10));
    fleetca(&data, &["ca", "activate", "3"]).expect_success("fleetca ca activate 3");
    let list = fleetca(&data, &["ca", "list"]);
    let listed = list.expect_success("fleetca ca list");
    assert!(
        listed
            .lines()
            .any(|l| l.starts_with("3 ") && l.contains("active") && l.contains("Acme issuing CA 1")),
        "{listed}"
    );
    // The intermediate it replaces signed nothing: retired at once (it leaves the bundle and
    // its CRL is no longer published).
    assert!(
        listed
            .lines()
            .any(|l| l.starts_with("2 ") && l.contains("retired") && l.contains("fleetca")),
        "{listed}"
    );
    assert!(
        listed
            .lines()
            .any(|l| l.contains("Acme Root") && l.contains("standby") && l.contains(" no ")),
        "fleetca holds no key of the operator's root: {listed}"
    );
    let database = std::fs::read(data.join("fleetca.db")).expect("the database");
    let root_key = std::fs::read_to_string(dir.join("root.key")).expect("root key");
    let root_key_body: String = root_key.lines().filter(|l| !l.starts_with("-----")).collect();
    assert!(
        !String::from_utf8_lossy(&database).contains(&root_key_body[..40]),
        "the root's key is in the database"
    );

    let crl_file = dir.join("crl.pem");
    let reload = format!(
        "kill -HUP $(cat {}) 2>/dev/null || true",
        dir.join("mosquitto.pid").display()
    );
    let server = Fleetca::start_with(
        &data,
        &[
            "--crl-file",
            crl_file.to_str().expect("UTF-8"),
            "--crl-reload-command",
            &reload,
        ],
        &[],
    );
    let admin = server.admin_token();

    // The broker's certificate: a full chain; the broker trusts only the operator's root.
    let created = broker_files(&server, &admin, &dir);
    let text = |k: &str| {
        created[k]
            .as_str()
            .unwrap_or_else(|| panic!("no {k} in {created}"))
            .to_owned()
    };
    // What clients trust: every root not retired, fleetca's own and the operator's.
    let roots = text("ca_certificate_pem");
    assert_eq!(roots.matches("BEGIN CERTIFICATE").count(), 2, "{roots}");
    assert!(
        roots.contains(dir.read("root.pem").trim()),
        "ca_certificate_pem lacks the operator's root"
    );
    dir.write("ca.crt", &dir.read("root.pem"), false);
    assert_eq!(
        text("chain_pem").trim(),
        dir.read("intermediate.pem").trim(),
        "chain_pem is the intermediate"
    );

    // /ca.pem is the trust bundle: both roots and the intermediate that issues.
    let bundle = run(
        Command::new(tool("curl")).args(["-sf", &server.url("/ca.pem")]),
        Duration::from_secs(10),
    );
    assert_eq!(
        bundle.stdout.matches("BEGIN CERTIFICATE").count(),
        3,
        "{}",
        bundle.stdout
    );
    // The CRL file holds every CRL fleetca signs: its root's, the new intermediate's own and
    // its 16 shards'.
    assert_eq!(dir.read("crl.pem").matches("BEGIN X509 CRL").count(), 18);

    let (mut broker, port) = start_broker(&dir);

    let key = server.create_api_key(&admin, "svc-byo-root", "nnn.acme");
    let key_id = key["id"].as_str().expect("id");
    let a = server.issue_certificate(&admin, key_id, "client A", dir.path(), "a");
    let b = server.issue_certificate(&admin, key_id, "client B", dir.path(), "b");
    let a_leaf = a.created["certificate_pem"].as_str().expect("pem");
    dir.write("a-leaf.crt", a_leaf, false);
    let issuer = openssl_in(
        dir.path(),
        [
            "x509",
            "-in",
            "a-leaf.crt",
            "-noout",
            "-issuer",
            "-ext",
            "crlDistributionPoints",
        ],
    );
    let facts = issuer.expect_success("the leaf's issuer");
    assert!(facts.contains("Acme issuing CA 1"), "{facts}");
    let dp = fleetca_e2e::distribution_point(&dir.join("a-leaf.crt"));
    assert!(
        dp.starts_with(&server.url("/crl/3/")),
        "the DP names a shard of the intermediate's CRL: {dp}"
    );
    openssl_in(
        dir.path(),
        [
            "verify",
            "-x509_strict",
            "-CAfile",
            "root.pem",
            "-untrusted",
            "intermediate.pem",
            "a-leaf.crt",
        ],
    )
    .expect_success("openssl verifies the chain to the operator's root");

    assert_round_trip(&dir, port, &a, "hello through the operator's root");

    // Revoked: listed on the intermediate's CRL, and mosquitto refuses it.
    let started = Instant::now();
    server.revoke(&admin, &a.id, "keyCompromise");
    loop {
        let out = handshake(port, &a);
        if out.combined().contains("certificate revoked") {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "mosquitto still accepts the revoked certificate:\n{}\n{}",
            out.combined(),
            broker.log_tail(30)
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let crl = run(
        Command::new(tool("curl"))
            .args(["-sf", "-o"])
            .arg(dir.join("int.crl"))
            .arg(&dp),
        Duration::from_secs(10),
    );
    assert!(crl.success(), "{}", crl.combined());
    let listed = openssl_in(
        dir.path(),
        ["crl", "-inform", "DER", "-in", "int.crl", "-noout", "-text"],
    );
    let listed = listed.expect_success("the intermediate's CRL shard");
    assert!(listed.contains("Acme issuing CA 1"), "{listed}");
    assert!(listed.to_lowercase().contains(&a.serial.to_lowercase()), "{listed}");
    assert_round_trip(&dir, port, &b, "B still works");
    assert!(broker.exited().is_none(), "mosquitto exited:\n{}", broker.log_tail(40));
}

/// `ca_key_algorithm = "p384"`: the first start's root and intermediate are P-384 and sign
/// with SHA-384; what they issue verifies with openssl against the bundle and every CRL, and
/// a revoked certificate is refused.
#[test]
fn a_p384_installation_signs_with_sha384_and_its_chain_and_crls_verify() {
    installation_of("p384", "ecdsa-with-SHA384", "NIST CURVE: P-384");
}

/// The same with `ca_key_algorithm = "rsa4096"`: RSA CAs sign with sha256WithRSAEncryption.
/// (The conformance run's PostgreSQL installation has RSA-3072 CAs, linted by pkilint.)
#[test]
fn an_rsa_installation_signs_with_sha256_with_rsa_and_its_chain_and_crls_verify() {
    installation_of("rsa4096", "sha256WithRSAEncryption", "Public-Key: (4096 bit)");
}

/// An installation whose CAs have `algorithm` keys: its certificates are signed with
/// `signature`, the bundle's two CAs show `key`, the chain and the CRLs verify, and a revoked
/// certificate is refused.
fn installation_of(algorithm: &str, signature: &str, key: &str) {
    tool("openssl");
    tool("curl");
    let dir = Scratch::new(algorithm);
    let data = dir.join("data");
    let settings = dir.write("fleetca.toml", &format!("ca_key_algorithm = \"{algorithm}\"\n"), false);
    let server = Fleetca::start_with(&data, &["--config", settings.to_str().expect("UTF-8")], &[]);
    let admin = server.admin_token();
    let api_key = server.create_api_key(&admin, "svc-algorithm", "nnn.acme");
    let key_id = api_key["id"].as_str().expect("id");
    let a = server.issue_certificate(&admin, key_id, "client A", dir.path(), "a");
    let b = server.issue_certificate(&admin, key_id, "client B", dir.path(), "b");
    assert!(a.cert.ends_with("a.crt"));
    let text = openssl_in(dir.path(), ["x509", "-in", "a.crt", "-noout", "-text"]);
    let text = text.expect_success("openssl x509");
    assert!(text.contains(signature), "{text}");
    dir.write("bundle.pem", &server.get("/ca.pem", None).body, false);
    let chain = openssl_in(dir.path(), ["storeutl", "-noout", "-text", "-certs", "bundle.pem"]);
    let chain = chain.expect_success("the bundle");
    assert_eq!(chain.matches(key).count(), 2, "root and intermediate: {chain}");
    server.revoke(&admin, &b.id, "keyCompromise");
    dir.write("crls.pem", &server.get("/crl.pem", None).body, false);
    openssl_in(
        dir.path(),
        [
            "verify",
            "-x509_strict",
            "-crl_check_all",
            "-CAfile",
            "bundle.pem",
            "-CRLfile",
            "crls.pem",
            "a.crt",
        ],
    )
    .expect_success("openssl verifies the chain and its CRLs");
    let refused = openssl_in(
        dir.path(),
        [
            "verify",
            "-crl_check_all",
            "-CAfile",
            "bundle.pem",
            "-CRLfile",
            "crls.pem",
            "b.crt",
        ],
    );
    assert!(
        !refused.success() && refused.combined().contains("certificate revoked"),
        "{}",
        refused.combined()
    );
}

/// An intermediate whose key is compromised, after the issuing CA moved on: the admin API
/// revokes it and every certificate it signed (`cACompromise`). Its root's CRL lists it at
/// once and after a restart, `openssl verify -crl_check_all` refuses a certificate it signed
/// with the CRLs fleetca now publishes, and from the restart the bundle leaves it out.
#[test]
fn a_compromised_intermediate_is_revoked_with_everything_it_signed() {
    tool("openssl");
    let dir = Scratch::new("revoke-ca");
    let data = dir.join("data");
    // One public URL across restarts: the CRLs' scope (their distribution point) is the
    // same as the certificates'.
    let start = || Fleetca::start_with(&data, &["--public-url", "http://fleetca.test"], &[]);
    let mut server = start();
    let admin = server.admin_token();
    let key = server.create_api_key(&admin, "svc-revoke-ca", "nnn.acme");
    let key_id = key["id"].as_str().expect("id");
    let a = server.issue_certificate(&admin, key_id, "client A", dir.path(), "a");
    let old_bundle = server.get("/ca.pem", None).body;
    dir.write("old-bundle.pem", &old_bundle, false);
    let ca2 = a.created["chain_pem"].as_str().expect("chain_pem").to_owned();
    dir.write("ca2.pem", &ca2, false);
    server.stop(Duration::from_secs(10));

    // The README's rotation: a new intermediate, a start (its CRL published), activation, a
    // start that issues from it. CA 2 signed A, so it retires rather than retired.
    fleetca(&data, &["ca", "intermediate", "--new"]).expect_success("fleetca ca intermediate --new");
    start().stop(Duration::from_secs(10));
    fleetca(&data, &["ca", "activate", "3"]).expect_success("fleetca ca activate 3");
    let mut server = start();
    let refused = server.post(
        "/api/v4/manage/ca/3/revoke/",
        Some(&admin),
        &serde_json::json!({"reason": "keyCompromise"}),
    );
    assert_eq!(refused.status, 409, "the issuing CA was revoked: {}", refused.body);

    let revoked = server
        .post(
            "/api/v4/manage/ca/2/revoke/",
            Some(&admin),
            &serde_json::json!({"reason": "keyCompromise"}),
        )
        .expect_json(200, "revoking CA 2");
    assert_eq!(revoked["certificates_revoked"], 1, "{revoked}");
    assert_eq!(revoked["listed_by_root"], true, "{revoked}");
    let serial = revoked["serial"].as_str().expect("serial").to_owned();
    let record = server
        .get(&format!("/api/v4/manage/mqtt-certificates/{}/", a.id), Some(&admin))
        .expect_json(200, "A");
    assert_eq!(record["status"], "revoked", "{record}");
    assert_eq!(record["reason"], "cACompromise", "{record}");

    let root_lists = |server: &Fleetca, when: &str| {
        dir.write("crls.pem", &server.get("/crl.pem", None).body, false);
        let text = openssl_in(dir.path(), ["crl", "-in", "crls.pem", "-noout", "-text"]);
        let text = text.expect_success("the root's CRL");
        assert!(
            text.to_lowercase().replace(':', "").contains(&serial.to_lowercase()),
            "{when}: the root's CRL does not list {serial}:\n{text}"
        );
    };
    root_lists(&server, "at once");
    // With the bundle a broker loaded before, and the CRLs now: A is refused.
    let verify = openssl_in(
        dir.path(),
        [
            "verify",
            "-crl_check_all",
            "-CAfile",
            "old-bundle.pem",
            "-CRLfile",
            "crls.pem",
            "a.crt",
        ],
    );
    assert!(
        !verify.success() && verify.combined().contains("certificate revoked"),
        "{}",
        verify.combined()
    );
    server.stop(Duration::from_secs(10));

    let list = fleetca(&data, &["ca", "list"]);
    let listed = list.expect_success("fleetca ca list");
    assert!(
        listed.lines().any(|l| l.starts_with("2 ") && l.contains("revoked")),
        "{listed}"
    );
    let server = start();
    root_lists(&server, "after a restart");
    let bundle = server.get("/ca.pem", None).body;
    assert!(!bundle.contains(ca2.trim()), "the bundle still trusts the revoked CA");
}
