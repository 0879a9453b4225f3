//! GraphQL over HTTP conformance without node: every MUST and SHOULD audit of the
//! `graphql-http` 1.23.1 server audits (`lib/audits/server.js`; `bench/graphql-http-audit` runs
//! the original), ported request for request, plus the draft spec's own rules where the audit is
//! weaker than the spec text or does not exist (`spec_rules`). Every request carries a valid key:
//! the server authenticates before it parses.
//!
//! Each case runs its whole table and then fails once, naming every failing audit id with what
//! it expected and what came back, so one run shows the whole conformance picture.

use logbook::auth::Role;
use serde_json::Value;

use crate::support::{Backend, TestApp};

const GQL_RESPONSE: &str = "application/graphql-response+json";
const JSON: &str = "application/json";

#[derive(Clone, Copy)]
enum Method {
    Post,
    Get,
}

/// What an audit asserts about the response, in `server.js`'s terms.
#[derive(Clone, Copy, Debug)]
enum Check {
    /// `status.toBe(n)`.
    Status(u16),
    /// `status.toBeBetween(lo, hi)`, inclusive.
    StatusIn(u16, u16),
    /// `header('content-type').toContain(part)`.
    ContentTypeHas(&'static str),
    /// The body decodes as UTF-8.
    Utf8,
    /// `bodyAsExecutionResult.notToHaveProperty('errors')`: the key is absent.
    NoErrors,
    /// `bodyAsExecutionResult.data.toBe(undefined)`: the key is absent (`null` fails).
    NoData,
    /// The first error's `extensions.code`.
    Code(&'static str),
}

/// One request and its checks.
struct Audit {
    id: &'static str,
    name: &'static str,
    method: Method,
    /// `None`: no `Content-Type` header at all.
    content_type: Option<&'static str>,
    /// `None`: no `Accept` header.
    accept: Option<&'static str>,
    /// POST: the raw body. GET: the query string's `(name, value)` pairs, as JSON pairs.
    body: &'static str,
    /// Whether the request carries the test key.
    with_key: bool,
    checks: &'static [Check],
}

const TYPENAME: &str = r#"{"query":"{ __typename }"}"#;
const PARSE_FAILURE: &str = r#"{"query":"{"}"#;
/// The audits' "validation failure": a field name cannot start with a digit, so this is in fact
/// a parse failure too. `spec_rules` adds a real validation failure.
const AUDIT_VALIDATION_FAILURE: &str = r#"{"query":"{ 8f31403dfe404bccbb0e835f2629c6a7 }"}"#;
const COERCION_FAILURE: &str =
    r#"{"query":"query CoerceFailure($id: ID!){ __typename }","variables":{"id":null}}"#;
const NOT_JSON: &str = r#"{ "not a JSON"#;
const OPERATION_NAME: &str = r#"{"operationName":"Query","query":"query Query { __typename }"}"#;
const VARIABLES_MAP: &str = r#"{"query":"query Type($name: String!) { __type(name: $name) { name } }","variables":{"name":"sometype"}}"#;
const EXTENSIONS_MAP: &str = r#"{"query":"{ __typename }","extensions":{"some":"value"}}"#;

const fn post(
    id: &'static str,
    name: &'static str,
    accept: Option<&'static str>,
    body: &'static str,
    checks: &'static [Check],
) -> Audit {
    Audit {
        id,
        name,
        method: Method::Post,
        content_type: Some(JSON),
        accept,
        body,
        with_key: true,
        checks,
    }
}

/// The MUST and SHOULD audits of `serverAudits`, in its order.
const AUDITS: &[Audit] = &[
    post("22EB", "SHOULD accept application/graphql-response+json and match the content-type",
        Some(GQL_RESPONSE), TYPENAME, &[Check::Status(200), Check::ContentTypeHas(GQL_RESPONSE)]),
    post("4655", "MUST accept application/json and match the content-type",
        Some(JSON), TYPENAME, &[Check::Status(200), Check::ContentTypeHas(JSON)]),
    post("47DE", "SHOULD accept */* and use application/json for the content-type",
        Some("*/*"), TYPENAME, &[Check::Status(200), Check::ContentTypeHas(JSON)]),
    post("80D8", "SHOULD assume application/json content-type when accept is missing",
        None, TYPENAME, &[Check::Status(200), Check::ContentTypeHas(JSON)]),
    post("82A3", "MUST use utf-8 encoding when responding",
        None, TYPENAME, &[Check::Status(200), Check::Utf8]),
    Audit {
        id: "BF61",
        name: "MUST accept utf-8 encoded request",
        method: Method::Post,
        content_type: Some("application/json; charset=utf-8"),
        accept: None,
        body: r#"{"query":"{ __type(name: \"Run🏃Swim🏊\") { name } }"}"#,
        with_key: true,
        checks: &[Check::Status(200)],
    },
    post("78D5", "MUST assume utf-8 in request if encoding is unspecified",
        None, TYPENAME, &[Check::Status(200)]),
    post("2C94", "MUST accept POST requests", None, TYPENAME, &[Check::Status(200)]),
    // `fetch` gives a string body `Content-Type: text/plain;charset=UTF-8` when the audit sets
    // none, so this is what the audit really sends; `spec_rules` sends no header at all.
    Audit {
        id: "9ABE",
        name: "SHOULD respond with 4xx status code if content-type is not supplied on POST requests",
        method: Method::Post,
        content_type: Some("text/plain;charset=UTF-8"),
        accept: None,
        body: TYPENAME,
        with_key: true,
        checks: &[Check::StatusIn(400, 499)],
    },
    post("03D4", "MUST accept application/json POST requests", None, TYPENAME, &[Check::Status(200)]),
    post("34A2", "SHOULD allow string {query} parameter when accepting application/graphql-response+json",
        Some(GQL_RESPONSE), TYPENAME, &[Check::Status(200)]),
    post("13EE", "MUST allow string {query} parameter when accepting application/json",
        Some(JSON), TYPENAME, &[Check::Status(200), Check::NoErrors]),
    post("8161", "SHOULD allow string {operationName} parameter when accepting application/graphql-response+json",
        Some(GQL_RESPONSE), OPERATION_NAME, &[Check::Status(200)]),
    post("B8B3", "MUST allow string {operationName} parameter when accepting application/json",
        Some(JSON), OPERATION_NAME, &[Check::Status(200), Check::NoErrors]),
    post("94B0", "SHOULD allow null {variables} parameter when accepting application/graphql-response+json",
        Some(GQL_RESPONSE), r#"{"query":"{ __typename }","variables":null}"#, &[Check::Status(200), Check::NoErrors]),
    post("0220", "MUST allow null {variables} parameter when accepting application/json",
        Some(JSON), r#"{"query":"{ __typename }","variables":null}"#, &[Check::Status(200), Check::NoErrors]),
    post("94B1", "SHOULD allow null {operationName} parameter when accepting application/graphql-response+json",
        Some(GQL_RESPONSE), r#"{"query":"{ __typename }","operationName":null}"#, &[Check::Status(200), Check::NoErrors]),
    post("0221", "MUST allow null {operationName} parameter when accepting application/json",
        Some(JSON), r#"{"query":"{ __typename }","operationName":null}"#, &[Check::Status(200), Check::NoErrors]),
    post("94B2", "SHOULD allow null {extensions} parameter when accepting application/graphql-response+json",
        Some(GQL_RESPONSE), r#"{"query":"{ __typename }","extensions":null}"#, &[Check::Status(200), Check::NoErrors]),
    post("0222", "MUST allow null {extensions} parameter when accepting application/json",
        Some(JSON), r#"{"query":"{ __typename }","extensions":null}"#, &[Check::Status(200), Check::NoErrors]),
    post("2EA1", "SHOULD allow map {variables} parameter when accepting application/graphql-response+json",
        Some(GQL_RESPONSE), VARIABLES_MAP, &[Check::Status(200)]),
    post("28B9", "MUST allow map {variables} parameter when accepting application/json",
        Some(JSON), VARIABLES_MAP, &[Check::Status(200), Check::NoErrors]),
    post("428F", "SHOULD allow map {extensions} parameter when accepting application/graphql-response+json",
        Some(GQL_RESPONSE), EXTENSIONS_MAP, &[Check::Status(200)]),
    post("1B7A", "MUST allow map {extensions} parameter when accepting application/json",
        Some(JSON), EXTENSIONS_MAP, &[Check::Status(200), Check::NoErrors]),
    post("BCF8", "SHOULD use 400 status code on JSON parsing failure when accepting application/json",
        Some(JSON), NOT_JSON, &[Check::Status(400)]),
    post("B7N8", "SHOULD use 400 status code on JSON parsing failure when accepting application/graphql-response+json",
        Some(GQL_RESPONSE), NOT_JSON, &[Check::Status(400)]),
    post("572B", "SHOULD use 200 status code on document parsing failure when accepting application/json",
        Some(JSON), PARSE_FAILURE, &[Check::Status(200)]),
    post("FDE2", "SHOULD use 200 status code on document validation failure when accepting application/json",
        Some(JSON), AUDIT_VALIDATION_FAILURE, &[Check::Status(200)]),
    post("7B9B", "SHOULD use a status code of 200 on variable coercion failure when accepting application/json",
        Some(JSON), COERCION_FAILURE, &[Check::Status(200)]),
    post("865D", "SHOULD use 4xx or 5xx status codes on document parsing failure when accepting application/graphql-response+json",
        Some(GQL_RESPONSE), PARSE_FAILURE, &[Check::StatusIn(400, 599)]),
    post("556A", "SHOULD use 400 status code on document parsing failure when accepting application/graphql-response+json",
        Some(GQL_RESPONSE), PARSE_FAILURE, &[Check::Status(400)]),
    post("D586", "SHOULD not contain the data entry on document parsing failure when accepting application/graphql-response+json",
        Some(GQL_RESPONSE), PARSE_FAILURE, &[Check::NoData]),
    post("51FE", "SHOULD use 4xx or 5xx status codes on document validation failure when accepting application/graphql-response+json",
        Some(GQL_RESPONSE), AUDIT_VALIDATION_FAILURE, &[Check::StatusIn(400, 599)]),
    post("74FF", "SHOULD use 400 status code on document validation failure when accepting application/graphql-response+json",
        Some(GQL_RESPONSE), AUDIT_VALIDATION_FAILURE, &[Check::Status(400)]),
    post("5E5B", "SHOULD not contain the data entry on document validation failure when accepting application/graphql-response+json",
        Some(GQL_RESPONSE), AUDIT_VALIDATION_FAILURE, &[Check::NoData]),
    post("86EE", "SHOULD use a status code of 400 on variable coercion failure when accepting application/graphql-response+json",
        Some(GQL_RESPONSE), COERCION_FAILURE, &[Check::Status(400)]),
];

const REAL_VALIDATION_FAILURE: &str = r#"{"query":"{ notAFieldOfQuery }"}"#;
const TYPO_QUERY: &str = r#"{"qeury":"{ __typename }"}"#;

/// Rules of the GraphQL-over-HTTP draft (https://graphql.github.io/graphql-over-http/draft/) and
/// the GraphQL spec that the audit checks more weakly (its MAY level) or not at all. An id names
/// the audit the rule strengthens; `spec:` ids have no audit.
const SPEC_RULES: &[Audit] = &[
    // "If the client does not supply a Content-Type header with a POST request, the server
    // SHOULD reject the request using the appropriate 4xx status code."
    Audit {
        id: "9ABE/no-header",
        name: "SHOULD reject a POST without Content-Type with a 4xx (no header at all)",
        method: Method::Post,
        content_type: None,
        accept: None,
        body: TYPENAME,
        with_key: true,
        checks: &[Check::StatusIn(400, 499)],
    },
    // Non-JSON request media types are the CSRF-prone "simple requests" of the spec's security
    // notes; answered with 415 Unsupported Media Type, never executed.
    Audit {
        id: "9ABE/text-plain",
        name: "SHOULD NOT execute a text/plain POST (415)",
        method: Method::Post,
        content_type: Some("text/plain"),
        accept: Some(GQL_RESPONSE),
        body: TYPENAME,
        with_key: true,
        checks: &[Check::Status(415), Check::NoData],
    },
    // "Invalid parameters … A request that does not constitute a well-formed
    // GraphQL-over-HTTP request SHOULD result in status code 400" — for both media types (the
    // audit's 3E3A/8764/423L are MAY).
    post("3E3A/json", "SHOULD use 400 on invalid parameters ({qeury}) when accepting application/json",
        Some(JSON), TYPO_QUERY, &[Check::Status(400), Check::NoData]),
    post("3E3A/no-accept", "SHOULD use 400 on invalid parameters ({qeury}) without Accept",
        None, TYPO_QUERY, &[Check::Status(400)]),
    post("3E3A/graphql-response", "SHOULD use 400 on invalid parameters ({qeury}) when accepting application/graphql-response+json",
        Some(GQL_RESPONSE), TYPO_QUERY, &[Check::Status(400), Check::NoData]),
    post("423L/json", "SHOULD use 400 on a missing {query} when accepting application/json",
        Some(JSON), r#"{"notquery":"{ __typename }"}"#, &[Check::Status(400), Check::NoData]),
    // GraphQL spec, Response › Data: "If an error was raised before execution begins, the data
    // entry should not be present in the result" — whatever the media type.
    post("D586/json", "SHOULD not contain the data entry on document parsing failure (application/json)",
        Some(JSON), PARSE_FAILURE, &[Check::Status(200), Check::NoData, Check::Code("BAD_USER_INPUT")]),
    post("5E5B/real", "SHOULD use 400 and no data entry on a real validation failure (application/graphql-response+json)",
        Some(GQL_RESPONSE), REAL_VALIDATION_FAILURE, &[Check::Status(400), Check::NoData]),
    post("5E5B/real-json", "SHOULD use 200 and no data entry on a real validation failure (application/json)",
        Some(JSON), REAL_VALIDATION_FAILURE, &[Check::Status(200), Check::NoData]),
    post("86EE/no-data", "SHOULD not contain the data entry on variable coercion failure (application/graphql-response+json)",
        Some(GQL_RESPONSE), COERCION_FAILURE, &[Check::Status(400), Check::NoData]),
    post("7B9B/no-data", "SHOULD not contain the data entry on variable coercion failure (application/json)",
        Some(JSON), COERCION_FAILURE, &[Check::Status(200), Check::NoData]),
    // "GET requests MUST NOT be used for executing mutation operations … the server MUST
    // respond with error status code 405" (the audit's 9C48 only asks for a 4xx, at MAY).
    Audit {
        id: "9C48/405",
        name: "MUST answer a mutation over GET with 405",
        method: Method::Get,
        content_type: None,
        accept: Some(GQL_RESPONSE),
        body: r#"[["query","mutation { __typename }"]]"#,
        with_key: true,
        checks: &[Check::Status(405)],
    },
    // "If an Accept header is provided, the server MUST respect the given Accept header and
    // attempt to encode the response in the highest priority media type listed".
    post("spec:accept-priority", "MUST answer in the highest-priority accepted media type",
        Some("application/json, application/graphql-response+json;q=0.5"), PARSE_FAILURE,
        &[Check::Status(200), Check::ContentTypeHas(JSON)]),
    // "If the client is not permitted to issue the GraphQL request then the server SHOULD reply
    // with 403, 401 or similar" (the audit's BC58 is a TODO). Authentication comes before
    // parsing: a broken document without a key is UNAUTHENTICATED, not a parse error.
    Audit {
        id: "spec:BC58",
        name: "SHOULD use 401 for a request without a key, before parsing it (application/graphql-response+json)",
        method: Method::Post,
        content_type: Some(JSON),
        accept: Some(GQL_RESPONSE),
        body: PARSE_FAILURE,
        with_key: false,
        checks: &[Check::Status(401), Check::NoData, Check::Code("UNAUTHENTICATED")],
    },
    Audit {
        id: "spec:BC58/json",
        name: "SHOULD answer a request without a key UNAUTHENTICATED before parsing it (application/json, 200)",
        method: Method::Post,
        content_type: Some(JSON),
        accept: Some(JSON),
        body: PARSE_FAILURE,
        with_key: false,
        checks: &[Check::Status(200), Check::NoData, Check::Code("UNAUTHENTICATED")],
    },
];

/// What came back, kept for the failure report.
struct Seen {
    status: u16,
    content_type: String,
    bytes: Vec<u8>,
}

impl Seen {
    fn json(&self) -> Option<Value> {
        serde_json::from_slice(&self.bytes).ok()
    }

    fn describe(&self) -> String {
        let text = String::from_utf8_lossy(&self.bytes);
        let text: String = text.chars().take(300).collect();
        format!(
            "status {}, content-type {:?}, body {text}",
            self.status, self.content_type
        )
    }
}

async fn send(app: &TestApp, key: &str, audit: &Audit) -> Seen {
    let url = format!("{}/graphql", app.base);
    let mut request = match audit.method {
        Method::Post => app.http.post(&url).body(audit.body.to_owned()),
        Method::Get => {
            let pairs: Vec<(String, String)> = serde_json::from_str(audit.body).unwrap();
            app.http.get(&url).query(&pairs)
        }
    };
    if let Some(content_type) = audit.content_type {
        request = request.header("content-type", content_type);
    }
    if let Some(accept) = audit.accept {
        request = request.header("accept", accept);
    }
    if audit.with_key {
        request = request.bearer_auth(key);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get("content-type")
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        .unwrap_or_default();
    let bytes = response.bytes().await.unwrap().to_vec();
    Seen {
        status,
        content_type,
        bytes,
    }
}

/// The first check the response fails, as the audit would word it.
fn failed_check(seen: &Seen, checks: &[Check]) -> Option<String> {
    for check in checks {
        let failure = match *check {
            Check::Status(n) => (seen.status != n).then(|| format!("status is not {n}")),
            Check::StatusIn(lo, hi) => (!(lo..=hi).contains(&seen.status))
                .then(|| format!("status is not between {lo} and {hi}")),
            Check::ContentTypeHas(part) => (!seen.content_type.contains(part))
                .then(|| format!("content-type does not contain {part}")),
            Check::Utf8 => std::str::from_utf8(&seen.bytes)
                .is_err()
                .then(|| "body is not UTF-8".to_owned()),
            Check::NoErrors => match seen.json() {
                None => Some("body is not JSON".to_owned()),
                Some(body) => body
                    .get("errors")
                    .is_some()
                    .then(|| "body has an \"errors\" entry".to_owned()),
            },
            Check::NoData => match seen.json() {
                None => Some("body is not JSON".to_owned()),
                Some(body) => body
                    .get("data")
                    .is_some()
                    .then(|| "body has a \"data\" entry".to_owned()),
            },
            Check::Code(code) => match seen.json() {
                None => Some("body is not JSON".to_owned()),
                Some(body) => (body["errors"][0]["extensions"]["code"] != code)
                    .then(|| format!("first error code is not {code}")),
            },
        };
        if failure.is_some() {
            return failure;
        }
    }
    None
}

/// Runs every audit of `table` and fails naming each failing one.
async fn run_table(backend: Backend, table: &[Audit]) {
    let app = TestApp::spawn(backend).await;
    let key = app.key("acme", Role::Viewer).await;
    let mut failures = Vec::new();
    for audit in table {
        let seen = send(&app, &key, audit).await;
        if let Some(reason) = failed_check(&seen, audit.checks) {
            failures.push(format!(
                "{} {}: {reason}\n      got {}",
                audit.id,
                audit.name,
                seen.describe()
            ));
        }
    }
    app.stop().await;
    assert!(
        failures.is_empty(),
        "{} of {} failing:\n  {}",
        failures.len(),
        table.len(),
        failures.join("\n  ")
    );
}

/// Every MUST and SHOULD audit of graphql-http's `serverAudits`.
async fn graphql_http_must_and_should_audits(backend: Backend) {
    assert_eq!(
        AUDITS
            .iter()
            .filter(|a| a.name.starts_with("MUST "))
            .count(),
        13
    );
    assert_eq!(
        AUDITS
            .iter()
            .filter(|a| a.name.starts_with("SHOULD "))
            .count(),
        23
    );
    run_table(backend, AUDITS).await;
}

/// The spec's rules beyond the audit's MUST/SHOULD list.
async fn graphql_over_http_spec_rules(backend: Backend) {
    run_table(backend, SPEC_RULES).await;
}

crate::cases!(
    graphql_http_must_and_should_audits,
    graphql_over_http_spec_rules
);
