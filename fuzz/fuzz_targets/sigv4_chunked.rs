//! The `aws-chunked` decoder, fed arbitrary bytes in arbitrary splits.
//!
//! Input byte 0 selects the scenario:
//! * `& 3` in 0..=2: raw body in mode SignedPayload / SignedPayloadTrailer /
//!   UnsignedPayloadTrailer, decoded with the fixed test key and seed signature (bit 2: no key;
//!   bit 3: with `x-amz-decoded-content-length` from bytes 2..6); byte 1 picks the split;
//! * `& 3 == 3`: encoder round trip — chunks and trailers described by the input are encoded by
//!   `ChunkedEncoder`, optionally corrupted (one byte xor), split and decoded.
//!
//! Checked: never panics; decoded output never exceeds the bytes fed and matches
//! `decoded_len()`; any error is final; an uncorrupted encoder body decodes to exactly the
//! data and trailers encoded, whatever the split.
#![no_main]

mod common;

use coffer_sigv4::{ChunkedDecoder, ChunkedEncoder, ChunkedMode, Secret, SigningKey};
use common::{Reader, splits};
use libfuzzer_sys::fuzz_target;

// The S3 documentation's streaming example (crates/coffer-sigv4/src/tests.rs).
const SECRET: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
const SEED: &str = "4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9";
const DATE: &str = "20130524T000000Z";
const SCOPE: &str = "20130524/us-east-1/s3/aws4_request";

fn key() -> SigningKey {
    SigningKey::derive(
        &Secret::new(SECRET.to_owned()),
        "20130524",
        "us-east-1",
        "s3",
    )
}

const MODES: [ChunkedMode; 3] = [
    ChunkedMode::SignedPayload,
    ChunkedMode::SignedPayloadTrailer,
    ChunkedMode::UnsignedPayloadTrailer,
];

/// Feeds `body` split by `seed`; returns (output, result of finish).
fn decode(
    mut d: ChunkedDecoder,
    body: &[u8],
    seed: u8,
) -> (
    Vec<u8>,
    Result<Vec<(String, String)>, coffer_sigv4::AuthError>,
) {
    let mut out = Vec::new();
    let mut fed = 0usize;
    let mut failed = false;
    for piece in splits(body, seed) {
        fed += piece.len();
        let r = d.feed(piece, &mut out);
        assert!(out.len() <= fed, "decoded more bytes than fed");
        assert_eq!(d.decoded_len(), out.len() as u64);
        if failed {
            assert!(r.is_err(), "decoder accepted input after an error");
        }
        failed |= r.is_err();
    }
    if failed {
        assert!(!d.is_done());
        let r = d.finish();
        assert!(r.is_err(), "finish succeeded after a feed error");
        return (out, r);
    }
    let r = d.finish();
    (out, r)
}

fn token(r: &mut Reader, alphabet: &[u8], max: usize) -> String {
    let n = usize::from(r.u8()) % (max + 1);
    r.bytes(n)
        .iter()
        .map(|&b| char::from(alphabet[usize::from(b) % alphabet.len()]))
        .collect()
}

fuzz_target!(|data: &[u8]| {
    let mut r = Reader::new(data);
    let sel = r.u8();
    let split = r.u8();
    if sel & 3 != 3 {
        let mode = MODES[usize::from(sel & 3)];
        let k = (sel & 4 == 0).then(key);
        let mut d = ChunkedDecoder::new(mode, k, SEED, DATE, SCOPE);
        if sel & 8 != 0 {
            d = d.with_decoded_length(u64::from(r.u32()));
        }
        let body = r.rest();
        let _ = decode(d, body, split);
        return;
    }

    // Encoder round trip.
    let mode = MODES[usize::from(sel >> 2) % 3];
    let mut enc = match mode {
        ChunkedMode::UnsignedPayloadTrailer => ChunkedEncoder::unsigned_trailer(),
        m => ChunkedEncoder::signed(
            key(),
            SEED,
            DATE,
            SCOPE,
            m == ChunkedMode::SignedPayloadTrailer,
        ),
    };
    let nchunks = usize::from(r.u8() % 8);
    let mut plain = Vec::new();
    let mut body = Vec::new();
    for _ in 0..nchunks {
        let c = r.lv();
        plain.extend_from_slice(c);
        enc.encode_chunk(c, &mut body);
    }
    let ntrailers = usize::from(r.u8() % 5);
    let mut names = Vec::new();
    let mut values = Vec::new();
    for _ in 0..ntrailers {
        let n = token(&mut r, b"abcdefghijklmnopqrstuvwxyz0123456789-", 24);
        let v = token(&mut r, b"ABCDEFabcdef0123456789+/=: -", 40);
        if n.is_empty() || n == "x-amz-trailer-signature" {
            continue;
        }
        names.push(n);
        values.push(v);
    }
    let trailers: Vec<(&str, &str)> = names
        .iter()
        .map(String::as_str)
        .zip(values.iter().map(String::as_str))
        .collect();
    enc.finish(&trailers, &mut body);
    let flip_at = usize::from(r.u16());
    let flip = r.u8();
    let with_len = r.u8() & 1 == 1;

    let new = || {
        let d = ChunkedDecoder::new(mode, Some(key()), SEED, DATE, SCOPE);
        if with_len {
            d.with_decoded_length(plain.len() as u64)
        } else {
            d
        }
    };
    let (out, res) = decode(new(), &body, split);
    let trailers = match res {
        Ok(t) => t,
        Err(e) => panic!("encoder output rejected ({mode:?}): {e:?}"),
    };
    assert_eq!(out, plain, "decoded data differs");
    let expected: Vec<(String, String)> = if mode == ChunkedMode::SignedPayload {
        vec![]
    } else {
        names
            .iter()
            .cloned()
            .zip(values.iter().map(|v| v.trim().to_owned()))
            .collect()
    };
    assert_eq!(trailers, expected, "decoded trailers differ");

    // Corrupted copy: must not panic, output stays bounded.
    if flip != 0 && !body.is_empty() {
        let mut bad = body.clone();
        let i = flip_at % bad.len();
        bad[i] ^= flip;
        let _ = decode(new(), &bad, split.wrapping_add(1));
    }
});
