//! Process-level behaviour of `coffer serve`: health, startup checks, generated credentials,
//! persistence across restarts and graceful shutdown.

mod common;

use common::*;
use http::Method;
use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

#[test]
fn health_endpoint_returns_json() {
    let s = Server::start();
    let r = s.send(
        Method::GET,
        "/_coffer/health",
        http::HeaderMap::new(),
        b"",
        None,
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.header("content-type"), Some("application/json"));
    let v = r.json();
    assert_eq!(v["status"], "ok");
    assert_eq!(v["service"], "coffer");
    assert!(v["version"].as_str().is_some_and(|x| !x.is_empty()), "{v}");
}

#[test]
fn listening_line_names_region_and_account() {
    let s = Server::start();
    let out = s.stdout();
    let line = out
        .lines()
        .find(|l| l.starts_with("Coffer listening on "))
        .expect("listening line");
    assert_eq!(
        line,
        format!(
            "Coffer listening on http://{} (region us-east-1, account {ACCOUNT})",
            s.addr
        )
    );
    assert_ne!(s.addr.port(), 0);
    // Credentials came from the environment: nothing generated, nothing printed.
    assert!(!out.contains("AWS_SECRET_ACCESS_KEY"), "{out}");
    assert!(!s.data_dir.join("root-credentials").exists());
}

#[test]
fn sigterm_exits_zero_promptly() {
    let mut s = Server::start();
    s.iam(&Creds::root(), "ListUsers", &[])
        .expect_ok("ListUsers");
    // Promptly: `terminate` fails unless the process exits within 5 s of the SIGTERM.
    let (status, _) = s.terminate(Duration::from_secs(5));
    assert!(
        status.success(),
        "exit status {status}; stderr: {}",
        s.stderr()
    );
}

#[test]
fn sigterm_closes_idle_keepalive_connection() {
    let mut s = Server::start();
    let mut conn = connect(s.addr);
    let head = request_head(
        s.addr,
        &Method::GET,
        "/_coffer/health",
        &http::HeaderMap::new(),
        0,
        false,
    );
    conn.write_all(&head).unwrap();
    let r = read_one_response(&mut conn);
    assert_eq!(r.status, 200);
    // The connection is now idle and kept alive; shutdown must not wait for it (`terminate`
    // fails unless the process exits within 5 s of the SIGTERM).
    let (status, _) = s.terminate(Duration::from_secs(5));
    assert!(status.success(), "exit status {status}");
    let mut rest = vec![];
    let n = std::io::Read::read_to_end(&mut conn, &mut rest).unwrap_or(0);
    assert_eq!(
        n,
        0,
        "unexpected bytes: {:?}",
        String::from_utf8_lossy(&rest)
    );
}

/// A signed ListUsers sent up to half its body, once the server has read that far: the
/// connection, the whole body and how much of it was sent.
fn half_sent_list_users(s: &Server) -> (TcpStream, String, usize) {
    let body = query_body("ListUsers", "2010-05-08", &[]);
    let mut h = headers(&[("content-type", FORM_CT)]);
    s.sign(
        &Method::POST,
        "/",
        &mut h,
        body.as_bytes(),
        &Signing::new(&Creds::root(), "iam"),
    );
    let mut conn = connect(s.addr);
    let head = request_head(s.addr, &Method::POST, "/", &h, body.len(), true);
    conn.write_all(&head).unwrap();
    let half = body.len() / 2;
    conn.write_all(&body.as_bytes()[..half]).unwrap();
    conn.flush().unwrap();
    // The request is in flight once the server has accepted the connection and read from it.
    wait_until_server_reads(s.addr, &conn, head.len() + half);
    (conn, body, half)
}

#[test]
fn sigterm_drains_in_flight_request() {
    let mut s = Server::start();
    // A signed ListUsers whose body arrives in two halves, with SIGTERM in between.
    let (mut conn, body, half) = half_sent_list_users(&s);

    s.sigterm();
    // The listener closes: new connections are refused while the old one drains.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match TcpStream::connect_timeout(&s.addr, Duration::from_millis(500)) {
            Err(_) => break,
            Ok(_) => {
                assert!(
                    Instant::now() < deadline,
                    "listener still open after SIGTERM"
                );
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
    assert!(
        s.wait_timeout(Duration::from_millis(200)).is_none(),
        "exited with a request in flight"
    );

    conn.write_all(&body.as_bytes()[half..]).unwrap();
    let mut raw = vec![];
    std::io::Read::read_to_end(&mut conn, &mut raw).unwrap();
    let r = parse_response(&raw, false);
    r.expect_ok("ListUsers during drain");
    assert!(r.body.contains("<ListUsersResponse xmlns="), "{}", r.body);

    let status = s
        .wait_timeout(Duration::from_secs(5))
        .expect("exit after the drain");
    assert!(status.success(), "exit status {status}");
}

/// Waits (at most 5 s) until the server has read from `conn`, on which `sent` bytes were
/// written: in /proc/net/tcp its end of the connection (local `server`, remote `conn`'s address)
/// holds fewer than `sent` unread bytes (a connection still in the accept queue holds them all).
/// Where /proc/net/tcp cannot tell (not Linux, IPv6), falls back to a short sleep.
fn wait_until_server_reads(server: SocketAddr, conn: &TcpStream, sent: usize) {
    let (SocketAddr::V4(srv), Ok(SocketAddr::V4(ours))) = (server, conn.local_addr()) else {
        std::thread::sleep(Duration::from_millis(200));
        return;
    };
    // /proc/net/tcp prints an IPv4 address as the in-memory u32 in hex, and the port in hex.
    let hex = |a: std::net::SocketAddrV4| {
        format!(
            "{:08X}:{:04X}",
            u32::from_ne_bytes(a.ip().octets()),
            a.port()
        )
    };
    let (local, remote) = (hex(srv), hex(ours));
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let Ok(table) = std::fs::read_to_string("/proc/net/tcp") else {
            std::thread::sleep(Duration::from_millis(200));
            return;
        };
        // Columns: sl local_address rem_address st tx_queue:rx_queue ...
        let unread = table.lines().skip(1).find_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            if f.get(1) != Some(&local.as_str()) || f.get(2) != Some(&remote.as_str()) {
                return None;
            }
            let (_, rx) = f.get(4)?.split_once(':')?;
            u64::from_str_radix(rx, 16).ok()
        });
        if unread.is_some_and(|n| n < sent as u64) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the server never read the request (unread bytes: {unread:?} of {sent})"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn data_survives_restart() {
    let dir = tempfile::tempdir().unwrap();
    let user_creds;
    {
        let mut s = Server::start_in(dir.path(), Opts::default());
        user_creds = s.create_user_with_key("persisted");
        s.iam(
            &Creds::root(),
            "AttachUserPolicy",
            &[
                ("UserName", "persisted"),
                ("PolicyArn", "arn:aws:iam::aws:policy/IAMReadOnlyAccess"),
            ],
        )
        .expect_ok("AttachUserPolicy");
        let (status, _) = s.terminate(Duration::from_secs(5));
        assert!(status.success(), "exit status {status}");
    }
    let root_key = std::fs::read(dir.path().join("root.key")).unwrap();

    let s = Server::start_in(dir.path(), Opts::default());
    let r = s.iam(&Creds::root(), "GetUser", &[("UserName", "persisted")]);
    r.expect_ok("GetUser after restart");
    assert_eq!(
        r.xml("Arn").as_deref(),
        Some(&*format!("arn:aws:iam::{ACCOUNT}:user/persisted"))
    );
    // The user's key (and its attached policy) still work.
    let r = s.iam(&user_creds, "ListUsers", &[]);
    r.expect_ok("ListUsers with the user's key after restart");
    assert!(r.xml_all("UserName").contains(&"persisted".to_string()));
    let r = s.sts(&user_creds, "GetCallerIdentity", &[]);
    r.expect_ok("GetCallerIdentity");
    assert_eq!(
        r.xml("Arn").as_deref(),
        Some(&*format!("arn:aws:iam::{ACCOUNT}:user/persisted"))
    );
    // The root key was reused, not regenerated.
    assert_eq!(
        std::fs::read(dir.path().join("root.key")).unwrap(),
        root_key
    );
}

#[test]
fn restart_without_env_credentials_keeps_stored_root() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut s = Server::start_in(dir.path(), Opts::default());
        s.terminate(Duration::from_secs(5));
    }
    // Nothing in the environment: the stored account and root key are used as they are.
    let s = Server::start_in(dir.path(), Opts::bare());
    assert!(s.stdout().contains(&format!("account {ACCOUNT})")));
    assert!(!s.stdout().contains("AWS_SECRET_ACCESS_KEY"));
    let r = s.sts(&Creds::root(), "GetCallerIdentity", &[]);
    r.expect_ok("GetCallerIdentity");
    assert_eq!(
        r.xml("Arn").as_deref(),
        Some(&*format!("arn:aws:iam::{ACCOUNT}:root"))
    );
}

#[test]
fn contradicting_account_id_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut s = Server::start_in(dir.path(), Opts::default());
        let (status, _) = s.terminate(Duration::from_secs(5));
        assert!(status.success());
    }
    let (status, out, err) = run_to_exit_complete(
        dir.path(),
        &Opts::default().env("COFFER_ACCOUNT_ID", "210987654321"),
    );
    assert!(!status.success(), "status {status}");
    assert!(
        err.contains("COFFER_ACCOUNT_ID=210987654321 contradicts the account 123456789012"),
        "stderr: {err}"
    );
    assert!(!out.contains("Coffer listening"), "stdout: {out}");

    // A contradicting root access key id is refused the same way.
    let (status, _, err) = run_to_exit_complete(
        dir.path(),
        &Opts::default().env("COFFER_ROOT_ACCESS_KEY_ID", "AKIAANOTHERROOTKEY01"),
    );
    assert!(!status.success(), "status {status}");
    assert!(err.contains("contradicts the root access key"), "{err}");
}

#[test]
fn invalid_account_id_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (status, _, err) = run_to_exit_complete(
        dir.path(),
        &Opts::default().env("COFFER_ACCOUNT_ID", "12345"),
    );
    assert!(!status.success(), "status {status}");
    assert!(err.contains("COFFER_ACCOUNT_ID must be 12 digits"), "{err}");
}

#[cfg(unix)]
#[test]
fn fresh_data_dir_generates_private_root_credentials() {
    let s = Server::start_with(Opts::bare());
    let creds_path = s.data_dir.join("root-credentials");
    let key_path = s.data_dir.join("root.key");
    assert_eq!(mode(&creds_path), 0o600, "root-credentials mode");
    assert_eq!(mode(&key_path), 0o600, "root.key mode");

    let file = std::fs::read_to_string(&creds_path).unwrap();
    let field = |name: &str| {
        file.lines()
            .find_map(|l| l.strip_prefix(&format!("{name} = ")))
            .unwrap_or_else(|| panic!("{name} missing in {file}"))
            .to_string()
    };
    let ak = field("aws_access_key_id");
    let sk = field("aws_secret_access_key");
    assert!(file.starts_with("[coffer]\n"), "{file}");
    assert!(ak.starts_with("AKIA") && ak.len() == 20, "{ak}");
    assert!(sk.len() >= 40, "secret too short");

    let out = s.stdout();
    assert!(
        out.contains(&format!("AWS_ACCESS_KEY_ID={ak}")),
        "stdout lacks the key id: {out}"
    );
    assert!(out.contains(&format!("AWS_SECRET_ACCESS_KEY={sk}")));
    // The account id is random, 12 digits, and the same in the file and on stdout.
    let acct = file
        .lines()
        .find_map(|l| l.strip_prefix("# account "))
        .expect("account line")
        .to_string();
    assert!(acct.len() == 12 && acct.bytes().all(|b| b.is_ascii_digit()));
    assert!(out.contains(&format!("Root credentials for account {acct}")));
    // The secret never reaches the logs.
    assert!(!s.stderr().contains(&sk), "secret in the logs");

    // The printed credentials work.
    let r = s.sts(&Creds::new(&ak, &sk), "GetCallerIdentity", &[]);
    r.expect_ok("GetCallerIdentity with generated root credentials");
    assert_eq!(r.xml("Account").as_deref(), Some(acct.as_str()));
    assert_eq!(
        r.xml("Arn").as_deref(),
        Some(&*format!("arn:aws:iam::{acct}:root"))
    );
}

#[test]
fn non_loopback_plain_http_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (status, out, err) = run_to_exit_complete(dir.path(), &Opts::default().listen("0.0.0.0:0"));
    assert!(!status.success(), "status {status}");
    assert!(err.contains("--allow-insecure-http"), "stderr: {err}");
    assert!(err.contains("0.0.0.0:0"), "stderr: {err}");
    assert!(!out.contains("Coffer listening"), "stdout: {out}");
    // Refused before touching the data dir.
    assert!(!dir.path().join("root.key").exists());
}

#[test]
fn a_second_process_on_the_same_data_dir_is_refused_and_leaves_the_first_alone() {
    let dir = tempfile::tempdir().unwrap();
    let mut first = Server::start_in(dir.path(), Opts::default());
    let (status, out, err) = run_to_exit_complete(dir.path(), &Opts::default());
    assert!(!status.success(), "status {status}");
    assert!(
        err.contains("is in use by another Coffer process"),
        "stderr: {err}"
    );
    assert!(!out.contains("Coffer listening"), "stdout: {out}");
    // The first one still serves.
    let r = first.s3(Method::GET, "/", Some(&Signing::new(&Creds::root(), "s3")));
    assert_eq!(r.status, 200, "{}", r.body);
    let (status, _) = first.terminate(Duration::from_secs(5));
    assert!(status.success());
    // Once it is gone, the directory can be opened again.
    let mut again = Server::start_in(dir.path(), Opts::default());
    again.terminate(Duration::from_secs(5));
}

#[test]
fn sigterm_stops_waiting_for_a_request_after_the_shutdown_timeout() {
    let mut s = Server::start_with(Opts {
        extra_args: vec!["--shutdown-timeout".into(), "1".into()],
        ..Opts::default()
    });
    // A request whose body never finishes.
    let (_conn, _, _) = half_sent_list_users(&s);
    s.sigterm();
    // Still draining within the timeout...
    assert!(
        s.wait_timeout(Duration::from_millis(300)).is_none(),
        "exited with a request in flight before the shutdown timeout"
    );
    // ...and gone soon after it, although the body never came (its own timeout is 20 s).
    let status = s
        .wait_timeout(Duration::from_secs(5))
        .expect("still running 5 s after a 1 s shutdown timeout");
    assert!(status.success(), "{status}");
}
