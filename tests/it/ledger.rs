//! `ledger { … }`: RFC 6962 proofs checked by an independent verifier written here from RFC 9162
//! 2.1.3.2 and 2.1.4.2 (never by calling the code under test), signed checkpoints checked with
//! ed25519-dalek against the served key, tampering detected and named (GraphQL, the binary,
//! offline files), and each bad input.

use std::process::Command;

use chrono::Duration;
use ed25519_dalek::{Signature, Verifier, VerifyingKey};
use entity::audit_ledger;
use logbook::audit::chain::{entry_hash, ChainFields, GENESIS_PREV_HASH};
use logbook::auth::Role;
use rand::{Rng, SeedableRng};
use sea_orm::{EntityTrait, Set};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::support::{error_code, fixed_time, Backend, TestApp};

type H = [u8; 32];

fn sha(parts: &[&[u8]]) -> H {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p);
    }
    h.finalize().into()
}

fn unhex(s: &str) -> H {
    hex::decode(s).expect("hex").try_into().expect("32 bytes")
}

fn node(l: &H, r: &H) -> H {
    sha(&[&[1], l, r])
}

/// MTH straight from RFC 6962 2.1 over leaf inputs.
fn mth(leaves: &[H]) -> H {
    match leaves.len() {
        0 => sha(&[]),
        1 => sha(&[&[0], &leaves[0]]),
        n => {
            let mut k = 1;
            while k * 2 < n {
                k *= 2;
            }
            node(&mth(&leaves[..k]), &mth(&leaves[k..]))
        }
    }
}

/// RFC 9162 2.1.3.2.
fn verify_inclusion(index: u64, size: u64, leaf: H, path: &[H], root: H) -> bool {
    if index >= size {
        return false;
    }
    let (mut f, mut s, mut r) = (index, size - 1, leaf);
    for p in path {
        if s == 0 {
            return false;
        }
        if f & 1 == 1 || f == s {
            r = node(p, &r);
            if f & 1 == 0 {
                while f & 1 == 0 && f != 0 {
                    f >>= 1;
                    s >>= 1;
                }
            }
        } else {
            r = node(&r, p);
        }
        f >>= 1;
        s >>= 1;
    }
    s == 0 && r == root
}

/// RFC 9162 2.1.4.2.
fn verify_consistency(first: u64, second: u64, first_hash: H, second_hash: H, path: &[H]) -> bool {
    if first == second {
        return path.is_empty() && first_hash == second_hash;
    }
    if path.is_empty() || first == 0 || first > second {
        return false;
    }
    let mut path = path.to_vec();
    if first.is_power_of_two() {
        path.insert(0, first_hash);
    }
    let (mut f, mut s) = (first - 1, second - 1);
    while f & 1 == 1 {
        f >>= 1;
        s >>= 1;
    }
    let (mut fr, mut sr) = (path[0], path[0]);
    for c in &path[1..] {
        if s == 0 {
            return false;
        }
        if f & 1 == 1 || f == s {
            fr = node(c, &fr);
            sr = node(c, &sr);
            if f & 1 == 0 {
                while f & 1 == 0 && f != 0 {
                    f >>= 1;
                    s >>= 1;
                }
            }
        } else {
            sr = node(&sr, c);
        }
        f >>= 1;
        s >>= 1;
    }
    fr == first_hash && sr == second_hash && s == 0
}

/// Builds a valid chain for one tenant and inserts it in slices.
struct Chain {
    tenant: String,
    hashes: Vec<String>,
    ids: Vec<String>,
}

impl Chain {
    fn new(tenant: &str) -> Self {
        Chain {
            tenant: tenant.into(),
            hashes: Vec::new(),
            ids: Vec::new(),
        }
    }

    async fn append(&mut self, app: &TestApp, n: usize) {
        let mut rows = Vec::new();
        for _ in 0..n {
            let seq = self.hashes.len() as i64 + 1;
            let id = format!("{}-l{seq:05}", self.tenant);
            let prev = self
                .hashes
                .last()
                .cloned()
                .unwrap_or_else(|| GENESIS_PREV_HASH.to_owned());
            let after = json!({"n": seq, "note": "é"});
            let at = fixed_time() + Duration::seconds(seq);
            let reason = format!("reason {seq}");
            let hash = entry_hash(&ChainFields {
                tenant_id: &self.tenant,
                seq,
                prev_hash: &prev,
                id: &id,
                event_type: "LimitBreached",
                entity_type: "LIMIT",
                entity_id: "limit-1",
                actor_type: "SYSTEM",
                actor_id: None,
                action_reason: Some(&reason),
                before_state: None,
                after_state: Some(&after),
                correlation_id: None,
                run_id: None,
                created_at: at,
            });
            rows.push(audit_ledger::ActiveModel {
                id: Set(id.clone()),
                tenant_id: Set(self.tenant.clone()),
                seq: Set(seq),
                event_type: Set("LimitBreached".into()),
                entity_type: Set("LIMIT".into()),
                entity_id: Set("limit-1".into()),
                actor_type: Set("SYSTEM".into()),
                actor_id: Set(None),
                action_reason: Set(Some(reason)),
                before_state: Set(None),
                after_state: Set(Some(after)),
                run_id: Set(None),
                correlation_id: Set(None),
                prev_hash: Set(prev),
                entry_hash: Set(hash.clone()),
                hash_version: Set(1),
                created_at: Set(at),
            });
            self.hashes.push(hash);
            self.ids.push(id);
        }
        for chunk in rows.chunks(100) {
            audit_ledger::Entity::insert_many(chunk.to_vec())
                .exec_without_returning(app.db())
                .await
                .expect("insert entries");
        }
    }

    fn leaves(&self, size: usize) -> Vec<H> {
        self.hashes[..size].iter().map(|h| unhex(h)).collect()
    }
}

const INCLUSION: &str = r#"query($id: ID!, $size: BigInt) { ledger { inclusionProof(entryId: $id, treeSize: $size) {
  leafIndex treeSize leafHash auditPath rootHash entry { recordId seq } } } }"#;

const CONSISTENCY: &str = r#"query($from: BigInt!, $to: BigInt) { ledger { consistencyProof(fromSize: $from, toSize: $to) {
  fromSize toSize fromRoot toRoot path } } }"#;

fn hashes(v: &Value) -> Vec<H> {
    v.as_array()
        .expect("array")
        .iter()
        .map(|h| unhex(h.as_str().expect("string")))
        .collect()
}

async fn check_inclusion(app: &TestApp, key: &str, chain: &Chain, m: usize, n: usize) {
    let data = app
        .data(
            key,
            INCLUSION,
            json!({"id": chain.ids[m], "size": n.to_string()}),
        )
        .await;
    let p = &data["ledger"]["inclusionProof"];
    assert_eq!(p["leafIndex"], json!(m.to_string()));
    assert_eq!(p["entry"]["seq"], json!(m + 1));
    let leaf = unhex(p["leafHash"].as_str().expect("leaf"));
    assert_eq!(leaf, sha(&[&[0], &unhex(&chain.hashes[m])]));
    let root = unhex(p["rootHash"].as_str().expect("root"));
    assert_eq!(root, mth(&chain.leaves(n)), "root of size {n}");
    assert!(
        verify_inclusion(m as u64, n as u64, leaf, &hashes(&p["auditPath"]), root),
        "inclusion of leaf {m} in size {n}: {p:#}"
    );
}

async fn check_consistency(app: &TestApp, key: &str, chain: &Chain, m: usize, n: usize) {
    let data = app
        .data(
            key,
            CONSISTENCY,
            json!({"from": m.to_string(), "to": n.to_string()}),
        )
        .await;
    let p = &data["ledger"]["consistencyProof"];
    let (from_root, to_root) = (mth(&chain.leaves(m)), mth(&chain.leaves(n)));
    assert_eq!(unhex(p["fromRoot"].as_str().expect("root")), from_root);
    assert_eq!(unhex(p["toRoot"].as_str().expect("root")), to_root);
    assert!(
        verify_consistency(m as u64, n as u64, from_root, to_root, &hashes(&p["path"])),
        "consistency {m} -> {n}: {p:#}"
    );
}

async fn proofs_verify_independently(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let key = app.key("acme", Role::Viewer).await;
    let mut chain = Chain::new("acme");
    // Grow the ledger in steps, asking for proofs in between, so stored subtrees are resumed
    // from every kind of frontier.
    let mut size = 0;
    for step in [1usize, 2, 4, 6, 11, 9] {
        chain.append(&app, step).await;
        size += step;
        for n in 1..=size {
            for m in 0..n {
                check_inclusion(&app, &key, &chain, m, n).await;
            }
        }
        for n in 1..=size {
            for m in 1..=n {
                if size < 20 || m % 3 == 0 || n == size {
                    check_consistency(&app, &key, &chain, m, n).await;
                }
            }
        }
    }
    // Random pairs on a larger tree.
    chain.append(&app, 300).await;
    let total = chain.hashes.len();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
    for _ in 0..60 {
        let n = rng.random_range(1..=total);
        let m = rng.random_range(0..n);
        check_inclusion(&app, &key, &chain, m, n).await;
        check_consistency(&app, &key, &chain, m + 1, n).await;
    }
    // The default tree size is the head.
    let data = app
        .data(&key, INCLUSION, json!({"id": chain.ids[3], "size": null}))
        .await;
    assert_eq!(
        data["ledger"]["inclusionProof"]["treeSize"],
        json!(total.to_string())
    );
    let head = app
        .data(
            &key,
            "{ ledger { head { treeSize rootHash lastSeq lastEntryHash lastEntry { recordId } } } }",
            json!({}),
        )
        .await;
    let head = &head["ledger"]["head"];
    assert_eq!(head["treeSize"], json!(total.to_string()));
    assert_eq!(
        unhex(head["rootHash"].as_str().expect("root")),
        mth(&chain.leaves(total))
    );
    assert_eq!(head["lastEntryHash"], json!(chain.hashes[total - 1]));
    assert_eq!(head["lastEntry"]["recordId"], json!(chain.ids[total - 1]));
    app.stop().await;
}

const CHECKPOINT_FIELDS: &str =
    "treeSize rootHash issuedAt algorithm publicKey signature signedMessage";

/// Rebuilds the signed message from the documented format and checks the signature.
fn check_signature(checkpoint: &Value, tenant: &str, public_key_hex: &str) {
    let message = json!([
        "logbook-checkpoint-v1",
        tenant,
        checkpoint["treeSize"]
            .as_str()
            .expect("size")
            .parse::<u64>()
            .expect("number"),
        checkpoint["rootHash"],
        // issuedAt is served as RFC 3339; the signed form has exactly six fractional digits.
        chrono::DateTime::parse_from_rfc3339(checkpoint["issuedAt"].as_str().expect("time"))
            .expect("rfc3339")
            .with_timezone(&chrono::Utc)
            .to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
    ])
    .to_string();
    assert_eq!(checkpoint["signedMessage"], json!(message));
    let key: [u8; 32] = hex::decode(public_key_hex)
        .expect("hex")
        .try_into()
        .expect("32");
    let key = VerifyingKey::from_bytes(&key).expect("ed25519 key");
    use base64::Engine;
    let sig: [u8; 64] = base64::engine::general_purpose::STANDARD
        .decode(checkpoint["signature"].as_str().expect("sig"))
        .expect("base64")
        .try_into()
        .expect("64");
    key.verify(message.as_bytes(), &Signature::from_bytes(&sig))
        .expect("the signature verifies");
    assert!(key
        .verify(b"something else", &Signature::from_bytes(&sig))
        .is_err());
}

async fn checkpoints_are_signed_and_inputs_checked(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let key = app.key("acme", Role::Viewer).await;
    let other = app.key("globex", Role::Viewer).await;
    let empty = app
        .data(
            &other,
            "{ ledger { head { treeSize rootHash lastEntry { id } checkpoint { treeSize } } } }",
            json!({}),
        )
        .await;
    assert_eq!(
        empty["ledger"]["head"],
        json!({"treeSize": "0", "rootHash": hex::encode(sha(&[])), "lastEntry": null, "checkpoint": null})
    );
    let mut chain = Chain::new("acme");
    chain.append(&app, 12).await;
    let mut globex = Chain::new("globex");
    globex.append(&app, 3).await;

    let q = format!(
        "{{ ledger {{ publicKey {{ algorithm hex base64 }} head {{ treeSize rootHash checkpoint {{ {CHECKPOINT_FIELDS} }} }} }} }}"
    );
    let data = app.data(&key, &q, json!({})).await;
    let public_key = data["ledger"]["publicKey"]["hex"]
        .as_str()
        .expect("hex")
        .to_owned();
    assert_eq!(data["ledger"]["publicKey"]["algorithm"], json!("ED25519"));
    let cp = &data["ledger"]["head"]["checkpoint"];
    assert_eq!(cp["treeSize"], json!("12"));
    assert_eq!(
        unhex(cp["rootHash"].as_str().expect("root")),
        mth(&chain.leaves(12))
    );
    check_signature(cp, "acme", &public_key);
    // Asking again returns the same stored checkpoint, not a new signature.
    let again = app.data(&key, &q, json!({})).await;
    assert_eq!(again["ledger"]["head"]["checkpoint"], *cp);

    let q5 = format!("{{ ledger {{ checkpoint(treeSize: 5) {{ {CHECKPOINT_FIELDS} }} }} }}");
    let five = app.data(&key, &q5, json!({})).await;
    let five = &five["ledger"]["checkpoint"];
    assert_eq!(
        unhex(five["rootHash"].as_str().expect("root")),
        mth(&chain.leaves(5))
    );
    check_signature(five, "acme", &public_key);
    let list = app
        .data(
            &key,
            "{ ledger { checkpoints(first: 10) { totalCount nodes { treeSize } } } }",
            json!({}),
        )
        .await;
    assert_eq!(list["ledger"]["checkpoints"]["totalCount"], json!(2));
    assert_eq!(
        list["ledger"]["checkpoints"]["nodes"],
        json!([{"treeSize": "5"}, {"treeSize": "12"}])
    );

    // A second server process on the same database signs with the same (persisted) key.
    let second = TestApp::spawn_on(backend, app.database_url(), |_| {}).await;
    let data = second
        .data(&key, "{ ledger { publicKey { hex } } }", json!({}))
        .await;
    assert_eq!(data["ledger"]["publicKey"]["hex"], json!(public_key));
    second.stop().await;

    // Bad inputs.
    let bad = |body: Value, field: &str| {
        assert_eq!(error_code(&body), "BAD_USER_INPUT", "{body:#}");
        assert_eq!(body["errors"][0]["extensions"]["field"], json!(field));
    };
    let q = "query($s: BigInt!) { ledger { checkpoint(treeSize: $s) { treeSize } } }";
    bad(app.gql(Some(&key), q, json!({"s": "0"})).await, "treeSize");
    bad(app.gql(Some(&key), q, json!({"s": 13})).await, "treeSize");
    bad(
        app.gql(Some(&key), CONSISTENCY, json!({"from": "5", "to": "3"}))
            .await,
        "fromSize",
    );
    bad(
        app.gql(Some(&key), CONSISTENCY, json!({"from": "0", "to": "3"}))
            .await,
        "fromSize",
    );
    bad(
        app.gql(Some(&key), CONSISTENCY, json!({"from": "1", "to": "99"}))
            .await,
        "toSize",
    );
    bad(
        app.gql(
            Some(&key),
            INCLUSION,
            json!({"id": chain.ids[9], "size": "5"}),
        )
        .await,
        "treeSize",
    );
    let missing = app
        .gql(Some(&key), INCLUSION, json!({"id": "nope", "size": null}))
        .await;
    assert_eq!(error_code(&missing), "NOT_FOUND");
    // Another tenant's entry, by record id and by global id: indistinguishable from missing.
    let theirs = app
        .gql(
            Some(&key),
            INCLUSION,
            json!({"id": globex.ids[0], "size": null}),
        )
        .await;
    assert_eq!(error_code(&theirs), "NOT_FOUND");
    let global = logbook::ids::encode(logbook::ids::NodeKind::AuditEntry, &globex.ids[0]);
    let theirs = app
        .gql(Some(&key), INCLUSION, json!({"id": global.0, "size": null}))
        .await;
    assert_eq!(error_code(&theirs), "NOT_FOUND");
    assert_eq!(
        error_code(
            &app.gql(None, "{ ledger { head { treeSize } } }", json!({}))
                .await
        ),
        "UNAUTHENTICATED"
    );
    app.stop().await;
}

fn logbook_bin(database_url: &str, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_logbook"))
        .args(args)
        .env("DATABASE_URL", database_url)
        .env_remove("REDIS_URL")
        .env_remove("LOGBOOK_LEDGER_SIGNING_KEY")
        .output()
        .expect("run logbook")
}

const VERIFY: &str = "{ ledger { verify { ok entriesChecked rootHash failureReason message checkpoint { treeSize } firstBadEntry { seq entryId recordId reason message } } } }";

async fn tampering_is_detected_and_named(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let key = app.key("acme", Role::Viewer).await;
    let mut chain = Chain::new("acme");
    chain.append(&app, 30).await;
    let data = app
        .data(
            &key,
            "{ ledger { publicKey { hex } head { checkpoint { treeSize } } } }",
            json!({}),
        )
        .await;
    let public_key = data["ledger"]["publicKey"]["hex"]
        .as_str()
        .expect("hex")
        .to_owned();
    let good = app.data(&key, VERIFY, json!({})).await;
    let v = &good["ledger"]["verify"];
    assert_eq!(v["ok"], json!(true), "{v:#}");
    assert_eq!(v["entriesChecked"], json!("30"));
    assert_eq!(v["checkpoint"]["treeSize"], json!("30"));
    assert_eq!(
        unhex(v["rootHash"].as_str().expect("root")),
        mth(&chain.leaves(30))
    );

    // Online and offline verification through the binary, before tampering.
    let url = app.database_url();
    let dir = crate::support::run_context().sqlite_dir.clone();
    let file = dir.join(format!(
        "ledger-{}-{}.ndjson",
        backend.name(),
        std::process::id()
    ));
    let file_s = file.to_str().expect("utf8 path");
    let out = logbook_bin(&url, &["ledger", "verify", "--tenant", "acme"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = logbook_bin(
        &url,
        &["ledger", "export", "--tenant", "acme", "--out", file_s],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = logbook_bin(
        &url,
        &[
            "ledger",
            "verify",
            "--file",
            file_s,
            "--public-key",
            &public_key,
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The library function behind the command agrees; a wrong key fails.
    assert!(logbook::ledger::cli::verify_offline(&file, &public_key).is_ok());
    assert!(logbook::ledger::cli::verify_offline(&file, &"11".repeat(32)).is_err());

    // Tamper with one exported line: the offline check names that entry.
    let text = std::fs::read_to_string(&file).expect("export");
    let forged_file = dir.join(format!(
        "forged-{}-{}.ndjson",
        backend.name(),
        std::process::id()
    ));
    let forged = text.replacen("\"reason 8\"", "\"reason eight\"", 1);
    assert_ne!(forged, text);
    std::fs::write(&forged_file, forged).expect("write");
    let why = logbook::ledger::cli::verify_offline(&forged_file, &public_key).expect_err("forged");
    assert!(
        why.contains("seq 8") && why.contains(&chain.ids[7]),
        "{why}"
    );
    // Dropping the last entry line breaks the signed size.
    let mut lines: Vec<&str> = text.lines().collect();
    lines.remove(lines.len() - 2);
    std::fs::write(&forged_file, lines.join("\n")).expect("write");
    assert!(logbook::ledger::cli::verify_offline(&forged_file, &public_key).is_err());

    // Tamper with one row in the database, the immutability trigger disabled.
    let victim = &chain.ids[16];
    let update = format!("UPDATE audit_ledger SET action_reason = 'forged' WHERE id = '{victim}'");
    match backend {
        Backend::Postgres => {
            app.raw("ALTER TABLE audit_ledger DISABLE TRIGGER ALL")
                .await
                .expect("disable");
            app.raw(&update).await.expect("tamper");
            app.raw("ALTER TABLE audit_ledger ENABLE TRIGGER ALL")
                .await
                .expect("enable");
        }
        Backend::Sqlite => {
            app.raw("DROP TRIGGER trg_audit_ledger_immutable_update")
                .await
                .expect("drop trigger");
            app.raw(&update).await.expect("tamper");
        }
    }
    let bad = app.data(&key, VERIFY, json!({})).await;
    let v = &bad["ledger"]["verify"];
    assert_eq!(v["ok"], json!(false));
    assert_eq!(v["entriesChecked"], json!("16"));
    assert_eq!(v["failureReason"], json!("ENTRY_HASH_MISMATCH"));
    assert_eq!(v["firstBadEntry"]["seq"], json!("17"));
    assert_eq!(v["firstBadEntry"]["recordId"], json!(victim));
    assert_eq!(v["firstBadEntry"]["reason"], json!("ENTRY_HASH_MISMATCH"));
    let out = logbook_bin(&url, &["ledger", "verify", "--tenant", "acme"]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("seq 17") && stderr.contains(victim.as_str()),
        "{stderr}"
    );
    // An export of the tampered ledger fails offline at the same entry.
    let out = logbook_bin(
        &url,
        &["ledger", "export", "--tenant", "acme", "--out", file_s],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let why = logbook::ledger::cli::verify_offline(&file, &public_key).expect_err("tampered");
    assert!(
        why.contains("seq 17") && why.contains(victim.as_str()),
        "{why}"
    );
    let _ = std::fs::remove_file(&file);
    let _ = std::fs::remove_file(&forged_file);
    app.stop().await;
}

crate::cases!(
    proofs_verify_independently,
    checkpoints_are_signed_and_inputs_checked,
    tampering_is_detected_and_named
);
