//! Generated-operation fuzzing of `/graphql` over HTTP (see docs/fuzzing.md).
//!
//! From a fixed seed, operations are generated from the served SDL: valid queries and mutations
//! (random root fields, typed arguments, nested selections, aliases, fragments, variables) and
//! hostile ones, by class — deep literals and selections, fragment bombs and cycles, alias
//! fan-out, overflowing numbers, control characters, invalid scalars, invalid UTF-8, forged
//! cursors, unknown names, wrong content types, mutations over GET, malformed JSON, huge bodies,
//! bad keys and persisted-query garbage. Every answer must be JSON, never 5xx, arrive within the
//! timeout, and carry an `extensions.code` (never `INTERNAL`) on each error; at the end the
//! server must still answer a simple query quickly.
//!
//! Knobs (environment): `LOGBOOK_FUZZ_CLASSES` (comma list, default all; `-name` removes one
//! from all, e.g. `-deep_lists,-fragment_bombs`), `LOGBOOK_FUZZ_OPS` (default 3000),
//! `LOGBOOK_FUZZ_SEED` (default fixed), `LOGBOOK_FUZZ_TIMEOUT_MS` (default 5000).

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::time::{Duration, Instant};

use async_graphql::parser::types::{BaseType, Type, TypeKind, TypeSystemDefinition};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use logbook::auth::Role;
use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::support::{fixed_time, insert_runs, make_runs, Backend, TestApp};

const DEFAULT_SEED: u64 = 0x10_6b00_c0de;
const DEFAULT_OPS: usize = 3000;

/// The codes a client may see (COMMON error set); anything else is a failure.
const CODES: &[&str] = &[
    "UNAUTHENTICATED",
    "FORBIDDEN",
    "NOT_FOUND",
    "BAD_USER_INPUT",
    "BAD_CURSOR",
    "IMMUTABLE_RECORD",
    "IDEMPOTENCY_CONFLICT",
    "INVALID_TRANSITION",
    "REPLAY_MISMATCH",
    "QUERY_TOO_COMPLEX",
    "QUERY_TOO_DEEP",
    "RATE_LIMITED",
    "PAYLOAD_TOO_LARGE",
    "UNAVAILABLE",
];

// ---------------------------------------------------------------------------------------------
// Classes and settings

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Class {
    Valid,
    Numbers,
    Strings,
    Scalars,
    Utf8,
    Cursors,
    Unknown,
    DeepLists,
    DeepSelections,
    FragmentBombs,
    FragmentCycles,
    Aliases,
    ContentTypes,
    GetMutation,
    Json,
    Huge,
    Auth,
    Persisted,
}

impl Class {
    const ALL: [Class; 18] = [
        Class::Valid,
        Class::Numbers,
        Class::Strings,
        Class::Scalars,
        Class::Utf8,
        Class::Cursors,
        Class::Unknown,
        Class::DeepLists,
        Class::DeepSelections,
        Class::FragmentBombs,
        Class::FragmentCycles,
        Class::Aliases,
        Class::ContentTypes,
        Class::GetMutation,
        Class::Json,
        Class::Huge,
        Class::Auth,
        Class::Persisted,
    ];

    fn name(self) -> &'static str {
        match self {
            Class::Valid => "valid",
            Class::Numbers => "numbers",
            Class::Strings => "strings",
            Class::Scalars => "scalars",
            Class::Utf8 => "utf8",
            Class::Cursors => "cursors",
            Class::Unknown => "unknown",
            Class::DeepLists => "deep_lists",
            Class::DeepSelections => "deep_selections",
            Class::FragmentBombs => "fragment_bombs",
            Class::FragmentCycles => "fragment_cycles",
            Class::Aliases => "aliases",
            Class::ContentTypes => "content_types",
            Class::GetMutation => "get_mutation",
            Class::Json => "json",
            Class::Huge => "huge",
            Class::Auth => "auth",
            Class::Persisted => "persisted",
        }
    }

    /// Relative share of the generated operations.
    fn weight(self) -> u32 {
        match self {
            Class::Valid => 30,
            Class::Numbers | Class::Strings | Class::Scalars | Class::Unknown => 6,
            Class::Cursors | Class::Json => 5,
            Class::Utf8 | Class::ContentTypes | Class::Auth => 4,
            Class::DeepLists
            | Class::DeepSelections
            | Class::FragmentCycles
            | Class::Aliases
            | Class::GetMutation
            | Class::Persisted => 3,
            Class::FragmentBombs | Class::Huge => 1,
        }
    }
}

struct Settings {
    classes: Vec<Class>,
    ops: usize,
    seed: u64,
    timeout: Duration,
    /// Print every operation and answer (clipped): `LOGBOOK_FUZZ_VERBOSE=1`.
    verbose: bool,
}

impl Settings {
    fn from_env() -> Settings {
        let classes = match std::env::var("LOGBOOK_FUZZ_CLASSES") {
            Ok(list) if !list.trim().is_empty() && list.trim() != "all" => {
                let tokens: Vec<&str> = list
                    .split(',')
                    .map(str::trim)
                    .filter(|t| !t.is_empty())
                    .collect();
                let mut chosen: Vec<Class> = if tokens.iter().all(|t| t.starts_with('-')) {
                    Class::ALL.to_vec()
                } else {
                    Vec::new()
                };
                for token in tokens {
                    let (remove, name) = match token.strip_prefix('-') {
                        Some(name) => (true, name),
                        None => (false, token),
                    };
                    let class = Class::ALL
                        .into_iter()
                        .find(|c| c.name() == name)
                        .unwrap_or_else(|| {
                            panic!(
                                "LOGBOOK_FUZZ_CLASSES: unknown class `{name}` (known: {})",
                                Class::ALL.map(Class::name).join(", ")
                            )
                        });
                    chosen.retain(|c| *c != class);
                    if !remove {
                        chosen.push(class);
                    }
                }
                chosen.sort();
                chosen
            }
            _ => Class::ALL.to_vec(),
        };
        assert!(!classes.is_empty(), "LOGBOOK_FUZZ_CLASSES selects no class");
        let number = |name: &str, default: u64| {
            std::env::var(name).ok().map_or(default, |v| {
                let v = v.trim();
                let parsed = match v.strip_prefix("0x") {
                    Some(hex) => u64::from_str_radix(hex, 16),
                    None => v.parse(),
                };
                parsed.unwrap_or_else(|_| panic!("{name}: not a number: {v}"))
            })
        };
        Settings {
            classes,
            ops: number("LOGBOOK_FUZZ_OPS", DEFAULT_OPS as u64) as usize,
            seed: number("LOGBOOK_FUZZ_SEED", DEFAULT_SEED),
            timeout: Duration::from_millis(number("LOGBOOK_FUZZ_TIMEOUT_MS", 5000)),
            verbose: std::env::var("LOGBOOK_FUZZ_VERBOSE").is_ok_and(|v| v == "1"),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The schema, as the generator needs it

struct Arg {
    name: String,
    ty: Type,
    has_default: bool,
}

struct Field {
    name: String,
    args: Vec<Arg>,
    ty: Type,
}

enum Kind {
    Scalar,
    Object(Vec<Field>),
    Interface(Vec<Field>),
    Union(Vec<String>),
    Enum(Vec<String>),
    /// Fields, and whether it is a `@oneOf` input (exactly one field).
    Input(Vec<Arg>, bool),
}

struct SchemaModel {
    types: HashMap<String, Kind>,
    implementors: HashMap<String, Vec<String>>,
}

fn named(ty: &Type) -> &str {
    match &ty.base {
        BaseType::Named(name) => name.as_str(),
        BaseType::List(inner) => named(inner),
    }
}

impl SchemaModel {
    fn parse(sdl: &str) -> SchemaModel {
        let document = async_graphql::parser::parse_schema(sdl).expect("the served SDL parses");
        let args = |list: &[async_graphql::Positioned<
            async_graphql::parser::types::InputValueDefinition,
        >]| {
            list.iter()
                .map(|a| Arg {
                    name: a.node.name.node.to_string(),
                    ty: a.node.ty.node.clone(),
                    has_default: a.node.default_value.is_some(),
                })
                .collect::<Vec<_>>()
        };
        let fields = |list: &[async_graphql::Positioned<
            async_graphql::parser::types::FieldDefinition,
        >]| {
            list.iter()
                .map(|f| Field {
                    name: f.node.name.node.to_string(),
                    args: args(&f.node.arguments),
                    ty: f.node.ty.node.clone(),
                })
                .collect::<Vec<_>>()
        };
        let mut types = HashMap::new();
        let mut implementors: HashMap<String, Vec<String>> = HashMap::new();
        for definition in &document.definitions {
            let TypeSystemDefinition::Type(def) = definition else {
                continue;
            };
            let name = def.node.name.node.to_string();
            let kind = match &def.node.kind {
                TypeKind::Scalar => Kind::Scalar,
                TypeKind::Object(object) => {
                    for interface in &object.implements {
                        implementors
                            .entry(interface.node.to_string())
                            .or_default()
                            .push(name.clone());
                    }
                    Kind::Object(fields(&object.fields))
                }
                TypeKind::Interface(interface) => Kind::Interface(fields(&interface.fields)),
                TypeKind::Union(union) => {
                    Kind::Union(union.members.iter().map(|m| m.node.to_string()).collect())
                }
                TypeKind::Enum(e) => Kind::Enum(
                    e.values
                        .iter()
                        .map(|v| v.node.value.node.to_string())
                        .collect(),
                ),
                TypeKind::InputObject(input) => Kind::Input(
                    args(&input.fields),
                    def.node
                        .directives
                        .iter()
                        .any(|d| d.node.name.node == "oneOf"),
                ),
            };
            types.insert(name, kind);
        }
        assert!(
            matches!(types.get("Query"), Some(Kind::Object(_))),
            "the SDL has a Query type"
        );
        SchemaModel {
            types,
            implementors,
        }
    }

    fn is_composite(&self, name: &str) -> bool {
        matches!(
            self.types.get(name),
            Some(Kind::Object(_) | Kind::Interface(_) | Kind::Union(_))
        )
    }

    fn fields(&self, name: &str) -> &[Field] {
        match self.types.get(name) {
            Some(Kind::Object(fields) | Kind::Interface(fields)) => fields,
            _ => &[],
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Values: one representation printed as a GraphQL literal or as JSON (for variables)

#[derive(Clone)]
enum Lit {
    Null,
    /// A number token, printed verbatim in both forms (so it may overflow anything).
    Num(String),
    Bool(bool),
    Enum(String),
    Str(String),
    /// Different text per form, for what one form cannot express (lone surrogates, bad keys).
    Raw {
        gql: String,
        json: String,
    },
    List(Vec<Lit>),
    Obj(Vec<(String, Lit)>),
}

fn gql_string(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                let _ = write!(out, "\\u{:04X}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

fn json_string(s: &str) -> String {
    serde_json::to_string(s).expect("strings serialize")
}

impl Lit {
    fn gql(&self, out: &mut String) {
        match self {
            Lit::Null => out.push_str("null"),
            Lit::Num(n) => out.push_str(n),
            Lit::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            Lit::Enum(e) => out.push_str(e),
            Lit::Str(s) => gql_string(s, out),
            Lit::Raw { gql, .. } => out.push_str(gql),
            Lit::List(items) => {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push_str(", ");
                    }
                    item.gql(out);
                }
                out.push(']');
            }
            Lit::Obj(fields) => {
                out.push('{');
                for (i, (name, value)) in fields.iter().enumerate() {
                    if i > 0 {
                        out.push_str(", ");
                    }
                    out.push_str(name);
                    out.push_str(": ");
                    value.gql(out);
                }
                out.push('}');
            }
        }
    }

    fn json(&self, out: &mut String) {
        match self {
            Lit::Null => out.push_str("null"),
            Lit::Num(n) => out.push_str(n),
            Lit::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            Lit::Enum(s) | Lit::Str(s) => out.push_str(&json_string(s)),
            Lit::Raw { json, .. } => out.push_str(json),
            Lit::List(items) => {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    item.json(out);
                }
                out.push(']');
            }
            Lit::Obj(fields) => {
                out.push('{');
                for (i, (name, value)) in fields.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    out.push_str(&json_string(name));
                    out.push(':');
                    value.json(out);
                }
                out.push('}');
            }
        }
    }

    fn gql_text(&self) -> String {
        let mut out = String::new();
        self.gql(&mut out);
        out
    }
}

// ---------------------------------------------------------------------------------------------
// Operations on the wire

struct Op {
    class: Class,
    method: reqwest::Method,
    /// The raw query string after `?`, already percent-encoded.
    query: Option<String>,
    content_type: Option<Vec<u8>>,
    body: Vec<u8>,
    auth: Option<Vec<u8>>,
    accept: Option<&'static str>,
    headers: Vec<(&'static str, Vec<u8>)>,
    /// Must not be executed: a successful operation sent where none may run (a mutation over
    /// GET, a CSRF-able content type): `data` must be absent or null.
    must_refuse: bool,
}

fn request_body(doc: &str, variables: Option<&str>, operation: Option<&str>) -> String {
    let mut body = String::from("{\"query\":");
    body.push_str(&json_string(doc));
    if let Some(variables) = variables {
        body.push_str(",\"variables\":");
        body.push_str(variables);
    }
    if let Some(operation) = operation {
        body.push_str(",\"operationName\":");
        body.push_str(&json_string(operation));
    }
    body.push('}');
    body
}

/// `application/x-www-form-urlencoded` encoding of `pairs`, as a URL query string.
fn encode_query(pairs: &[(&str, &str)]) -> String {
    let mut url = reqwest::Url::parse("http://fuzz.invalid/").expect("static URL");
    {
        let mut query = url.query_pairs_mut();
        for (name, value) in pairs {
            query.append_pair(name, value);
        }
    }
    url.query().unwrap_or_default().to_owned()
}

fn sha256_hex(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))
}

/// What the server already holds, so lookups hit real rows and cursors are real.
struct Seeds {
    /// A key of each role for tenant `acme`.
    keys: Vec<(Role, String)>,
    /// An ADMIN key of another tenant.
    other_tenant: String,
    run_ids: Vec<String>,
    trace_ids: Vec<String>,
    node_ids: Vec<String>,
    /// Real cursors of two lists (llmRuns, traces).
    run_cursors: Vec<String>,
    trace_cursors: Vec<String>,
    /// Hash of a registered persisted mutation (must never run over GET).
    persisted_mutation: String,
}

impl Seeds {
    fn key(&self, role: Role) -> &str {
        &self
            .keys
            .iter()
            .find(|(r, _)| *r == role)
            .expect("a key per role")
            .1
    }
}

/// A mutation that succeeds whenever it runs with an INGEST key: if it is executed where it
/// must not be, `data` shows it.
const ALWAYS_RUNS_MUTATION: &str = "mutation { startTrace(input: {}) { traceId } }";
const VIEWER_QUERY: &str = "{ viewer { tenantId role } }";

// ---------------------------------------------------------------------------------------------
// The generator

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Plausible,
    Numbers,
    Strings,
    Scalars,
    Cursors,
    Unknown,
}

struct Gen<'a> {
    rng: ChaCha8Rng,
    schema: &'a SchemaModel,
    seeds: &'a Seeds,
    mode: Mode,
    vars: Vec<(String, String, Lit)>,
    fragments: Vec<String>,
    counter: usize,
    /// The field whose arguments are being generated.
    current_field: String,
}

struct Doc {
    text: String,
    variables: Option<String>,
    operation: Option<String>,
    mutation: bool,
}

const INVALID_UTF8: &[&[u8]] = &[
    b"\xff",
    b"\xfe\xff",
    b"\xc0\x80",
    b"\x80",
    b"\xe2\x82",
    b"\xed\xa0\x80",
    b"\xf4\x90\x80\x80",
    b"\xf8\x88\x80\x80\x80",
    b"\xc3",
];

impl<'a> Gen<'a> {
    fn new(seed: u64, schema: &'a SchemaModel, seeds: &'a Seeds) -> Self {
        Gen {
            rng: ChaCha8Rng::seed_from_u64(seed),
            schema,
            seeds,
            mode: Mode::Plausible,
            vars: Vec::new(),
            fragments: Vec::new(),
            counter: 0,
            current_field: String::new(),
        }
    }

    fn chance(&mut self, p: f64) -> bool {
        self.rng.random_bool(p)
    }

    fn pick<T: Clone>(&mut self, items: &[T]) -> T {
        items
            .choose(&mut self.rng)
            .expect("non-empty choice")
            .clone()
    }

    fn next_id(&mut self) -> usize {
        self.counter += 1;
        self.counter
    }

    fn class(&mut self, classes: &[Class]) -> Class {
        let total: u32 = classes.iter().map(|c| c.weight()).sum();
        let mut roll = self.rng.random_range(0..total);
        for class in classes {
            if roll < class.weight() {
                return *class;
            }
            roll -= class.weight();
        }
        classes[0]
    }

    fn hostile(&mut self, mode: Mode) -> bool {
        self.mode == mode && self.chance(0.5)
    }

    // --- scalar values -------------------------------------------------------------------

    fn int(&mut self, arg: &str) -> Lit {
        if self.hostile(Mode::Numbers) {
            let huge = "9".repeat(self.rng.random_range(20..2000));
            return Lit::Num(self.pick(&[
                "2147483648".to_owned(),
                "-2147483649".to_owned(),
                "2147483647".to_owned(),
                "-2147483648".to_owned(),
                "9223372036854775807".to_owned(),
                "9223372036854775808".to_owned(),
                "-9223372036854775809".to_owned(),
                "18446744073709551616".to_owned(),
                huge,
                "1.5".to_owned(),
                "1e3".to_owned(),
                "1e400".to_owned(),
                "-0".to_owned(),
                "-1".to_owned(),
                "0".to_owned(),
            ]));
        }
        if matches!(arg, "first" | "last") {
            return Lit::Num(self.rng.random_range(1..=5).to_string());
        }
        let n = self.pick(&[0, 1, 2, 3, 10, 42, 100, -1]);
        Lit::Num(n.to_string())
    }

    fn float(&mut self) -> Lit {
        if self.hostile(Mode::Numbers) {
            let long = format!("1{}.0", "0".repeat(self.rng.random_range(300..2000)));
            return Lit::Num(self.pick(&[
                "1e400".to_owned(),
                "-1e400".to_owned(),
                "1e-400".to_owned(),
                "1.7976931348623157e309".to_owned(),
                "4.9e-324".to_owned(),
                "-0.0".to_owned(),
                "123456789012345678901234567890".to_owned(),
                "-1.5".to_owned(),
                long,
            ]));
        }
        Lit::Num(
            self.pick(&["0", "0.5", "1.0", "12.0", "100.25", "3"])
                .to_owned(),
        )
    }

    fn string(&mut self, arg: &str) -> Lit {
        if self.hostile(Mode::Strings) {
            return self.hostile_string();
        }
        let seeds = self.seeds;
        match arg {
            "runId" | "left" | "right" if self.chance(0.6) => {
                if arg == "runId" {
                    Lit::Str(self.pick(&seeds.run_ids))
                } else {
                    Lit::Str(self.pick(&seeds.trace_ids))
                }
            }
            "traceId" if self.chance(0.6) => Lit::Str(self.pick(&seeds.trace_ids)),
            "after" | "before" => self.cursor(),
            "idempotencyKey" => Lit::Str(format!("fz-key-{}", self.rng.random_range(0..20))),
            _ => {
                let len = self.rng.random_range(1..12);
                let text: String = (0..len)
                    .map(|_| self.pick(&['a', 'b', 'x', '1', '-', '_', '.', ':', 'Z']))
                    .collect();
                Lit::Str(self.pick(&[
                    text,
                    "acme".into(),
                    "fz-run-00001".into(),
                    "trace_fz".into(),
                    "success".into(),
                    "failure".into(),
                    "a".repeat(64),
                    "0".repeat(64),
                    "https://example.com/issues/1".into(),
                    "SUCCESS".into(),
                ]))
            }
        }
    }

    fn hostile_string(&mut self) -> Lit {
        let long = "x".repeat(self.rng.random_range(1000..70_000));
        let emoji = "😀".repeat(self.rng.random_range(10..2000));
        match self.rng.random_range(0..3) {
            0 => Lit::Raw {
                gql: "\"\\uD800\"".into(),
                json: "\"\\ud800\"".into(),
            },
            _ => Lit::Str(self.pick(&[
                "\0".to_owned(),
                "a\0b".to_owned(),
                "\0".repeat(100),
                "\u{1}\u{2}\u{1f}".to_owned(),
                "\u{7f}".to_owned(),
                "\u{fffe}\u{ffff}".to_owned(),
                "\u{10ffff}".to_owned(),
                "\u{202e}evil".to_owned(),
                "\r\n\t".to_owned(),
                "' OR '1'='1".to_owned(),
                "%_\\".to_owned(),
                "\"".to_owned(),
                " ".to_owned(),
                String::new(),
                long,
                emoji,
            ])),
        }
    }

    fn datetime(&mut self) -> Lit {
        if self.hostile(Mode::Scalars) {
            return match self.rng.random_range(0..6) {
                0 => Lit::Num(self.pick(&["0", "1e400", "-1", "1700000000"]).to_owned()),
                1 => Lit::Bool(true),
                2 => Lit::List(vec![]),
                _ => Lit::Str(
                    self.pick(&[
                        "",
                        "not a date",
                        "2026-13-01T00:00:00Z",
                        "2026-02-30T00:00:00Z",
                        "2026-11-01T12:00:60Z",
                        "2026-11-01T23:59:60.999999999Z",
                        "9999-12-31T23:59:59.999999999Z",
                        "0000-01-01T00:00:00Z",
                        "0001-01-01T00:00:00+23:59",
                        "+275760-09-13T00:00:00Z",
                        "-0001-01-01T00:00:00Z",
                        "262143-12-31T23:59:59Z",
                        "2026-11-01T12:00:00",
                        "2026-11-01",
                        "2026-11-01T12:00:00.12345678901234567890Z",
                        "1970-01-01T00:00:00-23:59",
                        "2026-11-01T12:00:00\u{0}Z",
                    ])
                    .to_owned(),
                ),
            };
        }
        Lit::Str(
            self.pick(&[
                "2026-11-01T12:00:00Z",
                "2026-11-01T11:59:30.123456Z",
                "2026-10-31T00:00:00+02:00",
                "2030-01-01T00:00:00Z",
                "2020-01-01T00:00:00Z",
            ])
            .to_owned(),
        )
    }

    fn date(&mut self) -> Lit {
        if self.hostile(Mode::Scalars) {
            return match self.rng.random_range(0..4) {
                0 => Lit::Num("20261101".into()),
                _ => Lit::Str(
                    self.pick(&[
                        "",
                        "2026-02-30",
                        "2026-00-10",
                        "+10000-01-01",
                        "10000-01-01",
                        "262143-12-31",
                        "-262144-01-01",
                        "0000-01-01",
                        "2026-1-1",
                        "2026-11-01T00:00:00Z",
                    ])
                    .to_owned(),
                ),
            };
        }
        Lit::Str(
            self.pick(&["2026-11-01", "2026-10-01", "2026-12-31"])
                .to_owned(),
        )
    }

    fn bigint(&mut self) -> Lit {
        if self.hostile(Mode::Scalars) || self.hostile(Mode::Numbers) {
            return match self.rng.random_range(0..2) {
                0 => Lit::Num(
                    self.pick(&[
                        "9223372036854775807",
                        "9223372036854775808",
                        "-9223372036854775809",
                        "1.5",
                        "1e400",
                        "-0",
                        "99999999999999999999999999999",
                    ])
                    .to_owned(),
                ),
                _ => Lit::Str(
                    self.pick(&[
                        "",
                        "9223372036854775808",
                        "-9223372036854775809",
                        "1e5",
                        " 1",
                        "+1",
                        "0x10",
                        "99999999999999999999999",
                        "1\0",
                    ])
                    .to_owned(),
                ),
            };
        }
        match self.rng.random_range(0..2) {
            0 => Lit::Str(self.pick(&["42", "0", "-7", "123456789012"]).to_owned()),
            _ => Lit::Num(self.pick(&["42", "0", "7"]).to_owned()),
        }
    }

    fn id(&mut self) -> Lit {
        if self.hostile(Mode::Cursors) {
            let forged = self.pick(&[
                "LlmRun:",
                "Nope:1",
                "LlmRun:\0",
                "Trace:fz-trace-0\0",
                ":::",
                "TraceMismatch:../../etc/passwd",
            ]);
            return Lit::Str(match self.rng.random_range(0..3) {
                0 => URL_SAFE_NO_PAD.encode(forged),
                1 => self.garbage_token(),
                _ => forged.to_owned(),
            });
        }
        let seeds = self.seeds;
        match self.rng.random_range(0..4) {
            0 | 1 => Lit::Str(self.pick(&seeds.node_ids)),
            2 => Lit::Str(self.pick(&seeds.run_ids)),
            _ => Lit::Str("nope".into()),
        }
    }

    fn garbage_token(&mut self) -> String {
        let len = self.rng.random_range(0..80);
        let mut bytes: Vec<u8> = (0..len).map(|_| self.rng.random()).collect();
        if let Some(first) = bytes.first_mut() {
            if self.chance(0.5) {
                *first = 1; // the cursor version byte
            }
        }
        URL_SAFE_NO_PAD.encode(bytes)
    }

    fn cursor(&mut self) -> Lit {
        let seeds = self.seeds;
        if !self.hostile(Mode::Cursors) {
            // A real cursor of the list being asked for, where the seeds have one.
            return match self.current_field.as_str() {
                "llmRuns" => Lit::Str(self.pick(&seeds.run_cursors)),
                "traces" => Lit::Str(self.pick(&seeds.trace_cursors)),
                _ => Lit::Null,
            };
        }
        let real = if self.chance(0.5) {
            self.pick(&seeds.run_cursors)
        } else {
            self.pick(&seeds.trace_cursors)
        };
        let mut flipped = real.clone().into_bytes();
        let at = self.rng.random_range(0..flipped.len());
        flipped[at] = if flipped[at] == b'A' { b'B' } else { b'A' };
        let cut = self.rng.random_range(0..real.len());
        Lit::Str(match self.rng.random_range(0..10) {
            0 => String::from_utf8(flipped).expect("ASCII"),
            1 => real[..cut].to_owned(),
            2 => format!("{real}A"),
            3 => format!("{real}=="),
            4 => real.replace('-', "+").replace('_', "/"),
            5 => "!!!not base64".into(),
            6 => "a".repeat(self.rng.random_range(100..100_000)),
            7 => String::new(),
            _ => self.garbage_token(),
        })
    }

    fn json_value(&mut self, depth: usize) -> Lit {
        if self.mode == Mode::Strings && depth == 0 && self.chance(0.5) {
            return Lit::Raw {
                gql: "{k: \"v\\u0000\", n: [\"\\u0000\"]}".into(),
                json: "{\"k\\u0000\":\"v\\u0000\",\"n\":[\"\\u0000\"]}".into(),
            };
        }
        match self.rng.random_range(0..7) {
            0 => Lit::Num(self.rng.random_range(-5..500).to_string()),
            1 => Lit::Str(self.pick(&["x", "timeout", "", "ok"]).into()),
            2 => Lit::Bool(self.chance(0.5)),
            3 | 4 if depth < 3 => Lit::List(
                (0..self.rng.random_range(0..3))
                    .map(|_| self.json_value(depth + 1))
                    .collect(),
            ),
            5 | 6 if depth < 3 => Lit::Obj(
                (0..self.rng.random_range(0..4))
                    .map(|i| {
                        let key = self.pick(&["a", "n", "temperature", "duration_ms", "error"]);
                        (format!("{key}{i}"), self.json_value(depth + 1))
                    })
                    .collect(),
            ),
            _ => Lit::Null,
        }
    }

    fn value(&mut self, ty: &Type, arg: &str, depth: usize) -> Lit {
        if ty.nullable && self.chance(0.06) {
            return Lit::Null;
        }
        match &ty.base {
            BaseType::List(inner) => {
                if self.chance(0.1) {
                    return self.value(inner, arg, depth + 1);
                }
                let n = self.rng.random_range(0..=3);
                Lit::List((0..n).map(|_| self.value(inner, arg, depth + 1)).collect())
            }
            BaseType::Named(name) => self.named_value(name.as_str(), arg, depth),
        }
    }

    fn named_value(&mut self, name: &str, arg: &str, depth: usize) -> Lit {
        match name {
            "Int" => self.int(arg),
            "Float" => self.float(),
            "String" => self.string(arg),
            "Boolean" => Lit::Bool(self.chance(0.5)),
            "ID" => self.id(),
            "DateTime" => self.datetime(),
            "Date" => self.date(),
            "BigInt" => self.bigint(),
            "JSON" => self.json_value(0),
            _ => {
                let schema = self.schema;
                match schema.types.get(name) {
                    Some(Kind::Enum(values)) => {
                        if self.mode == Mode::Unknown && self.chance(0.2) {
                            Lit::Enum("NOT_A_VALUE".into())
                        } else {
                            Lit::Enum(self.pick(values))
                        }
                    }
                    Some(Kind::Input(fields, true)) if depth < 6 && !fields.is_empty() => {
                        let field = fields.choose(&mut self.rng).expect("non-empty");
                        let mut ty = field.ty.clone();
                        ty.nullable = false;
                        let mut out =
                            vec![(field.name.clone(), self.value(&ty, &field.name, depth + 1))];
                        if self.mode != Mode::Plausible && self.chance(0.2) {
                            // Two fields of a oneOf input.
                            let other = fields.choose(&mut self.rng).expect("non-empty");
                            out.push((
                                other.name.clone(),
                                self.value(&other.ty, &other.name, depth + 1),
                            ));
                        }
                        Lit::Obj(out)
                    }
                    Some(Kind::Input(fields, _)) if depth < 6 => {
                        let mut out = Vec::new();
                        for field in fields {
                            let required = !field.ty.nullable && !field.has_default;
                            let p = if self.mode == Mode::Plausible {
                                0.35
                            } else {
                                0.6
                            };
                            if required || self.chance(p) {
                                out.push((
                                    field.name.clone(),
                                    self.value(&field.ty, &field.name, depth + 1),
                                ));
                            }
                        }
                        if self.mode == Mode::Unknown && self.chance(0.3) {
                            out.push(("zzNope".into(), Lit::Num("1".into())));
                        }
                        Lit::Obj(out)
                    }
                    Some(Kind::Input(..)) => Lit::Null,
                    _ => self.string(arg),
                }
            }
        }
    }

    // --- documents -----------------------------------------------------------------------

    fn argument(&mut self, arg: &Arg) -> String {
        let lit = self.value(&arg.ty, &arg.name, 0);
        let p = if self.mode == Mode::Scalars {
            0.6
        } else {
            0.25
        };
        if self.chance(p) {
            let name = format!("v{}", self.vars.len());
            self.vars.push((name.clone(), arg.ty.to_string(), lit));
            format!("${name}")
        } else {
            lit.gql_text()
        }
    }

    fn field(&mut self, field: &Field, depth: usize, max_depth: usize, out: &mut String) {
        out.push(' ');
        if self.chance(0.12) {
            let n = self.next_id();
            let _ = write!(out, "a{n}: ");
        }
        out.push_str(&field.name);
        self.current_field.clone_from(&field.name);
        let mut args = Vec::new();
        for arg in &field.args {
            let required = !arg.ty.nullable && !arg.has_default;
            let p = match (arg.name.as_str(), self.mode) {
                ("first" | "last", _) => 0.6,
                ("after" | "before", Mode::Cursors) => 0.8,
                (_, Mode::Plausible) => 0.25,
                _ => 0.5,
            };
            if required || self.chance(p) {
                let value = self.argument(arg);
                args.push(format!("{}: {value}", arg.name));
            }
        }
        if self.mode == Mode::Unknown && self.chance(0.15) {
            args.push("zzNope: 1".into());
        }
        if !args.is_empty() {
            let _ = write!(out, "({})", args.join(", "));
        }
        if self.chance(0.04) {
            out.push_str(if self.chance(0.5) {
                " @skip(if: false)"
            } else {
                " @include(if: true)"
            });
        }
        let target = named(&field.ty).to_owned();
        if self.schema.is_composite(&target) {
            if depth + 1 >= max_depth {
                self.leaf_selection(&target, out);
            } else {
                self.selection_set(&target, depth + 1, max_depth, out);
            }
        }
    }

    fn leaf_selection(&mut self, type_name: &str, out: &mut String) {
        let schema = self.schema;
        let leaves: Vec<&Field> = schema
            .fields(type_name)
            .iter()
            .filter(|f| !schema.is_composite(named(&f.ty)))
            .collect();
        out.push_str(" {");
        if leaves.is_empty() {
            out.push_str(" __typename");
        } else {
            let k = self.rng.random_range(1..=2.min(leaves.len()));
            for field in leaves
                .choose_multiple(&mut self.rng, k)
                .copied()
                .collect::<Vec<_>>()
            {
                self.field(field, usize::MAX - 1, 0, out);
            }
        }
        out.push_str(" }");
    }

    fn selection_set(&mut self, type_name: &str, depth: usize, max_depth: usize, out: &mut String) {
        let schema = self.schema;
        out.push_str(" {");
        match schema.types.get(type_name) {
            Some(Kind::Object(fields) | Kind::Interface(fields)) if !fields.is_empty() => {
                let k = self.rng.random_range(1..=3.min(fields.len()));
                let chosen: Vec<&Field> = fields.choose_multiple(&mut self.rng, k).collect();
                for field in chosen {
                    self.field(field, depth, max_depth, out);
                }
                if self.mode == Mode::Unknown && self.chance(0.15) {
                    out.push_str(" zzNope");
                }
                if let Some(implementors) = schema.implementors.get(type_name) {
                    if self.chance(0.5) {
                        let concrete = self.pick(implementors);
                        let _ = write!(out, " ... on {concrete}");
                        self.selection_set(&concrete, depth + 1, max_depth, out);
                    }
                }
                if self.chance(0.12) {
                    out.push_str(" __typename");
                }
                if depth + 1 < max_depth && self.chance(0.08) {
                    let name = format!("F{}", self.next_id());
                    let mut fragment = format!("fragment {name} on {type_name}");
                    self.selection_set(type_name, depth + 1, max_depth, &mut fragment);
                    self.fragments.push(fragment);
                    let _ = write!(out, " ...{name}");
                }
            }
            Some(Kind::Union(members)) if !members.is_empty() => {
                out.push_str(" __typename");
                let member = self.pick(members);
                let _ = write!(out, " ... on {member}");
                self.selection_set(&member, depth + 1, max_depth, out);
            }
            _ => out.push_str(" __typename"),
        }
        out.push_str(" }");
    }

    /// A generated operation on `root` (`Query`, `Mutation` or `Subscription`).
    fn document(&mut self, root: &str) -> Doc {
        self.vars.clear();
        self.fragments.clear();
        let schema = self.schema;
        let max_depth = self.rng.random_range(1..=5);
        let fields = schema.fields(root);
        let most = if root == "Query" { 3 } else { 2 };
        let k = self.rng.random_range(1..=most.min(fields.len()));
        let mut selection = String::from("{");
        for field in fields.choose_multiple(&mut self.rng, k).collect::<Vec<_>>() {
            self.field(field, 0, max_depth, &mut selection);
        }
        selection.push_str(" }");
        let keyword = match root {
            "Query" => "query",
            "Mutation" => "mutation",
            _ => "subscription",
        };
        let operation = self.chance(0.4).then(|| format!("Op{}", self.next_id()));
        let mut text = String::new();
        if operation.is_none() && self.vars.is_empty() && root == "Query" && self.chance(0.5) {
            text.push_str(&selection);
        } else {
            text.push_str(keyword);
            if let Some(name) = &operation {
                let _ = write!(text, " {name}");
            }
            if !self.vars.is_empty() {
                let defs: Vec<String> = self
                    .vars
                    .iter()
                    .map(|(name, ty, _)| format!("${name}: {ty}"))
                    .collect();
                let _ = write!(text, "({})", defs.join(", "));
            }
            text.push(' ');
            text.push_str(&selection);
        }
        for fragment in &self.fragments {
            text.push('\n');
            text.push_str(fragment);
        }
        let variables = (!self.vars.is_empty()).then(|| {
            let mut json = String::from("{");
            for (i, (name, _, lit)) in self.vars.iter().enumerate() {
                if i > 0 {
                    json.push(',');
                }
                json.push_str(&json_string(name));
                json.push(':');
                lit.json(&mut json);
            }
            json.push('}');
            json
        });
        // Now and then send the name, now and then none for a named operation (still fine).
        let operation = operation.filter(|_| self.chance(0.7));
        Doc {
            text,
            variables,
            operation,
            mutation: root == "Mutation",
        }
    }

    fn random_document(&mut self, mode: Mode) -> Doc {
        self.mode = mode;
        let root = match self.rng.random_range(0..20) {
            0..=11 => "Query",
            12..=18 => "Mutation",
            _ => "Subscription",
        };
        let doc = self.document(root);
        self.mode = Mode::Plausible;
        doc
    }

    // --- transport -----------------------------------------------------------------------

    fn auth(&mut self) -> Option<Vec<u8>> {
        let seeds = self.seeds;
        match self.rng.random_range(0..100) {
            0..=74 => {
                let (_, key) = self.pick(&seeds.keys);
                Some(format!("Bearer {key}").into_bytes())
            }
            75..=82 => Some(format!("Bearer {}", seeds.other_tenant).into_bytes()),
            83..=89 => None,
            _ => Some(self.bad_authorization()),
        }
    }

    fn bad_authorization(&mut self) -> Vec<u8> {
        let valid = self.seeds.key(Role::Admin).to_owned();
        let forged = format!("Bearer lb_{}", hex::encode(self.rng.random::<[u8; 24]>()));
        let long = format!("Bearer {}", "a".repeat(self.rng.random_range(100..8000)));
        match self.rng.random_range(0..12) {
            0 => b"Bearer".to_vec(),
            1 => b"Bearer ".to_vec(),
            2 => format!("bearer {valid}").into_bytes(),
            3 => format!("BEARER   {valid}   ").into_bytes(),
            4 => b"Basic dXNlcjpwYXNz".to_vec(),
            5 => format!("Bearer {valid}{valid}").into_bytes(),
            6 => long.into_bytes(),
            7 => forged.into_bytes(),
            8 => b"Bearer \xff\xfe\x80".to_vec(),
            9 => format!("Bearer {valid}, Bearer {}", self.seeds.other_tenant).into_bytes(),
            10 => format!("Token {valid}").into_bytes(),
            _ => format!("Bearer {}", &valid[..valid.len() / 2]).into_bytes(),
        }
    }

    fn accept(&mut self) -> Option<&'static str> {
        match self.rng.random_range(0..20) {
            0..=8 => Some("application/json"),
            9..=17 => Some("application/graphql-response+json"),
            18 => None,
            _ => Some(self.pick(&[
                "*/*",
                "text/html",
                "application/graphql-response+json, application/json;q=0.9",
            ])),
        }
    }

    fn post(&mut self, class: Class, body: impl Into<Vec<u8>>) -> Op {
        Op {
            class,
            method: reqwest::Method::POST,
            query: None,
            content_type: Some(b"application/json".to_vec()),
            body: body.into(),
            auth: self.auth(),
            accept: self.accept(),
            headers: Vec::new(),
            must_refuse: false,
        }
    }

    fn get(&mut self, class: Class, query: String) -> Op {
        Op {
            class,
            method: reqwest::Method::GET,
            query: Some(query),
            content_type: None,
            body: Vec::new(),
            auth: self.auth(),
            accept: self.accept(),
            headers: Vec::new(),
            must_refuse: false,
        }
    }

    /// Sends a document over POST, or over GET when it is a query and the dice say so.
    fn send_doc(&mut self, class: Class, doc: &Doc) -> Op {
        if !doc.mutation && self.chance(0.2) {
            let mut pairs = vec![("query", doc.text.as_str())];
            if let Some(v) = &doc.variables {
                pairs.push(("variables", v));
            }
            if let Some(o) = &doc.operation {
                pairs.push(("operationName", o));
            }
            let query = encode_query(&pairs);
            // Long URLs are refused by the client itself; those go as POST.
            if query.len() <= 8 * 1024 {
                return self.get(class, query);
            }
        }
        let body = request_body(
            &doc.text,
            doc.variables.as_deref(),
            doc.operation.as_deref(),
        );
        self.post(class, body)
    }

    /// Sends a bare document over GET with probability `p` when its URL stays short enough for
    /// the client, else over POST.
    fn get_or_post(&mut self, class: Class, doc: &str, p: f64) -> Op {
        let query = encode_query(&[("query", doc)]);
        if query.len() <= 8 * 1024 && self.chance(p) {
            return self.get(class, query);
        }
        self.post_doc(class, doc)
    }

    /// POSTs a bare document (no variables).
    fn post_doc(&mut self, class: Class, doc: &str) -> Op {
        self.post(class, request_body(doc, None, None))
    }

    fn op(&mut self, class: Class) -> Op {
        match class {
            Class::Valid => {
                let doc = self.random_document(Mode::Plausible);
                self.send_doc(class, &doc)
            }
            Class::Numbers => {
                let doc = self.random_document(Mode::Numbers);
                self.send_doc(class, &doc)
            }
            Class::Strings => {
                let doc = self.random_document(Mode::Strings);
                self.send_doc(class, &doc)
            }
            Class::Scalars => {
                let doc = self.random_document(Mode::Scalars);
                self.send_doc(class, &doc)
            }
            Class::Cursors => {
                let doc = self.random_document(Mode::Cursors);
                self.send_doc(class, &doc)
            }
            Class::Unknown => self.unknown(),
            Class::Utf8 => self.utf8(),
            Class::DeepLists => self.deep_lists(),
            Class::DeepSelections => self.deep_selections(),
            Class::FragmentBombs => self.fragment_bomb(),
            Class::FragmentCycles => self.fragment_cycle(),
            Class::Aliases => self.aliases(),
            Class::ContentTypes => self.content_type(),
            Class::GetMutation => self.get_mutation(),
            Class::Json => self.malformed_json(),
            Class::Huge => self.huge(),
            Class::Auth => {
                let doc = self.random_document(Mode::Plausible);
                let mut op = self.send_doc(class, &doc);
                op.auth = Some(self.bad_authorization());
                if self.chance(0.3) {
                    let request_id = match self.rng.random_range(0..3) {
                        0 => "r".repeat(129).into_bytes(),
                        1 => b"\xff\xfe-id".to_vec(),
                        _ => Vec::new(),
                    };
                    op.headers.push(("x-request-id", request_id));
                }
                op
            }
            Class::Persisted => self.persisted(),
        }
    }

    // --- hostile classes -----------------------------------------------------------------

    fn nesting_depth(&mut self) -> usize {
        match self.rng.random_range(0..10) {
            0 => self.rng.random_range(30..130),
            1..=3 => self.rng.random_range(130..1000),
            4..=7 => self.rng.random_range(1000..3000),
            _ => self.rng.random_range(3000..20_000),
        }
    }

    fn deep_lists(&mut self) -> Op {
        let n = self.nesting_depth();
        let list = format!("{}1{}", "[".repeat(n), "]".repeat(n));
        let object = format!("{}1{}", "{a: ".repeat(n), "}".repeat(n));
        let mixed = format!("{}1{}", "[{a: ".repeat(n / 2), "}]".repeat(n / 2));
        let value = self.pick(&[list.clone(), object, mixed]);
        match self.rng.random_range(0..7) {
            0 => self.post_doc(
                Class::DeepLists,
                &format!("{{ llmRuns(first: {value}) {{ totalCount }} }}"),
            ),
            1 => self.post_doc(
                Class::DeepLists,
                &format!("{{ llmRuns(filter: {value}) {{ totalCount }} }}"),
            ),
            2 => self.post_doc(
                Class::DeepLists,
                &format!("mutation {{ startTrace(input: {{plan: {value}}}) {{ traceId }} }}"),
            ),
            3 => self.post_doc(
                Class::DeepLists,
                &format!("query($x: [[Int]] = {value}) {{ viewer {{ role }} }}"),
            ),
            4 => self.post_doc(
                Class::DeepLists,
                &format!("{{ viewer @skip(if: {value}) {{ role }} }}"),
            ),
            5 => {
                let json = format!("{}1{}", "[".repeat(n), "]".repeat(n));
                self.post(
                    Class::DeepLists,
                    request_body(
                        "mutation($j: JSON) { startTrace(input: {plan: $j}) { traceId } }",
                        Some(&format!("{{\"j\":{json}}}")),
                        None,
                    ),
                )
            }
            _ => self.get_or_post(
                Class::DeepLists,
                &format!("{{ llmRuns(first: {list}) {{ totalCount }} }}"),
                1.0,
            ),
        }
    }

    fn deep_selections(&mut self) -> Op {
        let n = self.nesting_depth();
        let doc = match self.rng.random_range(0..6) {
            0 => format!("{{ viewer {}{} }}", "{ a ".repeat(n), "}".repeat(n)),
            1 => format!(
                "{{ {} __typename {} }}",
                "... on Query { ".repeat(n),
                "}".repeat(n)
            ),
            2 => {
                let depth = self.rng.random_range(10..60);
                format!(
                    "{{ __schema {{ types {{ fields {{ type {{ {} name {} }} }} }} }} }}",
                    "ofType { ".repeat(depth),
                    "} ".repeat(depth)
                )
            }
            3 => format!("{{ {}{} }}", "a(x: 1) { ".repeat(n), "}".repeat(n)),
            4 => format!("{}{}", "{".repeat(n), "}".repeat(n)),
            _ => {
                // Within the parser's limits but past the server's depth limit.
                let depth = self.rng.random_range(8..64);
                format!(
                    "{{ {} __typename {} }}",
                    "viewer { ".repeat(depth),
                    "}".repeat(depth)
                )
            }
        };
        self.get_or_post(Class::DeepSelections, &doc, 0.15)
    }

    fn fragment_bomb(&mut self) -> Op {
        let fan = if self.chance(0.75) { 2 } else { 3 };
        let levels = if fan == 2 {
            self.rng.random_range(4..=27)
        } else {
            self.rng.random_range(4..=17)
        };
        let nested = self.chance(0.4);
        let on = if nested { "Viewer" } else { "Query" };
        let mut doc = if nested {
            String::from("query { viewer { ...F0 } }")
        } else {
            String::from("query { ...F0 }")
        };
        for i in 0..levels {
            let spreads = vec![format!("...F{}", i + 1); fan].join(" ");
            let _ = write!(doc, " fragment F{i} on {on} {{ {spreads} }}");
        }
        let leaf = if nested { "role" } else { "viewer { role }" };
        let _ = write!(doc, " fragment F{levels} on {on} {{ {leaf} }}");
        self.post_doc(Class::FragmentBombs, &doc)
    }

    fn fragment_cycle(&mut self) -> Op {
        let doc = match self.rng.random_range(0..8) {
            0 => "{ ...A } fragment A on Query { ...A }".to_owned(),
            1 => "{ ...A } fragment A on Query { ...B } fragment B on Query { ...A }".to_owned(),
            2 => {
                let n = self.rng.random_range(2..500);
                let back = self.rng.random_range(0..n);
                let mut doc = String::from("{ ...C0 }");
                for i in 0..n {
                    let next = if i + 1 == n { back } else { i + 1 };
                    let _ = write!(doc, " fragment C{i} on Query {{ viewer {{ role }} ...C{next} }}");
                }
                doc
            }
            3 => "{ viewer { role } } fragment A on Query { ...B } fragment B on Query { ...A }"
                .to_owned(),
            4 => "{ viewer { ...V } } fragment V on Viewer { ...W } fragment W on Viewer { role ...V }"
                .to_owned(),
            5 => "{ ...Nope }".to_owned(),
            6 => "{ ...A } fragment A on Query { ...A ...A viewer { role } }".to_owned(),
            _ => "query { ...A } fragment A on Viewer { role }".to_owned(),
        };
        self.post_doc(Class::FragmentCycles, &doc)
    }

    fn aliases(&mut self) -> Op {
        let doc = match self.rng.random_range(0..9) {
            0 => {
                let n = self.rng.random_range(15..3000);
                let fields: String = (0..n)
                    .map(|i| format!(" a{i}: viewer {{ role }}"))
                    .collect();
                format!("{{{fields} }}")
            }
            1 => {
                let n = self.rng.random_range(10..5_000);
                let fields: String = (0..n).map(|i| format!(" t{i}: __typename")).collect();
                format!("{{{fields} }}")
            }
            2 => {
                let fields: String = self
                    .schema
                    .fields("Query")
                    .iter()
                    .filter(|f| f.args.iter().all(|a| a.ty.nullable || a.has_default))
                    .map(|f| format!(" {} {{ __typename }}", f.name))
                    .collect();
                format!("{{{fields} }}")
            }
            3 => {
                let n = self.rng.random_range(2..50);
                let fields: String = (0..n)
                    .map(|i| format!(" r{i}: llmRuns(first: 100) {{ totalCount edges {{ node {{ runId }} }} }}"))
                    .collect();
                format!("{{{fields} }}")
            }
            4 => {
                let n = self.rng.random_range(10..5_000);
                let fields: String = (0..n).map(|i| format!(" r{i}: role")).collect();
                format!("{{ viewer {{{fields} }} }}")
            }
            5 => {
                let n = self.rng.random_range(2..500);
                let ops: String = (0..n)
                    .map(|i| format!(" query Q{i} {{ viewer {{ role }} }}"))
                    .collect();
                return self.post(
                    Class::Aliases,
                    request_body(&ops, None, Some(&format!("Q{}", n - 1))),
                );
            }
            6 => {
                let n = self.rng.random_range(10..2000);
                let vars: Vec<String> = (0..n).map(|i| format!("$v{i}: Int")).collect();
                format!("query({}) {{ viewer {{ role }} }}", vars.join(", "))
            }
            7 => {
                let n = self.rng.random_range(2..2000);
                format!("{{ viewer{} {{ role }} }}", " @skip(if: false)".repeat(n))
            }
            _ => {
                let n = self.rng.random_range(2..2000);
                format!(
                    "{{ llmRuns({}) {{ totalCount }} }}",
                    vec!["first: 1"; n].join(", ")
                )
            }
        };
        self.post_doc(Class::Aliases, &doc)
    }

    fn unknown(&mut self) -> Op {
        match self.rng.random_range(0..4) {
            0 | 1 => {
                let doc = self.pick(&[
                    "{ nope }",
                    "{ viewer { nope } }",
                    "{ ... on Nope { x } }",
                    "fragment F on Nope { x } { ...F }",
                    "{ llmRuns(nope: 1) { totalCount } }",
                    "{ viewer @nope { role } }",
                    "{ viewer @skip(if: \"yes\") { role } }",
                    "{ viewer @include { role } }",
                    "query { llmRun(runId: $undeclared) { id } }",
                    "query($x: Nope) { viewer { role } }",
                    "query($x: Int!) { viewer { role } }",
                    "",
                    "# only a comment",
                    "{ }",
                    "{ viewer }",
                    "{ viewer { role { x } } }",
                    "subscription { nope }",
                    "query A { viewer { role } } query A { viewer { role } }",
                    "{ viewer { role } } { viewer { role } }",
                    "{ __type(name: \"Query\") { name fields { name } } }",
                    "mutation { nope }",
                    "schema { query: Query }",
                    "type X { a: Int }",
                    "{ viewer(x: 1) { role } }",
                    "{ node(id: \"x\") { ... on Nope { id } } }",
                    "{ llmRuns { edges { node { ... on AuditEntry { seq } } } } }",
                    "query ($a: Int = \"x\") { viewer { role } }",
                    "directive @x on FIELD",
                    "extend type Query { x: Int }",
                    "{ viewer { ...F } } fragment F on Viewer { role } fragment F on Viewer { role }",
                    "{ viewer { ...F } } fragment F on Viewer { role } fragment G on Viewer { role }",
                    "{ llmRuns(first: 1, last: 1) { totalCount } }",
                    "{ a: viewer { role } a: viewer { tenantId } }",
                    "{ llmRun(runId: null) { id } }",
                    "query Q { viewer { role } }",
                    "query($id: String!) { llmRun(runId: $id) { id } }",
                    "query($n: Int!) { llmRuns(first: $n) { totalCount } }",
                    "\u{feff}{ viewer { role } }",
                ]);
                let mut op = self.post_doc(Class::Unknown, doc);
                if self.chance(0.1) {
                    op.body = request_body(doc, None, Some("Nope")).into_bytes();
                }
                op
            }
            2 => {
                // Token soup: exercises the parser's error paths.
                let tokens = [
                    "{",
                    "}",
                    "(",
                    ")",
                    "[",
                    "]",
                    ":",
                    "$",
                    "@",
                    "...",
                    "!",
                    "=",
                    "|",
                    "&",
                    "query",
                    "mutation",
                    "subscription",
                    "fragment",
                    "on",
                    "viewer",
                    "role",
                    "\"s\"",
                    "1",
                    "-1.5e3",
                    "true",
                    "null",
                    "\"\"\"block\"\"\"",
                    "#c\n",
                    ",",
                    "llmRuns",
                    "first",
                    "__typename",
                    "\"\\u00",
                    "\"\\",
                    "0x1",
                    "é",
                ];
                let n = self.rng.random_range(1..200);
                let doc: Vec<&str> = (0..n)
                    .map(|_| *tokens.choose(&mut self.rng).expect("tokens"))
                    .collect();
                self.post_doc(Class::Unknown, &doc.join(" "))
            }
            _ => {
                let doc = self.random_document(Mode::Unknown);
                self.send_doc(Class::Unknown, &doc)
            }
        }
    }

    fn utf8(&mut self) -> Op {
        let doc = self.random_document(Mode::Plausible);
        let mut pairs = vec![("query", doc.text.as_str())];
        if let Some(v) = &doc.variables {
            pairs.push(("variables", v));
        }
        let mut query = encode_query(&pairs);
        if query.len() <= 8 * 1024 && self.chance(0.25) {
            let bad = self.pick(&["%FF", "%C0%80", "%ED%A0%80", "%80", "%E2%82"]);
            let at = self.rng.random_range(0..=query.len());
            // Only between characters of the encoded text (it is ASCII).
            query.insert_str(at, bad);
            return self.get(Class::Utf8, query);
        }
        let mut body = request_body(
            &doc.text,
            doc.variables.as_deref(),
            doc.operation.as_deref(),
        )
        .into_bytes();
        for _ in 0..self.rng.random_range(1..=3) {
            let bytes = self.pick(INVALID_UTF8);
            // Mostly inside the query text (after `{"query":"`), sometimes anywhere.
            let at = if self.chance(0.8) && body.len() > 12 {
                self.rng.random_range(10..body.len() - 2)
            } else {
                self.rng.random_range(0..=body.len())
            };
            body.splice(at..at, bytes.iter().copied());
        }
        let mut op = self.post(Class::Utf8, body);
        if self.chance(0.1) {
            op.auth = Some(b"Bearer \xc0\x80".to_vec());
        }
        op
    }

    fn content_type(&mut self) -> Op {
        let ingest = format!("Bearer {}", self.seeds.key(Role::Ingest));
        let (doc, auth) = if self.chance(0.5) {
            (
                VIEWER_QUERY,
                format!("Bearer {}", self.seeds.key(Role::Viewer)),
            )
        } else {
            (ALWAYS_RUNS_MUTATION, ingest)
        };
        let json = request_body(doc, None, None);
        let (content_type, body, must_refuse): (Option<&str>, Vec<u8>, bool) = match self
            .rng
            .random_range(0..11)
        {
            0 => (Some("text/plain"), json.into_bytes(), true),
            1 => (Some("text/plain;charset=UTF-8"), json.into_bytes(), true),
            2 => (
                Some("application/x-www-form-urlencoded"),
                json.into_bytes(),
                true,
            ),
            3 => (
                Some("application/x-www-form-urlencoded"),
                encode_query(&[("query", doc)]).into_bytes(),
                true,
            ),
            4 => {
                let body = format!(
                        "--XyZ\r\nContent-Disposition: form-data; name=\"operations\"\r\n\r\n{json}\r\n--XyZ--\r\n"
                    );
                (
                    Some("multipart/form-data; boundary=XyZ"),
                    body.into_bytes(),
                    true,
                )
            }
            5 => (
                Some("multipart/form-data; boundary=XyZ"),
                json.into_bytes(),
                true,
            ),
            6 => (None, json.into_bytes(), false),
            7 => (Some("application/graphql"), doc.as_bytes().to_vec(), false),
            8 => (Some("application/xml"), b"<query/>".to_vec(), false),
            9 => (
                Some("application/json; charset=utf-8"),
                json.into_bytes(),
                false,
            ),
            _ => (Some("a/b/c;;;=="), json.into_bytes(), false),
        };
        Op {
            class: Class::ContentTypes,
            method: reqwest::Method::POST,
            query: None,
            content_type: content_type.map(|c| c.as_bytes().to_vec()),
            body,
            auth: Some(auth.into_bytes()),
            accept: self.accept(),
            headers: Vec::new(),
            must_refuse,
        }
    }

    fn get_mutation(&mut self) -> Op {
        let ingest = format!("Bearer {}", self.seeds.key(Role::Ingest)).into_bytes();
        let (query, must_refuse) = match self.rng.random_range(0..9) {
            0 | 1 => (encode_query(&[("query", ALWAYS_RUNS_MUTATION)]), true),
            2 => (
                encode_query(&[
                    (
                        "query",
                        &format!(
                            "query Q {{ viewer {{ role }} }} {}",
                            ALWAYS_RUNS_MUTATION.replacen("mutation", "mutation M", 1)
                        ),
                    ),
                    ("operationName", "M"),
                ]),
                true,
            ),
            3 => (
                encode_query(&[(
                    "query",
                    &format!(
                        "{} query Q {{ viewer {{ role }} }}",
                        ALWAYS_RUNS_MUTATION.replacen("mutation", "mutation M", 1)
                    ),
                )]),
                false,
            ),
            4 => {
                let doc = self.random_document(Mode::Plausible);
                let mut pairs = vec![("query", doc.text.as_str())];
                if let Some(v) = &doc.variables {
                    pairs.push(("variables", v));
                }
                (encode_query(&pairs), false)
            }
            5 => (String::new(), false),
            6 => (
                encode_query(&[("query", VIEWER_QUERY), ("variables", "nope")]),
                false,
            ),
            7 => (
                encode_query(&[
                    ("query", VIEWER_QUERY),
                    ("variables", "[1]"),
                    ("extensions", "{"),
                ]),
                false,
            ),
            _ => (
                encode_query(&[("query", "mutation"), ("operationName", "")]),
                false,
            ),
        };
        let mut op = self.get(Class::GetMutation, query);
        op.auth = Some(ingest);
        if self.chance(0.2) {
            // Other methods: refused with a JSON 405.
            op.method = self.pick(&[
                reqwest::Method::PUT,
                reqwest::Method::DELETE,
                reqwest::Method::PATCH,
                reqwest::Method::OPTIONS,
            ]);
            op.must_refuse = true;
        } else {
            op.must_refuse = must_refuse;
        }
        op
    }

    fn malformed_json(&mut self) -> Op {
        let valid = request_body(VIEWER_QUERY, None, None);
        let body: Vec<u8> = match self.rng.random_range(0..24) {
            0 => Vec::new(),
            1 => b"null".to_vec(),
            2 => b"[]".to_vec(),
            3 => b"{}".to_vec(),
            4 => b"1".to_vec(),
            5 => b"\"str\"".to_vec(),
            6 => {
                let cut = self.rng.random_range(0..valid.len());
                valid.as_bytes()[..cut].to_vec()
            }
            7 => format!("{valid}garbage").into_bytes(),
            8 => b"{\"query\": 1}".to_vec(),
            9 => b"{\"query\": null}".to_vec(),
            10 => b"{\"query\": [\"{ viewer { role } }\"]}".to_vec(),
            11 => b"{\"query\": \"{ viewer { role } }\", \"variables\": \"x\"}".to_vec(),
            12 => b"{\"query\": \"{ viewer { role } }\", \"variables\": [1]}".to_vec(),
            13 => b"{\"query\": \"{ viewer { role } }\", \"operationName\": 5}".to_vec(),
            14 => b"{\"query\": \"{ viewer { role } }\", \"extensions\": 5}".to_vec(),
            15 => format!(
                "{{\"query\": \"{{ viewer {{ role }} }}\", \"query\": {}}}",
                json_string(ALWAYS_RUNS_MUTATION)
            )
            .into_bytes(),
            16 => {
                let mut body = b"\xef\xbb\xbf".to_vec();
                body.extend_from_slice(valid.as_bytes());
                body
            }
            17 => {
                let n = self.nesting_depth();
                format!(
                    "{{\"query\": \"query($j: JSON) {{ viewer {{ role }} }}\", \"variables\": {{\"j\": {}1{}}}}}",
                    "[".repeat(n),
                    "]".repeat(n)
                )
                .into_bytes()
            }
            18 => b"{\"query\": \"{ viewer { role } }\", \"variables\": {\"a\": 1e400}}".to_vec(),
            19 | 20 => {
                let n = self.rng.random_range(1..50);
                let items = vec![valid.clone(); n].join(",");
                format!("[{items}]").into_bytes()
            }
            21 => b"{\"query\": \"\\u0000\"}".to_vec(),
            22 => b"{\"query\": \"{ viewer { role } }\" /* comment */, }".to_vec(),
            _ => b"   \n\t ".to_vec(),
        };
        self.post(Class::Json, body)
    }

    fn huge(&mut self) -> Op {
        let limit = 1024 * 1024;
        match self.rng.random_range(0..7) {
            0 => {
                let s = "x".repeat(self.rng.random_range(200_000..1_000_000));
                self.post(
                    Class::Huge,
                    request_body(
                        "query($s: String!) { llmRun(runId: $s) { id } }",
                        Some(&format!("{{\"s\":{}}}", json_string(&s))),
                        None,
                    ),
                )
            }
            1 => {
                let n = self.rng.random_range(1000..20_000);
                let ids: Vec<String> = (0..n).map(|i| format!("\"id{i}\"")).collect();
                self.post(
                    Class::Huge,
                    request_body(
                        "query($ids: [ID!]!) { nodes(ids: $ids) { id } }",
                        Some(&format!("{{\"ids\":[{}]}}", ids.join(","))),
                        None,
                    ),
                )
            }
            2 => {
                let pad = "x".repeat(limit + self.rng.random_range(1..1000));
                self.post_doc(Class::Huge, &format!("{VIEWER_QUERY} #{pad}"))
            }
            3 => {
                let pad = "x".repeat(self.rng.random_range(100_000..limit - 200));
                self.post_doc(Class::Huge, &format!("{VIEWER_QUERY} #{pad}"))
            }
            4 => {
                let n = self.rng.random_range(1001..3000);
                let steps: Vec<String> = (0..n)
                    .map(|i| format!("{{\"stepIndex\":{i},\"skillName\":\"s\",\"status\":\"success\",\"outcomeCategory\":\"SUCCESS\"}}"))
                    .collect();
                let seeds = self.seeds;
                let trace = self.pick(&seeds.trace_ids);
                self.post(
                    Class::Huge,
                    request_body(
                        "mutation($t: String!, $s: [TraceStepInput!]!) { recordSteps(traceId: $t, steps: $s) { insertedCount } }",
                        Some(&format!("{{\"t\":{},\"s\":[{}]}}", json_string(&trace), steps.join(","))),
                        None,
                    ),
                )
            }
            5 => {
                let s = "y".repeat(self.rng.random_range(100_000..600_000));
                self.post_doc(
                    Class::Huge,
                    &format!("{{ llmRun(runId: \"{s}\") {{ id }} }}"),
                )
            }
            _ => {
                let n = self.rng.random_range(1000..10_000);
                let vars: Vec<String> = (0..n).map(|i| format!("\"v{i}\":{i}")).collect();
                self.post(
                    Class::Huge,
                    request_body(VIEWER_QUERY, Some(&format!("{{{}}}", vars.join(","))), None),
                )
            }
        }
    }

    fn persisted(&mut self) -> Op {
        let hash = sha256_hex(VIEWER_QUERY);
        let random = hex::encode(self.rng.random::<[u8; 32]>());
        let extension = |value: &str| format!("{{\"persistedQuery\":{value}}}");
        let (query, ext) = match self.rng.random_range(0..13) {
            0 => (
                None,
                extension(&format!("{{\"version\":1,\"sha256Hash\":\"{random}\"}}")),
            ),
            1 => (
                None,
                extension(&format!("{{\"version\":2,\"sha256Hash\":\"{hash}\"}}")),
            ),
            2 => (None, extension("{\"version\":1}")),
            3 => (
                None,
                extension(&format!(
                    "{{\"version\":1,\"sha256Hash\":\"{}\"}}",
                    &hash[..63]
                )),
            ),
            4 => (None, extension("{\"version\":1,\"sha256Hash\":\"zz\"}")),
            5 => (
                None,
                extension(&format!(
                    "{{\"version\":1,\"sha256Hash\":\"{}\"}}",
                    hash.to_uppercase()
                )),
            ),
            6 => (
                None,
                extension(self.pick(&["\"x\"", "[]", "null", "5", "{}"])),
            ),
            7 => (
                Some(VIEWER_QUERY),
                extension(&format!("{{\"version\":1,\"sha256Hash\":\"{hash}\"}}")),
            ),
            8 => (
                None,
                extension(&format!("{{\"version\":1,\"sha256Hash\":\"{hash}\"}}")),
            ),
            9 => (
                Some(VIEWER_QUERY),
                extension(&format!("{{\"version\":1,\"sha256Hash\":\"{random}\"}}")),
            ),
            10 => (
                None,
                extension(&format!("{{\"version\":\"1\",\"sha256Hash\":\"{hash}\"}}")),
            ),
            11 => {
                // A registered mutation over GET: must not run.
                let ext = extension(&format!(
                    "{{\"version\":1,\"sha256Hash\":\"{}\"}}",
                    self.seeds.persisted_mutation
                ));
                let mut op = self.get(Class::Persisted, encode_query(&[("extensions", &ext)]));
                op.auth = Some(format!("Bearer {}", self.seeds.key(Role::Ingest)).into_bytes());
                op.must_refuse = true;
                return op;
            }
            _ => {
                let ext = extension(&format!("{{\"version\":1,\"sha256Hash\":\"{hash}\"}}"));
                return self.get(Class::Persisted, encode_query(&[("extensions", &ext)]));
            }
        };
        let mut body = String::from("{");
        if let Some(query) = query {
            let _ = write!(body, "\"query\":{},", json_string(query));
        }
        let _ = write!(body, "\"extensions\":{ext}}}");
        self.post(Class::Persisted, body)
    }
}

// ---------------------------------------------------------------------------------------------
// Sending and checking

fn clip(bytes: &[u8], max: usize) -> String {
    let text = String::from_utf8_lossy(bytes);
    if text.len() <= max {
        return text.into_owned();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}… ({} bytes)", &text[..end], bytes.len())
}

fn describe(op: &Op, max: usize) -> String {
    let auth = match &op.auth {
        None => "none".to_owned(),
        Some(a) => clip(a, 40),
    };
    format!(
        "{} /graphql{}{} content-type={} accept={} authorization={} must_refuse={}\nbody: {}",
        op.method,
        if op.query.is_some() { "?" } else { "" },
        clip(op.query.as_deref().unwrap_or_default().as_bytes(), max),
        op.content_type
            .as_deref()
            .map_or("none".to_owned(), |c| clip(c, 60)),
        op.accept.unwrap_or("none"),
        auth,
        op.must_refuse,
        clip(&op.body, max)
    )
}

async fn send(client: &reqwest::Client, base: &str, op: &Op) -> Result<(u16, Vec<u8>), String> {
    let mut url = format!("{base}/graphql");
    if let Some(query) = &op.query {
        url.push('?');
        url.push_str(query);
    }
    let mut request = client.request(op.method.clone(), url);
    let header = |bytes: &[u8]| reqwest::header::HeaderValue::from_bytes(bytes).ok();
    if let Some(value) = op.content_type.as_deref().and_then(header) {
        request = request.header(reqwest::header::CONTENT_TYPE, value);
    }
    if let Some(value) = op.auth.as_deref().and_then(header) {
        request = request.header(reqwest::header::AUTHORIZATION, value);
    }
    if let Some(accept) = op.accept {
        request = request.header(reqwest::header::ACCEPT, accept);
    }
    for (name, value) in &op.headers {
        if let Some(value) = header(value) {
            request = request.header(*name, value);
        }
    }
    if !op.body.is_empty() {
        request = request.body(op.body.clone());
    }
    let response = request.send().await.map_err(|e| {
        if e.is_timeout() {
            "no answer in time (stalled)".to_owned()
        } else {
            format!("no response: {}", clip(e.to_string().as_bytes(), 300))
        }
    })?;
    let status = response.status().as_u16();
    let body = response.bytes().await.map_err(|e| {
        if e.is_timeout() {
            format!("status {status}, body not finished in time (stalled)")
        } else {
            format!("status {status}, body unreadable: {e}")
        }
    })?;
    Ok((status, body.to_vec()))
}

/// The invariants every answer must hold. Returns what the answer was: `ok` (data, no errors)
/// or the first error's code.
fn check(op: &Op, status: u16, body: &[u8]) -> Result<String, String> {
    if status >= 500 {
        return Err(format!("status {status}"));
    }
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| format!("status {status}, the body is not JSON ({e})"))?;
    let Some(object) = value.as_object() else {
        return Err(format!("status {status}, the body is not a JSON object"));
    };
    if !object.contains_key("data") && !object.contains_key("errors") {
        return Err(format!("status {status}, neither `data` nor `errors`"));
    }
    if let Some(errors) = object.get("errors") {
        let Some(errors) = errors.as_array() else {
            return Err("`errors` is not a list".into());
        };
        if errors.is_empty() {
            return Err("`errors` is an empty list".into());
        }
        for error in errors {
            match error["extensions"]["code"].as_str() {
                None => return Err(format!("an error without extensions.code: {error}")),
                Some("INTERNAL") => return Err(format!("status {status}, INTERNAL: {error}")),
                Some(code) if !CODES.contains(&code) => {
                    return Err(format!("an unknown code {code}: {error}"))
                }
                Some(_) => {}
            }
        }
    }
    if op.must_refuse && object.get("data").is_some_and(|d| !d.is_null()) {
        return Err(format!(
            "status {status}, executed although it must be refused"
        ));
    }
    Ok(match value["errors"][0]["extensions"]["code"].as_str() {
        Some(code) => code.to_owned(),
        None => "ok".to_owned(),
    })
}

#[derive(Default)]
struct ClassReport {
    sent: usize,
    failed: usize,
    skipped: usize,
    stalled: bool,
    first: Option<String>,
    /// Answers by kind: `ok` or the first error's code.
    outcomes: BTreeMap<String, usize>,
    time: Duration,
}

// ---------------------------------------------------------------------------------------------
// Seeding

const START: &str = "mutation($i: StartTraceInput!) { startTrace(input: $i) { traceId } }";
const RECORD: &str = "mutation($t: String!, $s: [TraceStepInput!]!) { recordSteps(traceId: $t, steps: $s) { insertedCount } }";

async fn seed(app: &TestApp) -> Seeds {
    let mut keys = Vec::new();
    for role in [Role::Viewer, Role::Operator, Role::Ingest, Role::Admin] {
        keys.push((role, app.key("acme", role).await));
    }
    let other_tenant = app.key("globex", Role::Admin).await;
    insert_runs(app.db(), &make_runs("acme", "fz", 30, fixed_time())).await;
    insert_runs(app.db(), &make_runs("globex", "gx", 5, fixed_time())).await;
    let ingest = keys[2].1.clone();
    let mut trace_ids = Vec::new();
    for i in 0..4 {
        let id = format!("fz-trace-{i}");
        app.data(
            &ingest,
            START,
            json!({ "i": { "traceId": id, "runId": format!("fz-run-{i:05}") } }),
        )
        .await;
        trace_ids.push(id);
    }
    let steps: Vec<Value> = (0..5)
        .map(|i| json!({"stepIndex": i, "skillName": "llm_invoke", "status": "success", "outcomeCategory": "SUCCESS", "params": {"n": i}}))
        .collect();
    app.data(&ingest, RECORD, json!({ "t": "fz-trace-0", "s": steps }))
        .await;
    app.data(
        &ingest,
        "mutation { completeTrace(traceId: \"fz-trace-1\", status: COMPLETED) { traceId } }",
        json!({}),
    )
    .await;
    let viewer = keys[0].1.clone();
    let data = app
        .data(
            &viewer,
            "{ llmRuns(first: 4) { edges { cursor node { id } } } traces(first: 4) { edges { cursor node { id } } } }",
            json!({}),
        )
        .await;
    let edges = |list: &str| data[list]["edges"].as_array().cloned().unwrap_or_default();
    let mut node_ids = Vec::new();
    let mut run_cursors = Vec::new();
    let mut trace_cursors = Vec::new();
    for edge in edges("llmRuns") {
        run_cursors.push(edge["cursor"].as_str().unwrap().to_owned());
        node_ids.push(edge["node"]["id"].as_str().unwrap().to_owned());
    }
    for edge in edges("traces") {
        trace_cursors.push(edge["cursor"].as_str().unwrap().to_owned());
        node_ids.push(edge["node"]["id"].as_str().unwrap().to_owned());
    }
    assert!(
        !run_cursors.is_empty() && !trace_cursors.is_empty(),
        "seeded lists: {data}"
    );
    // Register a mutation as a persisted query (it runs once here, over POST).
    let persisted_mutation = sha256_hex(ALWAYS_RUNS_MUTATION);
    let response: Value = app
        .http
        .post(format!("{}/graphql", app.base))
        .bearer_auth(&ingest)
        .json(&json!({
            "query": ALWAYS_RUNS_MUTATION,
            "extensions": { "persistedQuery": { "version": 1, "sha256Hash": persisted_mutation } },
        }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        response["data"]["startTrace"]["traceId"].is_string(),
        "{response}"
    );
    Seeds {
        keys,
        other_tenant,
        run_ids: (0..30).map(|i| format!("fz-run-{i:05}")).collect(),
        trace_ids,
        node_ids,
        run_cursors,
        trace_cursors,
        persisted_mutation,
    }
}

// ---------------------------------------------------------------------------------------------
// The case

async fn generated_operations(backend: Backend) {
    let settings = Settings::from_env();
    let export_dir = std::env::temp_dir().join(format!("lbfz-{}", uuid::Uuid::new_v4().simple()));
    let dir = export_dir.clone();
    let app = TestApp::spawn_with(backend, move |config| {
        // The rate limit still runs (headers, counters) but never refuses here.
        config.limits.rate_limit_per_minute = 1_000_000_000;
        config.exports.dir = dir;
    })
    .await;
    let seeds = seed(&app).await;
    let schema = SchemaModel::parse(&logbook::graphql::sdl());
    let client = reqwest::Client::builder()
        .timeout(settings.timeout)
        .build()
        .unwrap();
    let last_op_file =
        std::env::temp_dir().join(format!("logbook-fuzz-last-op-{}.txt", backend.name()));

    let mut generator = Gen::new(settings.seed, &schema, &seeds);
    let mut reports: BTreeMap<Class, ClassReport> = BTreeMap::new();
    let mut first_failure: Option<String> = None;
    let started = Instant::now();
    let mut sent = 0;
    for index in 0..settings.ops {
        let class = generator.class(&settings.classes);
        let op = generator.op(class);
        debug_assert_eq!(op.class, class);
        let report = reports.entry(op.class).or_default();
        if report.stalled {
            // Generated all the same, so the sequence of operations does not depend on it.
            report.skipped += 1;
            continue;
        }
        // If the process dies (a stack overflow aborts it), this names the culprit.
        let _ = std::fs::write(
            &last_op_file,
            format!(
                "seed {:#x}, operation #{index}, class {}\n{}\n",
                settings.seed,
                class.name(),
                describe(
                    &op,
                    if op.body.len() <= 64 * 1024 {
                        usize::MAX
                    } else {
                        4000
                    }
                )
            ),
        );
        report.sent += 1;
        sent += 1;
        let t0 = Instant::now();
        let outcome = match send(&client, &app.base, &op).await {
            Ok((status, body)) => {
                if settings.verbose {
                    eprintln!(
                        "#{index} {} ({:.1?}) {}\n  -> {status} {}",
                        class.name(),
                        t0.elapsed(),
                        describe(&op, 300),
                        clip(&body, 300)
                    );
                }
                check(&op, status, &body).map_err(|e| (e, clip(&body, 600)))
            }
            Err(e) => Err((e, String::new())),
        };
        report.time += t0.elapsed();
        let outcome = outcome.map(|kind| *report.outcomes.entry(kind).or_default() += 1);
        if let Err((problem, response)) = outcome {
            report.failed += 1;
            if problem.contains("stalled") {
                report.stalled = true;
            }
            if report.first.is_none() {
                let detail = format!(
                    "[{}] operation #{index} (class {}, {:.1?}): {problem}\n  request: {}\n  response: {response}",
                    backend.name(),
                    class.name(),
                    t0.elapsed(),
                    describe(&op, 600).replace('\n', "\n  "),
                );
                let file = std::env::temp_dir().join(format!(
                    "logbook-fuzz-failure-{}-{}.txt",
                    backend.name(),
                    class.name()
                ));
                let _ = std::fs::write(
                    &file,
                    format!("{detail}\n\nfull request:\n{}\n", describe(&op, usize::MAX)),
                );
                report.first = Some(format!("{detail}\n  (full request in {})", file.display()));
                if first_failure.is_none() {
                    first_failure = report.first.clone();
                }
            }
        }
    }
    let elapsed = started.elapsed();

    // The server must still be alive and quick.
    let t0 = Instant::now();
    let alive = client
        .post(format!("{}/graphql", app.base))
        .bearer_auth(seeds.key(Role::Viewer))
        .timeout(Duration::from_secs(3))
        .json(&json!({ "query": VIEWER_QUERY }))
        .send()
        .await;
    let alive = match alive {
        Ok(response) => response
            .json::<Value>()
            .await
            .map_err(|e| e.to_string())
            .and_then(|body| {
                (body["data"]["viewer"]["tenantId"] == "acme")
                    .then_some(())
                    .ok_or_else(|| format!("unexpected answer {body}"))
            }),
        Err(e) => Err(e.to_string()),
    };
    let alive_after = t0.elapsed();

    let mut summary = format!(
        "fuzz_ops[{}]: {sent} operations sent in {elapsed:.1?} (seed {:#x}); liveness {alive_after:.1?}\n",
        backend.name(),
        settings.seed
    );
    for (class, report) in &reports {
        let _ = writeln!(
            summary,
            "  {:<16} sent {:>5} in {:>6.1?}  failed {:>4}  {}{}{}",
            class.name(),
            report.sent,
            report.time,
            report.failed,
            report
                .outcomes
                .iter()
                .map(|(kind, n)| format!("{kind}={n}"))
                .collect::<Vec<_>>()
                .join(" "),
            if report.skipped > 0 {
                format!("  skipped {} after a stall", report.skipped)
            } else {
                String::new()
            },
            if report.failed > 0 { "  FAIL" } else { "" }
        );
    }
    eprintln!("{summary}");
    let _ = std::fs::remove_file(&last_op_file);
    app.stop().await;
    let _ = std::fs::remove_dir_all(&export_dir);

    let mut problems = String::new();
    if let Err(e) = &alive {
        let _ = writeln!(
            problems,
            "the server did not answer a simple query afterwards: {e}"
        );
    } else if alive_after > Duration::from_secs(2) {
        let _ = writeln!(
            problems,
            "the server took {alive_after:.1?} to answer a simple query afterwards"
        );
    }
    for report in reports.values() {
        if let Some(first) = &report.first {
            let _ = writeln!(problems, "{first}");
        }
    }
    if !problems.is_empty() {
        panic!(
            "{summary}\nfirst failure: {}\n\nfirst failure of each failing class:\n{problems}",
            first_failure.as_deref().unwrap_or("(none: see above)")
        );
    }
}

/// Admission prices a document (the figure the rate limit charges, before execution) exactly as
/// async-graphql's validation does (the figure its complexity limit checks). Compared on
/// generated documents of every root type, with literal and variable page sizes, fragments
/// and aliases; a document either side refuses is skipped, and most must be compared.
async fn admission_cost_matches_async_graphql(_backend: Backend) {
    use std::sync::{Arc, Mutex};

    use async_graphql::extensions::{
        Extension, ExtensionContext, ExtensionFactory, NextValidation,
    };
    use async_graphql::{ServerError, ValidationResult};
    use logbook::admission::{Admission, AdmissionLimits, ReadGrant, SchemaIndex};

    /// Records the complexity validation computed, then stops the request before execution.
    struct Capture(Arc<Mutex<Option<usize>>>);
    impl ExtensionFactory for Capture {
        fn create(&self) -> Arc<dyn Extension> {
            Arc::new(Capture(self.0.clone()))
        }
    }
    #[async_trait::async_trait]
    impl Extension for Capture {
        async fn validation(
            &self,
            ctx: &ExtensionContext<'_>,
            next: NextValidation<'_>,
        ) -> Result<ValidationResult, Vec<ServerError>> {
            let result = next.run(ctx).await?;
            *self.0.lock().unwrap() = Some(result.complexity);
            Err(vec![ServerError::new("validated; not executed", None)])
        }
    }

    let limits = logbook::config::Limits {
        max_complexity: usize::MAX,
        max_depth: 64,
        ..Default::default()
    };
    let captured = Arc::new(Mutex::new(None));
    let schema = logbook::graphql::schema_builder::<logbook::graphql::Query>(&limits)
        .extension(Capture(captured.clone()))
        .finish();
    let admission = Admission::new(
        AdmissionLimits::from_limits(&limits),
        SchemaIndex::from_sdl(&schema.sdl()).unwrap(),
    );
    let model = SchemaModel::parse(&logbook::graphql::sdl());
    let seeds = Seeds {
        keys: Vec::new(),
        other_tenant: String::new(),
        run_ids: vec!["run-1".into()],
        trace_ids: vec!["trace-1".into()],
        node_ids: vec!["TGxtUnVuOnJ1bi0x".into()],
        run_cursors: vec!["cursor".into()],
        trace_cursors: vec!["cursor".into()],
        persisted_mutation: String::new(),
    };
    let mut generator = Gen::new(DEFAULT_SEED ^ 0xc057, &model, &seeds);
    let (mut compared, mut nonzero, mut mismatches) = (0, 0, Vec::new());
    let total = 3000;
    for _ in 0..total {
        let doc = generator.random_document(Mode::Plausible);
        let variables: Value = doc
            .variables
            .as_deref()
            .map_or(json!({}), |v| serde_json::from_str(v).unwrap_or(json!({})));
        let variables = async_graphql::Variables::from_json(variables);
        let Ok(admitted) = admission.admit(
            &doc.text,
            doc.operation.as_deref(),
            &variables,
            ReadGrant::Full,
        ) else {
            continue;
        };
        *captured.lock().unwrap() = None;
        let mut request = async_graphql::Request::new(doc.text.clone()).variables(variables);
        if let Some(operation) = &doc.operation {
            request = request.operation_name(operation.clone());
        }
        let _ = schema.execute(request).await;
        let Some(expected) = *captured.lock().unwrap() else {
            continue;
        };
        compared += 1;
        if expected > 1 {
            nonzero += 1;
        }
        if admitted.cost != expected as u64 && mismatches.len() < 5 {
            mismatches.push(format!(
                "async-graphql {expected}, admission {}:\n{}\nvariables {:?}",
                admitted.cost, doc.text, doc.variables
            ));
        }
    }
    assert!(
        mismatches.is_empty(),
        "costs differ:\n{}",
        mismatches.join("\n\n")
    );
    assert!(
        compared >= total / 3 && nonzero >= total / 10,
        "too few documents compared ({compared} of {total}, {nonzero} costing more than 1)"
    );
}

crate::cases!(generated_operations, admission_cost_matches_async_graphql);
