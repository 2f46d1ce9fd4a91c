//! Label values that come from outside (model names, finish reasons):
//! bounded, so that no client or upstream can grow the scrape without
//! limit, and shared, so that a label costs an `Arc` clone.

use std::collections::HashSet;
use std::sync::{Arc, Mutex, RwLock};

/// The label value for anything past a cap.
pub const OTHER: &str = "other";

/// A label whose values come from outside (model names): the first `cap`
/// distinct values are kept, the rest become [`OTHER`]. Values are also cut
/// to 64 characters so one odd client cannot bloat the scrape.
pub struct BoundedLabels {
    cap: usize,
    /// Shared label values: a label costs an `Arc` clone, not a `String`.
    seen: RwLock<HashSet<Arc<str>>>,
    other: Arc<str>,
    /// Values outside the bound (`unknown`, `null`), made once.
    fixed: Mutex<Vec<Arc<str>>>,
}

impl BoundedLabels {
    pub fn new(cap: usize) -> Self {
        BoundedLabels {
            cap,
            seen: RwLock::new(HashSet::new()),
            other: Arc::from(OTHER),
            fixed: Mutex::new(Vec::new()),
        }
    }

    /// The label value to use for `value`.
    pub fn label(&self, value: &str) -> Arc<str> {
        let value = truncate(value, 64);
        if let Ok(seen) = self.seen.read() {
            if let Some(known) = seen.get(value) {
                return known.clone();
            }
            if seen.len() >= self.cap {
                return self.other.clone();
            }
        }
        match self.seen.write() {
            Ok(mut seen) if seen.len() < self.cap || seen.contains(value) => {
                if let Some(known) = seen.get(value) {
                    return known.clone();
                }
                let label: Arc<str> = Arc::from(value);
                seen.insert(label.clone());
                label
            }
            _ => self.other.clone(),
        }
    }

    /// A label value outside the bound (`unknown`, `null`), shared the same
    /// way.
    pub fn fixed(&self, value: &'static str) -> Arc<str> {
        let mut fixed = self
            .fixed
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(known) = fixed.iter().find(|f| &***f == value) {
            return known.clone();
        }
        let label: Arc<str> = Arc::from(value);
        fixed.push(label.clone());
        label
    }
}

fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn model_labels_are_capped() {
        let labels = BoundedLabels::new(2);
        assert_eq!(&*labels.label("a"), "a");
        assert_eq!(&*labels.label("b"), "b");
        assert_eq!(&*labels.label("c"), "other");
        assert_eq!(&*labels.label("a"), "a");
        assert_eq!(&*labels.label(&"x".repeat(100)), "other");
    }

    #[test]
    fn long_values_are_cut_on_a_char_boundary() {
        let labels = BoundedLabels::new(10);
        let long = "é".repeat(40); // 80 bytes
        assert_eq!(&*labels.label(&long), "é".repeat(32));
    }
}
