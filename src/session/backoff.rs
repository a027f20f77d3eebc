//! How long to wait before a retry when the server did not say: exponential growth with full
//! jitter.
//!
//! Why full jitter: when an API falls over, every client sees the failure at the same moment. A
//! plain exponential backoff retries them all in lockstep, so the recovering API is hit by the
//! same wave again and again. Drawing each delay uniformly from `[0, ceiling]`, with the ceiling
//! doubling from `initial-backoff` up to `max-backoff`, spreads the wave out while keeping the
//! expected wait growing.
//!
//! [`Backoff`] is usable on its own: it is a [`backon::BackoffBuilder`], so it also plugs into
//! backon's `Retryable` for code outside the session.

use std::time::Duration;

use rand::Rng;

/// Exponential backoff with full jitter, from `initial` up to `max`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
}

impl Backoff {
    /// Ceilings `initial`, `2 × initial`, `4 × initial`, … never above `max`.
    pub fn new(initial: Duration, max: Duration) -> Self {
        Self {
            initial,
            max: max.max(initial),
        }
    }

    /// The upper bound of the delay before retry number `retry` (0 for the first retry).
    pub fn ceiling(&self, retry: u32) -> Duration {
        let factor = 1u32.checked_shl(retry.min(31)).unwrap_or(u32::MAX);
        self.initial
            .checked_mul(factor)
            .map_or(self.max, |ceiling| ceiling.min(self.max))
    }

    /// A delay drawn uniformly from `[0, ceiling(retry)]`.
    pub fn delay(&self, retry: u32, rng: &mut impl Rng) -> Duration {
        let ceiling = self.ceiling(retry);
        let nanos = u64::try_from(ceiling.as_nanos()).unwrap_or(u64::MAX);
        Duration::from_nanos(rng.random_range(0..=nanos))
    }
}

impl backon::BackoffBuilder for Backoff {
    type Backoff = Delays;

    fn build(self) -> Delays {
        Delays {
            backoff: self,
            retry: 0,
        }
    }
}

/// The endless sequence of jittered delays of one request; the [`super::RetryPolicy`] decides
/// when to stop.
#[derive(Debug)]
pub struct Delays {
    backoff: Backoff,
    retry: u32,
}

impl Iterator for Delays {
    type Item = Duration;

    fn next(&mut self) -> Option<Duration> {
        let delay = self.backoff.delay(self.retry, &mut rand::rng());
        self.retry = self.retry.saturating_add(1);
        Some(delay)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use backon::BackoffBuilder;
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn ceilings_double_up_to_the_max() {
        let backoff = Backoff::new(50 * MS, 1000 * MS);
        let ceilings: Vec<_> = (0..7).map(|n| backoff.ceiling(n)).collect();
        assert_eq!(
            ceilings,
            [
                50 * MS,
                100 * MS,
                200 * MS,
                400 * MS,
                800 * MS,
                1000 * MS,
                1000 * MS
            ]
        );
        assert_eq!(backoff.ceiling(u32::MAX), 1000 * MS);
    }

    #[test]
    fn delays_stay_within_their_ceiling_and_use_the_whole_range() {
        let backoff = Backoff::new(100 * MS, 10_000 * MS);
        let mut rng = StdRng::seed_from_u64(7);
        for retry in 0..6 {
            let samples: Vec<_> = (0..500).map(|_| backoff.delay(retry, &mut rng)).collect();
            let ceiling = backoff.ceiling(retry);
            assert!(samples.iter().all(|d| *d <= ceiling));
            assert!(
                samples.iter().any(|d| *d < ceiling / 4),
                "full jitter reaches low"
            );
            assert!(samples.iter().any(|d| *d > ceiling * 3 / 4), "and high");
        }
    }

    #[test]
    fn average_delay_grows_with_each_retry() {
        let backoff = Backoff::new(100 * MS, 60_000 * MS);
        let mut rng = StdRng::seed_from_u64(11);
        let means: Vec<Duration> = (0..5)
            .map(|retry| {
                (0..400)
                    .map(|_| backoff.delay(retry, &mut rng))
                    .sum::<Duration>()
                    / 400
            })
            .collect();
        assert!(means.windows(2).all(|w| w[0] < w[1]), "{means:?}");
    }

    #[test]
    fn max_below_initial_is_raised_to_initial() {
        assert_eq!(Backoff::new(2 * MS, MS).ceiling(3), 2 * MS);
    }

    #[test]
    fn is_a_backon_builder() {
        let mut delays = Backoff::new(10 * MS, 20 * MS).build();
        assert!(delays.by_ref().take(10).all(|d| d <= 20 * MS));
    }
}
