//! An issuing CA whose key lives in a PKCS#11 token: SoftHSM2, initialised here, as an HSM
//! would be. The key is made in the token (never extractable), a thousand certificates and
//! a CRL are signed through it, the database holds only its label, and a token that goes
//! away makes `/readyz` and issuance 503 until it returns — then fleetca recovers by itself.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use fleetca_e2e::{Fleetca, Output, Scratch, binary, distribution_point, openssl_in, run, tool};

/// Debian's softhsm2 package puts the module here.
const MODULE: &str = "/usr/lib/softhsm/libsofthsm2.so";
const TOKEN: &str = "fleetca-e2e";
const PIN: &str = "Qx9-pin-of-e2e";

/// `fleetca --data-dir DATA --config SETTINGS <args>` with the token's configuration in the
/// environment (and `extra`), every `FLEETCA_*` variable of the test's own removed.
fn fleetca(data: &Path, settings: &Path, softhsm: &Path, extra: &[(&str, &str)], args: &[&str]) -> Output {
    let mut cmd = Command::new(binary());
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("FLEETCA_") {
            cmd.env_remove(key);
        }
    }
    cmd.arg("--data-dir")
        .arg(data)
        .arg("--config")
        .arg(settings)
        .args(args)
        .env("NO_COLOR", "1")
        .env("SOFTHSM2_CONF", softhsm);
    for (k, v) in extra {
        cmd.env(k, v);
    }
    run(&mut cmd, Duration::from_secs(60))
}

fn settings(dir: &Scratch, name: &str, token: &str) -> std::path::PathBuf {
    dir.write(
        name,
        &format!(
            "[pkcs11]\nmodule = \"{MODULE}\"\ntoken = \"{token}\"\npin_file = \"{}\"\n",
            dir.join("pin").display()
        ),
        false,
    )
}

#[test]
fn an_issuing_ca_in_a_pkcs11_token_signs_certificates_and_crls_and_survives_the_token_going_away() {
    let softhsm_util = tool("softhsm2-util");
    tool("openssl");
    tool("curl");
    tool("python3");
    assert!(
        Path::new(MODULE).exists(),
        "the end-to-end tests need SoftHSM2's module {MODULE}: apt-get install -y softhsm2 (scripts/test does)"
    );
    let dir = Scratch::new("hsm");
    let data = dir.join("data");
    std::fs::create_dir_all(dir.join("tokens")).expect("token dir");
    let softhsm = dir.write(
        "softhsm2.conf",
        &format!(
            "directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\n",
            dir.join("tokens").display()
        ),
        false,
    );
    let init = run(
        Command::new(&softhsm_util)
            .args([
                "--init-token",
                "--free",
                "--label",
                TOKEN,
                "--pin",
                PIN,
                "--so-pin",
                "1234567",
            ])
            .env("SOFTHSM2_CONF", &softhsm),
        Duration::from_secs(30),
    );
    init.expect_success("softhsm2-util --init-token");
    dir.write("pin", &format!("{PIN}\n"), true);
    let good = settings(&dir, "fleetca.toml", TOKEN);

    // A token that is not there, or a wrong PIN: a clear error naming the module and slot.
    let absent = settings(&dir, "absent.toml", "no-such-token");
    let out = fleetca(&data, &absent, &softhsm, &[], &["ca", "list"]);
    assert!(!out.success(), "started without its token: {}", out.combined());
    assert!(
        out.stderr.contains(MODULE) && out.stderr.contains("no-such-token") && out.stderr.contains(TOKEN),
        "the error names neither the module nor the slots it has: {}",
        out.stderr
    );
    let out = fleetca(
        &data,
        &good,
        &softhsm,
        &[("FLEETCA_PKCS11_PIN", "0000")],
        &["ca", "list"],
    );
    assert!(
        !out.success() && out.stderr.contains("refused the PIN") && out.stderr.contains("slot"),
        "a wrong PIN: {}",
        out.combined()
    );

    // The intermediate's key is made in the token; nothing of it is in the database.
    fleetca(
        &data,
        &good,
        &softhsm,
        &[],
        &[
            "ca",
            "intermediate",
            "--new",
            "--token-key",
            "issuing-hsm",
            "--common-name",
            "HSM issuing CA",
        ],
    )
    .expect_success("fleetca ca intermediate --new --token-key");
    // Each CA its own key: the label of CA 3's is refused for another.
    let again = fleetca(
        &data,
        &good,
        &softhsm,
        &[],
        &["ca", "intermediate", "--new", "--token-key", "issuing-hsm"],
    );
    assert!(
        !again.success() && again.stderr.contains("CA 3's key has the label"),
        "{}",
        again.combined()
    );
    let listed = fleetca(&data, &good, &softhsm, &[], &["ca", "token"]);
    let listed = listed.expect_success("fleetca ca token");
    assert!(
        listed.lines().any(|l| l.starts_with("issuing-hsm ")
            && l.contains("EC P-256")
            && l.contains("never")
            && l.ends_with("CA 3")),
        "the token's key, never extractable, used by CA 3: {listed}"
    );
    let stored = run(
        Command::new(tool("python3")).args([
            "-c",
            "import sqlite3,sys; r=sqlite3.connect(sys.argv[1]).execute('select length(sealed_key), key_token, key_label from authority where id=3').fetchone(); print('|'.join(map(str, r)))",
            data.join("fleetca.db").to_str().expect("UTF-8"),
        ]),
        Duration::from_secs(10),
    );
    assert_eq!(
        stored.expect_success("reading the database").trim(),
        format!("0|{TOKEN}|issuing-hsm"),
        "the database holds the key's label, no key"
    );

    // The README's order: a start (trusted, its CRL published), the activation, a start.
    let env = [("SOFTHSM2_CONF", softhsm.to_str().expect("UTF-8"))];
    let args = ["--config", good.to_str().expect("UTF-8")];
    let mut first = Fleetca::start_with(&data, &args, &env);
    first.stop(Duration::from_secs(10));
    fleetca(&data, &good, &softhsm, &[], &["ca", "activate", "3"]).expect_success("fleetca ca activate 3");
    let mut server = Fleetca::start_with(&data, &args, &env);
    let admin = server.admin_token();

    // A thousand certificates, 16 requests in flight, all signed through the token.
    let mut requests = Vec::new();
    for i in 0..100 {
        let key = server.create_api_key(&admin, &format!("hsm-{i:03}"), "acme");
        let id = key["id"].as_str().expect("id");
        for j in 0..10 {
            requests.push(format!(
                "url = \"{}\"\nrequest = \"POST\"\nheader = \"Authorization: Bearer {admin}\"\nheader = \"Content-Type: application/json\"\ndata = \"{{\\\"name\\\":\\\"hsm\\\",\\\"api_key_id\\\":\\\"{id}\\\"}}\"\noutput = \"{}\"\nwrite-out = \"%{{http_code}}\\n\"\n",
                server.url("/api/v4/manage/mqtt-certificates/"),
                dir.join(&format!("c{:04}.json", i * 10 + j)).display()
            ));
        }
    }
    dir.write("requests.curl", &requests.join("next\n"), true);
    let started = Instant::now();
    let issued = run(
        Command::new(tool("curl"))
            .args(["-s", "--parallel", "--parallel-max", "16", "-K"])
            .arg(dir.join("requests.curl")),
        Duration::from_secs(300),
    );
    let took = started.elapsed();
    let codes = issued.expect_success("curl --parallel");
    assert_eq!(
        codes.lines().filter(|c| *c == "201").count(),
        1000,
        "every issuance answered 201: {codes}"
    );
    eprintln!("1000 certificates signed through SoftHSM in {took:?}");
    let mut leaves = Vec::new();
    let mut chain = String::new();
    let mut roots = String::new();
    let mut first_id = String::new();
    for n in 0..1000 {
        let body: serde_json::Value = serde_json::from_str(&dir.read(&format!("c{n:04}.json"))).expect("a JSON answer");
        let name = format!("leaf{n:04}.pem");
        dir.write(&name, body["certificate_pem"].as_str().expect("certificate_pem"), false);
        leaves.push(name);
        chain = body["chain_pem"].as_str().expect("chain_pem").to_owned();
        roots = body["ca_certificate_pem"].as_str().expect("roots").to_owned();
        if n == 0 {
            first_id = body["id"].as_str().expect("id").to_owned();
        }
    }
    dir.write("chain.pem", &chain, false);
    dir.write("roots.pem", &roots, false);
    let mut verify = vec![
        "verify",
        "-x509_strict",
        "-CAfile",
        "roots.pem",
        "-untrusted",
        "chain.pem",
    ];
    verify.extend(leaves.iter().map(String::as_str));
    let verified = openssl_in(dir.path(), verify);
    let verified = verified.expect_success("openssl verify of the thousand");
    assert_eq!(
        verified.lines().filter(|l| l.ends_with(": OK")).count(),
        1000,
        "{verified}"
    );
    let issuer = openssl_in(dir.path(), ["x509", "-in", "leaf0000.pem", "-noout", "-issuer"]);
    assert!(issuer.expect_success("issuer").contains("HSM issuing CA"));

    // The CRL is signed through the token too, and the shard the certificate names lists it.
    let revoked = server.revoke(&admin, &first_id, "keyCompromise");
    let serial = revoked["serial"].as_str().expect("serial").to_uppercase();
    let dp = distribution_point(&dir.join("leaf0000.pem"));
    assert!(dp.contains("/crl/3/"), "{dp} is not a shard of CA 3's CRL");
    let fetched = run(
        Command::new(tool("curl"))
            .args(["-sf", "-o"])
            .arg(dir.join("crl3.der"))
            .arg(&dp),
        Duration::from_secs(10),
    );
    fetched.expect_success("GET the first leaf's CRL shard");
    let crl = openssl_in(
        dir.path(),
        [
            "crl",
            "-inform",
            "DER",
            "-in",
            "crl3.der",
            "-noout",
            "-text",
            "-verify",
            "-CAfile",
            "chain.pem",
        ],
    );
    let crl = crl.expect_success("openssl crl -verify");
    assert!(crl.contains("verify OK") || crl.contains("HSM issuing CA"), "{crl}");
    assert!(crl.contains(&serial), "the CRL lacks {serial}: {crl}");
    openssl_in(
        dir.path(),
        ["crl", "-inform", "DER", "-in", "crl3.der", "-out", "crl3.pem"],
    )
    .expect_success("PEM");
    dir.write("trust.pem", &format!("{roots}{chain}"), false);
    let refused = openssl_in(
        dir.path(),
        [
            "verify",
            "-crl_check",
            "-CAfile",
            "trust.pem",
            "-CRLfile",
            "crl3.pem",
            "leaf0000.pem",
        ],
    );
    assert!(
        !refused.success() && refused.combined().contains("certificate revoked"),
        "{}",
        refused.combined()
    );

    // The token goes away (its store moved): not ready, and issuance is a 503 problem.
    let tokens = dir.join("tokens");
    let away = dir.join("away");
    std::fs::rename(&tokens, &away).expect("moving the token away");
    std::fs::create_dir_all(&tokens).expect("an empty token dir");
    let ready = server.get("/readyz", None);
    assert_eq!(ready.status, 503, "{}", ready.body);
    assert_eq!(ready.json()["ca_key"], false, "{}", ready.body);
    let key = server.create_api_key(&admin, "hsm-late", "acme");
    let body = serde_json::json!({"name": "late", "api_key_id": key["id"]});
    let refused = server.post("/api/v4/manage/mqtt-certificates/", Some(&admin), &body);
    assert_eq!(refused.status, 503, "{}", refused.body);
    assert!(refused.body.contains("PKCS#11"), "{}", refused.body);
    // It returns: fleetca reconnects by itself.
    std::fs::remove_dir(&tokens).expect("removing the empty dir");
    std::fs::rename(&away, &tokens).expect("moving the token back");
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let ready = server.get("/readyz", None);
        if ready.status == 200 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "not ready again after the token returned: {}",
            ready.body
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    server
        .post("/api/v4/manage/mqtt-certificates/", Some(&admin), &body)
        .expect_json(201, "issuance after the token returned");
    assert!(
        !server.stderr().contains("panicked"),
        "fleetca panicked: {}",
        server.stderr()
    );
    assert!(!server.stderr().contains(PIN), "the PIN is in the log");
    server.stop(Duration::from_secs(10));

    // A root rollover whose new root's key is made in the token too: the token signs the new
    // root's own certificate, its cross-certificate of the old root, and the next
    // intermediate; the database holds only the labels.
    fleetca(
        &data,
        &good,
        &softhsm,
        &[],
        &["ca", "root", "--common-name", "HSM root 2", "--token-key", "root-hsm"],
    )
    .expect_success("fleetca ca root --token-key");
    fleetca(
        &data,
        &good,
        &softhsm,
        &[],
        &["ca", "intermediate", "--new", "--common-name", "HSM issuing 2"],
    )
    .expect_success("an intermediate under the new root");
    let listed = fleetca(&data, &good, &softhsm, &[], &["ca", "token"]);
    let listed = listed.expect_success("fleetca ca token");
    assert!(
        listed
            .lines()
            .any(|l| l.starts_with("root-hsm ") && l.contains("never") && l.ends_with("CA 4")),
        "the new root's key, never extractable, used by CA 4: {listed}"
    );
    let rows = run(
        Command::new(tool("python3")).args([
            "-c",
            "import sqlite3,sys\nfor i,k,l,p in sqlite3.connect(sys.argv[1]).execute('select id, length(sealed_key), key_label, certificate_pem from authority where id in (4,5) order by id'):\n  open(f'{sys.argv[2]}/ca{i}.pem','w').write(p); print(i,k,l)",
            data.join("fleetca.db").to_str().expect("UTF-8"),
            dir.path().to_str().expect("UTF-8"),
        ]),
        Duration::from_secs(10),
    );
    let rows = rows.expect_success("reading the database");
    assert!(
        rows.lines().any(|l| l == "4 0 root-hsm"),
        "the root's key is in the token only: {rows}"
    );
    openssl_in(dir.path(), ["verify", "-x509_strict", "-CAfile", "ca4.pem", "ca4.pem"])
        .expect_success("the token signed the new root's own certificate");
    openssl_in(dir.path(), ["verify", "-x509_strict", "-CAfile", "ca4.pem", "ca5.pem"])
        .expect_success("the token signed the intermediate under the new root");
}
