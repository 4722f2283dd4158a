//! The KMS ciphertext blob (symmetric keys).
//!
//! ```text
//! version (1) = 0x01 | key id (16, UUID bytes) | material version (4, BE) | salt (16) | nonce (12) | ciphertext | tag (16)
//! ```
//! The message key is HKDF-SHA256(key material, salt, info = "coffer-kms-blob-v1"), so every blob
//! has its own AES-256-GCM key and no (key, nonce) pair repeats even after billions of blobs. The
//! AAD is the header (version, key id, material version) followed by the canonical encryption
//! context: pairs sorted by key, each key and value prefixed with its length (u32 BE). Any change
//! to the blob or the context fails authentication.

use crate::{CryptoError, random_fill};
use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use aws_lc_rs::hkdf::{HKDF_SHA256, Salt};
use zeroize::Zeroizing;

const VERSION: u8 = 1;
const SALT_LEN: usize = 16;
const HEADER_LEN: usize = 1 + 16 + 4;
const TAG_LEN: usize = 16;
/// Bytes a blob adds to its plaintext.
pub const OVERHEAD: usize = HEADER_LEN + SALT_LEN + NONCE_LEN + TAG_LEN;
const INFO: &[u8] = b"coffer-kms-blob-v1";

/// What a blob says about itself before it is opened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobHeader {
    pub key_id: [u8; 16],
    pub material_version: u32,
}

/// Canonical AAD bytes of an encryption context.
pub fn canonical_context<'a>(ctx: impl IntoIterator<Item = (&'a str, &'a str)>) -> Vec<u8> {
    let mut pairs: Vec<(&str, &str)> = ctx.into_iter().collect();
    pairs.sort();
    let mut out = Vec::new();
    for (k, v) in pairs {
        out.extend_from_slice(&(k.len() as u32).to_be_bytes());
        out.extend_from_slice(k.as_bytes());
        out.extend_from_slice(&(v.len() as u32).to_be_bytes());
        out.extend_from_slice(v.as_bytes());
    }
    out
}

fn message_key(material: &[u8], salt: &[u8]) -> Result<LessSafeKey, CryptoError> {
    let prk = Salt::new(HKDF_SHA256, salt).extract(material);
    let okm = prk
        .expand(&[INFO], &AES_256_GCM)
        .map_err(|_| CryptoError::KeyLength)?;
    Ok(LessSafeKey::new(UnboundKey::from(okm)))
}

fn header_bytes(h: &BlobHeader) -> [u8; HEADER_LEN] {
    let mut b = [0u8; HEADER_LEN];
    b[0] = VERSION;
    b[1..17].copy_from_slice(&h.key_id);
    b[17..21].copy_from_slice(&h.material_version.to_be_bytes());
    b
}

/// Reads the header of a blob without opening it.
pub fn peek(blob: &[u8]) -> Result<BlobHeader, CryptoError> {
    if blob.len() < OVERHEAD || blob[0] != VERSION {
        return Err(CryptoError::Unauthentic);
    }
    let mut key_id = [0u8; 16];
    key_id.copy_from_slice(&blob[1..17]);
    let mut mv = [0u8; 4];
    mv.copy_from_slice(&blob[17..21]);
    Ok(BlobHeader {
        key_id,
        material_version: u32::from_be_bytes(mv),
    })
}

/// Encrypts `plaintext` under `material` (32 bytes), bound to `header` and `context` (canonical bytes).
pub fn seal(
    material: &[u8],
    header: &BlobHeader,
    context: &[u8],
    plaintext: &[u8],
) -> Result<Vec<u8>, CryptoError> {
    let mut salt = [0u8; SALT_LEN];
    let mut nonce = [0u8; NONCE_LEN];
    random_fill(&mut salt)?;
    random_fill(&mut nonce)?;
    let key = message_key(material, &salt)?;
    let hb = header_bytes(header);
    let mut aad = Vec::with_capacity(HEADER_LEN + context.len());
    aad.extend_from_slice(&hb);
    aad.extend_from_slice(context);
    let mut out = Vec::with_capacity(OVERHEAD + plaintext.len());
    out.extend_from_slice(&hb);
    out.extend_from_slice(&salt);
    out.extend_from_slice(&nonce);
    let start = out.len();
    out.extend_from_slice(plaintext);
    let tag = key
        .seal_in_place_separate_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(&aad[..]),
            &mut out[start..],
        )
        .map_err(|_| CryptoError::Unauthentic)?;
    out.extend_from_slice(tag.as_ref());
    Ok(out)
}

/// Opens a blob made by [`seal`] with the same material and context.
pub fn open(
    material: &[u8],
    blob: &[u8],
    context: &[u8],
) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
    let header = peek(blob)?;
    let salt = &blob[HEADER_LEN..HEADER_LEN + SALT_LEN];
    let mut nonce = [0u8; NONCE_LEN];
    nonce.copy_from_slice(&blob[HEADER_LEN + SALT_LEN..HEADER_LEN + SALT_LEN + NONCE_LEN]);
    let key = message_key(material, salt)?;
    let mut aad = Vec::with_capacity(HEADER_LEN + context.len());
    aad.extend_from_slice(&header_bytes(&header));
    aad.extend_from_slice(context);
    let mut buf = Zeroizing::new(blob[HEADER_LEN + SALT_LEN + NONCE_LEN..].to_vec());
    let n = key
        .open_in_place(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(&aad[..]),
            &mut buf,
        )
        .map_err(|_| CryptoError::Unauthentic)?
        .len();
    buf.truncate(n);
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hdr() -> BlobHeader {
        BlobHeader {
            key_id: [7u8; 16],
            material_version: 3,
        }
    }

    #[test]
    fn roundtrip_tamper_truncate_context() {
        let m = [9u8; 32];
        let ctx = canonical_context([("b", "2"), ("a", "1")]);
        assert_eq!(ctx, canonical_context([("a", "1"), ("b", "2")]));
        let blob = seal(&m, &hdr(), &ctx, b"hello kms").unwrap();
        assert_eq!(blob.len(), OVERHEAD + 9);
        assert_eq!(peek(&blob).unwrap(), hdr());
        assert_eq!(&open(&m, &blob, &ctx).unwrap()[..], b"hello kms");
        for i in 0..blob.len() {
            let mut b = blob.clone();
            b[i] ^= 0x01;
            assert_eq!(
                open(&m, &b, &ctx).err(),
                Some(CryptoError::Unauthentic),
                "flip at {i}"
            );
        }
        for n in 0..blob.len() {
            assert_eq!(
                open(&m, &blob[..n], &ctx).err(),
                Some(CryptoError::Unauthentic)
            );
        }
        assert_eq!(
            open(&m, &blob, &canonical_context([("a", "1")])).err(),
            Some(CryptoError::Unauthentic)
        );
        assert_eq!(
            open(&m, &blob, &canonical_context([("a", "1"), ("b", "3")])).err(),
            Some(CryptoError::Unauthentic)
        );
        assert_eq!(open(&m, &blob, &[]).err(), Some(CryptoError::Unauthentic));
        assert_eq!(
            open(&[8u8; 32], &blob, &ctx).err(),
            Some(CryptoError::Unauthentic)
        );
        // length prefixes keep ("ab","c") and ("a","bc") apart
        assert_ne!(
            canonical_context([("ab", "c")]),
            canonical_context([("a", "bc")])
        );
    }

    #[test]
    fn empty_plaintext_and_unique_blobs() {
        let m = [1u8; 32];
        let a = seal(&m, &hdr(), &[], b"").unwrap();
        let b = seal(&m, &hdr(), &[], b"").unwrap();
        assert_ne!(a, b);
        assert!(open(&m, &a, &[]).unwrap().is_empty());
    }
}
