//! Protocol encodings of results and errors: IAM/STS Query XML, KMS JSON 1.1, S3 XML.

use coffer_core::{Out, ServiceError};

pub const IAM_NS: &str = "https://iam.amazonaws.com/doc/2010-05-08/";
pub const STS_NS: &str = "https://sts.amazonaws.com/doc/2011-06-15/";

pub fn xml_escape(s: &str, out: &mut String) {
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\r' => out.push_str("&#xD;"),
            '\t' | '\n' => out.push(c),
            // Characters XML 1.0 cannot carry at all (C0 controls, U+FFFE/U+FFFF).
            c if (c as u32) < 0x20 || c == '\u{FFFE}' || c == '\u{FFFF}' => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
}

fn write_out(o: &Out, out: &mut String) {
    match o {
        Out::Str(s) => xml_escape(s, out),
        Out::Struct(fields) => {
            for (name, v) in fields {
                out.push('<');
                out.push_str(name);
                out.push('>');
                write_out(v, out);
                out.push_str("</");
                out.push_str(name);
                out.push('>');
            }
        }
        Out::List(items) => {
            for i in items {
                out.push_str("<member>");
                write_out(i, out);
                out.push_str("</member>");
            }
        }
    }
}

/// `<ActionResponse xmlns=NS><ActionResult>…</ActionResult><ResponseMetadata>…`.
pub fn query_response(action: &str, ns: &str, result: Option<&Out>, request_id: &str) -> String {
    let mut s = String::with_capacity(512);
    s.push_str("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<");
    s.push_str(action);
    s.push_str("Response xmlns=\"");
    s.push_str(ns);
    s.push_str("\">");
    if let Some(r) = result {
        s.push('<');
        s.push_str(action);
        s.push_str("Result>");
        write_out(r, &mut s);
        s.push_str("</");
        s.push_str(action);
        s.push_str("Result>");
    }
    s.push_str("<ResponseMetadata><RequestId>");
    xml_escape(request_id, &mut s);
    s.push_str("</RequestId></ResponseMetadata></");
    s.push_str(action);
    s.push_str("Response>");
    s
}

pub fn query_error(ns: &str, e: &ServiceError, request_id: &str) -> String {
    let mut s = String::with_capacity(256);
    s.push_str("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<ErrorResponse xmlns=\"");
    s.push_str(ns);
    s.push_str("\"><Error><Type>");
    s.push_str(if e.status >= 500 {
        "Receiver"
    } else {
        "Sender"
    });
    s.push_str("</Type><Code>");
    xml_escape(&e.code, &mut s);
    s.push_str("</Code><Message>");
    xml_escape(&e.message, &mut s);
    s.push_str("</Message></Error><RequestId>");
    xml_escape(request_id, &mut s);
    s.push_str("</RequestId></ErrorResponse>");
    s
}

pub fn json_error(e: &ServiceError) -> String {
    serde_json::json!({"__type": e.code, "message": e.message}).to_string()
}

/// S3's `<Error>` with extra sibling elements.
pub fn s3_error(
    e: &ServiceError,
    extra: &[(&str, String)],
    request_id: &str,
    host_id: &str,
) -> String {
    let mut s = String::with_capacity(256);
    s.push_str("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>");
    xml_escape(&e.code, &mut s);
    s.push_str("</Code><Message>");
    xml_escape(&e.message, &mut s);
    s.push_str("</Message>");
    for (k, v) in extra {
        s.push('<');
        s.push_str(k);
        s.push('>');
        xml_escape(v, &mut s);
        s.push_str("</");
        s.push_str(k);
        s.push('>');
    }
    s.push_str("<RequestId>");
    xml_escape(request_id, &mut s);
    s.push_str("</RequestId><HostId>");
    xml_escape(host_id, &mut s);
    s.push_str("</HostId></Error>");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_shapes() {
        let o = Out::Struct(vec![(
            "User",
            Out::Struct(vec![
                ("UserName", Out::s("a<b")),
                ("Tags", Out::List(vec![Out::s("x")])),
            ]),
        )]);
        let x = query_response("GetUser", IAM_NS, Some(&o), "rid");
        assert!(x.contains("<GetUserResult><User><UserName>a&lt;b</UserName><Tags><member>x</member></Tags></User></GetUserResult>"));
        assert!(x.ends_with(
            "<ResponseMetadata><RequestId>rid</RequestId></ResponseMetadata></GetUserResponse>"
        ));
        let x = query_response("DeleteUser", IAM_NS, None, "r");
        assert!(!x.contains("DeleteUserResult"));
        let mut esc = String::new();
        xml_escape("a\u{0}b\u{1}c\td\ne\u{FFFF}", &mut esc);
        assert_eq!(esc, "a\u{FFFD}b\u{FFFD}c\td\ne\u{FFFD}");
        let e = ServiceError::new("NoSuchEntity", 404, "gone");
        let x = query_error(IAM_NS, &e, "r");
        assert!(x.contains("<Type>Sender</Type><Code>NoSuchEntity</Code><Message>gone</Message>"));
        assert_eq!(
            json_error(&e),
            r#"{"__type":"NoSuchEntity","message":"gone"}"#
        );
    }
}
