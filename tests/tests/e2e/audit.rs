//! `fleetca audit verify` on the real data directory: intact after real changes, and a
//! record edited in the SQLite file (with Python's sqlite3, as an intruder would) is named.

use std::process::Command;
use std::time::Duration;

use fleetca_e2e::{Fleetca, Scratch, binary, run, tool};
use serde_json::json;

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

    let verify = || {
        run(
            Command::new(binary())
                .args(["audit", "verify", "--data-dir"])
                .arg(&data)
                .env_remove("FLEETCA_DATABASE_URL"),
            Duration::from_secs(30),
        )
    };
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
