//! How long to wait before trying again: one [`Backoff`] for the session's retries, the token
//! endpoint's retries, the restarts of continuous tasks, and the sql source's and the disk
//! buffer's drain retries.
//!
//! Why one type: the three places want the same thing, a delay that doubles from `initial` up to
//! `max`, and differ only in how much chance goes into each delay. So the difference is a
//! parameter, [`Jitter`], and not three implementations of the same doubling:
//!
//! - the **session** (and the sql source and the drain, for the same reason) uses
//!   [`Jitter::Full`]: when an API falls over, every client sees the failure
//!   at the same moment, and a plain exponential backoff retries them all in lockstep, so the
//!   recovering API is hit by the same wave again and again. Drawing each delay uniformly from
//!   `[0, ceiling]` spreads the wave out while the expected wait keeps growing;
//! - the **token endpoint** uses [`Jitter::Additive`]: one process makes at most one token request
//!   at a time, so a guaranteed, growing pause matters more than spreading a herd; each delay is
//!   its ceiling plus up to as much again;
//! - **task restarts** use [`Jitter::None`]: 1 s, 2 s, 4 s … 60 s, exact, because a person reads
//!   them in the logs, and one process restarting one task makes no herd.
//!
//! [`Delays`] walks one sequence (one request's retries, one task's restarts) and can be reset,
//! e.g. after a run that stayed up long enough to count as healthy.

use std::time::Duration;

use rand::Rng;

/// How much chance goes into each delay; see the [module docs](self) for who uses which.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Jitter {
    /// Exactly the ceiling.
    None,
    /// Uniform in `[0, ceiling]`.
    Full,
    /// The ceiling plus a uniform share of it: `[ceiling, 2 × ceiling]`.
    Additive,
}

/// Delays whose ceiling doubles from `initial` up to `max`, drawn as `jitter` says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    jitter: Jitter,
}

impl Backoff {
    /// Ceilings `initial`, `2 × initial`, `4 × initial`, … never above `max` (raised to `initial`
    /// when below it).
    pub const fn new(initial: Duration, max: Duration, jitter: Jitter) -> Self {
        let max = if max.as_nanos() < initial.as_nanos() {
            initial
        } else {
            max
        };
        Self {
            initial,
            max,
            jitter,
        }
    }

    /// The largest ceiling; also the cap on a server's `Retry-After` where the caller wants one.
    pub fn max(&self) -> Duration {
        self.max
    }

    /// The ceiling of the delay before retry number `retry` (0 for the first retry).
    pub fn ceiling(&self, retry: u32) -> Duration {
        let factor = 1u32.checked_shl(retry.min(31)).unwrap_or(u32::MAX);
        self.initial
            .checked_mul(factor)
            .map_or(self.max, |ceiling| ceiling.min(self.max))
    }

    /// The delay before retry number `retry`, drawn from `rng` as the jitter says.
    pub fn delay(&self, retry: u32, rng: &mut impl Rng) -> Duration {
        let ceiling = self.ceiling(retry);
        let mut share = || {
            let nanos = u64::try_from(ceiling.as_nanos()).unwrap_or(u64::MAX);
            Duration::from_nanos(rng.random_range(0..=nanos))
        };
        match self.jitter {
            Jitter::None => ceiling,
            Jitter::Full => share(),
            Jitter::Additive => ceiling.saturating_add(share()),
        }
    }

    /// The sequence of delays of one series of retries, starting at retry 0.
    pub fn delays(&self) -> Delays {
        Delays {
            backoff: *self,
            retry: 0,
        }
    }
}

/// The endless delays of one series of retries; whoever drives it decides when to stop.
#[derive(Clone, Debug)]
pub struct Delays {
    backoff: Backoff,
    retry: u32,
}

impl Delays {
    /// Starts again from the first delay.
    pub fn reset(&mut self) {
        self.retry = 0;
    }
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
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    const MS: Duration = Duration::from_millis(1);
    const S: Duration = Duration::from_secs(1);

    #[test]
    fn ceilings_double_up_to_the_max() {
        let backoff = Backoff::new(50 * MS, 1000 * MS, Jitter::Full);
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
    fn full_jitter_stays_within_the_ceiling_and_uses_the_whole_range() {
        let backoff = Backoff::new(100 * MS, 10_000 * MS, Jitter::Full);
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
    fn full_jitter_average_grows_with_each_retry() {
        let backoff = Backoff::new(100 * MS, 60_000 * MS, Jitter::Full);
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
    fn additive_jitter_never_goes_below_the_ceiling_nor_above_twice_it() {
        let backoff = Backoff::new(250 * MS, 10 * S, Jitter::Additive);
        let mut rng = StdRng::seed_from_u64(3);
        for retry in 0..8 {
            let ceiling = backoff.ceiling(retry);
            let samples: Vec<_> = (0..300).map(|_| backoff.delay(retry, &mut rng)).collect();
            assert!(samples.iter().all(|d| *d >= ceiling && *d <= 2 * ceiling));
            assert!(samples.iter().any(|d| *d > ceiling * 3 / 2), "jitter added");
        }
        // So each pause is at least the floor of the one before, doubled.
        let floors: Vec<_> = (0..4).map(|n| backoff.ceiling(n)).collect();
        assert_eq!(floors, [250 * MS, 500 * MS, 1000 * MS, 2000 * MS]);
    }

    #[test]
    fn without_jitter_delays_double_cap_and_reset() {
        let mut delays = Backoff::new(S, 60 * S, Jitter::None).delays();
        let seconds: Vec<u64> = delays.by_ref().take(8).map(|d| d.as_secs()).collect();
        assert_eq!(seconds, [1, 2, 4, 8, 16, 32, 60, 60]);
        delays.reset();
        assert_eq!(delays.next(), Some(S));
        assert_eq!(delays.next(), Some(2 * S));
    }

    #[test]
    fn max_below_initial_is_raised_to_initial() {
        assert_eq!(Backoff::new(2 * MS, MS, Jitter::None).ceiling(3), 2 * MS);
    }

    #[test]
    fn huge_parameters_saturate_instead_of_panicking() {
        let backoff = Backoff::new(Duration::MAX, Duration::MAX, Jitter::Additive);
        let mut rng = StdRng::seed_from_u64(1);
        assert_eq!(backoff.delay(40, &mut rng), Duration::MAX);
    }
}
