//! Model-name patterns as the configuration writes them: exact names or
//! globs (`gpt-4o*`, `claude-?-*`). Compiled once at start; matched per
//! request by the routing table and the `[inspect]` overrides.

use globset::{Glob, GlobBuilder, GlobSet, GlobSetBuilder};

/// Whether a pattern is a glob rather than an exact name.
pub fn is_glob(pattern: &str) -> bool {
    pattern.contains(['*', '?', '[', '{'])
}

/// Compiles one model glob. `*` also matches `/` (model names like
/// `openai/gpt-4o` are one name, not a path).
pub fn compile_glob(pattern: &str) -> Result<Glob, String> {
    GlobBuilder::new(pattern)
        .literal_separator(false)
        .build()
        .map_err(|e| format!("{pattern:?} is not a valid glob: {}", e.kind()))
}

/// A list of names and globs, any of which may match.
#[derive(Debug, Clone)]
pub struct ModelPatterns {
    exact: Vec<String>,
    globs: GlobSet,
    /// An empty list matches every model (and a request without one).
    any: bool,
}

impl ModelPatterns {
    /// Compiles `patterns`; an error gives the index of the bad one.
    pub fn compile(patterns: &[String]) -> Result<ModelPatterns, (usize, String)> {
        let mut exact = Vec::new();
        let mut globs = GlobSetBuilder::new();
        for (i, p) in patterns.iter().enumerate() {
            if is_glob(p) {
                globs.add(compile_glob(p).map_err(|e| (i, e))?);
            } else {
                exact.push(p.clone());
            }
        }
        let globs = globs.build().map_err(|e| (0, e.to_string()))?;
        Ok(ModelPatterns {
            exact,
            globs,
            any: patterns.is_empty(),
        })
    }

    /// Whether `model` matches (an empty list matches anything).
    pub fn matches(&self, model: Option<&str>) -> bool {
        self.any
            || model.is_some_and(|m| self.exact.iter().any(|e| e == m) || self.globs.is_match(m))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(p: &[&str]) -> Vec<String> {
        p.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn names_and_globs_match_as_written() {
        let p = ModelPatterns::compile(&list(&["gpt-4o", "claude-*", "openai/*"])).unwrap();
        let rows = [
            (Some("gpt-4o"), true),
            (Some("gpt-4o-mini"), false),
            (Some("claude-3-5"), true),
            (Some("openai/gpt-4o"), true),
            (None, false),
        ];
        for (model, want) in rows {
            assert_eq!(p.matches(model), want, "{model:?}");
        }
        let any = ModelPatterns::compile(&[]).unwrap();
        assert!(any.matches(None) && any.matches(Some("x")));
    }

    #[test]
    fn a_bad_glob_is_named_by_index() {
        let err = ModelPatterns::compile(&list(&["a", "gpt-[4"])).unwrap_err();
        assert_eq!(err.0, 1);
        assert!(err.1.contains("gpt-[4"), "{}", err.1);
        assert!(is_glob("a*") && !is_glob("gpt-4o"));
    }
}
