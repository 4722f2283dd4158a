//! Iterative (non-backtracking-explosive) glob matcher for `*` and `?`.

/// One glob token. `Lit` is always literal, even for `*`/`?` characters that
/// came from `${*}`/`${?}` or from substituted variable values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Tok {
    Lit(char),
    Star,
    Quest,
}

/// Tokenize a plain pattern where every `*` and `?` is a wildcard.
pub(crate) fn tokenize(pattern: &str) -> Vec<Tok> {
    pattern
        .chars()
        .map(|c| match c {
            '*' => Tok::Star,
            '?' => Tok::Quest,
            c => Tok::Lit(c),
        })
        .collect()
}

/// Lower-case every literal token (for case-insensitive matching).
pub(crate) fn lowercase_toks(toks: &[Tok]) -> Vec<Tok> {
    let mut out = Vec::with_capacity(toks.len());
    for t in toks {
        match t {
            Tok::Lit(c) => out.extend(c.to_lowercase().map(Tok::Lit)),
            other => out.push(*other),
        }
    }
    out
}

/// Match `text` against glob tokens. `*` matches any (possibly empty) run of
/// characters, `?` exactly one character. Runs in O(|pattern| * |text|) worst
/// case using the classic two-pointer algorithm with a single backtrack point.
pub(crate) fn match_toks(pat: &[Tok], text: &[char]) -> bool {
    let (mut p, mut t) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        match pat.get(p) {
            Some(Tok::Star) => {
                star = Some((p, t));
                p += 1;
            }
            Some(Tok::Quest) => {
                p += 1;
                t += 1;
            }
            Some(Tok::Lit(c)) if *c == text[t] => {
                p += 1;
                t += 1;
            }
            _ => match star {
                Some((sp, st)) => {
                    p = sp + 1;
                    t = st + 1;
                    star = Some((sp, st + 1));
                }
                None => return false,
            },
        }
    }
    pat[p.min(pat.len())..].iter().all(|t| *t == Tok::Star)
}

/// Match a string against tokens.
pub(crate) fn match_str(pat: &[Tok], text: &str) -> bool {
    let chars: Vec<char> = text.chars().collect();
    match_toks(pat, &chars)
}

/// Case-sensitive glob match of `text` against `pattern`, where `*` matches
/// any run of characters (including `/` and `:`) and `?` exactly one.
pub fn glob_match(pattern: &str, text: &str) -> bool {
    match_str(&tokenize(pattern), text)
}

/// Whether the tokens are a single `*` (or only stars).
pub(crate) fn is_match_all(pat: &[Tok]) -> bool {
    !pat.is_empty() && pat.iter().all(|t| *t == Tok::Star)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basics() {
        assert!(glob_match("*", ""));
        assert!(glob_match("*", "anything/at:all"));
        assert!(glob_match("", ""));
        assert!(!glob_match("", "a"));
        assert!(glob_match("a?c", "abc"));
        assert!(!glob_match("a?c", "ac"));
        assert!(glob_match("arn:aws:s3:::b/*", "arn:aws:s3:::b/x/y:z"));
        assert!(!glob_match("arn:aws:s3:::b/*", "arn:aws:s3:::c/x"));
        assert!(glob_match("*a*b*c*", "xxaxxbxxcxx"));
        assert!(!glob_match("*a*b*c*", "xxaxxcxxbxx"));
        assert!(!glob_match("ABC", "abc"));
        assert!(glob_match("a**b", "ab"));
        assert!(glob_match("a*", "a"));
        assert!(!glob_match("a*b", "a"));
    }

    #[test]
    fn literal_star_is_literal() {
        let pat = vec![Tok::Lit('a'), Tok::Lit('*')];
        assert!(match_str(&pat, "a*"));
        assert!(!match_str(&pat, "ab"));
    }

    #[test]
    fn not_exponential() {
        let text = "a".repeat(5000);
        let pat = format!("{}b", "*a".repeat(50));
        assert!(!glob_match(&pat, &text));
    }
}
