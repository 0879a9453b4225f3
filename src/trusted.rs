//! Trusted documents: an allow-list mode for BFFs (`serve --trusted-documents DIR|FILE`). Only
//! the listed operations run, asked for by hash (`extensions.persistedQuery.sha256Hash`, as
//! Apollo and Relay persisted-query clients send it) or by their exact text; anything else is
//! `FORBIDDEN`, and automatic persisted queries cannot add to the list.
//!
//! The list is read and checked once, at startup: every entry's hash must be its text's SHA-256,
//! every document must pass admission (`crate::admission`) and async-graphql's validation, or the
//! server does not start. A request then skips reading and parsing the text: it gets a copy of
//! the parsed document, and only the checks that depend on the request (its variables, its key's
//! read grant, its cost) run.
//!
//! Accepted manifests:
//! - a JSON object of `"<sha256 hex>": "<document>"` (the Relay / GraphQL trusted-documents map);
//! - Apollo's persisted-query manifest, `{"format": "apollo-persisted-query-manifest",
//!   "operations": [{"id": "<sha256 hex>", "body": "<document>", …}]}`;
//! - a directory of such `.json` manifests and of `.graphql` files (one document each, its hash
//!   computed).

use std::collections::HashMap;
use std::path::Path;

use async_graphql::parser::types::ExecutableDocument;
use sha2::{Digest, Sha256};

use crate::error::{AppError, AppResult};

/// The listed documents, parsed, by SHA-256 (lower-case hex) of their text.
pub struct TrustedDocuments {
    documents: HashMap<String, Trusted>,
}

struct Trusted {
    text: String,
    document: ExecutableDocument,
}

impl TrustedDocuments {
    /// Reads `path` into (hash, text) pairs, checking every hash against its text.
    pub fn read(path: &Path) -> Result<Vec<(String, String)>, String> {
        let mut entries = Vec::new();
        if path.is_dir() {
            let mut files: Vec<_> = std::fs::read_dir(path)
                .map_err(|e| format!("cannot list {}: {e}", path.display()))?
                .filter_map(|entry| entry.ok().map(|e| e.path()))
                .collect();
            files.sort();
            for file in files {
                match file.extension().and_then(|e| e.to_str()) {
                    Some("json") => entries.extend(read_manifest(&file)?),
                    Some("graphql") | Some("gql") => {
                        let text = read_text(&file)?;
                        entries.push((sha256_hex(&text), text));
                    }
                    _ => {}
                }
            }
        } else {
            entries = read_manifest(path)?;
        }
        if entries.is_empty() {
            return Err(format!("{} lists no documents", path.display()));
        }
        Ok(entries)
    }

    /// Parses and checks each document with `parse` (admission's document checks); every
    /// failure is reported, with its hash.
    pub fn prepare(
        entries: Vec<(String, String)>,
        parse: impl Fn(&str) -> AppResult<ExecutableDocument>,
    ) -> Result<Self, String> {
        let mut documents = HashMap::with_capacity(entries.len());
        let mut failures = Vec::new();
        for (hash, text) in entries {
            match parse(&text) {
                Ok(document) => {
                    documents.insert(hash, Trusted { text, document });
                }
                Err(e) => failures.push(format!("{hash}: {}", e.message())),
            }
        }
        if failures.is_empty() {
            Ok(TrustedDocuments { documents })
        } else {
            Err(format!(
                "trusted documents that do not pass admission:\n  {}",
                failures.join("\n  ")
            ))
        }
    }

    pub fn len(&self) -> usize {
        self.documents.len()
    }

    pub fn is_empty(&self) -> bool {
        self.documents.is_empty()
    }

    /// Every (hash, text), for validation at startup.
    pub fn texts(&self) -> impl Iterator<Item = (&str, &str)> {
        self.documents
            .iter()
            .map(|(hash, trusted)| (hash.as_str(), trusted.text.as_str()))
    }

    /// The text of a listed hash.
    pub fn text(&self, hash: &str) -> AppResult<&str> {
        self.documents
            .get(hash)
            .map(|trusted| trusted.text.as_str())
            .ok_or(AppError::UntrustedDocument)
    }

    /// A copy of the parsed document whose text is `text`.
    pub fn document(&self, text: &str) -> AppResult<ExecutableDocument> {
        self.documents
            .get(&sha256_hex(text))
            .filter(|trusted| trusted.text == text)
            .map(|trusted| trusted.document.clone())
            .ok_or(AppError::UntrustedDocument)
    }
}

fn sha256_hex(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))
}

fn read_text(path: &Path) -> Result<String, String> {
    std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))
}

/// A map or an Apollo manifest; each hash checked against its document.
fn read_manifest(path: &Path) -> Result<Vec<(String, String)>, String> {
    let text = read_text(path)?;
    let json: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| format!("{} is not JSON: {e}", path.display()))?;
    let pairs: Vec<(String, String)> = match &json {
        serde_json::Value::Object(map) if map.contains_key("operations") => map["operations"]
            .as_array()
            .ok_or_else(|| format!("{}: `operations` is not a list", path.display()))?
            .iter()
            .map(|operation| {
                let id = operation["id"].as_str();
                let body = operation["body"].as_str();
                match (id, body) {
                    (Some(id), Some(body)) => Ok((id.to_owned(), body.to_owned())),
                    _ => Err(format!(
                        "{}: an operation without `id` and `body`",
                        path.display()
                    )),
                }
            })
            .collect::<Result<_, _>>()?,
        serde_json::Value::Object(map) => map
            .iter()
            .map(|(hash, document)| match document.as_str() {
                Some(document) => Ok((hash.clone(), document.to_owned())),
                None => Err(format!(
                    "{}: {hash} is not a document string",
                    path.display()
                )),
            })
            .collect::<Result<_, _>>()?,
        _ => return Err(format!("{} is not a manifest object", path.display())),
    };
    pairs
        .into_iter()
        .map(|(hash, document)| {
            let hash = hash
                .strip_prefix("sha256:")
                .unwrap_or(&hash)
                .to_ascii_lowercase();
            if sha256_hex(&document) == hash {
                Ok((hash, document))
            } else {
                Err(format!(
                    "{}: {hash} is not the SHA-256 of its document",
                    path.display()
                ))
            }
        })
        .collect()
}
