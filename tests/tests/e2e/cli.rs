//! The client CLI against the real binary and a real server: login (the config file 0600),
//! whoami, API keys (rotated, deactivated), certificates written with the right modes and never
//! over existing files (renewed, revoked), devices, a 25,000-line CSV import killed half way
//! and run again (nothing created twice, nothing lost), products and their devices imported
//! with generated secrets, the device-side passwords, the exit codes, completions.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use fleetca_e2e::{Fleetca, Scratch, binary, openssl, run, run_with_input};
use serde_json::Value;

struct Cli<'a> {
    home: &'a Path,
    url: Option<String>,
}

impl Cli<'_> {
    fn cmd(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(binary());
        cmd.args(args).env("HOME", self.home).env_remove("XDG_CONFIG_HOME");
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("FLEETCA_") {
                cmd.env_remove(key);
            }
        }
        if let Some(url) = &self.url {
            cmd.env("FLEETCA_URL", url);
        }
        cmd
    }

    fn run(&self, args: &[&str]) -> fleetca_e2e::Output {
        run(&mut self.cmd(args), Duration::from_secs(120))
    }

    /// Runs with `--json` and parses the output; panics unless it exited 0.
    fn json(&self, args: &[&str]) -> Value {
        let mut all = args.to_vec();
        all.push("--json");
        let out = self.run(&all);
        let text = out.expect_success(&format!("fleetca {}", args.join(" ")));
        serde_json::from_str(text).unwrap_or_else(|e| panic!("fleetca {}: not JSON ({e}):\n{text}", args.join(" ")))
    }
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn the_cli_drives_keys_certificates_devices_and_a_resumable_import() {
    let dir = Scratch::new("cli");
    let server = Fleetca::start(&dir.join("data"));
    let admin = server.admin_token();
    let home = dir.join("home");
    std::fs::create_dir_all(&home).unwrap();
    let cli = Cli { home: &home, url: None };

    // login: the token from standard input; the file holds it with mode 0600.
    let out = run_with_input(
        &mut cli.cmd(&["login", "--url", &server.base]),
        Some(admin.as_bytes()),
        Duration::from_secs(30),
    );
    out.expect_success("fleetca login");
    let config = home.join(".config/fleetca/config.toml");
    assert_eq!(mode(&config), 0o600);
    assert!(std::fs::read_to_string(&config).unwrap().contains(&server.base));
    let me = cli.json(&["whoami"]);
    assert_eq!(
        (me["username"].as_str(), me["role"].as_str()),
        (Some("admin"), Some("admin"))
    );

    // API keys.
    let key = cli.json(&["keys", "create", "svc-cli", "--enterprise", "acme"]);
    assert!(key["token"].as_str().unwrap().starts_with("fca_"), "{key}");
    let listed = cli.json(&["keys", "list", "--enterprise", "acme"]);
    assert!(listed.as_array().unwrap().iter().any(|k| k["username"] == "svc-cli"));
    let shown = cli.json(&["keys", "show", "svc-cli"]);
    assert_eq!(shown["id"], key["id"]);
    assert!(shown.get("token").is_none());
    let table = cli.run(&["keys", "list"]);
    assert!(
        table.expect_success("keys list").starts_with("ID"),
        "a table with headings"
    );
    // The same username again: the API refuses, exit 2 with its message.
    let again = cli.run(&["keys", "create", "svc-cli", "--enterprise", "acme"]);
    assert_eq!(again.status.code(), Some(2), "{}", again.combined());
    assert!(again.stderr.contains("HTTP 409"), "{}", again.stderr);

    // Certificates: three files, the key 0600; an existing file is not replaced.
    let certs = dir.join("certs");
    let cert = cli.json(&[
        "certs",
        "create",
        "--key",
        "svc-cli",
        "--validity",
        "2y",
        "--out",
        certs.to_str().unwrap(),
    ]);
    assert_eq!(mode(&certs.join("client.key")), 0o600);
    assert_eq!(mode(&certs.join("client.crt")), 0o644);
    assert!(
        cert.get("private_key_pem").is_none(),
        "the key is in the file, not on the screen"
    );
    let verified = openssl([
        "verify",
        "-CAfile",
        certs.join("ca.crt").to_str().unwrap(),
        "-untrusted",
        certs.join("client.crt").to_str().unwrap(),
        certs.join("client.crt").to_str().unwrap(),
    ]);
    verified.expect_success("openssl verify");
    let before = std::fs::read(certs.join("client.key")).unwrap();
    let refused = cli.run(&["certs", "create", "--key", "svc-cli", "--out", certs.to_str().unwrap()]);
    assert_eq!(refused.status.code(), Some(1), "{}", refused.combined());
    assert!(refused.stderr.contains("--force"), "{}", refused.stderr);
    assert_eq!(
        std::fs::read(certs.join("client.key")).unwrap(),
        before,
        "nothing overwritten"
    );
    let bad = cli.run(&[
        "certs",
        "create",
        "--key",
        "svc-cli",
        "--validity",
        "forever",
        "--out",
        "/tmp/x",
    ]);
    assert_eq!(bad.status.code(), Some(1), "{}", bad.combined());
    let expiring = cli.json(&["certs", "list", "--key", "svc-cli", "--expiring-within", "800d"]);
    assert_eq!(expiring.as_array().unwrap().len(), 1);
    let none = cli.json(&["certs", "list", "--key", "svc-cli", "--expiring-within", "30d"]);
    assert_eq!(none.as_array().unwrap().len(), 0);
    // Renew: a new certificate (and key) for the same name, written to another directory.
    let renewed_dir = dir.join("renewed");
    let renewed = cli.json(&[
        "certs",
        "renew",
        cert["id"].as_str().unwrap(),
        "--out",
        renewed_dir.to_str().unwrap(),
    ]);
    assert_ne!(renewed["id"], cert["id"], "{renewed}");
    assert_eq!(renewed["name"], cert["name"], "{renewed}");
    assert_eq!(mode(&renewed_dir.join("client.key")), 0o600);
    openssl([
        "verify",
        "-CAfile",
        renewed_dir.join("ca.crt").to_str().unwrap(),
        "-untrusted",
        renewed_dir.join("client.crt").to_str().unwrap(),
        renewed_dir.join("client.crt").to_str().unwrap(),
    ])
    .expect_success("openssl verify the renewed certificate");
    let revoked = cli.json(&[
        "certs",
        "revoke",
        cert["id"].as_str().unwrap(),
        "--reason",
        "keyCompromise",
    ]);
    assert_eq!(revoked["status"], "revoked", "{revoked}");

    // Rotate a key's token: the new one works, the old one no longer; deactivate it: its
    // certificates are revoked.
    let rotated = cli.json(&["keys", "rotate", "svc-cli"]);
    let new_token = rotated["token"].as_str().unwrap().to_owned();
    assert_ne!(rotated["token"], key["token"]);
    let whoami =
        |token: &str| fleetca_e2e::http::request("GET", &server.url("/api/v4/auth/whoami"), Some(token), None).status;
    assert_eq!(whoami(&new_token), 200);
    assert_eq!(whoami(key["token"].as_str().unwrap()), 401);
    let deactivated = cli.json(&["keys", "deactivate", "svc-cli"]);
    assert_eq!(deactivated["is_active"], false, "{deactivated}");
    assert_eq!(whoami(&new_token), 401);
    // A second key's certificates, revoked in bulk by key.
    cli.json(&["keys", "create", "svc-cli-2", "--enterprise", "acme"]);
    for sub in ["a", "b"] {
        cli.json(&[
            "certs",
            "create",
            "--key",
            "svc-cli-2",
            "--out",
            dir.join(&format!("certs-2{sub}")).to_str().unwrap(),
        ]);
    }
    let bulk = cli.json(&[
        "certs",
        "revoke",
        "--key",
        "svc-cli-2",
        "--reason",
        "cessationOfOperation",
    ]);
    assert_eq!(bulk["revoked"].as_array().unwrap().len(), 2, "{bulk}");
    let after = cli.json(&["certs", "list", "--key", "svc-cli"]);
    assert!(
        after.as_array().unwrap().iter().all(|c| c["status"] == "revoked"),
        "a deactivated key's certificates are revoked: {after}"
    );

    // Devices, and the device side's password.
    let dev = cli.json(&[
        "devices",
        "create",
        "dev-cli",
        "--tenant",
        "acme",
        "--password",
        "device-secret-1",
    ]);
    assert_eq!(dev["mqtt_username"], "device=dev-cli&tenant=acme");
    let pw = cli.run(&[
        "device-password",
        "--device",
        "dev-cli",
        "--realm",
        "acme",
        "--password",
        "device-secret-1",
    ]);
    let pw = pw.expect_success("device-password").trim().to_owned();
    assert!(pw.starts_with("signature=") && pw.contains("&timestamp="), "{pw}");
    let auth = fleetca_e2e::http::request(
        "POST",
        &server.url("/broker/auth"),
        None,
        Some(&serde_json::json!({"username": "device=dev-cli&tenant=acme", "password": pw, "clientid": "dev-cli"})),
    );
    assert_eq!(auth.status, 200, "fleetca accepts the password the CLI computed");
    let shown = cli.json(&["devices", "show", "dev-cli", "--tenant", "acme"]);
    assert_eq!(shown["device_id"], "dev-cli");
    let listed = cli.json(&["devices", "list", "--tenant", "acme", "--search", "dev-cli"]);
    assert_eq!(listed.as_array().unwrap().len(), 1, "{listed}");
    // Rotate: a generated password, printed once; the old one stops working.
    let rotated = cli.json(&["devices", "rotate", "dev-cli", "--tenant", "acme"]);
    let new_password = rotated["password"].as_str().unwrap().to_owned();
    let device_auth = |password: &str| {
        let pw = cli.run(&[
            "device-password",
            "--device",
            "dev-cli",
            "--realm",
            "acme",
            "--password",
            password,
        ]);
        let pw = pw.expect_success("device-password").trim().to_owned();
        fleetca_e2e::http::request(
            "POST",
            &server.url("/broker/auth"),
            None,
            Some(&serde_json::json!({"username": "device=dev-cli&tenant=acme", "password": pw, "clientid": "dev-cli"})),
        )
        .status
    };
    assert_eq!(device_auth(&new_password), 200);
    assert_eq!(device_auth("device-secret-1"), 403);
    let disabled = cli.json(&["devices", "disable", "dev-cli", "--tenant", "acme"]);
    assert_eq!(disabled["is_active"], false);
    cli.json(&["devices", "enable", "dev-cli", "--tenant", "acme"]);
    cli.run(&["devices", "delete", "dev-cli", "--tenant", "acme"])
        .expect_success("devices delete");

    // A sign-based login, checked against the same computation done with openssl.
    let sign = cli.json(&[
        "sign-password",
        "--scheme",
        "enos",
        "--product-key",
        "pk1",
        "--device-key",
        "dk1",
        "--secret",
        "s3cret",
        "--client-id",
        "c1",
        "--timestamp",
        "1700000000000",
    ]);
    let digest = run_with_input(
        Command::new("openssl").args(["dgst", "-sha256", "-r"]),
        Some(b"clientIdc1deviceKeydk1productKeypk1timestamp1700000000000s3cret"),
        Duration::from_secs(10),
    );
    let expected = digest.stdout.split_whitespace().next().unwrap().to_ascii_uppercase();
    assert_eq!(sign["password"], expected.as_str());
    assert_eq!(
        sign["client_id"],
        "c1|securemode=2,signmethod=sha256,timestamp=1700000000000|"
    );

    // A CSV of 25,000 devices, the import killed half way, then run again.
    let csv = dir.join("devices.csv");
    let mut text = String::from("device_id,tenant,password\n");
    for i in 0..25_000 {
        text.push_str(&format!("imp-{i:05},acme,device-password-{i}\n"));
    }
    std::fs::write(&csv, text).unwrap();
    let dry = cli.json(&["devices", "import", csv.to_str().unwrap(), "--dry-run"]);
    assert_eq!(dry["devices"], 25_000);
    let count = || {
        let r = fleetca_e2e::http::request(
            "GET",
            &server.url("/api/v4/manage/devices/?tenant=acme&search=imp-&page_size=1"),
            Some(&admin),
            None,
        );
        r.json()["count"].as_u64().unwrap()
    };
    assert_eq!(count(), 0, "a dry run creates nothing");
    let mut child = cli
        .cmd(&["devices", "import", csv.to_str().unwrap(), "--batch", "500"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while count() < 3_000 {
        assert!(Instant::now() < deadline, "the import made no progress");
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    // A batch in flight when the client died still commits on the server.
    std::thread::sleep(Duration::from_millis(1500));
    let halfway = count();
    assert!(halfway < 25_000, "killed before the end ({halfway})");
    let resumed = cli.json(&["devices", "import", csv.to_str().unwrap(), "--batch", "500"]);
    assert_eq!(resumed["failed"], 0, "{resumed}");
    assert_eq!(
        resumed["created"].as_u64().unwrap() + resumed["already_there"].as_u64().unwrap(),
        25_000,
        "{resumed}"
    );
    assert_eq!(resumed["already_there"].as_u64().unwrap(), halfway, "{resumed}");
    assert_eq!(count(), 25_000, "every line once");
    println!("import killed at {halfway} devices, resumed: {resumed}");

    // Exit codes: network 3; usage 1.
    let nowhere = Cli {
        home: &home,
        url: Some("http://127.0.0.1:9".into()),
    };
    let unreachable = nowhere.run(&["keys", "list"]);
    assert_eq!(unreachable.status.code(), Some(3), "{}", unreachable.combined());
    let completions = cli.run(&["completions", "bash"]);
    assert!(completions.expect_success("completions").contains("fleetca"));
}

#[test]
fn the_renew_daemon_reenrolls_over_est_and_runs_its_hook() {
    let dir = Scratch::new("cli-renew");
    let data = dir.join("data");
    let tls_port = fleetca_e2e::free_port();
    let listen = format!("127.0.0.1:{tls_port}");
    // Renewal allowed at any point of the lifetime, so a fresh certificate is due at once.
    let config = dir.write(
        "fleetca.toml",
        "renewal_window_percent = 100\nrenewal_grace_hours = 0.01\n",
        false,
    );
    let server = Fleetca::start_with(
        &data,
        &["--tls-listen", &listen, "--config", config.to_str().unwrap()],
        &[],
    );
    let admin = server.admin_token();
    let home = dir.join("home");
    std::fs::create_dir_all(&home).unwrap();
    let cli = Cli {
        home: &home,
        url: Some(server.base.clone()),
    };
    let with_token = |args: &[&str]| {
        let mut cmd = cli.cmd(args);
        cmd.env("FLEETCA_TOKEN", &admin);
        run(&mut cmd, Duration::from_secs(60))
    };
    with_token(&["keys", "create", "svc-renew", "--enterprise", "acme"]).expect_success("keys create");
    let files = dir.join("client");
    with_token(&[
        "certs",
        "create",
        "--key",
        "svc-renew",
        "--out",
        files.to_str().unwrap(),
    ])
    .expect_success("certs create");
    let first = std::fs::read_to_string(files.join("client.crt")).unwrap();
    let est = format!("https://127.0.0.1:{tls_port}");
    let hook_log = dir.join("hook.log");
    let args: [String; 9] = [
        "renew".to_owned(),
        "--cert".to_owned(),
        files.join("client.crt").to_str().unwrap().to_owned(),
        "--key".to_owned(),
        files.join("client.key").to_str().unwrap().to_owned(),
        "--url".to_owned(),
        est.clone(),
        "--ca-file".to_owned(),
        files.join("ca.crt").to_str().unwrap().to_owned(),
    ];
    let args: Vec<&str> = args.iter().map(String::as_str).collect();

    // Not due yet at the default two thirds: nothing happens.
    let early = cli.run(&args);
    early.expect_success("renew, not due");
    assert!(early.stderr.contains("not due yet"), "{}", early.stderr);
    assert_eq!(std::fs::read_to_string(files.join("client.crt")).unwrap(), first);

    // The daemon, due at once (--after-percent 0): renews, writes both files, runs the hook.
    let mut daemon_args = args.clone();
    daemon_args.extend(["--daemon", "--after-percent", "0", "--exec"]);
    let hook = format!("echo \"$FLEETCA_CERT_FILE\" >> {}", hook_log.display());
    daemon_args.push(&hook);
    let mut daemon = cli
        .cmd(&daemon_args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::fs::read_to_string(&hook_log).unwrap_or_default().lines().count() < 2 {
        if let Some(status) = daemon.try_wait().unwrap() {
            let mut err = String::new();
            use std::io::Read;
            daemon.stderr.take().unwrap().read_to_string(&mut err).unwrap();
            panic!("the daemon exited ({status}): {err}");
        }
        if Instant::now() > deadline {
            daemon.kill().unwrap();
            let mut err = String::new();
            use std::io::Read;
            daemon.stderr.take().unwrap().read_to_string(&mut err).unwrap();
            panic!(
                "the daemon renewed fewer than twice in 30 s:\n{err}\n{}",
                server.stderr()
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    daemon.kill().unwrap();
    daemon.wait().unwrap();
    let renewed = std::fs::read_to_string(files.join("client.crt")).unwrap();
    assert_ne!(renewed, first, "a new certificate");
    assert_eq!(mode(&files.join("client.key")), 0o600);
    openssl([
        "verify",
        "-CAfile",
        files.join("ca.crt").to_str().unwrap(),
        "-untrusted",
        files.join("client.crt").to_str().unwrap(),
        files.join("client.crt").to_str().unwrap(),
    ])
    .expect_success("openssl verify the renewed certificate");
    // The key on disk is the renewed certificate's.
    let cert_key = openssl([
        "x509",
        "-noout",
        "-pubkey",
        "-in",
        files.join("client.crt").to_str().unwrap(),
    ]);
    let key_pub = openssl(["pkey", "-pubout", "-in", files.join("client.key").to_str().unwrap()]);
    assert_eq!(
        cert_key.expect_success("x509 -pubkey"),
        key_pub.expect_success("pkey -pubout")
    );
    let listed = server
        .get(
            "/api/v4/manage/mqtt-certificates/?kind=client&page_size=50",
            Some(&admin),
        )
        .expect_json(200, "certificates");
    assert!(
        listed["count"].as_u64().unwrap() >= 3,
        "the first and at least two renewals: {listed}"
    );
}

#[test]
fn the_cli_manages_products_and_imports_their_devices_with_generated_secrets() {
    let dir = Scratch::new("cli-products");
    let server = Fleetca::start(&dir.join("data"));
    let home = dir.join("home");
    std::fs::create_dir_all(&home).unwrap();
    let cli = Cli {
        home: &home,
        url: Some(server.base.clone()),
    };
    let admin = server.admin_token();
    let cli_json = |args: &[&str]| {
        let mut all = args.to_vec();
        all.push("--json");
        let mut cmd = cli.cmd(&all);
        cmd.env("FLEETCA_TOKEN", &admin);
        let out = run(&mut cmd, Duration::from_secs(120));
        let text = out.expect_success(&format!("fleetca {}", args.join(" ")));
        serde_json::from_str::<Value>(text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
    };
    let cli_run = |args: &[&str]| {
        let mut cmd = cli.cmd(args);
        cmd.env("FLEETCA_TOKEN", &admin);
        run(&mut cmd, Duration::from_secs(120))
    };

    // A product: its secret printed once, then never again.
    let product = cli_json(&[
        "products",
        "create",
        "Meters",
        "--scheme",
        "enos",
        "--product-key",
        "pkcli000001",
        "--enterprise",
        "acme",
    ]);
    assert!(
        product["product_secret"].as_str().is_some_and(|s| s.len() >= 16),
        "{product}"
    );
    let shown = cli_json(&["products", "show", "pkcli000001"]);
    assert!(shown.get("product_secret").is_none(), "{shown}");
    let listed = cli_json(&["products", "list", "--scheme", "enos"]);
    assert!(
        listed
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["product_key"] == "pkcli000001")
    );

    // A device with a secret given, its login computed by the CLI and accepted by fleetca.
    cli_json(&[
        "products",
        "devices",
        "create",
        "meter-0",
        "--product",
        "pkcli000001",
        "--secret",
        "meter-secret-000-zero",
    ]);
    let login = |device_key: &str, secret: &str| {
        let l = cli_json(&[
            "sign-password",
            "--scheme",
            "enos",
            "--product-key",
            "pkcli000001",
            "--device-key",
            device_key,
            "--secret",
            secret,
        ]);
        fleetca_e2e::http::request(
            "POST",
            &server.url("/broker/auth"),
            None,
            Some(
                &serde_json::json!({"username": l["username"], "password": l["password"], "clientid": l["client_id"]}),
            ),
        )
        .status
    };
    assert_eq!(login("meter-0", "meter-secret-000-zero"), 200);
    assert_eq!(login("meter-0", "not-the-secret"), 403);

    // An import whose lines carry no secret: refused without --secrets-out, nothing created.
    let csv = dir.join("meters.csv");
    let mut text = String::from("device_key,description\n");
    for i in 1..=3_000 {
        text.push_str(&format!("meter-{i},line {i}\n"));
    }
    std::fs::write(&csv, text).unwrap();
    let refused = cli_run(&[
        "products",
        "devices",
        "import",
        "--product",
        "pkcli000001",
        csv.to_str().unwrap(),
    ]);
    assert_eq!(refused.status.code(), Some(1), "{}", refused.combined());
    assert!(refused.stderr.contains("--secrets-out"), "{}", refused.stderr);
    let count = || {
        server
            .get("/api/v4/manage/products/pkcli000001/devices/?page_size=1", Some(&admin))
            .expect_json(200, "devices")["count"]
            .as_u64()
            .unwrap()
    };
    assert_eq!(count(), 1, "nothing imported");

    // With --secrets-out: every generated secret lands in a 0600 CSV, batch by batch.
    let secrets = dir.join("secrets.csv");
    let imported = cli_json(&[
        "products",
        "devices",
        "import",
        "--product",
        "pkcli000001",
        csv.to_str().unwrap(),
        "--batch",
        "700",
        "--secrets-out",
        secrets.to_str().unwrap(),
    ]);
    assert_eq!(imported["created"], 3_000, "{imported}");
    assert_eq!(count(), 3_001);
    assert_eq!(mode(&secrets), 0o600);
    let saved = std::fs::read_to_string(&secrets).unwrap();
    let mut lines = saved.lines();
    assert_eq!(lines.next(), Some("product_key,device_key,mqtt_username,device_secret"));
    let rows: Vec<Vec<&str>> = lines.map(|l| l.split(',').collect()).collect();
    assert_eq!(rows.len(), 3_000, "one line per generated secret");
    let last = rows.last().unwrap();
    assert_eq!(login(last[1], last[3]), 200, "a saved secret logs in");

    // Run again: everything is there already, nothing created twice.
    let again = cli_json(&[
        "products",
        "devices",
        "import",
        "--product",
        "pkcli000001",
        csv.to_str().unwrap(),
        "--secrets-out",
        secrets.to_str().unwrap(),
    ]);
    assert_eq!(
        (again["created"].as_u64(), again["already_there"].as_u64()),
        (Some(0), Some(3_000)),
        "{again}"
    );
    assert_eq!(count(), 3_001);
    // A secrets file others may read is refused, not appended to.
    std::fs::set_permissions(&secrets, std::fs::Permissions::from_mode(0o644)).unwrap();
    let open = cli_run(&[
        "products",
        "devices",
        "import",
        "--product",
        "pkcli000001",
        csv.to_str().unwrap(),
        "--secrets-out",
        secrets.to_str().unwrap(),
    ]);
    assert_eq!(open.status.code(), Some(1), "{}", open.combined());
    assert!(open.stderr.contains("chmod 600"), "{}", open.stderr);

    // The rest of the device and product commands.
    let disabled = cli_json(&["products", "devices", "disable", "meter-0", "--product", "pkcli000001"]);
    assert_eq!(disabled["is_active"], false);
    assert_eq!(
        login("meter-0", "meter-secret-000-zero"),
        403,
        "a disabled device is refused"
    );
    cli_json(&["products", "devices", "enable", "meter-0", "--product", "pkcli000001"]);
    let rotated = cli_json(&[
        "products",
        "devices",
        "rotate-secret",
        "meter-0",
        "--product",
        "pkcli000001",
    ]);
    let new_secret = rotated["device_secret"].as_str().unwrap().to_owned();
    assert_eq!(
        login("meter-0", "meter-secret-000-zero"),
        403,
        "the old secret stops working"
    );
    assert_eq!(login("meter-0", &new_secret), 200);
    let devices = cli_json(&[
        "products",
        "devices",
        "list",
        "--product",
        "pkcli000001",
        "--search",
        "meter-29",
    ]);
    assert_eq!(
        devices.as_array().unwrap().len(),
        111,
        "meter-29, meter-290…299 and meter-2900…2999, across pages"
    );
    cli_run(&["products", "devices", "delete", "meter-0", "--product", "pkcli000001"])
        .expect_success("products devices delete");
    let off = cli_json(&["products", "disable", "pkcli000001"]);
    assert_eq!(off["is_active"], false);
    assert_eq!(login(last[1], last[3]), 403, "a disabled product's devices are refused");
    let secret = cli_json(&["products", "rotate-secret", "pkcli000001"]);
    assert!(secret["product_secret"].is_string());
    cli_run(&["products", "delete", "pkcli000001"]).expect_success("products delete");
    let gone = cli_run(&["products", "show", "pkcli000001"]);
    assert_eq!(gone.status.code(), Some(2), "{}", gone.combined());
}

#[test]
fn a_platform_export_moves_over_products_and_10000_devices_killed_half_way_and_resumed() {
    let dir = Scratch::new("cli-migrate");
    let server = Fleetca::start(&dir.join("data"));
    let home = dir.join("home");
    std::fs::create_dir_all(&home).unwrap();
    let cli = Cli {
        home: &home,
        url: Some(server.base.clone()),
    };
    let admin = server.admin_token();
    let with_token = |args: &[&str]| {
        let mut cmd = cli.cmd(args);
        cmd.env("FLEETCA_TOKEN", &admin);
        cmd
    };
    let cli_json = |args: &[&str]| {
        let mut all = args.to_vec();
        all.push("--json");
        let out = run(&mut with_token(&all), Duration::from_secs(300));
        let text = out.expect_success(&format!("fleetca {}", args.join(" ")));
        serde_json::from_str::<Value>(text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
    };

    // Products as JSON Lines with the platforms' names: an EnOS product with its 8-character
    // key and the secret it had there, an Alibaba one whose secret fleetca generates.
    let products = dir.join("products.jsonl");
    std::fs::write(
        &products,
        concat!(
            r#"{"productKey": "EhoS3s9r", "productName": "Inverters", "scheme": "enos", "productSecret": "EnOS-product-secret-0001", "dynamicActivation": true}"#,
            "\n",
            r#"{"productKey": "a1B2c3D4e5F", "productName": "Lamps", "scheme": "aliyun", "dynamic_activation": "false"}"#,
            "\n",
        ),
    )
    .unwrap();
    let refused = run(
        &mut with_token(&["products", "import", products.to_str().unwrap()]),
        Duration::from_secs(60),
    );
    assert_eq!(refused.status.code(), Some(1), "{}", refused.combined());
    assert!(refused.stderr.contains("--secrets-out"), "{}", refused.stderr);
    let product_secrets = dir.join("product-secrets.csv");
    let imported = cli_json(&[
        "products",
        "import",
        products.to_str().unwrap(),
        "--secrets-out",
        product_secrets.to_str().unwrap(),
    ]);
    assert_eq!(imported["created"], 2, "{imported}");
    let saved = std::fs::read_to_string(&product_secrets).unwrap();
    assert!(saved.starts_with("product_key,product_secret\na1B2c3D4e5F,"), "{saved}");
    assert!(
        !saved.contains("EnOS-product-secret-0001"),
        "a given secret is never written out"
    );
    let output = run(
        &mut with_token(&[
            "products",
            "import",
            products.to_str().unwrap(),
            "--secrets-out",
            product_secrets.to_str().unwrap(),
        ]),
        Duration::from_secs(60),
    );
    let text = output.expect_success("products import again");
    assert!(text.contains("0 created, 2 already there"), "{text}");
    assert!(
        !output.combined().contains("EnOS-product-secret-0001"),
        "secrets are never printed"
    );
    let enos = cli_json(&["products", "show", "EhoS3s9r"]);
    assert_eq!(enos["max_clock_skew_seconds"], Value::Null, "{enos}");
    assert_eq!(enos["dynamic_activation"], true, "{enos}");

    // The EnOS export of 10,000 devices with their secrets (deviceKey, deviceSecret), the
    // import killed half way, then run again.
    let export = dir.join("enos-devices.csv");
    let mut text = String::from("productKey,deviceKey,deviceSecret\n");
    for i in 0..10_000 {
        text.push_str(&format!("EhoS3s9r,dk{i:08},device-secret-{i:010}\n"));
    }
    std::fs::write(&export, text).unwrap();
    let count = || {
        server
            .get("/api/v4/manage/products/EhoS3s9r/devices/?page_size=1", Some(&admin))
            .expect_json(200, "devices")["count"]
            .as_u64()
            .unwrap()
    };
    let mut child = with_token(&[
        "products",
        "devices",
        "import",
        export.to_str().unwrap(),
        "--batch",
        "500",
    ])
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    while count() < 2_000 {
        assert!(Instant::now() < deadline, "the import made no progress");
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap();
    let killed = child.wait_with_output().unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    let halfway = count();
    assert!(halfway < 10_000, "killed before the end ({halfway})");
    let printed = format!(
        "{}{}",
        String::from_utf8_lossy(&killed.stdout),
        String::from_utf8_lossy(&killed.stderr)
    );
    assert!(
        !printed.contains("device-secret-"),
        "secrets are never printed: {printed}"
    );
    let resumed = cli_json(&[
        "products",
        "devices",
        "import",
        export.to_str().unwrap(),
        "--batch",
        "500",
    ]);
    assert_eq!(resumed["failed"], 0, "{resumed}");
    assert_eq!(resumed["already_there"].as_u64().unwrap(), halfway, "{resumed}");
    assert_eq!(count(), 10_000, "every line once");
    println!("platform export import killed at {halfway} devices, resumed: {resumed}");

    // An imported device holds its secret: activated, and its login works as the SDK makes it.
    let device = server
        .get("/api/v4/manage/products/EhoS3s9r/devices/dk00009999/", Some(&admin))
        .expect_json(200, "device");
    assert_eq!(device["activated"], true, "{device}");
    let ts = format!("{}.25", chrono_free_millis());
    let content =
        format!("clientIddk00009999deviceKeydk00009999productKeyEhoS3s9rtimestamp{ts}device-secret-0000009999");
    let digest = run_with_input(
        std::process::Command::new(fleetca_e2e::tool("openssl")).args(["dgst", "-sha256", "-r"]),
        Some(content.as_bytes()),
        Duration::from_secs(30),
    );
    let password = digest
        .expect_success("openssl dgst")
        .split_whitespace()
        .next()
        .unwrap()
        .to_owned();
    let auth = fleetca_e2e::http::request(
        "POST",
        &server.url("/broker/auth"),
        None,
        Some(&serde_json::json!({
            "username": "dk00009999&EhoS3s9r",
            "clientid": format!("dk00009999|securemode=2,signmethod=hmacsha256,timestamp={ts}|"),
            "password": password,
        })),
    );
    assert_eq!(auth.status, 200, "an imported secret logs in");

    // Alibaba's export names devices deviceName; a line of another product is refused with
    // --product, and nothing is sent.
    let ali = dir.join("aliyun-devices.csv");
    std::fs::write(&ali, "productKey,deviceName,deviceSecret\na1B2c3D4e5F,lamp-0001,Alibaba-device-secret-0001\nEhoS3s9r,lamp-0002,Alibaba-device-secret-0002\n").unwrap();
    let mixed = run(
        &mut with_token(&[
            "products",
            "devices",
            "import",
            "--product",
            "a1B2c3D4e5F",
            ali.to_str().unwrap(),
        ]),
        Duration::from_secs(60),
    );
    assert_eq!(mixed.status.code(), Some(1), "{}", mixed.combined());
    assert!(mixed.stderr.contains("line 3"), "{}", mixed.stderr);
    std::fs::write(
        &ali,
        "productKey,deviceName,deviceSecret\na1B2c3D4e5F,lamp-0001,Alibaba-device-secret-0001\n",
    )
    .unwrap();
    let lamps = cli_json(&["products", "devices", "import", ali.to_str().unwrap()]);
    assert_eq!(lamps["created"], 1, "{lamps}");
}

/// Now, in Unix milliseconds.
fn chrono_free_millis() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis()
}
