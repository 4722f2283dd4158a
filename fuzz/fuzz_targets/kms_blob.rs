//! KMS ciphertext blobs (`coffer_crypto::kms_blob`) and root-key wraps (`RootKey::unwrap`).
//!
//! Input byte 0, even: the rest is a blob, peeked and opened with a fixed key material under a
//! few encryption contexts, and unwrapped with a fixed root key. Odd: seal round trip — a
//! header, context and plaintext from the input are sealed; the blob must open to the
//! plaintext, and fail to open after any one-byte change, any truncation, or under another
//! context (likewise for `RootKey::wrap`/`unwrap` with another AAD).
#![no_main]

mod common;

use coffer_crypto::RootKey;
use coffer_crypto::kms_blob::{self, BlobHeader, OVERHEAD};
use common::Reader;
use libfuzzer_sys::fuzz_target;

const MATERIAL: [u8; 32] = [0x42; 32];

fuzz_target!(|data: &[u8]| {
    let root = RootKey::from_bytes(&[7u8; 32]).expect("root key");
    let mut r = Reader::new(data);
    let sel = r.u8();
    let ctx_a = kms_blob::canonical_context([("team", "blue")]);
    if sel & 1 == 0 {
        let blob = r.rest();
        match kms_blob::peek(blob) {
            Ok(_) => assert!(blob.len() >= OVERHEAD),
            Err(_) => {
                assert!(kms_blob::open(&MATERIAL, blob, &[]).is_err());
            }
        }
        for ctx in [&[][..], &ctx_a[..]] {
            if let Ok(pt) = kms_blob::open(&MATERIAL, blob, ctx) {
                assert_eq!(pt.len() + OVERHEAD, blob.len());
            }
        }
        for aad in [&b""[..], b"arn:aws:kms:us-east-1:123456789012:key/x"] {
            let _ = root.unwrap(aad, blob);
        }
        return;
    }

    // Seal round trip.
    let mut key_id = [0u8; 16];
    let id = r.bytes(16);
    key_id[..id.len()].copy_from_slice(id);
    let header = BlobHeader {
        key_id,
        material_version: r.u32(),
    };
    let npairs = usize::from(r.u8() % 4);
    let mut pairs = Vec::new();
    for _ in 0..npairs {
        let k = String::from_utf8_lossy(r.lv()).into_owned();
        let v = String::from_utf8_lossy(r.lv()).into_owned();
        pairs.push((k, v));
    }
    let ctx = kms_blob::canonical_context(pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    let flip_at = usize::from(r.u16());
    let flip = r.u8().max(1);
    let cut = usize::from(r.u16());
    let plaintext = r.rest();

    let blob = kms_blob::seal(&MATERIAL, &header, &ctx, plaintext).expect("seal");
    assert_eq!(blob.len(), plaintext.len() + OVERHEAD);
    assert_eq!(kms_blob::peek(&blob).expect("peek"), header);
    let opened = kms_blob::open(&MATERIAL, &blob, &ctx).expect("open sealed blob");
    assert_eq!(&opened[..], plaintext);

    let mut bad = blob.clone();
    let i = flip_at % bad.len();
    bad[i] ^= flip;
    assert!(
        kms_blob::open(&MATERIAL, &bad, &ctx).is_err(),
        "flipped byte {i} accepted"
    );
    let n = cut % blob.len();
    assert!(
        kms_blob::open(&MATERIAL, &blob[..n], &ctx).is_err(),
        "truncation to {n} accepted"
    );
    let mut longer = blob.clone();
    longer.push(flip);
    assert!(
        kms_blob::open(&MATERIAL, &longer, &ctx).is_err(),
        "extension accepted"
    );
    if ctx != ctx_a {
        assert!(
            kms_blob::open(&MATERIAL, &blob, &ctx_a).is_err(),
            "other context accepted"
        );
    }
    let mut other = MATERIAL;
    other[i % 32] ^= flip;
    assert!(
        kms_blob::open(&other, &blob, &ctx).is_err(),
        "other material accepted"
    );

    // Root-key wrap: the AAD plays the context's role.
    let w = root.wrap(&ctx, plaintext).expect("wrap");
    assert_eq!(&root.unwrap(&ctx, &w).expect("unwrap")[..], plaintext);
    let mut bad = w.clone();
    let i = flip_at % bad.len();
    bad[i] ^= flip;
    assert!(
        root.unwrap(&ctx, &bad).is_err(),
        "flipped wrap byte {i} accepted"
    );
    assert!(
        root.unwrap(&ctx, &w[..cut % w.len()]).is_err(),
        "truncated wrap accepted"
    );
    if ctx != ctx_a {
        assert!(
            root.unwrap(&ctx_a, &w).is_err(),
            "wrap under other AAD accepted"
        );
    }
});
