//! When a task runs next, from its `schedule:`.
//!
//! Cron expressions are parsed by [`crate::config::CronSchedule::parse`]: five fields (minute first) or six
//! (seconds first), evaluated in UTC.

use std::time::Duration;

use chrono::Utc;

use crate::backoff::{Backoff, Delays, Jitter};
use crate::config::{self, ScheduleName};

/// A task's schedule, ready to compute wake-up times.
#[derive(Debug, Clone)]
pub enum Schedule {
    /// Once, before every other task.
    Startup,
    /// Runs for as long as it goes on; started again after a `RESTART_BACKOFF` delay when it returns.
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
    pub fn from_config(schedule: &config::ScheduleConfig) -> Result<Self, String> {
        Ok(match schedule {
            config::ScheduleConfig::Named(ScheduleName::Startup) => Self::Startup,
            config::ScheduleConfig::Named(ScheduleName::Continuous) => Self::Continuous,
            config::ScheduleConfig::Interval(interval) => Self::Interval {
                first: interval.initial_delay.map(|d| d.get()).unwrap_or_default(),
                every: interval.interval.get(),
            },
            config::ScheduleConfig::Cron(cron) => Self::Cron(Box::new(cron.parse()?)),
        })
    }

    /// How long from now until the next cron time; `None` when the expression has no next time.
    pub fn until_next_cron(cron: &croner::Cron) -> Option<Duration> {
        let now = Utc::now();
        let next = cron.find_next_occurrence(&now, false).ok()?;
        Some((next - now).to_std().unwrap_or_default())
    }
}

/// The restart delays of continuous tasks: 1 s, doubling up to 60 s, exact (a person reads them
/// in the logs, and one process restarting one task makes no herd to spread).
pub const RESTART_BACKOFF: Backoff = Backoff::new(
    Duration::from_secs(1),
    Duration::from_secs(60),
    Jitter::None,
);

/// A run that stayed up this long was healthy: the restart after it starts again from 1 s.
pub const HEALTHY_RUN: Duration = Duration::from_secs(600);

/// The delay before restarting a continuous task whose last run lasted `ran_for`, from its
/// sequence of [`RESTART_BACKOFF`] delays.
pub fn restart_delay(delays: &mut Delays, ran_for: Duration) -> Duration {
    if ran_for >= HEALTHY_RUN {
        delays.reset();
    }
    delays.next().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restart_delays_double_cap_and_reset_after_a_healthy_run() {
        let mut backoff = RESTART_BACKOFF.delays();
        let short = Duration::from_secs(1);
        let delays: Vec<u64> = (0..8)
            .map(|_| restart_delay(&mut backoff, short).as_secs())
            .collect();
        assert_eq!(delays, [1, 2, 4, 8, 16, 32, 60, 60]);
        assert_eq!(
            restart_delay(&mut backoff, HEALTHY_RUN),
            Duration::from_secs(1)
        );
        assert_eq!(restart_delay(&mut backoff, short), Duration::from_secs(2));
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
