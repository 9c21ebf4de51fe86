//! Failpoints: named places where a test makes the process die at once, as
//! `kill -9` would, or loses a message, as a node dying would, to check
//! what survives.
//!
//! A `tessera` process started with `TESSERA_FAILPOINTS=name[,name...]`
//! aborts (or loses the message) when it reaches one of the named places.
//! Without the variable, each place costs one read of an initialized cell.

use std::sync::OnceLock;

/// After every prewrite of a two-phase commit succeeded, before the commit
/// point. (For an asynchronous commit, the prewrites were its commit point:
/// it is committed, and its locks are rolled forward by whoever meets them.)
pub const AFTER_PREWRITE: &str = "txn-after-prewrite";

/// Just after the primary key's commit (the commit point), before the
/// client is answered and the secondaries are committed.
pub const AFTER_PRIMARY_COMMIT: &str = "txn-after-primary-commit";

/// The commit point's request (a one-phase commit, the primary's commit, or
/// an asynchronous commit's prewrite of its primary) is lost before it is
/// sent: the coordinator sees it fail as if the cluster did not answer.
pub const COMMIT_REQUEST_LOST: &str = "txn-commit-request-lost";

/// The commit point's answer (for an asynchronous commit, every prewrite's)
/// is lost after the commit applied, as when the node that applied it dies
/// before answering.
pub const COMMIT_ANSWER_LOST: &str = "txn-commit-answer-lost";

/// After a Raft turn wrote the entries it applied early (committed in
/// earlier turns), before it writes its new entries and hard state, when
/// that hard state commits entries the turn has yet to write.
pub const RAFT_AFTER_EARLY_APPLY: &str = "raft-after-early-apply";

/// After a range prepared a split, before the meta range records the two
/// ranges (the split's commit point).
pub const SPLIT_BEFORE_META: &str = "split-before-meta";

/// After the meta range recorded a split, before the range applies it.
pub const SPLIT_AFTER_META: &str = "split-after-meta";

/// After a merge froze the right range and every replica applied the
/// freeze, before the left range is asked to absorb it.
pub const MERGE_AFTER_FREEZE: &str = "merge-after-freeze";

/// A relocation's last membership change (leaving the joint configuration)
/// applied, and its first answer is lost: the gateway sees the range changed
/// under it, as when the answer went missing and the request, sent again,
/// met the range at its new generation.
pub const RELOCATE_ANSWER_LOST: &str = "relocate-answer-lost";

fn armed() -> &'static [String] {
    static ARMED: OnceLock<Vec<String>> = OnceLock::new();
    ARMED.get_or_init(|| {
        std::env::var("TESSERA_FAILPOINTS")
            .unwrap_or_default()
            .split(',')
            .map(|name| name.trim().to_string())
            .filter(|name| !name.is_empty())
            .collect()
    })
}

/// Whether the failpoint `name` is armed.
pub fn is_armed(name: &str) -> bool {
    armed().iter().any(|armed| armed == name)
}

/// Aborts the process if the failpoint `name` is armed.
pub fn crash_if_armed(name: &str) {
    if is_armed(name) {
        eprintln!("failpoint {name} reached: aborting the process");
        std::process::abort();
    }
}
