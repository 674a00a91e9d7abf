//! A closed-loop HTTP/1.1 load generator: `--concurrency` keep-alive connections send the
//! requests of a JSON-lines file (each line `{"method","path","body"?,"raw"?,"headers"?}`:
//! `body` is sent as JSON, `raw` as it is with the line's own Content-Type header), either
//! each once (`--once`) or round-robin for `--seconds`. It prints one JSON object: requests,
//! how many got the expected status, throughput, p50/p99 latency, and the peak RSS of
//! `--pid` sampled every 20 ms.
#![forbid(unsafe_code)]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde::Deserialize;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

#[derive(Deserialize)]
struct Req {
    method: String,
    path: String,
    #[serde(default)]
    body: Option<serde_json::Value>,
    #[serde(default)]
    raw: Option<String>,
    #[serde(default)]
    headers: Vec<(String, String)>,
}

struct Args {
    addr: String,
    concurrency: usize,
    file: String,
    once: bool,
    seconds: f64,
    expect: u16,
    pid: Option<u32>,
}

fn args() -> Args {
    let mut a = Args {
        addr: "127.0.0.1:8080".into(),
        concurrency: 32,
        file: String::new(),
        once: false,
        seconds: 10.0,
        expect: 200,
        pid: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        let mut v = || it.next().unwrap_or_else(|| panic!("{k} needs a value"));
        match k.as_str() {
            "--addr" => a.addr = v(),
            "--concurrency" => a.concurrency = v().parse().expect("--concurrency N"),
            "--file" => a.file = v(),
            "--once" => a.once = true,
            "--seconds" => a.seconds = v().parse().expect("--seconds S"),
            "--expect" => a.expect = v().parse().expect("--expect STATUS"),
            "--pid" => a.pid = Some(v().parse().expect("--pid PID")),
            other => panic!("unknown argument {other}"),
        }
    }
    a
}

fn encode(r: &Req, host: &str) -> Vec<u8> {
    let body = match (&r.body, &r.raw) {
        (Some(b), _) => serde_json::to_vec(b).unwrap(),
        (None, Some(raw)) => raw.clone().into_bytes(),
        (None, None) => Vec::new(),
    };
    let mut head = format!(
        "{} {} HTTP/1.1\r\nHost: {host}\r\nContent-Length: {}\r\n",
        r.method,
        r.path,
        body.len()
    );
    if r.body.is_some() {
        head.push_str("Content-Type: application/json\r\n");
    }
    for (k, v) in &r.headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    let mut out = head.into_bytes();
    out.extend(body);
    out
}

/// Sends one request on the connection and reads the response; returns its status.
async fn roundtrip(conn: &mut BufReader<TcpStream>, req: &[u8]) -> std::io::Result<u16> {
    conn.get_mut().write_all(req).await?;
    let mut line = String::new();
    conn.read_line(&mut line).await?;
    let status: u16 = line.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let mut length = 0usize;
    loop {
        line.clear();
        conn.read_line(&mut line).await?;
        if line == "\r\n" || line.is_empty() {
            break;
        }
        if let Some((k, v)) = line.split_once(':')
            && k.eq_ignore_ascii_case("content-length")
        {
            length = v.trim().parse().unwrap_or(0);
        }
    }
    let mut body = vec![0u8; length];
    conn.read_exact(&mut body).await?;
    Ok(status)
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

#[tokio::main]
async fn main() {
    let a = args();
    let text = std::fs::read_to_string(&a.file).expect("--file");
    let reqs: Arc<Vec<Vec<u8>>> = Arc::new(
        text.lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| encode(&serde_json::from_str(l).expect("request line"), &a.addr))
            .collect(),
    );
    let next = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let peak = Arc::new(AtomicUsize::new(0));
    if let Some(pid) = a.pid {
        let (peak, stop) = (peak.clone(), stop.clone());
        tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                peak.fetch_max(rss_kib(pid) as usize, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        });
    }
    let started = Instant::now();
    let deadline = started + Duration::from_secs_f64(a.seconds);
    let mut tasks = Vec::new();
    for _ in 0..a.concurrency {
        let (reqs, next, addr, once, expect) = (reqs.clone(), next.clone(), a.addr.clone(), a.once, a.expect);
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            let (mut ok, mut bad) = (0usize, 0usize);
            let mut conn = BufReader::new(TcpStream::connect(&addr).await.expect("connect"));
            conn.get_ref().set_nodelay(true).ok();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if once && i >= reqs.len() || !once && Instant::now() >= deadline {
                    break;
                }
                let t = Instant::now();
                match roundtrip(&mut conn, &reqs[i % reqs.len()]).await {
                    Ok(s) if s == expect => ok += 1,
                    Ok(_) => bad += 1,
                    Err(_) => {
                        bad += 1;
                        conn = BufReader::new(TcpStream::connect(&addr).await.expect("reconnect"));
                    }
                }
                lat.push(t.elapsed());
            }
            (lat, ok, bad)
        }));
    }
    let mut lat = Vec::new();
    let (mut ok, mut bad) = (0, 0);
    for t in tasks {
        let (l, o, b) = t.await.unwrap();
        lat.extend(l);
        ok += o;
        bad += b;
    }
    let secs = started.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    if let Some(pid) = a.pid {
        peak.fetch_max(rss_kib(pid) as usize, Ordering::Relaxed);
    }
    lat.sort();
    let pct = |p: f64| {
        lat.get(((lat.len() as f64 * p) as usize).min(lat.len().saturating_sub(1)))
            .map(|d| d.as_secs_f64() * 1000.0)
            .unwrap_or(0.0)
    };
    println!(
        "{}",
        serde_json::json!({
            "requests": lat.len(), "ok": ok, "unexpected": bad, "seconds": secs,
            "rps": lat.len() as f64 / secs, "p50_ms": pct(0.50), "p99_ms": pct(0.99),
            "peak_rss_mib": peak.load(Ordering::Relaxed) as f64 / 1024.0,
        })
    );
}
