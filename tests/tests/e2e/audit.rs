//! `fleetca audit verify` on the real data directory: intact after real changes, and a
//! record edited in the SQLite file (with Python's sqlite3, as an intruder would) is named.

use std::process::Command;
use std::time::Duration;

use fleetca_e2e::{Fleetca, Scratch, binary, run, tool};
use serde_json::json;

/// `fleetca audit verify` on a data directory.
fn verify(data: &std::path::Path) -> fleetca_e2e::Output {
    run(
        Command::new(binary())
            .args(["audit", "verify", "--data-dir"])
            .arg(data)
            .env_remove("FLEETCA_DATABASE_URL"),
        Duration::from_secs(30),
    )
}

#[test]
fn audit_verify_names_the_record_an_intruder_edited() {
    let dir = Scratch::new("audit");
    let data = dir.join("data");
    let server = Fleetca::start(&data);
    let admin = server.admin_token();
    let key = server.create_api_key(&admin, "svc-audit", "acme");
    let cert = server.issue_certificate(&admin, key["id"].as_str().unwrap(), "a", dir.path(), "a");
    server.revoke(&admin, &cert.id, "keyCompromise");
    server
        .post(
            "/api/v4/manage/devices/",
            Some(&admin),
            &json!({"device_id": "d1", "tenant": "acme", "password": "device-secret-1"}),
        )
        .expect_json(201, "a device");
    drop(server);

    let verify = || verify(&data);
    let ok = verify();
    assert!(ok.success(), "{}", ok.combined());
    assert!(ok.stdout.contains("audit log intact: 5 records"), "{}", ok.combined());

    let edit = run(
        Command::new(tool("python3")).args([
            "-c",
            "import sqlite3,sys; c=sqlite3.connect(sys.argv[1]); \
             c.execute(\"UPDATE audit_log SET details = '{}' WHERE action = 'certificate.revoke'\"); c.commit()",
            data.join("fleetca.db").to_str().unwrap(),
        ]),
        Duration::from_secs(30),
    );
    edit.expect_success("editing the audit log");
    let broken = verify();
    assert!(!broken.success(), "a tampered log verified:\n{}", broken.combined());
    assert!(
        broken.stderr.contains("broken at record 4") && broken.stderr.contains("altered"),
        "{}",
        broken.combined()
    );
}

#[test]
fn a_record_forged_outside_the_chain_or_a_rewritten_head_is_named_and_never_listed() {
    let dir = Scratch::new("audit-forged");
    let data = dir.join("data");
    let server = Fleetca::start(&data);
    let admin = server.admin_token();
    server.create_api_key(&admin, "svc-audit", "globex");
    let db = data.join("fleetca.db");
    let sql = |statement: &str| {
        run(
            Command::new(tool("python3")).args([
                "-c",
                "import sqlite3,sys; c=sqlite3.connect(sys.argv[1]); c.execute(sys.argv[2]); c.commit()",
                db.to_str().unwrap(),
                statement,
            ]),
            Duration::from_secs(30),
        )
        .expect_success("editing the database");
    };
    let verify = || verify(&data);
    // A row numbered below the chain, by hand.
    sql(
        "INSERT INTO audit_log (seq, at, actor, role, action, target_kind, target_id, enterprise, outcome, details, prev_hash, hash) \
         VALUES (-7, '2026-12-01 00:00:00+00:00', 'mallory', 'admin', 'user.create', 'user', 'x', 'globex', 'success', '{}', '', '')",
    );
    let broken = verify();
    assert!(!broken.success(), "a forged row verified:\n{}", broken.combined());
    assert!(
        broken.stderr.contains("broken at record -7") && broken.stderr.contains("outside the chain"),
        "{}",
        broken.combined()
    );
    // Neither the admin nor globex's manager is shown it.
    let listed = server.get("/api/v4/manage/audit/?enterprise=globex&page_size=500", Some(&admin));
    assert!(!listed.body.contains("mallory"), "{}", listed.body);
    sql("DELETE FROM audit_log WHERE seq = -7");
    assert!(verify().success(), "intact again");
    // Only the head's hash changed: named as such, not as removed records.
    sql("UPDATE audit_head SET hash = '00' || substr(hash, 3)");
    let head = verify();
    assert!(!head.success(), "{}", head.combined());
    assert!(head.stderr.contains("head's hash"), "{}", head.combined());
}

#[test]
fn audit_verify_changes_nothing_in_the_database_it_checks() {
    let dir = Scratch::new("audit-readonly");
    let data = dir.join("data");
    std::fs::create_dir_all(&data).unwrap();
    let out = verify(&data);
    assert!(!out.success(), "{}", out.combined());
    assert!(out.stderr.contains("no database"), "{}", out.combined());
    assert!(!data.join("fleetca.db").exists(), "no database was made");
    assert!(!data.join("master.key").exists(), "no master key was made");
}
