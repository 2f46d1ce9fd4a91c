//! How long to wait between attempts.
//!
//! Pure arithmetic for the retry chain: exponential backoff with "full
//! jitter" (AWS Architecture Blog, "Exponential Backoff And Jitter"), which
//! spreads retries of many clients uniformly instead of in synchronized
//! waves. The caller owns the random number generator, so tests are
//! deterministic.

use std::time::Duration;

use rand::Rng;

/// The backoff ceiling before retry number `retry` (0 for the first retry):
/// `min(max, base · 2^retry)`, saturating instead of overflowing.
pub fn ceiling(retry: u32, base: Duration, max: Duration) -> Duration {
    let exponential = 1u32
        .checked_shl(retry)
        .map_or(Duration::MAX, |factor| base.saturating_mul(factor));
    exponential.min(max)
}

/// A wait drawn uniformly from `[0, min(max, base · 2^retry)]` (both ends
/// included), at nanosecond resolution. `retry` counts from 0 for the first
/// retry; any value is safe.
pub fn full_jitter(retry: u32, base: Duration, max: Duration, rng: &mut impl Rng) -> Duration {
    // Ceilings beyond u64 nanoseconds (~584 years) are clamped there.
    let cap = u64::try_from(ceiling(retry, base, max).as_nanos()).unwrap_or(u64::MAX);
    Duration::from_nanos(rng.random_range(0..=cap))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    const MS: fn(u64) -> Duration = Duration::from_millis;

    #[test]
    fn ceiling_doubles_then_caps_and_never_overflows() {
        let cases = [
            (0, MS(500), MS(8000), MS(500)),
            (1, MS(500), MS(8000), MS(1000)),
            (2, MS(500), MS(8000), MS(2000)),
            (4, MS(500), MS(8000), MS(8000)),
            (5, MS(500), MS(8000), MS(8000)),
            (31, MS(500), MS(8000), MS(8000)),
            (32, MS(500), MS(8000), MS(8000)),
            (u32::MAX, MS(500), MS(8000), MS(8000)),
            (40, MS(500), Duration::MAX, Duration::MAX),
            (3, Duration::ZERO, MS(8000), Duration::ZERO),
            (0, MS(500), Duration::ZERO, Duration::ZERO),
        ];
        for (retry, base, max, expected) in cases {
            assert_eq!(ceiling(retry, base, max), expected, "retry {retry}");
        }
    }

    #[test]
    fn full_jitter_stays_within_bounds_over_many_draws() {
        let mut rng = StdRng::seed_from_u64(7);
        for retry in 0..8u32 {
            let cap = ceiling(retry, MS(500), MS(8000));
            let draws: Vec<Duration> = (0..2000)
                .map(|_| full_jitter(retry, MS(500), MS(8000), &mut rng))
                .collect();
            assert!(draws.iter().all(|d| *d <= cap), "retry {retry}");
            // Uniform over the whole range: both halves are hit.
            assert!(draws.iter().any(|d| *d < cap / 4), "retry {retry}");
            assert!(draws.iter().any(|d| *d > cap * 3 / 4), "retry {retry}");
        }
    }

    #[test]
    fn full_jitter_edges() {
        let mut rng = StdRng::seed_from_u64(42);
        // A zero ceiling can only give zero.
        assert_eq!(
            full_jitter(3, Duration::ZERO, MS(8000), &mut rng),
            Duration::ZERO
        );
        assert_eq!(
            full_jitter(0, MS(500), Duration::ZERO, &mut rng),
            Duration::ZERO
        );
        // A one-nanosecond ceiling: both ends are reachable.
        let draws: Vec<Duration> = (0..200)
            .map(|_| full_jitter(0, Duration::from_nanos(1), MS(1), &mut rng))
            .collect();
        assert!(draws.contains(&Duration::ZERO));
        assert!(draws.contains(&Duration::from_nanos(1)));
        // Huge exponents and ceilings do not panic.
        let huge = full_jitter(u32::MAX, Duration::MAX, Duration::MAX, &mut rng);
        assert!(huge <= Duration::from_nanos(u64::MAX));
        // Same seed, same sequence.
        let mut a = StdRng::seed_from_u64(1);
        let mut b = StdRng::seed_from_u64(1);
        assert_eq!(
            full_jitter(2, MS(500), MS(8000), &mut a),
            full_jitter(2, MS(500), MS(8000), &mut b)
        );
    }
}
