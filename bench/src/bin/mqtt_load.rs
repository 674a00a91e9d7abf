//! An MQTT load generator (rumqttc, MQTT 3.1.1, plain TCP) for the broker scenarios:
//!
//! - `--mode connect`: `--concurrency` workers each CONNECT with the logins of a JSON-lines file
//!   (`{"username","password","client_id"}`), wait for the CONNACK and close, round-robin for
//!   `--seconds` or each login once (`--once`, a cold storm);
//! - `--mode publish`: each login connects once, then publishes QoS 1 to its `topic` and waits
//!   for the PUBACK, closed loop, for `--seconds` (every publish is an ACL check at the broker).
//!
//! It prints one JSON object: operations, refusals or errors, throughput, p50/p99 latency.
#![forbid(unsafe_code)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use rumqttc::{AsyncClient, ConnectionError, Event, EventLoop, MqttOptions, Packet, QoS};
use serde::Deserialize;

#[derive(Deserialize, Clone)]
struct Login {
    username: String,
    password: String,
    client_id: String,
    #[serde(default)]
    topic: String,
}

struct Args {
    addr: String,
    mode: String,
    file: String,
    concurrency: usize,
    seconds: f64,
    once: bool,
}

fn args() -> Args {
    let mut a = Args {
        addr: "127.0.0.1:1883".into(),
        mode: "connect".into(),
        file: String::new(),
        concurrency: 32,
        seconds: 10.0,
        once: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        let mut v = || it.next().unwrap_or_else(|| panic!("{k} needs a value"));
        match k.as_str() {
            "--addr" => a.addr = v(),
            "--mode" => a.mode = v(),
            "--file" => a.file = v(),
            "--concurrency" => a.concurrency = v().parse().expect("--concurrency N"),
            "--seconds" => a.seconds = v().parse().expect("--seconds S"),
            "--once" => a.once = true,
            other => panic!("unknown argument {other}"),
        }
    }
    a
}

fn options(addr: &str, login: &Login) -> MqttOptions {
    let (host, port) = addr.rsplit_once(':').expect("--addr host:port");
    let mut o = MqttOptions::new(login.client_id.clone(), host, port.parse().expect("a port"));
    o.set_credentials(login.username.clone(), login.password.clone())
        .set_keep_alive(Duration::from_secs(60))
        .set_clean_session(true);
    o
}

/// Polls until the CONNACK: Ok(true) accepted, Ok(false) refused.
async fn connected(events: &mut EventLoop) -> Result<bool, ConnectionError> {
    loop {
        match events.poll().await {
            Ok(Event::Incoming(Packet::ConnAck(_))) => return Ok(true),
            Ok(_) => {}
            Err(ConnectionError::ConnectionRefused(_)) => return Ok(false),
            Err(e) => return Err(e),
        }
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let a = args();
    let logins: Vec<Login> = std::fs::read_to_string(&a.file)
        .expect("--file")
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).expect("a login per line"))
        .collect();
    assert!(!logins.is_empty(), "no logins in {}", a.file);
    let logins = Arc::new(logins);
    let failed = Arc::new(AtomicUsize::new(0));
    let next = Arc::new(AtomicUsize::new(0));
    let deadline = Instant::now() + Duration::from_secs_f64(a.seconds);
    let started = Instant::now();
    let workers = if a.mode == "publish" {
        logins.len()
    } else {
        a.concurrency
    };
    let mut tasks = Vec::new();
    for w in 0..workers {
        let (logins, failed, next, addr, mode, once) = (
            logins.clone(),
            failed.clone(),
            next.clone(),
            a.addr.clone(),
            a.mode.clone(),
            a.once,
        );
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            if mode == "publish" {
                let login = &logins[w];
                let (client, mut events) = AsyncClient::new(options(&addr, login), 16);
                if !matches!(connected(&mut events).await, Ok(true)) {
                    failed.fetch_add(1, Ordering::Relaxed);
                    return latencies;
                }
                while Instant::now() < deadline {
                    let t = Instant::now();
                    client
                        .publish(login.topic.clone(), QoS::AtLeastOnce, false, b"x".to_vec())
                        .await
                        .expect("queued");
                    loop {
                        match events.poll().await {
                            Ok(Event::Incoming(Packet::PubAck(_))) => break,
                            Ok(_) => {}
                            Err(_) => {
                                failed.fetch_add(1, Ordering::Relaxed);
                                return latencies;
                            }
                        }
                    }
                    latencies.push(t.elapsed());
                }
                return latencies;
            }
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if (once && i >= logins.len()) || (!once && Instant::now() >= deadline) {
                    return latencies;
                }
                let login = &logins[i % logins.len()];
                let t = Instant::now();
                let (client, mut events) = AsyncClient::new(options(&addr, login), 4);
                match connected(&mut events).await {
                    Ok(true) => latencies.push(t.elapsed()),
                    _ => {
                        failed.fetch_add(1, Ordering::Relaxed);
                    }
                }
                let _ = client.try_disconnect();
                // Sends the DISCONNECT (or finds the connection gone) and closes the socket.
                let _ = tokio::time::timeout(Duration::from_millis(200), events.poll()).await;
            }
        }));
    }
    let mut lat: Vec<Duration> = Vec::new();
    for t in tasks {
        lat.extend(t.await.expect("a worker"));
    }
    let seconds = started.elapsed().as_secs_f64();
    lat.sort();
    let pct = |p: f64| -> f64 {
        if lat.is_empty() {
            return 0.0;
        }
        let i = ((lat.len() as f64 * p).ceil() as usize).clamp(1, lat.len()) - 1;
        lat[i].as_secs_f64() * 1000.0
    };
    println!(
        "{}",
        serde_json::json!({
            "ops": lat.len(),
            "errors": failed.load(Ordering::Relaxed),
            "seconds": seconds,
            "rps": lat.len() as f64 / seconds,
            "p50_ms": pct(0.50),
            "p99_ms": pct(0.99),
        })
    );
}
