//! `coffer`: AWS-compatible KMS, S3, IAM and STS on one endpoint.

mod bench;
mod child;
mod demo;

use base64::Engine;
use clap::{Parser, Subcommand};
use coffer_core::{Clock, SystemClock, TestClock};
use coffer_crypto::RootKey;
use coffer_gateway::metrics::Job;
use coffer_gateway::{App, serve, tls};
use coffer_iam::Iam;
use coffer_kms::Kms;
use coffer_store::{MetaStore, SqliteMetaStore};
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;
use zeroize::Zeroizing;

#[derive(Parser)]
#[command(
    name = "coffer",
    version,
    about = "AWS-compatible KMS, S3, IAM and STS on one endpoint"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run the server.
    Serve(ServeArgs),
    /// Measure KMS throughput and server CPU per request over HTTP (starts its own server).
    Bench(bench::BenchArgs),
    /// Replay the KMS + S3 walkthrough against a temporary server, comparing each step with AWS.
    Demo,
}

#[derive(Parser)]
struct ServeArgs {
    /// Where Coffer keeps its data.
    #[arg(long, default_value = "./coffer-data", env = "COFFER_DATA_DIR")]
    data_dir: PathBuf,
    /// Address to listen on (port 0 picks a free port; the chosen address is printed).
    #[arg(long, default_value = "127.0.0.1:4566", env = "COFFER_LISTEN")]
    listen: SocketAddr,
    /// The region this server answers for.
    #[arg(long, default_value = "us-east-1", env = "COFFER_REGION")]
    region: String,
    /// File holding the 32-byte root key (raw or base64). Else COFFER_ROOT_KEY, else DATA/root.key.
    #[arg(long)]
    root_key_file: Option<PathBuf>,
    /// PEM certificate chain for TLS.
    #[arg(long, requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// PEM private key for TLS.
    #[arg(long, requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Serve TLS with a certificate generated at start (its fingerprint is printed).
    #[arg(long, conflicts_with = "tls_cert")]
    tls_self_signed: bool,
    /// Allow plain HTTP on a non-loopback address (credentials and data then cross the network in clear).
    #[arg(long)]
    allow_insecure_http: bool,
    /// On SIGTERM/SIGINT, how long in-flight requests may take to finish (seconds) before the
    /// remaining connections are closed.
    #[arg(long, default_value_t = 30, env = "COFFER_SHUTDOWN_TIMEOUT")]
    shutdown_timeout: u64,
    /// Log lines as plain text (`text`, colored only on a terminal) or one JSON object per line
    /// (`json`). The level is set with COFFER_LOG (e.g. `info`, `debug`, `coffer_gateway=debug`).
    #[arg(long, value_enum, default_value = "text", env = "COFFER_LOG_FORMAT")]
    log_format: LogFormat,
    /// Require `Authorization: Bearer TOKEN` to read the Prometheus metrics at
    /// `GET /_coffer/metrics`. Without it, only loopback clients may read them.
    #[arg(long, env = "COFFER_METRICS_TOKEN", hide_env_values = true)]
    metrics_token: Option<String>,
    /// For tests only: a movable clock, advanced by `POST /_coffer/test/advance-clock?seconds=N`
    /// (which then runs due key deletions and rotations at once).
    #[arg(long, hide = true)]
    test_clock: bool,
    /// Connections served at once; more are accepted and closed at once. Default: 4096, or
    /// less if the open-file limit is lower (it minus 256).
    #[arg(long)]
    max_connections: Option<usize>,
    /// For tests: milliseconds a client may take to send a request head (default 10 s).
    #[arg(long, hide = true)]
    header_timeout_ms: Option<u64>,
    /// For tests: milliseconds a kept-alive connection may stay idle (default 60 s).
    #[arg(long, hide = true)]
    idle_timeout_ms: Option<u64>,
    /// For tests: milliseconds a request body may pause before it fails (default 20 s).
    #[arg(long, hide = true)]
    body_timeout_ms: Option<u64>,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

/// Logs go to stderr, at the level COFFER_LOG sets (`info` by default); ANSI colors only when
/// stderr is a terminal, so log files hold plain text.
fn init_logging(format: LogFormat) {
    use std::io::IsTerminal;
    let mut filter = tracing_subscriber::EnvFilter::try_from_env("COFFER_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // s3s logs whole requests, headers included, at debug: session tokens and SSE-C keys. Never
    // more than info from it, whatever COFFER_LOG asks.
    for d in ["s3s=info"] {
        if let Ok(d) = d.parse() {
            filter = filter.add_directive(d);
        }
    }
    let b = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => b.with_ansi(std::io::stderr().is_terminal()).init(),
        LogFormat::Json => b.json().with_ansi(false).init(),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(match &cli.cmd {
        Cmd::Serve(a) => a.log_format,
        _ => LogFormat::Text,
    });
    match cli.cmd {
        Cmd::Serve(args) => match run_serve(args) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("coffer: {e}");
                ExitCode::from(2)
            }
        },
        Cmd::Demo => match demo::run() {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("coffer demo: {e}");
                ExitCode::from(1)
            }
        },
        Cmd::Bench(args) => match bench::run(args) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("coffer bench: {e}");
                ExitCode::from(1)
            }
        },
    }
}

#[cfg(unix)]
fn write_private(path: &Path, data: &[u8]) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(data)?;
    f.sync_all()?;
    if let Some(dir) = path.parent() {
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

fn decode_key(raw: &[u8], what: &str) -> Result<RootKey, String> {
    if raw.len() == 32 {
        return RootKey::from_bytes(raw).map_err(|e| format!("{what}: {e}"));
    }
    let text =
        std::str::from_utf8(raw).map_err(|_| format!("{what}: neither 32 raw bytes nor base64"))?;
    let bytes = Zeroizing::new(
        base64::engine::general_purpose::STANDARD
            .decode(text.trim())
            .map_err(|_| format!("{what}: not valid base64"))?,
    );
    RootKey::from_bytes(&bytes)
        .map_err(|_| format!("{what}: the key must be 32 bytes (base64 of 32 bytes)"))
}

fn load_root_key(args: &ServeArgs) -> Result<RootKey, String> {
    if let Some(p) = &args.root_key_file {
        let raw = Zeroizing::new(std::fs::read(p).map_err(|e| format!("{}: {e}", p.display()))?);
        return decode_key(&raw, &p.display().to_string());
    }
    if let Ok(v) = std::env::var("COFFER_ROOT_KEY") {
        let v = Zeroizing::new(v);
        return decode_key(v.as_bytes(), "COFFER_ROOT_KEY");
    }
    let path = args.data_dir.join("root.key");
    if path.exists() {
        let raw =
            Zeroizing::new(std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?);
        return decode_key(&raw, &path.display().to_string());
    }
    let key = RootKey::generate().map_err(|e| e.to_string())?;
    let b64 = Zeroizing::new(base64::engine::general_purpose::STANDARD.encode(key.expose_bytes()));
    write_private(&path, b64.as_bytes()).map_err(|e| format!("{}: {e}", path.display()))?;
    tracing::warn!(
        path = %path.display(),
        "generated a root key in the data dir: the key and the data it protects now share a disk; \
         for real use pass --root-key-file or COFFER_ROOT_KEY and keep the key elsewhere"
    );
    Ok(key)
}

/// The root key fingerprint is stored beside the data so that a wrong key is refused at once.
fn check_fingerprint(store: &dyn MetaStore, key: &RootKey) -> Result<(), String> {
    let fp = key.fingerprint();
    let stored: Option<String> =
        coffer_store::get_json(store, "coffer.meta", "root-key-fingerprint")
            .map_err(|e| e.to_string())?;
    match stored {
        Some(s) if s != fp => Err(format!(
            "this data dir was created with another root key (fingerprint {s}, given {fp}); refusing to start"
        )),
        Some(_) => Ok(()),
        None => store
            .transact(&mut |t| {
                coffer_store::put_json(t, "coffer.meta", "root-key-fingerprint", &fp)
            })
            .map_err(|e| e.to_string()),
    }
}

fn run_serve(args: ServeArgs) -> Result<(), String> {
    let tls_wanted = args.tls_cert.is_some() || args.tls_self_signed;
    if !args.listen.ip().is_loopback() && !tls_wanted && !args.allow_insecure_http {
        return Err(format!(
            "refusing to listen on {} without TLS: use --tls-cert/--tls-key or --tls-self-signed, or --allow-insecure-http if you really mean it",
            args.listen
        ));
    }
    std::fs::create_dir_all(&args.data_dir)
        .map_err(|e| format!("{}: {e}", args.data_dir.display()))?;
    // Before anything in the directory is read or written: one process per data directory.
    let _data_dir_lock = coffer_store::lock_data_dir(&args.data_dir)?;
    let root_key = Arc::new(load_root_key(&args)?);
    let store: Arc<dyn MetaStore> = Arc::new(
        SqliteMetaStore::open(&args.data_dir.join("meta.sqlite")).map_err(|e| e.to_string())?,
    );
    check_fingerprint(&*store, &root_key)?;
    let metrics = Arc::new(coffer_gateway::metrics::Metrics::new(
        args.metrics_token.clone(),
        Some(store.clone()),
    ));
    let test_clock = args.test_clock.then(|| Arc::new(TestClock::default()));
    let clock: Arc<dyn Clock> = match &test_clock {
        Some(t) => t.clone(),
        None => Arc::new(SystemClock),
    };
    if test_clock.is_some() {
        tracing::warn!(
            "--test-clock: the clock can be moved over HTTP; never use this outside tests"
        );
    }
    let iam = Arc::new(Iam::new(store.clone(), root_key.clone(), clock.clone()));
    let kms = Arc::new(Kms::new(
        iam.clone(),
        store.clone(),
        root_key.clone(),
        clock.clone(),
        &args.region,
    ));
    let indexed = kms.build_indexes().map_err(|e| e.to_string())?;
    if indexed > 0 {
        tracing::info!(records = indexed, "KMS alias and grant indexes built");
    }
    let blobs: Arc<dyn coffer_store::BlobStore> =
        Arc::new(coffer_store::FileBlobStore::open(&args.data_dir).map_err(|e| e.to_string())?);
    let s3 = coffer_s3::CofferS3::new(
        iam.clone(),
        kms.clone(),
        store,
        blobs,
        root_key,
        clock.clone(),
        &args.region,
        !args.listen.ip().is_loopback(),
    );
    let swept = s3.sweep_orphans().map_err(|e| e.to_string())?;
    if swept > 0 {
        tracing::info!(blobs = swept, "removed blobs left by interrupted writes");
    }
    let s3_service = {
        let mut b = s3s::service::S3ServiceBuilder::new(s3);
        b.set_auth(coffer_s3::CofferS3Auth(iam.clone()));
        b.set_host(coffer_s3::LocalHostStyle);
        b.set_config(std::sync::Arc::new(s3s::config::StaticConfigProvider::new(
            std::sync::Arc::new(coffer_s3::s3s_config()),
        )));
        b.build()
    };
    let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    let boot = iam.bootstrap(
        env("COFFER_ACCOUNT_ID").as_deref(),
        env("COFFER_ROOT_ACCESS_KEY_ID").as_deref(),
        env("COFFER_ROOT_SECRET_ACCESS_KEY")
            .map(Zeroizing::new)
            .as_deref()
            .map(|s| s.as_str()),
    )?;
    if let Some(secret) = &boot.generated_secret {
        let path = args.data_dir.join("root-credentials");
        let text = Zeroizing::new(format!(
            "[coffer]\naws_access_key_id = {}\naws_secret_access_key = {}\n# account {}\n",
            boot.root_access_key_id,
            secret.as_str(),
            boot.account_id
        ));
        write_private(&path, text.as_bytes()).map_err(|e| format!("{}: {e}", path.display()))?;
        // Printed once, on the terminal, never in the logs.
        println!(
            "Root credentials for account {} (also in {}, mode 0600):\n  AWS_ACCESS_KEY_ID={}\n  AWS_SECRET_ACCESS_KEY={}",
            boot.account_id,
            path.display(),
            boot.root_access_key_id,
            secret.as_str()
        );
    }

    let tls = if let (Some(c), Some(k)) = (&args.tls_cert, &args.tls_key) {
        Some(tls::from_pem_files(c, k)?)
    } else if args.tls_self_signed {
        let (t, pem) = tls::self_signed(&[args.listen.ip().to_string()])?;
        let path = args.data_dir.join("self-signed-cert.pem");
        std::fs::write(&path, pem).map_err(|e| format!("{}: {e}", path.display()))?;
        println!(
            "TLS: self-signed certificate, SHA-256 fingerprint {} (PEM in {})",
            t.fingerprint,
            path.display()
        );
        Some(t)
    } else {
        None
    };

    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    rt.block_on(async move {
        // Signal handlers exist before anyone is told the server is ready.
        let shutdown = shutdown_signal()?;
        let listener = tokio::net::TcpListener::bind(args.listen)
            .await
            .map_err(|e| format!("cannot listen on {}: {e}", args.listen))?;
        let addr = listener.local_addr().map_err(|e| e.to_string())?;
        let app = Arc::new(App {
            iam: iam.clone(),
            kms: kms.clone(),
            s3: s3_service,
            test_clock,
            region: args.region.clone(),
            sig_cache: coffer_sigv4::SigningKeyCache::new(),
            clock,
            secure: tls.is_some(),
            console: coffer_console::Console::new(iam.clone(), args.region.clone(), tls.is_some()),
            edge: coffer_gateway::Edge::new(edge_limits(&args)),
            metrics: metrics.clone(),
        });
        // Expired STS sessions are swept in the background.
        let sweeper = iam.clone();
        let sweep_metrics = metrics.clone();
        tokio::spawn(async move {
            loop {
                let s = sweeper.clone();
                let r = tokio::task::spawn_blocking(move || s.sweep_sessions()).await;
                if !matches!(r, Ok(Ok(_))) {
                    tracing::error!("sweeping expired STS sessions failed");
                }
                sweep_metrics.background_run(Job::StsSweep, matches!(r, Ok(Ok(_))));
                tokio::time::sleep(Duration::from_secs(600)).await;
            }
        });
        // Key deletions and rotations fall due in the background.
        let due = kms.clone();
        tokio::spawn(async move {
            loop {
                let k = due.clone();
                let r = tokio::task::spawn_blocking(move || k.run_due()).await;
                metrics.background_run(Job::KmsDue, matches!(r, Ok(Ok(_))));
                match r {
                    Ok(Err(e)) => tracing::error!(error = %e, "scheduled KMS work failed"),
                    Err(e) => tracing::error!(error = %e, "scheduled KMS work panicked"),
                    Ok(Ok((destroyed, rotated))) => metrics.kms_due_done(destroyed, rotated),
                }
                tokio::time::sleep(Duration::from_secs(60)).await;
            }
        });
        let scheme = if tls.is_some() { "https" } else { "http" };
        println!(
            "Coffer listening on {scheme}://{addr} (region {}, account {})",
            args.region, boot.account_id
        );
        let _ = std::io::stdout().flush();
        tracing::info!(%addr, "ready");
        serve(
            listener,
            app,
            tls.map(|t| t.acceptor),
            shutdown,
            Duration::from_secs(args.shutdown_timeout),
        )
        .await;
        tracing::info!("stopped");
        Ok::<(), String>(())
    })
}

/// Connection and body limits: the defaults, or what the (test) flags say.
fn edge_limits(args: &ServeArgs) -> coffer_gateway::Limits {
    let mut l = coffer_gateway::Limits::default();
    let ms = Duration::from_millis;
    if let Some(n) = args.max_connections {
        l.max_connections = n.max(1);
    }
    if let Some(t) = args.header_timeout_ms {
        l.header_timeout = ms(t.max(1));
    }
    if let Some(t) = args.idle_timeout_ms {
        l.idle_timeout = ms(t.max(1));
    }
    if let Some(t) = args.body_timeout_ms {
        l.body_timeout = ms(t.max(1));
    }
    l
}

/// Installs the SIGTERM/SIGINT handlers now and returns the future that resolves on either.
fn shutdown_signal() -> Result<impl std::future::Future<Output = ()>, String> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term =
        signal(SignalKind::terminate()).map_err(|e| format!("cannot handle SIGTERM: {e}"))?;
    let mut int =
        signal(SignalKind::interrupt()).map_err(|e| format!("cannot handle SIGINT: {e}"))?;
    Ok(async move {
        tokio::select! {
            _ = term.recv() => {},
            _ = int.recv() => {},
        }
        tracing::info!("shutting down: draining in-flight requests");
    })
}
