//! GraphiQL in a real browser, offline. Debian's Chromium runs headless under chromedriver with
//! every host name but loopback made unresolvable, loads `/graphiql#key=…` from a running server,
//! runs the first example tab and must render its result; it then opens the schema docs. Every
//! resource the page loaded must have come from the server. A screenshot of the result is saved
//! as `graphiql.png` under Cargo's target tmp directory.

use std::time::Duration;

use fantoccini::{Client, ClientBuilder, Locator};
use logbook::auth::Role;
use logbook::runs::ExecutionStatus;
use serde_json::{json, Value};

use crate::support::{self, Backend, TestApp};

/// chromedriver on a free loopback port, killed when dropped.
struct Chromedriver {
    url: String,
    _process: tokio::process::Child,
}

impl Chromedriver {
    async fn start(binary: &std::path::Path) -> Chromedriver {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .expect("a free port")
            .port();
        let process = tokio::process::Command::new(binary)
            .arg(format!("--port={port}"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("start chromedriver");
        let url = format!("http://127.0.0.1:{port}");
        let http = reqwest::Client::new();
        for _ in 0..100 {
            let ready = http.get(format!("{url}/status")).send().await;
            if let Ok(answer) = ready {
                let status: Value = answer.json().await.unwrap_or_default();
                if status["value"]["ready"] == json!(true) {
                    return Chromedriver {
                        url,
                        _process: process,
                    };
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("chromedriver did not become ready on port {port}");
    }

    async fn browser(&self, chromium: &std::path::Path, profile: &std::path::Path) -> Client {
        let mut capabilities = serde_json::Map::new();
        capabilities.insert(
            "goog:chromeOptions".into(),
            json!({
                "binary": chromium,
                "args": [
                    "--headless=new",
                    "--no-sandbox",
                    "--disable-gpu",
                    "--disable-dev-shm-usage",
                    "--window-size=1400,900",
                    "--no-first-run",
                    "--disable-background-networking",
                    "--disable-component-update",
                    "--disable-sync",
                    "--no-proxy-server",
                    // No request can leave the machine: only loopback resolves.
                    "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1",
                    format!("--user-data-dir={}", profile.display()),
                ],
            }),
        );
        ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(capabilities)
            .connect(&self.url)
            .await
            .expect("a Chromium session")
    }
}

/// The text `script` returns once `done` accepts it, or its last text after 30 s.
async fn wait_for_text(browser: &Client, script: &str, done: impl Fn(&str) -> bool) -> String {
    let mut text = String::new();
    for _ in 0..300 {
        if let Ok(Value::String(now)) = browser.execute(script, vec![]).await {
            text = now;
        }
        if done(&text) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    text
}

async fn graphiql_runs_an_example_offline(backend: Backend) {
    let tools = support::run_context()
        .browser
        .clone()
        .expect("the harness lists this case as ignored without a browser");
    let app = TestApp::spawn(backend).await;
    let key = app.key("acme", Role::Viewer).await;
    // The first tab lists FAILED and TIMEOUT runs, newest first.
    let runs = support::make_runs("acme", "browser", 8, support::fixed_time());
    support::insert_runs(app.db(), &runs).await;
    let shown: Vec<&str> = runs
        .iter()
        .filter(|run| {
            matches!(
                run.execution_status,
                ExecutionStatus::Failed | ExecutionStatus::Timeout
            )
        })
        .map(|run| run.run_id.as_str())
        .collect();
    assert!(!shown.is_empty());

    let profile = std::env::temp_dir().join(format!("{}_chromium", support::run_context().run_id));
    let driver = Chromedriver::start(&tools.chromedriver).await;
    let browser = driver.browser(&tools.chromium, &profile).await;
    browser
        .goto(&format!("{}/graphiql#key={key}", app.base))
        .await
        .expect("open /graphiql");
    browser
        .wait()
        .at_most(Duration::from_secs(60))
        .for_element(Locator::Css(".graphiql-execute-button"))
        .await
        .expect("GraphiQL rendered")
        .click()
        .await
        .expect("run the first tab");

    // The result pane's text (CodeMirror keeps the whole document, whatever is on screen).
    let result = wait_for_text(
        &browser,
        "const pane = document.querySelector('.result-window .CodeMirror'); \
         return pane ? pane.CodeMirror.getValue() : '';",
        |text| text.contains("\"totalCount\"") || text.contains("\"errors\""),
    )
    .await;
    let body: Value = serde_json::from_str(&result)
        .unwrap_or_else(|e| panic!("the result pane holds no JSON ({e}): {result:?}"));
    assert!(body.get("errors").is_none(), "{body:#}");
    assert_eq!(body["data"]["llmRuns"]["totalCount"], json!(shown.len()));
    let run_ids: Vec<&str> = body["data"]["llmRuns"]["nodes"]
        .as_array()
        .expect("nodes")
        .iter()
        .filter_map(|node| node["runId"].as_str())
        .collect();
    assert_eq!(run_ids, shown);

    // The key left the address bar once the headers editor had it.
    let hash = browser
        .execute("return window.location.hash;", vec![])
        .await
        .expect("location.hash");
    assert_eq!(hash, json!(""));

    // The schema docs, fetched by introspection with the same key.
    browser
        .find(Locator::Css(
            "button[aria-label='Show Documentation Explorer']",
        ))
        .await
        .expect("the docs button")
        .click()
        .await
        .expect("open the docs");
    let docs = wait_for_text(
        &browser,
        "const docs = document.querySelector('.graphiql-doc-explorer'); \
         return docs ? docs.innerText : '';",
        |text| text.contains("Query"),
    )
    .await;
    let screenshot = browser.screenshot().await.expect("screenshot");
    let saved = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("graphiql.png");
    std::fs::write(&saved, screenshot).expect("save the screenshot");
    eprintln!("GraphiQL screenshot: {}", saved.display());
    assert!(docs.contains("Query"), "the docs did not load: {docs}");

    // Nothing came from anywhere but this server.
    let loaded = browser
        .execute(
            "return performance.getEntriesByType('resource').map(entry => entry.name);",
            vec![],
        )
        .await
        .expect("resource timing");
    let loaded: Vec<String> = serde_json::from_value(loaded).expect("URLs");
    assert!(
        loaded
            .iter()
            .any(|url| url.contains("graphiql-3.8.3.min.js")),
        "{loaded:?}"
    );
    for url in &loaded {
        assert!(url.starts_with(&app.base), "loaded from elsewhere: {url}");
    }

    browser.close().await.expect("close the browser");
    let _ = std::fs::remove_dir_all(&profile);
    app.stop().await;
}

/// The page and its assets over HTTP: versioned URLs with integrity, a year's caching, gzip when
/// accepted, and a policy that allows this origin only.
async fn graphiql_assets_are_served_from_the_binary(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let page = app
        .http
        .get(format!("{}/graphiql", app.base))
        .send()
        .await
        .expect("GET /graphiql");
    let policy = page
        .headers()
        .get("content-security-policy")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    assert!(policy.contains("script-src 'self'"), "{policy}");
    let html = page.text().await.expect("HTML");
    assert!(!html.contains("https://"), "the page names an outside URL");
    let references: Vec<(&str, &str)> = html
        .split("src=\"")
        .chain(html.split("href=\"").skip(1))
        .skip(1)
        .filter_map(|rest| {
            let (url, rest) = rest.split_once('"')?;
            let integrity = rest.strip_prefix(" integrity=\"")?.split_once('"')?.0;
            Some((url, integrity))
        })
        .collect();
    assert_eq!(references.len(), logbook::graphiql::ASSETS.len(), "{html}");
    for (url, integrity) in references {
        let plain = app
            .http
            .get(format!("{}{url}", app.base))
            .header("accept-encoding", "identity")
            .send()
            .await
            .expect("an asset");
        assert_eq!(plain.status(), 200, "{url}");
        assert_eq!(
            plain.headers()["cache-control"],
            "public, max-age=31536000, immutable"
        );
        assert!(plain.headers().get("content-encoding").is_none());
        let body = plain.bytes().await.expect("asset body");
        let digest = {
            use base64::Engine as _;
            use sha2::Digest as _;
            base64::engine::general_purpose::STANDARD.encode(sha2::Sha384::digest(&body))
        };
        assert_eq!(integrity, format!("sha384-{digest}"), "{url}");
        let gzipped = app
            .http
            .get(format!("{}{url}", app.base))
            .header("accept-encoding", "gzip")
            .send()
            .await
            .expect("an asset, gzipped");
        assert_eq!(gzipped.headers()["content-encoding"], "gzip", "{url}");
        // An old version of the same file is gone, so a cached page never mixes files.
        let (rest, name) = url.rsplit_once('/').expect("…/version/name");
        let (prefix, version) = rest.rsplit_once('/').expect("…/version/name");
        let stale = format!("{prefix}/{}/{name}", "0".repeat(version.len()));
        let missing = app
            .http
            .get(format!("{}{stale}", app.base))
            .send()
            .await
            .expect("a stale asset URL");
        assert_eq!(missing.status(), 404, "{stale}");
    }
    app.stop().await;
}

crate::cases!(
    [browser] graphiql_runs_an_example_offline,
    [sqlite] graphiql_assets_are_served_from_the_binary
);
