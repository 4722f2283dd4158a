//! Defences at the connection and body level: how long a client may take to send a request
//! head, stay idle between requests, or pause inside a body; how many connections are served at
//! once; and how much unauthenticated body data is held in memory at once.
//! docs/ARCHITECTURE.md ("Hostile traffic") gives the values and the reasons.

use bytes::Bytes;
use hyper::body::{Body as HttpBody, Frame, SizeHint};
use std::pin::Pin;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

/// A request head must be complete this long after its first byte (or after the connection
/// opened, for the first request).
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// A kept-alive connection with no request in progress is closed after this long.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// A request body that delivers no byte for this long fails (S3 `RequestTimeout`).
pub const BODY_TIMEOUT: Duration = Duration::from_secs(20);
/// Connections served at once when neither `--max-connections` nor the descriptor limit says
/// less. Connections over the cap are accepted and closed at once.
pub const MAX_CONNECTIONS: usize = 4096;
/// Descriptors kept back from the connection cap for the store, blobs and the listener.
const FD_RESERVE: usize = 256;

/// Memory for request bodies read before their signature is checked (KMS, IAM, STS, and the
/// fields of a POST form), counted in units of [`PREAUTH_UNIT`] bytes: 64 MiB in all, i.e.
/// 64 bodies of the largest accepted size (1 MiB) at once, or many more small ones.
pub const PREAUTH_BUDGET: usize = 64 << 20;
/// The unit of the pre-authentication budget; a body takes `ceil(len / unit)` units.
const PREAUTH_UNIT: usize = 64 << 10;
/// A pre-authentication body must be read completely within this long of its first read, so
/// a client dribbling bytes cannot hold its share of the budget for longer.
pub const PREAUTH_READ_DEADLINE: Duration = Duration::from_secs(30);

/// Connection and body limits of one server.
#[derive(Debug, Clone)]
pub struct Limits {
    pub header_timeout: Duration,
    pub idle_timeout: Duration,
    pub body_timeout: Duration,
    pub max_connections: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            header_timeout: HEADER_TIMEOUT,
            idle_timeout: IDLE_TIMEOUT,
            body_timeout: BODY_TIMEOUT,
            max_connections: default_max_connections(),
        }
    }
}

/// [`MAX_CONNECTIONS`], or less when the soft open-file limit would run out first (each
/// connection is one descriptor; [`FD_RESERVE`] stay for everything else).
pub fn default_max_connections() -> usize {
    match soft_fd_limit() {
        Some(n) => n.saturating_sub(FD_RESERVE).clamp(64, MAX_CONNECTIONS),
        None => MAX_CONNECTIONS,
    }
}

/// The soft `RLIMIT_NOFILE` as Linux reports it in `/proc/self/limits`.
fn soft_fd_limit() -> Option<usize> {
    let text = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = text.lines().find(|l| l.starts_with("Max open files"))?;
    line["Max open files".len()..]
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// The limits plus the shared state that enforces them.
pub struct Edge {
    pub limits: Limits,
    preauth: Arc<Semaphore>,
}

impl Edge {
    pub fn new(limits: Limits) -> Self {
        Edge {
            limits,
            preauth: Arc::new(Semaphore::new(PREAUTH_BUDGET / PREAUTH_UNIT)),
        }
    }

    /// Reserves pre-authentication memory for a body of `len` bytes (at most `max`; unknown
    /// length: `max`), waiting at most the body timeout for it. `None`: none came free in time.
    pub(crate) async fn reserve_preauth(
        &self,
        len: Option<u64>,
        max: usize,
    ) -> Option<OwnedSemaphorePermit> {
        let bytes = len.map_or(max, |n| usize::try_from(n).unwrap_or(max).min(max));
        let units = u32::try_from(bytes.div_ceil(PREAUTH_UNIT).max(1)).unwrap_or(u32::MAX);
        tokio::time::timeout(
            self.limits.body_timeout,
            self.preauth.clone().acquire_many_owned(units),
        )
        .await
        .ok()?
        .ok()
    }
}

impl Default for Edge {
    fn default() -> Self {
        Edge::new(Limits::default())
    }
}

// ------------------------------------------------------------------------------------------
// Connections
// ------------------------------------------------------------------------------------------

/// What the request-head watchdog of one connection knows.
pub(crate) struct ConnWatch {
    origin: Instant,
    /// Requests inside the handler.
    in_request: AtomicU32,
    /// When the pending request head began (ms since `origin`, plus one); 0: none pending.
    head_since: AtomicU64,
    notify: Notify,
}

impl ConnWatch {
    /// A new connection: its first request head is due within the header timeout.
    pub(crate) fn new() -> Self {
        ConnWatch {
            origin: Instant::now(),
            in_request: AtomicU32::new(0),
            head_since: AtomicU64::new(1),
            notify: Notify::new(),
        }
    }

    fn now_mark(&self) -> u64 {
        u64::try_from(self.origin.elapsed().as_millis())
            .unwrap_or(u64::MAX - 1)
            .saturating_add(1)
    }

    /// A request head was parsed and its handler runs until the guard drops.
    pub(crate) fn begin_request(self: &Arc<Self>) -> RequestGuard {
        self.in_request.fetch_add(1, Ordering::AcqRel);
        self.head_since.store(0, Ordering::Release);
        RequestGuard(self.clone())
    }

    /// Bytes arrived: if no request is in progress they start the next head.
    fn on_read(&self) {
        if self.in_request.load(Ordering::Acquire) == 0
            && self.head_since.load(Ordering::Acquire) == 0
        {
            self.head_since.store(self.now_mark(), Ordering::Release);
            self.notify.notify_one();
        }
    }

    /// Bytes were sent: a response is still going out, so a head the client already started
    /// (pipelined) has its full time once the response is done.
    fn on_write(&self) {
        if self.in_request.load(Ordering::Acquire) == 0
            && self.head_since.load(Ordering::Acquire) != 0
        {
            self.head_since.store(self.now_mark(), Ordering::Release);
        }
    }

    /// Resolves when a request head has been pending longer than `timeout`.
    pub(crate) async fn head_overdue(&self, timeout: Duration) {
        loop {
            let since = self.head_since.load(Ordering::Acquire);
            if since == 0 {
                self.notify.notified().await;
                continue;
            }
            let due = self.origin + Duration::from_millis(since - 1) + timeout;
            tokio::select! {
                _ = tokio::time::sleep_until(due) => {
                    if self.head_since.load(Ordering::Acquire) == since
                        && self.in_request.load(Ordering::Acquire) == 0
                    {
                        return;
                    }
                }
                _ = self.notify.notified() => {}
            }
        }
    }
}

pub(crate) struct RequestGuard(Arc<ConnWatch>);

impl Drop for RequestGuard {
    fn drop(&mut self) {
        self.0.in_request.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A connection's byte stream, reporting reads to its [`ConnWatch`].
pub(crate) struct WatchedIo<S> {
    inner: S,
    watch: Arc<ConnWatch>,
}

impl<S> WatchedIo<S> {
    pub(crate) fn new(inner: S, watch: Arc<ConnWatch>) -> Self {
        WatchedIo { inner, watch }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for WatchedIo<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(r, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.watch.on_read();
        }
        r
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for WatchedIo<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            self.watch.on_write();
        }
        r
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            self.watch.on_write();
        }
        r
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

// ------------------------------------------------------------------------------------------
// Bodies
// ------------------------------------------------------------------------------------------

/// Why a request body failed on the gateway's side; the first one recorded wins.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum BodyFault {
    /// No byte arrived for the body timeout.
    Stalled,
    /// More bytes than the operation accepts.
    TooLarge,
    /// The bytes do not hash to the declared `x-amz-content-sha256`.
    Sha256Mismatch { client: String, computed: String },
}

/// Where a request's body records its fault; shared by the body and the handler.
pub(crate) type Faults = Arc<OnceLock<BodyFault>>;

/// Carried in a request's extensions: the fault slot of its (timed) body.
#[derive(Clone)]
pub(crate) struct BodyWatch(pub(crate) Faults);

#[derive(Debug)]
struct BodyError(&'static str);

impl std::fmt::Display for BodyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0)
    }
}

impl std::error::Error for BodyError {}

/// SHA-256 of a body whose `x-amz-content-sha256` is a digest, compared once `len` bytes passed.
struct ShaCheck {
    ctx: aws_lc_rs::digest::Context,
    declared: String,
    len: u64,
}

/// A request body under the gateway's watch: fails when no byte arrives for `stall`, when more
/// than `limit` bytes come, and records a SHA-256 mismatch (the reader above it, s3s, refuses
/// the body itself; the gateway then answers with AWS's error).
pub(crate) struct Guarded<B> {
    inner: B,
    stall: Option<(Duration, Pin<Box<tokio::time::Sleep>>, bool)>,
    limit: Option<u64>,
    seen: u64,
    sha: Option<ShaCheck>,
    faults: Faults,
    failed: Option<&'static str>,
}

impl<B> Guarded<B> {
    /// Fails the body when it stalls for `timeout`.
    pub(crate) fn timed(inner: B, timeout: Duration, faults: Faults) -> Self {
        Guarded {
            inner,
            stall: Some((timeout, Box::pin(tokio::time::sleep(timeout)), false)),
            limit: None,
            seen: 0,
            sha: None,
            faults,
            failed: None,
        }
    }

    /// Fails the body past `limit` bytes; checks it against `sha256` (hex) when given with the
    /// body's length.
    pub(crate) fn limited(
        inner: B,
        limit: u64,
        sha256: Option<(&str, u64)>,
        faults: Faults,
    ) -> Self {
        Guarded {
            inner,
            stall: None,
            limit: Some(limit),
            seen: 0,
            sha: sha256.map(|(declared, len)| ShaCheck {
                ctx: aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256),
                declared: declared.to_ascii_lowercase(),
                len,
            }),
            faults,
            failed: None,
        }
    }

    fn fail(
        &mut self,
        fault: BodyFault,
        msg: &'static str,
    ) -> Poll<Option<Result<Frame<Bytes>, s3s::StdError>>> {
        let _ = self.faults.set(fault);
        self.failed = Some(msg);
        Poll::Ready(Some(Err(Box::new(BodyError(msg)))))
    }

    fn hash(&mut self, data: &[u8]) {
        let Some(sha) = &mut self.sha else { return };
        sha.ctx.update(data);
        if self.seen >= sha.len
            && let Some(sha) = self.sha.take()
        {
            let computed = hex::encode(sha.ctx.finish().as_ref());
            if computed != sha.declared {
                let _ = self.faults.set(BodyFault::Sha256Mismatch {
                    client: sha.declared,
                    computed,
                });
            }
        }
    }
}

impl<B> HttpBody for Guarded<B>
where
    B: HttpBody<Data = Bytes> + Unpin,
    B::Error: Into<s3s::StdError>,
{
    type Data = Bytes;
    type Error = s3s::StdError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = self.get_mut();
        if let Some(msg) = this.failed {
            return Poll::Ready(Some(Err(Box::new(BodyError(msg)))));
        }
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some((_, _, armed)) = &mut this.stall {
                    *armed = false;
                }
                if let Some(data) = frame.data_ref() {
                    this.seen = this.seen.saturating_add(data.len() as u64);
                    if this.limit.is_some_and(|l| this.seen > l) {
                        return this.fail(BodyFault::TooLarge, "request body too large");
                    }
                    this.hash(data);
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(e.into()))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => {
                if let Some((timeout, sleep, armed)) = &mut this.stall {
                    if !*armed {
                        sleep.as_mut().reset(Instant::now() + *timeout);
                        *armed = true;
                    }
                    if sleep.as_mut().poll(cx).is_ready() {
                        return this.fail(BodyFault::Stalled, "request body timed out");
                    }
                }
                Poll::Pending
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.failed.is_none() && self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    /// Yields one frame, then never another.
    struct OneThenNothing(Option<Bytes>);

    impl HttpBody for OneThenNothing {
        type Data = Bytes;
        type Error = std::convert::Infallible;

        fn poll_frame(
            mut self: Pin<&mut Self>,
            _cx: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
            match self.0.take() {
                Some(b) => Poll::Ready(Some(Ok(Frame::data(b)))),
                None => Poll::Pending,
            }
        }
    }

    #[tokio::test]
    async fn a_stalled_body_fails_and_says_why() {
        let faults: Faults = Arc::default();
        let inner = OneThenNothing(Some(Bytes::from_static(b"abc")));
        let body = Guarded::timed(inner, Duration::from_millis(50), faults.clone());
        let r = tokio::time::timeout(Duration::from_secs(5), body.collect()).await;
        assert!(matches!(r, Ok(Err(_))));
        assert_eq!(faults.get(), Some(&BodyFault::Stalled));
    }

    #[tokio::test]
    async fn limits_and_sha256() {
        let data = Bytes::from_static(b"hello world");
        let good = hex::encode(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &data));
        let faults: Faults = Arc::default();
        let b = Guarded::limited(
            http_body_util::Full::new(data.clone()),
            100,
            Some((&good, 11)),
            faults.clone(),
        );
        assert_eq!(b.collect().await.unwrap().to_bytes(), data);
        assert!(faults.get().is_none());

        let faults: Faults = Arc::default();
        let b = Guarded::limited(
            http_body_util::Full::new(data.clone()),
            100,
            Some((&"0".repeat(64), 11)),
            faults.clone(),
        );
        let _ = b.collect().await;
        assert!(matches!(
            faults.get(),
            Some(BodyFault::Sha256Mismatch { computed, .. }) if *computed == good
        ));

        let faults: Faults = Arc::default();
        let b = Guarded::limited(http_body_util::Full::new(data), 5, None, faults.clone());
        assert!(b.collect().await.is_err());
        assert_eq!(faults.get(), Some(&BodyFault::TooLarge));
    }
}
