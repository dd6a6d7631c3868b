//! Path rewrites before forwarding (Istio's `HTTPRewrite.uri` and `uriRegexRewrite`).

use std::borrow::Cow;

use super::Rewrite;

impl Rewrite {
    /// The new path and query for a request whose path and query are `path_and_query`,
    /// matched as `matched_prefix`; `None` when the path is not rewritten.
    ///
    /// With `uri`: when the route matched the path by a prefix, that prefix is replaced by
    /// `uri` and the rest of the path kept; otherwise the whole path becomes `uri`. With
    /// `uri_regex`: every match in the path is replaced, `\1`..`\9` (or `$1`) standing for
    /// capture groups. The query is kept either way. Should both be set (validation refuses
    /// it), `uri` applies.
    pub fn path(&self, path_and_query: &str, matched_prefix: Option<&str>) -> Option<String> {
        let (path, query) = match path_and_query.split_once('?') {
            Some((path, query)) => (path, Some(query)),
            None => (path_and_query, None),
        };
        let mut out = if let Some(uri) = &self.uri {
            let rest = matched_prefix.and_then(|p| {
                path.get(..p.len())
                    .filter(|head| head.eq_ignore_ascii_case(p))
                    .and_then(|_| path.get(p.len()..))
            });
            match rest {
                Some(rest) => [uri.as_str(), rest].concat(),
                None => uri.clone(),
            }
        } else if let Some(re) = &self.uri_regex {
            re.pattern
                .regex()
                .replace_all(path, substitution(&re.rewrite).as_ref())
                .into_owned()
        } else {
            return None;
        };
        if let Some(query) = query {
            out.push('?');
            out.push_str(query);
        }
        Some(out)
    }
}

/// Translates an RE2-style substitution (`\1` for a group, `\\` for a backslash) to the regex
/// crate's (`${1}`); `$` references pass through unchanged.
fn substitution(rewrite: &str) -> Cow<'_, str> {
    if !rewrite.contains('\\') {
        return Cow::Borrowed(rewrite);
    }
    let mut out = String::with_capacity(rewrite.len() + 8);
    let mut chars = rewrite.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, chars.peek().copied()) {
            ('\\', Some(d)) if d.is_ascii_digit() => {
                chars.next();
                out.push_str("${");
                out.push(d);
                out.push('}');
            }
            ('\\', Some('\\')) => {
                chars.next();
                out.push('\\');
            }
            (c, _) => out.push(c),
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::route::{Pattern, RegexRewrite};

    fn uri(u: &str) -> Rewrite {
        Rewrite {
            uri: Some(u.into()),
            ..Default::default()
        }
    }
    fn regex(pattern: &str, rewrite: &str) -> Rewrite {
        Rewrite {
            uri_regex: Some(RegexRewrite {
                pattern: Pattern::unanchored(pattern).unwrap(),
                rewrite: rewrite.into(),
            }),
            ..Default::default()
        }
    }

    #[test]
    fn nothing_to_rewrite() {
        let authority_only = Rewrite {
            authority: Some("ratings".into()),
            ..Default::default()
        };
        assert_eq!(authority_only.path("/a?b", None), None);
        assert_eq!(Rewrite::default().path("/a", Some("/")), None);
    }

    #[test]
    fn prefix_is_replaced() {
        let r = uri("/v1/bookRatings");
        assert_eq!(
            r.path("/v1/getProductRatings/7?x=1", Some("/v1/getProductRatings")),
            Some("/v1/bookRatings/7?x=1".into())
        );
        assert_eq!(
            uri("/").path("/api/users", Some("/api/")),
            Some("/users".into())
        );
        assert_eq!(uri("/").path("/api/", Some("/api/")), Some("/".into()));
        assert_eq!(uri("").path("/api/x", Some("/api")), Some("/x".into()));
        // A case-insensitive prefix match replaces the prefix as the request spelled it.
        assert_eq!(
            uri("/new").path("/OLD/x", Some("/old")),
            Some("/new/x".into())
        );
    }

    #[test]
    fn whole_path_without_prefix() {
        let r = uri("/v1/bookRatings");
        assert_eq!(
            r.path("/v1/getProductRatings?x=1&y", None),
            Some("/v1/bookRatings?x=1&y".into())
        );
        assert_eq!(r.path("/anything", None), Some("/v1/bookRatings".into()));
        // A prefix the path does not start with (a caller's mistake) replaces the whole path.
        assert_eq!(
            r.path("/a", Some("/longer")),
            Some("/v1/bookRatings".into())
        );
        assert_eq!(r.path("/b/c", Some("/a")), Some("/v1/bookRatings".into()));
        // An empty query is kept as written.
        assert_eq!(r.path("/a?", None), Some("/v1/bookRatings?".into()));
    }

    #[test]
    fn regex_rewrite() {
        let r = regex("^/service/([^/]+)(/.*)$", "\\2/instance/\\1");
        assert_eq!(
            r.path("/service/foo/v1/api?q=1", None),
            Some("/v1/api/instance/foo?q=1".into())
        );
        // Every match is replaced.
        assert_eq!(regex("x", "y").path("/axbxc", None), Some("/aybyc".into()));
        // No match leaves the path as it was.
        assert_eq!(
            regex("zzz", "y").path("/a?zzz", None),
            Some("/a?zzz".into())
        );
        // `$1` works too, `\0` is the whole match, `\\` a backslash.
        assert_eq!(
            regex("(b)", "[$1]").path("/abc", None),
            Some("/a[b]c".into())
        );
        assert_eq!(
            regex("b+", "<\\0>").path("/abbc", None),
            Some("/a<bb>c".into())
        );
        assert_eq!(regex("b", "\\\\").path("/abc", None), Some("/a\\c".into()));
        // A capture group followed by digits stays one group reference.
        assert_eq!(
            regex("(b)", "\\10").path("/abc", None),
            Some("/ab0c".into())
        );
        // A prefix match does not change a regex rewrite.
        assert_eq!(regex("a", "b").path("/a", Some("/")), Some("/b".into()));
    }

    #[test]
    fn substitution_translation() {
        assert!(matches!(
            substitution("/plain/$1"),
            Cow::Borrowed("/plain/$1")
        ));
        assert_eq!(substitution("\\1-\\2"), "${1}-${2}");
        assert_eq!(substitution("a\\\\1"), "a\\1");
        assert_eq!(substitution("end\\"), "end\\");
        assert_eq!(substitution("\\x"), "\\x");
    }

    #[test]
    fn uri_wins_over_regex() {
        let both = Rewrite {
            uri: Some("/u".into()),
            ..regex("a", "b")
        };
        assert_eq!(both.path("/a", None), Some("/u".into()));
    }
}
