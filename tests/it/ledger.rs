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
    reasons: Vec<String>,
}

impl Chain {
    fn new(tenant: &str) -> Self {
        Chain {
            tenant: tenant.into(),
            hashes: Vec::new(),
            ids: Vec::new(),
            reasons: Vec::new(),
        }
    }

    fn id_of(&self, seq: i64) -> String {
        format!("{}-l{seq:05}", self.tenant)
    }

    /// The entry hash of `seq` with these `prev_hash` and `action_reason`.
    fn hash_of(&self, seq: i64, prev: &str, reason: &str) -> String {
        let after = json!({"n": seq, "note": "é"});
        entry_hash(&ChainFields {
            tenant_id: &self.tenant,
            seq,
            prev_hash: prev,
            id: &self.id_of(seq),
            event_type: "LimitBreached",
            entity_type: "LIMIT",
            entity_id: "limit-1",
            actor_type: "SYSTEM",
            actor_id: None,
            action_reason: Some(reason),
            before_state: None,
            after_state: Some(&after),
            correlation_id: None,
            run_id: None,
            created_at: fixed_time() + Duration::seconds(seq),
        })
    }

    async fn append(&mut self, app: &TestApp, n: usize) {
        let mut rows = Vec::new();
        for _ in 0..n {
            let seq = self.hashes.len() as i64 + 1;
            let id = self.id_of(seq);
            let prev = self
                .hashes
                .last()
                .cloned()
                .unwrap_or_else(|| GENESIS_PREV_HASH.to_owned());
            let after = json!({"n": seq, "note": "é"});
            let at = fixed_time() + Duration::seconds(seq);
            let reason = format!("reason {seq}");
            let hash = self.hash_of(seq, &prev, &reason);
            self.reasons.push(reason.clone());
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

fn logbook_cmd(database_url: &str, args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_logbook"));
    cmd.args(args)
        .env("DATABASE_URL", database_url)
        .env_remove("REDIS_URL")
        .env_remove("LOGBOOK_LEDGER_SIGNING_KEY")
        .env_remove("LOGBOOK_LEDGER_SIGNING_KEY_FILE")
        .env_remove("LOGBOOK_LEDGER_CHECKPOINT_DIR")
        .env_remove("LOGBOOK_LEDGER_CHECKPOINT_URL");
    cmd
}

fn logbook_bin(database_url: &str, args: &[&str]) -> std::process::Output {
    logbook_cmd(database_url, args)
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

/// A file in this run's scratch directory, unique per backend.
fn scratch(backend: Backend, name: &str) -> std::path::PathBuf {
    crate::support::run_context().sqlite_dir.join(format!(
        "{name}-{}-{}",
        backend.name(),
        std::process::id()
    ))
}

fn path_str(path: &std::path::Path) -> &str {
    path.to_str().expect("utf8 path")
}

fn stderr_of(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn stdout_of(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The head checkpoint exactly as a client receives it from the API.
async fn head_checkpoint(app: &TestApp, key: &str) -> Value {
    let q = format!("{{ ledger {{ head {{ checkpoint {{ {CHECKPOINT_FIELDS} }} }} }} }}");
    app.data(key, &q, json!({})).await["ledger"]["head"]["checkpoint"].clone()
}

/// Plays a database superuser on `chain`'s tenant, with the library's own functions: turns the
/// immutability triggers off, rewrites the reason of entry `seq`, recomputes every later hash and
/// link, throws the tenant's Merkle nodes and checkpoints away, rebuilds the nodes, and re-signs
/// checkpoints of the `resign` sizes with the real key, read from the database where it is kept
/// by default. Returns the re-signed checkpoints.
async fn rewrite_history(
    app: &TestApp,
    backend: Backend,
    chain: &mut Chain,
    seq: usize,
    reason: &str,
    resign: &[u64],
) -> Vec<logbook::ledger::CheckpointSnapshot> {
    let tables = ["audit_ledger", "ledger_merkle_nodes", "ledger_checkpoints"];
    match backend {
        Backend::Postgres => {
            for t in tables {
                app.raw(&format!("ALTER TABLE {t} DISABLE TRIGGER ALL"))
                    .await
                    .expect("disable triggers");
            }
        }
        Backend::Sqlite => {
            for t in tables {
                for op in ["update", "delete"] {
                    app.raw(&format!("DROP TRIGGER IF EXISTS trg_{t}_immutable_{op}"))
                        .await
                        .expect("drop trigger");
                }
            }
        }
    }
    chain.reasons[seq - 1] = reason.to_owned();
    for s in seq..=chain.hashes.len() {
        let prev = if s == 1 {
            GENESIS_PREV_HASH.to_owned()
        } else {
            chain.hashes[s - 2].clone()
        };
        let hash = chain.hash_of(s as i64, &prev, &chain.reasons[s - 1]);
        app.raw(&format!(
            "UPDATE audit_ledger SET action_reason = '{}', prev_hash = '{prev}', \
             entry_hash = '{hash}' WHERE id = '{}'",
            chain.reasons[s - 1],
            chain.ids[s - 1]
        ))
        .await
        .expect("rewrite an entry");
        chain.hashes[s - 1] = hash;
    }
    let tenant = chain.tenant.clone();
    for t in [
        "ledger_merkle_nodes",
        "ledger_merkle_heads",
        "ledger_checkpoints",
    ] {
        app.raw(&format!("DELETE FROM {t} WHERE tenant_id = '{tenant}'"))
            .await
            .expect("drop the tree and checkpoints");
    }
    if backend == Backend::Postgres {
        for t in tables {
            app.raw(&format!("ALTER TABLE {t} ENABLE TRIGGER ALL"))
                .await
                .expect("enable triggers");
        }
    }
    // The real key, as a database superuser reads it from server_settings.
    let real_key = logbook::ledger::signing::LedgerKey::load(app.db(), None)
        .await
        .expect("the key kept in the database");
    assert_eq!(real_key.public_key(), app.services.ledger_key.public_key());
    let tenant = logbook::auth::TenantId::trusted(tenant);
    let size = chain.hashes.len() as u64;
    logbook::ledger::store::catch_up(app.db(), &tenant, size)
        .await
        .expect("rebuild the Merkle nodes");
    let mut signed = Vec::new();
    for n in resign {
        signed.push(
            logbook::ledger::store::checkpoint(app.db(), &real_key, &tenant, *n)
                .await
                .expect("re-sign"),
        );
    }
    signed
}

async fn rewrite_and_resign_is_caught_by_a_trusted_checkpoint(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let key = app.key("acme", Role::Viewer).await;
    let url = app.database_url();
    let mut chain = Chain::new("acme");
    chain.append(&app, 20).await;
    let public_key = app
        .data(&key, "{ ledger { publicKey { hex } } }", json!({}))
        .await["ledger"]["publicKey"]["hex"]
        .as_str()
        .expect("hex")
        .to_owned();
    // A client saves the head checkpoint (size 20) as the API returns it.
    let saved = head_checkpoint(&app, &key).await;
    assert_eq!(saved["treeSize"], json!("20"));
    let saved_file = scratch(backend, "trusted-checkpoint.json");
    std::fs::write(&saved_file, saved.to_string()).expect("save the checkpoint");
    let saved_path = path_str(&saved_file);
    // The ledger grows, and someone else reads the newer head.
    chain.append(&app, 7).await;
    head_checkpoint(&app, &key).await;

    // Before the attack the ledger extends the saved checkpoint: online, with and without the
    // key pinned, and offline.
    let trusted = |pinned: bool| {
        let mut args = vec![
            "ledger",
            "verify",
            "--tenant",
            "acme",
            "--trusted-checkpoint",
            saved_path,
        ];
        if pinned {
            args.extend(["--public-key", public_key.as_str()]);
        }
        logbook_bin(&url, &args)
    };
    for pinned in [false, true] {
        let out = trusted(pinned);
        assert!(out.status.success(), "{}", stderr_of(&out));
        assert!(
            stdout_of(&out).contains("consistent with the trusted checkpoint of size 20"),
            "{}",
            stdout_of(&out)
        );
    }
    let export_file = scratch(backend, "rewritten.ndjson");
    let export_path = path_str(&export_file);
    let offline = |trusted: bool| {
        let out = logbook_bin(
            &url,
            &["ledger", "export", "--tenant", "acme", "--out", export_path],
        );
        assert!(out.status.success(), "{}", stderr_of(&out));
        let mut args = vec![
            "ledger",
            "verify",
            "--file",
            export_path,
            "--public-key",
            public_key.as_str(),
        ];
        if trusted {
            args.extend(["--trusted-checkpoint", saved_path]);
        }
        logbook_bin(&url, &args)
    };
    let out = offline(true);
    assert!(out.status.success(), "{}", stderr_of(&out));

    // A saved checkpoint that was edited, or that another key signed, is refused up front.
    let mut edited = saved.clone();
    edited["rootHash"] = json!("00".repeat(32));
    edited["signedMessage"] = Value::Null;
    let edited_file = scratch(backend, "edited-checkpoint.json");
    std::fs::write(&edited_file, edited.to_string()).expect("write");
    let out = logbook_bin(
        &url,
        &[
            "ledger",
            "verify",
            "--tenant",
            "acme",
            "--trusted-checkpoint",
            path_str(&edited_file),
        ],
    );
    assert!(!out.status.success());
    assert!(
        stderr_of(&out).contains("BAD_SIGNATURE"),
        "{}",
        stderr_of(&out)
    );
    let out = logbook_bin(
        &url,
        &[
            "ledger",
            "verify",
            "--tenant",
            "acme",
            "--trusted-checkpoint",
            saved_path,
            "--public-key",
            &"11".repeat(32),
        ],
    );
    assert!(!out.status.success());
    assert!(
        stderr_of(&out).contains("BAD_SIGNATURE"),
        "{}",
        stderr_of(&out)
    );

    // The attack: entry 9 rewritten, the chain, tree and checkpoints recomputed and re-signed
    // with the real key.
    let resigned =
        rewrite_history(&app, backend, &mut chain, 9, "nothing happened", &[20, 27]).await;
    assert_ne!(json!(resigned[0].root_hash), saved["rootHash"]);
    assert!(resigned[0].verify_signature().is_ok());
    assert_eq!(resigned[0].public_key, public_key);

    // The defect: everything kept in the database agrees, so plain verification passes.
    let v = app.data(&key, VERIFY, json!({})).await;
    assert_eq!(v["ledger"]["verify"]["ok"], json!(true), "{v:#}");
    let out = logbook_bin(&url, &["ledger", "verify", "--tenant", "acme"]);
    assert!(out.status.success(), "{}", stderr_of(&out));
    let out = offline(false);
    assert!(out.status.success(), "{}", stderr_of(&out));

    // The saved checkpoint catches it, naming the failed check, whether or not the key is
    // pinned (the attacker used the real key).
    for pinned in [false, true] {
        let out = trusted(pinned);
        assert!(!out.status.success(), "{}", stdout_of(&out));
        let stderr = stderr_of(&out);
        let reason = stderr.lines().last().unwrap_or_default();
        assert!(
            reason.starts_with("logbook: ledger of tenant acme is INVALID: "),
            "{stderr}"
        );
        assert!(
            reason.contains("NOT CONSISTENT WITH THE TRUSTED CHECKPOINT")
                && reason.contains("consistency proof from size 20 to the current size 27")
                && reason.contains("at or below seq 20"),
            "{reason}"
        );
    }
    let out = offline(true);
    assert!(!out.status.success());
    let stderr = stderr_of(&out);
    assert!(
        stderr.contains("NOT CONSISTENT WITH THE TRUSTED CHECKPOINT")
            && stderr.contains("at or below seq 20"),
        "{stderr}"
    );
    // The re-signed checkpoint of size 20 is what the server serves now: it proves nothing
    // against the saved one.
    let now = app
        .data(
            &key,
            "{ ledger { checkpoint(treeSize: 20) { rootHash } } }",
            json!({}),
        )
        .await;
    assert_eq!(
        now["ledger"]["checkpoint"]["rootHash"],
        json!(resigned[0].root_hash)
    );
    for f in [&saved_file, &export_file, &edited_file] {
        let _ = std::fs::remove_file(f);
    }
    app.stop().await;
}

/// Polls until `done` holds (or fails the test after 30 s).
async fn eventually(what: &str, mut done: impl FnMut() -> bool) {
    for _ in 0..300 {
        if done() {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("timed out waiting for {what}");
}

fn json_files(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "json"))
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    files
}

async fn db_checkpoints(app: &TestApp) -> Vec<logbook::ledger::CheckpointSnapshot> {
    use sea_orm::QueryOrder;
    entity::ledger_checkpoints::Entity::find()
        .order_by_asc(entity::ledger_checkpoints::Column::TreeSize)
        .all(app.db())
        .await
        .expect("checkpoints")
        .into_iter()
        .map(|m| logbook::ledger::CheckpointSnapshot {
            id: m.id,
            tenant_id: m.tenant_id,
            tree_size: m.tree_size as u64,
            root_hash: m.root_hash,
            public_key: m.public_key,
            signature: m.signature,
            issued_at: m.created_at,
        })
        .collect()
}

async fn checkpoints_are_published_to_a_sink_directory(backend: Backend) {
    use logbook::ledger::sink::{self, DirSink, Published, Publisher};
    let root = scratch(backend, "sink");
    let tenant_dir = root.join("acme");
    // The sink starts out unusable: a plain file where the directory should be.
    std::fs::write(&root, "not a directory").expect("block the sink");
    let app = TestApp::spawn_with(backend, |c| {
        c.ledger_checkpoints.dir = Some(root.clone());
        c.ledger_checkpoints.poll_interval = std::time::Duration::from_millis(100);
    })
    .await;
    let key = app.key("acme", Role::Viewer).await;
    let url = app.database_url();
    let mut chain = Chain::new("acme");
    chain.append(&app, 12).await;
    app.data(
        &key,
        "{ ledger { checkpoint(treeSize: 5) { treeSize } } }",
        json!({}),
    )
    .await;
    head_checkpoint(&app, &key).await;
    // Publishing fails, the checkpoints stay in the database.
    tokio::time::sleep(std::time::Duration::from_millis(400)).await;
    assert!(root.is_file());
    assert_eq!(db_checkpoints(&app).await.len(), 2);

    // The sink comes back and is filled in.
    std::fs::remove_file(&root).expect("unblock the sink");
    eventually("the backlog in the sink", || {
        json_files(&tenant_dir).len() == 2
    })
    .await;
    // A checkpoint another process issues (the CLI, no sink configured) is published too.
    chain.append(&app, 3).await;
    let export_file = scratch(backend, "sink-export.ndjson");
    let out = logbook_bin(
        &url,
        &[
            "ledger",
            "export",
            "--tenant",
            "acme",
            "--out",
            path_str(&export_file),
        ],
    );
    assert!(out.status.success(), "{}", stderr_of(&out));
    eventually("the CLI's checkpoint in the sink", || {
        json_files(&tenant_dir).len() == 3
    })
    .await;
    let issued = db_checkpoints(&app).await;
    assert_eq!(
        issued.iter().map(|c| c.tree_size).collect::<Vec<_>>(),
        [5, 12, 15]
    );
    let dir_sink = DirSink::new(&root);
    let mut before = Vec::new();
    for c in &issued {
        let path = dir_sink.path_for(c);
        assert_eq!(path.parent(), Some(tenant_dir.as_path()));
        let text = std::fs::read_to_string(&path).expect("published file");
        assert_eq!(text, sink::document(c));
        // What the sink holds is a checkpoint a client can verify and trust on its own.
        let parsed = logbook::ledger::trusted::parse(&text, None).expect("parse");
        assert!(parsed.verify_signature().is_ok());
        assert_eq!(
            parsed.root_hash,
            hex::encode(mth(&chain.leaves(c.tree_size as usize)))
        );
        // Publishing the same checkpoint again (another process) is harmless.
        assert_eq!(dir_sink.publish(c), Ok(Published::Identical));
        before.push((path, text));
    }
    // A second process sharing the database and the directory re-checks it in full at start.
    let mut other = Publisher::to_dir(app.db().clone(), &root);
    let report = other.pass().await.expect("pass");
    assert_eq!(
        (report.published, report.identical, report.conflicts),
        (0, 3, 0)
    );
    // Nothing but the published files and no temporary files are left behind.
    let names: Vec<String> = std::fs::read_dir(&tenant_dir)
        .expect("dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names.len(), 3, "{names:?}");

    // History rewritten and re-signed with the real key at sizes already published: the sink
    // refuses, keeps what it had, and keeps the refused checkpoint beside it as evidence.
    let resigned =
        rewrite_history(&app, backend, &mut chain, 4, "nothing happened", &[12, 15]).await;
    let rejected = |path: &std::path::Path| {
        std::fs::read_dir(&tenant_dir)
            .expect("dir")
            .filter_map(|e| e.ok().map(|e| e.path()))
            .find(|p| {
                p.to_string_lossy()
                    .starts_with(&format!("{}.rejected-", path.display()))
            })
    };
    eventually("the refused checkpoints' evidence", || {
        before.iter().skip(1).all(|(p, _)| rejected(p).is_some())
    })
    .await;
    for (path, text) in &before {
        assert_eq!(&std::fs::read_to_string(path).expect("kept"), text);
    }
    for (c, (path, _)) in resigned.iter().zip(before.iter().skip(1)) {
        let evidence = rejected(path).expect("evidence");
        assert_eq!(
            std::fs::read_to_string(evidence).expect("evidence"),
            sink::document(c)
        );
        assert!(matches!(
            dir_sink.publish(c),
            Err(sink::PublishError::Conflict(_))
        ));
    }
    let report = Publisher::to_dir(app.db().clone(), &root)
        .pass()
        .await
        .expect("pass");
    assert_eq!(report.conflicts, 2, "{report:?}");
    // And the published checkpoint is the client's proof of the rewrite.
    let out = logbook_bin(
        &url,
        &[
            "ledger",
            "verify",
            "--tenant",
            "acme",
            "--trusted-checkpoint",
            path_str(&before[1].0),
        ],
    );
    assert!(!out.status.success());
    assert!(
        stderr_of(&out).contains("NOT CONSISTENT WITH THE TRUSTED CHECKPOINT"),
        "{}",
        stderr_of(&out)
    );
    let _ = std::fs::remove_file(&export_file);
    let _ = std::fs::remove_dir_all(&root);
    app.stop().await;
}

/// A checkpoint endpoint for the test: answers 503 to the first `down` requests, then keeps
/// each body by its `Idempotency-Key` (409 for a different body under a known key).
struct FakeSink {
    down: std::sync::atomic::AtomicUsize,
    received: std::sync::Mutex<Vec<(String, String)>>,
}

async fn fake_sink_post(
    sink: actix_web::web::Data<FakeSink>,
    req: actix_web::HttpRequest,
    body: String,
) -> actix_web::HttpResponse {
    use std::sync::atomic::Ordering;
    if sink
        .down
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok()
    {
        return actix_web::HttpResponse::ServiceUnavailable().finish();
    }
    let key = req
        .headers()
        .get("Idempotency-Key")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let mut received = sink.received.lock().expect("lock");
    if let Some((_, known)) = received.iter().find(|(k, _)| *k == key) {
        return if *known == body {
            actix_web::HttpResponse::Ok().finish()
        } else {
            actix_web::HttpResponse::Conflict().body("a different checkpoint")
        };
    }
    received.push((key, body));
    actix_web::HttpResponse::Created().finish()
}

/// Starts the fake endpoint on port 0.
fn start_fake_sink(
    fake: actix_web::web::Data<FakeSink>,
) -> (std::net::SocketAddr, actix_web::dev::ServerHandle) {
    crate::support::start_fake_endpoint(move |routes| {
        routes
            .app_data(fake.clone())
            .route("/checkpoints", actix_web::web::post().to(fake_sink_post));
    })
}

async fn checkpoints_are_posted_to_a_sink_url(backend: Backend) {
    use logbook::ledger::sink::{self, Publisher};
    let fake = actix_web::web::Data::new(FakeSink {
        down: 3.into(),
        received: Default::default(),
    });
    let (addr, handle) = start_fake_sink(fake.clone());
    let endpoint = format!("http://{addr}/checkpoints");

    let app = TestApp::spawn_with(backend, |c| {
        c.ledger_checkpoints.url = Some(endpoint.clone());
        c.ledger_checkpoints.poll_interval = std::time::Duration::from_millis(100);
    })
    .await;
    let key = app.key("acme", Role::Viewer).await;
    let mut chain = Chain::new("acme");
    chain.append(&app, 6).await;
    app.data(
        &key,
        "{ ledger { checkpoint(treeSize: 3) { treeSize } } }",
        json!({}),
    )
    .await;
    head_checkpoint(&app, &key).await;
    // The endpoint is down for the first requests; the publisher retries until it has both.
    eventually("both checkpoints at the endpoint", || {
        fake.received.lock().expect("lock").len() == 2
    })
    .await;
    assert_eq!(fake.down.load(std::sync::atomic::Ordering::SeqCst), 0);
    let issued = db_checkpoints(&app).await;
    let mut received = fake.received.lock().expect("lock").clone();
    received.sort();
    let mut expected: Vec<(String, String)> = issued
        .iter()
        .map(|c| (c.id.clone(), sink::document(c)))
        .collect();
    expected.sort();
    assert_eq!(received, expected);
    // Its progress is kept in the database for every process publishing there (written just
    // after the endpoint answered, so wait for it).
    {
        use sea_orm::{ColumnTrait, QueryFilter};
        let mut cursors = Vec::new();
        for _ in 0..300 {
            cursors = entity::server_settings::Entity::find()
                .filter(
                    entity::server_settings::Column::Name.starts_with("ledger_checkpoint_sink:"),
                )
                .all(app.db())
                .await
                .expect("cursor");
            let newest = issued.iter().map(|c| c.issued_at).max();
            let caught_up = cursors.first().is_some_and(|c| {
                chrono::DateTime::parse_from_rfc3339(&c.value)
                    .is_ok_and(|at| Some(at.with_timezone(&chrono::Utc)) == newest)
            });
            if caught_up {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        assert_eq!(cursors.len(), 1);
        let at = chrono::DateTime::parse_from_rfc3339(&cursors[0].value).expect("a time");
        assert_eq!(
            at.with_timezone(&chrono::Utc),
            issued.iter().map(|c| c.issued_at).max().expect("issued")
        );
    }
    // A second publisher re-sending the same checkpoints is harmless; a rewritten history
    // re-signed at a published size is refused by the endpoint (409) and reported.
    let report = Publisher::to_url(app.db().clone(), &endpoint)
        .expect("url")
        .pass()
        .await
        .expect("pass");
    assert_eq!(report.conflicts, 0, "{report:?}");
    rewrite_history(&app, backend, &mut chain, 2, "nothing happened", &[6]).await;
    let report = Publisher::to_url(app.db().clone(), &endpoint)
        .expect("url")
        .pass()
        .await
        .expect("pass");
    assert_eq!(report.conflicts, 1, "{report:?}");
    assert_eq!(fake.received.lock().expect("lock").len(), 2);
    handle.stop(false).await;
    app.stop().await;
}

/// Runs `logbook serve` on port 0 until it says it is serving; returns what it wrote to stderr.
fn serve_stderr(database_url: &str, extra: &[&str]) -> String {
    use std::io::BufRead;
    let mut args = extra.to_vec();
    args.extend(["serve", "--bind", "127.0.0.1:0"]);
    let mut child = logbook_cmd(database_url, &args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start logbook serve");
    let stderr = child.stderr.take().expect("stderr");
    let (tx, rx) = std::sync::mpsc::channel();
    let reader = std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut seen = String::new();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while let Some(left) = deadline.checked_duration_since(std::time::Instant::now()) {
        match rx.recv_timeout(left) {
            Ok(line) => {
                seen.push_str(&line);
                seen.push('\n');
                if line.contains("logbook serving") {
                    break;
                }
            }
            Err(_) => break,
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    drop(rx);
    let _ = reader.join();
    assert!(
        seen.contains("logbook serving"),
        "serve did not start: {seen}"
    );
    seen
}

async fn signing_key_custody(backend: Backend) {
    use logbook::ledger::signing::DATABASE_KEY_WARNING;
    let key_file = scratch(backend, "ledger-key");
    let key_path = path_str(&key_file).to_owned();
    let url = crate::support::fresh_database_url(backend).await;
    // `ledger keygen` writes a fresh key, readable by its owner only, and prints its public key.
    let out = logbook_bin(&url, &["ledger", "keygen", "--out", &key_path]);
    assert!(out.status.success(), "{}", stderr_of(&out));
    let printed = stdout_of(&out)
        .lines()
        .last()
        .expect("a line")
        .trim()
        .to_owned();
    assert_eq!(printed.len(), 64);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&key_file)
            .expect("key")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let seed = std::fs::read_to_string(&key_file).expect("key");
    let out = logbook_bin(&url, &["ledger", "keygen", "--out", &key_path]);
    assert!(
        !out.status.success(),
        "an existing key file is never replaced"
    );
    assert_eq!(std::fs::read_to_string(&key_file).expect("key"), seed);

    // A server with the key file signs with that key, and no key is kept in the database.
    let app = TestApp::spawn_on(backend, url.clone(), |c| {
        c.ledger_signing_key_file = Some(key_file.clone());
    })
    .await;
    assert_eq!(
        app.services.ledger_key.source(),
        logbook::ledger::signing::KeySource::File
    );
    let key = app.key("acme", Role::Viewer).await;
    let mut chain = Chain::new("acme");
    chain.append(&app, 4).await;
    let data = app
        .data(&key, "{ ledger { publicKey { hex } } }", json!({}))
        .await;
    assert_eq!(data["ledger"]["publicKey"]["hex"], json!(printed));
    assert_eq!(
        head_checkpoint(&app, &key).await["publicKey"],
        json!(printed)
    );
    assert!(
        entity::server_settings::Entity::find_by_id("ledger_signing_seed".to_owned())
            .one(app.db())
            .await
            .expect("query")
            .is_none()
    );
    // The CLI reads it from the flag or the environment, without the warning.
    let export_file = scratch(backend, "custody-export.ndjson");
    let out = logbook_bin(
        &url,
        &[
            "--ledger-signing-key-file",
            &key_path,
            "ledger",
            "export",
            "--tenant",
            "acme",
            "--out",
            path_str(&export_file),
        ],
    );
    assert!(out.status.success(), "{}", stderr_of(&out));
    assert!(stdout_of(&out).contains(&printed), "{}", stdout_of(&out));
    assert!(
        !stderr_of(&out).contains("kept in the database"),
        "{}",
        stderr_of(&out)
    );
    let out = logbook_cmd(
        &url,
        &[
            "ledger",
            "export",
            "--tenant",
            "acme",
            "--out",
            path_str(&export_file),
        ],
    )
    .env("LOGBOOK_LEDGER_SIGNING_KEY_FILE", &key_path)
    .output()
    .expect("run");
    assert!(out.status.success(), "{}", stderr_of(&out));
    assert!(stdout_of(&out).contains(&printed));
    // The key and the key file at once are refused.
    let out = logbook_bin(
        &url,
        &[
            "--ledger-signing-key-file",
            &key_path,
            "--ledger-signing-key",
            &"07".repeat(32),
            "ledger",
            "export",
            "--tenant",
            "acme",
            "--out",
            path_str(&export_file),
        ],
    );
    assert!(!out.status.success());
    // A key file group or others can read is refused with a clear reason.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let loose = scratch(backend, "loose-key");
        std::fs::write(&loose, &seed).expect("write");
        std::fs::set_permissions(&loose, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        let out = logbook_bin(
            &url,
            &[
                "--ledger-signing-key-file",
                path_str(&loose),
                "ledger",
                "export",
                "--tenant",
                "acme",
                "--out",
                path_str(&export_file),
            ],
        );
        assert!(!out.status.success());
        let stderr = stderr_of(&out);
        assert!(
            stderr.contains("refusing the ledger signing key file")
                && stderr.contains("mode 644")
                && stderr.contains(&format!("chmod 600 {}", loose.display())),
            "{stderr}"
        );
        let mut config = logbook::config::Config::new(url.clone(), None);
        config.ledger_signing_key_file = Some(loose.clone());
        let refused = logbook::server::Services::connect(config)
            .await
            .map(|_| ())
            .expect_err("refused in process too");
        assert!(
            refused.message().contains("chmod 600"),
            "{}",
            refused.message()
        );
        let _ = std::fs::remove_file(&loose);
    }
    app.stop().await;

    // `serve` with the key file says nothing about the key; without one it warns loudly, and
    // the CLI commands that sign warn too.
    let quiet = serve_stderr(&url, &["--ledger-signing-key-file", &key_path]);
    assert!(!quiet.contains("kept in the database"), "{quiet}");
    let fresh = crate::support::fresh_database_url(backend).await;
    let loud = serve_stderr(&fresh, &[]);
    assert!(
        loud.lines()
            .any(|l| l == format!("logbook: {DATABASE_KEY_WARNING}")),
        "{loud}"
    );
    for needle in [
        "kept in the database",
        "re-sign checkpoints",
        "--ledger-signing-key-file",
        "LOGBOOK_LEDGER_SIGNING_KEY_FILE",
        "--ledger-checkpoint-dir",
        "--trusted-checkpoint",
    ] {
        assert!(loud.contains(needle), "{needle}: {loud}");
    }
    let out = logbook_bin(
        &fresh,
        &[
            "ledger",
            "export",
            "--tenant",
            "acme",
            "--out",
            path_str(&export_file),
        ],
    );
    assert!(
        stderr_of(&out).contains("kept in the database"),
        "{}",
        stderr_of(&out)
    );
    let _ = std::fs::remove_file(&export_file);
    let _ = std::fs::remove_file(&key_file);
}

crate::cases!(
    proofs_verify_independently,
    checkpoints_are_signed_and_inputs_checked,
    tampering_is_detected_and_named,
    rewrite_and_resign_is_caught_by_a_trusted_checkpoint,
    checkpoints_are_published_to_a_sink_directory,
    checkpoints_are_posted_to_a_sink_url,
    signing_key_custody
);
