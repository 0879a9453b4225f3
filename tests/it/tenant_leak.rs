//! Tenant isolation, path by path. Tenant A ("alpha") and tenant B ("beta") get the same kinds of
//! data through the API; then B, with the role each operation needs, presents each of A's
//! references (ids, record ids, run and trace ids, root hashes, fingerprints, feature tags,
//! idempotency keys, cursors) to every query root field, mutation, subscription and export route
//! that takes one, and presents a never-used reference of the same shape the same way. The two
//! answers must be identical once volatile values (generated ids, timestamps, cursors, the
//! reference itself) are masked: whatever B sees must be something it could have seen had A
//! never existed. A cursor issued to A must moreover be `BAD_CURSOR` for B.
//!
//! Each probe is also run by A on its own reference (the owner control): A must get another
//! answer than for an unused reference, or the probe could not tell a leak from isolation (a
//! wrong selection, a reference that does not exist). The few probes where even the owner cannot
//! see a difference say why (`Probe::blind`).
//!
//! The probes are a table (`probes()`); `every_field_is_probed` parses `schema.graphql` and
//! fails when a Query, Mutation or Subscription field (or an argument-taking field of
//! `CostQuery`, `Ledger` or `Trace`) is neither probed nor listed in `NO_REFERENCE` with the
//! reason it takes no reference — so a new field cannot be forgotten.
//!
//! `platform_keys_may_only_write_system_wide_records`: a platform key (no tenant) presents
//! every probe of the table and every field listed in `NO_REFERENCE` and is refused
//! (`FORBIDDEN`) everywhere but `recordSystemRecord`, which writes a system-wide record.
//!
//! `ingest_keys_cannot_read_through_mutations`: an INGEST key (write-only) must not read a
//! trace's stored content through the objects its mutations return.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use async_graphql::parser::types::{TypeKind, TypeSystemDefinition};
use futures_util::{SinkExt, StreamExt};
use logbook::auth::Role;
use logbook::config::Config;
use sea_orm::{ActiveModelTrait, Set};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

use crate::support::{Backend, TestApp};

/// Named values of one tenant's data: `gid.<Type>` global ids, `rec.<Type>` record ids,
/// `trace.<role>`, `run.<role>`, `tag.<role>`, `cursor.<list>` and so on.
type Values = BTreeMap<String, String>;

/// How a probe reaches the server.
#[derive(Clone, Copy)]
enum Via {
    /// POST /graphql (application/json).
    Post(&'static str),
    /// A subscription over WebSocket (graphql-transport-ws); its first message is the answer.
    Ws(&'static str),
    /// GET of a path; `{}` is replaced by the reference.
    Get(&'static str),
    /// POST of a `createExport`, then the export's outcome once the worker is done with it.
    Export(&'static str),
}

/// Whether the probe can be checked for discrimination: A presenting its own reference must get
/// another answer than an unused one, or the probe could not tell a leak from isolation.
#[derive(Clone, Copy)]
enum Control {
    Owner,
    /// Why A's own reference answers like an unused one even for A.
    Blind(&'static str),
}

/// One way B presents a reference.
struct Probe {
    label: &'static str,
    /// The schema fields (`Type.field`) or routes this probe exercises.
    covers: &'static [&'static str],
    role: Role,
    via: Via,
    /// The key of A's value in its `Values`.
    subject: &'static str,
    /// The variables, given the reference and the presenting tenant's own values.
    vars: fn(&str, &Values) -> Value,
    control: Control,
}

impl Probe {
    fn blind(mut self, why: &'static str) -> Probe {
        self.control = Control::Blind(why);
        self
    }
}

fn probe(
    label: &'static str,
    covers: &'static [&'static str],
    role: Role,
    via: Via,
    subject: &'static str,
    vars: fn(&str, &Values) -> Value,
) -> Probe {
    Probe {
        label,
        covers,
        role,
        via,
        subject,
        vars,
        control: Control::Owner,
    }
}

/// Fields that take no reference to a stored object, with the reason.
const NO_REFERENCE: &[(&str, &str)] = &[
    ("Query.viewer", "no argument"),
    (
        "Mutation.createApiKey",
        "creates a key in the caller's own tenant; takes no reference",
    ),
    (
        "Query.panel",
        "slot values and rules given inline; reads nothing stored",
    ),
    (
        "Query.cost",
        "no argument; its fields are listed as CostQuery.*",
    ),
    (
        "Query.ledger",
        "no argument; its fields are listed as Ledger.*",
    ),
    ("CostQuery.summary", "a period of the caller's own costs"),
    (
        "CostQuery.byFeature",
        "a period or days of the caller's own costs",
    ),
    (
        "CostQuery.byUser",
        "a period or days of the caller's own costs",
    ),
    (
        "CostQuery.byModel",
        "a period or days of the caller's own costs",
    ),
    (
        "CostQuery.series",
        "a period or days of the caller's own costs",
    ),
    (
        "CostQuery.projection",
        "day counts over the caller's own costs",
    ),
    ("Ledger.checkpoint", "a size of the caller's own tree"),
    ("Ledger.consistencyProof", "sizes of the caller's own tree"),
    (
        "Query.recoveryConfidence",
        "computes from its two arguments; reads nothing stored",
    ),
    (
        "Mutation.detectCostAnomalies",
        "no argument but an idempotency key (probed on recordSystemRecord)",
    ),
];

const RUNS_AFTER: &str =
    "query($c: String) { llmRuns(first: 1, after: $c) { totalCount nodes { runId } } }";
const RUNS_BEFORE: &str =
    "query($c: String) { llmRuns(last: 1, before: $c) { totalCount nodes { runId } } }";
const SYS_AFTER: &str =
    "query($c: String) { systemRecords(first: 1, after: $c) { totalCount nodes { summary } } }";
const SYS_BEFORE: &str =
    "query($c: String) { systemRecords(last: 1, before: $c) { totalCount nodes { summary } } }";
const AUDIT_AFTER: &str =
    "query($c: String) { auditEntries(first: 1, after: $c) { totalCount nodes { entityId } } }";
const AUDIT_BEFORE: &str =
    "query($c: String) { auditEntries(last: 1, before: $c) { totalCount nodes { entityId } } }";
const HISTORY_AFTER: &str = r#"query($c: String) { auditEntityHistory(entityType: SIGNAL, entityId: "a-fp", first: 1, after: $c) { totalCount nodes { entityId } } }"#;
const HISTORY_BEFORE: &str = r#"query($c: String) { auditEntityHistory(entityType: SIGNAL, entityId: "a-fp", last: 1, before: $c) { totalCount nodes { entityId } } }"#;
const EXPORTS_AFTER: &str =
    "query($c: String) { logExports(first: 1, after: $c) { totalCount nodes { scope } } }";
const EXPORTS_BEFORE: &str =
    "query($c: String) { logExports(last: 1, before: $c) { totalCount nodes { scope } } }";
const TRACES_AFTER: &str =
    "query($c: String) { traces(first: 1, after: $c) { totalCount nodes { traceId } } }";
const TRACES_BEFORE: &str =
    "query($c: String) { traces(last: 1, before: $c) { totalCount nodes { traceId } } }";
const MISMATCHES_AFTER: &str =
    "query($c: String) { traceMismatches(first: 1, after: $c) { totalCount nodes { reason } } }";
const MISMATCHES_BEFORE: &str =
    "query($c: String) { traceMismatches(last: 1, before: $c) { totalCount nodes { reason } } }";
const ANOMALIES_AFTER: &str = "query($c: String) { cost { anomalies(first: 1, after: $c) { totalCount nodes { anomalyType } } } }";
const ANOMALIES_BEFORE: &str = "query($c: String) { cost { anomalies(last: 1, before: $c) { totalCount nodes { anomalyType } } } }";
const BUDGETS_AFTER: &str = "query($c: String) { cost { budgets(first: 1, after: $c) { totalCount nodes { budgetType } } } }";
const BUDGETS_BEFORE: &str = "query($c: String) { cost { budgets(last: 1, before: $c) { totalCount nodes { budgetType } } } }";
const API_KEYS_AFTER: &str =
    "query($c: String) { apiKeys(first: 1, after: $c) { totalCount nodes { label } } }";
const API_KEYS_BEFORE: &str =
    "query($c: String) { apiKeys(last: 1, before: $c) { totalCount nodes { label } } }";
const TAGS_AFTER: &str =
    "query($c: String) { cost { featureTags(first: 1, after: $c) { totalCount nodes { tag } } } }";
const TAGS_BEFORE: &str =
    "query($c: String) { cost { featureTags(last: 1, before: $c) { totalCount nodes { tag } } } }";
const CHECKPOINTS_AFTER: &str = "query($c: String) { ledger { checkpoints(first: 1, after: $c) { totalCount nodes { treeSize } } } }";
const CHECKPOINTS_BEFORE: &str = "query($c: String) { ledger { checkpoints(last: 1, before: $c) { totalCount nodes { treeSize } } } }";
const STEPS_AFTER: &str = "query($c: String, $own: String!) { trace(traceId: $own) { steps(first: 1, after: $c) { totalCount nodes { stepIndex } } } }";
const STEPS_BEFORE: &str = "query($c: String, $own: String!) { trace(traceId: $own) { steps(last: 1, before: $c) { totalCount nodes { stepIndex } } } }";

const NODE: &str = "query($id: ID!) { node(id: $id) { __typename id } }";

fn cursor(c: &str, _: &Values) -> Value {
    json!({ "c": c })
}

/// A cursor for a list of the presenting tenant's own `done` trace.
fn own_trace_cursor(c: &str, own: &Values) -> Value {
    json!({ "c": c, "own": own["trace.done"] })
}

fn id(v: &str, _: &Values) -> Value {
    json!({ "id": v })
}

fn v(v: &str, _: &Values) -> Value {
    json!({ "v": v })
}

fn step_input(index: i64, tag: &str) -> Value {
    json!({
        "stepIndex": index, "skillName": "llm_invoke", "status": "success",
        "outcomeCategory": "SUCCESS", "params": { "note": format!("PARAMS-{tag}") },
        "outcomeData": { "note": format!("OUTCOME-{tag}") }, "idempotencyKey": format!("k-{tag}-{index}"),
        "replayBehavior": "EXECUTE", "outputHash": "00ff",
    })
}

/// The table: reads (queries, subscriptions, routes) first, then the writes, each write on a
/// reference of its own so that what one probe creates in B cannot change another's answer.
fn probes() -> Vec<Probe> {
    use Role::{Admin, Ingest, Operator, Viewer};
    use Via::{Export, Get, Post, Ws};
    vec![
        // --- lookups by global id
        probe("node LlmRun", &["Query.node"], Viewer, Post(NODE), "gid.LlmRun", id),
        probe("node SystemRecord", &["Query.node"], Viewer, Post(NODE), "gid.SystemRecord", id),
        probe("node AuditEntry", &["Query.node"], Viewer, Post(NODE), "gid.AuditEntry", id),
        probe("node LogExport", &["Query.node"], Viewer, Post(NODE), "gid.LogExport", id),
        probe("node Trace", &["Query.node"], Viewer, Post(NODE), "gid.Trace", id),
        probe("node TraceMismatch", &["Query.node"], Viewer, Post(NODE), "gid.TraceMismatch", id),
        probe("node Incident", &["Query.node"], Viewer, Post(NODE), "gid.Incident", id),
        probe("node PolicyActivation", &["Query.node"], Viewer, Post(NODE), "gid.PolicyActivation", id),
        probe("policyActivations(filter policyId)", &["Query.policyActivations"], Viewer,
            Post("query($v: String) { policyActivations(filter: {policyId: $v}) { totalCount nodes { sourcePatternId confidenceBand } } }"),
            "rec.PolicyActivation", v),
        probe("policyActivations(filter sourcePatternId)", &["Query.policyActivations"], Viewer,
            Post("query($v: String) { policyActivations(filter: {sourcePatternId: $v}) { totalCount nodes { policyId } } }"),
            "pattern.policy", v),
        probe("policyActivations after", &["Query.policyActivations"], Viewer,
            Post("query($c: String) { policyActivations(first: 1, after: $c) { totalCount nodes { policyId } } }"),
            "cursor.policyActivations", cursor),
        probe("policyActivations before", &["Query.policyActivations"], Viewer,
            Post("query($c: String) { policyActivations(last: 1, before: $c) { totalCount nodes { policyId } } }"),
            "cursor.policyActivations", cursor),
        probe("incident(incidentId)", &["Query.incident"], Viewer,
            Post("query($v: String!) { incident(incidentId: $v) { title severity sourceRun { runId } auditEntries { seq } costAnomalies { message } } }"),
            "incident", v),
        probe("incidents(filter sourceRunId)", &["Query.incidents"], Viewer,
            Post("query($v: String) { incidents(filter: {sourceRunId: $v}) { totalCount nodes { title incidentId } } }"),
            "run.main", v),
        probe("nodes [own, A's]", &["Query.nodes"], Viewer,
            Post("query($ids: [ID!]!) { nodes(ids: $ids) { __typename id } }"), "gid.Trace",
            |r, b| json!({ "ids": [b["gid.LlmRun"], r] })),
        probe("nodes [A's run]", &["Query.nodes"], Viewer,
            Post("query($ids: [ID!]!) { nodes(ids: $ids) { __typename id } }"), "gid.LlmRun",
            |r, _| json!({ "ids": [r] })),
        // --- lookups by natural id
        probe("llmRun(runId)", &["Query.llmRun"], Viewer,
            Post("query($v: String!) { llmRun(runId: $v) { runId model trace { traceId } } }"), "run.main", v),
        probe("systemRecord(id)", &["Query.systemRecord"], Viewer,
            Post("query($v: ID!) { systemRecord(id: $v) { summary tenantId } }"), "gid.SystemRecord", v),
        probe("systemRecord(recordId)", &["Query.systemRecord"], Viewer,
            Post("query($v: ID!) { systemRecord(id: $v) { summary tenantId } }"), "rec.SystemRecord", v),
        probe("auditEntry(id)", &["Query.auditEntry"], Viewer,
            Post("query($v: ID!) { auditEntry(id: $v) { entityId seq } }"), "gid.AuditEntry", v),
        probe("auditEntry(recordId)", &["Query.auditEntry"], Viewer,
            Post("query($v: ID!) { auditEntry(id: $v) { entityId seq } }"), "rec.AuditEntry", v),
        probe("auditEntityHistory(SIGNAL, fp)", &["Query.auditEntityHistory"], Viewer,
            Post("query($v: String!) { auditEntityHistory(entityType: SIGNAL, entityId: $v) { totalCount nodes { eventType } } }"),
            "fp.main", v),
        probe("signalFeedback(fp)", &["Query.signalFeedback"], Viewer,
            Post("query($v: String!) { signalFeedback(fingerprint: $v) { fingerprint acknowledged escalated } }"),
            "fp.main", v),
        probe("logExport(id)", &["Query.logExport"], Viewer,
            Post("query($v: ID!) { logExport(id: $v) { scope status rowCount } }"), "gid.LogExport", v),
        probe("logExport(exportId)", &["Query.logExport"], Viewer,
            Post("query($v: ID!) { logExport(id: $v) { scope status rowCount } }"), "rec.LogExport", v),
        probe("trace(traceId)", &["Query.trace"], Viewer,
            Post("query($v: String!) { trace(traceId: $v) { traceId plan } }"), "trace.done", v),
        probe("traceByRunId", &["Query.traceByRunId"], Viewer,
            Post("query($v: String!) { traceByRunId(runId: $v) { traceId plan } }"), "run.main", v),
        probe("traceStepByIdempotencyKey", &["Query.traceStepByIdempotencyKey"], Viewer,
            Post("query($v: String!) { traceStepByIdempotencyKey(idempotencyKey: $v) { traceId params outcomeData } }"),
            "stepKey", v),
        probe("traceByRootHash", &["Query.traceByRootHash"], Viewer,
            Post("query($v: String!) { traceByRootHash(rootHash: $v) { traceId plan } }"), "rootHash", v),
        probe("compareTraces(own, A's)", &["Query.compareTraces"], Viewer,
            Post("query($v: String!, $own: String!) { compareTraces(left: $own, right: $v) { match differences { field } } }"),
            "trace.done", |r, own| json!({ "v": r, "own": own["trace.done"] })),
        probe("compareTraces(A's, A's)", &["Query.compareTraces"], Viewer,
            Post("query($v: String!) { compareTraces(left: $v, right: $v) { match differences { field } } }"),
            "trace.done", v),
        probe("replayWindow(runId)", &["Query.replayWindow"], Viewer,
            Post("query($v: String!) { replayWindow(runId: $v) { runId traceId truncated } }"), "run.main", v),
        probe("integrity(runId)", &["Query.integrity"], Viewer,
            Post("query($v: String!) { integrity(runId: $v) { runId grade observedArtifacts } }"), "run.main", v),
        probe("ledger.inclusionProof(id)", &["Ledger.inclusionProof"], Viewer,
            Post("query($v: ID!) { ledger { inclusionProof(entryId: $v) { leafIndex treeSize } } }"),
            "gid.AuditEntry", v),
        probe("ledger.inclusionProof(recordId)", &["Ledger.inclusionProof"], Viewer,
            Post("query($v: ID!) { ledger { inclusionProof(entryId: $v) { leafIndex treeSize } } }"),
            "rec.AuditEntry", v),
        // --- list filters naming A's objects
        probe("llmRuns(filter runId)", &["Query.llmRuns"], Viewer,
            Post("query($v: String) { llmRuns(filter: {runId: $v}) { totalCount nodes { runId } } }"), "run.main", v),
        probe("systemRecords(filter correlationId)", &["Query.systemRecords"], Viewer,
            Post("query($v: String) { systemRecords(filter: {correlationId: $v}) { totalCount nodes { summary } } }"),
            "correlation", v),
        probe("auditEntries(filter entityId)", &["Query.auditEntries"], Viewer,
            Post("query($v: String) { auditEntries(filter: {entityId: $v}) { totalCount nodes { entityId } } }"),
            "fp.main", v),
        probe("auditEntries(filter runId)", &["Query.auditEntries"], Viewer,
            Post("query($v: String) { auditEntries(filter: {runId: $v}) { totalCount nodes { entityId } } }"),
            "run.main", v),
        probe("logExports(filter runId)", &["Query.logExports"], Viewer,
            Post("query($v: String) { logExports(filter: {runId: $v}) { totalCount nodes { scope } } }"), "run.main", v),
        probe("traces(filter runId)", &["Query.traces"], Viewer,
            Post("query($v: String) { traces(filter: {runId: $v}) { totalCount nodes { traceId } } }"), "run.main", v),
        probe("traces(filter rootHash)", &["Query.traces"], Viewer,
            Post("query($v: String) { traces(filter: {rootHash: $v}) { totalCount nodes { traceId } } }"), "rootHash", v),
        probe("traceMismatches(filter traceId)", &["Query.traceMismatches"], Viewer,
            Post("query($v: String) { traceMismatches(filter: {traceId: $v}) { totalCount nodes { reason } } }"),
            "trace.live", v),
        probe("activity(filter runId)", &["Query.activity"], Viewer,
            Post("query($v: String) { activity(filter: {runId: $v}) { totalCount nodes { kind subject { __typename ... on LlmRun { runId } ... on Trace { traceId } } } } }"),
            "run.main", v),
        probe("traceSteps(filter traceId)", &["Query.traceSteps"], Viewer,
            Post("query($v: String) { traceSteps(filter: {traceId: $v}) { totalCount facets(fields: [SKILL_NAME]) { values { value count } } nodes { skillName trace { traceId } } } }"),
            "trace.live", v),
        // --- A's cursors on B's same list and filter
        probe("llmRuns after", &["Query.llmRuns"], Viewer, Post(RUNS_AFTER), "cursor.llmRuns", cursor),
        probe("apiKeys after", &["Query.apiKeys"], Admin, Post(API_KEYS_AFTER), "cursor.apiKeys", cursor),
        probe("apiKeys before", &["Query.apiKeys"], Admin, Post(API_KEYS_BEFORE), "cursor.apiKeys", cursor),
        probe("llmRuns before", &["Query.llmRuns"], Viewer, Post(RUNS_BEFORE), "cursor.llmRuns", cursor),
        probe("systemRecords after", &["Query.systemRecords"], Viewer, Post(SYS_AFTER), "cursor.systemRecords", cursor),
        probe("systemRecords before", &["Query.systemRecords"], Viewer, Post(SYS_BEFORE), "cursor.systemRecords", cursor),
        probe("auditEntries after", &["Query.auditEntries"], Viewer, Post(AUDIT_AFTER), "cursor.auditEntries", cursor),
        probe("auditEntries before", &["Query.auditEntries"], Viewer, Post(AUDIT_BEFORE), "cursor.auditEntries", cursor),
        probe("auditEntityHistory after", &["Query.auditEntityHistory"], Viewer, Post(HISTORY_AFTER), "cursor.auditEntityHistory", cursor),
        probe("auditEntityHistory before", &["Query.auditEntityHistory"], Viewer, Post(HISTORY_BEFORE), "cursor.auditEntityHistory", cursor),
        probe("logExports after", &["Query.logExports"], Viewer, Post(EXPORTS_AFTER), "cursor.logExports", cursor),
        probe("logExports before", &["Query.logExports"], Viewer, Post(EXPORTS_BEFORE), "cursor.logExports", cursor),
        probe("traces after", &["Query.traces"], Viewer, Post(TRACES_AFTER), "cursor.traces", cursor),
        probe("traces before", &["Query.traces"], Viewer, Post(TRACES_BEFORE), "cursor.traces", cursor),
        probe("traceMismatches after", &["Query.traceMismatches"], Viewer, Post(MISMATCHES_AFTER), "cursor.traceMismatches", cursor),
        probe("traceMismatches before", &["Query.traceMismatches"], Viewer, Post(MISMATCHES_BEFORE), "cursor.traceMismatches", cursor),
        probe("cost.anomalies after", &["CostQuery.anomalies"], Viewer, Post(ANOMALIES_AFTER), "cursor.anomalies", cursor),
        probe("activity after", &["Query.activity"], Viewer,
            Post("query($c: String) { activity(first: 5, after: $c) { edges { node { kind } } } }"), "cursor.activity", cursor),
        probe("cost.anomalies before", &["CostQuery.anomalies"], Viewer, Post(ANOMALIES_BEFORE), "cursor.anomalies", cursor),
        probe("cost.budgets after", &["CostQuery.budgets"], Viewer, Post(BUDGETS_AFTER), "cursor.budgets", cursor),
        probe("cost.budgets before", &["CostQuery.budgets"], Viewer, Post(BUDGETS_BEFORE), "cursor.budgets", cursor),
        probe("cost.featureTags after", &["CostQuery.featureTags"], Viewer, Post(TAGS_AFTER), "cursor.featureTags", cursor),
        probe("cost.featureTags before", &["CostQuery.featureTags"], Viewer, Post(TAGS_BEFORE), "cursor.featureTags", cursor),
        probe("ledger.checkpoints after", &["Ledger.checkpoints"], Viewer, Post(CHECKPOINTS_AFTER), "cursor.checkpoints", cursor),
        probe("ledger.checkpoints before", &["Ledger.checkpoints"], Viewer, Post(CHECKPOINTS_BEFORE), "cursor.checkpoints", cursor),
        probe("Trace.steps after (own trace)", &["Trace.steps"], Viewer, Post(STEPS_AFTER), "cursor.steps", own_trace_cursor),
        probe("Trace.steps before (own trace)", &["Trace.steps"], Viewer, Post(STEPS_BEFORE), "cursor.steps", own_trace_cursor),
        // --- subscriptions
        probe("llmRunAdded(after)", &["Subscription.llmRunAdded"], Viewer,
            Ws("subscription($c: String) { llmRunAdded(after: $c) { cursor node { runId } } }"), "cursor.llmRuns", cursor),
        probe("systemRecordAdded(after)", &["Subscription.systemRecordAdded"], Viewer,
            Ws("subscription($c: String) { systemRecordAdded(after: $c) { cursor node { summary } } }"), "cursor.systemRecords", cursor),
        probe("auditEntryAdded(after)", &["Subscription.auditEntryAdded"], Viewer,
            Ws("subscription($c: String) { auditEntryAdded(after: $c) { cursor node { entityId } } }"), "cursor.auditEntries", cursor),
        probe("traceStepAdded(traceId)", &["Subscription.traceStepAdded"], Viewer,
            Ws("subscription($v: String!) { traceStepAdded(traceId: $v) { node { stepIndex params } } }"), "trace.live", v),
        probe("traceStepAdded(own trace, after)", &["Subscription.traceStepAdded"], Viewer,
            Ws("subscription($c: String, $own: String!) { traceStepAdded(traceId: $own, after: $c) { node { stepIndex } } }"),
            "cursor.steps", own_trace_cursor),
        probe("traceStarted(after)", &["Subscription.traceStarted"], Viewer,
            Ws("subscription($c: String) { traceStarted(after: $c) { cursor node { traceId } } }"), "cursor.traces", cursor),
        probe("traceEnded(after)", &["Subscription.traceEnded"], Viewer,
            Ws("subscription($c: String) { traceEnded(after: $c) { cursor node { traceId } } }"), "cursor.traces", cursor)
            .blind("traceEnded's cursors come only from its own events, so A's `traces` cursor is refused for A as for B; the tail's tenant scope is tested in subscriptions::lifecycle_tails_arrive"),
        probe("traceMismatchReported(after)", &["Subscription.traceMismatchReported"], Viewer,
            Ws("subscription($c: String) { traceMismatchReported(after: $c) { cursor node { reason } } }"), "cursor.traceMismatches", cursor),
        probe("traceMismatchResolved(after)", &["Subscription.traceMismatchResolved"], Viewer,
            Ws("subscription($c: String) { traceMismatchResolved(after: $c) { cursor node { reason } } }"), "cursor.traceMismatches", cursor)
            .blind("traceMismatchResolved's cursors come only from its own events, so A's `traceMismatches` cursor is refused for A as for B; the tail's tenant scope is tested in subscriptions::mismatch_resolutions_arrive_once"),
        probe("costAnomalyDetected(after)", &["Subscription.costAnomalyDetected"], Viewer,
            Ws("subscription($c: String) { costAnomalyDetected(after: $c) { cursor node { message } } }"), "cursor.anomalies", cursor),
        probe("activityAdded(after)", &["Subscription.activityAdded"], Viewer,
            Ws("subscription($c: String) { activityAdded(after: $c) { cursor node { kind } } }"), "cursor.activity", cursor),
        probe("exportProgress(id)", &["Subscription.exportProgress"], Viewer,
            Ws("subscription($v: ID!) { exportProgress(id: $v) { scope status } }"), "gid.LogExport", v),
        probe("exportProgress(exportId)", &["Subscription.exportProgress"], Viewer,
            Ws("subscription($v: ID!) { exportProgress(id: $v) { scope status } }"), "rec.LogExport", v),
        // A's export is finished by now: A's own cancel is INVALID_TRANSITION, never a change.
        probe("cancelExport(id)", &["Mutation.cancelExport"], Operator,
            Post("mutation($v: ID!) { cancelExport(id: $v) { scope status } }"), "gid.LogExport", v),
        probe("cancelExport(exportId)", &["Mutation.cancelExport"], Operator,
            Post("mutation($v: ID!) { cancelExport(id: $v) { scope status } }"), "rec.LogExport", v),
        // --- export routes
        probe("GET download", &["GET /exports/{id}/download"], Viewer, Get("/exports/{}/download"), "rec.LogExport", v),
        probe("GET manifest", &["GET /exports/{id}/manifest"], Viewer, Get("/exports/{}/manifest"), "rec.LogExport", v),
        probe("GET ledger", &["GET /exports/{id}/ledger"], Viewer, Get("/exports/{}/ledger"), "rec.AuditExport", v),
        // --- writes naming an existing object
        probe("recordSteps", &["Mutation.recordSteps"], Ingest,
            Post("mutation($v: String!, $s: [TraceStepInput!]!) { recordSteps(traceId: $v, steps: $s) { insertedCount trace { traceId } } }"),
            "trace.steps", |r, _| json!({ "v": r, "s": [step_input(7, "b")] })),
        probe("reportMismatch", &["Mutation.reportMismatch"], Ingest,
            Post("mutation($v: String!) { reportMismatch(input: {traceId: $v, reason: \"output_mismatch\"}) { traceId reason } }"),
            "trace.live", v),
        probe("bulkReportMismatches", &["Mutation.bulkReportMismatches"], Ingest,
            Post("mutation($v: String!) { bulkReportMismatches(inputs: [{traceId: $v, reason: \"output_mismatch\"}]) { traceId } }"),
            "trace.live", v),
        probe("enforceReplayStep", &["Mutation.enforceReplayStep"], Ingest,
            Post("mutation($v: String!) { enforceReplayStep(input: {traceId: $v, stepIndex: 0, output: {x: 1}}) { outcome outputHash expectedHash } }"),
            "trace.live", v),
        probe("enforceTrace", &["Mutation.enforceTrace"], Ingest,
            Post("mutation($v: String!) { enforceTrace(input: {traceId: $v, steps: [{stepIndex: 0, output: {x: 1}}, {stepIndex: 1, output: {x: 2}}]}) { totalSteps steps { outputHash } } }"),
            "trace.live", v),
        probe("resolveMismatch(id)", &["Mutation.resolveMismatch"], Operator,
            Post("mutation($v: ID!) { resolveMismatch(id: $v, note: \"n\") { status } }"), "gid.Mismatch.resolve", v),
        probe("linkMismatchIssue(mismatchId)", &["Mutation.linkMismatchIssue"], Operator,
            Post("mutation($v: ID!) { linkMismatchIssue(id: $v, issueUrl: \"https://x.test/1\") { issueUrl } }"),
            "rec.Mismatch.link", v),
        probe("bulkResolveMismatches(ids: [mismatchId])", &["Mutation.bulkResolveMismatches"], Operator,
            Post("mutation($v: ID!) { bulkResolveMismatches(ids: [$v], note: \"n\") { changedIds unchangedIds mismatches { status resolutionNote } } }"),
            "rec.Mismatch.bulkResolve", v),
        probe("bulkLinkMismatchIssue(ids: [id])", &["Mutation.bulkLinkMismatchIssue"], Operator,
            Post("mutation($v: ID!) { bulkLinkMismatchIssue(ids: [$v], issueUrl: \"https://x.test/2\") { changedIds unchangedIds mismatches { issueUrl notificationSent } } }"),
            "gid.Mismatch.bulkLink", v),
        probe("markMismatchesNotified(ids: [mismatchId])", &["Mutation.markMismatchesNotified"], Operator,
            Post("mutation($v: ID!) { markMismatchesNotified(ids: [$v]) { changedIds unchangedIds mismatches { notificationSent } } }"),
            "rec.Mismatch.notify", v),
        probe("completeTrace", &["Mutation.completeTrace"], Ingest,
            Post("mutation($v: String!) { completeTrace(traceId: $v, status: COMPLETED) { traceId status } }"), "trace.complete", v),
        probe("abortTrace", &["Mutation.abortTrace"], Ingest,
            Post("mutation($v: String!) { abortTrace(traceId: $v, reason: \"stop\") { traceId status } }"), "trace.abort", v),
        probe("captureEvidence(runId)", &["Mutation.captureEvidence"], Ingest,
            Post("mutation($v: String!) { captureEvidence(input: {runId: $v, seal: true}) { runId captured { evidenceClass } } }"),
            "run.evidence", v),
        probe("revokeApiKey(id)", &["Mutation.revokeApiKey"], Admin,
            Post("mutation($v: ID!) { revokeApiKey(id: $v) { id label status } }"), "rec.ApiKey", v),
        probe("acknowledgeCostAnomaly(id)", &["Mutation.acknowledgeCostAnomaly"], Operator,
            Post("mutation($v: ID!) { acknowledgeCostAnomaly(id: $v) { status anomalyType } }"), "anomaly.ack", v),
        probe("resolveCostAnomaly(id)", &["Mutation.resolveCostAnomaly"], Operator,
            Post("mutation($v: ID!) { resolveCostAnomaly(id: $v, note: \"n\") { status resolutionNote anomalyType } }"), "anomaly.resolve", v),
        probe("updateFeatureTag(tag)", &["Mutation.updateFeatureTag"], Admin,
            Post("mutation($v: String!) { updateFeatureTag(tag: $v, input: {displayName: \"x\"}) { tag displayName } }"),
            "tag.update", v),
        // --- writes whose new object is named like one of A's (unique per tenant, or a link)
        // ADMIN: the answer must show stored content (`agentId`, the stored `runId`) for the owner
        // control to tell A's existing trace from a new one; INGEST gets receipts only.
        probe("startTrace(traceId)", &["Mutation.startTrace"], Admin,
            Post(START_TRACE), "trace.claim", |r, _| json!({ "input": { "traceId": r, "runId": "claim-run" } })),
        probe("startTrace(runId)", &["Mutation.startTrace"], Admin,
            Post(START_TRACE), "run.auto", |r, _| json!({ "input": { "runId": r } })),
        probe("recordLlmRun(runId)", &["Mutation.recordLlmRun"], Admin,
            Post("mutation($v: String!) { recordLlmRun(input: {runId: $v, model: \"gpt-4o\", executionStatus: SUCCEEDED, startedAt: \"2026-01-01T00:00:00Z\"}) { runId trace { traceId } } }"),
            "run.claim", v),
        probe("recordLlmRun(traceId)", &["Mutation.recordLlmRun"], Ingest,
            Post("mutation($v: String!, $run: String!) { recordLlmRun(input: {runId: $run, traceId: $v, model: \"gpt-4o\", executionStatus: SUCCEEDED, startedAt: \"2026-01-01T00:00:00Z\"}) { runId traceId } }"),
            "trace.link", |r, _| json!({ "v": r, "run": format!("linked-{r}") }))
            .blind("traceId is stored as given, never looked up"),
        probe("recordAuditEvent(entityId)", &["Mutation.recordAuditEvent"], Ingest,
            Post("mutation($v: String!) { recordAuditEvent(input: {eventType: SIGNAL_ACKNOWLEDGED, entityType: SIGNAL, entityId: $v, actorType: HUMAN, actorId: \"ops\", afterState: {}}) { entityId seq } }"),
            "fp.claim", v)
            .blind("entityId is stored as given, never looked up"),
        probe("recordAuditEvent(runId)", &["Mutation.recordAuditEvent"], Ingest,
            Post("mutation($v: String!) { recordAuditEvent(input: {eventType: SIGNAL_ESCALATED, entityType: SIGNAL, entityId: \"b-fp-x\", actorType: HUMAN, actorId: \"ops\", afterState: {}, runId: $v}) { runId seq } }"),
            "run.audit", v)
            .blind("runId is stored as given, never looked up"),
        probe("createFeatureTag(tag)", &["Mutation.createFeatureTag"], Admin,
            Post("mutation($v: String!) { createFeatureTag(input: {tag: $v, displayName: \"d\"}) { tag isActive } }"),
            "tag.create", v),
        probe("upsertBudget(FEATURE, tag)", &["Mutation.upsertBudget"], Admin,
            Post("mutation($v: String) { upsertBudget(input: {budgetType: FEATURE, entityId: $v, dailyLimitCents: 10}) { entityId currentDailySpendCents } }"),
            "tag.cost", v),
        probe("recordCost(featureTag)", &["Mutation.recordCost"], Ingest,
            Post("mutation($v: String) { recordCost(input: {records: [{model: \"gpt-4o\", featureTag: $v, costCents: 1.5}]}) { recordCount reclassifiedCount records { featureTag } } }"),
            "tag.cost", v),
        probe("createExport(RUN_BUNDLE runId)", &["Mutation.createExport"], Operator,
            Export("mutation($v: String) { createExport(input: {scope: RUN_BUNDLE, format: ZIP, runId: $v}) { exportId scope status runId } }"),
            "run.bundle", v),
        probe("createExport(TRACE_BUNDLE traceId)", &["Mutation.createExport"], Operator,
            Export("mutation($v: String) { createExport(input: {scope: TRACE_BUNDLE, format: ZIP, traceId: $v}) { exportId scope status } }"),
            "trace.bundle", v),
        probe("createExport(INCIDENT_BUNDLE incidentId)", &["Mutation.createExport"], Operator,
            Export("mutation($v: String) { createExport(input: {scope: INCIDENT_BUNDLE, format: ZIP, incidentId: $v}) { exportId scope status } }"),
            "incident", v),
        // --- A's idempotency key with the same input
        probe("recordSystemRecord(idempotencyKey)", &["Mutation.recordSystemRecord"], Ingest,
            Post("mutation($v: String) { recordSystemRecord(input: {component: WORKER, eventType: ERROR, severity: WARN, summary: \"idem\"}, idempotencyKey: $v) { summary tenantId } }"),
            "idem.system", v)
            .blind("a replay of the owner's first result looks like a new record once ids and times are masked; a leak shows as tenantId alpha"),
        // Each tenant re-records its own policy under the key. A policy id itself is not probed
        // here: policy ids are unique across the server (docs/domain.md §13.1), so B naming A's
        // is refused where an unused one is recorded. That B learns the id is taken, and nothing
        // of A's row, is checked in policy_activations::another_tenants_policy_id_is_refused.
        probe("recordPolicyActivation(idempotencyKey)", &["Mutation.recordPolicyActivation"], Ingest,
            Post("mutation($v: String, $p: String!) { recordPolicyActivation(input: {policyId: $p, sourcePatternId: \"pat\", confidence: 0.7, approvalPath: \"auto\"}, idempotencyKey: $v) { policyId confidenceBand approvalPath } }"),
            "idem.policy", |r, own| json!({ "v": r, "p": own["rec.PolicyActivation"] }))
            .blind("a replay of the owner's first result looks like a re-record once times are masked; a leak shows as A's policyId"),
    ]
}

/// Selects no large stored content (plan, metadata, steps).
const START_TRACE: &str =
    "mutation($input: StartTraceInput!) { startTrace(input: $input) { traceId runId status agentId } }";

// ---------------------------------------------------------------------------------------------
// Seeding, through the API.

struct Keys {
    viewer: String,
    operator: String,
    ingest: String,
    admin: String,
}

impl Keys {
    async fn new(app: &TestApp, tenant: &str) -> Keys {
        Keys {
            viewer: app.key(tenant, Role::Viewer).await,
            operator: app.key(tenant, Role::Operator).await,
            ingest: app.key(tenant, Role::Ingest).await,
            admin: app.key(tenant, Role::Admin).await,
        }
    }

    fn get(&self, role: Role) -> &str {
        match role {
            Role::Viewer => &self.viewer,
            Role::Operator => &self.operator,
            Role::Ingest => &self.ingest,
            Role::Admin => &self.admin,
            Role::Platform => panic!("a tenant has no platform key"),
        }
    }
}

fn days_ago(n: i64) -> String {
    if n == 0 {
        return (chrono::Utc::now() - chrono::Duration::minutes(1)).to_rfc3339();
    }
    let day = chrono::Utc::now().date_naive() - chrono::Duration::days(n);
    format!("{day}T12:00:00Z")
}

/// Creates one tenant's data (`t` its name, `p` the prefix of its natural ids) and returns the
/// named values the probes present.
async fn seed(app: &TestApp, t: &str, p: &str, keys: &Keys) -> Values {
    let mut out = Values::new();
    let ingest = keys.ingest.as_str();

    // Runs.
    for (name, run) in [
        ("main", format!("{p}-run")),
        ("second", format!("{p}-run-2")),
        ("claim", format!("{p}-run-claim")),
        ("evidence", format!("{p}-run-evidence")),
        ("bundle", format!("{p}-run-bundle")),
        ("audit", format!("{p}-run-audit")),
    ] {
        let d = app
            .data(
                ingest,
                "mutation($i: RecordLlmRunInput!) { recordLlmRun(input: $i) { id recordId } }",
                json!({ "i": { "runId": run, "model": "gpt-4o", "executionStatus": "SUCCEEDED",
                                "startedAt": "2026-01-01T00:00:00Z", "inputTokens": 10 } }),
            )
            .await;
        if name == "main" {
            out.insert("gid.LlmRun".into(), str_at(&d, "/recordLlmRun/id"));
        }
        out.insert(format!("run.{name}"), run);
    }

    // Traces: `done` completed with steps; the others running, one per probe that writes.
    const START: &str =
        "mutation($i: StartTraceInput!, $k: String) { startTrace(input: $i, idempotencyKey: $k) { id traceId } }";
    const STEPS: &str = "mutation($t: String!, $s: [TraceStepInput!]!) { recordSteps(traceId: $t, steps: $s) { insertedCount } }";
    for role in [
        "done", "live", "steps", "complete", "abort", "claim", "bundle", "link",
    ] {
        let trace = format!("{p}-{role}");
        let run = if role == "done" {
            format!("{p}-run")
        } else {
            format!("{p}-run-{role}")
        };
        let d = app
            .data(
                ingest,
                START,
                json!({ "i": { "traceId": trace, "runId": run, "incidentId": format!("{p}-incident"),
                                "plan": [{ "skill": format!("PLAN-{t}") }] } }),
            )
            .await;
        if role == "done" {
            out.insert("gid.Trace".into(), str_at(&d, "/startTrace/id"));
        }
        app.data(
            ingest,
            STEPS,
            json!({ "t": trace, "s": [step_input(0, t), step_input(1, t)] }),
        )
        .await;
        out.insert(format!("trace.{role}"), trace);
    }
    out.insert("stepKey".into(), format!("k-{t}-0"));
    out.insert("incident".into(), format!("{p}-incident"));
    let d = app
        .data(
            ingest,
            "mutation($t: String!, $m: JSON) { completeTrace(traceId: $t, status: COMPLETED, metadata: $m) { rootHash } }",
            json!({ "t": format!("{p}-done"), "m": { "note": format!("META-{t}") } }),
        )
        .await;
    out.insert("rootHash".into(), str_at(&d, "/completeTrace/rootHash"));
    // A trace started from its run id alone (`trace_<runId>`).
    app.data(
        ingest,
        START,
        json!({ "i": { "runId": format!("{p}-auto"), "agentId": format!("{p}-agent") } }),
    )
    .await;
    out.insert("run.auto".into(), format!("{p}-auto"));

    // System records; one written under an idempotency key.
    const SYSTEM: &str = "mutation($i: RecordSystemRecordInput!, $k: String) { recordSystemRecord(input: $i, idempotencyKey: $k) { id recordId } }";
    let d = app
        .data(
            ingest,
            SYSTEM,
            json!({ "i": { "component": "WORKER", "eventType": "ERROR", "severity": "WARN",
                            "summary": format!("{t} failed"), "correlationId": format!("{p}-corr") } }),
        )
        .await;
    out.insert(
        "gid.SystemRecord".into(),
        str_at(&d, "/recordSystemRecord/id"),
    );
    out.insert(
        "rec.SystemRecord".into(),
        str_at(&d, "/recordSystemRecord/recordId"),
    );
    out.insert("correlation".into(), format!("{p}-corr"));
    app.data(
        ingest,
        SYSTEM,
        json!({ "i": { "component": "WORKER", "eventType": "ERROR", "severity": "WARN", "summary": "idem" },
                "k": format!("{p}-idem") }),
    )
    .await;
    out.insert("idem.system".into(), format!("{p}-idem"));

    // A policy activation, recorded under an idempotency key.
    let idem = format!("{p}-idem-policy");
    let d = app
        .data(
            ingest,
            "mutation($p: String!, $s: String!, $k: String) { recordPolicyActivation(input: {policyId: $p, sourcePatternId: $s, confidence: 0.7, approvalPath: \"auto\"}, idempotencyKey: $k) { id policyId } }",
            json!({ "p": format!("{p}-policy"), "s": format!("{p}-pattern"), "k": idem }),
        )
        .await;
    out.insert(
        "gid.PolicyActivation".into(),
        str_at(&d, "/recordPolicyActivation/id"),
    );
    out.insert("rec.PolicyActivation".into(), format!("{p}-policy"));
    out.insert("pattern.policy".into(), format!("{p}-pattern"));
    out.insert("idem.policy".into(), idem);

    // Audit entries.
    const AUDIT: &str =
        "mutation($i: RecordAuditEventInput!) { recordAuditEvent(input: $i) { id recordId } }";
    for (event, fp) in [
        ("SIGNAL_ACKNOWLEDGED", format!("{p}-fp")),
        ("SIGNAL_ESCALATED", format!("{p}-fp")),
        ("SIGNAL_ACKNOWLEDGED", format!("{p}-fp-claim")),
    ] {
        let d = app
            .data(
                ingest,
                AUDIT,
                json!({ "i": { "eventType": event, "entityType": "SIGNAL", "entityId": fp,
                                "actorType": "HUMAN", "actorId": "ops", "afterState": {},
                                "runId": format!("{p}-run") } }),
            )
            .await;
        if event == "SIGNAL_ACKNOWLEDGED" && !out.contains_key("gid.AuditEntry") {
            out.insert("gid.AuditEntry".into(), str_at(&d, "/recordAuditEvent/id"));
            out.insert(
                "rec.AuditEntry".into(),
                str_at(&d, "/recordAuditEvent/recordId"),
            );
        }
    }
    out.insert("fp.main".into(), format!("{p}-fp"));
    out.insert("fp.claim".into(), format!("{p}-fp-claim"));

    // Mismatches on the live trace.
    const REPORT: &str =
        "mutation($t: String!) { reportMismatch(input: {traceId: $t, stepIndex: 0, reason: \"output_mismatch\"}) { id mismatchId } }";
    for role in [
        "main",
        "resolve",
        "link",
        "bulkResolve",
        "bulkLink",
        "notify",
    ] {
        let d = app
            .data(ingest, REPORT, json!({ "t": format!("{p}-live") }))
            .await;
        let (gid, rec) = match role {
            "main" => ("gid.TraceMismatch", "rec.TraceMismatch"),
            "resolve" => ("gid.Mismatch.resolve", "rec.Mismatch.resolve"),
            "link" => ("gid.Mismatch.link", "rec.Mismatch.link"),
            "bulkResolve" => ("gid.Mismatch.bulkResolve", "rec.Mismatch.bulkResolve"),
            "bulkLink" => ("gid.Mismatch.bulkLink", "rec.Mismatch.bulkLink"),
            _ => ("gid.Mismatch.notify", "rec.Mismatch.notify"),
        };
        out.insert(gid.into(), str_at(&d, "/reportMismatch/id"));
        out.insert(rec.into(), str_at(&d, "/reportMismatch/mismatchId"));
    }

    // Feature tags, budgets, costs (a two-day spike and a budget warning) and anomalies.
    for role in ["update", "create", "budget", "cost"] {
        app.data(
            &keys.admin,
            "mutation($t: String!) { createFeatureTag(input: {tag: $t, displayName: \"t\"}) { tag } }",
            json!({ "t": format!("{t}.{role}") }),
        )
        .await;
        out.insert(format!("tag.{role}"), format!("{t}.{role}"));
    }
    const BUDGET: &str = "mutation($i: UpsertBudgetInput!) { upsertBudget(input: $i) { id } }";
    app.data(
        &keys.admin,
        BUDGET,
        json!({ "i": { "budgetType": "TENANT", "dailyLimitCents": 350 } }),
    )
    .await;
    app.data(
        &keys.admin,
        BUDGET,
        json!({ "i": { "budgetType": "FEATURE", "entityId": format!("{t}.budget"), "dailyLimitCents": 1000 } }),
    )
    .await;
    let records: Vec<Value> = (0..=10)
        .filter(|n| *n != 2)
        .map(|n| {
            let cents = if n <= 1 { 300.0 } else { 100.0 };
            json!({ "model": "gpt-4o", "featureTag": format!("{t}.cost"), "userId": format!("{p}-user"),
                    "costCents": cents, "createdAt": days_ago(n) })
        })
        .collect();
    app.data(
        ingest,
        "mutation($r: [CostRecordInput!]!) { recordCost(input: {records: $r}) { recordCount } }",
        json!({ "r": records }),
    )
    .await;
    let d = app
        .data(
            &keys.operator,
            "mutation { detectCostAnomalies { created } }",
            json!({}),
        )
        .await;
    assert!(
        d["detectCostAnomalies"]["created"].as_i64().unwrap_or(0) > 0,
        "{t}: the seed must produce cost anomalies: {d}"
    );
    let listed = app
        .data(
            &keys.operator,
            "{ cost { anomalies(first: 2) { nodes { id } } } }",
            json!({}),
        )
        .await;
    out.insert(
        "anomaly.ack".into(),
        str_at(&listed, "/cost/anomalies/nodes/0/id"),
    );
    out.insert(
        "anomaly.resolve".into(),
        str_at(&listed, "/cost/anomalies/nodes/1/id"),
    );

    // An incident (no API writes incidents).
    let now = chrono::Utc::now();
    entity::incidents::ActiveModel {
        id: Set(format!("{p}-incident")),
        tenant_id: Set(t.into()),
        title: Set("incident".into()),
        severity: Set("high".into()),
        status: Set("open".into()),
        trigger_type: Set("manual".into()),
        source_run_id: Set(Some(format!("{p}-run"))),
        category: Set(None),
        description: Set(None),
        error_code: Set(None),
        error_message: Set(None),
        lifecycle_state: Set("ACTIVE".into()),
        cause_type: Set("LLM_RUN".into()),
        inflection_step_index: Set(None),
        inflection_timestamp: Set(None),
        started_at: Set(now),
        ended_at: Set(None),
        resolved_at: Set(None),
        resolved_by: Set(None),
        is_synthetic: Set(false),
        synthetic_scenario_id: Set(None),
        created_at: Set(now),
        updated_at: Set(now),
    }
    .insert(app.db())
    .await
    .unwrap();
    out.insert(
        "gid.Incident".into(),
        logbook::ids::encode(logbook::ids::NodeKind::Incident, &format!("{p}-incident")).0,
    );

    // Exports: a list, an AUDIT one (with its ledger file) and a bundle of the main run, finished.
    let run_main = json!({ "scope": "RUN_BUNDLE", "format": "ZIP", "runId": format!("{p}-run") });
    for (input, gid, rec) in [
        (
            json!({ "scope": "LLM_RUNS", "format": "JSON" }),
            Some("gid.LogExport"),
            "rec.LogExport",
        ),
        (
            json!({ "scope": "AUDIT", "format": "JSON" }),
            None,
            "rec.AuditExport",
        ),
        (run_main, None, "rec.RunExport"),
    ] {
        let d = app
            .data(
                &keys.operator,
                "mutation($i: CreateExportInput!) { createExport(input: $i) { id exportId } }",
                json!({ "i": input }),
            )
            .await;
        if let Some(gid) = gid {
            out.insert(gid.into(), str_at(&d, "/createExport/id"));
        }
        let export_id = str_at(&d, "/createExport/exportId");
        wait_for_export(app, &keys.viewer, &export_id).await;
        out.insert(rec.into(), export_id);
    }

    // Ledger checkpoints: the head's, and one of size 1.
    app.data(
        &keys.viewer,
        "{ ledger { head { treeSize } checkpoint(treeSize: 1) { treeSize } } }",
        json!({}),
    )
    .await;

    // One cursor per list.
    let fp = format!("{p}-fp");
    let done = format!("{p}-done");
    for (list, query, path) in [
        (
            "llmRuns",
            "{ llmRuns(first: 1) { edges { cursor } } }".to_owned(),
            "/llmRuns",
        ),
        (
            "systemRecords",
            "{ systemRecords(first: 1) { edges { cursor } } }".into(),
            "/systemRecords",
        ),
        (
            "auditEntries",
            "{ auditEntries(first: 1) { edges { cursor } } }".into(),
            "/auditEntries",
        ),
        (
            "auditEntityHistory",
            format!(
                r#"{{ auditEntityHistory(entityType: SIGNAL, entityId: "{fp}", first: 1) {{ edges {{ cursor }} }} }}"#
            ),
            "/auditEntityHistory",
        ),
        (
            "logExports",
            "{ logExports(first: 1) { edges { cursor } } }".into(),
            "/logExports",
        ),
        (
            "traces",
            "{ traces(first: 1) { edges { cursor } } }".into(),
            "/traces",
        ),
        (
            "traceMismatches",
            "{ traceMismatches(first: 1) { edges { cursor } } }".into(),
            "/traceMismatches",
        ),
        (
            "anomalies",
            "{ cost { anomalies(first: 1) { edges { cursor } } } }".into(),
            "/cost/anomalies",
        ),
        (
            "budgets",
            "{ cost { budgets(first: 1) { edges { cursor } } } }".into(),
            "/cost/budgets",
        ),
        (
            "featureTags",
            "{ cost { featureTags(first: 1) { edges { cursor } } } }".into(),
            "/cost/featureTags",
        ),
        (
            "checkpoints",
            "{ ledger { checkpoints(first: 1) { edges { cursor } } } }".into(),
            "/ledger/checkpoints",
        ),
        (
            "steps",
            format!(
                r#"{{ trace(traceId: "{done}") {{ steps(first: 1) {{ edges {{ cursor }} }} }} }}"#
            ),
            "/trace/steps",
        ),
        (
            "activity",
            "{ activity(first: 1) { edges { cursor } } }".into(),
            "/activity",
        ),
        (
            "policyActivations",
            "{ policyActivations(first: 1) { edges { cursor } } }".into(),
            "/policyActivations",
        ),
    ] {
        let d = app.data(&keys.viewer, &query, json!({})).await;
        out.insert(
            format!("cursor.{list}"),
            str_at(&d, &format!("{path}/edges/0/cursor")),
        );
    }

    // API keys (ADMIN): a spare key to revoke, and a cursor of the list.
    let d = app
        .data(
            &keys.admin,
            "mutation { createApiKey(role: VIEWER, label: \"spare\") { apiKey { id } } }",
            json!({}),
        )
        .await;
    out.insert("rec.ApiKey".into(), str_at(&d, "/createApiKey/apiKey/id"));
    let d = app
        .data(
            &keys.admin,
            "{ apiKeys(first: 1) { edges { cursor } } }",
            json!({}),
        )
        .await;
    out.insert(
        "cursor.apiKeys".into(),
        str_at(&d, "/apiKeys/edges/0/cursor"),
    );
    out
}

fn str_at(value: &Value, pointer: &str) -> String {
    value
        .pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("no string at {pointer} in {value:#}"))
        .to_owned()
}

/// The final state of an export (`COMPLETED` or `FAILED`).
async fn export_outcome(app: &TestApp, key: &str, export_id: &str) -> Value {
    for _ in 0..300 {
        let d = app
            .data(
                key,
                "query($id: ID!) { logExport(id: $id) { status error rowCount } }",
                json!({ "id": export_id }),
            )
            .await;
        if matches!(
            d["logExport"]["status"].as_str(),
            Some("COMPLETED" | "FAILED")
        ) {
            return d["logExport"].clone();
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("export {export_id} did not finish");
}

async fn wait_for_export(app: &TestApp, key: &str, export_id: &str) {
    for _ in 0..300 {
        let d = app
            .data(
                key,
                "query($id: ID!) { logExport(id: $id) { status error } }",
                json!({ "id": export_id }),
            )
            .await;
        match d["logExport"]["status"].as_str() {
            Some("COMPLETED") => return,
            Some("FAILED") => panic!("export {export_id} failed: {d}"),
            _ => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
    panic!("export {export_id} did not finish");
}

// ---------------------------------------------------------------------------------------------
// Presenting a reference, and comparing answers.

/// A reference of the same shape as `a` that nobody ever used (`n` keeps them distinct).
fn unused_like(a: &str, n: usize) -> String {
    if let Some((kind, record)) = logbook::ids::decode(a) {
        return logbook::ids::encode(kind, &unused_like(&record, n)).0;
    }
    if uuid::Uuid::parse_str(a).is_ok() {
        return uuid::Uuid::new_v4().to_string();
    }
    if a.len() == 64 && a.bytes().all(|b| b.is_ascii_hexdigit()) {
        return format!("{:064x}", 0xdead_0000_u64 + n as u64);
    }
    if a.contains('.') {
        return format!("never.tag{n}");
    }
    format!("never-{n}")
}

/// A cursor with one character changed in its middle (its tag no longer verifies).
fn tampered(cursor: &str) -> String {
    let mut chars: Vec<char> = cursor.chars().collect();
    let i = chars.len() / 2;
    chars[i] = if chars[i] == 'A' { 'B' } else { 'A' };
    chars.into_iter().collect()
}

/// What B could present instead of A's value without A existing: a never-used value of the same
/// shape; for a cursor, a tampered one and B's own cursor of another list.
fn alternatives(subject: &str, a: &str, b: &Values, n: usize) -> Vec<String> {
    if let Some(list) = subject.strip_prefix("cursor.") {
        let other = if list == "llmRuns" {
            "cursor.traces"
        } else {
            "cursor.llmRuns"
        };
        return vec![tampered(a), b[other].clone()];
    }
    vec![unused_like(a, n)]
}

const VOLATILE_KEYS: &[&str] = &[
    "id",
    "recordId",
    "mismatchId",
    "exportId",
    "requestId",
    "cursor",
    "startCursor",
    "endCursor",
    "createdAt",
    "updatedAt",
    "requestedAt",
    "startedAt",
    "completedAt",
    "resolvedAt",
    "detectedAt",
    "deliveredAt",
    "seq",
    "issuedAt",
    "timestamp",
    "outputHash",
    "rootHash",
    "checksum",
    "entryHash",
    "prevHash",
    "downloadPath",
    "manifestPath",
    "replayKey",
];

fn mask_uuids(text: &str) -> String {
    let bytes = text.as_bytes();
    let is_uuid = |s: &[u8]| {
        s.len() == 36
            && s.iter().enumerate().all(|(i, b)| match i {
                8 | 13 | 18 | 23 => *b == b'-',
                _ => b.is_ascii_hexdigit(),
            })
    };
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < bytes.len() {
        if i + 36 <= bytes.len() && is_uuid(&bytes[i..i + 36]) {
            out.push_str("<uuid>");
            i += 36;
        } else {
            let ch = text[i..].chars().next().unwrap_or('?');
            out.push(ch);
            i += ch.len_utf8();
        }
    }
    out
}

/// Masks what legitimately differs between two answers: the presented reference (and, for a
/// global id, its record id), generated ids, timestamps, hashes and cursors. `null` stays `null`.
fn normalize(value: &Value, reference: &str) -> Value {
    let mut refs = vec![reference.to_owned()];
    if let Some((_, record)) = logbook::ids::decode(reference) {
        refs.push(record);
    }
    fn walk(value: &Value, refs: &[String]) -> Value {
        match value {
            Value::String(s) => {
                let mut s = s.clone();
                for r in refs {
                    if !r.is_empty() {
                        s = s.replace(r.as_str(), "<ref>");
                    }
                }
                Value::String(mask_uuids(&s))
            }
            Value::Array(items) => Value::Array(items.iter().map(|v| walk(v, refs)).collect()),
            Value::Object(map) => Value::Object(
                map.iter()
                    .map(|(k, v)| {
                        let v = if VOLATILE_KEYS.contains(&k.as_str()) && !v.is_null() {
                            json!("<volatile>")
                        } else {
                            walk(v, refs)
                        };
                        (k.clone(), v)
                    })
                    .collect(),
            ),
            other => other.clone(),
        }
    }
    walk(value, &refs)
}

/// A graphql-transport-ws subscription's first message (or its absence within `wait`).
async fn first_message(app: &TestApp, key: &str, query: &str, variables: Value) -> Value {
    let url = format!("{}/graphql", app.base.replacen("http://", "ws://", 1));
    let mut request = url.into_client_request().unwrap();
    request.headers_mut().insert(
        "Sec-WebSocket-Protocol",
        "graphql-transport-ws".parse().unwrap(),
    );
    let (mut ws, _) = tokio_tungstenite::connect_async(request).await.unwrap();
    let send = |m: Value| Message::text(m.to_string());
    ws.send(send(json!({ "type": "connection_init",
                          "payload": { "Authorization": format!("Bearer {key}") } })))
        .await
        .unwrap();
    let wait = Duration::from_secs(3);
    let deadline = tokio::time::Instant::now() + wait;
    let mut subscribed = false;
    loop {
        let frame = match tokio::time::timeout_at(deadline, ws.next()).await {
            Err(_) => return json!("no message within 3 s"),
            Ok(None) => return json!("connection closed"),
            Ok(Some(frame)) => frame.unwrap(),
        };
        let Message::Text(text) = frame else { continue };
        let message: Value = serde_json::from_str(text.as_str()).unwrap();
        match message["type"].as_str() {
            Some("connection_ack") if !subscribed => {
                subscribed = true;
                ws.send(send(json!({ "id": "1", "type": "subscribe",
                                     "payload": { "query": query, "variables": variables } })))
                    .await
                    .unwrap();
            }
            Some("ping") => ws.send(send(json!({ "type": "pong" }))).await.unwrap(),
            Some("next") | Some("error") | Some("complete") => {
                let _ = ws.close(None).await;
                return json!({ "type": message["type"], "payload": message["payload"] });
            }
            _ => {}
        }
    }
}

/// The answer to `probe` presenting `reference` with `keys` (whose tenant's values are `own`).
async fn present(
    app: &TestApp,
    keys: &Keys,
    probe: &Probe,
    reference: &str,
    own: &Values,
) -> Value {
    let key = keys.get(probe.role);
    match probe.via {
        Via::Post(query) => {
            app.gql(Some(key), query, (probe.vars)(reference, own))
                .await
        }
        Via::Ws(query) => first_message(app, key, query, (probe.vars)(reference, own)).await,
        Via::Export(query) => {
            let created = app
                .gql(Some(key), query, (probe.vars)(reference, own))
                .await;
            let finished = match created["data"]["createExport"]["exportId"].as_str() {
                Some(export_id) => export_outcome(app, &keys.viewer, export_id).await,
                None => Value::Null,
            };
            json!({ "created": created, "finished": finished })
        }
        Via::Get(path) => {
            let response = app
                .http
                .get(format!("{}{}", app.base, path.replace("{}", reference)))
                .bearer_auth(key)
                .send()
                .await
                .unwrap();
            let status = response.status().as_u16();
            let content_type = response
                .headers()
                .get("content-type")
                .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
            let bytes = response.bytes().await.unwrap();
            let body = serde_json::from_slice::<Value>(&bytes)
                .unwrap_or_else(|_| json!(String::from_utf8_lossy(&bytes)));
            json!({ "status": status, "contentType": content_type, "body": body })
        }
    }
}

fn short(value: &Value) -> String {
    let text = value.to_string();
    if text.chars().count() > 400 {
        format!("{}…", text.chars().take(400).collect::<String>())
    } else {
        text
    }
}

/// Every probe of the table, for B, with A's reference and with the never-used ones.
async fn other_tenants_references_answer_like_unused_ones(backend: Backend) {
    let dir = std::env::temp_dir().join(format!("lbleak-{}", uuid::Uuid::new_v4().simple()));
    let app = TestApp::spawn_with(backend, |c: &mut Config| {
        c.exports.dir = dir.clone();
        c.exports.poll_interval = Duration::from_millis(100);
        // A bundle of a run the tenant does not have fails at once, not after retries.
        c.exports.retry.max_attempts = 1;
    })
    .await;
    let keys_a = Keys::new(&app, "alpha").await;
    let keys_b = Keys::new(&app, "beta").await;
    let a = seed(&app, "alpha", "a", &keys_a).await;
    let b = seed(&app, "beta", "b", &keys_b).await;

    let mut failures = Vec::new();
    let table = probes();
    for (n, probe) in table.iter().enumerate() {
        let reference = a
            .get(probe.subject)
            .unwrap_or_else(|| panic!("{}: no seeded value {}", probe.label, probe.subject));
        let alternatives = alternatives(probe.subject, reference, &b, n);
        let answer = present(&app, &keys_b, probe, reference, &b).await;
        let seen = normalize(&answer, reference);
        let mut unused_answers = Vec::new();
        for alternative in &alternatives {
            let other = present(&app, &keys_b, probe, alternative, &b).await;
            unused_answers.push((normalize(&other, alternative), other));
        }
        let mut problems = Vec::new();
        if !unused_answers.iter().any(|(n, _)| *n == seen) {
            problems.push("differs from the never-used reference's".to_owned());
        }
        if probe.subject.starts_with("cursor.") {
            // A subscription's request error comes as an `error` message (a list of errors),
            // a resolver's as a `next` message carrying `errors`.
            let errors = match probe.via {
                Via::Ws(_) if answer["type"] == "error" => &answer["payload"],
                Via::Ws(_) => &answer["payload"]["errors"],
                _ => &answer["errors"],
            };
            let code = errors[0]["extensions"]["code"].clone();
            if code != "BAD_CURSOR" {
                problems.push(format!("is not BAD_CURSOR (code {code})"));
            }
        }
        if !problems.is_empty() {
            let unused: Vec<String> = unused_answers.iter().map(|(_, raw)| short(raw)).collect();
            failures.push(format!(
                "[{}] {} ({}): B's answer for A's {} {}\n      A's ref:  {}\n      unused:   {}",
                probe.label,
                probe.covers.join(", "),
                probe.role.as_str(),
                probe.subject,
                problems.join(" and "),
                short(&answer),
                unused.join("\n            | ")
            ));
        }
    }
    // Controls: each probe must be able to see the difference for the owner, else it proves
    // nothing. Run after B's probes, which never change what A's own references answer.
    let mut blind = Vec::new();
    let mut uncontrolled = Vec::new();
    for (n, probe) in table.iter().enumerate() {
        if let Control::Blind(why) = probe.control {
            uncontrolled.push(format!("[{}] {why}", probe.label));
            continue;
        }
        let reference = &a[probe.subject];
        let own = normalize(
            &present(&app, &keys_a, probe, reference, &a).await,
            reference,
        );
        let mut same = false;
        for alternative in alternatives(probe.subject, reference, &a, n + 1000) {
            let unused = present(&app, &keys_a, probe, &alternative, &a).await;
            same |= normalize(&unused, &alternative) == own;
        }
        if same {
            blind.push(format!(
                "[{}] {}: {}",
                probe.label,
                probe.subject,
                short(&own)
            ));
        }
    }
    app.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        failures.is_empty() && blind.is_empty(),
        "{} of {} probes leak:\n  {}\n{} probes cannot tell (A's own reference answers A like an unused one):\n  {}\n(without an owner control by design: {})",
        failures.len(),
        table.len(),
        failures.join("\n  "),
        blind.len(),
        blind.join("\n  "),
        uncontrolled.join("; ")
    );
}

/// The fields and routes of `schema.graphql` that must each be probed or listed as taking no
/// reference: every Query, Mutation and Subscription field, and the argument-taking fields of
/// `CostQuery`, `Ledger` and `Trace`.
fn schema_fields() -> BTreeSet<String> {
    let sdl =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/schema.graphql")).unwrap();
    let document = async_graphql::parser::parse_schema(&sdl).unwrap();
    let mut fields = BTreeSet::new();
    for definition in &document.definitions {
        let TypeSystemDefinition::Type(ty) = definition else {
            continue;
        };
        let name = ty.node.name.node.as_str();
        let TypeKind::Object(object) = &ty.node.kind else {
            continue;
        };
        let roots = ["Query", "Mutation", "Subscription"];
        let nested = ["CostQuery", "Ledger", "Trace"];
        for field in &object.fields {
            let field = &field.node;
            if roots.contains(&name) || (nested.contains(&name) && !field.arguments.is_empty()) {
                fields.insert(format!("{name}.{}", field.name.node));
            }
        }
    }
    fields
}

async fn every_field_is_probed(_backend: Backend) {
    let fields = schema_fields();
    assert!(
        fields.contains("Query.node") && fields.contains("Mutation.startTrace"),
        "schema.graphql did not parse as expected: {fields:?}"
    );
    let mut listed: BTreeSet<String> = NO_REFERENCE.iter().map(|(f, _)| (*f).to_owned()).collect();
    for probe in probes() {
        listed.extend(probe.covers.iter().map(|c| (*c).to_owned()));
    }
    let forgotten: Vec<&String> = fields.difference(&listed).collect();
    let stale: Vec<&String> = listed
        .iter()
        .filter(|f| !f.starts_with("GET ") && !fields.contains(*f))
        .collect();
    assert!(
        forgotten.is_empty(),
        "schema fields neither probed in tenant_leak::probes() nor listed in NO_REFERENCE: {forgotten:?}"
    );
    assert!(
        stale.is_empty(),
        "listed but not in schema.graphql: {stale:?}"
    );
    // The export routes are probed too.
    for route in [
        "GET /exports/{id}/download",
        "GET /exports/{id}/manifest",
        "GET /exports/{id}/ledger",
    ] {
        assert!(listed.contains(route), "{route} is not probed");
    }
}

// ---------------------------------------------------------------------------------------------
// INGEST keys write; they do not read.

/// A mutation an INGEST key may call, selecting stored content it did not write in this call.
struct ReadThrough {
    label: &'static str,
    query: &'static str,
    variables: fn() -> Value,
}

const READ_THROUGH: &[ReadThrough] = &[
    ReadThrough {
        label: "startTrace(existing traceId) { plan metadata steps { params outcomeData } }",
        query: "mutation { startTrace(input: {traceId: \"r-t\"}) { traceId plan metadata steps { nodes { params outcomeData } } } }",
        variables: || json!({}),
    },
    ReadThrough {
        label: "reportMismatch { trace { plan } }",
        query: "mutation { reportMismatch(input: {traceId: \"r-t\", reason: \"output_mismatch\"}) { reason trace { plan } } }",
        variables: || json!({}),
    },
    ReadThrough {
        label: "bulkReportMismatches { trace { plan } }",
        query: "mutation { bulkReportMismatches(inputs: [{traceId: \"r-t\", reason: \"output_mismatch\"}]) { reason trace { plan } } }",
        variables: || json!({}),
    },
    ReadThrough {
        label: "recordSteps { trace { plan metadata steps { params outcomeData } } }",
        query: "mutation($s: [TraceStepInput!]!) { recordSteps(traceId: \"r-t\", steps: $s) { insertedCount trace { plan metadata steps { nodes { params outcomeData } } } } }",
        variables: || json!({ "s": [step_input(5, "NEW")] }),
    },
    ReadThrough {
        label: "recordLlmRun { trace { plan } }",
        query: "mutation { recordLlmRun(input: {runId: \"r-run-2\", traceId: \"r-t\", model: \"gpt-4o\", executionStatus: SUCCEEDED, startedAt: \"2026-01-01T00:00:00Z\"}) { runId trace { plan steps { nodes { params } } } } }",
        variables: || json!({}),
    },
    ReadThrough {
        label: "completeTrace { plan steps { params outcomeData } }",
        query: "mutation { completeTrace(traceId: \"r-t\", status: COMPLETED) { status plan steps { nodes { params outcomeData } } } }",
        variables: || json!({}),
    },
];

/// The stored content the reader must not see (the writer's plan, step params and outcomes).
const SECRETS: &[&str] = &["PLAN-SECRET", "PARAMS-SECRET", "OUTCOME-SECRET"];

async fn ingest_keys_cannot_read_through_mutations(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let writer = app.key("acme", Role::Ingest).await;
    let reader = app.key("acme", Role::Ingest).await;
    let viewer = app.key("acme", Role::Viewer).await;
    app.data(
        &writer,
        "mutation { startTrace(input: {traceId: \"r-t\", runId: \"r-run\", plan: [{skill: \"PLAN-SECRET\"}]}) { traceId } }",
        json!({}),
    )
    .await;
    app.data(
        &writer,
        "mutation($s: [TraceStepInput!]!) { recordSteps(traceId: \"r-t\", steps: $s) { insertedCount } }",
        json!({ "s": [step_input(0, "SECRET"), step_input(1, "SECRET")] }),
    )
    .await;
    // Control: the content is stored and readable with read permission, so a leak would show.
    let stored = app
        .data(
            &viewer,
            "{ trace(traceId: \"r-t\") { plan steps { nodes { params outcomeData } } } }",
            json!({}),
        )
        .await
        .to_string();
    for secret in SECRETS {
        assert!(stored.contains(secret), "{secret} not stored: {stored}");
    }

    let mut failures = Vec::new();
    for probe in READ_THROUGH {
        let body = app
            .gql(Some(&reader), probe.query, (probe.variables)())
            .await;
        let text = body.to_string();
        let leaked: Vec<&str> = SECRETS
            .iter()
            .copied()
            .filter(|s| text.contains(s))
            .collect();
        let forbidden = body["errors"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|e| e["extensions"]["code"] == "FORBIDDEN");
        if !leaked.is_empty() || !forbidden {
            failures.push(format!(
                "{}: leaked {leaked:?}, FORBIDDEN error: {forbidden}\n      {}",
                probe.label,
                short(&body)
            ));
        }
    }
    app.stop().await;
    assert!(
        failures.is_empty(),
        "{} of {} INGEST mutations read stored content:\n  {}",
        failures.len(),
        READ_THROUGH.len(),
        failures.join("\n  ")
    );
}

/// The fields of `NO_REFERENCE`, as a platform key presents them: each must be refused.
const PLATFORM_NO_REFERENCE: &[(&str, &str)] = &[
    ("Query.viewer", "{ viewer { tenantId role } }"),
    (
        "Mutation.createApiKey",
        "mutation { createApiKey(role: VIEWER) { key } }",
    ),
    (
        "Query.panel",
        r#"{ panel(input: {panelId: "p", slots: [{slotId: "s", slotContractId: "c", outputSignals: {a: 1}}]}) { isConsistent } }"#,
    ),
    ("Query.cost", "{ cost { summary { totalCostCents } } }"),
    ("Query.ledger", "{ ledger { publicKey } }"),
    (
        "CostQuery.summary",
        "{ cost { summary(period: TODAY) { totalCostCents } } }",
    ),
    (
        "CostQuery.byFeature",
        "{ cost { byFeature(period: TODAY) { featureTag } } }",
    ),
    (
        "CostQuery.byUser",
        "{ cost { byUser(period: TODAY) { userId } } }",
    ),
    (
        "CostQuery.byModel",
        "{ cost { byModel(period: TODAY) { model } } }",
    ),
    (
        "CostQuery.series",
        "{ cost { series(period: TODAY) { totalCostCents } } }",
    ),
    (
        "CostQuery.projection",
        "{ cost { projection { projectedTotalCents } } }",
    ),
    (
        "Ledger.checkpoint",
        r#"{ ledger { checkpoint(treeSize: "1") { rootHash } } }"#,
    ),
    (
        "Ledger.consistencyProof",
        r#"{ ledger { consistencyProof(fromSize: "1") { path } } }"#,
    ),
    (
        "Query.recoveryConfidence",
        "{ recoveryConfidence(strongMatch: true, occurrences: 2) { band } }",
    ),
    (
        "Mutation.detectCostAnomalies",
        "mutation { detectCostAnomalies(escalate: false) { day } }",
    ),
];

/// Whether `answer` (of any `Via`) is a refusal: a `FORBIDDEN` error (or HTTP 403) and no
/// data (at most fields that are null).
fn refused(answer: &Value) -> bool {
    let forbidden =
        answer["status"] == 403 || answer.to_string().contains("\"code\":\"FORBIDDEN\"");
    let no_data = ["/data", "/created/data", "/payload/data"]
        .iter()
        .all(|at| match answer.pointer(at) {
            None | Some(Value::Null) => true,
            Some(Value::Object(fields)) => fields.values().all(Value::is_null),
            Some(_) => false,
        });
    forbidden && no_data
}

/// A platform key may write system-wide system records and nothing else: every probe of the
/// table (every Query, Mutation and Subscription field and export route that takes a
/// reference, with tenant A's references) and every `NO_REFERENCE` field is `FORBIDDEN` for it,
/// but `recordSystemRecord`, which writes a system-wide record (and, given A's idempotency key,
/// neither replays nor conflicts with A's write).
async fn platform_keys_may_only_write_system_wide_records(backend: Backend) {
    let dir = std::env::temp_dir().join(format!("lbplat-{}", uuid::Uuid::new_v4().simple()));
    let app = TestApp::spawn_with(backend, |c: &mut Config| {
        c.exports.dir = dir.clone();
        c.exports.poll_interval = Duration::from_millis(100);
        c.exports.retry.max_attempts = 1;
    })
    .await;
    let keys_a = Keys::new(&app, "alpha").await;
    let a = seed(&app, "alpha", "a", &keys_a).await;
    let (platform, _) = logbook::auth::keys::create_platform(
        app.db(),
        &logbook::auth::keys::NewPlatformKey::default(),
    )
    .await
    .expect("platform key");
    // Presented through every role's slot of the table.
    let as_platform = Keys {
        viewer: platform.clone(),
        operator: platform.clone(),
        ingest: platform.clone(),
        admin: platform.clone(),
    };
    let mut failures = Vec::new();
    let mut covered = BTreeSet::new();
    for probe in probes() {
        let reference = &a[probe.subject];
        let answer = present(&app, &as_platform, &probe, reference, &a).await;
        covered.extend(probe.covers.iter().copied());
        if probe.covers == ["Mutation.recordSystemRecord"] {
            let written = &answer["data"]["recordSystemRecord"];
            if answer.get("errors").is_some() || !written["tenantId"].is_null() {
                failures.push(format!(
                    "[{}] does not write a system-wide record: {}",
                    probe.label,
                    short(&answer)
                ));
            }
        } else if !refused(&answer) {
            failures.push(format!(
                "[{}] not FORBIDDEN: {}",
                probe.label,
                short(&answer)
            ));
        }
    }
    for (field, document) in PLATFORM_NO_REFERENCE {
        let answer = app.gql(Some(&platform), document, json!({})).await;
        covered.insert(*field);
        if !refused(&answer) {
            failures.push(format!("[{field}] not FORBIDDEN: {}", short(&answer)));
        }
    }
    // Nothing of the schema escaped the table or the list above.
    let missed: Vec<String> = schema_fields()
        .into_iter()
        .filter(|f| !covered.contains(f.as_str()))
        .collect();
    app.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        missed.is_empty(),
        "not presented with a platform key: {missed:?}"
    );
    assert!(
        failures.is_empty(),
        "a platform key got through:\n  {}",
        failures.join("\n  ")
    );
}

crate::cases!(
    every_field_is_probed,
    other_tenants_references_answer_like_unused_ones,
    platform_keys_may_only_write_system_wide_records,
    ingest_keys_cannot_read_through_mutations,
);
