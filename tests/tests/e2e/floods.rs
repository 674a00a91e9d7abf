//! Floods an outside review used against fleetca, each bounded in count and time: idle TCP
//! connections on the HTTPS listener, sign-ins from rotating addresses and 15 MB bodies. What is checked
//! is what a user relies on (HTTPS still answers; memory comes back), not a speed.

use std::net::TcpStream;
use std::process::Command;
use std::time::{Duration, Instant};

use fleetca_e2e::{Fleetca, Scratch, free_port, run, tool};

/// Resident memory of a process, in KiB.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap()
}

#[test]
fn idle_connections_do_not_starve_the_https_listener() {
    let dir = Scratch::new("flood-idle");
    let tls_port = free_port();
    let server = Fleetca::start_with(
        &dir.join("data"),
        &["--tls-listen", &format!("127.0.0.1:{tls_port}")],
        &[],
    );
    // 1,200 connections that never send a ClientHello (the review's 1,200 made every HTTPS
    // request wait 3 to 5 s).
    let idle: Vec<TcpStream> = (0..1_200)
        .map(|_| TcpStream::connect(("127.0.0.1", tls_port)).unwrap())
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    let started = Instant::now();
    let out = run(
        Command::new(tool("curl")).args([
            "-sk",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "--max-time",
            "2",
            &format!("https://127.0.0.1:{tls_port}/healthz"),
        ]),
        Duration::from_secs(10),
    );
    let took = started.elapsed();
    assert_eq!(
        out.stdout.trim(),
        "200",
        "HTTPS with 1,200 idle connections open: {}",
        out.combined()
    );
    println!("an HTTPS request beside 1,200 idle connections took {took:?}");
    drop(idle);
    drop(server);
}

#[test]
fn memory_comes_back_after_a_sign_in_flood_from_rotating_addresses() {
    let dir = Scratch::new("flood-signin");
    let server = Fleetca::start(&dir.join("data"));
    std::thread::sleep(Duration::from_millis(500));
    let before = rss_kib(server.pid());
    // 1,200 sign-ins with names that could be users', each from its own 127.x.y.1 address
    // (so no lockout stops them), 32 at a time: every one runs argon2 (19 MiB).
    let flood = r#"
import concurrent.futures, http.client, json, sys
port = int(sys.argv[1])
def attempt(i):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=30, source_address=(f"127.{(i >> 8) & 255}.{i & 255}.1", 0))
    c.request("POST", "/api/v4/auth/login", json.dumps({"username": f"user-{i}", "password": "x" * 64}), {"Content-Type": "application/json"})
    status = c.getresponse().status
    c.close()
    return status
with concurrent.futures.ThreadPoolExecutor(32) as pool:
    statuses = list(pool.map(attempt, range(1200)))
print(json.dumps({s: statuses.count(s) for s in set(statuses)}))
"#;
    let out = run(
        Command::new(tool("python3")).args(["-c", flood, &server.port.to_string()]),
        Duration::from_secs(300),
    );
    let counts = out.expect_success("the sign-in flood").trim().to_owned();
    assert!(counts.contains("401"), "sign-ins were refused as wrong: {counts}");
    assert!(!counts.contains("500"), "{counts}");
    std::thread::sleep(Duration::from_millis(500));
    let after = rss_kib(server.pid());
    println!("RSS before the flood {before} KiB, after {after} KiB; answers {counts}");
    assert!(
        after <= 2 * before,
        "RSS {before} KiB before, {after} KiB after 1,200 sign-ins: not within 2x"
    );
}

#[test]
fn hostile_15_mb_bodies_are_refused_and_memory_comes_back() {
    let dir = Scratch::new("flood-bodies");
    let server = Fleetca::start(&dir.join("data"));
    let admin = server.admin_token();
    std::thread::sleep(Duration::from_millis(500));
    let before = rss_kib(server.pid());
    // 100 bodies of 15 MB, 16 at a time, to a signed-in JSON endpoint, the sign-in and a
    // broker endpoint: each is refused once the body passes the limit (64 KiB).
    let flood = r#"
import concurrent.futures, http.client, json, sys
port, token = int(sys.argv[1]), sys.argv[2]
body = b'{"device_id": "' + b"a" * (15 * 1024 * 1024) + b'"}'
paths = ["/api/v4/manage/devices/", "/api/v4/auth/login", "/broker/auth"]
def attempt(i):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        c.request("POST", paths[i % 3], body, {"Content-Type": "application/json", "Authorization": f"Bearer {token}"})
        return c.getresponse().status
    except (BrokenPipeError, ConnectionResetError):
        return "closed"
    finally:
        c.close()
with concurrent.futures.ThreadPoolExecutor(16) as pool:
    statuses = list(pool.map(attempt, range(100)))
print(json.dumps({str(s): statuses.count(s) for s in set(statuses)}))
"#;
    let out = run(
        Command::new(tool("python3")).args(["-c", flood, &server.port.to_string(), &admin]),
        Duration::from_secs(300),
    );
    let counts = out.expect_success("the body flood").trim().to_owned();
    assert!(counts.contains("\"413\""), "no body was refused as too large: {counts}");
    assert!(!counts.contains("\"500\"") && !counts.contains("\"2"), "{counts}");
    std::thread::sleep(Duration::from_millis(500));
    let after = rss_kib(server.pid());
    println!("RSS before the flood {before} KiB, after {after} KiB; answers {counts}");
    assert!(
        after <= 2 * before,
        "RSS {before} KiB before, {after} KiB after 100 bodies of 15 MB: not within 2x"
    );
    // Still serving.
    server
        .get("/api/v4/manage/stats/", Some(&admin))
        .expect_json(200, "stats after the flood");
}
