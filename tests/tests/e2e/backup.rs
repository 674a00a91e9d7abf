//! Backups that never un-revoke: back up a running fleetca, revoke 100 certificates, restore
//! the backup, start again — a real mosquitto still refuses every one of the 100 (and one
//! issued and revoked after the backup, which the restored database never knew), the CRL
//! number is higher than before, and `/readyz` shows the repair until an admin acknowledges
//! it. `fleetca restore` refuses a running server's data directory and a backup the master
//! key cannot open.

use std::process::Command;
use std::time::Duration;

use fleetca_e2e::{Fleetca, IssuedCertificate, Scratch, binary, run, tool};
use serde_json::json;

use crate::mosquitto::{assert_round_trip, broker_files, handshake, start_broker};

fn fleetca(args: &[&str], data: &std::path::Path) -> fleetca_e2e::Output {
    let mut cmd = Command::new(binary());
    cmd.args(args).arg("--data-dir").arg(data);
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("FLEETCA_") {
            cmd.env_remove(key);
        }
    }
    run(&mut cmd, Duration::from_secs(60))
}

/// Whether mosquitto refuses `client` as revoked. A handshake that fails otherwise (the
/// broker reloading its CRL at that moment) is tried again; one that succeeds is an answer.
fn refused(port: u16, client: &IssuedCertificate) -> bool {
    for _ in 0..20 {
        let out = handshake(port, client);
        if out.combined().contains("certificate revoked") {
            return true;
        }
        if out.stdout.contains("Verify return code: 0 (ok)") && !out.combined().contains("alert") {
            return false;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    false
}

#[test]
fn a_restored_backup_never_un_revokes_and_numbers_its_crls_higher() {
    tool("mosquitto_pub");
    let dir = Scratch::new("backup");
    let data = dir.join("data");
    let crl_file = dir.join("crl.pem");
    let reload = format!("kill -HUP $(cat {})", dir.join("mosquitto.pid").display());
    let crl_args = [
        "--crl-file",
        crl_file.to_str().unwrap(),
        "--crl-reload-command",
        &reload,
    ];
    let mut server = Fleetca::start_with(&data, &crl_args, &[]);
    let admin = server.admin_token();
    // The same public URL after the restart: the CRL's issuing distribution point must keep
    // naming what the certificates' distribution point names, or OpenSSL (mosquitto) takes
    // the CRL as out of scope for them and accepts them all.
    let public_url = server.base.clone();
    let same_url = [("FLEETCA_PUBLIC_URL", public_url.as_str())];
    broker_files(&server, &admin, &dir);
    let (broker, port) = start_broker(&dir);

    // 100 certificates of ten keys, and one that stays valid.
    let mut keys = Vec::new();
    let mut doomed = Vec::new();
    for k in 0..10 {
        let key = server.create_api_key(&admin, &format!("svc-backup-{k}"), "acme");
        let id = key["id"].as_str().unwrap().to_owned();
        for c in 0..10 {
            doomed.push(server.issue_certificate(&admin, &id, &format!("c{c}"), dir.path(), &format!("k{k}c{c}")));
        }
        keys.push(id);
    }
    let keeper_key = server.create_api_key(&admin, "svc-keeper", "acme");
    let keeper = server.issue_certificate(
        &admin,
        keeper_key["id"].as_str().unwrap(),
        "keeper",
        dir.path(),
        "keeper",
    );

    // The backup, taken while fleetca runs.
    let backup = dir.join("fleetca-backup.db");
    fleetca(&["backup", "--out", backup.to_str().unwrap()], &data).expect_success("fleetca backup");
    // A backup of another installation, whose CA this master key cannot open.
    let other = Fleetca::start(&dir.join("other"));
    let foreign = dir.join("foreign-backup.db");
    fleetca(&["backup", "--out", foreign.to_str().unwrap()], &dir.join("other")).expect_success("the other backup");
    drop(other);

    // After the backup: the 100 revoked, and one certificate issued and revoked that the
    // backup never saw.
    for key in &keys {
        let r = server
            .post(
                "/api/v4/manage/mqtt-certificates/revoke/",
                Some(&admin),
                &json!({"api_key_id": key, "reason": "keyCompromise"}),
            )
            .expect_json(200, "a bulk revocation");
        assert_eq!(r["revoked"].as_array().unwrap().len(), 10, "{r}");
    }
    let late_key = server.create_api_key(&admin, "svc-late", "acme");
    let late = server.issue_certificate(&admin, late_key["id"].as_str().unwrap(), "late", dir.path(), "late");
    server.revoke(&admin, &late.id, "keyCompromise");
    assert!(doomed.iter().all(|c| refused(port, c)), "revoked before the restore");
    assert!(refused(port, &late));
    let before = server.get("/readyz", None).expect_json(200, "readyz");
    let number_before = before["crl"]["number"].as_u64().unwrap();

    // Restore: refused while fleetca runs; refused for a backup this master key cannot open.
    let busy = fleetca(&["restore", backup.to_str().unwrap()], &data);
    assert!(
        !busy.success() && busy.stderr.contains("stop it first"),
        "{}",
        busy.combined()
    );
    server.stop(Duration::from_secs(10));
    let wrong = fleetca(&["restore", foreign.to_str().unwrap()], &data);
    assert!(
        !wrong.success() && wrong.stderr.contains("master key cannot open"),
        "{}",
        wrong.combined()
    );
    fleetca(&["restore", backup.to_str().unwrap()], &data).expect_success("fleetca restore");

    let server = Fleetca::start_with(&data, &crl_args, &same_url);
    let ready = server.get("/readyz", None).expect_json(200, "readyz after the restore");
    let number_after = ready["crl"]["number"].as_u64().unwrap();
    assert!(
        number_after > number_before,
        "CRL numbers went backwards: {number_before} then {number_after}"
    );
    assert_eq!(ready["unacknowledged_repairs"], 1, "{ready}");
    let repairs = server
        .get("/api/v4/manage/repairs/", Some(&admin))
        .expect_json(200, "the repairs");
    let repair = &repairs[0];
    assert_eq!(repair["details"]["revoked_again"], 100, "{repairs}");
    assert_eq!(repair["details"]["unknown_serials"], 1, "{repairs}");
    for c in &doomed {
        assert!(
            refused(port, c),
            "{} connects again after the restore:\n{}\n{}",
            c.cert.display(),
            handshake(port, c).combined(),
            broker.log_tail(30)
        );
    }
    assert!(
        refused(port, &late),
        "the certificate the backup never saw connects again"
    );
    assert_round_trip(&dir, port, &keeper, "still here");
    let listed = server
        .get(
            "/api/v4/manage/mqtt-certificates/?status=revoked&page_size=500",
            Some(&admin),
        )
        .expect_json(200, "revoked certificates");
    assert_eq!(listed["count"], 100, "the database says revoked again");

    // An admin acknowledges: /readyz no longer shows it; the audit log has both.
    let id = repair["id"].as_str().unwrap();
    server
        .post(
            &format!("/api/v4/manage/repairs/{id}/acknowledge/"),
            Some(&admin),
            &json!({}),
        )
        .expect_json(200, "acknowledging the repair");
    let ready = server.get("/readyz", None).expect_json(200, "readyz");
    assert_eq!(ready["unacknowledged_repairs"], 0, "{ready}");
    let audit = server
        .get("/api/v4/manage/audit/?target_kind=crl", Some(&admin))
        .expect_json(200, "audit");
    assert_eq!(audit["results"][0]["action"], "crl.repair", "{audit}");
    // A second start repairs nothing more.
    drop(server);
    let server = Fleetca::start_with(&data, &crl_args, &same_url);
    let ready = server.get("/readyz", None).expect_json(200, "readyz");
    assert_eq!(ready["unacknowledged_repairs"], 0, "{ready}");
    drop(broker);
}
