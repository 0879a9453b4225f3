//! Typed settings: built-in defaults, overridden by `LOGBOOK_*`/`DATABASE_URL`/`REDIS_URL`
//! environment variables and then command-line flags (clap reads both).

use std::path::PathBuf;
use std::time::Duration;

use crate::db::DbSettings;

mod exports;
pub mod file;
pub mod otlp;
mod retention;

pub use exports::{ExportRetryArgs, ExportSettings, RetryPolicy, RetryStrategy};
pub use retention::{RetentionSettings, MAX_RETENTION_BATCH};

/// Query limits (docs/api.md §8); each is configurable.
#[derive(Debug, Clone)]
pub struct Limits {
    pub max_depth: usize,
    pub max_complexity: usize,
    /// Root fields per operation, and aliases of one field per selection set.
    pub max_fan_out: usize,
    pub max_body_bytes: usize,
    /// Bytes of GraphQL document text (variables are bounded by the body limit).
    pub max_query_bytes: usize,
    /// Brackets open at once anywhere in a document, checked before it is parsed.
    pub max_nesting: usize,
    /// Fields a document selects once its fragments are expanded.
    pub max_fields: u64,
    /// Fragments spread inside fragments.
    pub max_fragment_nesting: usize,
    /// Longest a request may run before it is answered `UNAVAILABLE`.
    pub request_timeout: Duration,
    pub introspection: bool,
    /// Complexity points each API key may spend per minute (0: no limit).
    pub rate_limit_per_minute: u64,
    /// Lists' default and largest page.
    pub page_sizes: crate::limits::PageSizes,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_depth: 12,
            max_complexity: 5_000,
            max_fan_out: 20,
            max_body_bytes: 1024 * 1024,
            max_query_bytes: 100 * 1024,
            max_nesting: 64,
            max_fields: 2_000,
            max_fragment_nesting: 32,
            request_timeout: Duration::from_secs(30),
            introspection: true,
            rate_limit_per_minute: 600_000,
            page_sizes: Default::default(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Config {
    pub database: DbSettings,
    pub redis_url: Option<String>,
    pub limits: Limits,
    /// How long a verified API key is trusted before it is looked up again. Revocations evict it
    /// from every process's cache sooner (within about a second, `auth::revocation`).
    pub key_cache_ttl: Duration,
    /// HTTP worker threads (0 = one per core).
    pub workers: usize,
    /// Export jobs: artefact directory, worker and retry settings.
    pub exports: ExportSettings,
    /// The ed25519 seed (hex or base64) that signs ledger checkpoints; when neither it nor
    /// `ledger_signing_key_file` is set, a key is generated on first start and kept in the
    /// database (and warned about: see docs/ledger.md).
    pub ledger_signing_key: Option<String>,
    /// A file holding that seed (mode 600); exclusive with `ledger_signing_key`.
    pub ledger_signing_key_file: Option<std::path::PathBuf>,
    /// Where signed checkpoints are published outside the database (none by default).
    pub ledger_checkpoints: SinkSettings,
    /// The optional webhook told of every reported mismatch (off by default).
    pub mismatch_webhook: WebhookSettings,
    /// The retention job's ages and its optional in-server timer (off by default).
    pub retention: RetentionSettings,
    /// How often every process runs the cost anomaly sweep (one process at a time evaluates;
    /// `crate::cost::anomaly_detect::spawn_sweep`); `None`: never (the library default; the
    /// CLI's is hourly).
    pub cost_anomaly_sweep: Option<Duration>,
    /// The OTLP trace receiver's price table and limits (`POST /v1/traces`, docs/otlp.md).
    pub otlp: otlp::OtlpSettings,
    /// WebSocket caps per server process and the `connection_init` timeout.
    pub subscriptions: SocketLimits,
    /// Origins (`scheme://host[:port]`, or `*` for any) whose browser pages may call the API;
    /// none by default, and then no CORS headers are sent.
    pub cors_origins: Vec<String>,
    /// On SIGTERM/SIGINT, how long in-flight requests may take to finish before their
    /// connections are closed.
    pub shutdown_grace: Duration,
    /// Only these documents run (`crate::trusted`); none: any document does.
    pub trusted_documents: Option<PathBuf>,
    /// Serve as an Apollo Federation v2 subgraph (`crate::federation`).
    pub federation: bool,
}

impl Config {
    pub fn new(database_url: impl Into<String>, redis_url: Option<String>) -> Self {
        Config {
            database: DbSettings::new(database_url),
            redis_url,
            limits: Limits::default(),
            key_cache_ttl: Duration::from_secs(30),
            workers: 0,
            exports: Default::default(),
            ledger_signing_key: None,
            ledger_signing_key_file: None,
            ledger_checkpoints: Default::default(),
            mismatch_webhook: Default::default(),
            retention: Default::default(),
            cost_anomaly_sweep: None,
            otlp: Default::default(),
            subscriptions: Default::default(),
            cors_origins: Vec::new(),
            shutdown_grace: Duration::from_secs(25),
            trusted_documents: None,
            federation: false,
        }
    }
}

/// A `--cors-origin` value as browsers send it in `Origin`: `*`, or `http(s)://host[:port]`
/// with no path, query, trailing slash or default port (an origin with one would never match).
pub fn parse_cors_origin(text: &str) -> Result<String, String> {
    if text == "*" {
        return Ok(text.to_owned());
    }
    let url = reqwest::Url::parse(text).map_err(|e| format!("{text:?}: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!(
            "{text:?}: an origin starts with http:// or https://"
        ));
    }
    let origin = url.origin().ascii_serialization();
    if origin != text.to_ascii_lowercase() {
        return Err(format!(
            "{text:?}: an origin is scheme://host[:port] ({origin}), with no path, query or \
             trailing slash"
        ));
    }
    Ok(origin)
}

/// Where checkpoints go besides the database.
#[derive(Debug, Clone)]
pub struct SinkSettings {
    /// `--ledger-checkpoint-dir`: `<dir>/<tenant>/<tree size, 20 digits>-<key prefix>.json`.
    pub dir: Option<PathBuf>,
    /// `--ledger-checkpoint-url`: each checkpoint POSTed as JSON.
    pub url: Option<String>,
    /// How often a publisher looks for checkpoints issued by other processes (it is also woken
    /// at once when this process issues one).
    pub poll_interval: Duration,
}

impl Default for SinkSettings {
    fn default() -> Self {
        SinkSettings {
            dir: None,
            url: None,
            poll_interval: Duration::from_secs(5),
        }
    }
}

impl SinkSettings {
    pub fn is_empty(&self) -> bool {
        self.dir.is_none() && self.url.is_none()
    }
}

/// The mismatch webhook (docs/writes.md, "Mismatch webhook"): where each reported mismatch is
/// POSTed, the secret its body is signed with, and how deliveries are retried.
#[derive(Debug, Clone)]
pub struct WebhookSettings {
    /// `--mismatch-webhook-url`: an http(s) URL; none turns the webhook off.
    pub url: Option<String>,
    /// `--mismatch-webhook-secret`: the HMAC-SHA256 key of `X-Logbook-Signature`.
    pub secret: Option<String>,
    /// How often the worker looks for due deliveries (it is also woken at once when this
    /// process queues one).
    pub poll_interval: Duration,
    /// The wait after a first failed attempt; it doubles after each further one, up to an hour.
    pub retry_base: Duration,
    /// Attempts before a delivery is given up (it stays in `mismatch_notifications`).
    pub max_attempts: i32,
    /// How long one POST may take.
    pub timeout: Duration,
}

impl Default for WebhookSettings {
    fn default() -> Self {
        WebhookSettings {
            url: None,
            secret: None,
            poll_interval: Duration::from_secs(5),
            retry_base: Duration::from_secs(5),
            max_attempts: 12,
            timeout: Duration::from_secs(10),
        }
    }
}

/// Shortest accepted `--mismatch-webhook-secret`, in bytes.
pub const MIN_WEBHOOK_SECRET: usize = 16;

impl WebhookSettings {
    pub fn enabled(&self) -> bool {
        self.url.is_some()
    }

    /// A URL needs an http(s) scheme and a secret of at least [`MIN_WEBHOOK_SECRET`] bytes;
    /// a secret without a URL is refused too (it would suggest a webhook that is off).
    pub fn check(&self) -> Result<(), String> {
        match (&self.url, &self.secret) {
            (None, None) => Ok(()),
            (None, Some(_)) => {
                Err("--mismatch-webhook-secret needs --mismatch-webhook-url".to_owned())
            }
            (Some(url), secret) => {
                let parsed = reqwest::Url::parse(url)
                    .map_err(|e| format!("--mismatch-webhook-url {url}: {e}"))?;
                if !matches!(parsed.scheme(), "http" | "https") {
                    return Err(format!(
                        "--mismatch-webhook-url {url}: only http and https are supported"
                    ));
                }
                if secret
                    .as_deref()
                    .is_none_or(|s| s.len() < MIN_WEBHOOK_SECRET)
                {
                    return Err(format!(
                        "--mismatch-webhook-url needs --mismatch-webhook-secret of at least \
                         {MIN_WEBHOOK_SECRET} bytes"
                    ));
                }
                Ok(())
            }
        }
    }
}

/// The caps (`Config::subscriptions`); 0 means no cap.
#[derive(Debug, Clone)]
pub struct SocketLimits {
    /// How long a socket may stay open without sending `connection_init` (closed with 4408).
    pub init_timeout: Duration,
    /// WebSocket connections this process holds open at once.
    pub max_connections: usize,
    /// WebSocket connections of one API key in this process.
    pub max_connections_per_key: usize,
    /// Active subscriptions on one connection.
    pub max_subscriptions_per_connection: usize,
    /// Active subscriptions of one API key in this process, over all its connections.
    pub max_subscriptions_per_key: usize,
}

impl Default for SocketLimits {
    fn default() -> Self {
        SocketLimits {
            init_timeout: Duration::from_secs(10),
            max_connections: 1024,
            max_connections_per_key: 32,
            max_subscriptions_per_connection: 32,
            max_subscriptions_per_key: 128,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{parse_cors_origin, WebhookSettings};

    #[test]
    fn webhook_settings_need_an_http_url_and_a_long_secret() {
        let with = |url: Option<&str>, secret: Option<&str>| WebhookSettings {
            url: url.map(str::to_owned),
            secret: secret.map(str::to_owned),
            ..Default::default()
        };
        let secret = Some("0123456789abcdef");
        assert!(with(None, None).check().is_ok());
        assert!(with(Some("https://hooks.example.com/in"), secret)
            .check()
            .is_ok());
        assert!(with(Some("http://127.0.0.1:9/x"), secret).check().is_ok());
        for bad in [
            with(None, secret),
            with(Some("https://hooks.example.com/in"), None),
            with(Some("https://hooks.example.com/in"), Some("short")),
            with(Some("ftp://hooks.example.com/in"), secret),
            with(Some("not a url"), secret),
        ] {
            assert!(bad.check().is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn cors_origins_are_checked_and_lowercased() {
        assert_eq!(
            parse_cors_origin("https://Console.Example.com:8443").unwrap(),
            "https://console.example.com:8443"
        );
        assert_eq!(
            parse_cors_origin("http://[::1]:3000").unwrap(),
            "http://[::1]:3000"
        );
        assert_eq!(parse_cors_origin("*").unwrap(), "*");
        for bad in [
            "console.example.com",
            "https://console.example.com/",
            "https://console.example.com/app",
            "https://",
            "ftp://files.example.com",
            "https://a.example.com?x=1",
        ] {
            assert!(parse_cors_origin(bad).is_err(), "{bad} accepted");
        }
    }
}
