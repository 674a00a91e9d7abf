//! Durability: a `kill -9` of the server in the middle of a burst of certificate creations,
//! revocations and bulk provisioning loses no write it acknowledged. After the restart
//! every certificate that was answered 201 exists, every revocation that was answered 200
//! is revoked and on the CRL, and every device of an acknowledged bulk request exists.

use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use fleetca_e2e::process::run_with_input;
use fleetca_e2e::{Fleetca, Scratch, distribution_point, openssl, tool};
use serde_json::{Value, json};

/// One request that may fail (the server dies under it): `Some((status, body))` only when
/// a whole response arrived.
fn try_request(method: &str, url: &str, token: &str, body: &Value) -> Option<(u16, Value)> {
    let mut cmd = Command::new(tool("curl"));
    cmd.args(["-sS", "--max-time", "20", "-X", method, url, "-w", "\n%{http_code}"])
        .arg("-H")
        .arg(format!("Authorization: Bearer {token}"))
        .args(["-H", "Content-Type: application/json", "--data-binary", "@-"]);
    let text = body.to_string();
    let out = run_with_input(&mut cmd, Some(text.as_bytes()), Duration::from_secs(30));
    if !out.success() {
        return None;
    }
    let (body, status) = out.stdout.rsplit_once('\n')?;
    Some((status.trim().parse().ok()?, serde_json::from_str(body).ok()?))
}

#[derive(Default)]
struct Acknowledged {
    /// (certificate id, serial) answered 201.
    created: Vec<(String, String)>,
    /// (certificate id, serial) answered 200 to a revoke.
    revoked: Vec<(String, String)>,
    /// device ids of bulk requests answered 201.
    devices: Vec<String>,
}

#[test]
fn a_kill_9_during_a_burst_loses_no_acknowledged_write() {
    let dir = Scratch::new("crash");
    let data = dir.join("data");
    let server = Fleetca::start(&data);
    let admin = server.admin_token();
    let keys: Vec<String> = (0..4)
        .map(|i| {
            server.create_api_key(&admin, &format!("svc-crash-{i}"), "acme")["id"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    let acked = Arc::new(Mutex::new(Acknowledged::default()));
    let stop = Arc::new(AtomicBool::new(false));
    let mut workers = Vec::new();
    for (w, key) in keys.into_iter().enumerate() {
        let (base, admin, acked, stop) = (server.base.clone(), admin.clone(), acked.clone(), stop.clone());
        workers.push(std::thread::spawn(move || {
            let mut n = 0;
            while !stop.load(Ordering::Acquire) {
                n += 1;
                let created = try_request(
                    "POST",
                    &format!("{base}/api/v4/manage/mqtt-certificates/"),
                    &admin,
                    &json!({"name": format!("crash-{w}-{n}"), "api_key_id": key}),
                );
                let Some((201, cert)) = created else { continue };
                let id = cert["id"].as_str().unwrap().to_owned();
                let serial = cert["serial"].as_str().unwrap().to_owned();
                acked.lock().unwrap().created.push((id.clone(), serial.clone()));
                let revoked = try_request(
                    "POST",
                    &format!("{base}/api/v4/manage/mqtt-certificates/{id}/revoke/"),
                    &admin,
                    &json!({"reason": "superseded"}),
                );
                if let Some((200, _)) = revoked {
                    acked.lock().unwrap().revoked.push((id, serial));
                }
                let rows: Vec<Value> = (0..20)
                    .map(|d| json!({"device_id": format!("crash-{w}-{n}-{d}"), "tenant": "acme"}))
                    .collect();
                if let Some((201, _)) = try_request(
                    "POST",
                    &format!("{base}/api/v4/manage/devices/bulk/"),
                    &admin,
                    &Value::Array(rows.clone()),
                ) {
                    let ids = rows.iter().map(|r| r["device_id"].as_str().unwrap().to_owned());
                    acked.lock().unwrap().devices.extend(ids);
                }
            }
        }));
    }
    // Let the burst run, then kill the server without warning.
    let started = std::time::Instant::now();
    while acked.lock().unwrap().revoked.len() < 20 && started.elapsed() < Duration::from_secs(30) {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(fleetca_e2e::process::signal(server.pid(), "KILL"), "kill -9 failed");
    stop.store(true, Ordering::Release);
    for w in workers {
        w.join().unwrap();
    }
    let mut server = server;
    server.stop(Duration::from_secs(5));
    drop(server);

    let acked = std::mem::take(&mut *acked.lock().unwrap());
    assert!(acked.revoked.len() >= 20, "the burst was too short to mean anything");
    println!(
        "kill -9 after {} acknowledged creations, {} revocations and {} bulk devices",
        acked.created.len(),
        acked.revoked.len(),
        acked.devices.len()
    );
    let server = Fleetca::start(&data);
    for (id, _) in &acked.created {
        let cert = server
            .get(&format!("/api/v4/manage/mqtt-certificates/{id}/"), Some(&admin))
            .expect_json(200, "an acknowledged certificate after the restart");
        assert!(cert["certificate_pem"].as_str().unwrap().contains("BEGIN CERTIFICATE"));
    }
    // Each acknowledged revocation is listed by the CRL its certificate names (the burst's
    // certificates name the intermediate's CRL shards in turn, so it spans several), as the
    // restarted server publishes it.
    let mut shards: std::collections::BTreeMap<String, String> = std::collections::BTreeMap::new();
    for (id, serial) in &acked.revoked {
        let cert = server
            .get(&format!("/api/v4/manage/mqtt-certificates/{id}/"), Some(&admin))
            .expect_json(200, "an acknowledged revocation after the restart");
        assert_eq!(cert["status"], "revoked", "{cert}");
        let pem = dir.write("cert.pem", cert["certificate_pem"].as_str().unwrap(), false);
        let url = distribution_point(&pem);
        // The restarted server listens on another port: the path is what counts.
        let path = url[url.find("/crl/").expect("a CRL path")..].replace(".der", ".pem");
        let text = shards.entry(path.clone()).or_insert_with(|| {
            let crl = dir.write("crl.pem", &server.get(&path, None).body, false);
            openssl(["crl", "-in", crl.to_str().unwrap(), "-noout", "-text"])
                .expect_success("openssl crl")
                .to_uppercase()
        });
        let serial = serial.trim_start_matches('0').to_uppercase();
        assert!(
            text.contains(&serial),
            "serial {serial} missing from its CRL {path} after the restart"
        );
    }
    assert!(
        shards.len() > 1,
        "the revocations were all in one CRL shard: {shards:?}"
    );
    for device in &acked.devices {
        server
            .get(&format!("/api/v4/manage/devices/acme/{device}/"), Some(&admin))
            .expect_json(200, "a device of an acknowledged bulk request after the restart");
    }
}

#[test]
fn server_cert_writes_a_private_key_only_its_owner_can_read_even_over_a_readable_file() {
    use std::os::unix::fs::PermissionsExt;
    let dir = Scratch::new("server-cert-mode");
    let data = dir.join("data");
    let out = dir.join("out");
    std::fs::create_dir_all(&out).unwrap();
    let key = out.join("server.key");
    std::fs::write(&key, "old").unwrap();
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let mut cmd = Command::new(fleetca_e2e::server::binary());
    cmd.args(["server-cert", "--dns", "broker.test", "--out"])
        .arg(&out)
        .arg("--data-dir")
        .arg(&data)
        .env_remove("FLEETCA_MASTER_KEY");
    let result = fleetca_e2e::run(&mut cmd, Duration::from_secs(60));
    result.expect_success("fleetca server-cert");
    let mode = std::fs::metadata(&key).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "server.key is {mode:o}");
    assert!(std::fs::read_to_string(&key).unwrap().contains("PRIVATE KEY"));
}
