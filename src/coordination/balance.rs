//! The arithmetic of balancing: how many leases a replica may hold, and which it gives up.

/// The most leases one replica may hold: ⌈tasks / live replicas⌉, so that the tasks fit on the
/// live replicas and none holds more than its share.
pub(super) fn fair_share(tasks: usize, members: usize) -> usize {
    tasks.div_ceil(members.max(1))
}

/// The leases to give up so that `held` fits in `share`: the last ones by name, so that a
/// replica's choice is stable from one round to the next.
pub(super) fn extras(mut held: Vec<String>, share: usize) -> Vec<String> {
    held.sort();
    held.split_off(share.min(held.len()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_share_is_the_ceiling_of_tasks_over_members() {
        assert_eq!(fair_share(12, 3), 4);
        assert_eq!(fair_share(12, 5), 3);
        assert_eq!(fair_share(1000, 10), 100);
        assert_eq!(fair_share(5, 0), 5);
        assert_eq!(fair_share(0, 3), 0);
    }

    #[test]
    fn extras_are_the_last_by_name() {
        let held = vec!["c".to_string(), "a".into(), "d".into(), "b".into()];
        assert_eq!(extras(held.clone(), 2), ["c", "d"]);
        assert!(extras(held, 4).is_empty());
    }
}
