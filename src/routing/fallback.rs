//! Falling over: after an attempt on one target of a [`Plan`] failed, which
//! target (if any) the next attempt goes to. The retry budget and the
//! deadline are the caller's: they cover the whole chain.
//!
//! With the default `fallback_on`, per kind:
//!
//! | kind | falls over |
//! |---|---|
//! | `rate_limited`, `server_error`, `timeout`, `connect_error`, `bad_upstream_response` | yes, to the next available target |
//! | `context_length_exceeded` | only to a later target whose window is known and larger than the current one's (listed or not) |
//! | `content_filter` (soft, or a 400 rejection) | no — only when the rule names it |
//! | `bad_request`, `unauthorized`, `forbidden`, `not_found` | never (validation refuses naming them) |
//! | `ok` | never |
//! | every other kind | no — only when the rule names it |

use crate::taxonomy::Kind;

use super::plan::{Plan, Target};

/// The position in `plan.targets` of the next target to try after the one
/// at `current` failed with `kind`, or `None` to stop falling over.
///
/// A target for which `available` is false (its circuit is open) is
/// skipped. `context_length_exceeded` goes only to a later target whose
/// `context_window` is known and strictly larger than the current one's —
/// when the current one's is unknown, to any with a known window — whether
/// `fallback_on` lists it or not. Any other kind falls over only when
/// `plan.fallback_on` contains it.
pub fn next_target(
    plan: &Plan,
    current: usize,
    kind: Kind,
    mut available: impl FnMut(&Target) -> bool,
) -> Option<usize> {
    let from = plan.targets.get(current)?;
    // `Some(w)`: only a target with a known window larger than `w` fits.
    let larger_than = if kind == Kind::ContextLengthExceeded {
        Some(from.context_window)
    } else if kind != Kind::Ok && plan.fallback_on.contains(kind) {
        None
    } else {
        return None;
    };
    let fits =
        |t: &Target| larger_than.is_none_or(|w| t.context_window != 0 && t.context_window > w);
    plan.targets
        .iter()
        .enumerate()
        .skip(current + 1)
        .find(|(_, t)| fits(t) && available(t))
        .map(|(i, _)| i)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::DEFAULT_FALLBACK_ON;
    use crate::routing::KindSet;

    fn target(index: usize, context_window: u64) -> Target {
        Target {
            index,
            upstream: format!("u{index}"),
            model: None,
            context_window,
            prefill: false,
            first_token_timeout: None,
        }
    }

    /// Windows: unknown, 8k, 128k, unknown, 200k.
    fn plan(fallback_on: &[Kind]) -> Plan {
        Plan {
            route: Some("r".into()),
            targets: [0, 8_000, 128_000, 0, 200_000]
                .into_iter()
                .enumerate()
                .map(|(i, w)| target(i, w))
                .collect(),
            fallback_on: KindSet::of(fallback_on),
            repair_streams: false,
            attempts_per_target: 2,
            hedge_after: None,
        }
    }

    fn all(_: &Target) -> bool {
        true
    }

    #[test]
    fn the_default_table_row_by_row() {
        let p = plan(&DEFAULT_FALLBACK_ON);
        let expected = |kind: Kind| -> Option<usize> {
            match kind {
                Kind::RateLimited
                | Kind::ServerError
                | Kind::Timeout
                | Kind::ConnectError
                | Kind::BadUpstreamResponse => Some(2),
                // from 8k: 128k is the next larger known window
                Kind::ContextLengthExceeded => Some(2),
                Kind::Ok
                | Kind::BadRequest
                | Kind::Unauthorized
                | Kind::Forbidden
                | Kind::QuotaExceeded
                | Kind::NotFound
                | Kind::PayloadTooLarge
                | Kind::ContentFilter
                | Kind::Length
                | Kind::EmptyData
                | Kind::EmptyContent
                | Kind::InvalidJson
                | Kind::SchemaMismatch
                | Kind::StreamTruncated
                | Kind::MalformedEvent
                | Kind::Overloaded
                | Kind::ClientClosed
                | Kind::Shutdown => None,
            }
        };
        for kind in Kind::ALL {
            assert_eq!(next_target(&p, 1, kind, all), expected(kind), "{kind}");
        }
    }

    #[test]
    fn content_filter_falls_over_only_when_named() {
        let named = plan(&[Kind::ContentFilter]);
        assert_eq!(next_target(&named, 0, Kind::ContentFilter, all), Some(1));
        assert_eq!(next_target(&named, 0, Kind::Timeout, all), None);
        let default = plan(&DEFAULT_FALLBACK_ON);
        assert_eq!(next_target(&default, 0, Kind::ContentFilter, all), None);
    }

    #[test]
    fn context_length_goes_only_to_a_known_larger_window() {
        let listed = plan(&[Kind::ContextLengthExceeded]);
        let unlisted = plan(&[]);
        // (current, expected): windows are [?, 8k, 128k, ?, 200k]
        let cases: &[(usize, Option<usize>)] = &[
            (0, Some(1)), // unknown → the first known window
            (1, Some(2)),
            (2, Some(4)), // skips the unknown one
            (3, Some(4)),
            (4, None), // last, and nothing larger
            (9, None), // out of range
        ];
        for (current, expected) in cases {
            for p in [&listed, &unlisted] {
                assert_eq!(
                    next_target(p, *current, Kind::ContextLengthExceeded, all),
                    *expected,
                    "from {current}"
                );
            }
        }
        // Equal is not larger.
        let mut same = plan(&[]);
        same.targets[2].context_window = 8_000;
        assert_eq!(
            next_target(&same, 1, Kind::ContextLengthExceeded, all),
            Some(4)
        );
    }

    #[test]
    fn unavailable_targets_are_skipped() {
        let p = plan(&DEFAULT_FALLBACK_ON);
        let open = |closed: &'static [usize]| move |t: &Target| !closed.contains(&t.index);
        assert_eq!(
            next_target(&p, 0, Kind::ServerError, open(&[1, 2])),
            Some(3)
        );
        assert_eq!(
            next_target(&p, 0, Kind::ServerError, open(&[1, 2, 3, 4])),
            None
        );
        assert_eq!(
            next_target(&p, 1, Kind::ContextLengthExceeded, open(&[2])),
            Some(4)
        );
        assert_eq!(next_target(&p, 4, Kind::Timeout, all), None);
    }
}
