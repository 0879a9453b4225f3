//! Deterministic randomness for the seeder: keyed ChaCha8 streams, ids built from RNG bytes, a
//! time model that spreads events over the 90 days before the anchor (denser toward the anchor,
//! on weekdays and in working hours) and small sampling helpers.

use chrono::{DateTime, Datelike, Duration, TimeZone, Timelike, Utc, Weekday};
use rand::{Rng, RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use sea_orm::Value;

use crate::scalars::truncate_to_micros;

/// Independent random streams; each (stream, index) pair gets its own ChaCha8 key.
#[derive(Debug, Clone, Copy)]
#[repr(u64)]
pub(crate) enum Stream {
    Run = 1,
    Audit = 2,
    System = 3,
    Cost = 4,
    CostExtras = 5,
    Exports = 6,
    Tenant = 7,
    SystemWide = 8,
}

/// Keys derived once from the user's seed.
#[derive(Debug, Clone)]
pub(crate) struct Keys {
    base: [u8; 16],
    run_perm: u64,
    incident_perm: u64,
}

impl Keys {
    pub fn new(seed: u64) -> Keys {
        let mut master = ChaCha8Rng::seed_from_u64(seed);
        let mut base = [0u8; 16];
        master.fill_bytes(&mut base);
        Keys {
            base,
            run_perm: master.next_u64(),
            incident_perm: master.next_u64(),
        }
    }

    /// The RNG of one entity (`index`) of a stream: independent of every other entity, so any
    /// run can be regenerated on its own.
    pub fn rng(&self, stream: Stream, index: u64) -> ChaCha8Rng {
        let mut seed = [0u8; 32];
        seed[..16].copy_from_slice(&self.base);
        seed[16..24].copy_from_slice(&(stream as u64).to_le_bytes());
        seed[24..].copy_from_slice(&index.to_le_bytes());
        ChaCha8Rng::from_seed(seed)
    }

    /// `run_` + 16 hex; a bijection of the global run index, so unique across all tenants.
    pub fn run_id(&self, global: u64) -> String {
        format!("run_{:016x}", fmix64(global ^ self.run_perm))
    }

    /// The incident opened for a run (if any): unique like the run id.
    pub fn incident_id(&self, global: u64) -> String {
        format!("inc_{:016x}", fmix64(global ^ self.incident_perm))
    }
}

/// The MurmurHash3 64-bit finaliser: a bijection on u64 that mixes every bit.
pub(crate) fn fmix64(mut x: u64) -> u64 {
    x ^= x >> 33;
    x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
    x ^= x >> 33;
    x = x.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    x ^= x >> 33;
    x
}

/// A UUID-shaped (version 4 layout) id made of RNG bytes.
pub(crate) fn uuid(rng: &mut impl RngCore) -> String {
    let mut b = [0u8; 16];
    rng.fill_bytes(&mut b);
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = hex::encode(b);
    format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    )
}

/// `n` random bytes as lower-case hex (`2n` characters).
pub(crate) fn hex_id(rng: &mut impl RngCore, n: usize) -> String {
    let mut b = vec![0u8; n];
    rng.fill_bytes(&mut b);
    hex::encode(b)
}

/// A SHA-256-shaped digest (64 hex) from RNG bytes.
pub(crate) fn digest(rng: &mut impl RngCore) -> String {
    hex_id(rng, 32)
}

pub(crate) fn chance(rng: &mut impl Rng, p: f64) -> bool {
    rng.random::<f64>() < p
}

pub(crate) fn pick<'a, T>(rng: &mut impl Rng, items: &'a [T]) -> &'a T {
    // Callers pass non-empty constant tables; fall back to the first item defensively.
    let i = if items.len() > 1 {
        rng.random_range(0..items.len())
    } else {
        0
    };
    &items[i.min(items.len().saturating_sub(1))]
}

/// Index drawn with the given (non-negative) weights.
pub(crate) fn weighted_index(rng: &mut impl Rng, weights: &[f64]) -> usize {
    let total: f64 = weights.iter().sum();
    let mut x = rng.random::<f64>() * total;
    for (i, w) in weights.iter().enumerate() {
        if x < *w {
            return i;
        }
        x -= w;
    }
    weights.len().saturating_sub(1)
}

/// Picks from `(item, weight)` pairs.
pub(crate) fn weighted<'a, T>(rng: &mut impl Rng, items: &'a [(T, f64)]) -> &'a T {
    let weights: Vec<f64> = items.iter().map(|(_, w)| *w).collect();
    &items[weighted_index(rng, &weights)].0
}

/// A standard normal draw (Box–Muller).
pub(crate) fn normal(rng: &mut impl Rng) -> f64 {
    let u1: f64 = rng.random::<f64>().max(1e-12);
    let u2: f64 = rng.random();
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

/// A log-normal draw with the given median, clamped to `[lo, hi]`.
pub(crate) fn lognormal(rng: &mut impl Rng, median: f64, sigma: f64, lo: f64, hi: f64) -> f64 {
    (median * (sigma * normal(rng)).exp()).clamp(lo, hi)
}

/// Zipf-like weights `1 / (i + 1)^s`, normalised to sum 1.
pub(crate) fn zipf_weights(n: usize, s: f64) -> Vec<f64> {
    let raw: Vec<f64> = (0..n).map(|i| 1.0 / ((i + 1) as f64).powf(s)).collect();
    let total: f64 = raw.iter().sum();
    raw.into_iter().map(|w| w / total).collect()
}

/// Splits `total` into integer parts proportional to `weights` (largest remainder).
pub(crate) fn apportion(total: u64, weights: &[f64]) -> Vec<u64> {
    if weights.is_empty() {
        return Vec::new();
    }
    let sum: f64 = weights.iter().sum();
    let exact: Vec<f64> = weights
        .iter()
        .map(|w| total as f64 * w / sum.max(f64::MIN_POSITIVE))
        .collect();
    let mut parts: Vec<u64> = exact.iter().map(|x| x.floor() as u64).collect();
    let assigned: u64 = parts.iter().sum();
    let mut order: Vec<usize> = (0..weights.len()).collect();
    order.sort_by(|&a, &b| {
        let ra = exact[a] - exact[a].floor();
        let rb = exact[b] - exact[b].floor();
        rb.total_cmp(&ra).then(a.cmp(&b))
    });
    for &i in order.iter().take(total.saturating_sub(assigned) as usize) {
        parts[i] += 1;
    }
    parts
}

/// Relative activity per UTC hour of day (working hours busier).
const HOURLY: [f64; 24] = [
    0.35, 0.30, 0.28, 0.27, 0.30, 0.40, 0.55, 0.75, 0.95, 1.10, 1.20, 1.25, 1.20, 1.25, 1.30, 1.30,
    1.25, 1.15, 1.00, 0.85, 0.70, 0.60, 0.50, 0.42,
];
/// Growth over the window: the last day is `e^TREND` times as busy as the first.
const TREND: f64 = 1.5;

/// Maps a quantile in `[0, 1)` to a time in the window: hourly buckets weighted by trend,
/// weekday and hour of day, linear inside a bucket.
#[derive(Debug, Clone)]
pub(crate) struct TimeModel {
    pub start: DateTime<Utc>,
    pub anchor: DateTime<Utc>,
    cumulative: Vec<f64>,
}

pub(crate) const WINDOW_DAYS: i64 = 90;

impl TimeModel {
    pub fn new(anchor: DateTime<Utc>) -> TimeModel {
        let hours = (WINDOW_DAYS * 24) as usize;
        let start = anchor - Duration::days(WINDOW_DAYS);
        let mut cumulative = Vec::with_capacity(hours);
        let mut total = 0.0;
        for h in 0..hours {
            let at = start + Duration::hours(h as i64);
            let trend = (TREND * h as f64 / hours as f64).exp();
            let weekday = match at.weekday() {
                Weekday::Sat => 0.55,
                Weekday::Sun => 0.5,
                _ => 1.0,
            };
            total += trend * weekday * HOURLY[at.hour() as usize];
            cumulative.push(total);
        }
        for c in &mut cumulative {
            *c /= total;
        }
        TimeModel {
            start,
            anchor,
            cumulative,
        }
    }

    /// The time at quantile `u` (clamped into `[0, 1)`); always before the anchor.
    pub fn at(&self, u: f64) -> DateTime<Utc> {
        let u = u.clamp(0.0, 1.0 - 1e-12);
        let bucket = self.cumulative.partition_point(|&c| c <= u);
        let bucket = bucket.min(self.cumulative.len().saturating_sub(1));
        let lo = if bucket == 0 {
            0.0
        } else {
            self.cumulative[bucket - 1]
        };
        let hi = self.cumulative[bucket];
        let frac = if hi > lo { (u - lo) / (hi - lo) } else { 0.0 };
        let micros = ((bucket as f64 + frac.clamp(0.0, 1.0)) * 3_600_000_000.0) as i64;
        let at = self.start + Duration::microseconds(micros);
        self.cap(at)
    }

    /// Event `i` of `n` spread over the window in order (stratified: monotonic in `i`).
    pub fn nth(&self, i: u64, n: u64, jitter: f64) -> DateTime<Utc> {
        let n = n.max(1) as f64;
        self.at((i as f64 + jitter.clamp(0.0, 0.999_999)) / n)
    }

    /// At most the anchor minus one microsecond, at microsecond precision.
    pub fn cap(&self, at: DateTime<Utc>) -> DateTime<Utc> {
        let latest = self.anchor - Duration::microseconds(1);
        truncate_to_micros(if at > latest { latest } else { at })
    }
}

/// Midnight UTC of the day `at` falls in.
pub(crate) fn midnight(at: DateTime<Utc>) -> DateTime<Utc> {
    Utc.from_utc_datetime(&at.date_naive().and_hms_opt(0, 0, 0).unwrap_or_default())
}

/// `Duration` of a (positive) number of milliseconds with microsecond precision.
pub(crate) fn ms(millis: f64) -> Duration {
    Duration::microseconds((millis.max(0.0) * 1000.0) as i64)
}

/// RFC 3339 (UTC, microseconds, `Z`) for timestamps embedded in JSON documents.
pub(crate) fn iso(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

// Typed `sea_orm::Value` constructors, so rows read like the column lists.
pub(crate) fn s(text: impl Into<String>) -> Value {
    Value::String(Some(text.into()))
}
pub(crate) fn os(text: Option<impl Into<String>>) -> Value {
    Value::String(text.map(Into::into))
}
pub(crate) fn i(n: i32) -> Value {
    Value::Int(Some(n))
}
pub(crate) fn oi(n: Option<i32>) -> Value {
    Value::Int(n)
}
pub(crate) fn big(n: i64) -> Value {
    Value::BigInt(Some(n))
}
pub(crate) fn obig(n: Option<i64>) -> Value {
    Value::BigInt(n)
}
pub(crate) fn f(x: f64) -> Value {
    Value::Double(Some(x))
}
pub(crate) fn of(x: Option<f64>) -> Value {
    Value::Double(x)
}
pub(crate) fn b(x: bool) -> Value {
    Value::Bool(Some(x))
}
pub(crate) fn ob(x: Option<bool>) -> Value {
    Value::Bool(x)
}
pub(crate) fn ts(at: DateTime<Utc>) -> Value {
    Value::ChronoDateTimeUtc(Some(truncate_to_micros(at)))
}
pub(crate) fn ots(at: Option<DateTime<Utc>>) -> Value {
    Value::ChronoDateTimeUtc(at.map(truncate_to_micros))
}
pub(crate) fn date(d: chrono::NaiveDate) -> Value {
    Value::ChronoDate(Some(d))
}
pub(crate) fn j(v: serde_json::Value) -> Value {
    Value::Json(Some(Box::new(v)))
}
pub(crate) fn oj(v: Option<serde_json::Value>) -> Value {
    Value::Json(v.map(Box::new))
}

/// Rounds to `d` decimals (for realistic-looking stored floats).
pub(crate) fn round_to(x: f64, d: i32) -> f64 {
    let p = 10f64.powi(d);
    (x * p).round() / p
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn apportion_sums_and_skews() {
        let w = zipf_weights(50, 0.88);
        let parts = apportion(1_000_000, &w);
        assert_eq!(parts.iter().sum::<u64>(), 1_000_000);
        let share = parts[0] as f64 / 1_000_000.0;
        assert!((0.17..0.19).contains(&share), "share {share}");
    }

    #[test]
    fn time_model_is_monotonic_and_before_anchor() {
        let anchor = Utc
            .with_ymd_and_hms(2026, 11, 27, 0, 0, 0)
            .single()
            .unwrap_or_default();
        let tm = TimeModel::new(anchor);
        let mut last = tm.start;
        for k in 0..10_000 {
            let at = tm.nth(k, 10_000, 0.5);
            assert!(at >= last && at < anchor);
            last = at;
        }
        // Denser near the anchor: the last 30 days hold more than a third of the events.
        let cut = anchor - Duration::days(30);
        let recent = (0..10_000)
            .filter(|&k| tm.nth(k, 10_000, 0.5) >= cut)
            .count();
        assert!(recent > 4_000, "recent {recent}");
    }

    #[test]
    fn ids_are_deterministic_and_distinct() {
        let keys = Keys::new(7);
        assert_eq!(keys.run_id(1), Keys::new(7).run_id(1));
        assert_ne!(keys.run_id(1), keys.run_id(2));
        let mut a = keys.rng(Stream::Run, 3);
        let mut b = keys.rng(Stream::Run, 3);
        assert_eq!(uuid(&mut a), uuid(&mut b));
        assert_eq!(uuid(&mut a).len(), 36);
    }
}
