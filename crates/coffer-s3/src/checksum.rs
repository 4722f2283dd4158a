//! Whole-object checksums of multipart uploads, as S3 computes them.
//!
//! * `COMPOSITE` (CRC32, CRC32C, SHA1, SHA256): the algorithm applied to the concatenated raw
//!   checksums of the parts, base64, then `-<part count>`.
//! * `FULL_OBJECT` (CRC64NVME always; CRC32 and CRC32C on request): the CRC of the whole object,
//!   obtained by combining the parts' CRCs (no second pass over the data).

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use s3s::crypto::Checksum as _;
use s3s::{S3Result, s3_error};

pub(crate) const COMPOSITE: &str = "COMPOSITE";
pub(crate) const FULL_OBJECT: &str = "FULL_OBJECT";

/// Length of an algorithm's raw checksum.
pub(crate) fn raw_len(alg: &str) -> Option<usize> {
    match alg {
        "CRC32" | "CRC32C" => Some(4),
        "CRC64NVME" => Some(8),
        "SHA1" => Some(20),
        "SHA256" => Some(32),
        _ => None,
    }
}

/// Decodes a base64 checksum of `alg`, `None` unless it has the algorithm's length.
pub(crate) fn decode(alg: &str, b64: &str) -> Option<Vec<u8>> {
    B64.decode(b64)
        .ok()
        .filter(|raw| Some(raw.len()) == raw_len(alg))
}

/// The algorithm and checksum type of a new multipart upload (CreateMultipartUpload's
/// `x-amz-checksum-algorithm` and `x-amz-checksum-type`), validated as S3 does.
pub(crate) fn upload_mode(
    algorithm: Option<&str>,
    checksum_type: Option<&str>,
) -> S3Result<Option<(String, String)>> {
    let Some(alg) = algorithm.map(str::to_ascii_uppercase) else {
        if checksum_type.is_some() {
            return Err(s3_error!(
                InvalidRequest,
                "The x-amz-checksum-type header can only be used with the x-amz-checksum-algorithm header."
            ));
        }
        return Ok(None);
    };
    if raw_len(&alg).is_none() {
        return Err(s3_error!(
            InvalidRequest,
            "Checksum algorithm provided is unsupported. Please try again with any of the valid types: [CRC32, CRC32C, SHA1, SHA256]"
        ));
    }
    let ty = match checksum_type {
        None if alg == "CRC64NVME" => FULL_OBJECT,
        None => COMPOSITE,
        Some(t) if t == COMPOSITE => COMPOSITE,
        Some(t) if t == FULL_OBJECT => FULL_OBJECT,
        Some(_) => {
            return Err(s3_error!(
                InvalidRequest,
                "Value for x-amz-checksum-type header is invalid."
            ));
        }
    };
    let allowed = match ty {
        FULL_OBJECT => matches!(alg.as_str(), "CRC32" | "CRC32C" | "CRC64NVME"),
        _ => alg != "CRC64NVME",
    };
    if !allowed {
        return Err(s3_error!(
            InvalidRequest,
            "The {ty} checksum type cannot be used with the {} checksum algorithm.",
            alg.to_ascii_lowercase()
        ));
    }
    Ok(Some((alg, ty.to_string())))
}

/// The COMPOSITE checksum of parts given by their raw checksums, in part order: `base64-N`.
pub(crate) fn composite(alg: &str, parts: &[Vec<u8>]) -> Option<String> {
    let cat: Vec<u8> = parts.concat();
    let digest: Vec<u8> = match alg {
        "CRC32" => s3s::crypto::Crc32::checksum(&cat).to_vec(),
        "CRC32C" => s3s::crypto::Crc32c::checksum(&cat).to_vec(),
        "SHA1" => s3s::crypto::Sha1::checksum(&cat).as_ref().to_vec(),
        "SHA256" => s3s::crypto::Sha256::checksum(&cat).as_ref().to_vec(),
        _ => return None,
    };
    Some(format!("{}-{}", B64.encode(digest), parts.len()))
}

fn crc_algorithm(alg: &str) -> Option<crc_fast::CrcAlgorithm> {
    match alg {
        "CRC32" => Some(crc_fast::CrcAlgorithm::Crc32IsoHdlc),
        "CRC32C" => Some(crc_fast::CrcAlgorithm::Crc32Iscsi),
        "CRC64NVME" => Some(crc_fast::CrcAlgorithm::Crc64Nvme),
        _ => None,
    }
}

/// The FULL_OBJECT checksum of parts given by (raw CRC, plaintext length), in part order: the CRC
/// of their concatenation, by CRC combination.
pub(crate) fn full_object(alg: &str, parts: &[(Vec<u8>, u64)]) -> Option<String> {
    let crc = crc_algorithm(alg)?;
    let width = raw_len(alg)?;
    let value = |raw: &[u8]| {
        (raw.len() == width).then(|| raw.iter().fold(0u64, |acc, b| acc << 8 | u64::from(*b)))
    };
    let mut acc: Option<u64> = None;
    for (raw, len) in parts {
        let v = value(raw)?;
        acc = Some(match acc {
            None => v,
            Some(a) => crc_fast::checksum_combine(crc, a, v, *len),
        });
    }
    let total = acc?;
    let bytes = total.to_be_bytes();
    Some(B64.encode(&bytes[8 - width..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn crc(alg: &str, data: &[u8]) -> Vec<u8> {
        match alg {
            "CRC32" => s3s::crypto::Crc32::checksum(data).to_vec(),
            "CRC32C" => s3s::crypto::Crc32c::checksum(data).to_vec(),
            _ => s3s::crypto::Crc64Nvme::checksum(data).to_vec(),
        }
    }

    #[test]
    fn full_object_combines_to_the_crc_of_the_whole() {
        let data: Vec<u8> = (0..300_000u32).map(|i| (i * 7 + i / 13) as u8).collect();
        for alg in ["CRC32", "CRC32C", "CRC64NVME"] {
            for cuts in [
                vec![0, 300_000],
                vec![0, 100_000, 250_000, 300_000],
                vec![0, 1, 300_000],
            ] {
                let parts: Vec<(Vec<u8>, u64)> = cuts
                    .windows(2)
                    .map(|w| (crc(alg, &data[w[0]..w[1]]), (w[1] - w[0]) as u64))
                    .collect();
                assert_eq!(
                    full_object(alg, &parts).unwrap(),
                    B64.encode(crc(alg, &data)),
                    "{alg} {cuts:?}"
                );
            }
        }
        // a wrong length or a SHA is refused
        assert_eq!(full_object("CRC32", &[(vec![0; 8], 1)]), None);
        assert_eq!(full_object("SHA256", &[(vec![0; 32], 1)]), None);
    }

    #[test]
    fn composite_is_the_checksum_of_the_part_checksums() {
        let p1 = s3s::crypto::Sha256::checksum(b"part one").as_ref().to_vec();
        let p2 = s3s::crypto::Sha256::checksum(b"part two").as_ref().to_vec();
        let mut cat = p1.clone();
        cat.extend_from_slice(&p2);
        let want = B64.encode(s3s::crypto::Sha256::checksum(&cat));
        assert_eq!(composite("SHA256", &[p1, p2]).unwrap(), format!("{want}-2"));
        // the CRC32 composite of one part, against the value of the zlib crc32 of its checksum
        let one = crc("CRC32", b"hello");
        let want = B64.encode(crc("CRC32", &one));
        assert_eq!(composite("CRC32", &[one]).unwrap(), format!("{want}-1"));
        assert_eq!(composite("CRC64NVME", &[vec![0; 8]]), None);
    }

    #[test]
    fn upload_modes_as_s3_validates_them() {
        let ok = |a: Option<&str>, t: Option<&str>| upload_mode(a, t).unwrap();
        assert_eq!(ok(None, None), None);
        assert_eq!(
            ok(Some("crc32"), None),
            Some(("CRC32".into(), COMPOSITE.into()))
        );
        assert_eq!(
            ok(Some("CRC64NVME"), None),
            Some(("CRC64NVME".into(), FULL_OBJECT.into()))
        );
        assert_eq!(
            ok(Some("CRC32C"), Some("FULL_OBJECT")),
            Some(("CRC32C".into(), FULL_OBJECT.into()))
        );
        let msg = |a: Option<&str>, t: Option<&str>| {
            upload_mode(a, t)
                .unwrap_err()
                .message()
                .unwrap_or_default()
                .to_string()
        };
        assert_eq!(
            msg(Some("SHA256"), Some("FULL_OBJECT")),
            "The FULL_OBJECT checksum type cannot be used with the sha256 checksum algorithm."
        );
        assert_eq!(
            msg(Some("CRC64NVME"), Some("COMPOSITE")),
            "The COMPOSITE checksum type cannot be used with the crc64nvme checksum algorithm."
        );
        assert_eq!(
            msg(None, Some("COMPOSITE")),
            "The x-amz-checksum-type header can only be used with the x-amz-checksum-algorithm header."
        );
        assert_eq!(
            msg(Some("CRC32"), Some("BAD")),
            "Value for x-amz-checksum-type header is invalid."
        );
        assert!(msg(Some("MD5"), None).starts_with("Checksum algorithm provided is unsupported."));
    }

    #[test]
    fn decoding_checks_the_length() {
        assert_eq!(decode("CRC32", "AAAAAA=="), Some(vec![0; 4]));
        assert_eq!(decode("CRC64NVME", "AAAAAA=="), None);
        assert_eq!(decode("CRC32", "^^^^"), None);
    }
}
