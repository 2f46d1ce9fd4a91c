//! What every request through the inspection layer shares: the `[inspect]`
//! settings, the metrics it counts findings in, and the memory of video
//! tasks this gateway saw created.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use tokio::time::Instant;

use crate::config::{ms, Config, InspectConfig};
use crate::drain::Drain;
use crate::facts::RequestFacts;
use crate::inspect::Findings;
use crate::metrics::Metrics;

/// Tasks remembered as "just created", at most this many.
const TASKS_REMEMBERED: usize = 4096;

/// The inspection layer's state.
pub struct InspectState {
    pub inspect: InspectConfig,
    /// `envelope.hint_in_message`, for a stream's closing error event.
    pub hint_in_message: bool,
    pub metrics: Arc<Metrics>,
    /// Cuts the streams still going at the drain deadline.
    pub drain: Drain,
    /// Video task ids this gateway saw created, and when.
    tasks: Mutex<HashMap<String, Instant>>,
}

impl InspectState {
    pub fn new(config: &Config, metrics: Arc<Metrics>, drain: Drain) -> InspectState {
        InspectState {
            inspect: config.inspect.clone(),
            hint_in_message: config.envelope.hint_in_message,
            metrics,
            drain,
            tasks: Mutex::new(HashMap::new()),
        }
    }

    /// Counts an answer's finish reasons and tokens (every attempt's: they
    /// are what the upstream did and billed).
    pub fn record_findings(&self, facts: &RequestFacts, findings: &Findings) {
        let model = self.metrics.model_label(facts.model.as_deref());
        for reason in &findings.finish_reasons {
            self.metrics
                .record_finish_reason(facts.route, &model, reason);
        }
        if let Some(usage) = findings.usage {
            self.metrics
                .tokens
                .with_label_values(&[&*model, "prompt"])
                .inc_by(usage.prompt_tokens);
            self.metrics
                .tokens
                .with_label_values(&[&*model, "completion"])
                .inc_by(usage.completion_tokens);
        }
    }

    /// Counts an answer too large to inspect.
    pub fn uninspected(&self, route: &str) {
        self.metrics.uninspected.with_label_values(&[route]).inc();
    }

    /// Counts a dropped malformed stream event.
    pub fn malformed(&self, route: &str) {
        self.metrics
            .malformed_events
            .with_label_values(&[route])
            .inc();
    }

    /// Notes a video task this gateway saw created.
    pub fn task_created(&self, id: &str) {
        let mut tasks = self.tasks.lock().unwrap_or_else(PoisonError::into_inner);
        if tasks.len() >= TASKS_REMEMBERED {
            let window = ms(self.inspect.task_not_ready_window_ms);
            tasks.retain(|_, at| at.elapsed() < window);
            if tasks.len() >= TASKS_REMEMBERED {
                tasks.clear();
            }
        }
        tasks.insert(id.to_string(), Instant::now());
    }

    /// Whether a video task was seen created within the not-ready window.
    pub fn task_is_new(&self, id: &str) -> bool {
        let tasks = self.tasks.lock().unwrap_or_else(PoisonError::into_inner);
        tasks
            .get(id)
            .is_some_and(|at| at.elapsed() < ms(self.inspect.task_not_ready_window_ms))
    }
}
