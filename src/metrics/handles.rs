//! The series every request touches — in-flight, request duration,
//! upstream attempts, first byte — resolved once per (route, class or
//! kind) and kept, instead of hashing label strings on every request.
//! Routes are the closed set of path templates ([`crate::path::all`]),
//! kinds and classes closed enums, so the table is small and fixed; a
//! series is created the first time it is used, as with `with_label_values`
//! (nothing new appears in `/metrics` at zero).

use std::sync::OnceLock;

use prometheus::{Histogram, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec};

use crate::path;
use crate::taxonomy::{Class, Kind};

const KINDS: usize = Kind::ALL.len();
const CLASSES: usize = Class::ALL.len();

/// Resolved handles, by route index (and class or kind).
pub(super) struct Handles {
    routes: Vec<&'static str>,
    inflight: Vec<OnceLock<IntGauge>>,
    first_byte: Vec<OnceLock<Histogram>>,
    /// route × class
    duration: Vec<OnceLock<Histogram>>,
    /// route × kind
    attempts: Vec<OnceLock<IntCounter>>,
}

fn slots<T>(n: usize) -> Vec<OnceLock<T>> {
    (0..n).map(|_| OnceLock::new()).collect()
}

/// Runs `f` on the cached handle, or — for a route outside the table —
/// on one resolved for this call.
fn with<T>(slot: Option<&OnceLock<T>>, make: impl FnOnce() -> T, f: impl FnOnce(&T)) {
    match slot {
        Some(slot) => f(slot.get_or_init(make)),
        None => f(&make()),
    }
}

impl Handles {
    pub(super) fn new() -> Handles {
        let routes: Vec<&'static str> = path::all().collect();
        let n = routes.len();
        Handles {
            routes,
            inflight: slots(n),
            first_byte: slots(n),
            duration: slots(n * CLASSES),
            attempts: slots(n * KINDS),
        }
    }

    /// The route's index: the templates are `&'static str`s handed out by
    /// [`path::template`], so the pointer usually matches.
    fn route(&self, route: &str) -> Option<usize> {
        self.routes
            .iter()
            .position(|r| std::ptr::eq(r.as_ptr(), route.as_ptr()) && r.len() == route.len())
            .or_else(|| self.routes.iter().position(|r| *r == route))
    }

    pub(super) fn inflight(&self, vec: &IntGaugeVec, route: &str, f: impl FnOnce(&IntGauge)) {
        let slot = self.route(route).and_then(|r| self.inflight.get(r));
        with(slot, || vec.with_label_values(&[route]), f);
    }

    pub(super) fn first_byte(&self, vec: &HistogramVec, route: &str, seconds: f64) {
        let slot = self.route(route).and_then(|r| self.first_byte.get(r));
        with(
            slot,
            || vec.with_label_values(&[route]),
            |h| h.observe(seconds),
        );
    }

    pub(super) fn duration(&self, vec: &HistogramVec, route: &str, class: Class, seconds: f64) {
        let slot = self
            .route(route)
            .and_then(|r| self.duration.get(r * CLASSES + class as usize));
        with(
            slot,
            || vec.with_label_values(&[route, class.as_str()]),
            |h| h.observe(seconds),
        );
    }

    pub(super) fn attempt(&self, vec: &IntCounterVec, route: &str, kind: Kind) {
        let slot = self
            .route(route)
            .and_then(|r| self.attempts.get(r * KINDS + kind as usize));
        with(
            slot,
            || vec.with_label_values(&[route, kind.class().as_str(), kind.as_str()]),
            IntCounter::inc,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_and_class_has_its_own_slot() {
        let kinds: std::collections::HashSet<usize> =
            Kind::ALL.iter().map(|k| *k as usize).collect();
        assert_eq!(kinds.len(), KINDS);
        assert!(kinds.iter().all(|&i| i < KINDS));
        let classes: std::collections::HashSet<usize> =
            Class::ALL.iter().map(|c| *c as usize).collect();
        assert_eq!(classes.len(), CLASSES);
        assert!(classes.iter().all(|&i| i < CLASSES));
    }

    #[test]
    fn a_cached_handle_is_the_labelled_series() {
        let vec = IntCounterVec::new(prometheus::Opts::new("t", "t"), &["route", "class", "kind"])
            .unwrap();
        let handles = Handles::new();
        let route = path::template("/v1/chat/completions");
        handles.attempt(&vec, route, Kind::RateLimited);
        handles.attempt(&vec, "/v1/chat/completions", Kind::RateLimited);
        handles.attempt(&vec, "/not/a/template", Kind::Ok);
        assert_eq!(
            vec.with_label_values(&[route, "hard", "rate_limited"])
                .get(),
            2
        );
        assert_eq!(
            vec.with_label_values(&["/not/a/template", "none", "ok"])
                .get(),
            1
        );
    }
}
