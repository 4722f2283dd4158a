//! Sans-IO `aws-chunked` body decoding and encoding (§1.3).
//!
//! Signed chunk: `hex(size);chunk-signature=<sig>\r\n<data>\r\n`, final
//! `0;chunk-signature=<sig>\r\n` followed by the trailer lines (if any) and an empty line.
//! Unsigned (`STREAMING-UNSIGNED-PAYLOAD-TRAILER`, boto3): `hex(size)\r\n<data>\r\n`, final
//! `0\r\n`, trailer lines, empty line.
//!
//! Chunk string to sign:
//! `AWS4-HMAC-SHA256-PAYLOAD\n<date>\n<scope>\n<previous sig>\n<sha256("")>\n<sha256(data)>`;
//! trailer string to sign:
//! `AWS4-HMAC-SHA256-TRAILER\n<date>\n<scope>\n<final chunk sig>\n<sha256(trailer lines)>`
//! where the trailer lines are `name:value\n` for each trailer (lowercase name, trimmed value,
//! in the order received, excluding `x-amz-trailer-signature`).

use aws_lc_rs::digest;

use crate::{AuthError, EMPTY_SHA256, SigningKey, sha256_hex};

/// Longest chunk-header or trailer line accepted (excluding CRLF).
pub const MAX_LINE: usize = 4096;
/// Most trailer headers accepted.
pub const MAX_TRAILERS: usize = 32;

const TRAILER_SIGNATURE: &str = "x-amz-trailer-signature";

/// Which aws-chunked variant the body uses (from `x-amz-content-sha256`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChunkedMode {
    /// `STREAMING-AWS4-HMAC-SHA256-PAYLOAD`: signed chunks, no trailer.
    SignedPayload,
    /// `STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER`: signed chunks + signed trailer.
    SignedPayloadTrailer,
    /// `STREAMING-UNSIGNED-PAYLOAD-TRAILER`: unsigned chunks + unsigned trailer.
    UnsignedPayloadTrailer,
}

impl ChunkedMode {
    /// Mode for an `x-amz-content-sha256` value, if it is one of the three handled here.
    pub fn from_content_sha256(value: &str) -> Option<Self> {
        match value {
            "STREAMING-AWS4-HMAC-SHA256-PAYLOAD" => Some(ChunkedMode::SignedPayload),
            "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER" => Some(ChunkedMode::SignedPayloadTrailer),
            "STREAMING-UNSIGNED-PAYLOAD-TRAILER" => Some(ChunkedMode::UnsignedPayloadTrailer),
            _ => None,
        }
    }

    /// The `x-amz-content-sha256` value of this mode.
    pub fn content_sha256(self) -> &'static str {
        match self {
            ChunkedMode::SignedPayload => "STREAMING-AWS4-HMAC-SHA256-PAYLOAD",
            ChunkedMode::SignedPayloadTrailer => "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER",
            ChunkedMode::UnsignedPayloadTrailer => "STREAMING-UNSIGNED-PAYLOAD-TRAILER",
        }
    }

    fn signed(self) -> bool {
        !matches!(self, ChunkedMode::UnsignedPayloadTrailer)
    }

    fn has_trailer(self) -> bool {
        !matches!(self, ChunkedMode::SignedPayload)
    }
}

fn chunk_string_to_sign(amz_date: &str, scope: &str, prev: &str, data_hash: &str) -> String {
    format!("AWS4-HMAC-SHA256-PAYLOAD\n{amz_date}\n{scope}\n{prev}\n{EMPTY_SHA256}\n{data_hash}")
}

fn canonical_trailers(trailers: &[(String, String)]) -> String {
    let mut s = String::new();
    for (n, v) in trailers {
        s.push_str(n);
        s.push(':');
        s.push_str(v);
        s.push('\n');
    }
    s
}

fn trailer_string_to_sign(
    amz_date: &str,
    scope: &str,
    prev: &str,
    trailers: &[(String, String)],
) -> String {
    format!(
        "AWS4-HMAC-SHA256-TRAILER\n{amz_date}\n{scope}\n{prev}\n{}",
        sha256_hex(canonical_trailers(trailers).as_bytes())
    )
}

fn bad(msg: impl Into<String>) -> AuthError {
    AuthError::BadChunk(msg.into())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Header,
    Data { remaining: u64 },
    DataCr,
    DataLf,
    Trailer,
    Done,
    Failed,
}

/// Sans-IO `aws-chunked` decoder with per-chunk and trailer signature verification.
///
/// Feed it arbitrary slices of the encoded body; decoded data is appended to `out` **as it
/// arrives, before the enclosing chunk's signature has been checked**. Decoded bytes are
/// therefore untrusted until [`ChunkedDecoder::finish`] returns `Ok`: callers must stage the
/// data and commit (store the object/part) only after `finish()` succeeds. Any error is final;
/// later calls fail too.
///
/// Memory is bounded: one header/trailer line (≤ [`MAX_LINE`] bytes), the running SHA-256 of the
/// current chunk and at most [`MAX_TRAILERS`] trailers. Trailer *values* (e.g. CRC32
/// checksums) are returned, not checked; compare them against the data yourself, and the
/// names against `x-amz-trailer`.
pub struct ChunkedDecoder {
    mode: ChunkedMode,
    key: Option<SigningKey>,
    prev_sig: String,
    amz_date: String,
    scope: String,
    state: State,
    line: Vec<u8>,
    hasher: Option<digest::Context>,
    pending_sig: Option<String>,
    decoded: u64,
    expected_len: Option<u64>,
    trailers: Vec<(String, String)>,
    trailer_sig: Option<String>,
}

impl std::fmt::Debug for ChunkedDecoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChunkedDecoder")
            .field("mode", &self.mode)
            .field("state", &self.state)
            .field("decoded", &self.decoded)
            .finish_non_exhaustive()
    }
}

impl ChunkedDecoder {
    /// `key` is the signing key returned by [`crate::verify`] (required for the signed modes;
    /// without it every signed chunk fails), `seed_signature` the `Authorization` signature,
    /// `amz_date` the request's `X-Amz-Date` and `scope` its credential scope.
    pub fn new(
        mode: ChunkedMode,
        key: Option<SigningKey>,
        seed_signature: &str,
        amz_date: &str,
        scope: &str,
    ) -> Self {
        ChunkedDecoder {
            mode,
            key,
            prev_sig: seed_signature.to_ascii_lowercase(),
            amz_date: amz_date.to_owned(),
            scope: scope.to_owned(),
            state: State::Header,
            line: Vec::new(),
            hasher: None,
            pending_sig: None,
            decoded: 0,
            expected_len: None,
            trailers: Vec::new(),
            trailer_sig: None,
        }
    }

    /// Require exactly `len` decoded bytes (`x-amz-decoded-content-length`): exceeding it fails
    /// in `feed`, falling short fails in `finish`.
    pub fn with_decoded_length(mut self, len: u64) -> Self {
        self.expected_len = Some(len);
        self
    }

    /// Decoded data bytes produced so far.
    pub fn decoded_len(&self) -> u64 {
        self.decoded
    }

    /// True once the terminating empty line has been read (then `finish()` will succeed,
    /// barring a length mismatch).
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Decode `input`, appending data bytes to `out` (untrusted until `finish()` is `Ok`).
    pub fn feed(&mut self, input: &[u8], out: &mut Vec<u8>) -> Result<(), AuthError> {
        if self.state == State::Failed {
            return Err(bad("The aws-chunked decoder already failed"));
        }
        let r = self.feed_inner(input, out);
        if r.is_err() {
            self.state = State::Failed;
            self.hasher = None;
        }
        r
    }

    fn feed_inner(&mut self, input: &[u8], out: &mut Vec<u8>) -> Result<(), AuthError> {
        let mut i = 0;
        while i < input.len() {
            match self.state {
                State::Header | State::Trailer => {
                    let rest = &input[i..];
                    let (piece, consumed, complete) = match rest.iter().position(|&b| b == b'\n') {
                        Some(p) => (&rest[..p], p + 1, true),
                        None => (rest, rest.len(), false),
                    };
                    if self.line.len() + piece.len() > MAX_LINE {
                        return Err(bad("aws-chunked header or trailer line too long"));
                    }
                    self.line.extend_from_slice(piece);
                    i += consumed;
                    if complete {
                        let line = std::mem::take(&mut self.line);
                        let Some(line) = line.strip_suffix(b"\r") else {
                            return Err(bad("aws-chunked line not terminated by CRLF"));
                        };
                        if self.state == State::Header {
                            self.chunk_header(line)?;
                        } else {
                            self.trailer_line(line)?;
                        }
                    }
                }
                State::Data { remaining } => {
                    let avail = input.len() - i;
                    let n = usize::try_from(remaining).map_or(avail, |r| r.min(avail));
                    let data = &input[i..i + n];
                    out.extend_from_slice(data);
                    if let Some(h) = self.hasher.as_mut() {
                        h.update(data);
                    }
                    i += n;
                    self.decoded += n as u64;
                    let remaining = remaining - n as u64;
                    if remaining == 0 {
                        self.end_of_chunk_data()?;
                        self.state = State::DataCr;
                    } else {
                        self.state = State::Data { remaining };
                    }
                }
                State::DataCr => {
                    if input[i] != b'\r' {
                        return Err(bad("aws-chunked chunk data not followed by CRLF"));
                    }
                    i += 1;
                    self.state = State::DataLf;
                }
                State::DataLf => {
                    if input[i] != b'\n' {
                        return Err(bad("aws-chunked chunk data not followed by CRLF"));
                    }
                    i += 1;
                    self.state = State::Header;
                }
                State::Done => return Err(bad("Data after the end of the aws-chunked body")),
                State::Failed => return Err(bad("The aws-chunked decoder already failed")),
            }
        }
        Ok(())
    }

    fn chunk_header(&mut self, line: &[u8]) -> Result<(), AuthError> {
        let line =
            std::str::from_utf8(line).map_err(|_| bad("Invalid aws-chunked chunk header"))?;
        let mut parts = line.split(';');
        let size_str = parts.next().unwrap_or("");
        if size_str.is_empty()
            || size_str.len() > 16
            || !size_str.bytes().all(|b| b.is_ascii_hexdigit())
        {
            return Err(bad("Invalid aws-chunked chunk size"));
        }
        let size =
            u64::from_str_radix(size_str, 16).map_err(|_| bad("Invalid aws-chunked chunk size"))?;
        let mut sig = None;
        for ext in parts {
            if let Some(s) = ext.trim().strip_prefix("chunk-signature=") {
                if sig.is_some() {
                    return Err(bad("Duplicate chunk-signature"));
                }
                sig = Some(s.to_ascii_lowercase());
            }
        }
        if self.mode.signed() {
            match &sig {
                Some(s) if s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit()) => {}
                Some(_) => return Err(bad("Invalid chunk-signature")),
                None => return Err(bad("Missing chunk-signature in signed aws-chunked body")),
            }
        }
        let total = self
            .decoded
            .checked_add(size)
            .ok_or_else(|| bad("aws-chunked body too large"))?;
        if self.expected_len.is_some_and(|e| total > e) {
            return Err(bad(
                "aws-chunked body is longer than x-amz-decoded-content-length",
            ));
        }
        if size == 0 {
            if self.mode.signed() {
                self.check_chunk_sig(EMPTY_SHA256, sig.as_deref())?;
            }
            self.state = State::Trailer;
        } else {
            self.hasher = self
                .mode
                .signed()
                .then(|| digest::Context::new(&digest::SHA256));
            self.pending_sig = sig;
            self.state = State::Data { remaining: size };
        }
        Ok(())
    }

    fn end_of_chunk_data(&mut self) -> Result<(), AuthError> {
        if !self.mode.signed() {
            return Ok(());
        }
        let hash = match self.hasher.take() {
            Some(h) => hex::encode(h.finish().as_ref()),
            None => return Err(bad("aws-chunked internal state error")),
        };
        let sig = self.pending_sig.take();
        self.check_chunk_sig(&hash, sig.as_deref())
    }

    fn check_chunk_sig(&mut self, data_hash: &str, sig: Option<&str>) -> Result<(), AuthError> {
        let (Some(key), Some(sig)) = (&self.key, sig) else {
            return Err(bad("The chunk signature could not be verified"));
        };
        let sts = chunk_string_to_sign(&self.amz_date, &self.scope, &self.prev_sig, data_hash);
        if !key.verify_hex(sts.as_bytes(), sig) {
            return Err(bad(
                "The request signature we calculated does not match the signature you provided (aws-chunked chunk).",
            ));
        }
        self.prev_sig = sig.to_owned();
        Ok(())
    }

    fn trailer_line(&mut self, line: &[u8]) -> Result<(), AuthError> {
        if line.is_empty() {
            if self.mode == ChunkedMode::SignedPayloadTrailer {
                let (Some(key), Some(sig)) = (&self.key, &self.trailer_sig) else {
                    return Err(bad("Missing x-amz-trailer-signature"));
                };
                let sts = trailer_string_to_sign(
                    &self.amz_date,
                    &self.scope,
                    &self.prev_sig,
                    &self.trailers,
                );
                if !key.verify_hex(sts.as_bytes(), sig) {
                    return Err(bad(
                        "The request signature we calculated does not match the signature you provided (aws-chunked trailer).",
                    ));
                }
            }
            self.state = State::Done;
            return Ok(());
        }
        if !self.mode.has_trailer() {
            return Err(bad("Unexpected trailer in aws-chunked body"));
        }
        let line = std::str::from_utf8(line).map_err(|_| bad("Invalid aws-chunked trailer"))?;
        let Some((name, value)) = line.split_once(':') else {
            return Err(bad("Invalid aws-chunked trailer"));
        };
        let name = name.trim().to_ascii_lowercase();
        let value = value.trim().to_owned();
        if name.is_empty() {
            return Err(bad("Invalid aws-chunked trailer"));
        }
        if name == TRAILER_SIGNATURE {
            if self.mode == ChunkedMode::SignedPayloadTrailer {
                if self.trailer_sig.is_some() {
                    return Err(bad("Duplicate x-amz-trailer-signature"));
                }
                self.trailer_sig = Some(value);
            }
            return Ok(());
        }
        if self.trailer_sig.is_some() {
            return Err(bad("Trailer after x-amz-trailer-signature"));
        }
        if self.trailers.len() >= MAX_TRAILERS {
            return Err(bad("Too many trailers in aws-chunked body"));
        }
        self.trailers.push((name, value));
        Ok(())
    }

    /// The commit point: `Ok(trailers)` (lowercase names, trimmed values, in order) only if the
    /// whole body was received and every signature verified. Errors if the stream ended early.
    pub fn finish(self) -> Result<Vec<(String, String)>, AuthError> {
        match self.state {
            State::Done => {}
            State::Failed => return Err(bad("The aws-chunked decoder already failed")),
            _ => {
                return Err(bad(
                    "The aws-chunked body ended before its final chunk (incomplete body)",
                ));
            }
        }
        if self.expected_len.is_some_and(|e| e != self.decoded) {
            return Err(bad(
                "aws-chunked body is shorter than x-amz-decoded-content-length",
            ));
        }
        Ok(self.trailers)
    }
}

/// `aws-chunked` encoder (client side), producing what the AWS SDKs send.
pub struct ChunkedEncoder {
    mode: ChunkedMode,
    key: Option<SigningKey>,
    prev_sig: String,
    amz_date: String,
    scope: String,
}

impl std::fmt::Debug for ChunkedEncoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChunkedEncoder")
            .field("mode", &self.mode)
            .finish_non_exhaustive()
    }
}

impl ChunkedEncoder {
    /// Signed chunks (`with_trailer` selects `STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER`);
    /// `seed_signature` is the request's `Authorization` signature.
    pub fn signed(
        key: SigningKey,
        seed_signature: &str,
        amz_date: &str,
        scope: &str,
        with_trailer: bool,
    ) -> Self {
        ChunkedEncoder {
            mode: if with_trailer {
                ChunkedMode::SignedPayloadTrailer
            } else {
                ChunkedMode::SignedPayload
            },
            key: Some(key),
            prev_sig: seed_signature.to_owned(),
            amz_date: amz_date.to_owned(),
            scope: scope.to_owned(),
        }
    }

    /// `STREAMING-UNSIGNED-PAYLOAD-TRAILER` (botocore's `AwsChunkedWrapper`).
    pub fn unsigned_trailer() -> Self {
        ChunkedEncoder {
            mode: ChunkedMode::UnsignedPayloadTrailer,
            key: None,
            prev_sig: String::new(),
            amz_date: String::new(),
            scope: String::new(),
        }
    }

    pub fn mode(&self) -> ChunkedMode {
        self.mode
    }

    fn sign_next(&mut self, data_hash: &str) -> String {
        let sts = chunk_string_to_sign(&self.amz_date, &self.scope, &self.prev_sig, data_hash);
        let sig = self
            .key
            .as_ref()
            .map(|k| k.sign_hex(sts.as_bytes()))
            .unwrap_or_default();
        self.prev_sig = sig.clone();
        sig
    }

    /// Append one data chunk (ignored if `data` is empty: an empty chunk ends the body).
    pub fn encode_chunk(&mut self, data: &[u8], out: &mut Vec<u8>) {
        if data.is_empty() {
            return;
        }
        if self.mode.signed() {
            let sig = self.sign_next(&sha256_hex(data));
            out.extend_from_slice(format!("{:x};chunk-signature={sig}\r\n", data.len()).as_bytes());
        } else {
            out.extend_from_slice(format!("{:x}\r\n", data.len()).as_bytes());
        }
        out.extend_from_slice(data);
        out.extend_from_slice(b"\r\n");
    }

    /// Append the final chunk, the trailers (ignored for `SignedPayload`) and, when signed,
    /// the trailer signature.
    pub fn finish(&mut self, trailers: &[(&str, &str)], out: &mut Vec<u8>) {
        if self.mode.signed() {
            let sig = self.sign_next(EMPTY_SHA256);
            out.extend_from_slice(format!("0;chunk-signature={sig}\r\n").as_bytes());
        } else {
            out.extend_from_slice(b"0\r\n");
        }
        if self.mode.has_trailer() {
            let owned: Vec<(String, String)> = trailers
                .iter()
                .map(|(n, v)| (n.to_ascii_lowercase(), v.trim().to_owned()))
                .collect();
            for (n, v) in &owned {
                out.extend_from_slice(format!("{n}:{v}\r\n").as_bytes());
            }
            if self.mode == ChunkedMode::SignedPayloadTrailer {
                let sts =
                    trailer_string_to_sign(&self.amz_date, &self.scope, &self.prev_sig, &owned);
                let sig = self
                    .key
                    .as_ref()
                    .map(|k| k.sign_hex(sts.as_bytes()))
                    .unwrap_or_default();
                out.extend_from_slice(format!("{TRAILER_SIGNATURE}:{sig}\r\n").as_bytes());
            }
        }
        out.extend_from_slice(b"\r\n");
    }
}
