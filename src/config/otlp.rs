//! Settings of the OTLP trace receiver (`src/otlp/`, docs/otlp.md): its model price table and
//! its limits.

use std::collections::BTreeMap;

/// The receiver's settings (`serve --otlp-*`).
#[derive(Debug, Clone)]
pub struct OtlpSettings {
    /// Model prices for LLM spans that carry no cost of their own.
    pub prices: PriceTable,
    /// Largest request body, after gzip decompression.
    pub max_body_bytes: usize,
    /// Requests of one key worked on at once in this process.
    pub max_in_flight_per_key: usize,
    /// Requests worked on at once in this process.
    pub max_in_flight: usize,
    /// A trace whose root span arrived is sealed after this long without a new span (when its
    /// root did not end last); zero: never by time.
    pub seal_after: std::time::Duration,
}

impl Default for OtlpSettings {
    fn default() -> Self {
        OtlpSettings {
            prices: PriceTable::default(),
            max_body_bytes: 16 * 1024 * 1024,
            max_in_flight_per_key: 8,
            max_in_flight: 64,
            seal_after: std::time::Duration::from_secs(30),
        }
    }
}

/// Model → price in US cents per million input and output tokens.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PriceTable {
    prices: BTreeMap<String, (f64, f64)>,
}

impl PriceTable {
    /// Parses `model=input,output` (cents per million tokens), as `--otlp-price` takes it.
    pub fn parse_entry(text: &str) -> Result<(String, (f64, f64)), String> {
        let bad = || {
            format!(
                "--otlp-price {text}: expected MODEL=INPUT_CENTS,OUTPUT_CENTS per million tokens"
            )
        };
        let (model, prices) = text.split_once('=').ok_or_else(bad)?;
        let (input, output) = prices.split_once(',').ok_or_else(bad)?;
        let parse = |p: &str| {
            p.trim()
                .parse::<f64>()
                .ok()
                .filter(|v| v.is_finite() && *v >= 0.0)
        };
        match (model.trim(), parse(input), parse(output)) {
            (m, Some(i), Some(o)) if !m.is_empty() => Ok((m.to_ascii_lowercase(), (i, o))),
            _ => Err(bad()),
        }
    }

    pub fn insert(&mut self, model: String, prices: (f64, f64)) {
        self.prices.insert(model, prices);
    }

    /// Cents for these tokens of `model` (an exact, case-insensitive match, else the longest
    /// configured name the model starts with: `gpt-4o` prices `gpt-4o-2024-08-06`); `None`
    /// for a model the table does not know.
    pub fn cost_cents(&self, model: &str, input: i64, output: i64) -> Option<f64> {
        let model = model.to_ascii_lowercase();
        let (i, o) = self.prices.get(&model).copied().or_else(|| {
            self.prices
                .iter()
                .filter(|(name, _)| model.starts_with(name.as_str()))
                .max_by_key(|(name, _)| name.len())
                .map(|(_, p)| *p)
        })?;
        Some((input.max(0) as f64 * i + output.max(0) as f64 * o) / 1_000_000.0)
    }
}
