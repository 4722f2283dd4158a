//! The one place for cryptography in Coffer: the root keyring and the wrapping of secrets under it.
//!
//! Wrapped blob format (version 2, written since 2026-12):
//! `0x02 | salt (32) | nonce (12) | AES-256-GCM ciphertext | tag (16)`, where the AES key is
//! HKDF-SHA256(root key, salt, info = "coffer-root-wrap-v2"): every wrap has its own key, so the
//! number of wraps under one root key is not bounded by the safe number of random GCM nonces
//! (2^32 per key). Version 1 (`0x01 | nonce (12) | ciphertext | tag`, encrypted directly under the
//! root key) is still read. Both take caller-supplied AAD binding the blob to its purpose (e.g.
//! `"iam-secret:" + access key id`), so a blob moved to another row fails.

pub mod asym;
pub mod kms_blob;
pub mod segment;

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use aws_lc_rs::hkdf::{HKDF_SHA256, Salt};
use zeroize::{Zeroize, Zeroizing};

pub const ROOT_KEY_LEN: usize = 32;
/// Directly under the root key (read only).
const WRAP_V1: u8 = 1;
/// Under a key derived from the root key and a random salt per wrap.
const WRAP_V2: u8 = 2;
const WRAP_SALT_LEN: usize = 32;
const WRAP_INFO: &[u8] = b"coffer-root-wrap-v2";
const TAG_LEN: usize = 16;

#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum CryptoError {
    #[error("invalid key length: expected {ROOT_KEY_LEN} bytes")]
    KeyLength,
    #[error("ciphertext could not be authenticated")]
    Unauthentic,
    #[error("random generator failure")]
    Random,
}

/// Fills `buf` from the system's secure random generator.
pub fn random_fill(buf: &mut [u8]) -> Result<(), CryptoError> {
    aws_lc_rs::rand::fill(buf).map_err(|_| CryptoError::Random)
}

/// The 256-bit root key that wraps every secret Coffer stores. Never printed; zeroized on drop.
pub struct RootKey {
    bytes: Zeroizing<[u8; ROOT_KEY_LEN]>,
    aead: LessSafeKey,
}

impl std::fmt::Debug for RootKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RootKey(<redacted>)")
    }
}

impl RootKey {
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, CryptoError> {
        if bytes.len() != ROOT_KEY_LEN {
            return Err(CryptoError::KeyLength);
        }
        let mut arr = Zeroizing::new([0u8; ROOT_KEY_LEN]);
        arr.copy_from_slice(bytes);
        let unbound =
            UnboundKey::new(&AES_256_GCM, &arr[..]).map_err(|_| CryptoError::KeyLength)?;
        Ok(RootKey {
            bytes: arr,
            aead: LessSafeKey::new(unbound),
        })
    }

    pub fn generate() -> Result<Self, CryptoError> {
        let mut k = Zeroizing::new([0u8; ROOT_KEY_LEN]);
        random_fill(&mut k[..])?;
        Self::from_bytes(&k[..])
    }

    /// The raw key, for writing it to its file once at generation.
    pub fn expose_bytes(&self) -> &[u8] {
        &self.bytes[..]
    }

    /// A short non-secret fingerprint (first 8 bytes of SHA-256 over a domain-separated key), to
    /// detect that a data dir is opened with another root key.
    pub fn fingerprint(&self) -> String {
        let mut ctx = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
        ctx.update(b"coffer-root-key-fingerprint-v1");
        ctx.update(&self.bytes[..]);
        let d = ctx.finish();
        d.as_ref()[..8].iter().map(|b| format!("{b:02x}")).collect()
    }

    /// The AES-256-GCM key of one wrap: HKDF-SHA256(root key, salt).
    fn wrap_key(&self, salt: &[u8]) -> Result<LessSafeKey, CryptoError> {
        let prk = Salt::new(HKDF_SHA256, salt).extract(&self.bytes[..]);
        let okm = prk
            .expand(&[WRAP_INFO], &AES_256_GCM)
            .map_err(|_| CryptoError::KeyLength)?;
        Ok(LessSafeKey::new(UnboundKey::from(okm)))
    }

    /// Encrypts `plaintext` bound to `aad`, under a key of its own (format version 2).
    pub fn wrap(&self, aad: &[u8], plaintext: &[u8]) -> Result<Vec<u8>, CryptoError> {
        let mut salt = [0u8; WRAP_SALT_LEN];
        random_fill(&mut salt)?;
        let mut nonce = [0u8; NONCE_LEN];
        random_fill(&mut nonce)?;
        let key = self.wrap_key(&salt)?;
        let mut out = Vec::with_capacity(1 + WRAP_SALT_LEN + NONCE_LEN + plaintext.len() + TAG_LEN);
        out.push(WRAP_V2);
        out.extend_from_slice(&salt);
        out.extend_from_slice(&nonce);
        let mut buf = plaintext.to_vec();
        let res = key.seal_in_place_append_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(aad),
            &mut buf,
        );
        if res.is_err() {
            buf.zeroize();
            return Err(CryptoError::Unauthentic);
        }
        out.extend_from_slice(&buf);
        buf.zeroize();
        Ok(out)
    }

    /// Decrypts a blob made by [`RootKey::wrap`] (either format version) with the same `aad`.
    /// The plaintext is zeroized on drop.
    pub fn unwrap(&self, aad: &[u8], blob: &[u8]) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
        let (derived, rest) = match blob.first() {
            Some(&WRAP_V1) => (None, &blob[1..]),
            Some(&WRAP_V2) if blob.len() > 1 + WRAP_SALT_LEN => (
                Some(self.wrap_key(&blob[1..1 + WRAP_SALT_LEN])?),
                &blob[1 + WRAP_SALT_LEN..],
            ),
            _ => return Err(CryptoError::Unauthentic),
        };
        if rest.len() < NONCE_LEN + TAG_LEN {
            return Err(CryptoError::Unauthentic);
        }
        let mut nonce = [0u8; NONCE_LEN];
        nonce.copy_from_slice(&rest[..NONCE_LEN]);
        let mut buf = Zeroizing::new(rest[NONCE_LEN..].to_vec());
        let n = derived
            .as_ref()
            .unwrap_or(&self.aead)
            .open_in_place(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(aad),
                &mut buf,
            )
            .map_err(|_| CryptoError::Unauthentic)?
            .len();
        buf.truncate(n);
        Ok(buf)
    }

    /// A version-1 wrap (directly under the root key), as Coffer wrote before version 2: only
    /// for tests that old wraps stay readable.
    #[cfg(test)]
    fn wrap_v1(&self, aad: &[u8], plaintext: &[u8]) -> Vec<u8> {
        let mut nonce = [0u8; NONCE_LEN];
        random_fill(&mut nonce).unwrap();
        let mut out = vec![WRAP_V1];
        out.extend_from_slice(&nonce);
        let mut buf = plaintext.to_vec();
        self.aead
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(aad),
                &mut buf,
            )
            .unwrap();
        out.extend_from_slice(&buf);
        out
    }
}

/// Constant-time equality of two byte strings.
pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    aws_lc_rs::constant_time::verify_slices_are_equal(a, b).is_ok()
}

/// Lowercase hex SHA-256.
pub fn sha256_hex(data: &[u8]) -> String {
    let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, data);
    d.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

/// HMAC with SHA-224/256/384/512 over `msg` with `key`.
pub fn hmac(bits: u16, key: &[u8], msg: &[u8]) -> Option<Vec<u8>> {
    use aws_lc_rs::hmac;
    let alg = match bits {
        224 => hmac::HMAC_SHA224,
        256 => hmac::HMAC_SHA256,
        384 => hmac::HMAC_SHA384,
        512 => hmac::HMAC_SHA512,
        _ => return None,
    };
    Some(hmac::sign(&hmac::Key::new(alg, key), msg).as_ref().to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrap_roundtrip_and_tamper() {
        let k = RootKey::generate().unwrap();
        let blob = k.wrap(b"ctx", b"secret value").unwrap();
        assert_eq!(&k.unwrap(b"ctx", &blob).unwrap()[..], b"secret value");
        // wrong aad
        assert_eq!(k.unwrap(b"other", &blob), Err(CryptoError::Unauthentic));
        // every bit flip fails
        for i in 0..blob.len() {
            for bit in 0..8 {
                let mut b = blob.clone();
                b[i] ^= 1 << bit;
                assert_eq!(
                    k.unwrap(b"ctx", &b).err(),
                    Some(CryptoError::Unauthentic),
                    "flip at {i}/{bit}"
                );
            }
        }
        // truncation fails
        for n in 0..blob.len() {
            assert_eq!(
                k.unwrap(b"ctx", &blob[..n]).err(),
                Some(CryptoError::Unauthentic)
            );
        }
        // another key fails
        let k2 = RootKey::generate().unwrap();
        assert_eq!(
            k2.unwrap(b"ctx", &blob).err(),
            Some(CryptoError::Unauthentic)
        );
    }

    #[test]
    fn every_wrap_has_its_own_key_and_old_wraps_stay_readable() {
        let k = RootKey::generate().unwrap();
        let a = k.wrap(b"ctx", b"secret").unwrap();
        let b = k.wrap(b"ctx", b"secret").unwrap();
        assert_eq!((a[0], b[0]), (WRAP_V2, WRAP_V2));
        assert_ne!(
            a[1..1 + WRAP_SALT_LEN],
            b[1..1 + WRAP_SALT_LEN],
            "salts differ"
        );
        assert_eq!(a.len(), 1 + WRAP_SALT_LEN + NONCE_LEN + 6 + TAG_LEN);
        // Not decryptable directly under the root key (the key is derived).
        let mut as_v1 = vec![WRAP_V1];
        as_v1.extend_from_slice(&a[1 + WRAP_SALT_LEN..]);
        assert_eq!(
            k.unwrap(b"ctx", &as_v1).err(),
            Some(CryptoError::Unauthentic)
        );
        // A version-1 wrap from before still opens, and only with its AAD.
        let old = k.wrap_v1(b"ctx", b"from before");
        assert_eq!(&k.unwrap(b"ctx", &old).unwrap()[..], b"from before");
        assert_eq!(
            k.unwrap(b"other", &old).err(),
            Some(CryptoError::Unauthentic)
        );
    }

    #[test]
    fn nonces_differ_and_debug_redacts() {
        let k = RootKey::from_bytes(&[7u8; 32]).unwrap();
        assert_ne!(k.wrap(b"", b"x").unwrap(), k.wrap(b"", b"x").unwrap());
        assert_eq!(format!("{k:?}"), "RootKey(<redacted>)");
        assert_eq!(
            RootKey::from_bytes(&[0u8; 31]).err(),
            Some(CryptoError::KeyLength)
        );
        assert_eq!(k.fingerprint().len(), 16);
    }

    #[test]
    fn constant_time_eq() {
        assert!(ct_eq(b"abc", b"abc"));
        assert!(!ct_eq(b"abc", b"abd"));
        assert!(!ct_eq(b"abc", b"ab"));
    }
}
