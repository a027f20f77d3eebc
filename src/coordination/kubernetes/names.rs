//! Object names and labels: every name the backend gives a Lease or a ConfigMap.
//!
//! Why a hash: task and replica names are free text, Kubernetes names are RFC 1123 (lower-case
//! letters, digits, `-`, `.`). A name that is already valid is kept as it is, so `kubectl get
//! leases` reads naturally; any other is lower-cased, its other characters replaced by `-`, and a
//! hash of the original appended, so that two tasks never share an object.

/// The label every object of one `lease-prefix` carries: the one `list` selects on.
pub const PREFIX_LABEL: &str = "tapline.io/lease-prefix";
/// `task` or `member`.
pub const ROLE_LABEL: &str = "tapline.io/role";
/// The task's name as configured (names may have been rewritten).
pub const TASK_ANNOTATION: &str = "tapline.io/task";

/// The longest name part taken from a task or replica name (object names end at 253).
const MAX_PART: usize = 180;

/// The Lease (and the ConfigMap) of `task`: `<prefix>-<task>`.
pub fn task_object(prefix: &str, task: &str) -> String {
    format!("{prefix}-{}", part(task))
}

/// The membership Lease of `replica`: `<prefix>.member.<replica>`. The dots keep it apart from
/// every task Lease, whose task part never holds one.
pub fn member_object(prefix: &str, replica: &str) -> String {
    format!("{prefix}.member.{}", part(replica))
}

/// `name` as a name part: as it is when already valid, else rewritten with a hash appended.
fn part(name: &str) -> String {
    let valid = !name.is_empty()
        && name.len() <= MAX_PART
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !name.ends_with('-');
    if valid {
        return name.to_string();
    }
    let cleaned: String = name
        .chars()
        .map(|c| match c.to_ascii_lowercase() {
            c @ ('a'..='z' | '0'..='9') => c,
            _ => '-',
        })
        .take(MAX_PART)
        .collect();
    let cleaned = cleaned.trim_matches('-');
    format!("{cleaned}-{:08x}", fnv1a(name))
        .trim_start_matches('-')
        .to_string()
}

/// FNV-1a, 32 bits: stable across versions and platforms (object names must not change).
fn fnv1a(text: &str) -> u32 {
    text.bytes().fold(0x811c_9dc5, |hash, byte| {
        (hash ^ u32::from(byte)).wrapping_mul(0x0100_0193)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_names_are_kept_and_others_rewritten_apart() {
        assert_eq!(task_object("tl", "readings-1"), "tl-readings-1");
        assert_eq!(member_object("tl", "pod-0"), "tl.member.pod-0");
        let a = task_object("tl", "Readings A");
        let b = task_object("tl", "readings-a");
        let c = task_object("tl", "readings_a");
        assert!(a.starts_with("tl-readings-a-"), "{a}");
        assert_ne!(a, b);
        assert_ne!(a, c);
        assert_ne!(task_object("tl", "_"), task_object("tl", "__"));
        for name in [a, c, task_object("tl", "_")] {
            assert!(name
                .chars()
                .all(|ch| ch.is_ascii_lowercase() || ch.is_ascii_digit() || ch == '-'));
            assert!(!name.ends_with('-'), "{name}");
        }
    }
}
