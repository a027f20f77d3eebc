//! When a task runs next, from its `schedule:`.
//!
//! Cron expressions are parsed by [`crate::config::CronSchedule::parse`]: five fields (minute first) or six
//! (seconds first), evaluated in UTC.

use std::time::Duration;

use chrono::Utc;

use crate::config::{self, ScheduleName};

/// A task's schedule, ready to compute wake-up times.
#[derive(Debug, Clone)]
pub enum Schedule {
    /// Once, before every other task.
    Startup,
    /// Runs for as long as it goes on; started again with [`RestartBackoff`] when it returns.
    Continuous,
    /// Every `every`, the first run after `first` (zero by default).
    Interval {
        /// Delay before the first run.
        first: Duration,
        /// Time between the starts of two runs.
        every: Duration,
    },
    /// At the times of a cron expression, in UTC.
    Cron(Box<croner::Cron>),
}

impl Schedule {
    /// The schedule the config describes; fails only on a cron expression that does not parse
    /// (which `config::load` already reports).
    pub fn from_config(schedule: &config::Schedule) -> Result<Self, String> {
        Ok(match schedule {
            config::Schedule::Named(ScheduleName::Startup) => Self::Startup,
            config::Schedule::Named(ScheduleName::Continuous) => Self::Continuous,
            config::Schedule::Interval(interval) => Self::Interval {
                first: interval.initial_delay.map(|d| d.get()).unwrap_or_default(),
                every: interval.interval.get(),
            },
            config::Schedule::Cron(cron) => Self::Cron(Box::new(cron.parse()?)),
        })
    }

    /// How long from now until the next cron time; `None` when the expression has no next time.
    pub fn until_next_cron(cron: &croner::Cron) -> Option<Duration> {
        let now = Utc::now();
        let next = cron.find_next_occurrence(&now, false).ok()?;
        Some((next - now).to_std().unwrap_or_default())
    }
}

/// The restart delay of continuous tasks: 1 s, doubling up to 60 s, back to 1 s after a run that
/// stayed up for 10 minutes.
#[derive(Debug, Clone)]
pub struct RestartBackoff {
    next: Duration,
    min: Duration,
    max: Duration,
    healthy_after: Duration,
}

impl Default for RestartBackoff {
    fn default() -> Self {
        Self::new(
            Duration::from_secs(1),
            Duration::from_secs(60),
            Duration::from_secs(600),
        )
    }
}

impl RestartBackoff {
    /// A backoff from `min` doubling to `max`, reset by a run that lasted `healthy_after`.
    pub fn new(min: Duration, max: Duration, healthy_after: Duration) -> Self {
        Self {
            next: min,
            min,
            max,
            healthy_after,
        }
    }

    /// The delay before restarting a run that lasted `ran_for`.
    pub fn delay(&mut self, ran_for: Duration) -> Duration {
        if ran_for >= self.healthy_after {
            self.next = self.min;
        }
        let delay = self.next;
        self.next = (self.next * 2).min(self.max);
        delay
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_caps_and_resets() {
        let mut backoff = RestartBackoff::default();
        let short = Duration::from_secs(1);
        let delays: Vec<u64> = (0..8).map(|_| backoff.delay(short).as_secs()).collect();
        assert_eq!(delays, [1, 2, 4, 8, 16, 32, 60, 60]);
        assert_eq!(
            backoff.delay(Duration::from_secs(600)),
            Duration::from_secs(1)
        );
        assert_eq!(backoff.delay(short), Duration::from_secs(2));
    }

    #[test]
    fn per_second_cron_is_due_within_a_second() {
        let cron = config::CronSchedule {
            cron: "* * * * * *".into(),
        };
        let parsed = cron.parse().unwrap();
        assert!(Schedule::until_next_cron(&parsed).unwrap() <= Duration::from_secs(1));
    }
}
