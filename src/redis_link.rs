//! The optional Redis connection. Connected lazily with short timeouts, so an unreachable Redis
//! never stalls start-up; callers that need it get `UNAVAILABLE` instead. The link names every
//! key and channel through [`RedisLink::key`], under the deployment's namespace, so deployments
//! (and test databases) sharing one Redis never collide.

use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use tokio::sync::OnceCell;

use crate::error::{AppError, AppResult};

pub struct RedisLink {
    client: redis::Client,
    namespace: String,
    connection: OnceCell<ConnectionManager>,
}

impl RedisLink {
    /// A link to `url` whose keys live under `namespace` (`lb:<deployment id prefix>`).
    pub fn open(url: &str, namespace: String) -> AppResult<Self> {
        let client = redis::Client::open(url)
            .map_err(|e| AppError::bad_input("redisUrl", format!("invalid Redis URL: {e}")))?;
        Ok(RedisLink {
            client,
            namespace,
            connection: OnceCell::new(),
        })
    }

    /// The link of the deployment whose database is `db`: the namespace derives from a random
    /// id stored in the database, so processes sharing a database share Redis keys and
    /// channels, and other deployments (or test databases) on the same Redis never collide.
    /// Servers and the CLI (which announces key revocations) name it the same way.
    pub async fn for_deployment(db: &sea_orm::DatabaseConnection, url: &str) -> AppResult<Self> {
        let deployment = crate::db::shared_secret(db, "deployment_id").await?;
        Self::open(url, format!("lb:{}", hex::encode(&deployment[..8])))
    }

    /// `{namespace}:{part}:{part}…`: the one way a Redis key or channel name is made.
    pub fn key(&self, parts: &[&str]) -> String {
        let mut key = self.namespace.clone();
        for part in parts {
            key.push(':');
            key.push_str(part);
        }
        key
    }

    /// A client for connections the link does not manage (a pub/sub listener).
    pub fn client(&self) -> &redis::Client {
        &self.client
    }

    pub async fn connection(&self) -> AppResult<ConnectionManager> {
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Duration::from_secs(2))
            .set_response_timeout(Duration::from_secs(2))
            .set_number_of_retries(1);
        self.connection
            .get_or_try_init(|| async {
                ConnectionManager::new_with_config(self.client.clone(), config)
                    .await
                    .map_err(|e| {
                        crate::telemetry::redis_error("connect");
                        AppError::Unavailable(format!("Redis is unreachable: {e}"))
                    })
            })
            .await
            .cloned()
    }

    pub async fn ping(&self) -> AppResult<()> {
        let mut connection = self.connection().await?;
        let pong: String = redis::cmd("PING")
            .query_async(&mut connection)
            .await
            .map_err(|e| {
                crate::telemetry::redis_error("ping");
                AppError::Unavailable(format!("Redis did not answer PING: {e}"))
            })?;
        if pong == "PONG" {
            Ok(())
        } else {
            Err(AppError::Unavailable(format!(
                "Redis answered PING with {pong}"
            )))
        }
    }
}
