//! The GraphiQL page, opened with example operations for the console's main screens (one tab
//! each, from `src/graphiql/examples/`; a test runs every example against the schema).
//!
//! Everything the page loads is in the binary: the published GraphiQL, React and React DOM files
//! (pinned versions, vendored with their licenses by `src/graphiql/assets/vendor.sh`) and the
//! page's own script, so the page works on a machine with no internet access. Each asset is
//! served under a URL that names its content hash, cached for a year, and referenced with
//! subresource integrity; the page's Content-Security-Policy allows nothing but this origin.

use std::io::Write as _;
use std::sync::OnceLock;

use base64::Engine as _;
use sha2::{Digest, Sha256, Sha384};

/// (file name, document) of every example operation, in tab order.
pub const EXAMPLES: &[(&str, &str)] = &[
    (
        "01_runs_newest.graphql",
        include_str!("graphiql/examples/01_runs_newest.graphql"),
    ),
    (
        "02_run_detail.graphql",
        include_str!("graphiql/examples/02_run_detail.graphql"),
    ),
    (
        "03_viewer.graphql",
        include_str!("graphiql/examples/03_viewer.graphql"),
    ),
    (
        "04_runs_explore.graphql",
        include_str!("graphiql/examples/04_runs_explore.graphql"),
    ),
    (
        "05_traces_explore.graphql",
        include_str!("graphiql/examples/05_traces_explore.graphql"),
    ),
    (
        "06_incidents.graphql",
        include_str!("graphiql/examples/06_incidents.graphql"),
    ),
    (
        "07_system_events.graphql",
        include_str!("graphiql/examples/07_system_events.graphql"),
    ),
    (
        "08_audit_trail.graphql",
        include_str!("graphiql/examples/08_audit_trail.graphql"),
    ),
    (
        "09_step_errors.graphql",
        include_str!("graphiql/examples/09_step_errors.graphql"),
    ),
    (
        "10_mismatch_triage.graphql",
        include_str!("graphiql/examples/10_mismatch_triage.graphql"),
    ),
    (
        "11_activity.graphql",
        include_str!("graphiql/examples/11_activity.graphql"),
    ),
    (
        "12_exports.graphql",
        include_str!("graphiql/examples/12_exports.graphql"),
    ),
    (
        "20_cost_dashboard.graphql",
        include_str!("graphiql/examples/20_cost_dashboard.graphql"),
    ),
    (
        "21_panel_consistency.graphql",
        include_str!("graphiql/examples/21_panel_consistency.graphql"),
    ),
];

/// One file the page loads, embedded at build time.
pub struct Asset {
    pub name: &'static str,
    pub content_type: &'static str,
    pub body: &'static [u8],
}

macro_rules! asset {
    ($name:literal, $content_type:expr) => {
        Asset {
            name: $name,
            content_type: $content_type,
            body: include_bytes!(concat!("graphiql/assets/", $name)),
        }
    };
}

const CSS: &str = "text/css; charset=utf-8";
const JAVASCRIPT: &str = "text/javascript; charset=utf-8";

/// Every asset the page references, by the name in its URL.
pub const ASSETS: &[Asset] = &[
    asset!("graphiql-3.8.3.min.css", CSS),
    asset!("graphiql-3.8.3.min.js", JAVASCRIPT),
    asset!("react-18.3.1.production.min.js", JAVASCRIPT),
    asset!("react-dom-18.3.1.production.min.js", JAVASCRIPT),
    asset!("logbook-graphiql.js", JAVASCRIPT),
];

/// Where assets are served; an asset's URL is `{ASSET_PATH}/{version}/{name}`.
pub const ASSET_PATH: &str = "/graphiql/assets";

/// The page's Content-Security-Policy: scripts, styles and connections only from this origin
/// (`'self'` covers the same host's WebSocket); GraphiQL sets inline styles and its stylesheet
/// embeds its fonts and icons as `data:` URLs.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self' 'unsafe-inline'; img-src 'self' data:; font-src 'self' data:; \
     connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// An asset as served: the hash that versions its URL, its integrity value and its gzip body.
pub struct ServedAsset {
    pub asset: &'static Asset,
    /// The first 16 hex digits of the body's SHA-256: a new file is a new URL.
    pub version: String,
    /// `sha384-…` for the page's `integrity` attribute.
    pub integrity: String,
    gzip: OnceLock<Vec<u8>>,
}

impl ServedAsset {
    /// The body gzip-compressed, made on first use (GraphiQL's script is 3.5 MB, 0.6 MB gzipped).
    pub fn gzip(&self) -> &[u8] {
        self.gzip.get_or_init(|| {
            let mut encoder =
                flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
            // Writing to a Vec cannot fail.
            let _ = encoder.write_all(self.asset.body);
            encoder.finish().unwrap_or_default()
        })
    }

    fn url(&self) -> String {
        format!("{ASSET_PATH}/{}/{}", self.version, self.asset.name)
    }
}

fn served() -> &'static [ServedAsset] {
    static SERVED: OnceLock<Vec<ServedAsset>> = OnceLock::new();
    SERVED.get_or_init(|| {
        ASSETS
            .iter()
            .map(|asset| ServedAsset {
                asset,
                version: hex::encode(&Sha256::digest(asset.body)[..8]),
                integrity: format!(
                    "sha384-{}",
                    base64::engine::general_purpose::STANDARD.encode(Sha384::digest(asset.body))
                ),
                gzip: OnceLock::new(),
            })
            .collect()
    })
}

/// The asset at `{ASSET_PATH}/{version}/{name}`; an old version is not found, so a cached page
/// never mixes files.
pub fn asset(version: &str, name: &str) -> Option<&'static ServedAsset> {
    served()
        .iter()
        .find(|served| served.asset.name == name && served.version == version)
}

/// The HTML page: assets by versioned URL with their integrity, the examples as GraphiQL's
/// default tabs.
pub fn page() -> &'static str {
    static PAGE: OnceLock<String> = OnceLock::new();
    PAGE.get_or_init(|| {
        let tabs: Vec<serde_json::Value> = EXAMPLES
            .iter()
            .map(|(_, query)| serde_json::json!({ "query": query }))
            .collect();
        // Inside <script>, `<` could start `</script>` or `<!--`; JSON lets it be escaped.
        let tabs = serde_json::Value::Array(tabs)
            .to_string()
            .replace('<', "\\u003c");
        let mut page = include_str!("graphiql/page.html").replace("__LOGBOOK_TABS__", &tabs);
        for served in served() {
            let placeholder = format!("\"@@{}@@\"", served.asset.name);
            let reference = format!("\"{}\" integrity=\"{}\"", served.url(), served.integrity);
            page = page.replace(&placeholder, &reference);
        }
        page
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_references_every_asset_with_its_integrity_and_nothing_else() {
        let page = page();
        assert!(!page.contains("@@"), "an asset placeholder was left");
        for served in served() {
            let reference = format!("\"{}\" integrity=\"{}\"", served.url(), served.integrity);
            assert!(
                page.contains(&reference),
                "{} is not referenced",
                served.asset.name
            );
        }
        assert!(!page.contains("http://") && !page.contains("https://"));
    }

    #[test]
    fn an_asset_is_found_only_under_its_current_version() {
        let served = &served()[0];
        assert!(asset(&served.version, served.asset.name).is_some());
        assert!(asset("0000000000000000", served.asset.name).is_none());
        assert!(asset(&served.version, "../Cargo.toml").is_none());
    }

    #[test]
    fn the_gzip_body_inflates_to_the_asset() {
        let served = &served()[0];
        let mut inflated = Vec::new();
        std::io::Read::read_to_end(
            &mut flate2::read::GzDecoder::new(served.gzip()),
            &mut inflated,
        )
        .expect("inflate");
        assert_eq!(inflated, served.asset.body);
    }
}
