//! [`cores`]: how many cores this process may use, found once.
//!
//! Why once: `std::thread::available_parallelism` reads the cgroup's CPU quota from `/sys` at
//! every call (several files opened and read), and a `sql` run asks at every page.

use std::sync::OnceLock;

/// The cores this process may use (the cgroup's quota counts), at least 1.
pub(crate) fn cores() -> usize {
    static CORES: OnceLock<usize> = OnceLock::new();
    *CORES.get_or_init(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}
