//! Timeout budgets, by seed 002's formula:
//!
//! - operation time = Σ over operations of (operation timeout + pending timeout) + extra;
//! - total = operation time + lock timeout.
//!
//! The operations follow from the target: one exec per task for clean-service; exec, stop,
//! one upload per volume and start for backup-service; three prunes for clean-node.

use std::time::Duration;

use crate::Defaults;

/// How long a job may take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JobBudget {
    /// For the work, once the lock is held.
    pub operation: Duration,
    /// Lock wait included.
    pub total: Duration,
}

/// The budget for operations with these timeouts. The arithmetic saturates: however many
/// operations and however long their timeouts, it never panics (review finding 9).
pub fn budget(operations: &[Duration], defaults: &Defaults) -> JobBudget {
    let operation = operations
        .iter()
        .fold(Duration::ZERO, |sum, op| sum.saturating_add(op.saturating_add(defaults.pending_timeout)))
        .saturating_add(defaults.extra_timeout);
    JobBudget { operation, total: operation.saturating_add(defaults.lock_timeout) }
}

/// clean-service: one exec per task, each with `exec_timeout`.
pub fn clean_service(tasks: usize, exec_timeout: Duration, defaults: &Defaults) -> JobBudget {
    let per_task = exec_timeout.saturating_add(defaults.pending_timeout);
    let times = u32::try_from(tasks).unwrap_or(u32::MAX);
    let operation = per_task.saturating_mul(times).saturating_add(defaults.extra_timeout);
    JobBudget { operation, total: operation.saturating_add(defaults.lock_timeout) }
}

/// What a backup does, with each step's timeout (labels override the defaults).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BackupSteps {
    /// The exec before the backup, if any.
    pub exec: Option<Duration>,
    /// Stopping (scale to 0) and starting again, when `backup.stop` is set.
    pub stop_start: Option<(Duration, Duration)>,
    /// Volumes uploaded.
    pub volumes: usize,
    /// The timeout of one upload.
    pub upload: Duration,
}

/// backup-service: exec, stop, one upload per volume, start.
pub fn backup_service(steps: &BackupSteps, defaults: &Defaults) -> JobBudget {
    let mut ops: Vec<Duration> = steps.exec.into_iter().collect();
    if let Some((stop, start)) = steps.stop_start {
        ops.push(stop);
        ops.push(start);
    }
    ops.extend(std::iter::repeat_n(steps.upload, steps.volumes));
    budget(&ops, defaults)
}

/// clean-node: container, image and builder prunes.
pub fn clean_node(container: Duration, image: Duration, builder: Duration, defaults: &Defaults) -> JobBudget {
    budget(&[container, image, builder], defaults)
}

/// update-service: one update.
pub fn update_service(timeout: Duration, defaults: &Defaults) -> JobBudget {
    budget(&[timeout], defaults)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Review finding 9: no number of operations or length of timeouts panics.
        #[test]
        fn a_budget_never_panics(
            ops in proptest::collection::vec(any::<u64>(), 0..50),
            tasks in 0usize..5000,
            ms in any::<u64>(),
            pending in any::<u64>(),
        ) {
            let defaults = Defaults { pending_timeout: Duration::from_millis(pending), ..Defaults::default() };
            let ops: Vec<Duration> = ops.into_iter().map(Duration::from_millis).collect();
            let b = budget(&ops, &defaults);
            prop_assert!(b.total >= b.operation);
            let b = clean_service(tasks, Duration::from_millis(ms), &defaults);
            prop_assert!(b.total >= b.operation);
        }
    }

    #[test]
    fn a_thousand_tasks_at_the_largest_timeout_saturate() {
        let b = clean_service(1000, Duration::from_millis(u64::MAX), &Defaults::default());
        assert_eq!(b.total, Duration::MAX);
    }

    const fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn seed_clean_service_with_four_replicas() {
        // Seed 002: "clean-service, and the service has 4 replicas (4 tasks, on different
        // nodes) = execTimeout * 4", each with the pending timeout, plus extra and lock.
        let d = Defaults::default();
        let b = clean_service(4, d.clean_exec_timeout, &d);
        assert_eq!(b.operation, ms((60_000 + 20_000) * 4 + 10_000));
        assert_eq!(b.total, ms(330_000 + 10_000));
    }

    #[test]
    fn seed_mutex_timing_example() {
        // Seed 002: lock 10 s, execution 10 min, total 10 min 10 s: the total adds the
        // lock to the operation time.
        let d = Defaults {
            pending_timeout: Duration::ZERO,
            extra_timeout: Duration::ZERO,
            ..Defaults::default()
        };
        let b = budget(&[Duration::from_secs(600)], &d);
        assert_eq!((b.operation, b.total), (Duration::from_secs(600), Duration::from_secs(610)));
    }

    #[test]
    fn backup_clean_node_and_update() {
        let d = Defaults::default();
        let b = backup_service(
            &BackupSteps {
                exec: Some(d.backup_exec_timeout),
                stop_start: Some((d.backup_stop_timeout, d.backup_start_timeout)),
                volumes: 2,
                upload: d.backup_upload_timeout,
            },
            &d,
        );
        // exec 600 + stop 30 + start 300 + 2 uploads of 600, each + 20 pending, + 10 extra.
        assert_eq!(b.operation, ms(620_000 + 50_000 + 320_000 + 2 * 620_000 + 10_000));
        assert_eq!(b.total, b.operation + ms(10_000));

        let b = clean_node(
            d.clean_node_container_timeout,
            d.clean_node_image_timeout,
            d.clean_node_builder_timeout,
            &d,
        );
        assert_eq!((b.operation, b.total), (ms(3 * 80_000 + 10_000), ms(260_000)));

        // A label's timeout replaces the default for its operation only.
        let b = update_service(ms(5_000), &d);
        assert_eq!((b.operation, b.total), (ms(35_000), ms(45_000)));

        // No volumes, no exec, no stop: only the extra time is left.
        let b = backup_service(
            &BackupSteps { exec: None, stop_start: None, volumes: 0, upload: d.backup_upload_timeout },
            &d,
        );
        assert_eq!(b.operation, d.extra_timeout);
    }
}
