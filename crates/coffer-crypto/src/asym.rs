//! Asymmetric KMS keys: RSA (2048/3072/4096) and ECC (NIST P-256/P-384/P-521, secp256k1) key
//! generation, signing and verification (RAW messages or pre-computed DIGESTs), and RSAES-OAEP.
//! Private keys travel as PKCS#8 DER (zeroized), public keys as DER SubjectPublicKeyInfo.

use crate::CryptoError;
use aws_lc_rs::digest::{self, Digest};
use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::{
    self, KeySize, OaepPrivateDecryptingKey, OaepPublicEncryptingKey, PrivateDecryptingKey,
    PublicEncryptingKey,
};
use aws_lc_rs::signature::{self, EcdsaKeyPair, KeyPair, UnparsedPublicKey};
use zeroize::Zeroizing;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AsymSpec {
    Rsa2048,
    Rsa3072,
    Rsa4096,
    EccP256,
    EccP384,
    EccP521,
    EccSecp256k1,
}

impl AsymSpec {
    pub fn from_kms(spec: &str) -> Option<Self> {
        Some(match spec {
            "RSA_2048" => AsymSpec::Rsa2048,
            "RSA_3072" => AsymSpec::Rsa3072,
            "RSA_4096" => AsymSpec::Rsa4096,
            "ECC_NIST_P256" => AsymSpec::EccP256,
            "ECC_NIST_P384" => AsymSpec::EccP384,
            "ECC_NIST_P521" => AsymSpec::EccP521,
            "ECC_SECG_P256K1" => AsymSpec::EccSecp256k1,
            _ => return None,
        })
    }
    pub fn is_rsa(self) -> bool {
        matches!(
            self,
            AsymSpec::Rsa2048 | AsymSpec::Rsa3072 | AsymSpec::Rsa4096
        )
    }
    /// KMS's signing algorithms for this key spec.
    pub fn signing_algorithms(self) -> &'static [&'static str] {
        match self {
            AsymSpec::Rsa2048 | AsymSpec::Rsa3072 | AsymSpec::Rsa4096 => &[
                "RSASSA_PSS_SHA_256",
                "RSASSA_PSS_SHA_384",
                "RSASSA_PSS_SHA_512",
                "RSASSA_PKCS1_V1_5_SHA_256",
                "RSASSA_PKCS1_V1_5_SHA_384",
                "RSASSA_PKCS1_V1_5_SHA_512",
            ],
            AsymSpec::EccP256 | AsymSpec::EccSecp256k1 => &["ECDSA_SHA_256"],
            AsymSpec::EccP384 => &["ECDSA_SHA_384"],
            AsymSpec::EccP521 => &["ECDSA_SHA_512"],
        }
    }
    fn ecdsa_signing(self) -> Option<&'static signature::EcdsaSigningAlgorithm> {
        Some(match self {
            AsymSpec::EccP256 => &signature::ECDSA_P256_SHA256_ASN1_SIGNING,
            AsymSpec::EccP384 => &signature::ECDSA_P384_SHA384_ASN1_SIGNING,
            AsymSpec::EccP521 => &signature::ECDSA_P521_SHA512_ASN1_SIGNING,
            AsymSpec::EccSecp256k1 => &signature::ECDSA_P256K1_SHA256_ASN1_SIGNING,
            _ => return None,
        })
    }
    fn ecdsa_verify(self) -> Option<&'static signature::EcdsaVerificationAlgorithm> {
        Some(match self {
            AsymSpec::EccP256 => &signature::ECDSA_P256_SHA256_ASN1,
            AsymSpec::EccP384 => &signature::ECDSA_P384_SHA384_ASN1,
            AsymSpec::EccP521 => &signature::ECDSA_P521_SHA512_ASN1,
            AsymSpec::EccSecp256k1 => &signature::ECDSA_P256K1_SHA256_ASN1,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AsymError {
    /// The algorithm does not fit the key spec.
    Incompatible,
    /// A DIGEST message of the wrong length for the algorithm.
    DigestLength,
    /// OAEP plaintext longer than the key allows (the maximum is given).
    TooLong(usize),
    /// The signature or ciphertext is invalid.
    Invalid,
    Crypto(CryptoError),
}

fn digest_alg(alg: &str) -> &'static digest::Algorithm {
    if alg.ends_with("384") {
        &digest::SHA384
    } else if alg.ends_with("512") {
        &digest::SHA512
    } else {
        &digest::SHA256
    }
}

/// Generates a key pair: (PKCS#8 private key, SubjectPublicKeyInfo).
pub fn generate(spec: AsymSpec) -> Result<(Zeroizing<Vec<u8>>, Vec<u8>), AsymError> {
    let fail = |_| AsymError::Crypto(CryptoError::Random);
    if let Some(alg) = spec.ecdsa_signing() {
        let kp = EcdsaKeyPair::generate(alg).map_err(fail)?;
        let pkcs8 = kp.to_pkcs8v1().map_err(fail)?;
        let spki = kp.public_key().as_der().map_err(fail)?;
        return Ok((
            Zeroizing::new(pkcs8.as_ref().to_vec()),
            spki.as_ref().to_vec(),
        ));
    }
    let size = match spec {
        AsymSpec::Rsa2048 => KeySize::Rsa2048,
        AsymSpec::Rsa3072 => KeySize::Rsa3072,
        _ => KeySize::Rsa4096,
    };
    let kp = rsa::KeyPair::generate(size).map_err(fail)?;
    let pkcs8 = AsDer::<aws_lc_rs::encoding::Pkcs8V1Der>::as_der(&kp).map_err(fail)?;
    let spki = kp.public_key().as_der().map_err(fail)?;
    Ok((
        Zeroizing::new(pkcs8.as_ref().to_vec()),
        spki.as_ref().to_vec(),
    ))
}

fn rsa_signing(alg: &str) -> Option<&'static signature::RsaSignatureEncoding> {
    Some(match alg {
        "RSASSA_PSS_SHA_256" => &signature::RSA_PSS_SHA256,
        "RSASSA_PSS_SHA_384" => &signature::RSA_PSS_SHA384,
        "RSASSA_PSS_SHA_512" => &signature::RSA_PSS_SHA512,
        "RSASSA_PKCS1_V1_5_SHA_256" => &signature::RSA_PKCS1_SHA256,
        "RSASSA_PKCS1_V1_5_SHA_384" => &signature::RSA_PKCS1_SHA384,
        "RSASSA_PKCS1_V1_5_SHA_512" => &signature::RSA_PKCS1_SHA512,
        _ => return None,
    })
}

fn rsa_verify(alg: &str) -> Option<&'static signature::RsaParameters> {
    Some(match alg {
        "RSASSA_PSS_SHA_256" => &signature::RSA_PSS_2048_8192_SHA256,
        "RSASSA_PSS_SHA_384" => &signature::RSA_PSS_2048_8192_SHA384,
        "RSASSA_PSS_SHA_512" => &signature::RSA_PSS_2048_8192_SHA512,
        "RSASSA_PKCS1_V1_5_SHA_256" => &signature::RSA_PKCS1_2048_8192_SHA256,
        "RSASSA_PKCS1_V1_5_SHA_384" => &signature::RSA_PKCS1_2048_8192_SHA384,
        "RSASSA_PKCS1_V1_5_SHA_512" => &signature::RSA_PKCS1_2048_8192_SHA512,
        _ => return None,
    })
}

fn as_digest(alg: &str, msg: &[u8]) -> Result<Digest, AsymError> {
    let d = digest_alg(alg);
    if msg.len() != d.output_len() {
        return Err(AsymError::DigestLength);
    }
    Digest::import_less_safe(msg, d).map_err(|_| AsymError::DigestLength)
}

/// Signs `msg` (or the digest `msg` when `is_digest`) with KMS algorithm `alg`.
pub fn sign(
    spec: AsymSpec,
    pkcs8: &[u8],
    alg: &str,
    msg: &[u8],
    is_digest: bool,
) -> Result<Vec<u8>, AsymError> {
    if !spec.signing_algorithms().contains(&alg) {
        return Err(AsymError::Incompatible);
    }
    let crypto = |_| AsymError::Crypto(CryptoError::Unauthentic);
    if let Some(ec) = spec.ecdsa_signing() {
        let kp = EcdsaKeyPair::from_pkcs8(ec, pkcs8)
            .map_err(|_| AsymError::Crypto(CryptoError::KeyLength))?;
        let sig = if is_digest {
            kp.sign_digest(&as_digest(alg, msg)?).map_err(crypto)?
        } else {
            kp.sign(&SystemRandom::new(), msg).map_err(crypto)?
        };
        return Ok(sig.as_ref().to_vec());
    }
    let enc = rsa_signing(alg).ok_or(AsymError::Incompatible)?;
    let kp =
        rsa::KeyPair::from_pkcs8(pkcs8).map_err(|_| AsymError::Crypto(CryptoError::KeyLength))?;
    let mut sig = vec![0u8; kp.public_modulus_len()];
    if is_digest {
        kp.sign_digest(enc, &as_digest(alg, msg)?, &mut sig)
            .map_err(crypto)?;
    } else {
        kp.sign(enc, &SystemRandom::new(), msg, &mut sig)
            .map_err(crypto)?;
    }
    Ok(sig)
}

/// Verifies a signature made by [`sign`] (or any standard implementation).
pub fn verify(
    spec: AsymSpec,
    spki: &[u8],
    alg: &str,
    msg: &[u8],
    is_digest: bool,
    sig: &[u8],
) -> Result<bool, AsymError> {
    if !spec.signing_algorithms().contains(&alg) {
        return Err(AsymError::Incompatible);
    }
    let ok = if let Some(ec) = spec.ecdsa_verify() {
        let pk = UnparsedPublicKey::new(ec, spki);
        if is_digest {
            pk.verify_digest(&as_digest(alg, msg)?, sig).is_ok()
        } else {
            pk.verify(msg, sig).is_ok()
        }
    } else {
        let pk = UnparsedPublicKey::new(rsa_verify(alg).ok_or(AsymError::Incompatible)?, spki);
        if is_digest {
            pk.verify_digest(&as_digest(alg, msg)?, sig).is_ok()
        } else {
            pk.verify(msg, sig).is_ok()
        }
    };
    Ok(ok)
}

fn oaep(alg: &str) -> Option<&'static rsa::OaepAlgorithm> {
    match alg {
        "RSAES_OAEP_SHA_1" => Some(&rsa::OAEP_SHA1_MGF1SHA1),
        "RSAES_OAEP_SHA_256" => Some(&rsa::OAEP_SHA256_MGF1SHA256),
        _ => None,
    }
}

/// The largest plaintext RSAES-OAEP accepts for this key size and algorithm.
pub fn oaep_max_plaintext(spec: AsymSpec, alg: &str) -> Option<usize> {
    let k = match spec {
        AsymSpec::Rsa2048 => 256,
        AsymSpec::Rsa3072 => 384,
        AsymSpec::Rsa4096 => 512,
        _ => return None,
    };
    let h = match alg {
        "RSAES_OAEP_SHA_1" => 20,
        "RSAES_OAEP_SHA_256" => 32,
        _ => return None,
    };
    Some(k - 2 * h - 2)
}

pub fn oaep_encrypt(
    spec: AsymSpec,
    spki: &[u8],
    alg: &str,
    plaintext: &[u8],
) -> Result<Vec<u8>, AsymError> {
    let a = oaep(alg).ok_or(AsymError::Incompatible)?;
    let max = oaep_max_plaintext(spec, alg).ok_or(AsymError::Incompatible)?;
    if plaintext.len() > max {
        return Err(AsymError::TooLong(max));
    }
    let pk = PublicEncryptingKey::from_der(spki)
        .map_err(|_| AsymError::Crypto(CryptoError::KeyLength))?;
    let key =
        OaepPublicEncryptingKey::new(pk).map_err(|_| AsymError::Crypto(CryptoError::KeyLength))?;
    let mut out = vec![0u8; key.ciphertext_size()];
    let n = key
        .encrypt(a, plaintext, &mut out, None)
        .map_err(|_| AsymError::Crypto(CryptoError::Unauthentic))?
        .len();
    out.truncate(n);
    Ok(out)
}

pub fn oaep_decrypt(
    pkcs8: &[u8],
    alg: &str,
    ciphertext: &[u8],
) -> Result<Zeroizing<Vec<u8>>, AsymError> {
    let a = oaep(alg).ok_or(AsymError::Incompatible)?;
    let sk = PrivateDecryptingKey::from_pkcs8(pkcs8)
        .map_err(|_| AsymError::Crypto(CryptoError::KeyLength))?;
    let key =
        OaepPrivateDecryptingKey::new(sk).map_err(|_| AsymError::Crypto(CryptoError::KeyLength))?;
    let mut out = Zeroizing::new(vec![0u8; key.min_output_size()]);
    let n = key
        .decrypt(a, ciphertext, &mut out, None)
        .map_err(|_| AsymError::Invalid)?
        .len();
    out.truncate(n);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ecdsa_all_curves_raw_and_digest() {
        for spec in [
            AsymSpec::EccP256,
            AsymSpec::EccP384,
            AsymSpec::EccP521,
            AsymSpec::EccSecp256k1,
        ] {
            let (sk, pk) = generate(spec).unwrap();
            let alg = spec.signing_algorithms()[0];
            let sig = sign(spec, &sk, alg, b"message", false).unwrap();
            assert!(
                verify(spec, &pk, alg, b"message", false, &sig).unwrap(),
                "{spec:?}"
            );
            assert!(!verify(spec, &pk, alg, b"messagE", false, &sig).unwrap());
            let d = digest::digest(digest_alg(alg), b"message");
            let sig2 = sign(spec, &sk, alg, d.as_ref(), true).unwrap();
            // A DIGEST signature verifies as a RAW signature of the message.
            assert!(verify(spec, &pk, alg, b"message", false, &sig2).unwrap());
            assert_eq!(
                sign(spec, &sk, alg, b"short", true),
                Err(AsymError::DigestLength)
            );
            assert_eq!(
                sign(spec, &sk, "RSASSA_PSS_SHA_256", b"m", false),
                Err(AsymError::Incompatible)
            );
        }
    }

    #[test]
    fn rsa_sign_and_oaep() {
        let spec = AsymSpec::Rsa2048;
        let (sk, pk) = generate(spec).unwrap();
        for alg in spec.signing_algorithms() {
            let sig = sign(spec, &sk, alg, b"hello", false).unwrap();
            assert_eq!(sig.len(), 256);
            assert!(
                verify(spec, &pk, alg, b"hello", false, &sig).unwrap(),
                "{alg}"
            );
            assert!(!verify(spec, &pk, alg, b"hellp", false, &sig).unwrap());
        }
        for alg in ["RSAES_OAEP_SHA_1", "RSAES_OAEP_SHA_256"] {
            let ct = oaep_encrypt(spec, &pk, alg, b"secret").unwrap();
            assert_eq!(&oaep_decrypt(&sk, alg, &ct).unwrap()[..], b"secret");
            let mut bad = ct.clone();
            bad[10] ^= 1;
            assert_eq!(oaep_decrypt(&sk, alg, &bad), Err(AsymError::Invalid));
        }
        assert_eq!(oaep_max_plaintext(spec, "RSAES_OAEP_SHA_256"), Some(190));
        assert_eq!(
            oaep_encrypt(spec, &pk, "RSAES_OAEP_SHA_256", &[0u8; 191]),
            Err(AsymError::TooLong(190))
        );
    }
}
