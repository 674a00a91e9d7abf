//! Two real `fleetca` processes on one PostgreSQL (a private throw-away cluster this test
//! starts, so it can also take the database away and bring it back).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::unreachable
)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use futures_util::future::join_all;
use serde_json::{Value, json};

const ADMIN: &str = "instances-admin-token-0123456789abcdefghij";
const MASTER: &str = "1111111111111111111111111111111111111111111111111111111111111111";

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn pg_bin() -> PathBuf {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .expect("PostgreSQL is installed (scripts/test installs Debian's postgresql)")
        .map(|e| e.unwrap().path().join("bin"))
        .filter(|p| p.join("initdb").exists())
        .collect();
    dirs.sort();
    dirs.pop().expect("an initdb under /usr/lib/postgresql/*/bin")
}

fn as_postgres(program: &Path) -> Command {
    // PostgreSQL refuses to run as root; Debian's package has a postgres user.
    let root = Command::new("id")
        .arg("-u")
        .output()
        .map(|o| o.stdout == b"0\n")
        .unwrap_or(false);
    if root {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(program);
        c
    } else {
        Command::new(program)
    }
}

struct Postgres {
    dir: PathBuf,
    port: u16,
}

impl Postgres {
    fn start() -> Self {
        let dir = std::env::temp_dir().join(format!("fleetca-inst-pg-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).unwrap();
        let _ = Command::new("chown").arg("postgres").arg(&dir).status();
        let ok = as_postgres(&pg_bin().join("initdb"))
            .args(["-A", "trust", "-U", "postgres", "-D"])
            .arg(dir.join("data"))
            .stdout(Stdio::null())
            .status()
            .unwrap();
        assert!(ok.success(), "initdb failed");
        let pg = Postgres { dir, port: free_port() };
        pg.up();
        pg
    }

    fn up(&self) {
        let ok = as_postgres(&pg_bin().join("pg_ctl"))
            .arg("-D")
            .arg(self.dir.join("data"))
            .arg("-l")
            .arg(self.dir.join("log"))
            .args(["-w", "start", "-o"])
            .arg(format!(
                // track_functions: the test asks how often fleetca_issue_batch ran.
                "-p {} -k {} -c listen_addresses=127.0.0.1 -c track_functions=pl",
                self.port,
                self.dir.display()
            ))
            .stdout(Stdio::null())
            .status()
            .unwrap();
        assert!(ok.success(), "pg_ctl start failed");
    }

    fn down(&self) {
        let _ = as_postgres(&pg_bin().join("pg_ctl"))
            .arg("-D")
            .arg(self.dir.join("data"))
            .args(["-m", "fast", "-w", "stop"])
            .stdout(Stdio::null())
            .status();
    }

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// What `psql` prints for `sql` in database `db` (unaligned, tuples only).
    fn query(&self, db: &str, sql: &str) -> String {
        let out = Command::new(pg_bin().join("psql"))
            .args(["-h", "127.0.0.1", "-U", "postgres", "-At", "-p"])
            .arg(self.port.to_string())
            .args(["-d", db, "-c", sql])
            .output()
            .unwrap();
        assert!(out.status.success(), "psql: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let _ = as_postgres(&pg_bin().join("pg_ctl"))
            .arg("-D")
            .arg(self.dir.join("data"))
            .args(["-m", "immediate", "stop"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

struct Instance {
    child: Child,
    base: String,
    dir: PathBuf,
}

impl Instance {
    fn start(database_url: &str) -> Self {
        let port = free_port();
        let dir = std::env::temp_dir().join(format!("fleetca-inst-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).unwrap();
        let log = std::fs::File::create(dir.join("log")).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_fleetca"))
            .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
            .arg("--data-dir")
            .arg(&dir)
            .env("FLEETCA_DATABASE_URL", database_url)
            .env("FLEETCA_MASTER_KEY", MASTER)
            .env("FLEETCA_BOOTSTRAP_TOKEN", ADMIN)
            .env("FLEETCA_PUBLIC_URL", "http://fleetca.example")
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        let me = Instance {
            child,
            base: format!("http://127.0.0.1:{port}"),
            dir,
        };
        let started = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "instance did not start:\n{}",
                me.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        me
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("log")).unwrap_or_default()
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

struct Http(awc::Client);

/// The CRLs of the CA that issues (CA 2): its own, then its 16 shards.
fn issuing_crls(base: &str) -> Vec<String> {
    std::iter::once(format!("{base}/crl/2.der"))
        .chain((0..16).map(|shard| format!("{base}/crl/2/{shard}.der")))
        .collect()
}

impl Http {
    /// Every serial the issuing CA's CRLs list at `base`.
    async fn listed(&self, base: &str) -> Vec<String> {
        let mut listed = Vec::new();
        for url in issuing_crls(base) {
            listed.extend(crl_facts(&self.call("GET", url, None).await.2).1);
        }
        listed
    }

    async fn call(&self, method: &str, url: String, body: Option<Value>) -> (u16, Value, Vec<u8>, String) {
        let req = self
            .0
            .request(method.parse().unwrap(), url)
            .insert_header(("Authorization", format!("Bearer {ADMIN}")));
        let mut res = match body {
            Some(b) => req.send_json(&b).await,
            None => req.send().await,
        }
        .expect("request");
        let ct = res
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned();
        let raw = res.body().limit(16 << 20).await.unwrap().to_vec();
        (
            res.status().as_u16(),
            serde_json::from_slice(&raw).unwrap_or(Value::Null),
            raw,
            ct,
        )
    }
}

fn crl_facts(der: &[u8]) -> (u64, Vec<String>) {
    use x509_parser::prelude::FromDer;
    let (_, crl) = x509_parser::revocation_list::CertificateRevocationList::from_der(der).unwrap();
    let n = u64::try_from(crl.crl_number().unwrap()).unwrap();
    (
        n,
        crl.iter_revoked_certificates()
            .map(|r| hex::encode(r.raw_serial()))
            .collect(),
    )
}

/// Polls `check` until it holds; returns how long that took. Fails after `limit`.
async fn within<F, Fut>(limit: Duration, what: &str, mut check: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let started = Instant::now();
    loop {
        if check().await {
            return started.elapsed();
        }
        assert!(started.elapsed() < limit, "{what} did not happen within {limit:?}");
        actix_web::rt::time::sleep(Duration::from_millis(20)).await;
    }
}

#[actix_web::test]
async fn two_instances_on_one_postgres_share_the_ca_the_limits_and_every_revocation() {
    let pg = Postgres::start();
    fleetca_storage::create_postgres_database(&pg.url(), "fleetca")
        .await
        .unwrap();
    let db = format!("postgres://postgres@127.0.0.1:{}/fleetca", pg.port);
    let a = Instance::start(&db);
    let b = Instance::start(&db);
    let http = Http(awc::Client::builder().timeout(Duration::from_secs(30)).finish());
    let (sa, sb) = (a.base.clone(), b.base.clone());

    // One CA for both.
    let ca_a = http.call("GET", format!("{sa}/ca.pem"), None).await.2;
    let ca_b = http.call("GET", format!("{sb}/ca.pem"), None).await.2;
    assert_eq!(ca_a, ca_b, "both instances serve the same CA");

    let (_, key, _, _) = http
        .call(
            "POST",
            format!("{sa}/api/v4/manage/users/"),
            Some(json!({"username": "svc-ha", "is_service_account": true, "enterprise": "acme"})),
        )
        .await;
    let key_id = key["id"].as_str().unwrap().to_owned();
    let key_token = key["token"].as_str().unwrap().to_owned();

    // A certificate issued by A verifies against B's CA, is listed on B and revocable there.
    let new_cert = |base: String| {
        let http = &http;
        let key_id = key_id.clone();
        async move {
            http.call(
                "POST",
                format!("{base}/api/v4/manage/mqtt-certificates/"),
                Some(json!({"name": "ha", "api_key_id": key_id})),
            )
            .await
        }
    };
    let (status, c1, _, _) = new_cert(sa.clone()).await;
    assert_eq!(status, 201, "{c1}");
    {
        use x509_parser::prelude::FromDer;
        let cert_der = pem::parse(c1["certificate_pem"].as_str().unwrap())
            .unwrap()
            .into_contents();
        // B's trust bundle: the root and the intermediate that issues.
        let cas = pem::parse_many(&ca_b).unwrap();
        assert_eq!(cas.len(), 2, "a new installation's root and issuing intermediate");
        let (_, cert) = x509_parser::certificate::X509Certificate::from_der(&cert_der).unwrap();
        let (_, issuing) = x509_parser::certificate::X509Certificate::from_der(cas[1].contents()).unwrap();
        cert.verify_signature(Some(issuing.public_key()))
            .expect("A's certificate verifies against B's issuing CA");
    }
    let c1_id = c1["id"].as_str().unwrap();
    let (status, listed, _, _) = http
        .call(
            "GET",
            format!("{sb}/api/v4/manage/mqtt-certificates/?api_key_id={key_id}"),
            None,
        )
        .await;
    assert_eq!(status, 200);
    assert!(listed["results"].as_array().unwrap().iter().any(|c| c["id"] == c1_id));
    let (status, _, _, _) = http
        .call(
            "POST",
            format!("{sb}/api/v4/manage/mqtt-certificates/{c1_id}/revoke/"),
            None,
        )
        .await;
    assert_eq!(status, 200);

    // B's caches are warm: the key's certificate, its token and a device authenticate there.
    let (_, c2, _, _) = new_cert(sa.clone()).await;
    let fp2 = c2["fingerprint"].as_str().unwrap().to_owned();
    let (status, _, _, _) = http
        .call(
            "POST",
            format!("{sa}/api/v4/manage/devices/"),
            Some(json!({"device_id": "d1", "tenant": "acme", "ha1": "939e7578ed9e3c518a452acee763bce9"})),
        )
        .await;
    assert_eq!(status, 201);
    let device_auth = || {
        let ts = chrono::Utc::now().timestamp();
        let sig = fleetca_ca::device::mqtt_signature("939e7578ed9e3c518a452acee763bce9", ts);
        json!({"username": "device=d1&tenant=acme", "password": format!("signature={sig}&timestamp={ts}"), "clientid": "d1"})
    };
    let broker = |body: Value| {
        let http = &http;
        let sb = sb.clone();
        async move { http.call("POST", format!("{sb}/broker/auth"), Some(body)).await.0 }
    };
    assert_eq!(
        broker(json!({"username": "svc-ha", "cert_fingerprint": fp2})).await,
        200
    );
    assert_eq!(broker(device_auth()).await, 200);
    assert_eq!(broker(json!({"username": "svc-ha", "password": key_token})).await, 200);

    // Revoke on A: B's CRL lists it and B's broker auth refuses it within a second.
    let (status, revoked, _, _) = http
        .call(
            "POST",
            format!(
                "{sa}/api/v4/manage/mqtt-certificates/{}/revoke/",
                c2["id"].as_str().unwrap()
            ),
            None,
        )
        .await;
    assert_eq!(status, 200, "{revoked}");
    let serial2 = c2["serial"].as_str().unwrap().to_owned();
    let crl_lag = within(Duration::from_secs(1), "B's CRL listing A's revocation", || {
        let http = &http;
        let sb = sb.clone();
        let serial2 = serial2.clone();
        async move { http.listed(&sb).await.contains(&serial2) }
    })
    .await;
    let cert_lag = within(Duration::from_secs(1), "B refusing the revoked certificate", || {
        let fp2 = fp2.clone();
        let broker = &broker;
        async move { broker(json!({"username": "svc-ha", "cert_fingerprint": fp2})).await == 403 }
    })
    .await;
    let (status, _, _, _) = http
        .call(
            "PATCH",
            format!("{sa}/api/v4/manage/devices/acme/d1/"),
            Some(json!({"is_active": false})),
        )
        .await;
    assert_eq!(status, 200);
    let device_lag = within(Duration::from_secs(1), "B refusing the disabled device", || {
        let broker = &broker;
        let body = device_auth();
        async move { broker(body).await == 403 }
    })
    .await;
    let (status, _, _, _) = http
        .call("DELETE", format!("{sa}/api/v4/manage/users/{key_id}/"), None)
        .await;
    assert_eq!(status, 204);
    let key_lag = within(Duration::from_secs(1), "B refusing the deactivated key", || {
        let broker = &broker;
        let token = key_token.clone();
        async move { broker(json!({"username": "svc-ha", "password": token})).await == 403 }
    })
    .await;
    println!("instance B caught up: CRL {crl_lag:?}, certificate {cert_lag:?}, device {device_lag:?}, key {key_lag:?}");

    // 40 concurrent creates for one key across both instances never leave more than 10 active.
    let (_, key2, _, _) = http
        .call(
            "POST",
            format!("{sb}/api/v4/manage/users/"),
            Some(json!({"username": "svc-race", "is_service_account": true, "enterprise": "acme"})),
        )
        .await;
    let key2_id = key2["id"].as_str().unwrap().to_owned();
    let creates = (0..40).map(|i| {
        let base = if i % 2 == 0 { sa.clone() } else { sb.clone() };
        let http = &http;
        let key2_id = key2_id.clone();
        async move {
            http.call(
                "POST",
                format!("{base}/api/v4/manage/mqtt-certificates/"),
                Some(json!({"name": format!("r{i}"), "api_key_id": key2_id})),
            )
            .await
            .0
        }
    });
    let statuses = join_all(creates).await;
    assert_eq!(statuses.iter().filter(|s| **s == 201).count(), 10, "{statuses:?}");
    assert!(statuses.iter().all(|s| *s == 201 || *s == 409), "{statuses:?}");
    let (_, active, _, _) = http
        .call(
            "GET",
            format!("{sa}/api/v4/manage/mqtt-certificates/?api_key_id={key2_id}&status=active"),
            None,
        )
        .await;
    assert_eq!(active["count"], 10);

    // A bulk revocation on A races single revocations of the same certificates on B: each is
    // revoked (and audited) once, and B's CRL lists them all.
    let (ids, serials): (Vec<String>, Vec<String>) = active["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["id"].as_str().unwrap().to_owned(),
                c["serial"].as_str().unwrap().to_owned(),
            )
        })
        .unzip();
    let bulk = http.call(
        "POST",
        format!("{sa}/api/v4/manage/mqtt-certificates/revoke/"),
        Some(json!({"ids": ids.clone(), "reason": "keyCompromise"})),
    );
    let singles = join_all(ids.iter().take(5).map(|id| {
        http.call(
            "POST",
            format!("{sb}/api/v4/manage/mqtt-certificates/{id}/revoke/"),
            Some(json!({"reason": "superseded"})),
        )
    }));
    let (bulk, singles) = tokio::join!(bulk, singles);
    assert_eq!(bulk.0, 200, "{}", bulk.1);
    assert!(singles.iter().all(|r| r.0 == 200));
    let by_bulk = bulk.1["revoked"].as_array().unwrap().len();
    let by_single = singles.iter().filter(|r| r.1["reason"] == "superseded").count();
    assert_eq!(
        by_bulk + by_single,
        10,
        "each revoked once: {by_bulk} in bulk, {by_single} singly"
    );
    let audited = http
        .call(
            "GET",
            format!("{sa}/api/v4/manage/audit/?action=certificate.revoke&page_size=100"),
            None,
        )
        .await
        .1;
    let audited_here = audited["results"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| ids.iter().any(|id| r["target_id"] == id.as_str()))
        .count();
    assert_eq!(audited_here, 10, "one audit record per revocation");
    within(Duration::from_secs(2), "B's CRL listing A's bulk revocation", || {
        let http = &http;
        let sb = sb.clone();
        let serials = serials.clone();
        async move {
            let listed = http.listed(&sb).await;
            serials.iter().all(|s| listed.contains(s))
        }
    })
    .await;

    // CRL numbers: each instance's CRLs' only grow, and no number names two different CRLs
    // (the shards share their CA's numbers).
    let mut by_number: std::collections::HashMap<u64, Vec<u8>> = std::collections::HashMap::new();
    let mut last: std::collections::HashMap<String, u64> = std::collections::HashMap::new();
    for round in 0..6 {
        let (_, c, _, _) = new_cert(sa.clone()).await;
        if c["id"].is_string() {
            http.call(
                "POST",
                format!(
                    "{}/api/v4/manage/mqtt-certificates/{}/revoke/",
                    if round % 2 == 0 { &sa } else { &sb },
                    c["id"].as_str().unwrap()
                ),
                None,
            )
            .await;
        }
        for base in [&sa, &sb] {
            for url in issuing_crls(base) {
                let der = http.call("GET", url.clone(), None).await.2;
                let (n, _) = crl_facts(&der);
                let prev = last.entry(url.clone()).or_default();
                assert!(n >= *prev, "{url}'s CRL number went back from {prev} to {n}");
                *prev = n;
                if let Some(other) = by_number.insert(n, der.clone()) {
                    assert_eq!(other, der, "CRL number {n} names two different CRLs");
                }
            }
        }
    }

    // Both instances issue and revoke at once, each appending to the one audit chain (each
    // holds its head in memory and appends with a compare-and-swap): the chain still verifies
    // record by record, as `fleetca audit verify` walks it.
    let mut keys = Vec::new();
    for i in 0..4 {
        let (status, key, _, _) = http
            .call(
                "POST",
                format!("{}/api/v4/manage/users/", if i % 2 == 0 { &sa } else { &sb }),
                Some(json!({"username": format!("svc-chain-{i}"), "is_service_account": true, "enterprise": "acme"})),
            )
            .await;
        assert_eq!(status, 201, "{key}");
        keys.push(key["id"].as_str().unwrap().to_owned());
    }
    let burst = join_all((0..40).map(|i| {
        let http = &http;
        let base = if i % 2 == 0 { sa.clone() } else { sb.clone() };
        let other = if i % 2 == 0 { sb.clone() } else { sa.clone() };
        let key = keys[i % keys.len()].clone();
        async move {
            let (status, c, _, _) = http
                .call(
                    "POST",
                    format!("{base}/api/v4/manage/mqtt-certificates/"),
                    Some(json!({"name": format!("chain-{i}"), "api_key_id": key})),
                )
                .await;
            assert_eq!(status, 201, "{c}");
            if i % 4 == 0 {
                let id = c["id"].as_str().unwrap();
                let (status, r, _, _) = http
                    .call(
                        "POST",
                        format!("{other}/api/v4/manage/mqtt-certificates/{id}/revoke/"),
                        None,
                    )
                    .await;
                assert_eq!(status, 200, "{r}");
            }
        }
    }))
    .await;
    assert_eq!(burst.len(), 40);
    // The burst's plain batches went in one round trip each (issuance's PostgreSQL path).
    // (A backend reports its function counts within seconds, not at once.)
    within(
        Duration::from_secs(20),
        "a batch counted by fleetca_issue_batch",
        || {
            let calls: u64 = pg
                .query(
                    "fleetca",
                    "SELECT coalesce(sum(calls), 0) FROM pg_stat_user_functions WHERE funcname = 'fleetca_issue_batch'",
                )
                .parse()
                .unwrap();
            async move { calls > 0 }
        },
    )
    .await;
    let verify = Command::new(env!("CARGO_BIN_EXE_fleetca"))
        .args(["audit", "verify"])
        .env("FLEETCA_DATABASE_URL", &db)
        .env("FLEETCA_MASTER_KEY", MASTER)
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&verify.stdout);
    assert!(
        verify.status.success() && said.contains("audit log intact"),
        "the audit chain two instances appended to at once does not verify: {said}{}",
        String::from_utf8_lossy(&verify.stderr)
    );

    // The database goes away: readiness says so and requests get 503 problems; it comes
    // back and everything works again, with nothing lost.
    pg.down();
    let (status, ready, _, _) = http.call("GET", format!("{sa}/readyz"), None).await;
    assert_eq!(status, 503, "{ready}");
    assert_eq!(ready["database"], false);
    let (status, body, _, ct) = http
        .call("GET", format!("{sa}/api/v4/manage/devices/?search=zz"), None)
        .await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(ct, "application/problem+json");
    let (status, _, _, ct) = http
        .call(
            "POST",
            format!("{sb}/api/v4/manage/users/"),
            Some(json!({"username": "during-outage", "is_service_account": true})),
        )
        .await;
    assert_eq!((status, ct.as_str()), (503, "application/problem+json"));
    pg.up();
    within(Duration::from_secs(15), "A ready again", || {
        let http = &http;
        let sa = sa.clone();
        async move { http.call("GET", format!("{sa}/readyz"), None).await.0 == 200 }
    })
    .await;
    let (status, _, _, _) = http
        .call(
            "POST",
            format!("{sb}/api/v4/manage/users/"),
            Some(json!({"username": "after-outage", "is_service_account": true})),
        )
        .await;
    assert_eq!(status, 201);
    // Issuance's writer keeps a connection of its own: the restart closed it, and the first
    // certificate after it is issued all the same (the idle connection is checked first). The
    // first key's ten certificates were all revoked above: it has room.
    let (status, c, _, _) = http
        .call(
            "POST",
            format!("{sa}/api/v4/manage/mqtt-certificates/"),
            Some(json!({"name": "after-outage", "api_key_id": keys[0]})),
        )
        .await;
    assert_eq!(status, 201, "the first certificate after the database came back: {c}");
    let (_, users, _, _) = http
        .call("GET", format!("{sa}/api/v4/manage/users/?page_size=100"), None)
        .await;
    let names: Vec<&str> = users["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["username"].as_str().unwrap())
        .collect();
    for expected in ["admin", "svc-ha", "svc-race", "after-outage"] {
        assert!(names.contains(&expected), "{expected} lost: {names:?}");
    }
    assert!(!names.contains(&"during-outage"));
    drop(b);
    drop(a);
}
