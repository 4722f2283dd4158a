//! Segmented object encryption: a streaming AEAD in the manner of Tink's AES-GCM-HKDF
//! streaming scheme, so that object bodies are encrypted as they stream in and a range read
//! decrypts only the segments it covers.
//!
//! ```text
//! header  = version (1) = 0x02 | segment size (4, BE) | salt (32) | nonce prefix (7)
//! segment = AES-256-GCM(segment key, nonce = prefix | index (4, BE) | last (1), plaintext) | tag (16)
//! ```
//! The segment key is HKDF-SHA256(data key, salt, info = "coffer-object-v2" | segment size (4,
//! BE) | blob AAD), so the segment size is authenticated too (a changed size derives another key),
//! and
//! every blob (an object, or one upload of one part) has its own key, and a blob moved under
//! another name (a different AAD) does not open. Version 1 blobs (info = "coffer-object-v1" |
//! blob AAD: the segment size was not bound, so a one-segment v1 blob opened under a changed size
//! field) are still read; callers check their segment size against the object's record. Every segment holds `segment size` plaintext
//! bytes except the last, which holds 0 to `segment size` and is marked in its nonce: reordering,
//! dropping, truncating or extending segments, or flipping any bit, fails authentication.

use crate::{CryptoError, random_fill};
use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
use aws_lc_rs::hkdf::{HKDF_SHA256, Salt};

/// The version written.
pub const VERSION: u8 = 2;
/// The first version, still read.
const VERSION_1: u8 = 1;
pub const HEADER_LEN: usize = 1 + 4 + 32 + 7;
pub const TAG_LEN: usize = 16;
/// The default plaintext bytes per segment.
pub const DEFAULT_SEGMENT: usize = 64 * 1024;
const INFO_V1: &[u8] = b"coffer-object-v1";
const INFO_V2: &[u8] = b"coffer-object-v2";

fn segment_key(data_key: &[u8], header: &Header, aad: &[u8]) -> Result<LessSafeKey, CryptoError> {
    if data_key.len() != 32 {
        return Err(CryptoError::KeyLength);
    }
    let prk = Salt::new(HKDF_SHA256, &header.salt).extract(data_key);
    let size = (header.segment_size as u32).to_be_bytes();
    let v1 = [INFO_V1, aad];
    let v2 = [INFO_V2, &size[..], aad];
    let info: &[&[u8]] = if header.version == VERSION_1 {
        &v1
    } else {
        &v2
    };
    let okm = prk
        .expand(info, &AES_256_GCM)
        .map_err(|_| CryptoError::KeyLength)?;
    Ok(LessSafeKey::new(UnboundKey::from(okm)))
}

fn nonce(prefix: &[u8; 7], index: u32, last: bool) -> Nonce {
    let mut n = [0u8; 12];
    n[..7].copy_from_slice(prefix);
    n[7..11].copy_from_slice(&index.to_be_bytes());
    n[11] = u8::from(last);
    Nonce::assume_unique_for_key(n)
}

/// The parsed header of a blob.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    version: u8,
    pub segment_size: usize,
    salt: [u8; 32],
    prefix: [u8; 7],
}

impl Header {
    pub fn parse(bytes: &[u8]) -> Result<Header, CryptoError> {
        if bytes.len() < HEADER_LEN || !(bytes[0] == VERSION || bytes[0] == VERSION_1) {
            return Err(CryptoError::Unauthentic);
        }
        let size = u32::from_be_bytes([bytes[1], bytes[2], bytes[3], bytes[4]]) as usize;
        if !(16..=(16 << 20)).contains(&size) {
            return Err(CryptoError::Unauthentic);
        }
        let mut salt = [0u8; 32];
        salt.copy_from_slice(&bytes[5..37]);
        let mut prefix = [0u8; 7];
        prefix.copy_from_slice(&bytes[37..44]);
        Ok(Header {
            version: bytes[0],
            segment_size: size,
            salt,
            prefix,
        })
    }

    fn to_bytes(&self) -> [u8; HEADER_LEN] {
        let mut b = [0u8; HEADER_LEN];
        b[0] = self.version;
        b[1..5].copy_from_slice(&(self.segment_size as u32).to_be_bytes());
        b[5..37].copy_from_slice(&self.salt);
        b[37..44].copy_from_slice(&self.prefix);
        b
    }
}

/// Sizes of a blob in terms of its plaintext length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layout {
    pub segment_size: usize,
    pub plaintext_len: u64,
}

impl Layout {
    /// Number of segments (at least one: an empty object has one empty last segment).
    pub fn segments(&self) -> u64 {
        let s = self.segment_size as u64;
        self.plaintext_len.div_ceil(s).max(1)
    }
    pub fn ciphertext_len(&self) -> u64 {
        HEADER_LEN as u64 + self.plaintext_len + self.segments() * TAG_LEN as u64
    }
    /// Byte offset of segment `i` in the blob.
    pub fn segment_offset(&self, i: u64) -> u64 {
        HEADER_LEN as u64 + i * (self.segment_size + TAG_LEN) as u64
    }
    /// Ciphertext length of segment `i` (tag included).
    pub fn segment_ct_len(&self, i: u64) -> usize {
        let s = self.segment_size as u64;
        let start = i * s;
        (self.plaintext_len.saturating_sub(start).min(s)) as usize + TAG_LEN
    }
    /// The segments covering plaintext bytes `first..=last`.
    pub fn segments_for(&self, first: u64, last: u64) -> std::ops::RangeInclusive<u64> {
        let s = self.segment_size as u64;
        (first / s)..=(last / s).min(self.segments() - 1)
    }
    /// The plaintext length of a blob of `ciphertext_len` bytes, if that length is possible.
    pub fn from_ciphertext_len(segment_size: usize, ciphertext_len: u64) -> Option<Layout> {
        let body = ciphertext_len.checked_sub(HEADER_LEN as u64)?;
        let full = (segment_size + TAG_LEN) as u64;
        let n = body.div_ceil(full);
        let n = n.max(1);
        let plaintext_len = body.checked_sub(n * TAG_LEN as u64)?;
        let l = Layout {
            segment_size,
            plaintext_len,
        };
        (l.ciphertext_len() == ciphertext_len && l.segments() == n).then_some(l)
    }
}

/// Encrypts a stream: feed plaintext with [`Encryptor::push`], end with [`Encryptor::finish`].
/// Memory: one segment.
pub struct Encryptor {
    key: LessSafeKey,
    header: Header,
    buf: Vec<u8>,
    index: u32,
    started: bool,
}

impl Encryptor {
    /// A new blob under `data_key` (32 bytes), bound to `aad` (e.g. the object's identity).
    pub fn new(data_key: &[u8], aad: &[u8], segment_size: usize) -> Result<Encryptor, CryptoError> {
        let mut salt = [0u8; 32];
        let mut prefix = [0u8; 7];
        random_fill(&mut salt)?;
        random_fill(&mut prefix)?;
        let header = Header {
            version: VERSION,
            segment_size,
            salt,
            prefix,
        };
        Ok(Encryptor {
            key: segment_key(data_key, &header, aad)?,
            header,
            buf: Vec::with_capacity(segment_size),
            index: 0,
            started: false,
        })
    }

    fn emit(&mut self, last: bool, out: &mut Vec<u8>) -> Result<(), CryptoError> {
        if !self.started {
            out.extend_from_slice(&self.header.to_bytes());
            self.started = true;
        }
        let start = out.len();
        out.extend_from_slice(&self.buf);
        let tag = self
            .key
            .seal_in_place_separate_tag(
                nonce(&self.header.prefix, self.index, last),
                Aad::empty(),
                &mut out[start..],
            )
            .map_err(|_| CryptoError::Unauthentic)?;
        out.extend_from_slice(tag.as_ref());
        self.buf.clear();
        self.index = self.index.checked_add(1).ok_or(CryptoError::Unauthentic)?;
        Ok(())
    }

    /// Adds plaintext; appends finished ciphertext to `out`. A full segment is held back until
    /// more data arrives, since the last segment is sealed differently.
    pub fn push(&mut self, mut data: &[u8], out: &mut Vec<u8>) -> Result<(), CryptoError> {
        let s = self.header.segment_size;
        while !data.is_empty() {
            if self.buf.len() == s {
                self.emit(false, out)?;
            }
            let take = (s - self.buf.len()).min(data.len());
            self.buf.extend_from_slice(&data[..take]);
            data = &data[take..];
        }
        Ok(())
    }

    /// Seals the last segment.
    pub fn finish(mut self, out: &mut Vec<u8>) -> Result<(), CryptoError> {
        self.emit(true, out)
    }
}

/// Opens segments of a blob (any of them, in any order: range reads).
pub struct Decryptor {
    key: LessSafeKey,
    header: Header,
}

impl Decryptor {
    pub fn new(data_key: &[u8], aad: &[u8], header_bytes: &[u8]) -> Result<Decryptor, CryptoError> {
        let header = Header::parse(header_bytes)?;
        Ok(Decryptor {
            key: segment_key(data_key, &header, aad)?,
            header,
        })
    }

    pub fn segment_size(&self) -> usize {
        self.header.segment_size
    }

    /// Decrypts segment `index` (its ciphertext with tag) in place; returns the plaintext.
    pub fn open_segment<'a>(
        &self,
        index: u64,
        last: bool,
        ct: &'a mut [u8],
    ) -> Result<&'a mut [u8], CryptoError> {
        let i = u32::try_from(index).map_err(|_| CryptoError::Unauthentic)?;
        let max = self.header.segment_size + TAG_LEN;
        if ct.len() < TAG_LEN || ct.len() > max || (!last && ct.len() != max) {
            return Err(CryptoError::Unauthentic);
        }
        self.key
            .open_in_place(nonce(&self.header.prefix, i, last), Aad::empty(), ct)
            .map_err(|_| CryptoError::Unauthentic)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encrypt(key: &[u8], aad: &[u8], seg: usize, data: &[u8], chunk: usize) -> Vec<u8> {
        let mut e = Encryptor::new(key, aad, seg).unwrap();
        let mut out = vec![];
        for c in data.chunks(chunk.max(1)) {
            e.push(c, &mut out).unwrap();
        }
        e.finish(&mut out).unwrap();
        out
    }

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

    #[test]
    fn roundtrip_all_sizes_and_chunkings() {
        let key = [3u8; 32];
        for len in [0usize, 1, 15, 16, 17, 31, 32, 33, 100] {
            let data: Vec<u8> = (0..len).map(|i| i as u8).collect();
            for chunk in [1, 7, 16, 1000] {
                let blob = encrypt(&key, b"obj", 16, &data, chunk);
                let l = Layout {
                    segment_size: 16,
                    plaintext_len: len as u64,
                };
                assert_eq!(blob.len() as u64, l.ciphertext_len(), "len {len}");
                assert_eq!(Layout::from_ciphertext_len(16, blob.len() as u64), Some(l));
                assert_eq!(decrypt_all(&key, b"obj", &blob).unwrap(), data);
            }
        }
    }

    #[test]
    fn the_segment_size_is_authenticated_and_version_1_blobs_still_open() {
        let key = [6u8; 32];
        let data = vec![1u8; 7];
        // One segment: any size field that still holds the plaintext used to open it.
        let blob = encrypt(&key, b"k", 16, &data, 7);
        assert_eq!(blob[0], VERSION);
        for size in [8u32, 17, 272, 64 * 1024, 16 << 20] {
            let mut b = blob.clone();
            b[1..5].copy_from_slice(&size.to_be_bytes());
            assert_eq!(
                decrypt_all(&key, b"k", &b).err(),
                Some(CryptoError::Unauthentic),
                "size {size}"
            );
        }
        // A version-1 blob (written before the size was bound) still opens.
        let mut e = Encryptor::new(&key, b"k", 16).unwrap();
        e.header.version = VERSION_1;
        e.key = segment_key(&key, &e.header, b"k").unwrap();
        let mut v1 = vec![];
        e.push(&data, &mut v1).unwrap();
        e.finish(&mut v1).unwrap();
        assert_eq!(v1[0], VERSION_1);
        assert_eq!(decrypt_all(&key, b"k", &v1).unwrap(), data);
        // And a version-2 header is not read as version 1 (nor the reverse).
        let mut as_v1 = blob.clone();
        as_v1[0] = VERSION_1;
        assert!(decrypt_all(&key, b"k", &as_v1).is_err());
    }

    #[test]
    fn tamper_reorder_truncate_extend_and_rebind_fail() {
        let key = [5u8; 32];
        let data = vec![9u8; 50];
        let blob = encrypt(&key, b"bucket/key", 16, &data, 50);
        for i in 0..blob.len() {
            let mut b = blob.clone();
            b[i] ^= 0x80;
            assert_eq!(
                decrypt_all(&key, b"bucket/key", &b).err(),
                Some(CryptoError::Unauthentic),
                "flip at {i}"
            );
        }
        // swap two full segments
        let l = Layout {
            segment_size: 16,
            plaintext_len: 50,
        };
        let (a, b) = (l.segment_offset(0) as usize, l.segment_offset(1) as usize);
        let mut sw = blob.clone();
        let s0 = blob[a..a + 32].to_vec();
        let s1 = blob[b..b + 32].to_vec();
        sw[a..a + 32].copy_from_slice(&s1);
        sw[b..b + 32].copy_from_slice(&s0);
        assert_eq!(
            decrypt_all(&key, b"bucket/key", &sw).err(),
            Some(CryptoError::Unauthentic)
        );
        // drop the last segment: the new last one was not sealed as last
        let cut = l.segment_offset(3) as usize;
        assert_eq!(
            decrypt_all(&key, b"bucket/key", &blob[..cut]).err(),
            Some(CryptoError::Unauthentic)
        );
        // truncation anywhere
        for n in [0, 10, HEADER_LEN, HEADER_LEN + 5, blob.len() - 1] {
            assert_eq!(
                decrypt_all(&key, b"bucket/key", &blob[..n]).err(),
                Some(CryptoError::Unauthentic)
            );
        }
        // extension
        let mut ext = blob.clone();
        ext.extend_from_slice(&[0u8; 20]);
        assert_eq!(
            decrypt_all(&key, b"bucket/key", &ext).err(),
            Some(CryptoError::Unauthentic)
        );
        // other object, other key
        assert_eq!(
            decrypt_all(&key, b"bucket/other", &blob).err(),
            Some(CryptoError::Unauthentic)
        );
        assert_eq!(
            decrypt_all(&[6u8; 32], b"bucket/key", &blob).err(),
            Some(CryptoError::Unauthentic)
        );
    }

    #[test]
    fn range_reads_touch_only_their_segments() {
        let key = [1u8; 32];
        let data: Vec<u8> = (0..200u32).map(|i| (i * 7) as u8).collect();
        let blob = encrypt(&key, b"x", 16, &data, 33);
        let d = Decryptor::new(&key, b"x", &blob).unwrap();
        let l = Layout::from_ciphertext_len(16, blob.len() as u64).unwrap();
        for (first, last) in [(0u64, 0u64), (15, 16), (17, 40), (190, 199), (0, 199)] {
            let mut got = vec![];
            for i in l.segments_for(first, last) {
                let off = l.segment_offset(i) as usize;
                let mut ct = blob[off..off + l.segment_ct_len(i)].to_vec();
                let pt = d.open_segment(i, i + 1 == l.segments(), &mut ct).unwrap();
                let seg_start = i * 16;
                for (j, b) in pt.iter().enumerate() {
                    let pos = seg_start + j as u64;
                    if pos >= first && pos <= last {
                        got.push(*b);
                    }
                }
            }
            assert_eq!(got, data[first as usize..=last as usize]);
        }
        assert_eq!(Layout::from_ciphertext_len(16, 5), None);
    }
}
