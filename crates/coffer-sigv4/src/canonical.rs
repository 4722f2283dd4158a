//! Canonical request construction (§1.2), shared by the verifier and the signer.

use http::{HeaderMap, Method, Uri};
use percent_encoding::percent_decode;

use crate::Flavor;

fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~')
}

const HEX: &[u8; 16] = b"0123456789ABCDEF";

fn encode_into(out: &mut String, bytes: &[u8], keep_slash: bool) {
    for &b in bytes {
        if is_unreserved(b) || (keep_slash && b == b'/') {
            out.push(char::from(b));
        } else {
            out.push('%');
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 0x0f)]));
        }
    }
}

/// Percent-encode every byte outside `A-Za-z0-9-_.~` (uppercase hex; space ⇒ `%20`).
pub fn uri_encode(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len());
    encode_into(&mut s, bytes, false);
    s
}

/// botocore `remove_dot_segments`: RFC 3986 §5.2.4 plus removal of empty segments; keeps a
/// trailing slash if the result is non-empty; empty input ⇒ `/`.
fn remove_dot_segments(path: &str) -> String {
    if path.is_empty() {
        return "/".to_owned();
    }
    let mut out: Vec<&str> = Vec::new();
    for seg in path.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                out.pop();
            }
            s => out.push(s),
        }
    }
    let first = if path.starts_with('/') { "/" } else { "" };
    let last = if path.ends_with('/') && !out.is_empty() {
        "/"
    } else {
        ""
    };
    format!("{first}{}{last}", out.join("/"))
}

/// The CanonicalURI for `raw_path` (the path exactly as it appeared on the wire).
///
/// * [`Flavor::S3`]: the raw path unchanged (empty ⇒ `/`);
/// * [`Flavor::Standard`]: dot/empty segments removed, then every byte outside the
///   unreserved set and `/` percent-encoded again — the client already encoded once, so this
///   is the "double encoding" of the spec and equals botocore's `quote(normpath, safe='/~')`.
pub fn canonical_uri(raw_path: &str, flavor: Flavor) -> String {
    match flavor {
        Flavor::S3 => {
            if raw_path.is_empty() {
                "/".to_owned()
            } else {
                raw_path.to_owned()
            }
        }
        Flavor::Standard => {
            let norm = remove_dot_segments(raw_path);
            let mut s = String::with_capacity(norm.len() + 8);
            encode_into(&mut s, norm.as_bytes(), true);
            s
        }
    }
}

/// The CanonicalQueryString for a raw query (without `?`).
///
/// Each `name=value` pair is percent-decoded and re-encoded with the unreserved set, then the
/// pairs are sorted by encoded name, then encoded value. A pair without `=` gets an empty
/// value; empty pairs (`a=1&&b=2`) are skipped. With `exclude_signature`, `X-Amz-Signature`
/// pairs are dropped (presigned URLs).
///
/// A literal `+` is taken as a literal plus (`%2B`) when `plus_as_space` is false — RFC 3986
/// semantics and what every AWS SDK (botocore encodes both `+` and space) produces; the
/// verifier retries with `plus_as_space = true` (`+` ⇒ space ⇒ `%20`, form-encoding
/// semantics) only when the first attempt fails and the raw query contains a `+`.
pub fn canonical_query_string(
    raw_query: &str,
    exclude_signature: bool,
    plus_as_space: bool,
) -> String {
    let mut pairs: Vec<(String, String)> = Vec::new();
    for pair in raw_query.split('&') {
        if pair.is_empty() {
            continue;
        }
        let (name, value) = match pair.split_once('=') {
            Some((n, v)) => (n, v),
            None => (pair, ""),
        };
        let dec = |s: &str| -> String {
            if plus_as_space && s.contains('+') {
                let replaced = s.replace('+', " ");
                uri_encode(&percent_decode(replaced.as_bytes()).collect::<Vec<u8>>())
            } else {
                uri_encode(&percent_decode(s.as_bytes()).collect::<Vec<u8>>())
            }
        };
        let name = dec(name);
        if exclude_signature && name == "X-Amz-Signature" {
            continue;
        }
        pairs.push((name, dec(value)));
    }
    pairs.sort();
    let mut out = String::with_capacity(raw_query.len() + 16);
    for (i, (n, v)) in pairs.iter().enumerate() {
        if i > 0 {
            out.push('&');
        }
        out.push_str(n);
        out.push('=');
        out.push_str(v);
    }
    out
}

/// Header value as text: UTF-8 if valid, else ISO-8859-1 (what Python's http.client puts on
/// the wire for a `str` value botocore signed as UTF-8).
fn header_text(bytes: &[u8]) -> String {
    match std::str::from_utf8(bytes) {
        Ok(s) => s.to_owned(),
        Err(_) => bytes.iter().map(|&b| char::from(b)).collect(),
    }
}

/// Trim and collapse whitespace runs to one space (botocore `' '.join(value.split())`).
fn trim_all(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for (i, w) in s.split_whitespace().enumerate() {
        if i > 0 {
            out.push(' ');
        }
        out.push_str(w);
    }
    out
}

/// `host` value to use when the request has no `Host` header (HTTP/2 `:authority`).
pub(crate) fn authority_host(uri: &Uri) -> Option<String> {
    let auth = uri.authority()?;
    let host = auth.host().to_ascii_lowercase();
    let default_port = match uri.scheme_str() {
        Some("http") => Some(80),
        Some("https") => Some(443),
        _ => None,
    };
    match auth.port_u16() {
        Some(p) if Some(p) != default_port => Some(format!("{host}:{p}")),
        _ => Some(host),
    }
}

/// Canonical value of header `name` (lowercase): all values, each trimmed/collapsed, joined
/// with `,`. `host` falls back to the URI authority.
pub(crate) fn canonical_header_value(name: &str, headers: &HeaderMap, uri: &Uri) -> String {
    let mut vals = headers.get_all(name).iter().peekable();
    if vals.peek().is_none() {
        if name == "host" {
            return authority_host(uri).unwrap_or_default();
        }
        return String::new();
    }
    let parts: Vec<String> = vals.map(|v| trim_all(&header_text(v.as_bytes()))).collect();
    parts.join(",")
}

/// Inputs of a canonical request.
pub(crate) struct CanonicalInput<'a> {
    pub method: &'a Method,
    /// Raw path and query as on the wire (query without `?`).
    pub path: &'a str,
    pub query: &'a str,
    /// Used for the `host` fallback only.
    pub uri: &'a Uri,
    pub headers: &'a HeaderMap,
    pub signed_headers: &'a [String],
    pub payload_hash: &'a str,
    pub flavor: Flavor,
    pub exclude_signature: bool,
    pub plus_as_space: bool,
}

pub(crate) fn canonical_request(input: &CanonicalInput<'_>) -> String {
    let mut cr = String::with_capacity(512);
    cr.push_str(input.method.as_str());
    cr.push('\n');
    cr.push_str(&canonical_uri(input.path, input.flavor));
    cr.push('\n');
    cr.push_str(&canonical_query_string(
        input.query,
        input.exclude_signature,
        input.plus_as_space,
    ));
    cr.push('\n');
    for name in input.signed_headers {
        cr.push_str(name);
        cr.push(':');
        cr.push_str(&canonical_header_value(name, input.headers, input.uri));
        cr.push('\n');
    }
    cr.push('\n');
    cr.push_str(&input.signed_headers.join(";"));
    cr.push('\n');
    cr.push_str(input.payload_hash);
    cr
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dot_segments_like_botocore() {
        assert_eq!(remove_dot_segments(""), "/");
        assert_eq!(remove_dot_segments("/"), "/");
        assert_eq!(remove_dot_segments("/a/./b/../c//d/"), "/a/c/d/");
        assert_eq!(remove_dot_segments("/../.."), "/");
        assert_eq!(remove_dot_segments("//"), "/");
        assert_eq!(remove_dot_segments("/a/b"), "/a/b");
    }

    #[test]
    fn uri_flavours() {
        assert_eq!(canonical_uri("/a%20b/./c", Flavor::Standard), "/a%2520b/c");
        assert_eq!(canonical_uri("/a%20b/./c", Flavor::S3), "/a%20b/./c");
        assert_eq!(canonical_uri("", Flavor::S3), "/");
        assert_eq!(canonical_uri("/$x", Flavor::Standard), "/%24x");
    }

    #[test]
    fn query_canonicalisation() {
        assert_eq!(
            canonical_query_string("b=2&a=1&a=0&uploads", false, false),
            "a=0&a=1&b=2&uploads="
        );
        assert_eq!(
            canonical_query_string("k=a b/c%2fd&X-Amz-Signature=abc", true, false),
            "k=a%20b%2Fc%2Fd"
        );
        assert_eq!(canonical_query_string("k=a+b", false, false), "k=a%2Bb");
        assert_eq!(canonical_query_string("k=a+b", false, true), "k=a%20b");
        assert_eq!(canonical_query_string("&&", false, false), "");
        assert_eq!(canonical_query_string("k=%zz", false, false), "k=%25zz");
    }

    #[test]
    fn header_values() {
        assert_eq!(trim_all("  a   b \t c  "), "a b c");
        assert_eq!(header_text(&[0x61, 0xe9]), "a\u{e9}");
    }
}
