//! `auditEntries`, `auditEntry`, `auditEntityHistory` and `signalFeedback` over a ledger seeded
//! with a valid hash chain; the batched governance events behind `LlmRun.governanceEvents`.

use async_graphql::dataloader::Loader;
use chrono::{DateTime, Duration, Utc};
use entity::audit_ledger;
use logbook::audit::chain::{entry_hash, ChainFields, GENESIS_PREV_HASH};
use logbook::auth::{Role, TenantId};
use sea_orm::{EntityTrait, Set};
use serde_json::{json, Value};

use crate::support::{error_code, fixed_time, Backend, TestApp};
use crate::system_records::{ids_of, walk, List};

const PAGE: &str = r#"
query Page($filter: AuditEntryFilter, $first: Int, $after: String, $last: Int, $before: String, $asOf: DateTime) {
  auditEntries(filter: $filter, first: $first, after: $after, last: $last, before: $before, asOf: $asOf) {
    totalCount
    edges { cursor node { id recordId seq eventType decision entityType entityId actorType actorId actionReason beforeState afterState correlationId runId prevHash entryHash createdAt } }
    pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
  }
}"#;

const ENTRIES: List = List {
    query: PAGE,
    root: "auditEntries",
    field: "recordId",
};

const HISTORY: &str = r#"
query History($type: AuditEntityType!, $id: String!, $first: Int, $after: String, $last: Int, $before: String, $asOf: DateTime) {
  auditEntityHistory(entityType: $type, entityId: $id, first: $first, after: $after, last: $last, before: $before, asOf: $asOf) {
    totalCount
    edges { cursor node { recordId seq eventType createdAt } }
    pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
  }
}"#;

const FEEDBACK: &str = r#"
query($fp: String!) {
  signalFeedback(fingerprint: $fp) {
    fingerprint acknowledged acknowledgedBy acknowledgedAt suppressed suppressedBy suppressedAt
    suppressedUntil suppressionActive escalated escalatedAt lastEventAt
  }
}"#;

/// One entry to append.
#[derive(Clone)]
pub struct Entry {
    pub event_type: &'static str,
    pub entity_type: &'static str,
    pub entity_id: String,
    pub actor_type: &'static str,
    pub actor_id: Option<String>,
    pub after_state: Option<Value>,
    /// `None`: `reason <seq>`.
    pub action_reason: Option<String>,
    pub before_state: Option<Value>,
    pub correlation_id: Option<String>,
    pub run_id: Option<String>,
    pub created_at: DateTime<Utc>,
}

impl Entry {
    pub fn new(
        event_type: &'static str,
        entity_type: &'static str,
        entity_id: &str,
        at: DateTime<Utc>,
    ) -> Self {
        Entry {
            event_type,
            entity_type,
            entity_id: entity_id.to_owned(),
            actor_type: "HUMAN",
            actor_id: None,
            after_state: None,
            action_reason: None,
            before_state: None,
            correlation_id: None,
            run_id: None,
            created_at: at,
        }
    }
}

/// Builds one tenant's chain: `seq` 1..n, each `prev_hash` the previous `entry_hash`.
pub struct Ledger {
    tenant: String,
    prev_hash: String,
    rows: Vec<audit_ledger::ActiveModel>,
}

impl Ledger {
    pub fn new(tenant: &str) -> Self {
        Ledger {
            tenant: tenant.to_owned(),
            prev_hash: GENESIS_PREV_HASH.to_owned(),
            rows: Vec::new(),
        }
    }

    /// Appends an entry; returns its id (`<tenant>-e<seq>`).
    pub fn push(&mut self, e: Entry) -> String {
        let seq = self.rows.len() as i64 + 1;
        let id = format!("{}-e{seq:04}", self.tenant);
        let reason = e.action_reason.unwrap_or_else(|| format!("reason {seq}"));
        let hash = entry_hash(&ChainFields {
            tenant_id: &self.tenant,
            seq,
            prev_hash: &self.prev_hash,
            id: &id,
            event_type: e.event_type,
            entity_type: e.entity_type,
            entity_id: &e.entity_id,
            actor_type: e.actor_type,
            actor_id: e.actor_id.as_deref(),
            action_reason: Some(&reason),
            before_state: e.before_state.as_ref(),
            after_state: e.after_state.as_ref(),
            correlation_id: e.correlation_id.as_deref(),
            run_id: e.run_id.as_deref(),
            created_at: e.created_at,
        });
        self.rows.push(audit_ledger::ActiveModel {
            id: Set(id.clone()),
            tenant_id: Set(self.tenant.clone()),
            seq: Set(seq),
            event_type: Set(e.event_type.to_owned()),
            entity_type: Set(e.entity_type.to_owned()),
            entity_id: Set(e.entity_id),
            actor_type: Set(e.actor_type.to_owned()),
            actor_id: Set(e.actor_id),
            action_reason: Set(Some(reason)),
            before_state: Set(e.before_state),
            after_state: Set(e.after_state),
            run_id: Set(e.run_id),
            correlation_id: Set(e.correlation_id),
            prev_hash: Set(self.prev_hash.clone()),
            entry_hash: Set(hash.clone()),
            hash_version: Set(1),
            created_at: Set(e.created_at),
        });
        self.prev_hash = hash;
        id
    }

    pub async fn insert(self, app: &TestApp) {
        for chunk in self.rows.chunks(100) {
            audit_ledger::Entity::insert_many(chunk.to_vec())
                .exec_without_returning(app.db())
                .await
                .expect("insert audit entries");
        }
    }
}

const KINDS: [(&str, &str); 6] = [
    ("LimitCreated", "LIMIT"),
    ("PolicyRuleModified", "POLICY_RULE"),
    ("IncidentResolved", "INCIDENT"),
    ("SignalAcknowledged", "SIGNAL"),
    ("PolicyProposalApproved", "POLICY_PROPOSAL"),
    ("LimitBreached", "LIMIT"),
];

struct Seeded {
    id: String,
    event_type: &'static str,
    entity_type: &'static str,
    entity_id: String,
    actor_type: &'static str,
    actor_id: Option<String>,
    run_id: Option<String>,
    created_at: DateTime<Utc>,
}

/// `n` entries of `tenant`, oldest first in `seq`, timestamps ascending (some shared).
fn seed(ledger: &mut Ledger, n: usize, newest: DateTime<Utc>) -> Vec<Seeded> {
    (0..n)
        .map(|i| {
            let (event_type, entity_type) = KINDS[i % KINDS.len()];
            let back = (n - 1 - i) as i64;
            let mut e = Entry::new(
                event_type,
                entity_type,
                &format!("{}-{}", entity_type.to_lowercase(), i % 3),
                newest - Duration::seconds(back - back % 2),
            );
            e.actor_type = ["HUMAN", "SYSTEM", "AGENT"][i % 3];
            e.actor_id = Some(format!("actor-{}", i % 2));
            e.run_id = (i % 5 == 0).then(|| format!("run-{}", i % 10));
            e.after_state = Some(json!({ "i": i }));
            let seeded = Seeded {
                id: String::new(),
                event_type,
                entity_type,
                entity_id: e.entity_id.clone(),
                actor_type: e.actor_type,
                actor_id: e.actor_id.clone(),
                run_id: e.run_id.clone(),
                created_at: e.created_at,
            };
            Seeded {
                id: ledger.push(e),
                ..seeded
            }
        })
        .collect()
}

/// Which seeded entries a filter keeps.
type Keep = Box<dyn Fn(&Seeded) -> bool + Send + Sync>;

fn ordered<'a>(rows: impl Iterator<Item = &'a Seeded>) -> Vec<String> {
    let mut keyed: Vec<(DateTime<Utc>, String)> =
        rows.map(|r| (r.created_at, r.id.clone())).collect();
    keyed.sort_by(|a, b| b.cmp(a));
    keyed.into_iter().map(|(_, id)| id).collect()
}

async fn entries_page_filter_and_count(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let key = app.key("acme", Role::Viewer).await;
    let other = app.key("other", Role::Viewer).await;
    let t = fixed_time();
    let mut ledger = Ledger::new("acme");
    let mine = seed(&mut ledger, 40, t);
    ledger.insert(&app).await;
    let mut theirs = Ledger::new("other");
    let their_rows = seed(&mut theirs, 7, t);
    theirs.insert(&app).await;

    for forward in [true, false] {
        let seen = walk(&app, &key, &ENTRIES, 6, forward, json!({})).await;
        assert_eq!(seen, ordered(mine.iter()), "forward={forward}");
    }
    let data = app.data(&key, PAGE, json!({ "first": 1 })).await;
    let newest = &data["auditEntries"]["edges"][0]["node"];
    assert_eq!(data["auditEntries"]["totalCount"], json!(40));
    assert_eq!(newest["seq"], json!(40));
    assert_eq!(newest["eventType"], "SIGNAL_ACKNOWLEDGED");
    assert_eq!(newest["entityType"], "SIGNAL");
    assert_eq!(newest["afterState"], json!({ "i": 39 }));
    assert_eq!(newest["beforeState"], Value::Null);
    assert_eq!(
        newest["decision"],
        Value::Null,
        "an acknowledgement decides nothing"
    );
    let breach = app
        .data(
            &key,
            PAGE,
            json!({ "first": 1, "filter": { "eventType": ["LIMIT_BREACHED"] } }),
        )
        .await;
    assert_eq!(
        breach["auditEntries"]["edges"][0]["node"]["decision"],
        "DENIED"
    );
    assert_eq!(newest["actionReason"], "reason 40");
    assert_eq!(newest["entryHash"].as_str().expect("hash").len(), 64);

    // The chain links: each entry's prevHash is the entryHash of seq - 1.
    let data = app.data(&key, PAGE, json!({ "first": 100 })).await;
    let mut by_seq: Vec<(i64, String, String)> = data["auditEntries"]["edges"]
        .as_array()
        .expect("edges")
        .iter()
        .map(|e| {
            let n = &e["node"];
            (
                n["seq"].as_i64().expect("seq"),
                n["prevHash"].as_str().expect("prev").to_owned(),
                n["entryHash"].as_str().expect("hash").to_owned(),
            )
        })
        .collect();
    by_seq.sort();
    assert_eq!(by_seq[0].1, GENESIS_PREV_HASH);
    for pair in by_seq.windows(2) {
        assert_eq!(pair[1].1, pair[0].2);
    }

    let window = t - Duration::seconds(25);
    let cases: Vec<(Value, Keep)> = vec![
        (
            json!({ "eventType": ["LIMIT_BREACHED", "LIMIT_CREATED"] }),
            Box::new(|r: &Seeded| matches!(r.event_type, "LimitBreached" | "LimitCreated")),
        ),
        (
            json!({ "entityType": "LIMIT", "entityId": "limit-0" }),
            Box::new(|r: &Seeded| r.entity_type == "LIMIT" && r.entity_id == "limit-0"),
        ),
        (
            json!({ "actorType": "AGENT", "actorId": "actor-1" }),
            Box::new(|r: &Seeded| {
                r.actor_type == "AGENT" && r.actor_id.as_deref() == Some("actor-1")
            }),
        ),
        // The console's audit views select their real event types and actors.
        (
            json!({ "view": "AUTHORIZATION" }),
            Box::new(|r: &Seeded| {
                matches!(r.event_type, "PolicyProposalApproved" | "LimitBreached")
            }),
        ),
        (
            json!({ "view": "ACCESS", "eventType": ["LIMIT_BREACHED", "LIMIT_CREATED"] }),
            Box::new(|r: &Seeded| r.event_type == "LimitCreated"),
        ),
        (
            json!({ "view": "IDENTITY" }),
            Box::new(|r: &Seeded| r.actor_type == "HUMAN"),
        ),
        (
            json!({ "runId": "run-5" }),
            Box::new(|r: &Seeded| r.run_id.as_deref() == Some("run-5")),
        ),
        (
            json!({ "createdAfter": logbook::scalars::format_utc(window), "createdBefore": logbook::scalars::format_utc(t - Duration::seconds(6)) }),
            Box::new(move |r: &Seeded| {
                r.created_at >= window && r.created_at <= t - Duration::seconds(6)
            }),
        ),
    ];
    for (filter, keep) in cases {
        let want = ordered(mine.iter().filter(|r| keep(r)));
        assert!(!want.is_empty(), "{filter}");
        let data = app
            .data(&key, PAGE, json!({ "filter": filter, "first": 2 }))
            .await;
        assert_eq!(
            data["auditEntries"]["totalCount"],
            json!(want.len()),
            "{filter}"
        );
        let seen = walk(&app, &key, &ENTRIES, 2, true, json!({ "filter": filter })).await;
        assert_eq!(seen, want, "{filter}");
    }

    // Lookups by record id and by global id; another tenant's entry is NOT_FOUND either way.
    let lookup = "query($id: ID!) { auditEntry(id: $id) { id recordId seq } }";
    let data = app.data(&key, lookup, json!({ "id": mine[3].id })).await;
    assert_eq!(data["auditEntry"]["seq"], json!(4));
    let global = data["auditEntry"]["id"].clone();
    let data = app.data(&key, lookup, json!({ "id": global })).await;
    assert_eq!(data["auditEntry"]["recordId"], json!(mine[3].id));
    let node = app
        .data(
            &key,
            "query($id: ID!) { node(id: $id) { ... on AuditEntry { seq } } }",
            json!({ "id": global }),
        )
        .await;
    assert_eq!(node["node"]["seq"], json!(4));
    let body = app
        .gql(Some(&key), lookup, json!({ "id": their_rows[0].id }))
        .await;
    assert_eq!(error_code(&body), "NOT_FOUND");
    let their_global = app
        .data(&other, lookup, json!({ "id": their_rows[0].id }))
        .await["auditEntry"]["id"]
        .clone();
    let body = app
        .gql(Some(&key), lookup, json!({ "id": their_global }))
        .await;
    assert_eq!(error_code(&body), "NOT_FOUND");
    let body = app
        .gql(
            Some(&key),
            "query($id: ID!) { node(id: $id) { id } }",
            json!({ "id": their_global }),
        )
        .await;
    assert_eq!(error_code(&body), "NOT_FOUND");

    // Bad input.
    let body = app.gql(Some(&key), PAGE, json!({ "last": 101 })).await;
    assert_eq!(error_code(&body), "BAD_USER_INPUT");
    let data = app.data(&key, PAGE, json!({ "first": 2 })).await;
    let cursor = data["auditEntries"]["pageInfo"]["endCursor"].clone();
    let body = app
        .gql(
            Some(&key),
            HISTORY,
            json!({ "type": "LIMIT", "id": "limit-0", "first": 2, "after": cursor }),
        )
        .await;
    assert_eq!(
        error_code(&body),
        "BAD_CURSOR",
        "an auditEntries cursor in auditEntityHistory"
    );
    app.stop().await;
}

async fn entity_history_is_newest_first(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let key = app.key("acme", Role::Viewer).await;
    let t = fixed_time();
    let mut ledger = Ledger::new("acme");
    let mut want = Vec::new();
    for i in 0..9 {
        let at = t - Duration::seconds(100 - i * 10);
        let (event, entity) = if i % 3 == 0 {
            ("LimitCreated", "limit-9")
        } else {
            ("LimitUpdated", "limit-1")
        };
        let id = ledger.push(Entry::new(event, "LIMIT", entity, at));
        if entity == "limit-1" {
            want.push(id);
        }
    }
    // Same id, other entity type: not part of the history.
    ledger.push(Entry::new("IncidentResolved", "INCIDENT", "limit-1", t));
    ledger.insert(&app).await;
    want.reverse();

    let history = List {
        query: HISTORY,
        root: "auditEntityHistory",
        field: "recordId",
    };
    for forward in [true, false] {
        let seen = walk(
            &app,
            &key,
            &history,
            2,
            forward,
            json!({ "type": "LIMIT", "id": "limit-1" }),
        )
        .await;
        assert_eq!(seen, want, "forward={forward}");
    }
    let data = app
        .data(
            &key,
            HISTORY,
            json!({ "type": "LIMIT", "id": "limit-1", "first": 2 }),
        )
        .await;
    assert_eq!(data["auditEntityHistory"]["totalCount"], json!(6));
    let cursor = data["auditEntityHistory"]["pageInfo"]["endCursor"].clone();
    let body = app
        .gql(
            Some(&key),
            HISTORY,
            json!({ "type": "LIMIT", "id": "limit-9", "first": 2, "after": cursor }),
        )
        .await;
    assert_eq!(
        error_code(&body),
        "BAD_CURSOR",
        "a cursor of another entity"
    );
    let data = app
        .data(
            &key,
            HISTORY,
            json!({ "type": "POLICY_RULE", "id": "limit-1" }),
        )
        .await;
    assert_eq!(data["auditEntityHistory"]["totalCount"], json!(0));
    assert_eq!(
        ids_of(&data["auditEntityHistory"], "recordId"),
        Vec::<String>::new()
    );
    app.stop().await;
}

async fn signal_feedback_latest_event_wins(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let key = app.key("acme", Role::Viewer).await;
    let other = app.key("other", Role::Viewer).await;
    let t = fixed_time();
    let past = "2020-01-01T00:00:00Z";
    let future = "2999-01-01T00:00:00Z";
    let mut ledger = Ledger::new("acme");
    let signal = |event: &'static str, fp: &str, secs: i64, actor: &str, after: Option<Value>| {
        let mut e = Entry::new(event, "SIGNAL", fp, t + Duration::seconds(secs));
        e.actor_id = Some(actor.to_owned());
        e.after_state = after;
        e
    };
    // fp-1: three acknowledgements (the middle one is the newest by time and seq), two
    // suppressions (the latest already expired), one escalation.
    ledger.push(signal("SignalAcknowledged", "fp-1", 10, "alice", None));
    ledger.push(signal(
        "SignalSuppressed",
        "fp-1",
        15,
        "bob",
        Some(json!({ "suppressed_until": future })),
    ));
    ledger.push(signal("SignalAcknowledged", "fp-1", 20, "carol", None));
    ledger.push(signal("SignalEscalated", "fp-1", 25, "system", None));
    ledger.push(signal("SignalAcknowledged", "fp-1", 30, "dave", None));
    ledger.push(signal(
        "SignalSuppressed",
        "fp-1",
        35,
        "erin",
        Some(json!({ "suppressed_until": past })),
    ));
    // fp-2: an expired suppression, then a live one.
    ledger.push(signal(
        "SignalSuppressed",
        "fp-2",
        10,
        "bob",
        Some(json!({ "suppressed_until": past })),
    ));
    ledger.push(signal(
        "SignalSuppressed",
        "fp-2",
        20,
        "bob",
        Some(json!({ "suppressed_until": "2999-06-01T12:30:00", "reason": "noisy" })),
    ));
    // fp-3: a suppression with no expiry; fp-4: an unreadable one.
    ledger.push(signal(
        "SignalSuppressed",
        "fp-3",
        10,
        "bob",
        Some(json!({ "note": "forever" })),
    ));
    ledger.push(signal(
        "SignalSuppressed",
        "fp-4",
        10,
        "bob",
        Some(json!({ "suppressed_until": "tomorrow" })),
    ));
    // Not feedback: another entity type with the same id.
    ledger.push(Entry::new("LimitCreated", "LIMIT", "fp-5", t));
    ledger.insert(&app).await;

    let data = app.data(&key, FEEDBACK, json!({ "fp": "fp-1" })).await;
    let fb = &data["signalFeedback"];
    let at = |secs: i64| json!(logbook::scalars::format_utc(t + Duration::seconds(secs)));
    assert_eq!(fb["fingerprint"], "fp-1");
    assert_eq!(fb["acknowledged"], true);
    assert_eq!(fb["acknowledgedBy"], "dave");
    assert_eq!(fb["acknowledgedAt"], at(30));
    assert_eq!(fb["suppressed"], true);
    assert_eq!(fb["suppressedBy"], "erin");
    assert_eq!(fb["suppressedAt"], at(35));
    assert_eq!(fb["suppressedUntil"], past);
    assert_eq!(
        fb["suppressionActive"], false,
        "the latest suppression has expired"
    );
    assert_eq!(fb["escalated"], true);
    assert_eq!(fb["escalatedAt"], at(25));
    assert_eq!(fb["lastEventAt"], at(35));

    let fb = app.data(&key, FEEDBACK, json!({ "fp": "fp-2" })).await["signalFeedback"].clone();
    assert_eq!(fb["suppressionActive"], true);
    assert_eq!(fb["suppressedUntil"], "2999-06-01T12:30:00Z");
    assert_eq!(fb["acknowledged"], false);
    assert_eq!(fb["acknowledgedBy"], Value::Null);
    assert_eq!(fb["escalated"], false);
    assert_eq!(fb["escalatedAt"], Value::Null);
    let fb = app.data(&key, FEEDBACK, json!({ "fp": "fp-3" })).await["signalFeedback"].clone();
    assert_eq!(
        fb["suppressionActive"], true,
        "no expiry: suppressed until further notice"
    );
    assert_eq!(fb["suppressedUntil"], Value::Null);
    let fb = app.data(&key, FEEDBACK, json!({ "fp": "fp-4" })).await["signalFeedback"].clone();
    assert_eq!(fb["suppressed"], true);
    assert_eq!(fb["suppressedUntil"], Value::Null);
    assert_eq!(fb["suppressionActive"], false);

    for fp in ["fp-5", "nothing"] {
        let data = app.data(&key, FEEDBACK, json!({ "fp": fp })).await;
        assert_eq!(data["signalFeedback"], Value::Null, "{fp}");
    }
    let data = app.data(&other, FEEDBACK, json!({ "fp": "fp-1" })).await;
    assert_eq!(
        data["signalFeedback"],
        Value::Null,
        "another tenant's feedback is invisible"
    );
    app.stop().await;
}

async fn governance_events_for_runs_are_batched(backend: Backend) {
    let app = TestApp::spawn_for_counting(backend).await;
    let _ = app.key("acme", Role::Viewer).await;
    let _ = app.key("other", Role::Viewer).await;
    let t = fixed_time();
    let mut ledger = Ledger::new("acme");
    let mut want_a = Vec::new();
    // Many unrelated entries first: a limit-then-filter read would miss run-a's events.
    for i in 0..120 {
        let mut e = Entry::new(
            "LimitBreached",
            "LIMIT",
            "limit-x",
            t + Duration::seconds(i),
        );
        e.run_id = Some("run-busy".into());
        ledger.push(e);
    }
    for (i, (event, entity)) in [
        ("PolicyRuleCreated", "POLICY_RULE"),
        ("LimitBreached", "LIMIT"),
        ("PolicyProposalRejected", "POLICY_PROPOSAL"),
        ("IncidentAcknowledged", "INCIDENT"),
        ("SignalEscalated", "SIGNAL"),
    ]
    .into_iter()
    .enumerate()
    {
        let mut e = Entry::new(event, entity, "x", t - Duration::seconds(100 - i as i64));
        e.run_id = Some("run-a".into());
        let id = ledger.push(e);
        if entity != "SIGNAL" {
            want_a.push(id);
        }
    }
    ledger.insert(&app).await;
    want_a.reverse();
    let mut theirs = Ledger::new("other");
    let mut e = Entry::new("LimitCreated", "LIMIT", "y", t);
    e.run_id = Some("run-a".into());
    theirs.push(e);
    theirs.insert(&app).await;

    let tenant = TenantId::trusted("acme");
    let runs: Vec<String> = ["run-a", "run-busy", "run-none"]
        .map(str::to_owned)
        .to_vec();
    let before = app.state.sql.statements();
    let found = logbook::audit::store::governance_events_for_runs(app.db(), &tenant, &runs)
        .await
        .expect("batched read");
    assert_eq!(
        app.state.sql.statements() - before,
        1,
        "one statement for all runs"
    );
    let got: Vec<&str> = found["run-a"].iter().map(|e| e.id.as_str()).collect();
    assert_eq!(got, want_a, "governance entity types only, newest first");
    assert_eq!(found["run-busy"].len(), 100, "capped per run");
    assert_eq!(found["run-busy"][0].seq, 120, "the newest kept");
    assert!(found["run-none"].is_empty());

    let loader = logbook::audit::graphql::GovernanceEventsByRun::new(app.db().clone(), tenant);
    let loaded = loader.load(&runs).await.expect("loader");
    assert_eq!(loaded["run-a"].len(), 4);
    app.stop().await;
}

crate::cases!(
    entries_page_filter_and_count,
    entity_history_is_newest_first,
    signal_feedback_latest_event_wins,
    governance_events_for_runs_are_batched,
);
