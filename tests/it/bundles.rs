//! Evidence bundles end to end (TRACE_BUNDLE, INCIDENT_BUNDLE, COMPLIANCE; RUN_BUNDLE is in
//! exports_writes): the zip's members, counts and manifest; `evidence.json` from the data (who
//! requested it, the active policies, no "N/A"); the bundle hash in the manifest and on the
//! export, checked by `export verify`; the completeness check, complete and not; the compliance
//! period from the request, and its validation.

use std::io::Read;

use logbook::auth::Role;
use sea_orm::{ActiveModelTrait, IntoActiveModel};
use serde_json::{json, Value};

use crate::exports_writes::{create, download, export_dir, fast, sha256_hex};
use crate::support::{error_code, fixed_time, Backend, TestApp};

const DONE: &str = r#"
query Done($id: ID!) {
  logExport(id: $id) {
    status requestedBy origin error bundleHash
    bundleCompleteness { complete missing { kind ref reason } }
  }
}"#;

const CREATE: &str = r#"
mutation Create($input: CreateExportInput!) { createExport(input: $input) { exportId } }"#;

async fn finished(app: &TestApp, key: &str, id: &str) -> Value {
    for _ in 0..300 {
        let s = app.data(key, DONE, json!({ "id": id })).await["logExport"].clone();
        if s["status"] == "COMPLETED" || s["status"] == "FAILED" {
            return s;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("export {id} did not finish");
}

/// A bundle as downloaded: its members by name, and its manifest.
struct Bundle {
    bytes: Vec<u8>,
    members: std::collections::BTreeMap<String, String>,
    manifest: Value,
}

impl Bundle {
    async fn fetch(app: &TestApp, key: &str, id: &str) -> Bundle {
        let bytes = download(app, key, id).await;
        let mut archive = zip::ZipArchive::new(std::io::Cursor::new(bytes.clone())).unwrap();
        let mut members = std::collections::BTreeMap::new();
        for i in 0..archive.len() {
            let mut member = archive.by_index(i).unwrap();
            let mut text = String::new();
            member.read_to_string(&mut text).unwrap();
            let name = member.name().expect("entry name").into_owned();
            members.insert(name, text);
        }
        let manifest = app
            .http
            .get(format!("{}/exports/{id}/manifest", app.base))
            .bearer_auth(key)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        Bundle {
            bytes,
            members,
            manifest,
        }
    }

    fn names(&self) -> Vec<&str> {
        self.members.keys().map(String::as_str).collect()
    }

    fn json(&self, name: &str) -> Value {
        serde_json::from_str(&self.members[name]).unwrap()
    }

    fn lines(&self, name: &str) -> Vec<Value> {
        self.members[name]
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    /// The manifest's member digests match the members, and its bundle hash is the SHA-256
    /// over `<name>\n<sha256>\n` in name order.
    fn check_hash(&self) -> String {
        let mut files: Vec<(String, String)> = self.manifest["files"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| {
                let name = f["name"].as_str().unwrap().to_owned();
                assert_eq!(
                    f["sha256"],
                    sha256_hex(self.members[&name].as_bytes()),
                    "{name}"
                );
                (name, f["sha256"].as_str().unwrap().to_owned())
            })
            .collect();
        assert_eq!(files.len(), self.members.len());
        files.sort();
        let text: String = files.iter().map(|(n, h)| format!("{n}\n{h}\n")).collect();
        let hash = sha256_hex(text.as_bytes());
        assert_eq!(self.manifest["bundle_sha256"], hash);
        hash
    }

    /// `logbook export verify` on the downloaded files; with `tamper`, the manifest's bundle
    /// hash is changed first (each member still matching its own digest).
    fn verify(&self, id: &str, tamper: bool) -> Result<(), String> {
        let out = export_dir();
        std::fs::create_dir_all(&out).unwrap();
        let artefact = out.join(format!("logbook-export-{id}.zip"));
        std::fs::write(&artefact, &self.bytes).unwrap();
        let mut manifest = self.manifest.clone();
        if tamper {
            manifest["bundle_sha256"] = json!(sha256_hex(b"another bundle"));
        }
        let mut text = serde_json::to_vec_pretty(&manifest).unwrap();
        text.push(b'\n');
        std::fs::write(
            logbook::export_files::manifest::manifest_path(&artefact),
            text,
        )
        .unwrap();
        let result = logbook::export_files::verify::verify(&artefact, None, None).map(|_| ());
        let _ = std::fs::remove_dir_all(&out);
        result
    }
}

/// Runs of acme, a sealed trace with `steps` steps on run `a-run-00005` (violation at step 2 by
/// policy `pol-1`), and the activation of `pol-1`.
async fn seed(app: &TestApp, steps: usize) {
    crate::exports_writes::seed_runs(app).await;
    let ingest = app.key("acme", Role::Ingest).await;
    app.data(
        &ingest,
        "mutation($i: StartTraceInput!) { startTrace(input: $i) { traceId } }",
        json!({ "i": { "traceId": "tr-b", "runId": "a-run-00005", "plan": [{"skill": "llm_invoke"}] } }),
    )
    .await;
    let list: Vec<Value> = (0..steps)
        .map(|i| {
            json!({
                "stepIndex": i, "skillName": "llm_invoke", "params": {"n": i},
                "status": "success", "outcomeCategory": "SUCCESS", "costCents": 2.0, "durationMs": 5.0,
            })
        })
        .collect();
    app.data(
        &ingest,
        "mutation($s: [TraceStepInput!]!) { recordSteps(traceId: \"tr-b\", steps: $s) { insertedCount } }",
        json!({ "s": list }),
    )
    .await;
    app.data(
        &ingest,
        "mutation { completeTrace(traceId: \"tr-b\", status: FAILED, violation: {stepIndex: 2, policyId: \"pol-1\"}) { traceId } }",
        json!({}),
    )
    .await;
    let admin = app.key("acme", Role::Admin).await;
    app.data(
        &admin,
        "mutation($i: RecordPolicyActivationInput!) { recordPolicyActivation(input: $i) { policyId } }",
        json!({ "i": {
            "policyId": "pol-1", "sourcePatternId": "pat-1", "confidence": 0.9, "approvalPath": "auto",
        } }),
    )
    .await;
}

/// An incident of acme whose run is `run_id` (its inflection at step 2).
async fn incident(app: &TestApp, id: &str, run_id: &str) {
    let mut model = crate::incidents::incident("acme", 1, fixed_time());
    model.id = id.to_owned();
    model.source_run_id = Some(run_id.to_owned());
    model.category = Some("POLICY_VIOLATION".to_owned());
    model.into_active_model().insert(app.db()).await.unwrap();
}

fn spawn(backend: Backend, dir: &std::path::Path) -> impl std::future::Future<Output = TestApp> {
    let dir = dir.to_path_buf();
    async move { TestApp::spawn_with(backend, move |c| fast(c, &dir)).await }
}

/// What every bundle's evidence.json must say of who asked and of the policies.
fn check_evidence(evidence: &Value, done: &Value) {
    assert_eq!(evidence["exported_by"], done["requestedBy"]);
    assert!(evidence["exported_by"]
        .as_str()
        .unwrap()
        .starts_with("key:"));
    assert_eq!(evidence["origin"], done["origin"]);
    assert!(
        !evidence.to_string().contains("N/A"),
        "no placeholder: {evidence:#}"
    );
    assert!(evidence["policy_context"]
        .get("policy_snapshot_id")
        .is_none());
    let active: Vec<&str> = evidence["policy_context"]["active_policies"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["policy_id"].as_str().unwrap())
        .collect();
    assert_eq!(active, ["pol-1"]);
}

async fn trace_bundle_holds_the_trace(backend: Backend) {
    let dir = export_dir();
    let app = spawn(backend, &dir).await;
    seed(&app, 9).await;
    let key = app.key("acme", Role::Operator).await;
    let id = create(
        &app,
        &key,
        json!({ "scope": "TRACE_BUNDLE", "format": "ZIP", "traceId": "tr-b" }),
    )
    .await;
    let done = finished(&app, &key, &id).await;
    assert_eq!(done["status"], "COMPLETED", "{done:#}");
    let bundle = Bundle::fetch(&app, &key, &id).await;
    assert_eq!(
        bundle.names(),
        [
            "audit.ndjson",
            "evidence.json",
            "run.json",
            "steps.ndjson",
            "system_records.ndjson",
            "trace.json"
        ]
    );
    let steps = bundle.lines("steps.ndjson");
    assert_eq!(steps.len(), 9);
    assert_eq!(steps[2]["isInflection"], true);
    assert_eq!(bundle.json("trace.json")["traceId"], "tr-b");
    assert_eq!(bundle.json("run.json")["runId"], "a-run-00005");
    assert_eq!(bundle.manifest["row_counts"]["steps.ndjson"], 9);
    assert_eq!(bundle.manifest["subject"], json!({ "trace_id": "tr-b" }));
    let evidence = bundle.json("evidence.json");
    assert_eq!(evidence["trace_id"], "tr-b");
    assert_eq!(evidence["run_id"], "a-run-00005");
    assert_eq!(evidence["total_steps"], 9);
    assert_eq!(evidence["total_cost_cents"], 18.0);
    assert_eq!(evidence["policy_context"]["violated_policy_id"], "pol-1");
    assert!(evidence["incident_id"].is_null());
    check_evidence(&evidence, &done);
    // Complete: the run, the trace and every step it references are in it.
    assert_eq!(
        evidence["completeness"],
        json!({ "complete": true, "missing": [] })
    );
    assert_eq!(
        done["bundleCompleteness"],
        json!({ "complete": true, "missing": [] })
    );
    // The bundle hash: in the manifest, on the export, checked by verify.
    let hash = bundle.check_hash();
    assert_eq!(done["bundleHash"], hash);
    bundle.verify(&id, false).expect("verifies");
    let tampered = bundle.verify(&id, true).unwrap_err();
    assert!(tampered.contains("bundle hash"), "{tampered}");
    let _ = std::fs::remove_dir_all(&dir);
}

async fn incident_and_compliance_bundles(backend: Backend) {
    let dir = export_dir();
    let app = spawn(backend, &dir).await;
    seed(&app, 4).await;
    incident(&app, "inc-b", "a-run-00005").await;
    let key = app.key("acme", Role::Operator).await;
    let id = create(
        &app,
        &key,
        json!({ "scope": "INCIDENT_BUNDLE", "format": "ZIP", "incidentId": "inc-b" }),
    )
    .await;
    let done = finished(&app, &key, &id).await;
    assert_eq!(done["status"], "COMPLETED", "{done:#}");
    let bundle = Bundle::fetch(&app, &key, &id).await;
    assert_eq!(
        bundle.names(),
        [
            "audit.ndjson",
            "evidence.json",
            "incident.json",
            "run.json",
            "steps.ndjson",
            "system_records.ndjson",
            "trace.json"
        ]
    );
    assert_eq!(bundle.json("incident.json")["id"], "inc-b");
    assert_eq!(bundle.lines("steps.ndjson").len(), 4);
    let evidence = bundle.json("evidence.json");
    assert_eq!(evidence["incident_id"], "inc-b");
    assert_eq!(evidence["trace_id"], "tr-b");
    assert_eq!(
        evidence["policy_context"]["violation_type"],
        "POLICY_VIOLATION"
    );
    check_evidence(&evidence, &done);
    assert_eq!(evidence["completeness"]["complete"], true, "{evidence:#}");
    assert_eq!(done["bundleHash"], bundle.check_hash());
    bundle.verify(&id, false).expect("verifies");

    // COMPLIANCE over the requested period adds the SOC 2 mappings.
    let (from, to) = ("2026-01-01T00:00:00Z", "2026-04-01T00:00:00Z");
    let id = create(
        &app,
        &key,
        json!({ "scope": "COMPLIANCE", "format": "ZIP", "incidentId": "inc-b", "from": from, "to": to }),
    )
    .await;
    let done = finished(&app, &key, &id).await;
    assert_eq!(done["status"], "COMPLETED", "{done:#}");
    let bundle = Bundle::fetch(&app, &key, &id).await;
    assert_eq!(bundle.names().len(), 8);
    let soc2 = bundle.json("soc2.json");
    assert_eq!(soc2["compliance_period_start"], from);
    assert_eq!(soc2["compliance_period_end"], to);
    assert_eq!(soc2["incident_category"], "POLICY_VIOLATION");
    assert!(soc2["control_mappings"]
        .as_array()
        .unwrap()
        .iter()
        .any(|m| m["control_id"] == "CC6.1"));
    check_evidence(&bundle.json("evidence.json"), &done);
    assert_eq!(done["bundleHash"], bundle.check_hash());
    bundle.verify(&id, false).expect("verifies");

    // Without a period: from the incident's start to asOf.
    let id = create(
        &app,
        &key,
        json!({ "scope": "COMPLIANCE", "format": "ZIP", "incidentId": "inc-b", "asOf": "2026-11-20T00:00:00Z" }),
    )
    .await;
    assert_eq!(finished(&app, &key, &id).await["status"], "COMPLETED");
    let soc2 = Bundle::fetch(&app, &key, &id).await.json("soc2.json");
    let started = crate::incidents::incident("acme", 1, fixed_time()).started_at;
    assert_eq!(
        soc2["compliance_period_start"],
        logbook::scalars::format_utc(started)
    );
    assert_eq!(soc2["compliance_period_end"], "2026-11-20T00:00:00Z");

    // A bad period is refused and records nothing.
    let before = app
        .data(&key, "{ logExports { totalCount } }", json!({}))
        .await;
    for (input, field) in [
        (
            json!({ "scope": "COMPLIANCE", "format": "ZIP", "incidentId": "inc-b", "from": to, "to": from }),
            "input.from",
        ),
        (
            json!({ "scope": "COMPLIANCE", "format": "ZIP", "incidentId": "inc-b", "from": from, "to": from }),
            "input.from",
        ),
        (
            json!({ "scope": "COMPLIANCE", "format": "ZIP", "incidentId": "inc-b", "from": from }),
            "input.to",
        ),
        (
            json!({ "scope": "INCIDENT_BUNDLE", "format": "ZIP", "incidentId": "inc-b", "from": from, "to": to }),
            "input.from",
        ),
    ] {
        let body = app.gql(Some(&key), CREATE, json!({ "input": input })).await;
        assert_eq!(error_code(&body), "BAD_USER_INPUT", "{body:#}");
        assert_eq!(body["errors"][0]["extensions"]["field"], field, "{body:#}");
    }
    let after = app
        .data(&key, "{ logExports { totalCount } }", json!({}))
        .await;
    assert_eq!(before, after);
    let _ = std::fs::remove_dir_all(&dir);
}

/// An incident whose run was never recorded: the bundle is produced and says what it lacks.
async fn incomplete_bundle_says_what_is_missing(backend: Backend) {
    let dir = export_dir();
    let app = spawn(backend, &dir).await;
    seed(&app, 3).await;
    incident(&app, "inc-x", "no-such-run").await;
    let key = app.key("acme", Role::Operator).await;
    let id = create(
        &app,
        &key,
        json!({ "scope": "INCIDENT_BUNDLE", "format": "ZIP", "incidentId": "inc-x" }),
    )
    .await;
    let done = finished(&app, &key, &id).await;
    assert_eq!(done["status"], "COMPLETED", "{done:#}");
    let bundle = Bundle::fetch(&app, &key, &id).await;
    assert_eq!(
        bundle.names(),
        [
            "audit.ndjson",
            "evidence.json",
            "incident.json",
            "system_records.ndjson"
        ]
    );
    let evidence = bundle.json("evidence.json");
    assert!(evidence["trace_id"].is_null(), "{evidence:#}");
    assert_eq!(evidence["run_id"], "no-such-run");
    let completeness = &evidence["completeness"];
    assert_eq!(completeness["complete"], false);
    let missing: Vec<(&str, &str)> = completeness["missing"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| (m["kind"].as_str().unwrap(), m["ref"].as_str().unwrap()))
        .collect();
    assert_eq!(missing, [("run", "no-such-run"), ("step", "#2")]);
    assert_eq!(done["bundleCompleteness"]["complete"], false);
    assert_eq!(
        done["bundleCompleteness"]["missing"],
        completeness["missing"]
    );
    assert_eq!(done["bundleHash"], bundle.check_hash());
    let _ = std::fs::remove_dir_all(&dir);
}

const CREATE_KEY: &str = r#"
mutation Key($actor: ActorType) {
  createApiKey(role: OPERATOR, label: "worker", actorType: $actor) { key apiKey { actorType } }
}"#;

/// The export's `origin` is the requesting key's actor type, on the export and in
/// evidence.json: an agent's key makes AGENT exports, an automation's SYSTEM ones, and a key
/// made without saying is a person's (HUMAN).
async fn the_origin_follows_the_key(backend: Backend) {
    let dir = export_dir();
    let app = spawn(backend, &dir).await;
    seed(&app, 3).await;
    let admin = app.key("acme", Role::Admin).await;
    for (actor, origin) in [
        (json!("AGENT"), "AGENT"),
        (json!("SYSTEM"), "SYSTEM"),
        (Value::Null, "HUMAN"),
    ] {
        let made = app
            .data(&admin, CREATE_KEY, json!({ "actor": actor }))
            .await["createApiKey"]
            .clone();
        assert_eq!(made["apiKey"]["actorType"], origin);
        let key = made["key"].as_str().unwrap();
        let id = create(
            &app,
            key,
            json!({ "scope": "TRACE_BUNDLE", "format": "ZIP", "traceId": "tr-b" }),
        )
        .await;
        let done = finished(&app, key, &id).await;
        assert_eq!(done["status"], "COMPLETED", "{done:#}");
        assert_eq!(done["origin"], origin);
        let evidence = Bundle::fetch(&app, key, &id).await.json("evidence.json");
        assert_eq!(evidence["origin"], origin);
    }
    let _ = std::fs::remove_dir_all(&dir);
}

crate::cases!(
    the_origin_follows_the_key,
    trace_bundle_holds_the_trace,
    incident_and_compliance_bundles,
    incomplete_bundle_says_what_is_missing,
);
