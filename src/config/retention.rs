//! The retention job's settings (docs/retention.md): the ages at which traces move to the
//! archive, leave the archive and export artefacts expire, the batch size, and the optional
//! in-server timer.

use std::time::Duration;

/// Ages in days and how the job runs. The defaults are the contracted retention.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetentionSettings {
    /// How often each server process runs the job (`--retention-interval`); `None`: never
    /// (`logbook retention run` from a scheduler instead).
    pub interval: Option<Duration>,
    /// Traces created more than this many days ago move to the archive (90).
    pub archive_after_days: u32,
    /// Archived traces created more than this many days ago are deleted, with their steps (365).
    pub delete_after_days: u32,
    /// Export artefacts (files) of exports finished more than this many days ago are deleted
    /// (365).
    pub export_after_days: u32,
    /// Rows per transaction.
    pub batch: u64,
}

impl Default for RetentionSettings {
    fn default() -> Self {
        RetentionSettings {
            interval: None,
            archive_after_days: 90,
            delete_after_days: 365,
            export_after_days: 365,
            batch: 500,
        }
    }
}

/// Largest batch: a transaction of more rows would hold its locks too long.
pub const MAX_RETENTION_BATCH: u64 = 10_000;

impl RetentionSettings {
    /// Refuses ages of zero (everything would go at once), a delete age not beyond the archive
    /// age (traces would leave the archive as they enter it) and a batch outside 1..=10 000.
    pub fn check(&self) -> Result<(), String> {
        if self.archive_after_days == 0 || self.export_after_days == 0 {
            return Err("retention ages must be at least 1 day".into());
        }
        if self.delete_after_days <= self.archive_after_days {
            return Err(format!(
                "--retention-delete-days ({}) must be more than --retention-archive-days ({})",
                self.delete_after_days, self.archive_after_days
            ));
        }
        if self.batch == 0 || self.batch > MAX_RETENTION_BATCH {
            return Err(format!(
                "--retention-batch must be 1 to {MAX_RETENTION_BATCH}"
            ));
        }
        if self.interval == Some(Duration::ZERO) {
            return Err("--retention-interval must be at least 1 second".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_the_contract_and_bad_ages_are_refused() {
        let ok = RetentionSettings::default();
        assert_eq!(ok.check(), Ok(()));
        assert_eq!((ok.archive_after_days, ok.delete_after_days), (90, 365));
        assert!(ok.interval.is_none());
        let with = |f: fn(&mut RetentionSettings)| {
            let mut s = RetentionSettings::default();
            f(&mut s);
            s.check()
        };
        assert!(with(|s| s.archive_after_days = 0).is_err());
        assert!(with(|s| s.delete_after_days = 90).is_err());
        assert!(with(|s| s.batch = 0).is_err());
        assert!(with(|s| s.batch = MAX_RETENTION_BATCH + 1).is_err());
        assert!(with(|s| s.interval = Some(Duration::ZERO)).is_err());
    }
}
