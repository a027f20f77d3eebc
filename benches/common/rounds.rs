//! One number out of a benchmark's rounds of throughput (higher is better), shared by the
//! benches through `#[path]`: they alternate their sides round by round, so that noise from
//! other processes hits both alike, and report the median and the best round of each.

/// Picks one number out of the rounds.
pub type Pick = fn(&mut [f64]) -> f64;

/// What the benches report, in this order.
pub const PICKS: [(&str, Pick); 2] = [("median", median), ("best", best)];

/// The middle round (the upper one of an even count).
pub fn median(rounds: &mut [f64]) -> f64 {
    rounds.sort_by(f64::total_cmp);
    rounds[rounds.len() / 2]
}

/// The fastest round.
pub fn best(rounds: &mut [f64]) -> f64 {
    rounds.iter().copied().fold(0.0, f64::max)
}
