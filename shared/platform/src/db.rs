//! The Postgres pool of one service, bound to its own schema through `search_path`, and its
//! embedded migrations (refinery; history tables inside that schema).

use anyhow::Context;
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use serde::Deserialize;
use std::time::Duration;
use tokio_postgres::NoTls;

#[derive(Debug, Clone, Deserialize)]
pub struct DatabaseSettings {
    /// `postgres://user@host:port/database`; the password, if any, from the environment.
    pub url: String,
    /// The schema this service owns; every unqualified name resolves to it.
    pub schema: String,
    #[serde(default = "default_pool_size")]
    pub pool_size: usize,
}

fn default_pool_size() -> usize {
    16
}

impl DatabaseSettings {
    fn pg_config(&self) -> anyhow::Result<tokio_postgres::Config> {
        let mut cfg: tokio_postgres::Config = self
            .url
            .parse()
            .context("database.url is not a valid Postgres URL")?;
        cfg.options(format!("-c search_path={}", self.schema));
        // Shows in pg_stat_activity which schema (service) a connection serves.
        cfg.application_name(&self.schema);
        cfg.connect_timeout(Duration::from_secs(5));
        Ok(cfg)
    }

    /// URL with the schema's `search_path` as a connection option, for side connections
    /// (the relay's LISTEN connection).
    pub fn url_with_schema(&self) -> String {
        let sep = if self.url.contains('?') { '&' } else { '?' };
        format!("{}{sep}options=-c%20search_path%3D{}", self.url, self.schema)
    }
}

/// Creates the schema if needed and returns a pool whose connections use it.
pub async fn connect(settings: &DatabaseSettings) -> anyhow::Result<Pool> {
    crate::config::validate_identifier("database.schema", &settings.schema)?;
    let cfg = settings.pg_config()?;
    let (client, conn) = cfg.connect(NoTls).await.context("connecting to Postgres")?;
    let driver = tokio::spawn(conn);
    client
        .batch_execute(&format!("create schema if not exists {}", settings.schema))
        .await
        .with_context(|| format!("creating schema {}", settings.schema))?;
    drop(client);
    let _ = driver.await;
    let manager = Manager::from_config(
        cfg,
        NoTls,
        ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        },
    );
    Pool::builder(manager)
        .max_size(settings.pool_size)
        .runtime(Runtime::Tokio1)
        .wait_timeout(Some(Duration::from_secs(10)))
        .create_timeout(Some(Duration::from_secs(5)))
        .recycle_timeout(Some(Duration::from_secs(5)))
        .build()
        .context("building the Postgres pool")
}

/// Runs migration sets in order on one connection, under an advisory lock so that replicas
/// starting together do not race.
pub async fn migrate(settings: &DatabaseSettings, runners: Vec<refinery::Runner>) -> anyhow::Result<()> {
    let (mut client, conn) = settings
        .pg_config()?
        .connect(NoTls)
        .await
        .context("connecting to Postgres for migrations")?;
    let driver = tokio::spawn(conn);
    let key = format!("migrate:{}", settings.schema);
    client
        .execute("select pg_advisory_lock(hashtext($1))", &[&key])
        .await?;
    let mut result = Ok(());
    for runner in runners {
        if let Err(e) = runner.run_async(&mut client).await {
            result = Err(anyhow::Error::new(e).context(format!("migrating schema {}", settings.schema)));
            break;
        }
    }
    client
        .execute("select pg_advisory_unlock(hashtext($1))", &[&key])
        .await?;
    drop(client);
    let _ = driver.await;
    result
}

/// True when a trivial query succeeds within a second (used by `/readyz`).
pub async fn is_reachable(pool: &Pool) -> bool {
    let check = async {
        let client = pool.get().await.ok()?;
        client.simple_query("select 1").await.ok()
    };
    matches!(
        tokio::time::timeout(Duration::from_secs(1), check).await,
        Ok(Some(_))
    )
}
