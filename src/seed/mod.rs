//! `logbook seed`: deterministic synthetic data for every table Logbook serves.
//!
//! Two profiles: `Demo` (one tenant, a few hundred rows, every table non-empty) and `Bench` (the
//! benchmark data set of BENCHMARKS.md: 50 Zipf-skewed tenants, 1 M LLM runs and proportional
//! traces, steps, audit entries, system and cost records). Everything derives from the seed and the
//! anchor ("now" of the data set): ids come from keyed ChaCha8 streams, timestamps from a time
//! model over the 90 days before the anchor, so the same options produce byte-identical rows.
//!
//! Layout: `synth` (randomness, ids, time model), `writer` (batched COPY / INSERT), and one
//! generator per domain: `runs` (LLM runs, traces, steps, mismatches, incidents, evidence via
//! `traces` and `evidence`), `audit` (hash-chained ledger, chain heads, policy activations),
//! `system` (system records, log exports) and `cost` (cost records and the cost intelligence
//! tables). Generators stream rows on blocking threads; a few async writers insert them.

mod audit;
mod cost;
mod evidence;
mod runs;
mod synth;
mod system;
mod traces;
mod writer;

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use rand::Rng;
use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, Statement, Value};
use tokio::sync::Mutex;
use tokio::task::JoinHandle;

use crate::error::{AppError, AppResult};
use synth::{Keys, Stream, TimeModel};
use writer::{Mode, Sink, TableDef, Writer};

/// Which data set to generate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Profile {
    /// One tenant `demo`, 200 runs, every table non-empty.
    Demo,
    /// BENCHMARKS.md: 50 tenants, 1 000 000 runs and proportional counts.
    Bench,
}

#[derive(Debug, Clone)]
pub struct SeedOptions {
    pub profile: Profile,
    /// Overrides the profile's tenant count.
    pub tenants: Option<usize>,
    /// Overrides the profile's run count; the other tables scale with it.
    pub runs: Option<u64>,
    /// RNG seed: the same options produce the same data.
    pub seed: u64,
    /// "Now" of the data set (every timestamp is before it); default: today 00:00 UTC.
    pub anchor: Option<DateTime<Utc>>,
    /// Progress bars on stderr.
    pub progress: bool,
}

#[derive(Debug, Clone)]
pub struct SeedReport {
    /// The seeded tenant ids, hottest first.
    pub tenants: Vec<String>,
    /// Rows written per table.
    pub rows: Vec<(&'static str, u64)>,
    pub elapsed: Duration,
}

/// Per-profile rates of the rarer things.
#[derive(Debug, Clone)]
pub(crate) struct Knobs {
    /// Share of traced runs that carry evidence rows.
    pub evidence_rate: f64,
    /// Share of evidenced runs with evidence capture failures.
    pub capture_failure_rate: f64,
    /// Share of unsuccessful runs that open an incident.
    pub incident_rate: f64,
    /// Share of finished traces with a replay mismatch report.
    pub mismatch_rate: f64,
    /// Share of traces still running (besides each tenant's newest traced run).
    pub running_rate: f64,
    /// Demo: force at least one of each rare row per tenant.
    pub force_rare: bool,
}

/// Names, ids and catalogues fixed per tenant.
#[derive(Debug, Clone)]
pub(crate) struct TenantPlan {
    pub index: usize,
    pub id: String,
    pub name: String,
    pub tier: &'static str,
    /// LLM runs of this tenant; global run indexes are `run_offset .. run_offset + runs`.
    pub runs: u64,
    pub run_offset: u64,
    pub audit: u64,
    pub system: u64,
    pub cost: u64,
    pub exports: u64,
    /// Agents that run in this tenant.
    pub agents: Vec<&'static str>,
    /// User ids (most active first).
    pub users: Vec<String>,
    /// Policies active from the start of the window: (id, name).
    pub policies: Vec<(String, &'static str)>,
    /// Limits defined from the start of the window: (id, kind, value).
    pub limits: Vec<(String, &'static str, i64)>,
    /// Feature tags in use (indexes into `cost::FEATURES`).
    pub features: Vec<usize>,
}

impl TenantPlan {
    /// Global index of the tenant's run `k`.
    pub fn global(&self, k: u64) -> u64 {
        self.run_offset + k
    }
}

/// Everything the generators share.
#[derive(Debug)]
pub(crate) struct Plan {
    pub keys: Keys,
    pub time: TimeModel,
    pub anchor: DateTime<Utc>,
    pub tenants: Vec<TenantPlan>,
    pub system_wide: u64,
    pub knobs: Knobs,
}

/// Traced runs are those whose global index is a multiple of this (one run in five).
pub(crate) const TRACE_EVERY: u64 = 5;

const ZIPF_EXPONENT: f64 = 0.88;
const TIERS: [&str; 5] = ["GOVERN", "PREVENT", "ASSIST", "REACT", "OBSERVE"];

impl Plan {
    fn new(options: &SeedOptions) -> AppResult<Plan> {
        let (default_tenants, default_runs) = match options.profile {
            Profile::Demo => (1, 200),
            Profile::Bench => (50, 1_000_000),
        };
        let n_tenants = options.tenants.unwrap_or(default_tenants);
        let total_runs = options.runs.unwrap_or(default_runs);
        if n_tenants == 0 || n_tenants > 10_000 {
            return Err(AppError::bad_input("tenants", "seed 1 to 10 000 tenants"));
        }
        if total_runs < n_tenants as u64 {
            return Err(AppError::bad_input(
                "runs",
                "seed at least one run per tenant",
            ));
        }
        if total_runs > 100_000_000 {
            return Err(AppError::bad_input("runs", "seed at most 100 000 000 runs"));
        }
        let anchor = crate::scalars::truncate_to_micros(
            options
                .anchor
                .unwrap_or_else(|| synth::midnight(Utc::now())),
        );
        let keys = Keys::new(options.seed);
        let time = TimeModel::new(anchor);
        let demo = options.profile == Profile::Demo;

        let weights = synth::zipf_weights(n_tenants, ZIPF_EXPONENT);
        // Every tenant gets at least one run; the rest follows the weights.
        let runs: Vec<u64> = synth::apportion(total_runs - n_tenants as u64, &weights)
            .into_iter()
            .map(|r| r + 1)
            .collect();
        let audit = synth::apportion(total_runs / 2, &weights);
        let system_total = total_runs / 5;
        let system_wide = system_total / 10;
        let system = synth::apportion(system_total - system_wide, &weights);
        let cost = synth::apportion(total_runs, &weights);

        let width = (n_tenants.saturating_sub(1)).to_string().len().max(3);
        let mut tenants = Vec::with_capacity(n_tenants);
        let mut offset = 0;
        for t in 0..n_tenants {
            let (id, name) = match (demo, t) {
                (true, 0) => ("demo".to_owned(), "Demo".to_owned()),
                (true, _) => (format!("demo-{t:0width$}"), format!("Demo {t:0width$}")),
                (false, _) => (format!("tenant-{t:0width$}"), format!("Tenant {t:0width$}")),
            };
            let tier = if demo || t < 5 {
                "GOVERN"
            } else {
                TIERS[t % TIERS.len()]
            };
            let mut plan = TenantPlan {
                index: t,
                id,
                name,
                tier,
                runs: runs[t],
                run_offset: offset,
                audit: if demo { audit[t].max(36) } else { audit[t] },
                system: if demo { system[t].max(12) } else { system[t] },
                cost: if demo { cost[t].max(2_000) } else { cost[t] },
                exports: if demo {
                    4
                } else {
                    (runs[t] / 2_000).clamp(2, 200)
                },
                agents: Vec::new(),
                users: Vec::new(),
                policies: Vec::new(),
                limits: Vec::new(),
                features: Vec::new(),
            };
            catalogue(&keys, &mut plan);
            offset += runs[t];
            tenants.push(plan);
        }
        let knobs = if demo {
            Knobs {
                evidence_rate: 0.5,
                capture_failure_rate: 0.3,
                incident_rate: 0.6,
                mismatch_rate: 0.15,
                running_rate: 0.03,
                force_rare: true,
            }
        } else {
            Knobs {
                evidence_rate: 0.10,
                capture_failure_rate: 0.15,
                incident_rate: 0.25,
                mismatch_rate: 0.01,
                running_rate: 0.002,
                force_rare: false,
            }
        };
        Ok(Plan {
            keys,
            time,
            anchor,
            tenants,
            system_wide: if demo {
                system_wide.max(6)
            } else {
                system_wide
            },
            knobs,
        })
    }
}

const AGENTS: [&str; 12] = [
    "support-triage",
    "invoice-extractor",
    "code-reviewer",
    "lead-scorer",
    "doc-summarizer",
    "incident-digest",
    "kb-answerer",
    "contract-analyzer",
    "data-cleaner",
    "email-drafter",
    "churn-predictor",
    "sql-assistant",
];

const POLICY_NAMES: [&str; 12] = [
    "Block PII in outbound email",
    "Cap daily spend per agent",
    "Require approval for refunds over $500",
    "Deny shell access outside sandbox",
    "Redact secrets from tool output",
    "Rate limit external HTTP calls",
    "Forbid production database writes",
    "Escalate legal-sensitive replies",
    "Restrict models to approved list",
    "Limit tokens per run",
    "Quarantine unverified attachments",
    "Require citations for KB answers",
];

const LIMIT_KINDS: [(&str, i64); 6] = [
    ("cost_daily_cents", 50_000),
    ("cost_monthly_cents", 1_200_000),
    ("tokens_per_run", 200_000),
    ("runs_per_minute", 120),
    ("http_calls_per_run", 40),
    ("retries_per_step", 3),
];

/// Fills the tenant's fixed catalogues (agents, users, standing policies and limits, features).
fn catalogue(keys: &Keys, t: &mut TenantPlan) {
    let mut rng = keys.rng(Stream::Tenant, t.index as u64);
    let n_agents = rng.random_range(4..=8);
    let start = rng.random_range(0..AGENTS.len());
    t.agents = (0..n_agents)
        .map(|i| AGENTS[(start + i * 5) % AGENTS.len()])
        .collect();
    t.agents.sort_unstable();
    t.agents.dedup();
    let n_users = rng.random_range(6..=30);
    t.users = (0..n_users)
        .map(|_| format!("user_{}", synth::hex_id(&mut rng, 6)))
        .collect();
    t.policies = POLICY_NAMES
        .iter()
        .map(|name| (format!("pol_{}", synth::hex_id(&mut rng, 8)), *name))
        .collect();
    t.limits = LIMIT_KINDS
        .iter()
        .map(|(kind, value)| (format!("lim_{}", synth::hex_id(&mut rng, 8)), *kind, *value))
        .collect();
    let n_features = rng.random_range(6..=cost::FEATURES.len());
    let first = rng.random_range(0..cost::FEATURES.len());
    t.features = (0..n_features)
        .map(|i| (first + i) % cost::FEATURES.len())
        .collect();
    t.features.sort_unstable();
}

/// The tables in report order.
const TABLE_ORDER: [&str; 28] = [
    "tenants",
    "llm_run_records",
    "aos_traces",
    "aos_trace_steps",
    "aos_trace_mismatches",
    "incidents",
    "audit_ledger",
    "audit_chain_heads",
    "policy_activation_audit",
    "system_records",
    "log_exports",
    "feature_tags",
    "cost_records",
    "cost_daily_aggregates",
    "cost_budgets",
    "cost_snapshots",
    "cost_snapshot_aggregates",
    "cost_snapshot_baselines",
    "cost_anomaly_evaluations",
    "cost_anomalies",
    "cost_breach_history",
    "cost_drift_tracking",
    "environment_evidence",
    "activity_evidence",
    "provider_evidence",
    "policy_decisions",
    "integrity_evidence",
    "evidence_capture_failures",
];

/// Progress bars: one per large table, one shared by the small ones.
struct Progress {
    multi: Option<MultiProgress>,
    big: Vec<(&'static str, ProgressBar)>,
    other: ProgressBar,
}

impl Progress {
    fn new(enabled: bool, plan: &Plan) -> Progress {
        if !enabled {
            return Progress {
                multi: None,
                big: Vec::new(),
                other: ProgressBar::hidden(),
            };
        }
        let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stderr());
        let style = ProgressStyle::with_template(
            "{prefix:>24} [{bar:32}] {human_pos:>9}/{human_len:<9} {elapsed:>4} (eta {eta})",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ");
        let runs: u64 = plan.tenants.iter().map(|t| t.runs).sum();
        let traces = runs.div_ceil(TRACE_EVERY);
        let sum = |f: fn(&TenantPlan) -> u64| plan.tenants.iter().map(f).sum::<u64>();
        let expected: [(&'static str, u64); 6] = [
            ("llm_run_records", runs),
            ("aos_traces", traces),
            ("aos_trace_steps", traces * 10),
            ("audit_ledger", sum(|t| t.audit)),
            ("system_records", sum(|t| t.system) + plan.system_wide),
            ("cost_records", sum(|t| t.cost)),
        ];
        let big = expected
            .iter()
            .map(|(name, len)| {
                let bar = multi.add(ProgressBar::new(*len));
                bar.set_style(style.clone());
                bar.set_prefix(*name);
                (*name, bar)
            })
            .collect();
        let other_style =
            ProgressStyle::with_template("{prefix:>24} {human_pos:>9} rows {elapsed:>4}")
                .unwrap_or_else(|_| ProgressStyle::default_spinner());
        let other = multi.add(ProgressBar::new_spinner());
        other.set_style(other_style);
        other.set_prefix("other tables");
        Progress {
            multi: Some(multi),
            big,
            other,
        }
    }

    fn bar(&self, table: &str) -> ProgressBar {
        self.big
            .iter()
            .find(|(name, _)| *name == table)
            .map_or_else(|| self.other.clone(), |(_, bar)| bar.clone())
    }

    fn bars(&self, tables: &[&TableDef]) -> Vec<ProgressBar> {
        tables.iter().map(|t| self.bar(t.name)).collect()
    }

    fn finish(&self) {
        for (_, bar) in &self.big {
            bar.finish();
        }
        self.other.finish();
        if let Some(multi) = &self.multi {
            let _ = multi.clear();
        }
    }
}

/// Rows written per table.
type RowCounts = Vec<(&'static str, u64)>;

/// Sets up writers and spawns them; returns the generator-side sinks.
struct Writers {
    db: DatabaseConnection,
    mode: Mode,
    gate: Arc<Mutex<()>>,
    handles: Vec<JoinHandle<AppResult<RowCounts>>>,
}

impl Writers {
    fn open(&mut self, tables: &'static [&'static TableDef], progress: &Progress) -> Sink {
        let (sink, writer): (Sink, Writer) = writer::channel(
            &self.db,
            tables,
            self.mode,
            self.gate.clone(),
            progress.bars(tables),
        );
        self.handles.push(tokio::spawn(writer.run()));
        sink
    }
}

/// Generates the data set described by `options` into `db` (migrated, and without data for the
/// seeded tenants; system-wide rows are added alongside any that exist).
pub async fn run(db: &DatabaseConnection, options: &SeedOptions) -> AppResult<SeedReport> {
    let started = Instant::now();
    let plan = Arc::new(Plan::new(options)?);
    let backend = db.get_database_backend();
    let mode = match backend {
        DbBackend::Postgres => Mode::Copy,
        _ => Mode::Insert,
    };
    ensure_empty(db, &plan).await?;
    let tenant_rows = insert_tenants(db, &plan).await?;

    let progress = Progress::new(options.progress, &plan);
    let mut writers = Writers {
        db: db.clone(),
        mode,
        gate: Arc::new(Mutex::new(())),
        handles: Vec::new(),
    };
    let threads = match mode {
        Mode::Copy => std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(2)
            .clamp(1, 4),
        Mode::Insert => 1,
    };

    let mut generators: Vec<JoinHandle<AppResult<()>>> = Vec::new();
    // LLM runs, traces and steps, and what hangs off runs.
    let run_sinks = runs::RunSinks {
        runs: writers.open(&runs::RUN_TABLES, &progress),
        traces: writers.open(&traces::TRACE_TABLES, &progress),
        extras: writers.open(&runs::EXTRA_TABLES, &progress),
    };
    for tenants in split_tenants(&plan, threads) {
        let plan = plan.clone();
        let sinks = run_sinks.fork();
        generators.push(tokio::task::spawn_blocking(move || {
            runs::generate(&plan, &tenants, sinks)
        }));
    }
    // The forks carry the data; the original handles only keep the channels open.
    drop(run_sinks);

    // Audit ledger (one chain per tenant), chain heads, policy activations.
    let audit_sink = writers.open(&audit::TABLES, &progress);
    {
        let plan = plan.clone();
        generators.push(tokio::task::spawn_blocking(move || {
            audit::generate(&plan, audit_sink)
        }));
    }
    // System records and log exports.
    let system_sink = writers.open(&system::TABLES, &progress);
    {
        let plan = plan.clone();
        generators.push(tokio::task::spawn_blocking(move || {
            system::generate(&plan, system_sink)
        }));
    }
    // Cost records and the cost intelligence tables.
    let cost_sinks = cost::CostSinks {
        records: writers.open(&cost::RECORD_TABLES, &progress),
        extras: writers.open(&cost::EXTRA_TABLES, &progress),
    };
    {
        let plan = plan.clone();
        generators.push(tokio::task::spawn_blocking(move || {
            cost::generate(&plan, cost_sinks)
        }));
    }

    let mut generator_error = None;
    for handle in generators {
        match handle.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                generator_error.get_or_insert(e);
            }
            Err(e) => {
                generator_error.get_or_insert(AppError::internal(format!("seed generator: {e}")));
            }
        }
    }
    let mut writer_error = None;
    let mut counts: Vec<(&'static str, u64)> = vec![("tenants", tenant_rows)];
    for handle in writers.handles {
        match handle.await {
            Ok(Ok(rows)) => counts.extend(rows),
            Ok(Err(e)) => {
                writer_error.get_or_insert(e);
            }
            Err(e) => {
                writer_error.get_or_insert(AppError::internal(format!("seed writer: {e}")));
            }
        }
    }
    progress.finish();
    if let Some(e) = writer_error.or(generator_error) {
        return Err(e);
    }

    if backend == DbBackend::Postgres {
        // Fold the per-statement deltas the bulk load left, as a server does every minute.
        crate::runs::rollups::compact(db).await?;
        for table in TABLE_ORDER {
            db.execute_unprepared(&format!("ANALYZE {table}")).await?;
        }
    }

    let rows = TABLE_ORDER
        .iter()
        .map(|name| {
            let n = counts
                .iter()
                .filter(|(t, _)| t == name)
                .map(|(_, n)| n)
                .sum();
            (*name, n)
        })
        .collect();
    Ok(SeedReport {
        tenants: plan.tenants.iter().map(|t| t.id.clone()).collect(),
        rows,
        elapsed: started.elapsed(),
    })
}

/// Splits the tenants into `parts` lists of about equal run counts (greedy, heaviest first).
fn split_tenants(plan: &Plan, parts: usize) -> Vec<Vec<usize>> {
    let parts = parts.max(1);
    let mut lists = vec![Vec::new(); parts];
    let mut loads = vec![0u64; parts];
    for t in &plan.tenants {
        let (i, _) = loads
            .iter()
            .enumerate()
            .min_by_key(|(i, load)| (**load, *i))
            .unwrap_or((0, &0));
        lists[i].push(t.index);
        loads[i] += t.runs;
    }
    lists.retain(|l| !l.is_empty());
    lists
}

/// Refuses to seed tenants that already have data (the data set is generated, not merged).
async fn ensure_empty(db: &DatabaseConnection, plan: &Plan) -> AppResult<()> {
    let backend = db.get_database_backend();
    for table in [
        "llm_run_records",
        "audit_ledger",
        "cost_records",
        "aos_traces",
    ] {
        for chunk in plan.tenants.chunks(500) {
            let placeholders: Vec<String> = (1..=chunk.len())
                .map(|n| match backend {
                    DbBackend::Postgres => format!("${n}"),
                    _ => "?".to_owned(),
                })
                .collect();
            let sql = format!(
                "SELECT tenant_id FROM {table} WHERE tenant_id IN ({}) LIMIT 1",
                placeholders.join(", ")
            );
            let values: Vec<Value> = chunk.iter().map(|t| synth::s(t.id.clone())).collect();
            let found = db
                .query_one_raw(Statement::from_sql_and_values(backend, sql, values))
                .await?;
            if let Some(row) = found {
                let tenant: String = row.try_get("", "tenant_id")?;
                return Err(AppError::bad_input(
                    "tenants",
                    format!(
                        "tenant {tenant} already has rows in {table}; seed into an empty database"
                    ),
                ));
            }
        }
    }
    Ok(())
}

/// Creates the tenants (kept if they already exist, e.g. from `keys create`).
async fn insert_tenants(db: &DatabaseConnection, plan: &Plan) -> AppResult<u64> {
    let backend = db.get_database_backend();
    let created_at = plan.time.start - chrono::Duration::days(1);
    let mut written = 0;
    for chunk in plan.tenants.chunks(1_000) {
        let def = TableDef {
            name: "tenants",
            columns: &["id", "name", "tier", "created_at"],
        };
        let mut sql = writer_insert_sql(backend, &def, chunk.len());
        sql.push_str(" ON CONFLICT (id) DO NOTHING");
        let values: Vec<Value> = chunk
            .iter()
            .flat_map(|t| {
                [
                    synth::s(t.id.clone()),
                    synth::s(t.name.clone()),
                    synth::s(t.tier),
                    synth::ts(created_at),
                ]
            })
            .collect();
        written += db
            .execute_raw(Statement::from_sql_and_values(backend, sql, values))
            .await?
            .rows_affected();
    }
    Ok(written)
}

fn writer_insert_sql(backend: DbBackend, def: &TableDef, rows: usize) -> String {
    writer::insert_sql(backend, def, rows)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    async fn seed_demo(path: &std::path::Path) -> AppResult<(DatabaseConnection, SeedReport)> {
        let url = format!("sqlite://{}?mode=rwc", path.display());
        let db = crate::db::connect(&crate::db::DbSettings::new(url)).await?;
        crate::db::migrate(&db).await?;
        let options = SeedOptions {
            profile: Profile::Demo,
            tenants: None,
            runs: None,
            seed: 7,
            anchor: Utc.with_ymd_and_hms(2026, 11, 27, 0, 0, 0).single(),
            progress: false,
        };
        let report = run(&db, &options).await?;
        Ok((db, report))
    }

    async fn fingerprint(db: &DatabaseConnection) -> AppResult<Vec<String>> {
        let mut out = Vec::new();
        for sql in [
            "SELECT entry_hash AS v FROM audit_chain_heads",
            "SELECT group_concat(run_id || cost_cents || created_at, ',') AS v FROM \
             (SELECT * FROM llm_run_records ORDER BY id)",
            "SELECT group_concat(checksum, ',') AS v FROM (SELECT * FROM aos_traces ORDER BY id)",
            "SELECT group_concat(id || cost_cents, ',') AS v FROM (SELECT * FROM cost_records ORDER BY id)",
        ] {
            let row = db
                .query_one_raw(Statement::from_string(DbBackend::Sqlite, sql))
                .await?
                .ok_or_else(|| AppError::internal("no row"))?;
            out.push(row.try_get::<Option<String>>("", "v")?.unwrap_or_default());
        }
        Ok(out)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn demo_fills_every_table_deterministically() {
        let dir = std::env::temp_dir();
        let paths: Vec<_> = (0..2)
            .map(|n| dir.join(format!("logbook-seed-test-{}-{n}.db", std::process::id())))
            .collect();
        let mut prints = Vec::new();
        for path in &paths {
            let result = seed_demo(path).await;
            let (db, report) = match result {
                Ok(ok) => ok,
                Err(e) => panic!("seed failed: {e:?}"),
            };
            assert_eq!(report.tenants, vec!["demo".to_owned()]);
            for (table, rows) in &report.rows {
                assert!(*rows > 0, "{table} is empty");
            }
            let print = fingerprint(&db).await.map_err(|e| e.message());
            assert!(print.is_ok(), "{print:?}");
            prints.push((report.rows, print.unwrap_or_default()));
            // Seeding the same tenant again is refused.
            let again = seed_demo(path).await;
            assert!(matches!(again, Err(AppError::BadUserInput { .. })));
            db.close().await.ok();
        }
        assert_eq!(prints[0], prints[1]);
        for path in &paths {
            for suffix in ["", "-wal", "-shm"] {
                let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
            }
        }
    }
}
