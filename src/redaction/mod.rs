//! PII and secret redaction, applied to every payload before it is stored (docs/domain.md §12,
//! with the gaps of docs/decisions.md D27 closed).
//!
//! - **Keys**: a map entry whose key names a secret has its whole value (any type) replaced by
//!   `<REDACTED>`. Keys are split into words (`snake_case`, `kebab-case`, `camelCase`,
//!   `ACRONYMCase`) and matched case-insensitively by containment (`user_password`, `apiToken`,
//!   `X-Api-Key`, `Authorization`), see [`is_sensitive_key`]. Token *counts* (`max_tokens`,
//!   `input_tokens`, `token_count`) are not secrets and are kept.
//! - **String values** (anywhere, map keys included): e-mail addresses, `Bearer` tokens, AWS
//!   access key ids, GitHub, Slack and JWT tokens, `"secret": "..."` pairs inside serialized
//!   JSON, `password=...` / `token: ...` pairs in free text, SSNs (`ddd-dd-dddd`), card numbers
//!   (13–19 digits, optionally grouped by spaces or dashes, Luhn-checked so that ids and epoch
//!   milliseconds survive) and phone numbers. See [`redact_text`].
//! - **Depth**: the walk is iterative, so no nesting depth escapes it (the Python platform
//!   stopped at 20 levels and stored the rest unredacted).
//!
//! Callers redact every JSON and free-text field of a payload, not only some of them.

use std::borrow::Cow;
use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::LazyLock;

use regex::{Captures, Regex};
use serde_json::{Map, Value};

/// Replaces the value of a sensitive key.
pub const REDACTED: &str = "<REDACTED>";

/// Substrings of the normalized key (lower case, separators removed) that mark a secret.
const KEY_STEMS: &[&str] = &[
    "password",
    "passwd",
    "passphrase",
    "pwd",
    "secret",
    "apikey",
    "privatekey",
    "sshkey",
    "accesskey",
    "signingkey",
    "encryptionkey",
    "authorization",
    "bearer",
    "credential",
    "socialsecurity",
    "creditcard",
    "cardnumber",
    "cvv",
    "cvc",
    "authtoken",
    "accesstoken",
    "refreshtoken",
    "sessiontoken",
    "idtoken",
    "apitoken",
    "csrftoken",
    "xsrftoken",
    "cookie",
    "jwt",
];

/// Whole words that mark a secret (too short to match by containment without false hits:
/// `ssn` is inside `classname`, `cred` inside `credit`).
const KEY_WORDS: &[&str] = &["ssn", "cred", "creds", "auth", "oauth"];

/// Words that make a `token` key a count or a setting rather than a secret.
const TOKEN_COUNT_WORDS: &[&str] = &[
    "count",
    "counts",
    "limit",
    "limits",
    "max",
    "min",
    "num",
    "number",
    "total",
    "usage",
    "used",
    "budget",
    "type",
    "estimate",
    "estimated",
    "remaining",
];

/// The words of a key, lower-cased: `apiToken` → `api`, `token`; `X-API-Key` → `x`, `api`,
/// `key`; `HTTPAuthorization` → `http`, `authorization`.
pub fn key_words(key: &str) -> Vec<String> {
    let chars: Vec<char> = key.chars().collect();
    let mut words = Vec::new();
    let mut current = String::new();
    for (i, &c) in chars.iter().enumerate() {
        if !c.is_alphanumeric() {
            if !current.is_empty() {
                words.push(std::mem::take(&mut current));
            }
            continue;
        }
        if c.is_uppercase() && !current.is_empty() {
            let prev = chars[i - 1];
            let next_lower = chars.get(i + 1).is_some_and(|n| n.is_lowercase());
            if prev.is_lowercase() || prev.is_numeric() || (prev.is_uppercase() && next_lower) {
                words.push(std::mem::take(&mut current));
            }
        }
        current.extend(c.to_lowercase());
    }
    if !current.is_empty() {
        words.push(current);
    }
    words
}

/// Whether a map key names a secret, so its whole value must be redacted.
pub fn is_sensitive_key(key: &str) -> bool {
    let words = key_words(key);
    let compact: String = words.concat();
    if KEY_STEMS.iter().any(|stem| compact.contains(stem)) {
        return true;
    }
    if words.iter().any(|w| KEY_WORDS.contains(&w.as_str()))
        || compact.ends_with("ssn")
        || compact.ends_with("cred")
        || compact.ends_with("creds")
    {
        return true;
    }
    if compact.contains("token") {
        let count_like = compact.contains("tokens")
            || compact.contains("tokeniz")
            || words
                .iter()
                .any(|w| TOKEN_COUNT_WORDS.contains(&w.as_str()));
        return !count_like;
    }
    false
}

/// `"key": "<32+ hex>"` (3.4's JSON-text rule): a key-like field holding a hex secret.
fn is_hex_key_value(key: &str, value: &str) -> bool {
    value.len() >= 32
        && value.bytes().all(|b| b.is_ascii_hexdigit())
        && key_words(key).last().is_some_and(|w| w == "key")
}

fn regex(pattern: &str) -> Regex {
    // The patterns are constants checked by the unit tests.
    #[expect(clippy::unwrap_used, reason = "constant patterns, covered by tests")]
    Regex::new(pattern).unwrap()
}

static EMAIL: LazyLock<Regex> =
    LazyLock::new(|| regex(r"[A-Za-z0-9._%+\-]+@[A-Za-z0-9.\-]+\.[A-Za-z]{2,}"));
static BEARER: LazyLock<Regex> = LazyLock::new(|| regex(r"(?i)\bbearer\s+[A-Za-z0-9\-_.~+/]+=*"));
static AWS_KEY: LazyLock<Regex> = LazyLock::new(|| regex(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b"));
static GITHUB: LazyLock<Regex> =
    LazyLock::new(|| regex(r"\b(?:gh[opasur]_[A-Za-z0-9]{36,}|github_pat_[A-Za-z0-9_]{22,})"));
static SLACK: LazyLock<Regex> = LazyLock::new(|| regex(r"\bxox[baprs]-[A-Za-z0-9\-]+"));
static JWT: LazyLock<Regex> =
    LazyLock::new(|| regex(r"\beyJ[A-Za-z0-9_\-]+\.[A-Za-z0-9_\-]+\.[A-Za-z0-9_\-]+"));
/// A quoted key and quoted string value inside serialized JSON.
static QUOTED_PAIR: LazyLock<Regex> =
    LazyLock::new(|| regex(r#""([^"\\]{1,64})"(\s*:\s*)"(?:[^"\\]|\\.)*""#));
/// `key=value` or `key: value` in free text, URLs and headers.
static TEXT_PAIR: LazyLock<Regex> = LazyLock::new(|| {
    regex(r#"\b([A-Za-z][A-Za-z0-9_.\-]{0,63})(\\?"?\s*[:=]\s*\\?"?)([^\s,;&"'<>\\]+)"#)
});
static SSN: LazyLock<Regex> = LazyLock::new(|| regex(r"\b\d{3}-\d{2}-\d{4}\b"));
static CARD: LazyLock<Regex> = LazyLock::new(|| regex(r"\b\d(?:[ \-]?\d){12,18}\b"));
static PHONE: LazyLock<Regex> = LazyLock::new(|| {
    regex(concat!(
        r"(?:\+\d{1,3}[ .\-]?(?:\(\d{1,4}\)|\d{1,4})(?:[ .\-]?\d{2,4}){1,4}\b)",
        r"|(?:(?:\(\d{3}\)\s?|\b\d{3}[ .\-])\d{3}[ .\-]\d{4}\b)",
    ))
});

/// The Luhn checksum of a digit string (card numbers).
pub fn luhn_valid(digits: &str) -> bool {
    let mut sum = 0u32;
    for (i, b) in digits.bytes().rev().enumerate() {
        let Some(d) = (b as char).to_digit(10) else {
            return false;
        };
        sum += if i % 2 == 1 {
            let twice = d * 2;
            if twice > 9 {
                twice - 9
            } else {
                twice
            }
        } else {
            d
        };
    }
    !digits.is_empty() && sum % 10 == 0
}

fn apply<'a>(
    text: Cow<'a, str>,
    gate: bool,
    re: &Regex,
    replace: impl FnMut(&Captures<'_>) -> String,
) -> Cow<'a, str> {
    if !gate {
        return text;
    }
    match re.replace_all(&text, replace) {
        Cow::Borrowed(_) => text,
        Cow::Owned(changed) => Cow::Owned(changed),
    }
}

/// Replaces `key <sep> value` pairs whose key (group 1) is sensitive. After a harmless key the
/// search resumes right after that key, so `failed: password: x` still finds `password`.
fn replace_pairs<'a>(
    text: Cow<'a, str>,
    re: &Regex,
    replacement: impl Fn(&Captures<'_>) -> String,
) -> Cow<'a, str> {
    let mut out = String::new();
    let mut last = 0;
    let mut pos = 0;
    while pos <= text.len() {
        let Some(c) = re.captures_at(&text, pos) else {
            break;
        };
        let (Some(whole), Some(key)) = (c.get(0), c.get(1)) else {
            break;
        };
        let value = c.get(3).map_or("", |m| m.as_str());
        if is_sensitive_key(key.as_str()) && value != REDACTED {
            out.push_str(&text[last..whole.start()]);
            out.push_str(&replacement(&c));
            last = whole.end();
            pos = whole.end();
        } else {
            pos = key.end();
        }
    }
    if last == 0 {
        return text;
    }
    out.push_str(&text[last..]);
    Cow::Owned(out)
}

fn fixed(replacement: &'static str) -> impl FnMut(&Captures<'_>) -> String {
    move |_| replacement.to_owned()
}

/// Redacts secrets and PII inside one string (see the module doc for the patterns, applied in
/// that order). Cheap for strings that cannot match: every pattern is gated by a byte check.
pub fn redact_text(text: &str) -> Cow<'_, str> {
    let digits = text.bytes().filter(u8::is_ascii_digit).count();
    let mut out = Cow::Borrowed(text);
    out = apply(out, text.contains('@'), &EMAIL, fixed("<REDACTED_EMAIL>"));
    let lower_has_bearer = text.len() >= 6 && text.to_ascii_lowercase().contains("bearer");
    out = apply(out, lower_has_bearer, &BEARER, fixed("Bearer <REDACTED>"));
    out = apply(
        out,
        text.contains("AKIA") || text.contains("ASIA"),
        &AWS_KEY,
        fixed("<REDACTED_AWS_KEY>"),
    );
    out = apply(
        out,
        text.contains('_') && (text.contains("gh") || text.contains("github")),
        &GITHUB,
        fixed("<REDACTED_GITHUB_TOKEN>"),
    );
    out = apply(
        out,
        text.contains("xox"),
        &SLACK,
        fixed("<REDACTED_SLACK_TOKEN>"),
    );
    out = apply(out, text.contains("eyJ"), &JWT, fixed("<REDACTED_JWT>"));
    if out.contains('"') && out.contains(':') {
        out = replace_pairs(out, &QUOTED_PAIR, |c| {
            format!("\"{}\"{}\"{REDACTED}\"", &c[1], &c[2])
        });
    }
    if out.contains('=') || out.contains(':') {
        out = replace_pairs(out, &TEXT_PAIR, |c| format!("{}{}{REDACTED}", &c[1], &c[2]));
    }
    out = apply(out, digits >= 9, &SSN, fixed("<REDACTED_SSN>"));
    out = apply(out, digits >= 13, &CARD, |c: &Captures<'_>| {
        let only: String = c[0].chars().filter(char::is_ascii_digit).collect();
        if (13..=19).contains(&only.len()) && luhn_valid(&only) {
            "<REDACTED_CARD>".to_owned()
        } else {
            c[0].to_owned()
        }
    });
    out = apply(out, digits >= 8, &PHONE, |c: &Captures<'_>| {
        let n = c[0].chars().filter(char::is_ascii_digit).count();
        if (8..=15).contains(&n) {
            "<REDACTED_PHONE>".to_owned()
        } else {
            c[0].to_owned()
        }
    });
    out
}

/// Redacts a string in place; returns whether it changed.
pub fn redact_string(text: &mut String) -> bool {
    match redact_text(text) {
        Cow::Borrowed(_) => false,
        Cow::Owned(changed) => {
            *text = changed;
            true
        }
    }
}

/// What a map key says about redaction: whether it names a secret ([`is_sensitive_key`]) and
/// whether the key text itself carries PII ([`redact_text`] changes it).
#[derive(Clone, Copy)]
struct KeyVerdict {
    names_secret: bool,
    carries_pii: bool,
}

/// Keys longer than this are judged afresh each time rather than remembered.
const REMEMBERED_KEY_LEN: usize = 64;
/// Distinct keys one thread remembers before it starts over, so hostile payloads with endless
/// new keys cost time, never memory.
const REMEMBERED_KEYS: usize = 4096;

thread_local! {
    /// Verdicts of keys seen before. Telemetry repeats a small set of attribute names, and
    /// judging one (splitting it into words, matching every stem and pattern) cost more than
    /// the rest of a span's redaction.
    static KEY_VERDICTS: RefCell<HashMap<String, KeyVerdict>> = RefCell::default();
}

fn key_verdict(key: &str) -> KeyVerdict {
    let judge = || KeyVerdict {
        names_secret: is_sensitive_key(key),
        carries_pii: matches!(redact_text(key), Cow::Owned(_)),
    };
    if key.len() > REMEMBERED_KEY_LEN {
        return judge();
    }
    KEY_VERDICTS.with(|verdicts| {
        let mut verdicts = verdicts.borrow_mut();
        if let Some(verdict) = verdicts.get(key) {
            return *verdict;
        }
        if verdicts.len() >= REMEMBERED_KEYS {
            verdicts.clear();
        }
        let verdict = judge();
        verdicts.insert(key.to_owned(), verdict);
        verdict
    })
}

/// Redacts map keys that themselves carry PII (an e-mail used as a key); rebuilds the map only
/// when one changes. A redacted key that collides with another keeps the first value.
fn redact_keys(map: &mut Map<String, Value>) {
    if !map.keys().any(|k| key_verdict(k).carries_pii) {
        return;
    }
    let old = std::mem::take(map);
    for (key, value) in old {
        let key = redact_text(&key).into_owned();
        map.entry(key).or_insert(value);
    }
}

/// Redacts a JSON value in place, at every depth (an explicit stack, no recursion).
pub fn redact_value(value: &mut Value) {
    let mut stack: Vec<&mut Value> = vec![value];
    while let Some(current) = stack.pop() {
        match current {
            Value::String(text) => {
                redact_string(text);
            }
            Value::Array(items) => stack.extend(items.iter_mut()),
            Value::Object(map) => {
                redact_keys(map);
                for (key, child) in map.iter_mut() {
                    if key_verdict(key).names_secret {
                        *child = Value::String(REDACTED.to_owned());
                    } else if matches!(child, Value::String(s) if is_hex_key_value(key, s)) {
                        *child = Value::String("<REDACTED_KEY>".to_owned());
                    } else {
                        stack.push(child);
                    }
                }
            }
            Value::Null | Value::Bool(_) | Value::Number(_) => {}
        }
    }
}

/// A redacted copy of `value`.
pub fn redacted(mut value: Value) -> Value {
    redact_value(&mut value);
    value
}

/// A redacted copy of optional free text.
pub fn redacted_text(text: Option<String>) -> Option<String> {
    text.map(|mut t| {
        redact_string(&mut t);
        t
    })
}

/// A client address as it may be stored: the host part dropped, as analytics tools anonymize
/// addresses (IPv4 keeps its /24, IPv6 its /48), so it still tells networks apart but no longer
/// names a machine. `None` when `text` is not an IP address.
pub fn anonymized_ip(text: &str) -> Option<String> {
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
    Some(match text.trim().parse::<IpAddr>().ok()? {
        IpAddr::V4(v4) => {
            let [a, b, c, _] = v4.octets();
            Ipv4Addr::new(a, b, c, 0).to_string()
        }
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => {
                let [a, b, c, _] = v4.octets();
                Ipv4Addr::new(a, b, c, 0).to_ipv6_mapped().to_string()
            }
            None => {
                let s = v6.segments();
                Ipv6Addr::new(s[0], s[1], s[2], 0, 0, 0, 0, 0).to_string()
            }
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn key_words_split_every_case_style() {
        let cases: &[(&str, &[&str])] = &[
            ("user_password", &["user", "password"]),
            ("apiToken", &["api", "token"]),
            ("X-API-Key", &["x", "api", "key"]),
            ("HTTPAuthorization", &["http", "authorization"]),
            ("max_tokens", &["max", "tokens"]),
            ("oauth2Token", &["oauth2", "token"]),
        ];
        for (key, want) in cases {
            assert_eq!(key_words(key), *want, "{key}");
        }
    }

    #[test]
    fn sensitive_keys_by_containment_and_case() {
        let sensitive = [
            // the Python platform's exact key list
            "password",
            "passwd",
            "pwd",
            "secret",
            "api_key",
            "apikey",
            "api-key",
            "token",
            "access_token",
            "refresh_token",
            "auth_token",
            "authorization",
            "bearer",
            "private_key",
            "privatekey",
            "ssh_key",
            "credentials",
            "cred",
            "ssn",
            "social_security",
            "credit_card",
            "creditcard",
            "card_number",
            "cvv",
            "cvc",
            // containment and case (docs/decisions.md D27)
            "user_password",
            "apiToken",
            "Authorization",
            "PASSWORD",
            "X-Api-Key",
            "clientSecret",
            "db_password_hash",
            "userSSN",
            "github_token",
            "auth",
            "Set-Cookie",
            "AWS_SECRET_ACCESS_KEY",
            "sessionToken",
            "auth_tokens",
        ];
        for key in sensitive {
            assert!(is_sensitive_key(key), "{key} should be sensitive");
        }
        let harmless = [
            "max_tokens",
            "input_tokens",
            "outputTokens",
            "token_count",
            "tokens",
            "token_type",
            "tokenizer",
            "classname",
            "credit_limit",
            "author",
            "key",
            "idempotency_key",
            "model",
            "temperature",
            "url",
            "business",
        ];
        for key in harmless {
            assert!(!is_sensitive_key(key), "{key} should be kept");
        }
    }

    /// One row per string pattern: input, expected output.
    #[test]
    fn string_patterns() {
        let cases: &[(&str, &str)] = &[
            // e-mail
            (
                "mail bob.smith+x@example.co.uk now",
                "mail <REDACTED_EMAIL> now",
            ),
            ("no at sign here", "no at sign here"),
            // bearer
            (
                "Authorization header Bearer abc.def-123_x",
                "Authorization header Bearer <REDACTED>",
            ),
            ("use bearer eyJraw/+= ok", "use Bearer <REDACTED> ok"),
            // AWS
            (
                "key AKIAIOSFODNN7EXAMPLE used",
                "key <REDACTED_AWS_KEY> used",
            ),
            // GitHub
            (
                "ghp_abcdefghijklmnopqrstuvwxyz0123456789 pushed",
                "<REDACTED_GITHUB_TOKEN> pushed",
            ),
            (
                "gho_ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789",
                "<REDACTED_GITHUB_TOKEN>",
            ),
            (
                "gha_abcdefghijklmnopqrstuvwxyz0123456789",
                "<REDACTED_GITHUB_TOKEN>",
            ),
            // Slack
            (
                "hook xoxb-1234-5678-abcdEFGH end",
                "hook <REDACTED_SLACK_TOKEN> end",
            ),
            // JWT
            (
                "jwt eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.sig_nature-1",
                "jwt <REDACTED_JWT>",
            ),
            // serialized JSON with a sensitive key
            (
                r#"{"user": "bob", "apiToken": "s3cr3t", "n": 1}"#,
                r#"{"user": "bob", "apiToken": "<REDACTED>", "n": 1}"#,
            ),
            // free-text pairs
            (
                "https://api.x.io/v1?q=cats&api_key=abc123&page=2",
                "https://api.x.io/v1?q=cats&api_key=<REDACTED>&page=2",
            ),
            (
                "login failed: password: hunter2",
                "login failed: password: <REDACTED>",
            ),
            ("max_tokens: 1024", "max_tokens: 1024"),
            // SSN
            ("ssn is 123-45-6789.", "ssn is <REDACTED_SSN>."),
            ("date 2026-11-27", "date 2026-11-27"),
            // cards: Luhn-valid runs of 13-19 digits, plain or grouped
            ("card 4111111111111111 ok", "card <REDACTED_CARD> ok"),
            ("card 4111-1111-1111-1111", "card <REDACTED_CARD>"),
            ("amex 3782 822463 10005", "amex <REDACTED_CARD>"),
            ("ts 1732740000000 id", "ts 1732740000000 id"),
            ("not luhn 4111111111111112", "not luhn 4111111111111112"),
            // phones
            ("call +1 415 555 0100 today", "call <REDACTED_PHONE> today"),
            ("call (415) 555-0100", "call <REDACTED_PHONE>"),
            ("call 415-555-0100", "call <REDACTED_PHONE>"),
            ("uk +44 20 7946 0958", "uk <REDACTED_PHONE>"),
            ("version 1.2.3 at 12:30:45", "version 1.2.3 at 12:30:45"),
        ];
        for (input, want) in cases {
            assert_eq!(redact_text(input), *want, "input: {input}");
            // Redaction is idempotent.
            assert_eq!(redact_text(want), *want, "again: {want}");
        }
    }

    #[test]
    fn luhn() {
        assert!(luhn_valid("4111111111111111"));
        assert!(luhn_valid("378282246310005"));
        assert!(luhn_valid("5555555555554444"));
        assert!(!luhn_valid("4111111111111112"));
        assert!(!luhn_valid(""));
    }

    #[test]
    fn values_keys_and_every_depth() {
        let mut deep = json!({"password": "p"});
        for _ in 0..500 {
            deep = json!({"next": [deep], "note": "write to eve@example.org"});
        }
        redact_value(&mut deep);
        let text = deep.to_string();
        assert!(!text.contains("eve@example.org"));
        assert!(!text.contains("\"p\""));
        assert_eq!(text.matches("<REDACTED>").count(), 1);
        let mut value = json!({
            "user_password": {"nested": 1},
            "apiToken": 12345,
            "Authorization": ["Basic abc"],
            "max_tokens": 1024,
            "webhook_key": "0123456789abcdef0123456789abcdef",
            "bob@example.com": {"ssn": "123-45-6789"},
            "items": [{"card": "4111 1111 1111 1111"}, "+1 415 555 0100"],
        });
        redact_value(&mut value);
        assert_eq!(
            value,
            json!({
                "user_password": "<REDACTED>",
                "apiToken": "<REDACTED>",
                "Authorization": "<REDACTED>",
                "max_tokens": 1024,
                "webhook_key": "<REDACTED_KEY>",
                "<REDACTED_EMAIL>": {"ssn": "<REDACTED>"},
                "items": [{"card": "<REDACTED_CARD>"}, "<REDACTED_PHONE>"],
            })
        );
    }

    #[test]
    fn client_addresses_lose_their_host_part() {
        assert_eq!(
            anonymized_ip("203.0.113.77").as_deref(),
            Some("203.0.113.0")
        );
        assert_eq!(anonymized_ip(" 10.1.2.3 ").as_deref(), Some("10.1.2.0"));
        assert_eq!(
            anonymized_ip("2001:db8:85a3:8d3:1319:8a2e:370:7348").as_deref(),
            Some("2001:db8:85a3::")
        );
        assert_eq!(
            anonymized_ip("::ffff:192.0.2.128").as_deref(),
            Some("::ffff:192.0.2.0")
        );
        assert_eq!(anonymized_ip("localhost"), None);
        assert_eq!(anonymized_ip("203.0.113.77, 10.0.0.1"), None);
        assert_eq!(anonymized_ip(""), None);
    }

    #[test]
    fn timestamps_and_ids_in_audit_states_survive() {
        let state = serde_json::json!({
            "suppressed_until": "2026-12-05T10:00:00Z",
            "run_id": "run-0190d1e4-7c2b",
            "limit_cents": 125000,
        });
        assert_eq!(redacted(state.clone()), state);
    }

    /// A remembered verdict is the one judged afresh, and the memory stays bounded.
    #[test]
    fn remembered_key_verdicts_match_and_stay_bounded() {
        let keys = [
            "apiToken",
            "tool.name",
            "max_tokens",
            "alice@example.com",
            "user_password",
        ];
        for _ in 0..2 {
            for key in keys {
                let verdict = key_verdict(key);
                assert_eq!(verdict.names_secret, is_sensitive_key(key), "{key}");
                assert_eq!(
                    verdict.carries_pii,
                    matches!(redact_text(key), Cow::Owned(_)),
                    "{key}"
                );
            }
        }
        for i in 0..REMEMBERED_KEYS + 10 {
            key_verdict(&format!("attribute.{i}"));
        }
        KEY_VERDICTS.with(|v| assert!(v.borrow().len() <= REMEMBERED_KEYS));
        let mut secret = json!({ "session_token": "abc", "alice@example.com": 1 });
        redact_value(&mut secret);
        assert_eq!(
            secret,
            json!({ "session_token": REDACTED, "<REDACTED_EMAIL>": 1 })
        );
    }
}
