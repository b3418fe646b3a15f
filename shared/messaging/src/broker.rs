//! One supervised AMQP connection per process component. Every broker await is bounded by
//! a timeout; a broken connection is replaced on the next use, with backoff by the caller.

use lapin::options::BasicPublishOptions;
use lapin::{BasicProperties, Channel, Confirmation, Connection, ConnectionProperties, PublisherConfirm};
use serde::Deserialize;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use thiserror::Error;
use tokio::sync::Mutex;

#[derive(Debug, Clone, Deserialize)]
pub struct BrokerConfig {
    /// `amqp://user:pass@host:port/vhost` (or `amqps://`).
    pub url: String,
    /// Prepended to every exchange and queue name.
    #[serde(default)]
    pub prefix: String,
    /// Upper bound on any single broker operation.
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
    /// CA file (and client certificate) for `amqps://`; see [`crate::connect`].
    #[serde(default)]
    pub tls: crate::connect::TlsSettings,
}

fn default_timeout_ms() -> u64 {
    10_000
}

impl BrokerConfig {
    pub fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms)
    }
}

#[derive(Debug, Error)]
pub enum BrokerError {
    #[error("broker operation '{0}' timed out after {1:?}")]
    Timeout(&'static str, Duration),
    #[error("broker operation '{op}' failed")]
    Amqp {
        op: &'static str,
        #[source]
        source: lapin::Error,
    },
    #[error("message was returned by the broker as unroutable: {0}")]
    Returned(String),
    #[error("message was negatively acknowledged by the broker")]
    Nacked,
}

/// Runs a broker operation under the configured timeout, naming it in the error.
pub async fn bounded<T>(
    op: &'static str,
    timeout: Duration,
    fut: impl Future<Output = lapin::Result<T>>,
) -> Result<T, BrokerError> {
    match tokio::time::timeout(timeout, fut).await {
        Err(_) => Err(BrokerError::Timeout(op, timeout)),
        Ok(Err(source)) => Err(BrokerError::Amqp { op, source }),
        Ok(Ok(v)) => Ok(v),
    }
}

/// Waits for a publisher confirm: only a plain ack is success; a returned message (mandatory
/// and unroutable) and a nack are errors.
pub async fn confirmed(timeout: Duration, confirm: PublisherConfirm) -> Result<(), BrokerError> {
    match bounded("publisher confirm", timeout, confirm).await? {
        Confirmation::Ack(None) | Confirmation::NotRequested => Ok(()),
        Confirmation::Ack(Some(r)) => Err(BrokerError::Returned(format!(
            "{} {}",
            r.reply_code, r.reply_text
        ))),
        Confirmation::Nack(_) => Err(BrokerError::Nacked),
    }
}

/// Publishes on a channel in confirm mode and waits for the broker's confirm.
pub async fn publish_confirmed(
    ch: &Channel,
    timeout: Duration,
    exchange: &str,
    routing_key: &str,
    mandatory: bool,
    payload: &[u8],
    props: BasicProperties,
) -> Result<(), BrokerError> {
    let opts = BasicPublishOptions {
        mandatory,
        ..Default::default()
    };
    let confirm = bounded(
        "basic.publish",
        timeout,
        ch.basic_publish(exchange.into(), routing_key.into(), opts, payload, props),
    )
    .await?;
    confirmed(timeout, confirm).await
}

/// A lazily (re)connected AMQP connection shared by the parts of one service.
#[derive(Clone)]
pub struct Broker {
    config: Arc<BrokerConfig>,
    app_id: Arc<str>,
    /// What this connection is for (`consume-medical`, `publish-social`, ...): part of its
    /// name, so operators see which connection a broker alarm blocks.
    role: Arc<str>,
    conn: Arc<Mutex<Option<Connection>>>,
}

impl Broker {
    pub fn new(config: BrokerConfig, app_id: &str) -> Self {
        Self::for_role(config, app_id, "")
    }

    /// A connection of its own for one role of a service (DESIGN.md §4: publishing and
    /// consuming on separate connections, per line), named `<prefix><app>[-<role>]@<pid>`.
    pub fn for_role(config: BrokerConfig, app_id: &str, role: &str) -> Self {
        Broker {
            config: Arc::new(config),
            app_id: app_id.into(),
            role: role.into(),
            conn: Arc::new(Mutex::new(None)),
        }
    }

    /// Another connection with the same settings and application id, for `role`.
    pub fn sibling(&self, role: &str) -> Self {
        Self::for_role((*self.config).clone(), &self.app_id, role)
    }

    pub fn config(&self) -> &BrokerConfig {
        &self.config
    }

    pub fn app_id(&self) -> &str {
        &self.app_id
    }

    pub fn timeout(&self) -> Duration {
        self.config.timeout()
    }

    /// Opens a channel, connecting first if there is no healthy connection.
    pub async fn channel(&self) -> Result<Channel, BrokerError> {
        let mut guard = self.conn.lock().await;
        if let Some(conn) = guard.as_ref()
            && conn.status().connected()
        {
            match bounded("channel.open", self.timeout(), conn.create_channel()).await {
                Ok(ch) => return Ok(ch),
                Err(e) => tracing::warn!(error = %e, "opening a channel failed; reconnecting"),
            }
        }
        // Named so operators (and outage tests) can find it: `<prefix><app>@<pid>`.
        let role = if self.role.is_empty() {
            String::new()
        } else {
            format!("-{}", self.role)
        };
        let name = format!(
            "{}{}{role}@{}",
            self.config.prefix,
            self.app_id,
            std::process::id()
        );
        let props = ConnectionProperties::default().with_connection_name(name.into());
        // Each node of a cluster gets the whole timeout.
        let nodes = crate::connect::node_urls(&self.config.url).len() as u32;
        let conn = bounded(
            "connect",
            self.timeout() * nodes,
            crate::connect::connect(&self.config.url, props, &self.config.tls, self.timeout()),
        )
        .await?;
        let ch = bounded("channel.open", self.timeout(), conn.create_channel()).await?;
        *guard = Some(conn);
        Ok(ch)
    }

    /// True when the connection is open (used by `/readyz`). Never waits: while a
    /// (re)connect holds the connection it answers false at once.
    pub async fn is_connected(&self) -> bool {
        match self.conn.try_lock() {
            Ok(guard) => guard.as_ref().is_some_and(|c| c.status().connected()),
            Err(_) => false,
        }
    }

    /// Closes the connection (graceful shutdown).
    pub async fn close(&self) {
        if let Some(conn) = self.conn.lock().await.take() {
            let _ = bounded(
                "connection.close",
                self.timeout(),
                conn.close(200, "shutdown".into()),
            )
            .await;
        }
    }
}

/// Returns a delivery to its queue unprocessed (nack with requeue), bounded like every
/// broker await; a failure only means the channel is gone, which returns it anyway.
pub async fn requeue(acker: &lapin::Acker, timeout: Duration) {
    let opts = lapin::options::BasicNackOptions {
        requeue: true,
        ..Default::default()
    };
    let _ = bounded("basic.nack", timeout, acker.nack(opts)).await;
}

/// Exponential backoff with jitter for supervision loops: 100 ms doubling up to `max`.
pub fn backoff(attempt: u32, max: Duration) -> Duration {
    let base = Duration::from_millis(100).saturating_mul(1u32 << attempt.min(10));
    let capped = base.min(max);
    let jitter = rand::random_range(0..=capped.as_millis() as u64 / 4);
    capped + Duration::from_millis(jitter)
}
