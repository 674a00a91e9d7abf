//! Start-up and shutdown of the real binary: a restart reuses the data directory, SIGTERM
//! stops it cleanly, and a master key that does not open the stored CA stops it with a
//! message that says so.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::{Duration, Instant};

use fleetca_e2e::{Fleetca, Scratch, free_port};

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o777
}

/// Stops the server with SIGTERM and checks it drains and exits 0 within 10 s.
fn stop_gracefully(mut server: Fleetca) {
    let started = Instant::now();
    let status = server.stop(Duration::from_secs(10));
    let log = server.stderr();
    let status = status.unwrap_or_else(|| panic!("fleetca did not exit within 10 s of SIGTERM:\n{log}"));
    assert!(status.success(), "fleetca exited with {status} after SIGTERM:\n{log}");
    assert!(
        log.contains("fleetca stopped"),
        "no \"fleetca stopped\" in the log:\n{log}"
    );
    println!("fleetca stopped {} ms after SIGTERM", started.elapsed().as_millis());
}

/// Starts fleetca with `FLEETCA_MASTER_KEY={key}` on `data` and expects it to exit non-zero
/// within 15 s with a standard error that mentions the master key; returns that output.
fn refused_start(data: &Path, key: &str) -> String {
    let port = free_port();
    let mut daemon = Fleetca::spawn(data, port, &[], &[("FLEETCA_MASTER_KEY", key)]);
    let started = Instant::now();
    let status = daemon.wait_exit(Duration::from_secs(15));
    let stderr = daemon.stderr();
    let status =
        status.unwrap_or_else(|| panic!("fleetca still runs 15 s after starting with a bad master key:\n{stderr}"));
    assert!(!status.success(), "fleetca exited 0 with a bad master key:\n{stderr}");
    assert!(
        stderr.to_lowercase().contains("master key"),
        "standard error does not mention the master key:\n{stderr}"
    );
    println!(
        "a bad master key stopped fleetca in {} ms: {}",
        started.elapsed().as_millis(),
        stderr.lines().last().unwrap_or("")
    );
    stderr
}

#[test]
fn a_second_start_reuses_the_ca_and_a_wrong_master_key_is_a_clear_error() {
    let dir = Scratch::new("restart");
    let data = dir.join("data");

    let first = Fleetca::start(&data);
    let ca = first.get("/ca.pem", None);
    assert_eq!(ca.status, 200);
    assert!(ca.body.starts_with("-----BEGIN CERTIFICATE-----"), "{}", ca.body);
    let admin = first.admin_token();
    first.create_api_key(&admin, "svc-before-restart", "nnn.acme");
    assert_eq!(mode(&data), 0o700, "the data directory is not private");
    assert_eq!(mode(&data.join("master.key")), 0o600, "master.key is not private");
    assert_eq!(mode(&data.join("admin-token")), 0o600, "admin-token is not private");
    let master_key = std::fs::read_to_string(data.join("master.key")).expect("master.key");
    stop_gracefully(first);

    // The same data directory: the same CA, master key, admin token and users.
    let second = Fleetca::start(&data);
    let again = second.get("/ca.pem", None);
    assert_eq!(again.status, 200);
    assert_eq!(again.body, ca.body, "the second start made a new CA");
    assert_eq!(
        std::fs::read_to_string(data.join("master.key")).expect("master.key"),
        master_key
    );
    assert_eq!(second.admin_token(), admin, "the admin token file changed");
    let users = second
        .get("/api/v4/manage/users/?search=svc-before-restart", Some(&admin))
        .expect_json(200, "the admin token after a restart");
    assert_eq!(users["count"], 1, "the user made before the restart is gone: {users}");
    stop_gracefully(second);

    // A well-formed key that is not the one the CA was sealed with.
    let master_key = master_key.trim();
    assert_eq!(master_key.len(), 64, "master.key is not 64 hex characters");
    let flipped = if master_key.starts_with('0') { '1' } else { '0' };
    let wrong = format!("{flipped}{}", &master_key[1..]);
    let stderr = refused_start(&data, &wrong);
    assert!(
        stderr.contains("does not open the CA key"),
        "the error does not say the key does not open the CA:\n{stderr}"
    );
    assert!(!stderr.contains(&wrong), "the log shows the master key:\n{stderr}");

    // A malformed key.
    refused_start(&data, "not-a-master-key");

    // And the right key still works afterwards: the refused starts changed nothing.
    let third = Fleetca::start_with(&data, &[], &[("FLEETCA_MASTER_KEY", master_key)]);
    assert_eq!(third.get("/ca.pem", None).body, ca.body);
    stop_gracefully(third);
}
