//! Parsing of the Authorization header / presigned query parameters (§1.2, §1.4).

use http::{HeaderMap, Method, Uri};
use percent_encoding::percent_decode_str;
use time::{Date, Month, OffsetDateTime, PrimitiveDateTime, Time};

use crate::{ALGORITHM, AuthError, AuthKind, MAX_EXPIRES_SECS, ParsedAuth};

const SIGV4A: &str = "AWS4-ECDSA-P256-SHA256";

const MISSING_QUERY_PARAMS: &str = "Query-string authentication version 4 requires the X-Amz-Algorithm, X-Amz-Credential, X-Amz-Signature, X-Amz-Date, X-Amz-SignedHeaders, and X-Amz-Expires parameters.";
const BAD_QUERY_CREDENTIAL: &str = "Error parsing the X-Amz-Credential parameter; the Credential is mal-formed; expecting \"<YOUR-AKID>/YYYYMMDD/REGION/SERVICE/aws4_request\".";
const BAD_HEADER_CREDENTIAL: &str = "The authorization header is malformed; the Credential is mal-formed; expecting \"<YOUR-AKID>/YYYYMMDD/REGION/SERVICE/aws4_request\".";
const TOO_LONG_EXPIRES: &str = "X-Amz-Expires must be less than a week (in seconds); that is, the given X-Amz-Expires must be less than 604800 seconds";
const BAD_QUERY_DATE: &str =
    "X-Amz-Date must be in the ISO8601 Long Format \"yyyyMMdd'T'HHmmss'Z'\"";
const BAD_HEADER_DATE: &str = "AWS authentication requires a valid Date or x-amz-date header";
const TWO_MECHANISMS: &str = "Only one auth mechanism allowed; only the X-Amz-Algorithm query parameter, Signature query string parameter or the Authorization header should be specified";

fn two_digits(b: &[u8]) -> Option<u8> {
    match b {
        [a, c] if a.is_ascii_digit() && c.is_ascii_digit() => Some((a - b'0') * 10 + (c - b'0')),
        _ => None,
    }
}

fn parse_yyyymmdd(s: &[u8]) -> Option<Date> {
    if s.len() != 8 || !s.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let year = i32::from(two_digits(&s[0..2])?) * 100 + i32::from(two_digits(&s[2..4])?);
    let month = Month::try_from(two_digits(&s[4..6])?).ok()?;
    Date::from_calendar_date(year, month, two_digits(&s[6..8])?).ok()
}

/// The `yyyymmdd` prefix of an amz-date (the whole string if shorter).
pub(crate) fn ymd(amz_date: &str) -> &str {
    amz_date.get(..8).unwrap_or(amz_date)
}

/// Parse `yyyymmddThhmmssZ` (UTC).
pub fn parse_amz_date(s: &str) -> Option<OffsetDateTime> {
    let b = s.as_bytes();
    if b.len() != 16 || b[8] != b'T' || b[15] != b'Z' {
        return None;
    }
    let date = parse_yyyymmdd(&b[0..8])?;
    let time = Time::from_hms(
        two_digits(&b[9..11])?,
        two_digits(&b[11..13])?,
        two_digits(&b[13..15])?,
    )
    .ok()?;
    Some(PrimitiveDateTime::new(date, time).assume_utc())
}

/// Format as `yyyymmddThhmmssZ` (UTC).
pub fn format_amz_date(t: OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    format!(
        "{:04}{:02}{:02}T{:02}{:02}{:02}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

/// Format as `yyyy-mm-ddThh:mm:ssZ` (UTC), as in S3's `<ServerTime>`.
pub fn format_iso8601(t: OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

/// Parse an IMF-fixdate (`Fri, 24 May 2013 00:00:00 GMT`, what botocore's `formatdate`
/// produces when the request carries a `Date` header).
fn parse_http_date(s: &str) -> Option<OffsetDateTime> {
    let s = s.trim();
    let rest = s.split_once(", ").map_or(s, |(_, r)| r);
    let parts: Vec<&str> = rest.split_ascii_whitespace().collect();
    let [day, mon, year, hms, zone] = parts.as_slice() else {
        return None;
    };
    if !matches!(*zone, "GMT" | "UTC" | "+0000" | "-0000") {
        return None;
    }
    let month = match mon.to_ascii_lowercase().as_str() {
        "jan" => Month::January,
        "feb" => Month::February,
        "mar" => Month::March,
        "apr" => Month::April,
        "may" => Month::May,
        "jun" => Month::June,
        "jul" => Month::July,
        "aug" => Month::August,
        "sep" => Month::September,
        "oct" => Month::October,
        "nov" => Month::November,
        "dec" => Month::December,
        _ => return None,
    };
    let day: u8 = day.parse().ok()?;
    let year: i32 = year.parse().ok()?;
    let mut it = hms.split(':');
    let (h, m, sec) = (it.next()?, it.next()?, it.next()?);
    if it.next().is_some() {
        return None;
    }
    let date = Date::from_calendar_date(year, month, day).ok()?;
    let time = Time::from_hms(h.parse().ok()?, m.parse().ok()?, sec.parse().ok()?).ok()?;
    Some(PrimitiveDateTime::new(date, time).assume_utc())
}

struct Credential {
    access_key_id: String,
    date: String,
    region: String,
    service: String,
}

/// `AKID/yyyymmdd/region/service/aws4_request` (split from the right).
fn parse_credential(s: &str) -> Option<Credential> {
    let mut it = s.rsplitn(5, '/');
    let terminator = it.next()?;
    let service = it.next()?;
    let region = it.next()?;
    let date = it.next()?;
    let akid = it.next()?;
    if terminator != "aws4_request"
        || service.is_empty()
        || region.is_empty()
        || akid.is_empty()
        || parse_yyyymmdd(date.as_bytes()).is_none()
    {
        return None;
    }
    Some(Credential {
        access_key_id: akid.to_owned(),
        date: date.to_owned(),
        region: region.to_owned(),
        service: service.to_owned(),
    })
}

fn parse_signed_headers(s: &str) -> Option<Vec<String>> {
    let v: Vec<String> = s
        .split(';')
        .map(|h| h.trim().to_ascii_lowercase())
        .collect();
    if v.iter().any(String::is_empty) {
        return None;
    }
    Some(v)
}

fn valid_signature(s: &str) -> Option<String> {
    (s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit())).then(|| s.to_ascii_lowercase())
}

fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Result<Option<&'a str>, AuthError> {
    let mut vals = headers.get_all(name).iter();
    let Some(first) = vals.next() else {
        return Ok(None);
    };
    if vals.next().is_some() {
        return Err(AuthError::Malformed(format!(
            "Multiple '{name}' headers are not allowed"
        )));
    }
    first
        .to_str()
        .map(Some)
        .map_err(|_| AuthError::Malformed(format!("Invalid characters in the '{name}' header")))
}

/// Decoded query parameters of interest (`None` = absent); duplicates are rejected.
#[derive(Default)]
struct QueryAuth {
    algorithm: Option<String>,
    credential: Option<String>,
    date: Option<String>,
    expires: Option<String>,
    signed_headers: Option<String>,
    signature: Option<String>,
    token: Option<String>,
    v2: bool,
}

fn scan_query(raw: &str) -> Result<QueryAuth, AuthError> {
    let mut q = QueryAuth::default();
    let mut v2_key = false;
    let mut v2_sig = false;
    for pair in raw.split('&') {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        let slot = match name {
            "X-Amz-Algorithm" => &mut q.algorithm,
            "X-Amz-Credential" => &mut q.credential,
            "X-Amz-Date" => &mut q.date,
            "X-Amz-Expires" => &mut q.expires,
            "X-Amz-SignedHeaders" => &mut q.signed_headers,
            "X-Amz-Signature" => &mut q.signature,
            "X-Amz-Security-Token" => &mut q.token,
            "AWSAccessKeyId" => {
                v2_key = true;
                continue;
            }
            "Signature" => {
                v2_sig = true;
                continue;
            }
            _ => continue,
        };
        if slot.is_some() {
            return Err(AuthError::QueryParams(format!(
                "Query-string authentication parameter {name} must not be repeated."
            )));
        }
        *slot = Some(percent_decode_str(value).decode_utf8_lossy().into_owned());
    }
    q.v2 = v2_key && v2_sig;
    Ok(q)
}

/// Parse the SigV4 auth of a request: the `Authorization` header or the presigned query.
///
/// Returns `Ok(None)` when the request carries no SigV4 auth at all (anonymous). Nothing is
/// verified here except syntax and `X-Amz-Expires` bounds; see [`crate::verify`].
pub fn parse(
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
) -> Result<Option<ParsedAuth>, AuthError> {
    let _ = method;
    let q = scan_query(uri.query().unwrap_or(""))?;
    let authz = header_str(headers, "authorization")?;
    let query_auth = q.algorithm.is_some() || q.credential.is_some() || q.signature.is_some();
    match (authz, query_auth) {
        (Some(_), true) => Err(AuthError::Malformed(TWO_MECHANISMS.to_owned())),
        (Some(a), false) => parse_header_auth(a, headers).map(Some),
        (None, true) => parse_query_auth(q, headers).map(Some),
        (None, false) if q.v2 => Err(AuthError::UnsupportedAlgorithm(
            "Query-string authentication version 2 is not supported; use AWS4-HMAC-SHA256."
                .to_owned(),
        )),
        (None, false) => Ok(None),
    }
}

fn parse_header_auth(value: &str, headers: &HeaderMap) -> Result<ParsedAuth, AuthError> {
    let value = value.trim();
    let (algorithm, rest) = match value.split_once(|c: char| c.is_ascii_whitespace()) {
        Some((a, r)) => (a, r.trim()),
        None => (value, ""),
    };
    if algorithm != ALGORITHM {
        return Err(AuthError::UnsupportedAlgorithm(if algorithm == SIGV4A {
            "The authorization mechanism you have provided (AWS4-ECDSA-P256-SHA256) is not supported. Please use AWS4-HMAC-SHA256.".to_owned()
        } else {
            "Unsupported Authorization Type".to_owned()
        }));
    }
    let mut credential = None;
    let mut signed = None;
    let mut signature = None;
    for comp in rest.split(',') {
        let comp = comp.trim();
        if comp.is_empty() {
            continue;
        }
        let Some((k, v)) = comp.split_once('=') else {
            return Err(AuthError::Malformed(format!(
                "Authorization header requires each component to be of the form key=value; got '{}'",
                comp.chars().take(64).collect::<String>()
            )));
        };
        let slot = match k.trim() {
            "Credential" => &mut credential,
            "SignedHeaders" => &mut signed,
            "Signature" => &mut signature,
            _ => continue,
        };
        if slot.is_some() {
            return Err(AuthError::Malformed(format!(
                "Authorization header has a duplicate '{}' component.",
                k.trim()
            )));
        }
        *slot = Some(v.trim());
    }
    let mut missing = Vec::new();
    if credential.is_none() {
        missing.push("Authorization header requires 'Credential' parameter.");
    }
    if signature.is_none() {
        missing.push("Authorization header requires 'Signature' parameter.");
    }
    if signed.is_none() {
        missing.push("Authorization header requires 'SignedHeaders' parameter.");
    }
    let (Some(credential), Some(signed), Some(signature)) = (credential, signed, signature) else {
        return Err(AuthError::Malformed(missing.join(" ")));
    };
    let cred = parse_credential(credential)
        .ok_or_else(|| AuthError::Malformed(BAD_HEADER_CREDENTIAL.to_owned()))?;
    let signed_headers = parse_signed_headers(signed).ok_or_else(|| {
        AuthError::Malformed("The authorization header is malformed; SignedHeaders is empty or has an empty header name.".to_owned())
    })?;
    let signature = valid_signature(signature).ok_or_else(|| {
        AuthError::Malformed(
            "The authorization header is malformed; Signature must be 64 hexadecimal characters."
                .to_owned(),
        )
    })?;

    let (amz_date, request_time) = match header_str(headers, "x-amz-date")? {
        Some(d) => {
            let t = parse_amz_date(d.trim())
                .ok_or_else(|| AuthError::Malformed(BAD_HEADER_DATE.to_owned()))?;
            (d.trim().to_owned(), t)
        }
        None => match header_str(headers, "date")? {
            Some(d) => {
                let t = parse_http_date(d)
                    .ok_or_else(|| AuthError::Malformed(BAD_HEADER_DATE.to_owned()))?;
                (crate::format_amz_date(t), t)
            }
            None => {
                return Err(AuthError::Malformed(
                    "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header."
                        .to_owned(),
                ));
            }
        },
    };
    if ymd(&amz_date) != cred.date {
        return Err(AuthError::Malformed(format!(
            "The authorization header is malformed; Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: '{}' != '{}', from '{}'.",
            cred.date,
            ymd(&amz_date),
            amz_date
        )));
    }
    Ok(ParsedAuth {
        access_key_id: cred.access_key_id,
        date: cred.date,
        region: cred.region,
        service: cred.service,
        signed_headers,
        signature,
        amz_date,
        request_time,
        kind: AuthKind::Header,
        security_token: header_str(headers, "x-amz-security-token")?.map(str::to_owned),
        content_sha256: header_str(headers, "x-amz-content-sha256")?.map(|s| s.trim().to_owned()),
    })
}

fn parse_query_auth(q: QueryAuth, headers: &HeaderMap) -> Result<ParsedAuth, AuthError> {
    let missing = || AuthError::QueryParams(MISSING_QUERY_PARAMS.to_owned());
    let algorithm = q.algorithm.ok_or_else(missing)?;
    let credential = q.credential.ok_or_else(missing)?;
    let signature = q.signature.ok_or_else(missing)?;
    let amz_date = q.date.ok_or_else(missing)?;
    let signed = q.signed_headers.ok_or_else(missing)?;
    let expires = q.expires.ok_or_else(missing)?;

    if algorithm != ALGORITHM {
        if algorithm == SIGV4A {
            return Err(AuthError::UnsupportedAlgorithm(
                "X-Amz-Algorithm AWS4-ECDSA-P256-SHA256 is not supported; use AWS4-HMAC-SHA256."
                    .to_owned(),
            ));
        }
        return Err(AuthError::QueryParams(
            "X-Amz-Algorithm only supports \"AWS4-HMAC-SHA256\"".to_owned(),
        ));
    }
    let cred = parse_credential(&credential)
        .ok_or_else(|| AuthError::QueryParams(BAD_QUERY_CREDENTIAL.to_owned()))?;
    let request_time = parse_amz_date(&amz_date)
        .ok_or_else(|| AuthError::QueryParams(BAD_QUERY_DATE.to_owned()))?;
    if ymd(&amz_date) != cred.date {
        return Err(AuthError::QueryParams(format!(
            "Invalid credential date \"{}\". This date is not the same as X-Amz-Date: \"{}\".",
            cred.date,
            ymd(&amz_date)
        )));
    }
    let expires_secs: u64 = match expires.parse::<i64>() {
        Ok(n) if n < 0 => {
            return Err(AuthError::QueryParams(
                "X-Amz-Expires must be non-negative".to_owned(),
            ));
        }
        Ok(0) => {
            return Err(AuthError::QueryParams(
                "X-Amz-Expires must be at least 1 second".to_owned(),
            ));
        }
        Ok(n) => u64::try_from(n).map_err(|_| missing())?,
        Err(_) => {
            // A huge positive number is still "too large", anything else is not a number.
            if !expires.is_empty() && expires.bytes().all(|b| b.is_ascii_digit()) {
                return Err(AuthError::QueryParams(TOO_LONG_EXPIRES.to_owned()));
            }
            return Err(AuthError::QueryParams(
                "X-Amz-Expires should be a number".to_owned(),
            ));
        }
    };
    if expires_secs > MAX_EXPIRES_SECS {
        return Err(AuthError::QueryParams(TOO_LONG_EXPIRES.to_owned()));
    }
    let signed_headers = parse_signed_headers(&signed).ok_or_else(|| {
        AuthError::QueryParams(
            "X-Amz-SignedHeaders is empty or has an empty header name.".to_owned(),
        )
    })?;
    let signature = valid_signature(&signature).ok_or_else(|| {
        AuthError::QueryParams("X-Amz-Signature must be 64 hexadecimal characters.".to_owned())
    })?;
    let security_token = match q.token {
        Some(t) => Some(t),
        None => header_str(headers, "x-amz-security-token")?.map(str::to_owned),
    };
    Ok(ParsedAuth {
        access_key_id: cred.access_key_id,
        date: cred.date,
        region: cred.region,
        service: cred.service,
        signed_headers,
        signature,
        amz_date,
        request_time,
        kind: AuthKind::Presigned { expires_secs },
        security_token,
        content_sha256: header_str(headers, "x-amz-content-sha256")?.map(|s| s.trim().to_owned()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        let t = parse_amz_date("20130524T000000Z").expect("valid");
        assert_eq!(format_amz_date(t), "20130524T000000Z");
        assert_eq!(format_iso8601(t), "2013-05-24T00:00:00Z");
        assert!(parse_amz_date("20130524T000000").is_none());
        assert!(parse_amz_date("20131324T000000Z").is_none());
        assert!(parse_amz_date("2013052aT000000Z").is_none());
        assert!(parse_amz_date("20130524T250000Z").is_none());
        let h = parse_http_date("Fri, 24 May 2013 00:00:00 GMT").expect("valid");
        assert_eq!(h, t);
        assert!(parse_http_date("Fri, 24 Foo 2013 00:00:00 GMT").is_none());
    }

    #[test]
    fn credentials() {
        let c = parse_credential("AKID/20130524/us-east-1/s3/aws4_request").expect("valid");
        assert_eq!(
            (
                c.access_key_id.as_str(),
                c.date.as_str(),
                c.region.as_str(),
                c.service.as_str()
            ),
            ("AKID", "20130524", "us-east-1", "s3")
        );
        for bad in [
            "AKID/20130524/us-east-1/s3/aws4_reques",
            "AKID/20130524/us-east-1/s3",
            "/20130524/us-east-1/s3/aws4_request",
            "AKID/2013052/us-east-1/s3/aws4_request",
            "AKID/20130524//s3/aws4_request",
            "",
        ] {
            assert!(parse_credential(bad).is_none(), "{bad}");
        }
    }
}
