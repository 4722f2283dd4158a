//! `coffer bench`: a load generator that signs its requests with SigV4, run against a `coffer
//! serve` child process so that the server's CPU time can be read from /proc apart from the
//! generator's own.

use coffer_sigv4::{Flavor, Secret};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const KEY_ID: &str = "AKIABENCHBENCHBENCH1";
const SECRET: &str = "bench-secret-bench-secret-bench-secret-0";

#[derive(clap::Parser)]
pub struct BenchArgs {
    /// Seconds per operation.
    #[arg(long, default_value_t = 5)]
    duration: u64,
    /// Concurrent connections.
    #[arg(long, default_value_t = 8)]
    concurrency: usize,
    /// Operations to measure (comma-separated): encrypt, decrypt, generate-data-key.
    #[arg(long, default_value = "encrypt,decrypt,generate-data-key")]
    ops: String,
}

/// utime + stime of a process, in seconds.
fn cpu_seconds(pid: u32) -> f64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return f64::NAN;
    };
    // Fields after the command name (which is in parentheses and may contain spaces).
    let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else {
        return f64::NAN;
    };
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = f.get(11).and_then(|v| v.parse().ok()).unwrap_or(0.0)
        + f.get(12).and_then(|v| v.parse().ok()).unwrap_or(0.0);
    ticks / clock_ticks()
}

fn clock_ticks() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0)
}

/// One signed KMS request over a kept-alive connection; returns the response body.
async fn kms_call(
    conn: &mut TcpStream,
    addr: &str,
    op: &str,
    body: &str,
) -> Result<Vec<u8>, String> {
    let uri: http::Uri = format!("http://{addr}/")
        .parse()
        .map_err(|e: http::uri::InvalidUri| e.to_string())?;
    let mut headers = http::HeaderMap::new();
    headers.insert("host", addr.parse().map_err(|_| "host")?);
    headers.insert(
        "content-type",
        http::HeaderValue::from_static("application/x-amz-json-1.1"),
    );
    headers.insert(
        "x-amz-target",
        format!("TrentService.{op}").parse().map_err(|_| "target")?,
    );
    coffer_sigv4::sign_request(
        &http::Method::POST,
        &uri,
        &mut headers,
        &coffer_sigv4::sha256_hex(body.as_bytes()),
        KEY_ID,
        &Secret::new(SECRET.into()),
        "us-east-1",
        "kms",
        time::OffsetDateTime::now_utc(),
        None,
        Flavor::Standard,
    )
    .map_err(|e| e.to_string())?;
    let mut req = format!("POST / HTTP/1.1\r\ncontent-length: {}\r\n", body.len());
    for (k, v) in &headers {
        req.push_str(k.as_str());
        req.push_str(": ");
        req.push_str(v.to_str().unwrap_or_default());
        req.push_str("\r\n");
    }
    req.push_str("\r\n");
    req.push_str(body);
    conn.write_all(req.as_bytes())
        .await
        .map_err(|e| e.to_string())?;
    // Read headers, then exactly content-length bytes.
    let mut buf = Vec::with_capacity(1024);
    let mut tmp = [0u8; 4096];
    let header_end = loop {
        let n = conn.read(&mut tmp).await.map_err(|e| e.to_string())?;
        if n == 0 {
            return Err("connection closed".into());
        }
        buf.extend_from_slice(&tmp[..n]);
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
    };
    let head = String::from_utf8_lossy(&buf[..header_end]).to_ascii_lowercase();
    if !head.starts_with("http/1.1 200") {
        return Err(format!("{op}: {}", head.lines().next().unwrap_or_default()));
    }
    let len: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse().ok())
        .ok_or("no content-length")?;
    while buf.len() < header_end + len {
        let n = conn.read(&mut tmp).await.map_err(|e| e.to_string())?;
        if n == 0 {
            return Err("connection closed".into());
        }
        buf.extend_from_slice(&tmp[..n]);
    }
    Ok(buf[header_end..header_end + len].to_vec())
}

fn percentile(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    f64::from(sorted[i]) / 1000.0
}

pub fn run(args: BenchArgs) -> Result<(), String> {
    let server = crate::child::start_server("bench", KEY_ID, SECRET, "warn")?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    rt.block_on(async move {
        let addr = server.addr.clone();
        let mut c = TcpStream::connect(&addr).await.map_err(|e| e.to_string())?;
        let key: serde_json::Value =
            serde_json::from_slice(&kms_call(&mut c, &addr, "CreateKey", "{}").await?)
                .map_err(|e| e.to_string())?;
        let key_id = key["KeyMetadata"]["KeyId"]
            .as_str()
            .ok_or("CreateKey")?
            .to_string();
        let enc: serde_json::Value = serde_json::from_slice(
            &kms_call(
                &mut c,
                &addr,
                "Encrypt",
                &serde_json::json!({"KeyId": key_id, "Plaintext": "aGVsbG8gd29ybGQ="}).to_string(),
            )
            .await?,
        )
        .map_err(|e| e.to_string())?;
        let blob = enc["CiphertextBlob"].as_str().ok_or("Encrypt")?.to_string();
        println!(
            "coffer bench: server pid {} on {addr}; {} connections, {} s per operation; {} cores",
            server.child.id(),
            args.concurrency,
            args.duration,
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1)
        );
        println!(
            "{:<20} {:>10} {:>10} {:>9} {:>9} {:>16}",
            "operation", "requests", "req/s", "p50 ms", "p99 ms", "server CPU ms/req"
        );
        for op in args.ops.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let (target, body) = match op {
                "encrypt" => (
                    "Encrypt",
                    serde_json::json!({"KeyId": key_id, "Plaintext": "aGVsbG8gd29ybGQ="}),
                ),
                "decrypt" => ("Decrypt", serde_json::json!({"CiphertextBlob": blob})),
                "generate-data-key" => (
                    "GenerateDataKey",
                    serde_json::json!({"KeyId": key_id, "KeySpec": "AES_256"}),
                ),
                other => return Err(format!("unknown operation {other}")),
            };
            let body = Arc::new(body.to_string());
            let stop = Arc::new(AtomicBool::new(false));
            let count = Arc::new(AtomicU64::new(0));
            let cpu0 = cpu_seconds(server.child.id());
            let t0 = Instant::now();
            let mut tasks = vec![];
            for _ in 0..args.concurrency {
                let (addr, body, stop, count) =
                    (addr.clone(), body.clone(), stop.clone(), count.clone());
                tasks.push(tokio::spawn(async move {
                    let mut lat = Vec::new();
                    let mut conn = TcpStream::connect(&addr).await.map_err(|e| e.to_string())?;
                    conn.set_nodelay(true).map_err(|e| e.to_string())?;
                    while !stop.load(Ordering::Relaxed) {
                        let t = Instant::now();
                        kms_call(&mut conn, &addr, target, &body).await?;
                        lat.push(t.elapsed().as_micros().min(u128::from(u32::MAX)) as u32);
                        count.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok::<_, String>(lat)
                }));
            }
            tokio::time::sleep(Duration::from_secs(args.duration)).await;
            stop.store(true, Ordering::Relaxed);
            let mut lat = vec![];
            for t in tasks {
                lat.extend(t.await.map_err(|e| e.to_string())??);
            }
            let elapsed = t0.elapsed().as_secs_f64();
            let cpu = cpu_seconds(server.child.id()) - cpu0;
            let n = count.load(Ordering::Relaxed);
            lat.sort_unstable();
            println!(
                "{:<20} {:>10} {:>10.0} {:>9.3} {:>9.3} {:>16.4}",
                target,
                n,
                n as f64 / elapsed,
                percentile(&lat, 0.5),
                percentile(&lat, 0.99),
                cpu * 1000.0 / n.max(1) as f64
            );
        }
        Ok(())
    })
}
