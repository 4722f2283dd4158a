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
    /// Operations to measure (comma-separated): encrypt, decrypt, generate-data-key, s3-put-4k,
    /// s3-get-4k, s3-put-64m, s3-get-64m, and the same S3 ones with a -sse-s3 suffix.
    #[arg(
        long,
        default_value = "encrypt,decrypt,generate-data-key,s3-put-4k,s3-get-4k,s3-put-64m,s3-get-64m"
    )]
    ops: String,
    /// Instead of measuring operations one by one: a soak test of this many seconds, every
    /// connection running a mix of KMS and S3 requests (including 1 MiB objects, listings and
    /// deletes), with the server's RSS sampled every 10 s. Fails on any error response, or when
    /// the RSS of the last minute exceeds the highest of the first minute by more than
    /// `--soak-rss-growth-mib`.
    #[arg(long)]
    soak: Option<u64>,
    /// The RSS growth a soak tolerates (MiB).
    #[arg(long, default_value_t = 64)]
    soak_rss_growth_mib: u64,
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

/// One request to make: method, path, extra headers, body.
#[derive(Clone)]
struct Call {
    method: &'static str,
    path: String,
    headers: Vec<(&'static str, String)>,
    body: Arc<Vec<u8>>,
    service: &'static str,
}

/// Sends one signed request over a kept-alive connection; returns the status and, when
/// `keep` is set, the body (else only its length is counted).
async fn send(
    conn: &mut TcpStream,
    addr: &str,
    call: &Call,
    keep: bool,
) -> Result<(u16, Vec<u8>, u64), String> {
    let uri: http::Uri = format!("http://{addr}{}", call.path)
        .parse()
        .map_err(|e: http::uri::InvalidUri| e.to_string())?;
    let mut headers = http::HeaderMap::new();
    headers.insert("host", addr.parse().map_err(|_| "host")?);
    for (k, v) in &call.headers {
        headers.insert(*k, v.parse().map_err(|_| "header")?);
    }
    let (hash, flavor) = if call.service == "s3" {
        headers.insert(
            "x-amz-content-sha256",
            http::HeaderValue::from_static("UNSIGNED-PAYLOAD"),
        );
        ("UNSIGNED-PAYLOAD".to_string(), Flavor::S3)
    } else {
        (coffer_sigv4::sha256_hex(&call.body), Flavor::Standard)
    };
    coffer_sigv4::sign_request(
        &call.method.parse().map_err(|_| "method")?,
        &uri,
        &mut headers,
        &hash,
        KEY_ID,
        &Secret::new(SECRET.into()),
        "us-east-1",
        call.service,
        time::OffsetDateTime::now_utc(),
        None,
        flavor,
    )
    .map_err(|e| e.to_string())?;
    let mut req = format!(
        "{} {} HTTP/1.1\r\ncontent-length: {}\r\n",
        call.method,
        call.path,
        call.body.len()
    );
    for (k, v) in &headers {
        req.push_str(k.as_str());
        req.push_str(": ");
        req.push_str(v.to_str().unwrap_or_default());
        req.push_str("\r\n");
    }
    req.push_str("\r\n");
    let ctx = |e: std::io::Error| format!("{} {}: {e}", call.method, call.path);
    conn.write_all(req.as_bytes()).await.map_err(ctx)?;
    conn.write_all(&call.body).await.map_err(ctx)?;
    // Read headers, then exactly content-length bytes.
    let mut buf = Vec::with_capacity(1024);
    let mut tmp = vec![0u8; 256 * 1024];
    let header_end = loop {
        let n = conn.read(&mut tmp).await.map_err(ctx)?;
        if n == 0 {
            return Err(format!("{} {}: connection closed", call.method, call.path));
        }
        buf.extend_from_slice(&tmp[..n]);
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
    };
    let head = String::from_utf8_lossy(&buf[..header_end]).to_ascii_lowercase();
    let status: u16 = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or("no status")?;
    let len: u64 = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    let mut got = (buf.len() - header_end) as u64;
    let mut body = if keep {
        buf[header_end..].to_vec()
    } else {
        Vec::new()
    };
    while got < len {
        let n = conn.read(&mut tmp).await.map_err(ctx)?;
        if n == 0 {
            return Err(format!("{} {}: connection closed", call.method, call.path));
        }
        got += n as u64;
        if keep {
            body.extend_from_slice(&tmp[..n]);
        }
    }
    if !(200..300).contains(&status) {
        return Err(format!(
            "{} {}: {}",
            call.method,
            call.path,
            head.lines().next().unwrap_or_default()
        ));
    }
    Ok((status, body, got))
}

fn kms(op: &str, body: serde_json::Value) -> Call {
    Call {
        method: "POST",
        path: "/".into(),
        headers: vec![
            ("content-type", "application/x-amz-json-1.1".into()),
            ("x-amz-target", format!("TrentService.{op}")),
        ],
        body: Arc::new(body.to_string().into_bytes()),
        service: "kms",
    }
}

fn s3(method: &'static str, path: String, body: Arc<Vec<u8>>) -> Call {
    Call {
        method,
        path,
        headers: vec![],
        body,
        service: "s3",
    }
}

/// Resident set size of a process, in MiB.
fn rss_mib(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        })
        .map(|kb| kb / 1024.0)
        .unwrap_or(f64::NAN)
}

/// The soak test (see `BenchArgs::soak`).
async fn soak(
    addr: &str,
    pid: u32,
    key_id: &str,
    blob: &str,
    conns: usize,
    secs: u64,
    growth_mib: u64,
) -> Result<(), String> {
    let small = Arc::new(vec![7u8; 4096]);
    let big = Arc::new(vec![5u8; 1 << 20]);
    let empty = Arc::new(Vec::new());
    let stop = Arc::new(AtomicBool::new(false));
    let count = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let first_error = Arc::new(std::sync::Mutex::new(None::<String>));
    println!(
        "coffer bench --soak: server pid {pid} on {addr}; {conns} connections, {secs} s; RSS sampled every 10 s"
    );
    let mut tasks = vec![];
    for c in 0..conns {
        let (addr, stop, count, errors, first_error) = (
            addr.to_string(),
            stop.clone(),
            count.clone(),
            errors.clone(),
            first_error.clone(),
        );
        let (small, big, empty) = (small.clone(), big.clone(), empty.clone());
        let (key_id, blob) = (key_id.to_string(), blob.to_string());
        tasks.push(tokio::spawn(async move {
            let mut conn: Option<TcpStream> = None;
            let mut n: u64 = 0;
            while !stop.load(Ordering::Relaxed) {
                n += 1;
                // Each round of 12 requests works on one of 50 keys per connection.
                let k = (n / 12) % 50;
                let call = match n % 12 {
                    0 => kms(
                        "Encrypt",
                        serde_json::json!({"KeyId": key_id, "Plaintext": "aGVsbG8gd29ybGQ="}),
                    ),
                    1 => kms("Decrypt", serde_json::json!({"CiphertextBlob": blob})),
                    2 => kms(
                        "GenerateDataKey",
                        serde_json::json!({"KeyId": key_id, "KeySpec": "AES_256"}),
                    ),
                    3 => s3("PUT", format!("/bench-kms/soak-{c}-{k}"), small.clone()),
                    4 => s3("GET", format!("/bench-kms/soak-{c}-{k}"), empty.clone()),
                    5 => s3("PUT", format!("/bench-s3/soak-{c}-{k}"), small.clone()),
                    6 => s3("GET", format!("/bench-s3/soak-{c}-{k}"), empty.clone()),
                    7 if n % 84 == 7 => s3("PUT", format!("/bench-kms/soak-big-{c}"), big.clone()),
                    7 => s3("GET", "/bench-kms/small".into(), empty.clone()),
                    8 if n % 96 == 8 => {
                        s3("GET", format!("/bench-kms/soak-big-{c}"), empty.clone())
                    }
                    8 => s3(
                        "GET",
                        "/bench-kms?list-type=2&max-keys=20".into(),
                        empty.clone(),
                    ),
                    9 => s3("DELETE", format!("/bench-s3/soak-{c}-{k}"), empty.clone()),
                    10 => kms("DescribeKey", serde_json::json!({"KeyId": key_id})),
                    _ => kms("ListAliases", serde_json::json!({})),
                };
                if conn.is_none() {
                    match TcpStream::connect(&addr).await {
                        Ok(s) => {
                            let _ = s.set_nodelay(true);
                            conn = Some(s);
                        }
                        Err(e) => return Err(e.to_string()),
                    }
                }
                let Some(stream) = conn.as_mut() else {
                    continue;
                };
                match send(stream, &addr, &call, false).await {
                    Ok(_) => {
                        count.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(e) => {
                        errors.fetch_add(1, Ordering::Relaxed);
                        first_error
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .get_or_insert(e);
                        conn = None;
                    }
                }
            }
            Ok::<_, String>(())
        }));
    }
    let t0 = Instant::now();
    let mut samples: Vec<(f64, f64)> = vec![];
    let mut last = 0;
    println!(
        "{:>8} {:>10} {:>9} {:>8} {:>9}",
        "seconds", "requests", "req/s", "errors", "RSS MiB"
    );
    while t0.elapsed().as_secs() < secs {
        tokio::time::sleep(Duration::from_secs(10).min(Duration::from_secs(secs))).await;
        let (t, n, rss) = (
            t0.elapsed().as_secs_f64(),
            count.load(Ordering::Relaxed),
            rss_mib(pid),
        );
        println!(
            "{:>8.0} {:>10} {:>9.0} {:>8} {:>9.1}",
            t,
            n,
            (n - last) as f64 / 10.0,
            errors.load(Ordering::Relaxed),
            rss
        );
        last = n;
        samples.push((t, rss));
    }
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        t.await.map_err(|e| e.to_string())??;
    }
    let window = 60.0_f64.min(secs as f64 / 3.0);
    let end = t0.elapsed().as_secs_f64();
    let early = samples
        .iter()
        .filter(|(t, _)| *t <= window + 10.0)
        .map(|s| s.1)
        .fold(0.0, f64::max);
    let late = samples
        .iter()
        .filter(|(t, _)| *t >= end - window - 10.0)
        .map(|s| s.1)
        .fold(0.0, f64::max);
    let n = count.load(Ordering::Relaxed);
    let errs = errors.load(Ordering::Relaxed);
    println!(
        "soak: {n} requests in {end:.0} s ({:.0}/s), {errs} errors; RSS highest in the first {window:.0} s {early:.1} MiB, in the last {window:.0} s {late:.1} MiB (growth {:.1} MiB, bound {growth_mib} MiB)",
        n as f64 / end,
        late - early
    );
    if errs > 0 {
        let e = first_error
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        return Err(format!(
            "{errs} error responses; first: {}",
            e.unwrap_or_default()
        ));
    }
    if late - early > growth_mib as f64 {
        return Err(format!("RSS grew by {:.1} MiB", late - early));
    }
    Ok(())
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
        let json = |b: Vec<u8>| serde_json::from_slice::<serde_json::Value>(&b).map_err(|e| e.to_string());
        let key = json(send(&mut c, &addr, &kms("CreateKey", serde_json::json!({})), true).await?.1)?;
        let key_id = key["KeyMetadata"]["KeyId"].as_str().ok_or("CreateKey")?.to_string();
        let enc = json(
            send(&mut c, &addr, &kms("Encrypt", serde_json::json!({"KeyId": key_id, "Plaintext": "aGVsbG8gd29ybGQ="})), true)
                .await?
                .1,
        )?;
        let blob = enc["CiphertextBlob"].as_str().ok_or("Encrypt")?.to_string();
        // A bucket whose objects are SSE-KMS with the key, and one left at the SSE-S3 default.
        let empty = Arc::new(Vec::new());
        for b in ["bench-kms", "bench-s3"] {
            send(&mut c, &addr, &s3("PUT", format!("/{b}"), empty.clone()), false).await?;
        }
        let conf = format!(
            "<ServerSideEncryptionConfiguration><Rule><ApplyServerSideEncryptionByDefault><SSEAlgorithm>aws:kms</SSEAlgorithm><KMSMasterKeyID>{key_id}</KMSMasterKeyID></ApplyServerSideEncryptionByDefault></Rule></ServerSideEncryptionConfiguration>"
        );
        let md5 = {
            use base64::Engine;
            use s3s::crypto::Checksum;
            base64::engine::general_purpose::STANDARD.encode(s3s::crypto::Md5::checksum(conf.as_bytes()))
        };
        let mut put_enc = s3("PUT", "/bench-kms?encryption".into(), Arc::new(conf.into_bytes()));
        put_enc.headers.push(("content-md5", md5));
        send(&mut c, &addr, &put_enc, false).await?;
        let small = Arc::new(vec![7u8; 4096]);
        let large = Arc::new(vec![9u8; 64 << 20]);
        for b in ["bench-kms", "bench-s3"] {
            send(&mut c, &addr, &s3("PUT", format!("/{b}/small"), small.clone()), false).await?;
            send(&mut c, &addr, &s3("PUT", format!("/{b}/large"), large.clone()), false).await?;
        }
        if let Some(secs) = args.soak {
            return soak(&addr, server.child.id(), &key_id, &blob, args.concurrency, secs, args.soak_rss_growth_mib).await;
        }
        println!(
            "coffer bench: server pid {} on {addr}; {} connections (2 for 64 MiB objects), {} s per operation; {} cores",
            server.child.id(),
            args.concurrency,
            args.duration,
            std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
        );
        println!(
            "{:<22} {:>9} {:>9} {:>9} {:>9} {:>9} {:>14}",
            "operation", "requests", "req/s", "MB/s", "p50 ms", "p99 ms", "server CPU ms"
        );
        for op in args.ops.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let (name, call, conns): (&str, Call, usize) = match op {
                "encrypt" => ("KMS Encrypt", kms("Encrypt", serde_json::json!({"KeyId": key_id, "Plaintext": "aGVsbG8gd29ybGQ="})), args.concurrency),
                "decrypt" => ("KMS Decrypt", kms("Decrypt", serde_json::json!({"CiphertextBlob": blob})), args.concurrency),
                "generate-data-key" => ("KMS GenerateDataKey", kms("GenerateDataKey", serde_json::json!({"KeyId": key_id, "KeySpec": "AES_256"})), args.concurrency),
                "s3-put-4k" => ("S3 PUT 4 KiB SSE-KMS", s3("PUT", "/bench-kms/small".into(), small.clone()), args.concurrency),
                "s3-get-4k" => ("S3 GET 4 KiB SSE-KMS", s3("GET", "/bench-kms/small".into(), empty.clone()), args.concurrency),
                "s3-put-64m" => ("S3 PUT 64 MiB SSE-KMS", s3("PUT", "/bench-kms/large".into(), large.clone()), 2),
                "s3-get-64m" => ("S3 GET 64 MiB SSE-KMS", s3("GET", "/bench-kms/large".into(), empty.clone()), 2),
                "s3-put-4k-sse-s3" => ("S3 PUT 4 KiB SSE-S3", s3("PUT", "/bench-s3/small".into(), small.clone()), args.concurrency),
                "s3-get-4k-sse-s3" => ("S3 GET 4 KiB SSE-S3", s3("GET", "/bench-s3/small".into(), empty.clone()), args.concurrency),
                "s3-put-64m-sse-s3" => ("S3 PUT 64 MiB SSE-S3", s3("PUT", "/bench-s3/large".into(), large.clone()), 2),
                "s3-get-64m-sse-s3" => ("S3 GET 64 MiB SSE-S3", s3("GET", "/bench-s3/large".into(), empty.clone()), 2),
                other => return Err(format!("unknown operation {other}")),
            };
            let stop = Arc::new(AtomicBool::new(false));
            let count = Arc::new(AtomicU64::new(0));
            let bytes = Arc::new(AtomicU64::new(0));
            let cpu0 = cpu_seconds(server.child.id());
            let t0 = Instant::now();
            let mut tasks = vec![];
            for _ in 0..conns {
                let (addr, call, stop, count, bytes) = (addr.clone(), call.clone(), stop.clone(), count.clone(), bytes.clone());
                tasks.push(tokio::spawn(async move {
                    let mut lat = Vec::new();
                    let mut conn = TcpStream::connect(&addr).await.map_err(|e| e.to_string())?;
                    conn.set_nodelay(true).map_err(|e| e.to_string())?;
                    while !stop.load(Ordering::Relaxed) {
                        let t = Instant::now();
                        let (_, _, got) = send(&mut conn, &addr, &call, false).await?;
                        lat.push(t.elapsed().as_micros().min(u128::from(u32::MAX)) as u32);
                        count.fetch_add(1, Ordering::Relaxed);
                        bytes.fetch_add(got.max(call.body.len() as u64), Ordering::Relaxed);
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
                "{:<22} {:>9} {:>9.0} {:>9.1} {:>9.3} {:>9.3} {:>14.4}",
                name,
                n,
                n as f64 / elapsed,
                bytes.load(Ordering::Relaxed) as f64 / elapsed / 1e6,
                percentile(&lat, 0.5),
                percentile(&lat, 0.99),
                cpu * 1000.0 / n.max(1) as f64
            );
        }
        Ok(())
    })
}
