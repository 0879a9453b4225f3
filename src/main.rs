//! The `logbook` command line: serve, migrate, seed, keys, print-schema.

// The schema's query root is a deep type; an optimised build computing the layout of `run`'s
// future (which reaches `Services::connect`) needs more than the default 128 levels.
#![recursion_limit = "256"]

use std::process::ExitCode;

use clap::{Args, CommandFactory, FromArgMatches, Parser, Subcommand};
use logbook::auth::{Role, TenantId};
use logbook::config::Config;
use logbook::db::DEFAULT_DATABASE_URL;
use logbook::server::{self, Services};
use logbook::state::AppState;
use logbook::tenants::store as tenant_store;

/// A page request allocates and frees thousands of small values (rows, async-graphql's `Value`
/// tree, JSON); glibc's malloc and free were ~30 % of a_newest's CPU. jemalloc takes 18 % of the
/// server's CPU per request off a_newest and f_panel for ~5 MB of resident memory (mimalloc took
/// a little more CPU off but held ~25 MB more); BENCHMARKS.md.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[derive(Parser)]
#[command(
    name = "logbook",
    version,
    about = "GraphQL server over the logs of an AI-agent platform"
)]
struct Cli {
    /// Database URL: `postgres://…` or `sqlite://file.db?mode=rwc`.
    #[arg(long, env = "DATABASE_URL", default_value = DEFAULT_DATABASE_URL, global = true)]
    database_url: String,
    /// Redis URL (optional): `redis://127.0.0.1:6379`.
    #[arg(long, env = "REDIS_URL", global = true)]
    redis_url: Option<String>,
    /// Ed25519 seed (64 hex digits or base64) that signs ledger checkpoints; default: a key
    /// generated on first start and kept in the database (warned about: whoever can write the
    /// database can then re-sign a rewritten history).
    #[arg(
        long,
        env = "LOGBOOK_LEDGER_SIGNING_KEY",
        global = true,
        hide_env_values = true
    )]
    ledger_signing_key: Option<String>,
    /// A file holding that seed (mode 600; `logbook ledger keygen --out FILE` makes one): keeps
    /// the key out of the database and out of the process environment.
    #[arg(
        long,
        env = "LOGBOOK_LEDGER_SIGNING_KEY_FILE",
        global = true,
        value_name = "PATH",
        conflicts_with = "ledger_signing_key"
    )]
    ledger_signing_key_file: Option<std::path::PathBuf>,
    /// A TOML file of settings by long flag name (`max-depth = 12`); the environment and the
    /// command line override it (README, "Configuration").
    #[arg(long, env = "LOGBOOK_CONFIG", global = true, value_name = "FILE")]
    config: Option<std::path::PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Migrate the database, then serve GraphQL over HTTP.
    Serve(ServeArgs),
    /// Print the effective configuration `serve` would run with these flags, environment and
    /// config file, as TOML, each value with its source; secrets masked.
    Config(ServeArgs),
    /// Apply pending migrations and exit.
    Migrate,
    /// Load deterministic synthetic data into every table.
    Seed(SeedArgs),
    /// Manage API keys.
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// Print the GraphQL SDL (what `schema.graphql` must equal).
    PrintSchema {
        /// The Federation v2 subgraph SDL instead (what `_service { sdl }` answers under
        /// `serve --federation`), for composing a supergraph offline.
        #[arg(long)]
        federation: bool,
    },
    /// Verify or export a tenant's audit ledger (docs/ledger.md).
    Ledger {
        #[command(subcommand)]
        command: LedgerCommand,
    },
    /// Export artefacts.
    Export {
        #[command(subcommand)]
        command: ExportCommand,
    },
    /// Trace retention.
    Traces {
        #[command(subcommand)]
        command: TracesCommand,
    },
    /// The retention job (docs/retention.md).
    Retention {
        #[command(subcommand)]
        command: RetentionCommand,
    },
}

#[derive(Subcommand)]
enum RetentionCommand {
    /// Run the retention job once: archive old traces with their steps, delete what has been
    /// archived long enough, purge expired idempotency keys, replay outputs and export
    /// artefacts; prints the counts. Skips when another process is running it.
    Run {
        #[command(flatten)]
        retention: RetentionArgs,
        /// Directory of export artefacts (the server's --export-dir).
        #[arg(long, env = "LOGBOOK_EXPORT_DIR", default_value = "exports")]
        export_dir: std::path::PathBuf,
    },
}

/// The retention job's settings, shared by `serve` and `retention run`.
#[derive(Args)]
struct RetentionArgs {
    /// Seconds between runs of the retention job in this server process (0: never; run
    /// `logbook retention run` from a scheduler instead). Ignored by `retention run`.
    #[arg(long, env = "LOGBOOK_RETENTION_INTERVAL", default_value_t = 0)]
    retention_interval: u64,
    /// Traces created more than this many days ago move to the archive, with their steps.
    #[arg(long, env = "LOGBOOK_RETENTION_ARCHIVE_DAYS", default_value_t = 90)]
    retention_archive_days: u32,
    /// Archived traces created more than this many days ago are deleted, with their steps.
    #[arg(long, env = "LOGBOOK_RETENTION_DELETE_DAYS", default_value_t = 365)]
    retention_delete_days: u32,
    /// Files of exports finished more than this many days ago are deleted.
    #[arg(long, env = "LOGBOOK_RETENTION_EXPORT_DAYS", default_value_t = 365)]
    retention_export_days: u32,
    /// Rows per retention transaction (1 to 10000).
    #[arg(long, env = "LOGBOOK_RETENTION_BATCH", default_value_t = 500)]
    retention_batch: u64,
}

impl RetentionArgs {
    fn settings(&self) -> Result<logbook::config::RetentionSettings, String> {
        let settings = logbook::config::RetentionSettings {
            interval: (self.retention_interval > 0)
                .then(|| std::time::Duration::from_secs(self.retention_interval)),
            archive_after_days: self.retention_archive_days,
            delete_after_days: self.retention_delete_days,
            export_after_days: self.retention_export_days,
            batch: self.retention_batch,
        };
        settings.check()?;
        Ok(settings)
    }
}

#[derive(Subcommand)]
enum TracesCommand {
    /// Move traces older than DAYS to aos_traces_archive, then delete them (and their steps)
    /// from the live tables, BATCH traces per transaction. Running it again is a no-op.
    Archive {
        /// Age in days (by created_at) beyond which traces move.
        #[arg(long, value_name = "DAYS")]
        older_than: u32,
        /// Only this tenant's traces (default: every tenant).
        #[arg(long)]
        tenant: Option<String>,
        /// Traces per transaction.
        #[arg(long, default_value_t = 500)]
        batch: u64,
    },
}

#[derive(Subcommand)]
enum ExportCommand {
    /// Recompute an export's digests against its manifest (FILE: the artefact, its manifest
    /// `FILE.manifest.json` beside it; or the manifest itself).
    Verify {
        file: std::path::PathBuf,
        /// The manifest, when it is not beside the artefact under its usual name.
        #[arg(long)]
        manifest: Option<std::path::PathBuf>,
        /// AUDIT exports: the trusted ledger public key (hex or base64, from
        /// `ledger { publicKey }`); also verifies the ledger file's chain and signed checkpoint
        /// and that every exported entry is in it.
        #[arg(long)]
        public_key: Option<String>,
    },
}

#[derive(Subcommand)]
enum LedgerCommand {
    /// Check every entry hash and link and the signed checkpoint: online (`--tenant`, against
    /// the database) or offline (`--file` and `--public-key`), and with `--trusted-checkpoint`
    /// that the ledger extends a checkpoint saved earlier; names the first failure.
    Verify {
        /// Tenant whose ledger to verify in the database.
        #[arg(long, conflicts_with = "file", required_unless_present = "file")]
        tenant: Option<String>,
        /// An exported ledger file (`logbook ledger export`).
        #[arg(long, requires = "public_key")]
        file: Option<std::path::PathBuf>,
        /// The trusted ed25519 public key (hex or base64), e.g. from `ledger { publicKey }`.
        #[arg(long)]
        public_key: Option<String>,
        /// A signed checkpoint saved earlier (the JSON of `ledger { checkpoint }`, or a file of
        /// the checkpoint sink): the ledger must extend it (consistency proof from its size and
        /// root), which a rewritten and re-signed history cannot. Signed by --public-key when
        /// given, else by the key it names.
        #[arg(long, value_name = "FILE")]
        trusted_checkpoint: Option<std::path::PathBuf>,
    },
    /// Write a tenant's ledger as NDJSON ending with a signed checkpoint.
    Export {
        #[arg(long)]
        tenant: String,
        #[arg(long)]
        out: std::path::PathBuf,
    },
    /// Create a new checkpoint signing key file (mode 600) for --ledger-signing-key-file;
    /// prints its public key alone on the last line.
    Keygen {
        /// The key file to create (it must not exist).
        #[arg(long, value_name = "FILE")]
        out: std::path::PathBuf,
    },
}

#[derive(Args)]
struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "LOGBOOK_BIND", default_value = "127.0.0.1:8080")]
    bind: String,
    /// HTTP worker threads (0 = one per core).
    #[arg(long, env = "LOGBOOK_WORKERS", default_value_t = 0)]
    workers: usize,
    /// Database connection pool size.
    #[arg(long, env = "LOGBOOK_DB_POOL", default_value_t = 32)]
    db_pool: u32,
    /// Turn introspection off.
    #[arg(long, env = "LOGBOOK_NO_INTROSPECTION")]
    no_introspection: bool,
    /// Complexity points each API key may spend per minute (0: unlimited).
    #[arg(long, env = "LOGBOOK_RATE_LIMIT", default_value_t = 600_000)]
    rate_limit: u64,
    /// Seed a small demo tenant on an empty database and print an API key for it.
    #[arg(long)]
    demo: bool,
    /// Directory of export artefacts and manifests (shared by every server process).
    #[arg(long, env = "LOGBOOK_EXPORT_DIR", default_value = "exports")]
    export_dir: std::path::PathBuf,
    #[command(flatten)]
    export_retry: logbook::config::ExportRetryArgs,
    /// Publish every signed ledger checkpoint to this directory too, one file per checkpoint,
    /// never overwritten (best on storage the database's administrators cannot rewrite).
    #[arg(long, env = "LOGBOOK_LEDGER_CHECKPOINT_DIR", value_name = "DIR")]
    ledger_checkpoint_dir: Option<std::path::PathBuf>,
    /// POST every signed ledger checkpoint (JSON) to this http(s) URL too.
    #[arg(long, env = "LOGBOOK_LEDGER_CHECKPOINT_URL", value_name = "URL")]
    ledger_checkpoint_url: Option<String>,
    /// POST every reported mismatch (JSON, signed with --mismatch-webhook-secret) to this
    /// http(s) URL, from a background worker that retries; the report never waits for it.
    #[arg(long, env = "LOGBOOK_MISMATCH_WEBHOOK_URL", value_name = "URL")]
    mismatch_webhook_url: Option<String>,
    /// The HMAC-SHA256 key of the webhook's `X-Logbook-Signature` (at least 16 bytes).
    #[arg(long, env = "LOGBOOK_MISMATCH_WEBHOOK_SECRET", value_name = "SECRET")]
    mismatch_webhook_secret: Option<String>,
    /// Seconds between cost anomaly sweeps (detection, with escalation of HIGH anomalies, for
    /// every tenant with recent cost; one process at a time). 0: no sweeps.
    #[arg(
        long,
        env = "LOGBOOK_COST_ANOMALY_INTERVAL",
        value_name = "SECONDS",
        default_value_t = 3600
    )]
    cost_anomaly_interval: u64,
    /// A model's price for LLM spans received over OTLP that carry no cost of their own:
    /// `MODEL=INPUT,OUTPUT` in US cents per million tokens (a name also prices the models it
    /// prefixes: `gpt-4o` prices `gpt-4o-2024-08-06`). Repeatable; the variable takes a
    /// `;`-separated list.
    #[arg(
        long = "otlp-price",
        env = "LOGBOOK_OTLP_PRICES",
        value_name = "MODEL=IN,OUT",
        value_delimiter = ';'
    )]
    otlp_prices: Vec<String>,
    /// Largest OTLP request body, in bytes, after gzip decompression (413 past it).
    #[arg(long, env = "LOGBOOK_OTLP_MAX_BODY_BYTES", default_value_t = 16 * 1024 * 1024)]
    otlp_max_body_bytes: usize,
    /// OTLP requests of one key worked on at once in this process (429 past it).
    #[arg(long, env = "LOGBOOK_OTLP_MAX_IN_FLIGHT_PER_KEY", default_value_t = 8)]
    otlp_max_in_flight_per_key: usize,
    /// OTLP requests worked on at once in this process (503 past it).
    #[arg(long, env = "LOGBOOK_OTLP_MAX_IN_FLIGHT", default_value_t = 64)]
    otlp_max_in_flight: usize,
    /// Seconds after which an OTLP trace whose root span arrived, but did not end last, is
    /// sealed when no further span arrives (0: only the root's arrival seals).
    #[arg(long, env = "LOGBOOK_OTLP_SEAL_AFTER", default_value_t = 30)]
    otlp_seal_after: u64,
    /// WebSocket connections this process holds open at once (0: no cap).
    #[arg(long, env = "LOGBOOK_WS_MAX_CONNECTIONS", default_value_t = 1024)]
    ws_max_connections: usize,
    /// WebSocket connections of one API key in this process (0: no cap).
    #[arg(long, env = "LOGBOOK_WS_MAX_CONNECTIONS_PER_KEY", default_value_t = 32)]
    ws_max_connections_per_key: usize,
    /// Active subscriptions on one WebSocket connection (0: no cap).
    #[arg(
        long,
        env = "LOGBOOK_WS_MAX_SUBSCRIPTIONS_PER_CONNECTION",
        default_value_t = 32
    )]
    ws_max_subscriptions_per_connection: usize,
    /// Active subscriptions of one API key in this process (0: no cap).
    #[arg(
        long,
        env = "LOGBOOK_WS_MAX_SUBSCRIPTIONS_PER_KEY",
        default_value_t = 128
    )]
    ws_max_subscriptions_per_key: usize,
    /// Seconds a WebSocket may stay open without `connection_init` (then closed with 4408).
    #[arg(long, env = "LOGBOOK_WS_INIT_TIMEOUT", default_value_t = 10)]
    ws_init_timeout: u64,
    /// Run only the documents listed here (a JSON manifest of sha256 → document, Apollo's
    /// persisted-query manifest, or a directory of manifests and `.graphql` files): trusted
    /// documents for BFFs; anything else is FORBIDDEN.
    #[arg(long, env = "LOGBOOK_TRUSTED_DOCUMENTS", value_name = "DIR|FILE")]
    trusted_documents: Option<std::path::PathBuf>,
    /// Serve as an Apollo Federation v2 subgraph: `_service` and `_entities`, with `@key` on
    /// LlmRun, Trace, AuditEntry and LogExport (docs/federation.md).
    #[arg(long, env = "LOGBOOK_FEDERATION")]
    federation: bool,
    /// Field depth, fragments expanded (introspection has its own bound).
    #[arg(long, env = "LOGBOOK_MAX_DEPTH", default_value_t = 12)]
    max_depth: usize,
    /// Complexity points one operation may cost.
    #[arg(long, env = "LOGBOOK_MAX_COMPLEXITY", default_value_t = 5_000)]
    max_complexity: usize,
    /// Rows of a list page asked for with neither `first` nor `last`.
    #[arg(long, env = "LOGBOOK_DEFAULT_PAGE_SIZE", default_value_t = logbook::limits::DEFAULT_PAGE_SIZE)]
    default_page_size: u64,
    /// The largest `first`/`last` of a list (at most 1000; trace steps and mismatches keep their
    /// own bounds, 1000 and 500).
    #[arg(long, env = "LOGBOOK_MAX_PAGE_SIZE", default_value_t = logbook::limits::MAX_PAGE_SIZE)]
    max_page_size: u64,
    /// Root fields of an operation, and aliases of one field in a selection set.
    #[arg(long, env = "LOGBOOK_MAX_FAN_OUT", default_value_t = 20)]
    max_fan_out: usize,
    /// Fields a document selects once its fragments are expanded.
    #[arg(long, env = "LOGBOOK_MAX_FIELDS", default_value_t = 2_000)]
    max_fields: u64,
    /// Brackets open at once in a document's text, checked before parsing.
    #[arg(long, env = "LOGBOOK_MAX_NESTING", default_value_t = 64)]
    max_nesting: usize,
    /// Fragments spread inside fragments.
    #[arg(long, env = "LOGBOOK_MAX_FRAGMENT_NESTING", default_value_t = 32)]
    max_fragment_nesting: usize,
    /// Bytes of an HTTP request body.
    #[arg(long, env = "LOGBOOK_MAX_BODY_BYTES", default_value_t = 1024 * 1024)]
    max_body_bytes: usize,
    /// Bytes of GraphQL document text.
    #[arg(long, env = "LOGBOOK_MAX_QUERY_BYTES", default_value_t = 100 * 1024)]
    max_query_bytes: usize,
    /// Seconds a request may run before it is answered UNAVAILABLE.
    #[arg(long, env = "LOGBOOK_REQUEST_TIMEOUT", default_value_t = 30)]
    request_timeout: u64,
    /// Seconds one SQL statement may run on PostgreSQL (0: no timeout).
    #[arg(long, env = "LOGBOOK_STATEMENT_TIMEOUT", default_value_t = 10)]
    statement_timeout: u64,
    /// On SIGTERM or SIGINT, seconds in-flight requests get to finish before their connections
    /// are closed (WebSockets close at once with 1001; the export job is handed back at once).
    #[arg(long, env = "LOGBOOK_SHUTDOWN_GRACE", default_value_t = 25)]
    shutdown_grace: u64,
    /// An origin whose browser pages may call the API (CORS), e.g. `https://console.example.com`;
    /// repeatable, or comma-separated in the environment; `*` allows any origin (never with
    /// credentials). None by default.
    #[arg(
        long = "cors-origin",
        env = "LOGBOOK_CORS_ORIGINS",
        value_delimiter = ',',
        value_parser = logbook::config::parse_cors_origin,
        value_name = "ORIGIN"
    )]
    cors_origins: Vec<String>,
    #[command(flatten)]
    retention: RetentionArgs,
}

#[derive(Args)]
struct SeedArgs {
    /// demo | bench (the benchmark data set, BENCHMARKS.md)
    #[arg(long, default_value = "demo")]
    profile: String,
    /// Number of tenants (overrides the profile).
    #[arg(long)]
    tenants: Option<usize>,
    /// Number of LLM runs (overrides the profile; other tables scale with it).
    #[arg(long)]
    runs: Option<u64>,
    /// RNG seed: the same options give the same data.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// "Now" of the data set, RFC 3339 (default: today 00:00 UTC).
    #[arg(long)]
    anchor: Option<String>,
    /// No progress bars.
    #[arg(long)]
    no_progress: bool,
}

#[derive(Subcommand)]
enum KeysCommand {
    /// Create an API key; prints it alone on the last line of stdout (it is not stored).
    Create {
        /// Tenant id (created if it does not exist).
        #[arg(long, required_unless_present = "platform")]
        tenant: Option<String>,
        /// VIEWER, OPERATOR, INGEST or ADMIN.
        #[arg(long, required_unless_present = "platform")]
        role: Option<String>,
        /// A platform key instead: no tenant, role PLATFORM; it may only write system-wide
        /// system records (`recordSystemRecord`), which every tenant sees.
        #[arg(long, conflicts_with_all = ["tenant", "role", "actor_type"])]
        platform: bool,
        /// Who will use the key: HUMAN (a person at a console), SYSTEM (an automation) or
        /// AGENT (an AI agent); what it creates records it, e.g. an export's origin. A platform
        /// key is always SYSTEM.
        #[arg(long, value_name = "HUMAN|SYSTEM|AGENT", default_value = "HUMAN")]
        actor_type: String,
        /// A note to recognise the key by.
        #[arg(long)]
        label: Option<String>,
        /// When the key stops working, RFC 3339 (default: never).
        #[arg(long, value_name = "RFC3339")]
        expires_at: Option<String>,
        /// The key's own complexity points per minute (0: unlimited; default: the server's
        /// --rate-limit).
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(..=i32::MAX as u64))]
        rate_limit: Option<u64>,
    },
    /// List a tenant's keys, or the platform keys (never the keys themselves), newest first.
    List {
        #[arg(long, required_unless_present = "platform")]
        tenant: Option<String>,
        /// The platform keys (no tenant) instead.
        #[arg(long, conflicts_with = "tenant")]
        platform: bool,
        /// Include revoked keys.
        #[arg(long)]
        all: bool,
    },
    /// Revoke a key by id; running servers refuse it within about a second.
    Revoke {
        /// The key's id (from `keys list`).
        #[arg(long)]
        id: String,
    },
    /// Replace a key with a new one of the same tenant, role, label and rate limit, and revoke
    /// it, in one transaction; prints the new key alone on the last line of stdout.
    Rotate {
        /// The key's id (from `keys list`).
        #[arg(long)]
        id: String,
    },
}

fn main() -> ExitCode {
    let traces = match init_logs_and_traces() {
        Ok(traces) => traces,
        Err(message) => return fail(&message),
    };
    let code = run_cli();
    if let Some(traces) = traces {
        traces.shutdown();
    }
    code
}

/// Log lines on stderr (filtered by `LOGBOOK_LOG`) and, when an OTLP endpoint is configured,
/// spans exported under their own filter (`logbook::otel`).
fn init_logs_and_traces() -> Result<Option<logbook::otel::Exporting>, String> {
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;
    use tracing_subscriber::Layer as _;
    // sea-orm-migration logs each migration at info, and PostgreSQL's notices ("already exists,
    // skipping") come through sqlx at info too; `db::migrate` logs one line instead. The
    // operation and resolver spans are for the exporter, not log lines.
    let filter = tracing_subscriber::EnvFilter::try_from_env("LOGBOOK_LOG").unwrap_or_else(|_| {
        "info,sea_orm_migration=warn,sqlx::postgres::notice=warn,logbook::otel=warn".into()
    });
    let logs = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    let logs = if json_logs() {
        logs.json().boxed()
    } else {
        logs.boxed()
    };
    if !logbook::otel::configured() {
        // The filter applies to the whole subscriber, so a disabled callsite costs nothing.
        tracing_subscriber::registry()
            .with(filter)
            .with(logs)
            .init();
        return Ok(None);
    }
    // Exporting: the operation and resolver spans must reach the exporter, so the global filter
    // admits them, and the log lines leave them out again.
    let filter = filter.add_directive("logbook::otel=info".parse().map_err(|e| format!("{e}"))?);
    let logs = logs.with_filter(tracing_subscriber::filter::filter_fn(|meta| {
        !meta.target().starts_with("logbook::otel")
    }));
    let registry = tracing_subscriber::registry().with(filter).with(logs);
    match logbook::otel::layer_from_env()? {
        Some((traces, exporting)) => {
            registry.with(traces).init();
            Ok(Some(exporting))
        }
        None => {
            registry.init();
            Ok(None)
        }
    }
}

fn run_cli() -> ExitCode {
    // Parsed twice when a config file is named: its settings become environment variables (so
    // that the environment and the command line override them), then clap reads again.
    let mut matches = Cli::command().get_matches();
    let mut from_file = Default::default();
    if let Some(path) = matches.get_one::<std::path::PathBuf>("config").cloned() {
        match logbook::config::file::apply(&Cli::command(), &path) {
            Ok(set) => from_file = set,
            Err(message) => return fail(&message),
        }
        matches = Cli::command().get_matches();
    }
    let cli = match Cli::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(e) => e.exit(),
    };
    if let Command::Config(args) = &cli.command {
        let mut config = Config::new(cli.database_url.clone(), cli.redis_url.clone());
        if let Err(message) = serve_config(&mut config, args) {
            return fail(&message);
        }
        let command = Cli::command();
        let command = command
            .find_subcommand("config")
            .cloned()
            .unwrap_or_else(|| command.clone());
        let (_, sub) = matches.subcommand().unwrap_or(("config", &matches));
        let globals = Cli::command();
        let mut all = command;
        for arg in globals.get_arguments().filter(|a| a.is_global_set()) {
            all = all.arg(arg.clone());
        }
        print!(
            "{}",
            logbook::config::file::effective(&all, sub, &from_file)
        );
        return ExitCode::SUCCESS;
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => return fail(&format!("cannot start the runtime: {e}")),
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => fail(&message),
    }
}

fn fail(message: &str) -> ExitCode {
    eprintln!("logbook: {message}");
    ExitCode::FAILURE
}

async fn run(cli: Cli) -> Result<(), String> {
    let mut config = Config::new(cli.database_url.clone(), cli.redis_url.clone());
    config.ledger_signing_key = cli.ledger_signing_key.clone();
    config.ledger_signing_key_file = cli.ledger_signing_key_file.clone();
    match cli.command {
        Command::Ledger { command } => {
            use logbook::ledger::cli;
            let line = match command {
                LedgerCommand::Verify {
                    tenant: Some(tenant),
                    trusted_checkpoint: Some(trusted),
                    public_key,
                    ..
                } => {
                    cli::verify_online_against(&config, &tenant, &trusted, public_key.as_deref())
                        .await?
                }
                LedgerCommand::Verify {
                    tenant: Some(tenant),
                    ..
                } => cli::verify_online(&config, &tenant).await?,
                LedgerCommand::Verify {
                    file: Some(file),
                    public_key,
                    trusted_checkpoint,
                    ..
                } => cli::verify_offline_against(
                    &file,
                    public_key.as_deref().unwrap_or_default(),
                    trusted_checkpoint.as_deref(),
                )?,
                LedgerCommand::Verify { .. } => {
                    return Err("pass --tenant T, or --file F with --public-key K".into())
                }
                LedgerCommand::Export { tenant, out } => {
                    cli::export(&config, &tenant, &out).await?
                }
                LedgerCommand::Keygen { out } => {
                    let public_key = cli::keygen(&out)?;
                    println!(
                        "wrote a new ledger signing key to {} (keep it out of the database's \
                         reach; serve with --ledger-signing-key-file {}); its public key (hex):",
                        out.display(),
                        out.display()
                    );
                    public_key
                }
            };
            println!("{line}");
            Ok(())
        }
        Command::Export {
            command:
                ExportCommand::Verify {
                    file,
                    manifest,
                    public_key,
                },
        } => {
            let verified = logbook::export_files::verify::verify(
                &file,
                manifest.as_deref(),
                public_key.as_deref(),
            )?;
            println!(
                "ok: {} matches its manifest {} ({} member file(s), {} row(s))",
                verified.artefact_path.display(),
                verified.manifest_path.display(),
                verified.members,
                verified.rows
            );
            println!("artefact sha256 {}", verified.artefact_sha256);
            println!(
                "manifest sha256 {} (compare with LogExport.manifestSha256 and the audit ledger)",
                verified.manifest_sha256
            );
            if let Some(ledger) = &verified.ledger {
                println!(
                    "ledger file {} matches its manifest ({} entries)",
                    ledger.path.display(),
                    ledger.tree_size
                );
                match &ledger.signature {
                    Some(summary) => println!("ledger: {summary}"),
                    None => println!(
                        "ledger: pass --public-key K to verify its chain and signed checkpoint"
                    ),
                }
                if let Some(n) = ledger.rows_matched {
                    println!("{n} exported entries are in the signed ledger");
                }
            }
            Ok(())
        }
        Command::Traces {
            command:
                TracesCommand::Archive {
                    older_than,
                    tenant,
                    batch,
                },
        } => archive_traces(&config, older_than, tenant, batch).await,
        Command::Retention {
            command:
                RetentionCommand::Run {
                    retention,
                    export_dir,
                },
        } => {
            config.retention = retention.settings()?;
            config.exports.dir = export_dir;
            run_retention(&config).await
        }
        Command::PrintSchema { federation } => {
            if federation {
                print!("{}", logbook::graphql::subgraph_sdl());
            } else {
                print!("{}", logbook::graphql::sdl());
            }
            Ok(())
        }
        Command::Migrate => {
            let db = logbook::db::connect(&config.database.for_bulk_work())
                .await
                .map_err(|e| e.detail())?;
            logbook::db::migrate(&db).await.map_err(|e| e.detail())?;
            eprintln!("migrations applied");
            Ok(())
        }
        Command::Seed(args) => {
            use logbook::seed::{Profile, SeedOptions};
            let profile = match args.profile.as_str() {
                "demo" => Profile::Demo,
                "bench" => Profile::Bench,
                other => return Err(format!("unknown profile {other}: use demo or bench")),
            };
            let anchor = args
                .anchor
                .as_deref()
                .map(chrono::DateTime::parse_from_rfc3339)
                .transpose()
                .map_err(|e| format!("--anchor: {e}"))?
                .map(|a| a.with_timezone(&chrono::Utc));
            let db = logbook::db::connect(&config.database.for_bulk_work())
                .await
                .map_err(|e| e.detail())?;
            logbook::db::migrate(&db).await.map_err(|e| e.detail())?;
            let options = SeedOptions {
                profile,
                tenants: args.tenants,
                runs: args.runs,
                seed: args.seed,
                anchor,
                progress: !args.no_progress,
            };
            let report = logbook::seed::run(&db, &options)
                .await
                .map_err(|e| e.detail())?;
            for (table, rows) in &report.rows {
                eprintln!("{table:>28} {rows:>10}");
            }
            eprintln!(
                "seeded {} tenant(s) in {:.1?}",
                report.tenants.len(),
                report.elapsed
            );
            Ok(())
        }
        Command::Keys { command } => keys_command(&config, command).await,
        Command::Config(_) => Ok(()),
        Command::Serve(args) => {
            serve_config(&mut config, &args)?;
            if let Some(dir) = &config.ledger_checkpoints.dir {
                if let Err(e) = std::fs::create_dir_all(dir) {
                    say(&format!(
                        "logbook: WARNING: cannot create --ledger-checkpoint-dir {}: {e}; \
                         checkpoints are published once it can be written",
                        dir.display()
                    ));
                }
            }
            let services = Services::connect(config).await.map_err(|e| e.detail())?;
            let state = &services.state;
            if services.ledger_key.source() == logbook::ledger::signing::KeySource::Database {
                say(&format!(
                    "logbook: {}",
                    logbook::ledger::signing::DATABASE_KEY_WARNING
                ));
            }
            if state.config.ledger_checkpoints.is_empty() {
                say(
                    "logbook: ledger checkpoints are kept only in the database; publish them \
                     outside it with --ledger-checkpoint-dir DIR or --ledger-checkpoint-url URL \
                     (docs/ledger.md)",
                );
            }
            let demo_key = if args.demo {
                Some(demo(state).await?)
            } else {
                None
            };
            let server = server::start(&services, &args.bind)
                .map_err(|e| format!("cannot listen on {}: {e}", args.bind))?;
            say(&format!(
                "logbook serving http://{}/graphql (GraphiQL at /graphiql)",
                server.addr
            ));
            // MIGRATION and STARTUP, system-wide, in the background: best effort, never a
            // reason to delay or fail the start (`logbook::system::lifecycle`).
            let process = logbook::system::lifecycle::Process::new();
            tokio::spawn({
                let (state, process) = (state.clone(), process.clone());
                async move { logbook::system::lifecycle::record_started(&state, &process).await }
            });
            if let Some(key) = demo_key {
                // The key rides in the fragment, which the browser never sends; the page moves it
                // into its headers editor.
                let mut browsable = server.addr;
                if browsable.ip().is_unspecified() {
                    browsable.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
                }
                println!("GraphiQL with the key filled in: http://{browsable}/graphiql#key={key}");
            }
            let mut server = server;
            let trigger = server.shutdown.clone();
            tokio::spawn(async move {
                stop_signal().await;
                trigger.trigger();
            });
            let asked = server.shutdown.clone();
            tokio::select! {
                ended = &mut server.task => {
                    return ended.map_err(|e| e.to_string())?.map_err(|e| e.to_string());
                }
                _ = asked.triggered() => {}
            }
            say(&format!(
                "logbook: shutting down; in-flight requests have {} s",
                args.shutdown_grace
            ));
            let stopped = server.shutdown().await.map_err(|e| e.to_string());
            logbook::system::lifecycle::record_stopped(state, &process).await;
            stopped
        }
    }
}

/// `serve`'s configuration from its flags (over the global ones already in `config`).
fn serve_config(config: &mut Config, args: &ServeArgs) -> Result<(), String> {
    use std::time::Duration;
    config.workers = args.workers;
    config.database.max_connections = args.db_pool;
    config.database.statement_timeout =
        (args.statement_timeout > 0).then(|| Duration::from_secs(args.statement_timeout));
    config.limits = logbook::config::Limits {
        max_depth: args.max_depth,
        max_complexity: args.max_complexity,
        max_fan_out: args.max_fan_out,
        max_body_bytes: args.max_body_bytes,
        max_query_bytes: args.max_query_bytes,
        max_nesting: args.max_nesting,
        max_fields: args.max_fields,
        max_fragment_nesting: args.max_fragment_nesting,
        request_timeout: Duration::from_secs(args.request_timeout),
        introspection: !args.no_introspection,
        rate_limit_per_minute: args.rate_limit,
        page_sizes: logbook::limits::PageSizes::new(args.default_page_size, args.max_page_size)?,
    };
    config.exports.dir = args.export_dir.clone();
    config.exports.retry = args.export_retry.policy()?;
    config.cors_origins = args.cors_origins.clone();
    config.ledger_checkpoints.dir = args.ledger_checkpoint_dir.clone();
    config.ledger_checkpoints.url = args.ledger_checkpoint_url.clone();
    if let Some(url) = &config.ledger_checkpoints.url {
        logbook::ledger::sink::UrlSink::new(url)?;
    }
    config.mismatch_webhook.url = args.mismatch_webhook_url.clone();
    config.mismatch_webhook.secret = args.mismatch_webhook_secret.clone();
    config.mismatch_webhook.check()?;
    config.cost_anomaly_sweep =
        (args.cost_anomaly_interval > 0).then(|| Duration::from_secs(args.cost_anomaly_interval));
    for entry in &args.otlp_prices {
        let (model, prices) = logbook::config::otlp::PriceTable::parse_entry(entry)?;
        config.otlp.prices.insert(model, prices);
    }
    config.otlp.max_body_bytes = args.otlp_max_body_bytes.max(1024);
    config.otlp.max_in_flight_per_key = args.otlp_max_in_flight_per_key.max(1);
    config.otlp.max_in_flight = args.otlp_max_in_flight.max(1);
    config.otlp.seal_after = Duration::from_secs(args.otlp_seal_after);
    config.shutdown_grace = Duration::from_secs(args.shutdown_grace);
    config.retention = args.retention.settings()?;
    config.trusted_documents = args.trusted_documents.clone();
    config.federation = args.federation;
    config.subscriptions = logbook::subscriptions::admission::SocketLimits {
        init_timeout: Duration::from_secs(args.ws_init_timeout),
        max_connections: args.ws_max_connections,
        max_connections_per_key: args.ws_max_connections_per_key,
        max_subscriptions_per_connection: args.ws_max_subscriptions_per_connection,
        max_subscriptions_per_key: args.ws_max_subscriptions_per_key,
    };
    Ok(())
}

/// `LOGBOOK_LOG_FORMAT=json`: every line on stderr is a JSON log record.
fn json_logs() -> bool {
    std::env::var("LOGBOOK_LOG_FORMAT").is_ok_and(|f| f.eq_ignore_ascii_case("json"))
}

/// What `serve` tells its operator on stderr: a plain line, or a log record when the logs are
/// JSON (so every stderr line parses).
fn say(message: &str) {
    if json_logs() {
        tracing::info!("{}", message.trim_start_matches("logbook: "));
    } else {
        eprintln!("{message}");
    }
}

/// SIGTERM (what orchestrators send) or SIGINT (Ctrl-C).
async fn stop_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    match signal(SignalKind::terminate()) {
        Ok(mut terminate) => {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = terminate.recv() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

/// `logbook keys …`: the table and the new keys go to stdout, a new key alone on the last line.
async fn keys_command(config: &Config, command: KeysCommand) -> Result<(), String> {
    use logbook::auth::cli;
    match command {
        KeysCommand::Create {
            tenant,
            role,
            label,
            expires_at,
            rate_limit,
            platform,
            actor_type,
        } => {
            let expires_at = expires_at
                .as_deref()
                .map(chrono::DateTime::parse_from_rfc3339)
                .transpose()
                .map_err(|e| format!("--expires-at: {e}"))?
                .map(|at| at.with_timezone(&chrono::Utc));
            if platform {
                let new = logbook::auth::keys::NewPlatformKey {
                    label,
                    expires_at,
                    rate_limit_per_minute: rate_limit,
                };
                let (key, created) = cli::create_platform(config, &new).await?;
                println!(
                    "created PLATFORM key {} (no tenant: it may only write system-wide system \
                     records); it is shown once:",
                    created.id
                );
                println!("{key}");
                return Ok(());
            }
            let (Some(tenant), Some(role)) = (tenant, role) else {
                return Err("pass --tenant T --role R, or --platform".into());
            };
            let role = Role::parse_any_case(&role)
                .filter(|role| *role != Role::Platform)
                .ok_or_else(|| {
                    format!(
                        "unknown role {role}: use VIEWER, OPERATOR, INGEST or ADMIN \
                         (or --platform for a platform key)"
                    )
                })?;
            let actor_type = logbook::auth::ActorType::parse(&actor_type.to_ascii_uppercase())
                .ok_or_else(|| {
                    format!("unknown actor type {actor_type}: use HUMAN, SYSTEM or AGENT")
                })?;
            let db = logbook::db::connect(&config.database)
                .await
                .map_err(|e| e.detail())?;
            logbook::db::migrate(&db).await.map_err(|e| e.detail())?;
            tenant_store::ensure_tenant(&db, &tenant, &tenant, "GOVERN")
                .await
                .map_err(|e| e.detail())?;
            let new = logbook::auth::keys::NewKey {
                tenant: TenantId::trusted(tenant.clone()),
                role,
                actor_type,
                label,
                expires_at,
                rate_limit_per_minute: rate_limit,
            };
            let (key, created) = logbook::auth::keys::create(&db, &new)
                .await
                .map_err(|e| e.detail())?;
            println!(
                "created {} key {} for tenant {tenant}; it is shown once:",
                role.as_str(),
                created.id
            );
            println!("{key}");
        }
        KeysCommand::List {
            tenant,
            platform,
            all,
        } => {
            let tenant = if platform { None } else { tenant };
            for line in cli::table(&cli::list(config, tenant.as_deref(), all).await?) {
                println!("{line}");
            }
        }
        KeysCommand::Revoke { id } => {
            let revoked = cli::revoke(config, &id).await?;
            println!("revoked key {} of {}", revoked.id, cli::owner(&revoked));
        }
        KeysCommand::Rotate { id } => {
            let (key, created) = cli::rotate(config, &id).await?;
            println!(
                "revoked key {id}; its replacement {} for {} is shown once:",
                created.id,
                cli::owner(&created)
            );
            println!("{key}");
        }
    }
    Ok(())
}

/// Seeds the demo tenant unless it already has data, then makes, prints and returns a fresh
/// ADMIN key for it.
async fn demo(state: &AppState) -> Result<String, String> {
    use logbook::seed::{Profile, SeedOptions};
    use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter};
    let existing = entity::llm_run_records::Entity::find()
        .filter(entity::llm_run_records::Column::TenantId.eq("demo"))
        .count(&state.db)
        .await
        .map_err(|e| e.to_string())?;
    if existing == 0 {
        let options = SeedOptions {
            profile: Profile::Demo,
            tenants: None,
            runs: None,
            seed: 42,
            anchor: None,
            progress: false,
        };
        let report = logbook::seed::run(&state.db, &options)
            .await
            .map_err(|e| e.detail())?;
        eprintln!("seeded the demo tenant in {:.1?}", report.elapsed);
    }
    let key = logbook::auth::keys::create_key(
        &state.db,
        &TenantId::trusted("demo"),
        Role::Admin,
        Some("demo"),
    )
    .await
    .map_err(|e| e.detail())?;
    println!("demo tenant `demo`, ADMIN key (shown once): {key}");
    Ok(key)
}

/// `logbook retention run`: one run of the retention job, its counts one per line.
async fn run_retention(config: &Config) -> Result<(), String> {
    use logbook::retention::{run, RetentionOutcome};
    let db = logbook::db::connect(&config.database.for_bulk_work())
        .await
        .map_err(|e| e.detail())?;
    logbook::db::migrate(&db).await.map_err(|e| e.detail())?;
    let outcome = run(
        &db,
        &config.retention,
        &config.exports.dir,
        logbook::scalars::now(),
    )
    .await
    .map_err(|e| e.detail())?;
    match outcome {
        RetentionOutcome::Skipped => {
            println!("skipped: another process is running the retention job");
        }
        RetentionOutcome::Ran {
            run_id,
            counts: c,
            duration_ms,
        } => {
            println!("traces archived: {}", c.traces_archived);
            println!("steps archived: {}", c.steps_archived);
            println!("archived traces deleted: {}", c.archived_traces_deleted);
            println!("archived steps deleted: {}", c.archived_steps_deleted);
            println!("idempotency keys purged: {}", c.idempotency_keys_purged);
            println!("replay outputs purged: {}", c.replay_outputs_purged);
            println!("export artefacts expired: {}", c.export_artefacts_expired);
            println!("otlp root spans purged: {}", c.otlp_spans_purged);
            println!("retention run {run_id} took {duration_ms} ms");
        }
    }
    Ok(())
}

/// `logbook traces archive`: prints one line per committed batch and a total.
async fn archive_traces(
    config: &Config,
    older_than: u32,
    tenant: Option<String>,
    batch: u64,
) -> Result<(), String> {
    use logbook::traces::archive::{archive_traces, ArchiveOptions};
    let db = logbook::db::connect(&config.database.for_bulk_work())
        .await
        .map_err(|e| e.detail())?;
    logbook::db::migrate(&db).await.map_err(|e| e.detail())?;
    let options = ArchiveOptions {
        older_than_days: older_than,
        tenant,
        batch,
        now: logbook::scalars::now(),
    };
    let report = archive_traces(&db, &options, |n, moved| {
        println!(
            "batch {n}: archived {} traces, removed {} steps",
            moved.traces, moved.steps
        );
    })
    .await
    .map_err(|e| e.detail())?;
    println!(
        "archived {} traces ({} steps removed) created before {} in {} batches",
        report.traces_archived,
        report.steps_removed,
        logbook::scalars::format_utc(report.cutoff),
        report.batches
    );
    if report.conflicts > 0 {
        println!(
            "left {} older traces in place: their tenant's trace_id is already in the archive",
            report.conflicts
        );
    }
    Ok(())
}
