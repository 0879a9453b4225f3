//! The confidence calculator, version `CONFIDENCE_V1` (docs/domain.md §13.1): pure arithmetic on
//! frozen constants, no I/O. It grades a recovery's confidence from whether its pattern matched
//! strongly and how often it was seen, and maps any confidence to a band and the number of human
//! confirmations the platform asks for before applying a policy.
//!
//! Confidences are computed in whole percentage points and divided once at the end, so the
//! boosted values are the nearest doubles to 0.6, 0.8 and 0.9 (`0.7 + 0.2` in floating point
//! would be `0.8999999999999999`).

use crate::closed_set::closed_set;

/// The calculator version stored with every activation (`confidence_version`).
pub const VERSION: &str = "CONFIDENCE_V1";
/// At or above: a strong match; auto-apply is possible.
pub const STRONG_MATCH_THRESHOLD: f64 = 0.85;
/// At or above (and below the strong threshold): a weak match.
pub const WEAK_MATCH_THRESHOLD: f64 = 0.6;
/// Occurrences at or above which auto-apply is possible (with a strong confidence).
pub const AUTO_APPLY_MIN_OCCURRENCES: i32 = 3;

/// Base confidence, in percentage points, of a strong and of a weak pattern match.
const STRONG_BASE: u32 = 70;
const WEAK_BASE: u32 = 50;
/// Boosts for 2 and for 3 or more occurrences, and the cap, in percentage points.
const BOOST_TWO: u32 = 10;
const BOOST_THREE: u32 = 20;
const CAP: u32 = 90;

closed_set! {
    /// Where a confidence falls: `STRONG_MATCH` (at least 0.85; may be applied automatically),
    /// `WEAK_MATCH` (at least 0.6) or `NOVEL`; the latter two need human review.
    #[derive(async_graphql::Enum, serde::Serialize, serde::Deserialize)]
    #[serde(rename_all = "SCREAMING_SNAKE_CASE")]
    pub enum ConfidenceBand {
        StrongMatch => "STRONG_MATCH",
        WeakMatch => "WEAK_MATCH",
        Novel => "NOVEL",
    }
}

/// The band of `confidence`.
pub fn band(confidence: f64) -> ConfidenceBand {
    if confidence >= STRONG_MATCH_THRESHOLD {
        ConfidenceBand::StrongMatch
    } else if confidence >= WEAK_MATCH_THRESHOLD {
        ConfidenceBand::WeakMatch
    } else {
        ConfidenceBand::Novel
    }
}

/// Human confirmations needed before a policy of this confidence is applied: 0 (auto-apply),
/// 1 (single confirmation) or 2 (double confirmation).
pub fn confirmation_level(confidence: f64) -> i32 {
    match band(confidence) {
        ConfidenceBand::StrongMatch => 0,
        ConfidenceBand::WeakMatch => 1,
        ConfidenceBand::Novel => 2,
    }
}

/// Whether a policy may be applied without a human: a strong confidence and, where the number
/// of occurrences is known, at least [`AUTO_APPLY_MIN_OCCURRENCES`] of them.
pub fn auto_apply_allowed(confidence: f64, occurrences: Option<i32>) -> bool {
    band(confidence) == ConfidenceBand::StrongMatch
        && occurrences.is_none_or(|n| n >= AUTO_APPLY_MIN_OCCURRENCES)
}

/// The result of [`recovery_confidence`], with how it was reached.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RecoveryConfidence {
    pub base_confidence: f64,
    pub occurrence_count: i32,
    /// What the occurrences added (0, 0.1 or 0.2).
    pub boost_applied: f64,
    /// `min(0.90, base + boost)`.
    pub final_confidence: f64,
}

impl RecoveryConfidence {
    pub fn band(&self) -> ConfidenceBand {
        band(self.final_confidence)
    }

    pub fn confirmation_level(&self) -> i32 {
        confirmation_level(self.final_confidence)
    }

    pub fn auto_apply_allowed(&self) -> bool {
        auto_apply_allowed(self.final_confidence, Some(self.occurrence_count))
    }
}

/// A recovery's confidence: base 0.7 for a strong match, else 0.5; 3 or more occurrences add
/// 0.20, 2 add 0.10, fewer add nothing; never above 0.90.
pub fn recovery_confidence(strong_match: bool, occurrences: i32) -> RecoveryConfidence {
    let base = if strong_match { STRONG_BASE } else { WEAK_BASE };
    let boost = if occurrences >= 3 {
        BOOST_THREE
    } else if occurrences >= 2 {
        BOOST_TWO
    } else {
        0
    };
    let points = |p: u32| f64::from(p) / 100.0;
    RecoveryConfidence {
        base_confidence: points(base),
        occurrence_count: occurrences,
        boost_applied: points(boost),
        final_confidence: points(CAP.min(base + boost)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn band_boundaries() {
        assert_eq!(band(1.0), ConfidenceBand::StrongMatch);
        assert_eq!(band(0.85), ConfidenceBand::StrongMatch);
        assert_eq!(band(0.849_999_999), ConfidenceBand::WeakMatch);
        assert_eq!(band(0.6), ConfidenceBand::WeakMatch);
        assert_eq!(band(0.599_999_999), ConfidenceBand::Novel);
        assert_eq!(band(0.0), ConfidenceBand::Novel);
    }

    #[test]
    fn confirmation_level_boundaries() {
        assert_eq!(confirmation_level(0.85), 0);
        assert_eq!(confirmation_level(0.849_999_999), 1);
        assert_eq!(confirmation_level(0.6), 1);
        assert_eq!(confirmation_level(0.599_999_999), 2);
        assert_eq!(confirmation_level(0.0), 2);
        assert_eq!(confirmation_level(1.0), 0);
    }

    #[test]
    fn strong_match_by_occurrences() {
        let one = recovery_confidence(true, 1);
        assert_eq!(
            one,
            RecoveryConfidence {
                base_confidence: 0.7,
                occurrence_count: 1,
                boost_applied: 0.0,
                final_confidence: 0.7,
            }
        );
        let two = recovery_confidence(true, 2);
        assert_eq!((two.boost_applied, two.final_confidence), (0.1, 0.8));
        let three = recovery_confidence(true, 3);
        assert_eq!((three.boost_applied, three.final_confidence), (0.2, 0.9));
        // The cap: more occurrences add nothing beyond +0.20, and 0.7 + 0.2 stays at 0.90.
        assert_eq!(recovery_confidence(true, 1000).final_confidence, 0.9);
        assert_eq!(recovery_confidence(true, 0).final_confidence, 0.7);
    }

    #[test]
    fn weak_match_by_occurrences() {
        assert_eq!(recovery_confidence(false, 0).final_confidence, 0.5);
        assert_eq!(recovery_confidence(false, 1).final_confidence, 0.5);
        assert_eq!(recovery_confidence(false, 2).final_confidence, 0.6);
        assert_eq!(recovery_confidence(false, 3).final_confidence, 0.7);
        assert_eq!(recovery_confidence(false, 3).base_confidence, 0.5);
        assert_eq!(recovery_confidence(false, 50).final_confidence, 0.7);
    }

    #[test]
    fn recovery_bands_and_levels() {
        // Weak match seen twice lands exactly on the weak threshold.
        let weak_two = recovery_confidence(false, 2);
        assert_eq!(weak_two.band(), ConfidenceBand::WeakMatch);
        assert_eq!(weak_two.confirmation_level(), 1);
        assert_eq!(recovery_confidence(false, 1).band(), ConfidenceBand::Novel);
        assert_eq!(recovery_confidence(false, 1).confirmation_level(), 2);
        // Strong match seen twice is 0.8: below the strong threshold.
        assert_eq!(
            recovery_confidence(true, 2).band(),
            ConfidenceBand::WeakMatch
        );
        assert_eq!(
            recovery_confidence(true, 3).band(),
            ConfidenceBand::StrongMatch
        );
        assert_eq!(recovery_confidence(true, 3).confirmation_level(), 0);
    }

    #[test]
    fn auto_apply_needs_confidence_and_occurrences() {
        assert!(recovery_confidence(true, 3).auto_apply_allowed());
        assert!(!recovery_confidence(true, 2).auto_apply_allowed());
        assert!(!recovery_confidence(false, 3).auto_apply_allowed());
        assert!(auto_apply_allowed(0.85, Some(3)));
        assert!(!auto_apply_allowed(0.85, Some(2)));
        assert!(!auto_apply_allowed(0.849_999_999, Some(3)));
        // Occurrences unknown (a stored activation): the confidence decides.
        assert!(auto_apply_allowed(0.85, None));
        assert!(!auto_apply_allowed(0.84, None));
    }
}
