//! The `[inspect]` actions in force for one request — what to do (pass,
//! retry, fail) with each soft or silent kind: the global ones, with the
//! `[[inspect.overrides]]` that match the request's route and model applied
//! in order (a later override wins for the kinds it sets). Resolved once at
//! admission; every layer then reads the same [`Actions`].

use crate::config::{Action, InspectConfig, InspectOverride};
use crate::pattern::ModelPatterns;
use crate::taxonomy::{Class, Kind};

/// One action per soft/silent kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Actions {
    pub content_filter: Action,
    pub length: Action,
    pub empty_data: Action,
    pub empty_content: Action,
    pub invalid_json: Action,
    pub schema_mismatch: Action,
    pub stream_truncated: Action,
}

impl Actions {
    /// The global actions of `[inspect]`.
    pub fn of(c: &InspectConfig) -> Actions {
        Actions {
            content_filter: c.content_filter,
            length: c.length,
            empty_data: c.empty_data,
            empty_content: c.empty_content,
            invalid_json: c.invalid_json,
            schema_mismatch: c.schema_mismatch,
            stream_truncated: c.stream_truncated,
        }
    }

    /// Whether a failure of this kind is worth retrying under this policy
    /// (the envelope's `retryable`): hard and aborted kinds by the
    /// taxonomy, soft and silent ones when their action is `retry`.
    pub fn retryable(&self, kind: Kind) -> bool {
        match kind.class() {
            Class::Soft | Class::Silent => self.get(kind) == Action::Retry,
            Class::None | Class::Hard | Class::Aborted => kind.is_retryable(),
        }
    }

    /// The action for a kind (`pass` for kinds that have none).
    pub fn get(&self, kind: Kind) -> Action {
        match kind {
            Kind::ContentFilter => self.content_filter,
            Kind::Length => self.length,
            Kind::EmptyData => self.empty_data,
            Kind::EmptyContent => self.empty_content,
            Kind::InvalidJson => self.invalid_json,
            Kind::SchemaMismatch => self.schema_mismatch,
            Kind::StreamTruncated => self.stream_truncated,
            // Dropped malformed events never fail an answer by themselves.
            Kind::MalformedEvent => Action::Pass,
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
            | Kind::BadUpstreamResponse
            | Kind::Overloaded
            | Kind::ClientClosed
            | Kind::Shutdown => Action::Pass,
        }
    }

    fn apply(&mut self, o: &InspectOverride) {
        let set = |slot: &mut Action, value: Option<Action>| {
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
    models: ModelPatterns,
    actions: InspectOverride,
}

impl Rule {
    fn matches(&self, route: &str, model: Option<&str>) -> bool {
        (self.routes.is_empty() || self.routes.iter().any(|r| r == route))
            && self.models.matches(model)
    }
}

/// The global actions and the compiled overrides.
pub struct ActionTable {
    base: Actions,
    rules: Vec<Rule>,
}

impl ActionTable {
    /// Compiles the overrides (validated with the configuration); an error
    /// names the bad one (`inspect.overrides[1].models[0]`).
    pub fn new(c: &InspectConfig) -> Result<ActionTable, (String, String)> {
        let mut rules = Vec::with_capacity(c.overrides.len());
        for (i, o) in c.overrides.iter().enumerate() {
            let models = ModelPatterns::compile(&o.models)
                .map_err(|(j, e)| (format!("inspect.overrides[{i}].models[{j}]"), e))?;
            rules.push(Rule {
                routes: o.routes.clone(),
                models,
                actions: o.clone(),
            });
        }
        Ok(ActionTable {
            base: Actions::of(c),
            rules,
        })
    }

    /// The global actions, before any override.
    pub fn base(&self) -> Actions {
        self.base
    }

    /// The actions for a request on `route` (a template) asking for `model`.
    pub fn resolve(&self, route: &str, model: Option<&str>) -> Actions {
        let mut p = self.base;
        for rule in self.rules.iter().filter(|r| r.matches(route, model)) {
            p.apply(&rule.actions);
        }
        p
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(overrides: serde_json::Value) -> Result<ActionTable, (String, String)> {
        let c = InspectConfig {
            overrides: serde_json::from_value(overrides).unwrap(),
            ..InspectConfig::default()
        };
        ActionTable::new(&c)
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
        let base = Actions::of(&InspectConfig::default());
        assert_eq!(t.resolve(chat, Some("other")), base);
        assert_eq!(t.resolve(chat, None), base);
        assert_eq!(t.resolve(chat, Some("gpt-4o")).length, Action::Fail);
        assert_eq!(
            t.resolve(chat, Some("gpt-4o-mini")).length,
            Action::Retry,
            "the later override wins"
        );
        let completions = t.resolve("/v1/completions", Some("gpt-4o"));
        assert_eq!(
            (completions.content_filter, completions.length),
            (Action::Pass, Action::Fail)
        );
        assert_eq!(t.resolve(chat, Some("gpt-4o")).content_filter, Action::Fail);
    }

    #[test]
    fn a_bad_glob_is_named() {
        let o = serde_json::json!([{"models": ["a"]}, {"models": ["gpt-[4"], "length": "fail"}]);
        assert_eq!(
            table(o).err().map(|e| e.0).as_deref(),
            Some("inspect.overrides[1].models[0]")
        );
    }
}
