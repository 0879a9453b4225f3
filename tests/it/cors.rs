//! CORS for browser consoles (`serve --cors-origin`): off by default; for a listed origin the
//! preflight is answered and responses carry the headers a page needs to read them; another
//! origin is answered without them; credentials are never allowed, not even for `*`.

use logbook::auth::Role;
use reqwest::header::HeaderMap;
use reqwest::Method;

use crate::support::{Backend, TestApp};

const CONSOLE: &str = "https://console.example.com";
const STRANGER: &str = "https://evil.example.net";

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).map(|v| v.to_str().expect("ASCII header"))
}

async fn preflight(app: &TestApp, origin: &str) -> reqwest::Response {
    app.http
        .request(Method::OPTIONS, format!("{}/graphql", app.base))
        .header("Origin", origin)
        .header("Access-Control-Request-Method", "POST")
        .header(
            "Access-Control-Request-Headers",
            "authorization, content-type",
        )
        .send()
        .await
        .expect("OPTIONS /graphql")
}

async fn post_from(app: &TestApp, key: &str, origin: &str) -> reqwest::Response {
    app.http
        .post(format!("{}/graphql", app.base))
        .header("Origin", origin)
        .bearer_auth(key)
        .json(&serde_json::json!({ "query": "{ viewer { role } }" }))
        .send()
        .await
        .expect("POST /graphql")
}

async fn cors_is_off_by_default(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let key = app.key("acme", Role::Viewer).await;
    let answer = preflight(&app, CONSOLE).await;
    assert_eq!(
        answer.status(),
        405,
        "no CORS: OPTIONS is not a GraphQL method"
    );
    assert_eq!(
        header(answer.headers(), "access-control-allow-origin"),
        None
    );
    let answer = post_from(&app, &key, CONSOLE).await;
    assert_eq!(answer.status(), 200);
    assert_eq!(
        header(answer.headers(), "access-control-allow-origin"),
        None
    );
    app.stop().await;
}

async fn listed_origins_are_allowed_and_others_are_not(backend: Backend) {
    let app = TestApp::spawn_with(backend, |config| {
        config.cors_origins = vec![CONSOLE.to_owned()];
    })
    .await;
    let key = app.key("acme", Role::Viewer).await;

    let answer = preflight(&app, CONSOLE).await;
    assert!(answer.status().is_success(), "{}", answer.status());
    let headers = answer.headers();
    assert_eq!(
        header(headers, "access-control-allow-origin"),
        Some(CONSOLE)
    );
    let methods = header(headers, "access-control-allow-methods").expect("methods");
    assert!(
        methods.contains("POST") && methods.contains("GET"),
        "{methods}"
    );
    let allowed = header(headers, "access-control-allow-headers")
        .expect("headers")
        .to_ascii_lowercase();
    assert!(
        allowed.contains("authorization") && allowed.contains("content-type"),
        "{allowed}"
    );
    assert_eq!(header(headers, "access-control-allow-credentials"), None);

    let answer = post_from(&app, &key, CONSOLE).await;
    assert_eq!(answer.status(), 200);
    let headers = answer.headers();
    assert_eq!(
        header(headers, "access-control-allow-origin"),
        Some(CONSOLE)
    );
    let exposed = header(headers, "access-control-expose-headers")
        .expect("exposed")
        .to_ascii_lowercase();
    assert!(exposed.contains("x-request-id"), "{exposed}");
    assert!(header(headers, "vary").is_some_and(|v| v.to_ascii_lowercase().contains("origin")));
    let body: serde_json::Value = answer.json().await.unwrap();
    assert_eq!(body["data"]["viewer"]["role"], "VIEWER");

    // Another origin: answered (the browser, not the server, withholds it from the page), but
    // without any header that would let its page read the answer.
    let answer = preflight(&app, STRANGER).await;
    assert_eq!(
        header(answer.headers(), "access-control-allow-origin"),
        None
    );
    let answer = post_from(&app, &key, STRANGER).await;
    assert_eq!(answer.status(), 200);
    assert_eq!(
        header(answer.headers(), "access-control-allow-origin"),
        None
    );
    app.stop().await;
}

async fn any_origin_never_allows_credentials(backend: Backend) {
    let app = TestApp::spawn_with(backend, |config| {
        config.cors_origins = vec!["*".to_owned()];
    })
    .await;
    let key = app.key("acme", Role::Viewer).await;
    for answer in [
        preflight(&app, STRANGER).await,
        post_from(&app, &key, STRANGER).await,
    ] {
        let headers = answer.headers();
        let origin = header(headers, "access-control-allow-origin");
        assert!(
            origin == Some(STRANGER) || origin == Some("*"),
            "{origin:?}"
        );
        assert_eq!(header(headers, "access-control-allow-credentials"), None);
    }
    app.stop().await;
}

crate::cases!(
    cors_is_off_by_default,
    listed_origins_are_allowed_and_others_are_not,
    any_origin_never_allows_credentials
);
