//! The arithmetic of the cost panels (docs/domain.md §9.4), pure so it is tested without a
//! database. Inputs are rollup totals; outputs are the panel values.

use std::collections::HashMap;

use async_graphql::Enum;
use chrono::{DateTime, Days, NaiveDate, Utc};

use super::{month_start, BudgetSnapshot, CostTotals, DayWindow, GroupTotals};

/// `part` as a percentage of `whole`; 0 when `whole` is 0.
pub fn pct_of(part: f64, whole: f64) -> f64 {
    if whole > 0.0 {
        part / whole * 100.0
    } else {
        0.0
    }
}

/// `spend` as a percentage of `limit`, when there is a positive limit.
pub fn used_pct(spend: f64, limit: Option<f64>) -> Option<f64> {
    limit.filter(|l| *l > 0.0).map(|l| spend / l * 100.0)
}

/// Day totals indexed by day.
pub fn by_day(rows: &[(NaiveDate, CostTotals)]) -> HashMap<NaiveDate, CostTotals> {
    rows.iter().copied().collect()
}

/// Every day of `window` with its totals, zero where there was no cost.
pub fn fill_days(
    window: &DayWindow,
    days: &HashMap<NaiveDate, CostTotals>,
) -> Vec<(NaiveDate, CostTotals)> {
    window
        .iter()
        .map(|d| (d, days.get(&d).copied().unwrap_or_default()))
        .collect()
}

/// Sum of the days of `window`.
pub fn sum_window(window: &DayWindow, days: &HashMap<NaiveDate, CostTotals>) -> CostTotals {
    let mut sum = CostTotals::default();
    for (_, t) in fill_days(window, days) {
        sum.cost_cents += t.cost_cents;
        sum.input_tokens += t.input_tokens;
        sum.output_tokens += t.output_tokens;
        sum.requests += t.requests;
    }
    sum
}

/// The cost summary of a period (docs/domain.md §9.4, with the fix of docs/decisions.md D30:
/// the monthly limit is compared with month-to-date spend, not with the period total).
#[derive(Debug, Clone, PartialEq)]
pub struct Summary {
    pub window: DayWindow,
    pub period_start: DateTime<Utc>,
    pub period_end: DateTime<Utc>,
    pub totals: CostTotals,
    pub month_to_date_cents: f64,
    pub daily_avg_cents: f64,
    /// Daily limit × days of the period.
    pub budget_cents: Option<f64>,
    pub budget_used_pct: Option<f64>,
    pub monthly_limit_cents: Option<f64>,
    pub days_remaining_at_current_rate: Option<f64>,
}

/// `days` holds the day totals of at least the period and the current month.
pub fn summary(
    window: DayWindow,
    now: DateTime<Utc>,
    days: &HashMap<NaiveDate, CostTotals>,
    budget: Option<&BudgetSnapshot>,
) -> Summary {
    let totals = sum_window(&window, days);
    let today = now.date_naive();
    let month = DayWindow {
        from: month_start(today),
        to: today,
    };
    let month_to_date_cents = sum_window(&month, days).cost_cents;
    let day_count = window.days() as f64;
    let daily_avg_cents = totals.cost_cents / day_count;
    let budget_cents = budget
        .and_then(|b| b.daily_limit_cents)
        .map(|daily| f64::from(daily) * day_count);
    let monthly_limit_cents = budget.and_then(|b| b.monthly_limit_cents).map(f64::from);
    let days_remaining_at_current_rate = match monthly_limit_cents {
        Some(limit) if daily_avg_cents > 0.0 => {
            Some(((limit - month_to_date_cents) / daily_avg_cents).max(0.0))
        }
        _ => None,
    };
    Summary {
        window,
        period_start: window.start(),
        period_end: now,
        totals,
        month_to_date_cents,
        daily_avg_cents,
        budget_used_pct: budget_cents.and_then(|b| used_pct(totals.cost_cents, Some(b))),
        budget_cents,
        monthly_limit_cents,
        days_remaining_at_current_rate,
    }
}

/// A user's share and whether it is anomalous (> 2 × the mean of per-user totals).
#[derive(Debug, Clone, PartialEq)]
pub struct UserShare {
    pub row: GroupTotals,
    pub pct_of_total: f64,
    pub is_anomaly: bool,
    pub anomaly_message: Option<String>,
}

pub fn user_shares(rows: Vec<GroupTotals>) -> Vec<UserShare> {
    let total: f64 = rows.iter().map(|r| r.totals.cost_cents).sum();
    let mean = if rows.is_empty() {
        0.0
    } else {
        total / rows.len() as f64
    };
    rows.into_iter()
        .map(|row| {
            let cost = row.totals.cost_cents;
            let is_anomaly = mean > 0.0 && cost > 2.0 * mean;
            UserShare {
                pct_of_total: pct_of(cost, total),
                is_anomaly,
                anomaly_message: is_anomaly
                    .then(|| format!("Spending {:.1}x average", cost / mean)),
                row,
            }
        })
        .collect()
}

/// Direction of daily spend over a lookback.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
pub enum CostTrend {
    /// The second half's mean is more than 1.2 × the first half's.
    Increasing,
    /// Neither increasing nor decreasing, or fewer than 4 days.
    Stable,
    /// The second half's mean is less than 0.8 × the first half's.
    Decreasing,
}

/// Trend of a daily series (docs/domain.md §9.4): split at n div 2; needs 4 days or more.
pub fn trend(daily: &[f64]) -> CostTrend {
    let n = daily.len();
    if n < 4 {
        return CostTrend::Stable;
    }
    let (first, second) = daily.split_at(n / 2);
    let mean = |s: &[f64]| s.iter().sum::<f64>() / s.len() as f64;
    let (a, b) = (mean(first), mean(second));
    if b > 1.2 * a {
        CostTrend::Increasing
    } else if b < 0.8 * a {
        CostTrend::Decreasing
    } else {
        CostTrend::Stable
    }
}

/// A spend projection (docs/domain.md §9.4, with the fix of docs/decisions.md D30: the average
/// is over every day of the lookback, days without cost counting as zero).
#[derive(Debug, Clone, PartialEq)]
pub struct Projection {
    pub lookback_days: u32,
    pub forecast_days: u32,
    /// The lookback: the `lookback_days` complete UTC days before today.
    pub lookback: DayWindow,
    pub current_daily_avg_cents: f64,
    pub projected_total_cents: f64,
    pub monthly_projection_cents: f64,
    pub month_to_date_cents: f64,
    pub budget_cents: Option<f64>,
    pub days_until_budget_exhausted: Option<f64>,
    pub trend: CostTrend,
}

/// The lookback window of a projection made on `today`.
pub fn lookback_window(today: NaiveDate, lookback_days: u32) -> DayWindow {
    DayWindow {
        from: today - Days::new(u64::from(lookback_days)),
        to: today - Days::new(1),
    }
}

/// `days` holds the day totals of at least the lookback and the current month.
pub fn projection(
    today: NaiveDate,
    lookback_days: u32,
    forecast_days: u32,
    days: &HashMap<NaiveDate, CostTotals>,
    budget: Option<&BudgetSnapshot>,
) -> Projection {
    let lookback = lookback_window(today, lookback_days);
    let daily: Vec<f64> = fill_days(&lookback, days)
        .into_iter()
        .map(|(_, t)| t.cost_cents)
        .collect();
    let avg = daily.iter().sum::<f64>() / f64::from(lookback_days.max(1));
    let month = DayWindow {
        from: month_start(today),
        to: today,
    };
    let month_to_date_cents = sum_window(&month, days).cost_cents;
    let monthly_limit = budget
        .and_then(|b| b.monthly_limit_cents)
        .map(f64::from)
        .filter(|_| avg > 0.0);
    Projection {
        lookback_days,
        forecast_days,
        lookback,
        current_daily_avg_cents: avg,
        projected_total_cents: avg * f64::from(forecast_days),
        monthly_projection_cents: avg * 30.0,
        month_to_date_cents,
        budget_cents: monthly_limit,
        days_until_budget_exhausted: monthly_limit
            .map(|limit| ((limit - month_to_date_cents) / avg).max(0.0)),
        trend: trend(&daily),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cost::CostBudgetType;
    use chrono::TimeZone;

    fn day(d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 11, d).expect("date")
    }

    fn cost(c: f64) -> CostTotals {
        CostTotals {
            cost_cents: c,
            requests: 1,
            ..Default::default()
        }
    }

    fn budget(daily: Option<i32>, monthly: Option<i32>) -> BudgetSnapshot {
        let at = Utc
            .with_ymd_and_hms(2026, 11, 1, 0, 0, 0)
            .single()
            .expect("time");
        BudgetSnapshot {
            id: "cb_1".into(),
            budget_type: CostBudgetType::Tenant,
            entity_id: None,
            daily_limit_cents: daily,
            monthly_limit_cents: monthly,
            warn_threshold_pct: 80,
            hard_limit_enabled: false,
            is_active: true,
            created_at: at,
            updated_at: at,
        }
    }

    #[test]
    fn trend_splits_at_half() {
        assert_eq!(trend(&[1.0, 1.0, 1.0]), CostTrend::Stable);
        assert_eq!(trend(&[1.0, 1.0, 2.0, 2.0]), CostTrend::Increasing);
        assert_eq!(trend(&[2.0, 2.0, 1.0, 1.0]), CostTrend::Decreasing);
        assert_eq!(trend(&[1.0, 1.0, 1.1, 1.1]), CostTrend::Stable);
        assert_eq!(trend(&[0.0, 0.0, 0.0, 0.0]), CostTrend::Stable);
        // odd n: first half n div 2 = 2 days
        assert_eq!(trend(&[1.0, 1.0, 1.0, 3.0, 3.0]), CostTrend::Increasing);
    }

    #[test]
    fn projection_averages_all_lookback_days() {
        // Data on 2 of the 4 complete days before the 10th; today's cost is not in the average.
        let days = by_day(&[
            (day(6), cost(40.0)),
            (day(8), cost(20.0)),
            (day(10), cost(99.0)),
        ]);
        let p = projection(day(10), 4, 7, &days, Some(&budget(None, Some(1_000))));
        assert_eq!(
            p.lookback,
            DayWindow {
                from: day(6),
                to: day(9)
            }
        );
        assert_eq!(p.current_daily_avg_cents, 15.0);
        assert_eq!(p.projected_total_cents, 105.0);
        assert_eq!(p.monthly_projection_cents, 450.0);
        assert_eq!(p.month_to_date_cents, 159.0);
        assert_eq!(p.budget_cents, Some(1_000.0));
        assert_eq!(
            p.days_until_budget_exhausted,
            Some((1_000.0 - 159.0) / 15.0)
        );
        assert_eq!(p.trend, CostTrend::Decreasing);

        let none = projection(day(10), 7, 7, &HashMap::new(), Some(&budget(None, Some(1))));
        assert_eq!(none.current_daily_avg_cents, 0.0);
        assert_eq!(none.budget_cents, None);
        assert_eq!(none.days_until_budget_exhausted, None);
        assert_eq!(none.trend, CostTrend::Stable);
    }

    #[test]
    fn summary_compares_month_to_date_with_the_monthly_limit() {
        let now = Utc
            .with_ymd_and_hms(2026, 11, 3, 12, 0, 0)
            .single()
            .expect("time");
        // October's cost is in the 7-day period but not in November's month-to-date.
        let days = by_day(&[
            (
                NaiveDate::from_ymd_opt(2026, 10, 30).expect("date"),
                cost(70.0),
            ),
            (day(2), cost(7.0)),
            (day(3), cost(7.0)),
        ]);
        let window = crate::cost::CostPeriod::Last7Days.window(now);
        let s = summary(window, now, &days, Some(&budget(Some(10), Some(100))));
        assert_eq!(s.totals.cost_cents, 84.0);
        assert_eq!(s.totals.requests, 3);
        assert_eq!(s.month_to_date_cents, 14.0);
        assert_eq!(s.daily_avg_cents, 12.0);
        assert_eq!(s.budget_cents, Some(70.0));
        assert_eq!(s.budget_used_pct, Some(120.0));
        assert_eq!(
            s.days_remaining_at_current_rate,
            Some((100.0 - 14.0) / 12.0)
        );
        assert_eq!(
            s.period_start,
            Utc.with_ymd_and_hms(2026, 10, 28, 0, 0, 0).unwrap()
        );

        let over = summary(window, now, &days, Some(&budget(None, Some(10))));
        assert_eq!(over.days_remaining_at_current_rate, Some(0.0));
        assert_eq!(over.budget_cents, None);
        assert_eq!(over.budget_used_pct, None);
    }

    #[test]
    fn users_above_twice_the_mean_are_anomalies() {
        let row = |k: &str, c: f64| GroupTotals {
            key: k.into(),
            totals: cost(c),
        };
        let shares = user_shares(vec![
            row("a", 70.0),
            row("b", 10.0),
            row("c", 10.0),
            row("d", 10.0),
        ]);
        assert!(shares[0].is_anomaly);
        assert_eq!(
            shares[0].anomaly_message.as_deref(),
            Some("Spending 2.8x average")
        );
        assert_eq!(shares[0].pct_of_total, 70.0);
        assert!(!shares[1].is_anomaly);
        assert_eq!(shares[1].anomaly_message, None);
        assert!(user_shares(vec![]).is_empty());
    }

    #[test]
    fn percentages_of_zero_are_zero() {
        assert_eq!(pct_of(5.0, 0.0), 0.0);
        assert_eq!(used_pct(5.0, Some(0.0)), None);
        assert_eq!(used_pct(5.0, Some(10.0)), Some(50.0));
    }
}
