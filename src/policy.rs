//! The `[inspect]` policies in force for one request: the global ones, with
//! the `[[inspect.overrides]]` that match the request's route and model
//! applied in order (a later override wins for the kinds it sets). Resolved
//! once at admission; every layer then reads the same [`Policies`].

use globset::{GlobSet, GlobSetBuilder};

use crate::config::{compile_glob, is_glob, InspectConfig, InspectOverride, Policy};
use crate::taxonomy::Kind;

/// One policy per soft/silent kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policies {
    pub content_filter: Policy,
    pub length: Policy,
    pub empty_data: Policy,
    pub empty_content: Policy,
    pub invalid_json: Policy,
    pub schema_mismatch: Policy,
    pub stream_truncated: Policy,
}

impl Policies {
    /// The global policies of `[inspect]`.
    pub fn of(c: &InspectConfig) -> Policies {
        Policies {
            content_filter: c.content_filter,
            length: c.length,
            empty_data: c.empty_data,
            empty_content: c.empty_content,
            invalid_json: c.invalid_json,
            schema_mismatch: c.schema_mismatch,
            stream_truncated: c.stream_truncated,
        }
    }

    /// The policy for a kind (`pass` for kinds that have none).
    pub fn get(&self, kind: Kind) -> Policy {
        match kind {
            Kind::ContentFilter => self.content_filter,
            Kind::Length => self.length,
            Kind::EmptyData => self.empty_data,
            Kind::EmptyContent => self.empty_content,
            Kind::InvalidJson => self.invalid_json,
            Kind::SchemaMismatch => self.schema_mismatch,
            Kind::StreamTruncated => self.stream_truncated,
            // Dropped malformed events never fail an answer by themselves.
            Kind::MalformedEvent => Policy::Pass,
            Kind::Ok
            | Kind::BadRequest
            | Kind::ContextLengthExceeded
            | Kind::Unauthorized
            | Kind::Forbidden
            | Kind::QuotaExceeded
            | Kind::NotFound
            | Kind::PayloadTooLarge
            | Kind::RateLimited
            | Kind::ServerError
            | Kind::Timeout
            | Kind::ConnectError
            | Kind::BadUpstreamResponse => Policy::Pass,
        }
    }

    fn apply(&mut self, o: &InspectOverride) {
        let set = |slot: &mut Policy, value: Option<Policy>| {
            if let Some(v) = value {
                *slot = v;
            }
        };
        set(&mut self.content_filter, o.content_filter);
        set(&mut self.length, o.length);
        set(&mut self.empty_data, o.empty_data);
        set(&mut self.empty_content, o.empty_content);
        set(&mut self.invalid_json, o.invalid_json);
        set(&mut self.schema_mismatch, o.schema_mismatch);
        set(&mut self.stream_truncated, o.stream_truncated);
    }
}

/// One compiled override.
struct Rule {
    routes: Vec<String>,
    exact: Vec<String>,
    globs: GlobSet,
    any_model: bool,
    policies: InspectOverride,
}

impl Rule {
    fn matches(&self, route: &str, model: Option<&str>) -> bool {
        let route_ok = self.routes.is_empty() || self.routes.iter().any(|r| r == route);
        let model_ok = self.any_model
            || model.is_some_and(|m| self.exact.iter().any(|e| e == m) || self.globs.is_match(m));
        route_ok && model_ok
    }
}

/// The global policies and the compiled overrides.
pub struct PolicyTable {
    base: Policies,
    rules: Vec<Rule>,
}

impl PolicyTable {
    /// Compiles the overrides; an error names the bad one
    /// (`inspect.overrides[1].models[0]`).
    pub fn new(c: &InspectConfig) -> Result<PolicyTable, (String, String)> {
        let mut rules = Vec::with_capacity(c.overrides.len());
        for (i, o) in c.overrides.iter().enumerate() {
            let at = format!("inspect.overrides[{i}]");
            if o.routes.is_empty() && o.models.is_empty() {
                return Err((
                    at,
                    "names neither `routes` nor `models`: set the global policy instead".into(),
                ));
            }
            for (j, r) in o.routes.iter().enumerate() {
                if !r.starts_with("/v1/") {
                    return Err((
                        format!("{at}.routes[{j}]"),
                        format!("{r:?} is not a route like \"/v1/chat/completions\""),
                    ));
                }
            }
            let mut exact = Vec::new();
            let mut globs = GlobSetBuilder::new();
            for (j, m) in o.models.iter().enumerate() {
                if is_glob(m) {
                    globs.add(compile_glob(m).map_err(|e| (format!("{at}.models[{j}]"), e))?);
                } else {
                    exact.push(m.clone());
                }
            }
            let globs = globs
                .build()
                .map_err(|e| (format!("{at}.models"), e.to_string()))?;
            rules.push(Rule {
                routes: o.routes.clone(),
                exact,
                globs,
                any_model: o.models.is_empty(),
                policies: o.clone(),
            });
        }
        Ok(PolicyTable {
            base: Policies::of(c),
            rules,
        })
    }

    /// The global policies, before any override.
    pub fn base(&self) -> Policies {
        self.base
    }

    /// The policies for a request on `route` (a template) asking for `model`.
    pub fn resolve(&self, route: &str, model: Option<&str>) -> Policies {
        let mut p = self.base;
        for rule in self.rules.iter().filter(|r| r.matches(route, model)) {
            p.apply(&rule.policies);
        }
        p
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(overrides: serde_json::Value) -> Result<PolicyTable, (String, String)> {
        let c = InspectConfig {
            overrides: serde_json::from_value(overrides).unwrap(),
            ..InspectConfig::default()
        };
        PolicyTable::new(&c)
    }

    #[test]
    fn overrides_apply_by_route_and_model_in_order() {
        let t = table(serde_json::json!([
            {"models": ["gpt-4o*"], "length": "fail"},
            {"routes": ["/v1/completions"], "content_filter": "pass"},
            {"models": ["gpt-4o-mini"], "length": "retry"},
        ]))
        .unwrap();
        let chat = "/v1/chat/completions";
        let base = Policies::of(&InspectConfig::default());
        assert_eq!(t.resolve(chat, Some("other")), base);
        assert_eq!(t.resolve(chat, None), base);
        assert_eq!(t.resolve(chat, Some("gpt-4o")).length, Policy::Fail);
        assert_eq!(
            t.resolve(chat, Some("gpt-4o-mini")).length,
            Policy::Retry,
            "the later override wins"
        );
        let completions = t.resolve("/v1/completions", Some("gpt-4o"));
        assert_eq!(
            (completions.content_filter, completions.length),
            (Policy::Pass, Policy::Fail)
        );
        assert_eq!(t.resolve(chat, Some("gpt-4o")).content_filter, Policy::Fail);
    }

    #[test]
    fn bad_overrides_are_named() {
        let cases = [
            (
                serde_json::json!([{"length": "fail"}]),
                "inspect.overrides[0]",
            ),
            (
                serde_json::json!([{"routes": ["chat"], "length": "fail"}]),
                "inspect.overrides[0].routes[0]",
            ),
            (
                serde_json::json!([{"models": ["a"]}, {"models": ["gpt-[4"], "length": "fail"}]),
                "inspect.overrides[1].models[0]",
            ),
        ];
        for (o, key) in cases {
            assert_eq!(table(o).err().map(|e| e.0).as_deref(), Some(key));
        }
    }
}
