//! Which keys a clear may touch: the operator's `--pattern` or `--namespace` turned into the
//! glob to walk, with the checks that keep a clear inside the cache unless `--force` is given
//! (an empty pattern, `*`, a pattern outside every namespace), and Redis glob escaping.

use crate::cache::CacheError;
use crate::config::CacheConfig;

/// What to clear, as the operator named it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// A Redis glob (`*`, `?`, `[…]`, `\` escapes).
    Pattern(String),
    /// A configured namespace: every key under its prefix.
    Namespace(String),
}

/// A target checked against the policies: the glob to walk and the namespace it lies in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    pub pattern: String,
    pub namespace: Option<String>,
}
/// `s` with Redis glob characters escaped, so it matches itself only.
pub fn glob_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    for c in s.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// The literal text every key matching `pattern` starts with (escapes resolved).
pub fn literal_prefix(pattern: &str) -> String {
    let mut out = String::new();
    let mut chars = pattern.chars();
    while let Some(c) = chars.next() {
        match c {
            '*' | '?' | '[' => break,
            '\\' => match chars.next() {
                Some(n) => out.push(n),
                None => out.push('\\'),
            },
            c => out.push(c),
        }
    }
    out
}

/// Turns the operator's target into the glob to walk, refusing without `force` what could
/// delete more than cache: an empty pattern, `*`, or a pattern outside every namespace.
pub fn resolve(cache: &CacheConfig, target: &Target, force: bool) -> Result<Resolved, CacheError> {
    let pattern = match target {
        Target::Namespace(name) => {
            let ns = cache
                .namespace(name)
                .ok_or_else(|| CacheError::unknown_namespace(name, cache))?;
            return Ok(Resolved {
                pattern: format!("{}*", glob_escape(&ns.prefix)),
                namespace: Some(ns.name.clone()),
            });
        }
        Target::Pattern(p) => p,
    };
    let everything = pattern.is_empty() || pattern.chars().all(|c| c == '*');
    let namespace = cache
        .namespace_of(&literal_prefix(pattern))
        .map(|n| n.name.clone());
    if !force {
        if everything {
            return Err(CacheError::Refused(format!(
                "pattern {pattern:?} matches every key in Redis, not only the cache; \
                 add --force if that is what you mean, or use --namespace NAME"
            )));
        }
        if namespace.is_none() {
            let prefixes: Vec<&str> = cache.namespaces.iter().map(|n| n.prefix.as_str()).collect();
            return Err(CacheError::Refused(format!(
                "pattern {pattern:?} is not inside any cache namespace (prefixes: {}), so it \
                 may delete keys that are not cache; add --force if that is what you mean, or \
                 use --namespace NAME",
                if prefixes.is_empty() {
                    "none configured".into()
                } else {
                    prefixes.join(", ")
                }
            )));
        }
    }
    Ok(Resolved {
        // SCAN without a filter is what an empty pattern asks for: every key.
        pattern: if pattern.is_empty() {
            "*".into()
        } else {
            pattern.clone()
        },
        namespace,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Codec, NamespaceConfig};
    use std::time::Duration;

    fn cache() -> CacheConfig {
        let ns = |name: &str, prefix: &str| NamespaceConfig {
            name: name.into(),
            prefix: prefix.into(),
            ttl: Duration::from_secs(60),
            codec: Codec::Raw,
            compress: false,
            enforce_ttl: false,
            warmup: None,
        };
        CacheConfig {
            namespaces: vec![
                ns("sessions", "cache:sessions:"),
                ns("analytics", "cache:analytics:"),
            ],
            ..CacheConfig::default()
        }
    }

    fn pat(p: &str) -> Target {
        Target::Pattern(p.into())
    }

    #[test]
    fn escaping_makes_a_prefix_match_itself() {
        assert_eq!(glob_escape("cache:a:"), "cache:a:");
        assert_eq!(glob_escape(r"a*b?c[d]e\f"), r"a\*b\?c\[d\]e\\f");
        assert_eq!(literal_prefix(&glob_escape(r"x*[y]\")), r"x*[y]\");
        assert_eq!(literal_prefix("cache:s*:1"), "cache:s");
        assert_eq!(literal_prefix("cache:?"), "cache:");
        assert_eq!(literal_prefix("a[bc]"), "a");
        assert_eq!(literal_prefix("plain"), "plain");
    }

    #[test]
    fn a_namespace_clears_its_escaped_prefix() {
        let r = resolve(&cache(), &Target::Namespace("analytics".into()), false).unwrap();
        assert_eq!(r.pattern, "cache:analytics:*");
        assert_eq!(r.namespace.as_deref(), Some("analytics"));
        let e = resolve(&cache(), &Target::Namespace("nope".into()), true).unwrap_err();
        assert!(e.to_string().contains("sessions, analytics"), "{e}");
    }

    #[test]
    fn patterns_inside_a_namespace_need_no_force() {
        for p in [
            "cache:sessions:*",
            "cache:sessions:user:4?",
            "cache:analytics:42",
        ] {
            assert!(
                resolve(&cache(), &pat(p), false)
                    .unwrap()
                    .namespace
                    .is_some(),
                "{p}"
            );
        }
    }

    #[test]
    fn everything_or_outside_needs_force() {
        for p in [
            "",
            "*",
            "**",
            "cache:*",
            "cache:sess*",
            "other:*",
            "?ache:sessions:*",
        ] {
            let e = resolve(&cache(), &pat(p), false).unwrap_err().to_string();
            assert!(e.contains("--force"), "{p}: {e}");
            assert!(resolve(&cache(), &pat(p), true).is_ok(), "{p}");
        }
        assert!(resolve(&cache(), &pat("*"), false)
            .unwrap_err()
            .to_string()
            .contains("every key"));
        assert!(resolve(&cache(), &pat("other:*"), false)
            .unwrap_err()
            .to_string()
            .contains(
                "not inside any cache namespace (prefixes: cache:sessions:, cache:analytics:)"
            ));
        assert_eq!(resolve(&cache(), &pat(""), true).unwrap().pattern, "*");
    }
}
