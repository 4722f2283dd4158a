//! Identifiers in AWS's shapes, from the system's secure random generator.

const UPPER_ALNUM: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

fn random_bytes(n: usize) -> Vec<u8> {
    let mut buf = vec![0u8; n];
    // aws-lc's RNG only fails if the OS entropy source is gone; nothing can continue then.
    aws_lc_rs::rand::fill(&mut buf).expect("system random generator failed");
    buf
}

/// `prefix` followed by random characters from `[A-Z2-7]` up to `total_len` characters.
pub fn random_id(prefix: &str, total_len: usize) -> String {
    let n = total_len.saturating_sub(prefix.len());
    let mut s = String::with_capacity(total_len);
    s.push_str(prefix);
    for b in random_bytes(n) {
        s.push(UPPER_ALNUM[(b & 31) as usize] as char);
    }
    s
}

/// IAM unique ids: `AIDA…`, `AROA…`, `AGPA…`, `ANPA…` (21 characters).
pub fn unique_id(prefix: &str) -> String {
    random_id(prefix, 21)
}

/// Access key ids: `AKIA…`/`ASIA…` (20 characters).
pub fn access_key_id(prefix: &str) -> String {
    random_id(prefix, 20)
}

/// A 40-character secret access key (base64 alphabet, as AWS's).
pub fn secret_access_key() -> String {
    const B64: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    random_bytes(40)
        .into_iter()
        .map(|b| B64[(b & 63) as usize] as char)
        .collect()
}

/// A random 12-digit account id (not starting with 0).
pub fn account_id() -> String {
    let mut s = String::with_capacity(12);
    for (i, b) in random_bytes(12).into_iter().enumerate() {
        let d = if i == 0 { 1 + b % 9 } else { b % 10 };
        s.push((b'0' + d) as char);
    }
    s
}

/// A random UUID (v4), as request ids and key ids use.
pub fn uuid() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// `n` random bytes as an opaque token (session tokens).
pub fn token(n: usize) -> Vec<u8> {
    random_bytes(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes() {
        let a = unique_id("AIDA");
        assert_eq!(a.len(), 21);
        assert!(a.starts_with("AIDA"));
        let k = access_key_id("AKIA");
        assert_eq!(k.len(), 20);
        assert!(
            k.chars()
                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
        );
        assert_eq!(secret_access_key().len(), 40);
        let acct = account_id();
        assert!(crate::is_valid_account_id(&acct));
        assert_ne!(unique_id("AIDA"), unique_id("AIDA"));
    }
}
