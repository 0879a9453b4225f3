//! The state every resolver, handler and background task of one server process shares: the
//! database pool, the configuration, the cursor codec, the API-key cache, the Redis link, the
//! event hub and the rate limiter. Built once by [`AppState::connect`]; cheap to clone. It holds no domain's
//! components: those (the ledger's signing key, the audit append queue) are made by
//! `crate::server` and handed to the schema and the workers that need them.

use std::sync::Arc;

use sea_orm::DatabaseConnection;

use crate::auth::KeyStore;
use crate::config::Config;
use crate::cursor::CursorCodec;
use crate::db::SqlStats;
use crate::error::AppResult;
use crate::events::Hub;
use crate::ratelimit::RateLimiter;
use crate::redis_link::RedisLink;
use crate::shutdown::Shutdown;

/// What every resolver and handler can reach. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub db: DatabaseConnection,
    pub config: Arc<Config>,
    pub cursors: CursorCodec,
    /// API keys, looked up through a per-process cache that revocations evict.
    pub keys: Arc<KeyStore>,
    /// The deployment's Redis (none without `REDIS_URL`); it prefixes every key and channel
    /// with the deployment's namespace.
    pub redis: Option<Arc<RedisLink>>,
    /// This process's fan-out point for subscription wake-ups (see `crate::events`).
    pub events: Arc<Hub>,
    /// The per-key rate limit: shared counters and this process's leases on them.
    pub rate_limit: Arc<RateLimiter>,
    pub sql: Arc<SqlStats>,
    /// Triggered when the process is asked to stop (`crate::shutdown`).
    pub shutdown: Shutdown,
    /// The migrations this process applied as it connected (none when another process, or an
    /// earlier start, already had), which `serve` records as a MIGRATION system record.
    pub migrations_applied: Arc<[String]>,
}

impl AppState {
    /// Connects, migrates and loads the shared secrets.
    pub async fn connect(config: Config) -> AppResult<Self> {
        // Before anything records a metric (the pool's statement callback, below).
        crate::telemetry::install();
        // Migrations run on their own connection without the request statement timeout: an
        // index built over a large table may rightly take longer than any request.
        let migrator = crate::db::connect(&config.database.for_bulk_work()).await?;
        let migrations_applied = crate::db::migrate(&migrator).await?;
        migrator
            .close()
            .await
            .map_err(crate::error::AppError::from)?;
        let (db, sql) = crate::db::connect_counted(&config.database).await?;
        let cursor_key = crate::db::shared_secret(&db, "cursor_hmac_key").await?;
        let redis = match config.redis_url.as_deref() {
            Some(url) => Some(Arc::new(RedisLink::for_deployment(&db, url).await?)),
            None => None,
        };
        let events = Arc::new(Hub::new(
            db.clone(),
            redis.clone(),
            config.database.max_connections as usize,
        ));
        let keys = Arc::new(KeyStore::new(
            db.clone(),
            redis.clone(),
            config.key_cache_ttl,
        ));
        let rate_limit = Arc::new(RateLimiter::new(
            config.limits.rate_limit_per_minute,
            db.clone(),
            redis.clone(),
        ));
        Ok(AppState {
            keys,
            db,
            config: Arc::new(config),
            cursors: CursorCodec::new(&cursor_key),
            redis,
            events,
            rate_limit,
            sql,
            shutdown: Shutdown::default(),
            migrations_applied: migrations_applied.into(),
        })
    }
}
