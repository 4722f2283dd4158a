//! `GET /_coffer/metrics`: requests of every service move the right counters by the right
//! amounts, histograms are well-formed, the store, caches, per-key KMS counters and background
//! jobs report, and a configured token is required.

mod common;

use common::*;
use http::{HeaderMap, HeaderValue, Method};
use std::collections::HashMap;

type Labels = Vec<(String, String)>;

/// One scrape, parsed.
struct Scrape {
    samples: Vec<(String, Labels, f64)>,
    /// Family name → its `# TYPE`.
    types: HashMap<String, String>,
}

/// Parses `{a="x",b="y\"z"}` (the text after the metric name, up to the value).
fn parse_labels(s: &str) -> (Labels, &str) {
    let Some(rest) = s.strip_prefix('{') else {
        return (vec![], s);
    };
    let mut labels = vec![];
    let mut chars = rest.char_indices().peekable();
    loop {
        let (start, c) = chars.next().expect("unterminated labels");
        if c == '}' {
            return (labels, &rest[start + 1..]);
        }
        if c == ',' {
            continue;
        }
        let eq = rest[start..].find('=').expect("label =") + start;
        let name = rest[start..eq].to_string();
        assert_eq!(
            &rest[eq + 1..eq + 2],
            "\"",
            "label value must be quoted: {s}"
        );
        while chars.peek().is_some_and(|(i, _)| *i < eq + 2) {
            chars.next();
        }
        let mut value = String::new();
        loop {
            let (_, c) = chars.next().expect("unterminated label value");
            match c {
                '\\' => match chars.next().expect("escape").1 {
                    'n' => value.push('\n'),
                    c @ ('\\' | '"') => value.push(c),
                    c => panic!("bad escape \\{c} in {s}"),
                },
                '"' => break,
                c => value.push(c),
            }
        }
        labels.push((name, value));
    }
}

fn parse(text: &str) -> Scrape {
    let mut samples = vec![];
    let mut types = HashMap::new();
    for line in text.lines() {
        if let Some(t) = line.strip_prefix("# TYPE ") {
            let (name, kind) = t.split_once(' ').expect("TYPE line");
            assert!(
                ["counter", "gauge", "histogram"].contains(&kind),
                "unexpected type {kind}"
            );
            assert!(
                types.insert(name.to_string(), kind.to_string()).is_none(),
                "{name} typed twice"
            );
            continue;
        }
        if line.starts_with("# HELP ") {
            continue;
        }
        assert!(!line.is_empty() && !line.starts_with('#'), "line {line:?}");
        let end = line.find(['{', ' ']).expect("metric name");
        let name = &line[..end];
        assert!(
            name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
            "metric name {name:?}"
        );
        let (labels, rest) = parse_labels(&line[end..]);
        let value = rest.trim();
        let value: f64 = match value {
            "+Inf" => f64::INFINITY,
            v => v
                .parse()
                .unwrap_or_else(|_| panic!("value {v:?} in {line:?}")),
        };
        // Every sample belongs to a family announced before it.
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| {
                name.strip_suffix(s)
                    .filter(|f| types.get(*f).is_some_and(|t| t == "histogram"))
            })
            .unwrap_or(name);
        assert!(types.contains_key(family), "{name} has no TYPE line");
        samples.push((name.to_string(), labels, value));
    }
    Scrape { samples, types }
}

impl Scrape {
    /// The sample `name` whose labels are exactly `labels` (any order); 0 if absent.
    fn get(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        let mut want: Vec<(&str, &str)> = labels.to_vec();
        want.sort();
        self.samples
            .iter()
            .find(|(n, ls, _)| {
                let mut have: Vec<(&str, &str)> =
                    ls.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
                have.sort();
                n == name && have == want
            })
            .map_or(0.0, |(_, _, v)| *v)
    }

    /// Sum of the samples `name` that carry every label of `labels`.
    fn sum(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.samples
            .iter()
            .filter(|(n, ls, _)| {
                n == name
                    && labels
                        .iter()
                        .all(|(k, v)| ls.iter().any(|(a, b)| a == k && b == v))
            })
            .map(|(_, _, v)| v)
            .sum()
    }

    /// Every histogram: per label set, buckets in increasing `le` with non-decreasing counts,
    /// ending with `+Inf` equal to `_count`, and a `_sum`.
    fn check_histograms(&self) {
        let mut seen = 0;
        for (family, _) in self.types.iter().filter(|(_, t)| *t == "histogram") {
            let bucket = format!("{family}_bucket");
            let mut series: Vec<(Labels, Vec<(f64, f64)>)> = vec![];
            for (n, ls, v) in &self.samples {
                if *n != bucket {
                    continue;
                }
                let le = ls
                    .iter()
                    .find(|(k, _)| k == "le")
                    .map(|(_, v)| v.clone())
                    .unwrap_or_else(|| panic!("{bucket} without le"));
                let le: f64 = if le == "+Inf" {
                    f64::INFINITY
                } else {
                    le.parse().unwrap()
                };
                let rest: Labels = ls.iter().filter(|(k, _)| k != "le").cloned().collect();
                match series.iter_mut().find(|(l, _)| *l == rest) {
                    Some((_, b)) => b.push((le, *v)),
                    None => series.push((rest, vec![(le, *v)])),
                }
            }
            assert!(!series.is_empty(), "{family} has no buckets");
            for (ls, buckets) in series {
                for w in buckets.windows(2) {
                    assert!(w[0].0 < w[1].0, "{family}{ls:?}: le out of order");
                    assert!(w[0].1 <= w[1].1, "{family}{ls:?}: buckets not cumulative");
                }
                let (last_le, last) = *buckets.last().unwrap();
                assert_eq!(last_le, f64::INFINITY, "{family}{ls:?}: no +Inf bucket");
                let count = self
                    .samples
                    .iter()
                    .find(|(n, l, _)| *n == format!("{family}_count") && *l == ls)
                    .unwrap_or_else(|| panic!("{family}{ls:?}: no _count"))
                    .2;
                assert_eq!(last, count, "{family}{ls:?}: +Inf != _count");
                assert!(
                    self.samples
                        .iter()
                        .any(|(n, l, _)| *n == format!("{family}_sum") && *l == ls),
                    "{family}{ls:?}: no _sum"
                );
                seen += 1;
            }
        }
        assert!(seen >= 3, "histograms: {seen}");
    }
}

fn scrape_raw(s: &Server, auth: Option<&str>) -> Resp {
    let mut h = HeaderMap::new();
    if let Some(a) = auth {
        h.insert(
            http::header::AUTHORIZATION,
            HeaderValue::from_str(a).unwrap(),
        );
    }
    s.send(Method::GET, "/_coffer/metrics", h, b"", None)
}

fn scrape(s: &Server) -> Scrape {
    let r = scrape_raw(s, None);
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.header("content-type"), Some("text/plain; version=0.0.4"));
    parse(&r.body)
}

#[test]
fn requests_store_caches_keys_and_jobs_are_counted() {
    let opts = Opts {
        extra_args: vec!["--test-clock".into()],
        ..Opts::default()
    };
    let s = Server::start_with(opts);
    let root = Creds::root();
    let kms = Signing::new(&root, "kms");
    let s3 = Signing::new(&root, "s3");
    let before = scrape(&s);

    // IAM and STS.
    for _ in 0..3 {
        s.iam(&root, "ListUsers", &[]).expect_ok("ListUsers");
    }
    s.iam(&root, "CreateUser", &[("UserName", "metrics-user")])
        .expect_ok("CreateUser");
    // A made-up action is counted, but never under its own name.
    let r = s.iam(&root, "NoSuchAction\"}", &[]);
    assert_eq!(r.status, 400, "{}", r.body);
    for _ in 0..2 {
        s.sts(&root, "GetCallerIdentity", &[])
            .expect_ok("GetCallerIdentity");
    }

    // KMS: five Encrypts and one Decrypt on one key.
    let r = s.kms("CreateKey", "{}", Some(&kms));
    r.expect_ok("CreateKey");
    let key = r.json()["KeyMetadata"]["KeyId"]
        .as_str()
        .unwrap()
        .to_string();
    let mut blob = String::new();
    for _ in 0..5 {
        let r = s.kms(
            "Encrypt",
            &format!(r#"{{"KeyId":"{key}","Plaintext":"aGVsbG8="}}"#),
            Some(&kms),
        );
        r.expect_ok("Encrypt");
        blob = r.json()["CiphertextBlob"].as_str().unwrap().to_string();
    }
    s.kms(
        "Decrypt",
        &format!(r#"{{"CiphertextBlob":"{blob}"}}"#),
        Some(&kms),
    )
    .expect_ok("Decrypt");

    // S3.
    s.s3(Method::PUT, "/metrics-bkt", Some(&s3))
        .expect_ok("CreateBucket");
    for k in ["a", "b"] {
        let r = s.send(
            Method::PUT,
            &format!("/metrics-bkt/{k}"),
            HeaderMap::new(),
            b"hello",
            Some(&s3),
        );
        r.expect_ok("PutObject");
    }
    s.s3(Method::GET, "/metrics-bkt/a", Some(&s3))
        .expect_ok("GetObject");
    assert_eq!(
        s.s3(Method::GET, "/metrics-bkt/missing", Some(&s3)).status,
        404
    );
    s.s3(Method::GET, "/metrics-bkt?list-type=2", Some(&s3))
        .expect_ok("ListObjectsV2");

    // The console.
    let console = s.send(Method::GET, "/console", HeaderMap::new(), b"", None);
    let console_status = console.status.to_string();

    // A key deleted by the scheduled work (run at once when the test clock moves).
    let r = s.kms("CreateKey", "{}", Some(&kms));
    let doomed = r.json()["KeyMetadata"]["KeyId"]
        .as_str()
        .unwrap()
        .to_string();
    s.kms(
        "ScheduleKeyDeletion",
        &format!(r#"{{"KeyId":"{doomed}","PendingWindowInDays":7}}"#),
        Some(&kms),
    )
    .expect_ok("ScheduleKeyDeletion");
    let r = s.send(
        Method::POST,
        "/_coffer/test/advance-clock?seconds=700000",
        HeaderMap::new(),
        b"",
        None,
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["deleted"], 1, "{}", r.body);

    let after = scrape(&s);
    after.check_histograms();
    let delta =
        |name: &str, labels: &[(&str, &str)]| after.get(name, labels) - before.get(name, labels);
    let req = |svc: &str, op: &str, status: &str| {
        delta(
            "coffer_requests_total",
            &[("service", svc), ("operation", op), ("status", status)],
        )
    };
    assert_eq!(req("iam", "ListUsers", "200"), 3.0);
    assert_eq!(req("iam", "CreateUser", "200"), 1.0);
    assert_eq!(req("iam", "unknown", "400"), 1.0);
    assert_eq!(req("sts", "GetCallerIdentity", "200"), 2.0);
    assert_eq!(req("kms", "CreateKey", "200"), 2.0);
    assert_eq!(req("kms", "Encrypt", "200"), 5.0);
    assert_eq!(req("kms", "Decrypt", "200"), 1.0);
    assert_eq!(req("kms", "ScheduleKeyDeletion", "200"), 1.0);
    assert_eq!(req("s3", "CreateBucket", "200"), 1.0);
    assert_eq!(req("s3", "PutObject", "200"), 2.0);
    assert_eq!(req("s3", "GetObject", "200"), 1.0);
    assert_eq!(req("s3", "GetObject", "404"), 1.0);
    assert_eq!(req("s3", "ListObjectsV2", "200"), 1.0);
    assert_eq!(req("console", "GET", &console_status), 1.0);
    assert_eq!(req("other", "AdvanceClock", "200"), 1.0);
    // The first scrape (a scrape counts once answered, so not in its own output).
    assert_eq!(req("other", "Metrics", "200"), 1.0);
    // No client text became a label.
    assert!(
        after
            .samples
            .iter()
            .all(|(_, ls, _)| ls.iter().all(|(_, v)| !v.contains("NoSuchAction"))),
        "a client's action name became a label"
    );

    // Durations: one observation per request, by service.
    let count = |svc: &str| {
        after.get("coffer_request_duration_seconds_count", &[("service", svc)])
            - before.get("coffer_request_duration_seconds_count", &[("service", svc)])
    };
    assert_eq!(count("kms"), 9.0);
    assert_eq!(count("iam"), 5.0);
    assert_eq!(count("sts"), 2.0);
    assert_eq!(count("s3"), 6.0);
    assert_eq!(count("console"), 1.0);
    assert!(after.get("coffer_request_duration_seconds_sum", &[("service", "kms")]) > 0.0);

    // The store: commits, each with its batch size and time.
    let commits = after.get("coffer_store_commits_total", &[]);
    assert!(
        commits > before.get("coffer_store_commits_total", &[]),
        "{commits}"
    );
    assert_eq!(
        after.get("coffer_store_commit_batch_size_count", &[]),
        commits
    );
    assert_eq!(after.get("coffer_store_fsync_seconds_count", &[]), commits);
    assert!(after.get("coffer_store_fsync_seconds_sum", &[]) > 0.0);
    assert!(after.get("coffer_store_commit_batch_size_sum", &[]) >= commits);
    assert_eq!(after.get("coffer_store_failed_commits_total", &[]), 0.0);

    // Caches: repeated requests hit.
    let lookups = |cache: &str, result: &str| {
        delta(
            "coffer_cache_lookups_total",
            &[("cache", cache), ("result", result)],
        )
    };
    assert!(lookups("iam_credentials", "hit") >= 1.0);
    assert!(
        lookups("kms_keys", "hit") >= 1.0,
        "Encrypts after the first hit the key cache"
    );
    assert!(lookups("kms_keys", "miss") >= 1.0);

    // Per key: exactly the Encrypts and the Decrypt.
    let per_key = |op: &str| {
        after.get(
            "coffer_kms_key_operations_total",
            &[("key_id", &key), ("operation", op)],
        )
    };
    assert_eq!(per_key("Encrypt"), 5.0);
    assert_eq!(per_key("Decrypt"), 1.0);
    assert_eq!(per_key("Sign"), 0.0);
    assert_eq!(
        after.sum("coffer_kms_key_operations_total", &[("key_id", &doomed)]),
        0.0
    );

    // Background work.
    assert_eq!(delta("coffer_kms_keys_destroyed_total", &[]), 1.0);
    assert!(
        delta(
            "coffer_background_runs_total",
            &[("job", "kms_due"), ("result", "ok")]
        ) >= 1.0
    );
    assert_eq!(
        after.get(
            "coffer_background_runs_total",
            &[("job", "kms_due"), ("result", "error")]
        ),
        0.0
    );
    assert_eq!(after.types["coffer_background_runs_total"], "counter");
    assert_eq!(after.types["coffer_kms_keys_rotated_total"], "counter");

    // Connections: at least the scrape's own.
    assert!(after.get("coffer_connections_open", &[]) >= 1.0);
    assert_eq!(after.types["coffer_connections_open"], "gauge");
    assert_eq!(after.get("coffer_connections_refused_total", &[]), 0.0);
}

#[test]
fn a_configured_token_is_required() {
    let opts = Opts {
        extra_args: vec!["--metrics-token".into(), "m3trics-T0ken".into()],
        ..Opts::default()
    };
    let s = Server::start_with(opts);
    let r = scrape_raw(&s, None);
    assert_eq!(r.status, 401, "{}", r.body);
    assert!(!r.body.contains("coffer_"), "{}", r.body);
    assert!(r.header("www-authenticate").is_some());
    assert_eq!(scrape_raw(&s, Some("Bearer wrong")).status, 401);
    assert_eq!(scrape_raw(&s, Some("Bearer m3trics-T0ke")).status, 401);
    assert_eq!(scrape_raw(&s, Some("m3trics-T0ken")).status, 401);
    let r = scrape_raw(&s, Some("Bearer m3trics-T0ken"));
    assert_eq!(r.status, 200, "{}", r.body);
    let m = parse(&r.body);
    // The refused scrapes were counted.
    assert_eq!(
        m.get(
            "coffer_requests_total",
            &[
                ("service", "other"),
                ("operation", "Metrics"),
                ("status", "401")
            ]
        ),
        4.0
    );

    // The same from the environment.
    let s = Server::start_with(Opts::default().env("COFFER_METRICS_TOKEN", "from-env"));
    assert_eq!(scrape_raw(&s, None).status, 401);
    assert_eq!(scrape_raw(&s, Some("Bearer from-env")).status, 200);
}

#[test]
fn connections_over_the_cap_are_counted() {
    use std::io::{Read, Write};
    let opts = Opts {
        extra_args: vec!["--max-connections".into(), "1".into()],
        ..Opts::default()
    };
    let s = Server::start_with(opts);
    // One connection holds the only slot (a complete request, kept alive).
    let mut held = connect(s.addr);
    let head = request_head(
        s.addr,
        &Method::GET,
        "/_coffer/health",
        &HeaderMap::new(),
        0,
        false,
    );
    held.write_all(&head).unwrap();
    assert_eq!(read_one_response(&mut held).status, 200);
    // The next one is accepted and closed at once.
    let mut refused = connect(s.addr);
    let mut buf = vec![];
    let _ = refused.read_to_end(&mut buf);
    assert!(buf.is_empty());
    // The held connection can scrape: one open, one refused.
    let head = request_head(
        s.addr,
        &Method::GET,
        "/_coffer/metrics",
        &HeaderMap::new(),
        0,
        false,
    );
    held.write_all(&head).unwrap();
    let r = read_one_response(&mut held);
    assert_eq!(r.status, 200, "{}", r.body);
    let m = parse(&r.body);
    assert_eq!(m.get("coffer_connections_open", &[]), 1.0);
    assert_eq!(m.get("coffer_connections_refused_total", &[]), 1.0);
}
