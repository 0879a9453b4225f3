//! Artefact encodings. Rows are written one batch at a time straight to the file through a
//! hashing writer, so the sha256 is known when the last byte is written and no export is ever
//! held in memory whole.
//!
//! A row is a visitor over its cells ([`ExportRow::write`]); JSON/NDJSON and CSV each implement
//! [`CellSink`]. Cell values are rendered the way the GraphQL API renders the same field
//! (enums by their GraphQL name, `DateTime` as RFC 3339 `Z`, `BigInt` as a string), so an
//! export parses back to what the list query returns.

pub mod bundle;
pub mod csv;
pub mod json;

use std::io::{self, Write};

use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};

/// Receives the cells of one row, in column order.
pub trait CellSink {
    fn null(&mut self);
    fn str(&mut self, v: &str);
    fn int(&mut self, v: i64);
    fn float(&mut self, v: f64);
    fn bool(&mut self, v: bool);
    fn json(&mut self, v: &serde_json::Value);

    fn time(&mut self, v: DateTime<Utc>) {
        let mut text = TimeText::default();
        self.str(text.format(v));
    }
    fn opt_str(&mut self, v: Option<&str>) {
        match v {
            Some(v) => self.str(v),
            None => self.null(),
        }
    }
    fn opt_time(&mut self, v: Option<DateTime<Utc>>) {
        match v {
            Some(v) => self.time(v),
            None => self.null(),
        }
    }
    fn opt_json(&mut self, v: Option<&serde_json::Value>) {
        match v {
            Some(v) => self.json(v),
            None => self.null(),
        }
    }
    fn opt_int(&mut self, v: Option<i64>) {
        match v {
            Some(v) => self.int(v),
            None => self.null(),
        }
    }
}

/// One exported row of a list scope.
pub trait ExportRow: Send + 'static {
    /// The column set: GraphQL field names, in output order.
    fn columns() -> &'static [&'static str];
    fn write(&self, out: &mut dyn CellSink);
}

/// A `Write` that hashes (sha256) and counts what passes through.
pub struct HashingWriter<W> {
    inner: W,
    hasher: Sha256,
    bytes: u64,
}

impl<W: Write> HashingWriter<W> {
    pub fn new(inner: W) -> Self {
        HashingWriter {
            inner,
            hasher: Sha256::new(),
            bytes: 0,
        }
    }

    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// The inner writer, the hex sha256 and the byte count.
    pub fn finish(self) -> (W, String, u64) {
        (self.inner, hex::encode(self.hasher.finalize()), self.bytes)
    }
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// A file's digest as the manifest records it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct FileDigest {
    pub name: String,
    pub bytes: u64,
    pub sha256: String,
    /// Rows (lines of NDJSON, array items, CSV records without the header), when the file is a
    /// row set.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub rows: Option<u64>,
}

/// A `DateTime` rendered exactly as [`crate::scalars::format_utc`] renders it (RFC 3339, `Z`,
/// fraction digits per `SecondsFormat::AutoSi`), on the stack: exports format two or three
/// timestamps per row and must not allocate for them.
#[derive(Default)]
pub struct TimeText {
    buf: [u8; 32],
    fallback: String,
}

impl TimeText {
    pub fn format(&mut self, v: DateTime<Utc>) -> &str {
        use chrono::{Datelike, Timelike};
        let year = v.year();
        let nanos = v.nanosecond();
        if !(0..=9999).contains(&year) || nanos >= 1_000_000_000 {
            // Out-of-range years and leap seconds: chrono's own rendering.
            self.fallback = crate::scalars::format_utc(v);
            return &self.fallback;
        }
        fn put(buf: &mut [u8], at: usize, value: u32, digits: usize) {
            let mut v = value;
            for i in (0..digits).rev() {
                buf[at + i] = b'0' + (v % 10) as u8;
                v /= 10;
            }
        }
        let b = &mut self.buf;
        put(b, 0, year as u32, 4);
        b[4] = b'-';
        put(b, 5, v.month(), 2);
        b[7] = b'-';
        put(b, 8, v.day(), 2);
        b[10] = b'T';
        put(b, 11, v.hour(), 2);
        b[13] = b':';
        put(b, 14, v.minute(), 2);
        b[16] = b':';
        put(b, 17, v.second(), 2);
        let mut len = 19;
        if nanos != 0 {
            b[len] = b'.';
            len += 1;
            if nanos % 1_000_000 == 0 {
                put(b, len, nanos / 1_000_000, 3);
                len += 3;
            } else if nanos % 1_000 == 0 {
                put(b, len, nanos / 1_000, 6);
                len += 6;
            } else {
                put(b, len, nanos, 9);
                len += 9;
            }
        }
        b[len] = b'Z';
        len += 1;
        // Only ASCII digits and separators were written.
        std::str::from_utf8(&self.buf[..len]).unwrap_or_default()
    }
}

/// Writes `v` in decimal without going through `fmt`.
pub fn write_i64(out: &mut Vec<u8>, v: i64) {
    let mut digits = [0u8; 20];
    let mut n = v.unsigned_abs();
    let mut at = digits.len();
    loop {
        at -= 1;
        digits[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    if v < 0 {
        out.push(b'-');
    }
    out.extend_from_slice(&digits[at..]);
}

/// Bytes a JSON string literal must escape.
const fn needs_escape(b: u8) -> bool {
    b < 0x20 || b == b'"' || b == b'\\'
}

/// Writes `s` as a JSON string literal.
pub fn write_json_str(out: &mut Vec<u8>, s: &str) {
    let bytes = s.as_bytes();
    if !bytes.iter().any(|&b| needs_escape(b)) {
        // The common case (ids, hashes, names): one copy.
        out.reserve(bytes.len() + 2);
        out.push(b'"');
        out.extend_from_slice(bytes);
        out.push(b'"');
        return;
    }
    out.push(b'"');
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let escape: Option<&[u8]> = match b {
            b'"' => Some(b"\\\""),
            b'\\' => Some(b"\\\\"),
            b'\n' => Some(b"\\n"),
            b'\r' => Some(b"\\r"),
            b'\t' => Some(b"\\t"),
            0..=0x1f => None,
            _ => continue,
        };
        out.extend_from_slice(&bytes[start..i]);
        match escape {
            Some(e) => out.extend_from_slice(e),
            None => {
                let _ = write!(out, "\\u{b:04x}");
            }
        }
        start = i + 1;
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
}

/// `f64` as JSON (non-finite values, which JSON cannot carry, as null).
pub fn write_json_f64(out: &mut Vec<u8>, v: f64) {
    match serde_json::Number::from_f64(v) {
        Some(n) => {
            let _ = write!(out, "{n}");
        }
        None => out.extend_from_slice(b"null"),
    }
}

/// Frames rows of a list scope as a JSON array, NDJSON or CSV.
pub enum Encoder {
    JsonArray(json::JsonCells, u64),
    Ndjson(json::JsonCells),
    Csv(csv::CsvCells),
}

impl Encoder {
    /// `None` for ZIP (bundles are not row lists).
    pub fn new(format: crate::exports::ExportFormat, columns: &[&str]) -> Option<Self> {
        use crate::exports::ExportFormat;
        match format {
            ExportFormat::Json => Some(Encoder::JsonArray(json::JsonCells::new(columns), 0)),
            ExportFormat::Ndjson => Some(Encoder::Ndjson(json::JsonCells::new(columns))),
            ExportFormat::Csv => {
                let mut cells = csv::CsvCells::new();
                cells.header(columns);
                Some(Encoder::Csv(cells))
            }
            ExportFormat::Zip => None,
        }
    }

    /// Starts the file (before any row).
    pub fn begin(&mut self) {
        if let Encoder::JsonArray(cells, _) = self {
            cells.buf.extend_from_slice(b"[");
        }
    }

    pub fn row<R: ExportRow>(&mut self, row: &R) {
        match self {
            Encoder::JsonArray(cells, n) => {
                cells
                    .buf
                    .extend_from_slice(if *n == 0 { b"\n" } else { b",\n" });
                *n += 1;
                cells.begin_row();
                row.write(cells);
                cells.end_row();
            }
            Encoder::Ndjson(cells) => {
                cells.begin_row();
                row.write(cells);
                cells.end_row();
                cells.buf.push(b'\n');
            }
            Encoder::Csv(cells) => {
                cells.begin_row();
                row.write(cells);
                cells.end_row();
            }
        }
    }

    /// Ends the file (after the last row).
    pub fn end(&mut self) {
        if let Encoder::JsonArray(cells, n) = self {
            cells
                .buf
                .extend_from_slice(if *n == 0 { b"]\n" } else { b"\n]\n" });
        }
    }

    /// Moves the encoded bytes out (call between batches).
    pub fn drain_into(&mut self, out: &mut impl Write) -> io::Result<()> {
        let buf = match self {
            Encoder::JsonArray(cells, _) | Encoder::Ndjson(cells) => &mut cells.buf,
            Encoder::Csv(cells) => &mut cells.buf,
        };
        out.write_all(buf)?;
        buf.clear();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_strings_round_trip() {
        for s in [
            "plain",
            "quote \" and \\",
            "new\nline\r\t",
            "\u{1}ctl",
            "naïve — ünïcödé 🎉",
        ] {
            let mut out = Vec::new();
            write_json_str(&mut out, s);
            let back: String = serde_json::from_slice(&out).unwrap();
            assert_eq!(back, s);
            assert_eq!(out, serde_json::to_vec(s).unwrap(), "{s:?}");
        }
    }

    #[test]
    fn times_render_like_format_utc() {
        use chrono::TimeZone;
        let base = Utc.with_ymd_and_hms(2026, 1, 2, 3, 4, 5).unwrap();
        let mut text = TimeText::default();
        for nanos in [
            0,
            1,
            999,
            1_000,
            120_000,
            123_456,
            1_000_000,
            500_000_000,
            123_456_789,
        ] {
            let t = base + chrono::Duration::nanoseconds(nanos);
            assert_eq!(text.format(t), crate::scalars::format_utc(t), "{nanos}");
        }
        for t in [
            Utc.with_ymd_and_hms(1, 1, 1, 0, 0, 0).unwrap(),
            Utc.with_ymd_and_hms(9999, 12, 31, 23, 59, 59).unwrap(),
            Utc.with_ymd_and_hms(10_000, 1, 1, 0, 0, 0).unwrap(),
            Utc.with_ymd_and_hms(-1, 1, 1, 0, 0, 0).unwrap(),
            Utc.timestamp_opt(1_483_228_799, 1_500_000_000).unwrap(),
        ] {
            assert_eq!(text.format(t), crate::scalars::format_utc(t), "{t:?}");
        }
    }

    #[test]
    fn integers_render_like_display() {
        for v in [0, 7, -7, 10, 1_234_567, i64::MAX, i64::MIN] {
            let mut out = Vec::new();
            write_i64(&mut out, v);
            assert_eq!(out, v.to_string().into_bytes());
        }
    }
}
