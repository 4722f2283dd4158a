//! Segmented object decryption (`coffer_crypto::segment`) over arbitrary ciphertext, and the
//! layout arithmetic used for range reads.
//!
//! Input byte 0 selects:
//! * 0 mod 3 — raw blob: decrypted in full (as a GET does) and segment by segment in arbitrary
//!   order/`last` flags, with a fixed data key and AAD;
//! * 1 mod 3 — round trip: a plaintext from the input is encrypted (segment size 16..=79, pushed
//!   in input-chosen pieces); it must decrypt to the plaintext, and fail after any one-byte
//!   change, truncation, extension, or under another AAD;
//! * 2 mod 3 — `Layout` arithmetic for an input segment size and plaintext length (up to 2^50
//!   bytes): offsets and lengths tile the blob, `from_ciphertext_len` inverts
//!   `ciphertext_len`, `segments_for` covers the requested range.
#![no_main]

mod common;

use coffer_crypto::CryptoError;
use coffer_crypto::segment::{Decryptor, Encryptor, HEADER_LEN, Layout, TAG_LEN};
use common::{Reader, splits};
use libfuzzer_sys::fuzz_target;

const KEY: [u8; 32] = [3u8; 32];
const AAD: &[u8] = b"bucket/key";

fn decrypt_all(key: &[u8], aad: &[u8], blob: &[u8]) -> Result<Vec<u8>, CryptoError> {
    let d = Decryptor::new(key, aad, blob)?;
    let l = Layout::from_ciphertext_len(d.segment_size(), blob.len() as u64)
        .ok_or(CryptoError::Unauthentic)?;
    let mut out = vec![];
    for i in 0..l.segments() {
        let off = l.segment_offset(i) as usize;
        let mut ct = blob[off..off + l.segment_ct_len(i)].to_vec();
        out.extend_from_slice(d.open_segment(i, i + 1 == l.segments(), &mut ct)?);
    }
    Ok(out)
}

fn check_layout(l: Layout, a: u64, b: u64) {
    let n = l.segments();
    assert!(n >= 1);
    let ct = l.ciphertext_len();
    assert_eq!(Layout::from_ciphertext_len(l.segment_size, ct), Some(l));
    // Tiling: segment i ends where i+1 starts; the last ends at the blob's end.
    for i in [0, n / 2, n.saturating_sub(2), n - 1] {
        let end = l.segment_offset(i) + l.segment_ct_len(i) as u64;
        if i + 1 < n {
            assert_eq!(end, l.segment_offset(i + 1));
            assert_eq!(l.segment_ct_len(i), l.segment_size + TAG_LEN);
        } else {
            assert_eq!(end, ct);
        }
    }
    if l.plaintext_len > 0 {
        let (first, last) = {
            let x = a % l.plaintext_len;
            let y = b % l.plaintext_len;
            (x.min(y), x.max(y))
        };
        let s = l.segment_size as u64;
        let range = l.segments_for(first, last);
        assert!(*range.start() * s <= first && first < (*range.start() + 1) * s);
        assert!(*range.end() * s <= last && last < (*range.end() + 1) * s);
        assert!(*range.end() < n);
    }
}

fuzz_target!(|data: &[u8]| {
    let mut r = Reader::new(data);
    match r.u8() % 3 {
        0 => {
            let order = r.u8();
            let blob = r.rest();
            let full = decrypt_all(&KEY, AAD, blob);
            assert!(full.is_err(), "garbage decrypted");
            if let Ok(d) = Decryptor::new(&KEY, AAD, blob) {
                let seg = d.segment_size();
                assert!((16..=16 << 20).contains(&seg));
                if let Some(l) = Layout::from_ciphertext_len(seg, blob.len() as u64) {
                    assert_eq!(l.ciphertext_len(), blob.len() as u64);
                }
                // Arbitrary pieces of the body as arbitrary segments.
                let body = &blob[HEADER_LEN.min(blob.len())..];
                for (i, piece) in splits(body, order).into_iter().enumerate().take(64) {
                    let mut ct = piece.to_vec();
                    let idx = (i as u64).wrapping_mul(u64::from(order)) % 70_000;
                    let _ = d.open_segment(idx, i % 2 == 0, &mut ct);
                }
                let _ = d.open_segment(u64::from(u32::MAX) + 1, true, &mut [0u8; 16]);
            }
        }
        1 => {
            let seg = 16 + usize::from(r.u8() % 64);
            let split = r.u8();
            let flip_at = usize::from(r.u16());
            let flip = r.u8().max(1);
            let cut = usize::from(r.u16());
            let plain = r.rest();
            let mut e = Encryptor::new(&KEY, AAD, seg).expect("encryptor");
            let mut blob = Vec::new();
            for piece in splits(plain, split) {
                e.push(piece, &mut blob).expect("push");
            }
            e.finish(&mut blob).expect("finish");
            let l = Layout {
                segment_size: seg,
                plaintext_len: plain.len() as u64,
            };
            assert_eq!(blob.len() as u64, l.ciphertext_len());
            assert_eq!(decrypt_all(&KEY, AAD, &blob).expect("decrypt"), plain);

            let mut bad = blob.clone();
            let i = flip_at % bad.len();
            bad[i] ^= flip;
            // (This target found that version-1 blobs did not authenticate the segment size in
            // their header; version 2 binds it into the key derivation.)
            assert!(
                decrypt_all(&KEY, AAD, &bad).is_err(),
                "flip at {i} accepted"
            );
            let n = cut % blob.len();
            assert!(
                decrypt_all(&KEY, AAD, &blob[..n]).is_err(),
                "truncation to {n} accepted"
            );
            let mut ext = blob.clone();
            ext.extend(std::iter::repeat_n(flip, 1 + cut % (seg + TAG_LEN)));
            assert!(decrypt_all(&KEY, AAD, &ext).is_err(), "extension accepted");
            assert!(
                decrypt_all(&KEY, b"bucket/other", &blob).is_err(),
                "other AAD accepted"
            );
        }
        _ => {
            let seg = 16 + (r.u32() as usize) % ((16 << 20) - 15);
            let len = r.u64() % (1 << 50);
            let l = Layout {
                segment_size: seg,
                plaintext_len: len,
            };
            check_layout(l, r.u64(), r.u64());
            // And a length that is not a valid blob length must be refused or be consistent.
            let ct = r.u64() % (1 << 51);
            if let Some(l2) = Layout::from_ciphertext_len(seg, ct) {
                assert_eq!(l2.ciphertext_len(), ct);
            }
        }
    }
});
