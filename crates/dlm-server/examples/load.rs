//! A bounded loopback load client for `dlm serve`: sends a fixed number of completion
//! requests over plain HTTP/1.1 with a fixed number of concurrent clients, and prints one
//! JSON line: throughput, latency percentiles and the count of each status.
//!
//! ```text
//! cargo run --release -p dlm-server --example load -- --addr 127.0.0.1:8000 \
//!     --concurrency 64 --requests 256 --body '{"prompt": "hello", "max_tokens": 16, "steps": 10}'
//! ```

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::Mutex;

struct Opts {
    addr: String,
    concurrency: usize,
    requests: usize,
    body: String,
    path: String,
}

fn parse() -> Result<Opts, String> {
    let mut o = Opts {
        addr: "127.0.0.1:8000".into(),
        concurrency: 8,
        requests: 64,
        body: r#"{"prompt": "the capital of france is", "max_tokens": 16, "steps": 10}"#.into(),
        path: "/v1/completions".into(),
    };
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let value = args.next().ok_or_else(|| format!("{flag} needs a value"))?;
        let number = |v: &str| v.parse::<usize>().map_err(|e| format!("{flag}: {e}"));
        match flag.as_str() {
            "--addr" => o.addr = value,
            "--concurrency" => o.concurrency = number(&value)?.max(1),
            "--requests" => o.requests = number(&value)?,
            "--body" => o.body = value,
            "--path" => o.path = value,
            other => return Err(format!("unknown flag {other} (--addr, --concurrency, --requests, --body, --path)")),
        }
    }
    Ok(o)
}

/// One request on a fresh connection; the status (0 when the connection failed).
async fn one(addr: &str, path: &str, body: &str) -> u16 {
    let request = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let Ok(mut stream) = TcpStream::connect(addr).await else { return 0 };
    if stream.write_all(request.as_bytes()).await.is_err() {
        return 0;
    }
    let mut response = Vec::new();
    if stream.read_to_end(&mut response).await.is_err() {
        return 0;
    }
    let head = String::from_utf8_lossy(&response[..response.len().min(32)]).into_owned();
    head.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0)
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[i].as_secs_f64()
}

#[tokio::main]
async fn main() {
    let o = match parse() {
        Ok(o) => Arc::new(o),
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(2);
        }
    };
    let next = Arc::new(AtomicUsize::new(0));
    let results = Arc::new(Mutex::new(Vec::with_capacity(o.requests)));
    let started = Instant::now();
    let workers: Vec<_> = (0..o.concurrency)
        .map(|_| {
            let (o, next, results) = (o.clone(), next.clone(), results.clone());
            tokio::spawn(async move {
                loop {
                    if next.fetch_add(1, Ordering::Relaxed) >= o.requests {
                        return;
                    }
                    let t = Instant::now();
                    let status = one(&o.addr, &o.path, &o.body).await;
                    results.lock().await.push((status, t.elapsed()));
                }
            })
        })
        .collect();
    for w in workers {
        let _ = w.await;
    }
    let wall = started.elapsed().as_secs_f64();
    let results = results.lock().await;
    let mut statuses: BTreeMap<u16, usize> = BTreeMap::new();
    for (s, _) in results.iter() {
        *statuses.entry(*s).or_default() += 1;
    }
    let mut ok: Vec<Duration> = results.iter().filter(|(s, _)| *s == 200).map(|(_, d)| *d).collect();
    ok.sort();
    let statuses: Vec<String> = statuses.iter().map(|(s, n)| format!("\"{s}\": {n}")).collect();
    println!(
        "{{\"concurrency\": {}, \"requests\": {}, \"seconds\": {wall:.3}, \"ok_per_second\": {:.3}, \"p50_s\": {:.4}, \"p99_s\": {:.4}, \"statuses\": {{{}}}}}",
        o.concurrency,
        o.requests,
        ok.len() as f64 / wall,
        percentile(&ok, 50.0),
        percentile(&ok, 99.0),
        statuses.join(", ")
    );
}
