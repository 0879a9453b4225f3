//! JSON (one array, one row object per line) and NDJSON (one row object per line). Keys are
//! the column set's GraphQL field names; nulls are written, so every row has every key.

use super::{write_i64, write_json_f64, write_json_str, CellSink};

/// Renders rows as JSON objects into `buf`.
pub struct JsonCells {
    keys: Vec<Vec<u8>>,
    col: usize,
    pub buf: Vec<u8>,
}

impl JsonCells {
    pub fn new(columns: &[&str]) -> Self {
        let keys = columns
            .iter()
            .map(|c| {
                let mut key = Vec::new();
                write_json_str(&mut key, c);
                key.push(b':');
                key
            })
            .collect();
        JsonCells {
            keys,
            col: 0,
            buf: Vec::with_capacity(1 << 16),
        }
    }

    pub fn begin_row(&mut self) {
        self.col = 0;
        self.buf.push(b'{');
    }

    pub fn end_row(&mut self) {
        self.buf.push(b'}');
    }

    fn key(&mut self) {
        if self.col > 0 {
            self.buf.push(b',');
        }
        if let Some(key) = self.keys.get(self.col) {
            self.buf.extend_from_slice(key);
        }
        self.col += 1;
    }
}

impl CellSink for JsonCells {
    fn null(&mut self) {
        self.key();
        self.buf.extend_from_slice(b"null");
    }
    fn str(&mut self, v: &str) {
        self.key();
        write_json_str(&mut self.buf, v);
    }
    fn int(&mut self, v: i64) {
        self.key();
        write_i64(&mut self.buf, v);
    }
    fn float(&mut self, v: f64) {
        self.key();
        write_json_f64(&mut self.buf, v);
    }
    fn bool(&mut self, v: bool) {
        self.key();
        self.buf
            .extend_from_slice(if v { b"true" } else { b"false" });
    }
    fn json(&mut self, v: &serde_json::Value) {
        self.key();
        let _ = serde_json::to_writer(&mut self.buf, v);
    }
}
