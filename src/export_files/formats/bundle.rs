//! ZIP bundles written as a stream (local headers with data descriptors, no seeking back), so
//! the archive's sha256 is computed while it is written; each member's sha256 (of its
//! uncompressed bytes) is computed as the member is written and goes into the manifest.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::Path;

use sha2::{Digest, Sha256};
use zip::write::{SimpleFileOptions, StreamWriter};
use zip::{CompressionMethod, ZipWriter};

use super::{FileDigest, HashingWriter};

type Sink = BufWriter<HashingWriter<File>>;

struct Member {
    name: String,
    hasher: Sha256,
    bytes: u64,
    rows: Option<u64>,
}

/// A ZIP archive being written to a file.
pub struct ZipOut {
    zip: ZipWriter<StreamWriter<Sink>>,
    current: Option<Member>,
    pub members: Vec<FileDigest>,
}

fn zip_err(e: zip::result::ZipError) -> io::Error {
    io::Error::other(e.to_string())
}

impl ZipOut {
    pub fn create(path: &Path) -> io::Result<Self> {
        let file = File::create(path)?;
        let sink = BufWriter::with_capacity(1 << 20, HashingWriter::new(file));
        Ok(ZipOut {
            zip: ZipWriter::new_stream(sink),
            current: None,
            members: Vec::new(),
        })
    }

    /// Starts a member; `rows` says whether it is a row set (its rows are counted).
    pub fn start(&mut self, name: &str, rows: bool) -> io::Result<()> {
        self.end()?;
        let options = SimpleFileOptions::default()
            .compression_method(CompressionMethod::Deflated)
            .unix_permissions(0o644);
        self.zip.start_file(name, options).map_err(zip_err)?;
        self.current = Some(Member {
            name: name.to_owned(),
            hasher: Sha256::new(),
            bytes: 0,
            rows: rows.then_some(0),
        });
        Ok(())
    }

    pub fn write(&mut self, bytes: &[u8]) -> io::Result<()> {
        if let Some(m) = &mut self.current {
            m.hasher.update(bytes);
            m.bytes += bytes.len() as u64;
        }
        self.zip.write_all(bytes)
    }

    /// Writes one row (a line) of the current member.
    pub fn row(&mut self, line: &[u8]) -> io::Result<()> {
        self.write(line)?;
        if let Some(Member {
            rows: Some(rows), ..
        }) = &mut self.current
        {
            *rows += 1;
        }
        Ok(())
    }

    /// A whole JSON document as one member.
    pub fn json_member(&mut self, name: &str, value: &serde_json::Value) -> io::Result<()> {
        self.start(name, false)?;
        let mut bytes = serde_json::to_vec_pretty(value).map_err(io::Error::other)?;
        bytes.push(b'\n');
        self.write(&bytes)?;
        self.end()
    }

    /// Ends the current member, recording its digest.
    pub fn end(&mut self) -> io::Result<()> {
        if let Some(m) = self.current.take() {
            self.members.push(FileDigest {
                name: m.name,
                bytes: m.bytes,
                sha256: hex::encode(m.hasher.finalize()),
                rows: m.rows,
            });
        }
        Ok(())
    }

    /// Finishes the archive: its sha256 and size, and the member digests.
    pub fn finish(mut self) -> io::Result<(String, u64, Vec<FileDigest>)> {
        self.end()?;
        let stream = self.zip.finish().map_err(zip_err)?;
        let sink = stream.into_inner();
        let hashing = sink.into_inner().map_err(|e| e.into_error())?;
        let (file, sha, bytes) = hashing.finish();
        file.sync_all()?;
        Ok((sha, bytes, self.members))
    }
}
