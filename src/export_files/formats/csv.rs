//! CSV per RFC 4180: a header record of the column names, CRLF line ends, and a field quoted
//! (with `"` doubled) when it holds a comma, a quote, CR or LF. Text is UTF-8 as is. Null is
//! the empty field; JSON cells hold compact JSON text; booleans are `true`/`false`; times are
//! RFC 3339 UTC.

use super::{write_i64, write_json_f64, CellSink};

/// Renders rows as CSV records into `buf`.
pub struct CsvCells {
    col: usize,
    pub buf: Vec<u8>,
}

impl CsvCells {
    pub fn new() -> Self {
        CsvCells {
            col: 0,
            buf: Vec::with_capacity(1 << 16),
        }
    }

    pub fn header(&mut self, columns: &[&str]) {
        self.begin_row();
        for c in columns {
            self.str(c);
        }
        self.end_row();
    }

    pub fn begin_row(&mut self) {
        self.col = 0;
    }

    pub fn end_row(&mut self) {
        self.buf.extend_from_slice(b"\r\n");
    }

    fn sep(&mut self) {
        if self.col > 0 {
            self.buf.push(b',');
        }
        self.col += 1;
    }

    fn field(&mut self, v: &[u8]) {
        self.sep();
        if v.iter().any(|b| matches!(b, b',' | b'"' | b'\r' | b'\n')) {
            self.buf.push(b'"');
            for &b in v {
                if b == b'"' {
                    self.buf.push(b'"');
                }
                self.buf.push(b);
            }
            self.buf.push(b'"');
        } else {
            self.buf.extend_from_slice(v);
        }
    }
}

impl Default for CsvCells {
    fn default() -> Self {
        Self::new()
    }
}

impl CellSink for CsvCells {
    fn null(&mut self) {
        self.sep();
    }
    fn str(&mut self, v: &str) {
        self.field(v.as_bytes());
    }
    fn int(&mut self, v: i64) {
        // Digits and a sign never need quoting.
        self.sep();
        write_i64(&mut self.buf, v);
    }
    fn float(&mut self, v: f64) {
        let mut text = Vec::new();
        write_json_f64(&mut text, v);
        self.field(&text);
    }
    fn bool(&mut self, v: bool) {
        self.field(if v { b"true" } else { b"false" });
    }
    fn json(&mut self, v: &serde_json::Value) {
        let text = serde_json::to_vec(v).unwrap_or_default();
        self.field(&text);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_what_rfc_4180_requires() {
        let mut c = CsvCells::new();
        c.begin_row();
        c.str("plain");
        c.str("a,b");
        c.str("say \"hi\"");
        c.str("two\nlines");
        c.null();
        c.str("ünï");
        c.end_row();
        assert_eq!(
            String::from_utf8(c.buf).unwrap(),
            "plain,\"a,b\",\"say \"\"hi\"\"\",\"two\nlines\",,ünï\r\n"
        );
    }
}
