//! Patterns with policy variables (`${aws:username}`, `${*}`, defaults …).

use crate::glob::Tok;
use crate::{Context, ContextValue, PolicyVersion};

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Seg {
    Tok(Tok),
    /// `${key}` or `${key, 'default'}`; `key` is lower-cased.
    Var {
        key: String,
        default: Option<String>,
    },
}

/// A pattern as written in a policy, pre-split into tokens and variables.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Pattern {
    pub(crate) segs: Vec<Seg>,
    pub(crate) has_vars: bool,
}

fn plain_tok(c: char) -> Tok {
    match c {
        '*' => Tok::Star,
        '?' => Tok::Quest,
        c => Tok::Lit(c),
    }
}

/// Parse the body of `${...}`. Returns `None` when it is not a valid variable
/// reference (the text is then kept literally).
fn parse_var(body: &str) -> Option<Seg> {
    match body {
        "*" => return Some(Seg::Tok(Tok::Lit('*'))),
        "?" => return Some(Seg::Tok(Tok::Lit('?'))),
        "$" => return Some(Seg::Tok(Tok::Lit('$'))),
        _ => {}
    }
    let (key, default) = match body.split_once(',') {
        Some((k, d)) => {
            let d = d.trim();
            let inner = d.strip_prefix('\'')?.strip_suffix('\'')?;
            if inner.contains('\'') {
                return None;
            }
            (k.trim(), Some(inner.to_string()))
        }
        None => (body.trim(), None),
    };
    if key.is_empty()
        || key
            .chars()
            .any(|c| c.is_whitespace() || matches!(c, '$' | '{' | '}' | '\'' | '*' | '?'))
    {
        return None;
    }
    Some(Seg::Var {
        key: key.to_lowercase(),
        default,
    })
}

impl Pattern {
    /// Parse `raw`. With `V2012`, `${...}` references are recognised;
    /// with `V2008` the text is taken literally (wildcards still apply).
    pub(crate) fn parse(raw: &str, version: PolicyVersion) -> Pattern {
        let mut segs = Vec::new();
        let mut has_vars = false;
        let chars: Vec<char> = raw.chars().collect();
        let mut i = 0;
        while i < chars.len() {
            if version == PolicyVersion::V2012
                && chars[i] == '$'
                && chars.get(i + 1) == Some(&'{')
                && let Some(rel) = chars[i + 2..].iter().position(|c| *c == '}')
            {
                let body: String = chars[i + 2..i + 2 + rel].iter().collect();
                if let Some(seg) = parse_var(&body) {
                    if matches!(seg, Seg::Var { .. }) {
                        has_vars = true;
                    }
                    segs.push(seg);
                    i += rel + 3;
                    continue;
                }
            }
            segs.push(Seg::Tok(plain_tok(chars[i])));
            i += 1;
        }
        Pattern { segs, has_vars }
    }

    /// Substitute variables from `ctx`. Substituted text is literal. Returns
    /// `None` if a variable is undefined (or multi-valued) and has no default.
    pub(crate) fn resolve(&self, ctx: &Context) -> Option<Vec<Tok>> {
        let mut out = Vec::with_capacity(self.segs.len());
        for seg in &self.segs {
            match seg {
                Seg::Tok(t) => out.push(*t),
                Seg::Var { key, default } => {
                    let value = match ctx.get_lower(key) {
                        Some(ContextValue::Single(s)) => s.as_str(),
                        _ => default.as_deref()?,
                    };
                    out.extend(value.chars().map(Tok::Lit));
                }
            }
        }
        Some(out)
    }
}

/// Turn tokens back into text with every wildcard taken literally (for the
/// `*Equals` operators, where `*` and `?` have no special meaning).
pub(crate) fn toks_to_literal(toks: &[Tok]) -> String {
    toks.iter()
        .map(|t| match t {
            Tok::Lit(c) => *c,
            Tok::Star => '*',
            Tok::Quest => '?',
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::glob::match_str;

    fn res(raw: &str, ctx: &Context) -> Option<Vec<Tok>> {
        Pattern::parse(raw, PolicyVersion::V2012).resolve(ctx)
    }

    #[test]
    fn substitution_and_escapes() {
        let ctx = Context::new().with("aws:username", "bob");
        let p = res("home/${aws:username}/*", &ctx).unwrap_or_default();
        assert!(match_str(&p, "home/bob/x"));
        assert!(!match_str(&p, "home/alice/x"));
        let p = res("a${*}b", &ctx).unwrap_or_default();
        assert!(match_str(&p, "a*b"));
        assert!(!match_str(&p, "axb"));
        let p = res("${?}${$}", &ctx).unwrap_or_default();
        assert_eq!(toks_to_literal(&p), "?$");
        assert!(!match_str(&p, "x$"));
    }

    #[test]
    fn case_insensitive_key_and_default() {
        let ctx = Context::new().with("aws:PrincipalTag/Team", "red");
        let p = res("${AWS:principaltag/team}", &ctx).unwrap_or_default();
        assert_eq!(toks_to_literal(&p), "red");
        let p = res("${aws:PrincipalTag/dept, 'company-wide'}", &ctx).unwrap_or_default();
        assert_eq!(toks_to_literal(&p), "company-wide");
        assert!(res("${aws:PrincipalTag/dept}", &ctx).is_none());
    }

    #[test]
    fn multi_valued_unresolvable() {
        let ctx = Context::new().with_multi("aws:TagKeys", vec!["a".into()]);
        assert!(res("${aws:TagKeys}", &ctx).is_none());
    }

    #[test]
    fn version_2008_is_literal() {
        let ctx = Context::new().with("aws:username", "bob");
        let p = Pattern::parse("${aws:username}", PolicyVersion::V2008)
            .resolve(&ctx)
            .unwrap_or_default();
        assert!(match_str(&p, "${aws:username}"));
        assert!(!match_str(&p, "bob"));
    }

    #[test]
    fn malformed_refs_are_literal() {
        let ctx = Context::new();
        let p = res("${unclosed", &ctx).unwrap_or_default();
        assert_eq!(toks_to_literal(&p), "${unclosed");
        let p = res("${}", &ctx).unwrap_or_default();
        assert_eq!(toks_to_literal(&p), "${}");
    }
}
