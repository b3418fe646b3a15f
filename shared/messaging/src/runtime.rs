//! The shape every service binary shares (STYLE.md: `build` then `run_until_stopped`).
//!
//! `build` creates the schema, runs the messaging and service migrations, declares the
//! topology and binds the ops port; `run_until_stopped` runs the consumers, the outbox relay
//! and the ops server under one cancellation token. Shutdown order (DESIGN.md §6): not ready
//! → consumers cancelled and in-flight work finished and acked → relay flushed → broker
//! closed.

use crate::broker::{Broker, BrokerConfig};
use crate::consumer::{ConsumerSettings, Consumers, Handler};
use crate::lines::LineSwitches;
use crate::names::Names;
use crate::outbox::{Relay, RelayConfig};
use crate::topology::{QueueSettings, ServiceTopology};
use anyhow::Context;
use deadpool_postgres::Pool;
use platform::db::DatabaseSettings;
use platform::ops::{OpsSettings, ReadyCheck};
use serde::Deserialize;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// Tunables of the messaging core, all with production defaults.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct MessagingSettings {
    pub prefetch: u16,
    pub in_process_attempts: u32,
    pub max_retries: u32,
    pub drain_deadline_ms: u64,
    pub delivery_limit: i64,
    pub retry_delay_ms: u64,
    pub archive_max_age: String,
    pub outbox_batch_size: i64,
    pub outbox_poll_ms: u64,
}

impl Default for MessagingSettings {
    fn default() -> Self {
        let c = ConsumerSettings::default();
        let q = QueueSettings::default();
        let r = RelayConfig::default();
        MessagingSettings {
            prefetch: c.prefetch,
            in_process_attempts: c.in_process_attempts,
            max_retries: c.max_retries,
            drain_deadline_ms: c.drain_deadline.as_millis() as u64,
            delivery_limit: q.delivery_limit,
            retry_delay_ms: c.retry_delay.as_millis() as u64,
            archive_max_age: q.archive_max_age,
            outbox_batch_size: r.batch_size,
            outbox_poll_ms: r.poll_interval.as_millis() as u64,
        }
    }
}

impl MessagingSettings {
    pub fn consumer(&self) -> ConsumerSettings {
        ConsumerSettings {
            prefetch: self.prefetch.max(1),
            in_process_attempts: self.in_process_attempts.max(1),
            max_retries: self.max_retries,
            retry_delay: Duration::from_millis(self.retry_delay_ms),
            drain_deadline: Duration::from_millis(self.drain_deadline_ms),
        }
    }

    pub fn queues(&self) -> QueueSettings {
        QueueSettings {
            delivery_limit: self.delivery_limit,
            archive_max_age: self.archive_max_age.clone(),
        }
    }

    pub fn relay(&self) -> RelayConfig {
        RelayConfig {
            batch_size: self.outbox_batch_size.max(1),
            poll_interval: Duration::from_millis(self.outbox_poll_ms.max(10)),
            max_backoff: Duration::from_secs(10),
        }
    }
}

/// The settings every service has; a service's own settings embed these (flattened).
#[derive(Debug, Clone, Deserialize)]
pub struct ServiceSettings {
    pub database: DatabaseSettings,
    pub broker: BrokerConfig,
    pub ops: OpsSettings,
    #[serde(default)]
    pub telemetry: platform::telemetry::TelemetrySettings,
    #[serde(default)]
    pub messaging: MessagingSettings,
}

/// What distinguishes one service: its name, what it consumes, its handler and migrations.
pub struct ServiceSpec<H: Handler> {
    pub service: &'static str,
    pub command_lines: Vec<contracts::Line>,
    pub event_bindings: Vec<(contracts::Line, Vec<String>)>,
    pub handler: H,
    pub migrations: refinery::Runner,
}

pub struct ServiceRuntime<H: Handler> {
    settings: ServiceSettings,
    service: &'static str,
    handler: Arc<H>,
    topology: ServiceTopology,
    pool: Pool,
    broker: Broker,
    names: Names,
    switches: LineSwitches,
    listener: TcpListener,
}

impl<H: Handler> ServiceRuntime<H> {
    pub async fn build(settings: ServiceSettings, spec: ServiceSpec<H>) -> anyhow::Result<Self> {
        let pool = platform::db::connect(&settings.database).await?;
        platform::db::migrate(&settings.database, vec![crate::migrations(), spec.migrations]).await?;
        let names = Names::new(settings.broker.prefix.clone());
        let broker = Broker::new(settings.broker.clone(), spec.service);
        let topology = ServiceTopology {
            service: spec.service.to_owned(),
            command_lines: spec.command_lines,
            event_bindings: spec.event_bindings,
            settings: settings.messaging.queues(),
        };
        let ch = broker.channel().await.context("connecting to RabbitMQ")?;
        topology
            .declare(&ch, &names, broker.timeout())
            .await
            .context("declaring the topology")?;
        let _ = ch.close(200, "declared".into()).await;
        let listener = platform::ops::bind(&settings.ops)
            .await
            .context("binding the ops port")?;
        Ok(ServiceRuntime {
            settings,
            service: spec.service,
            handler: Arc::new(spec.handler),
            topology,
            pool,
            broker,
            names,
            switches: LineSwitches::default(),
            listener,
        })
    }

    pub fn ops_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("a bound listener has an address")
    }

    pub fn switches(&self) -> LineSwitches {
        self.switches.clone()
    }

    pub fn pool(&self) -> Pool {
        self.pool.clone()
    }

    pub fn names(&self) -> &Names {
        &self.names
    }

    pub fn topology(&self) -> &ServiceTopology {
        &self.topology
    }

    pub async fn run_until_stopped(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let draining = Arc::new(AtomicBool::new(false));
        let ready: ReadyCheck = {
            let (pool, broker, draining) = (self.pool.clone(), self.broker.clone(), draining.clone());
            Arc::new(move || {
                let (pool, broker, draining) = (pool.clone(), broker.clone(), draining.clone());
                Box::pin(async move {
                    if draining.load(Ordering::SeqCst) {
                        return Err("draining".to_owned());
                    }
                    if !broker.is_connected().await {
                        return Err("broker connection is not open".to_owned());
                    }
                    if !platform::db::is_reachable(&pool).await {
                        return Err("database is not reachable".to_owned());
                    }
                    Ok(())
                })
            })
        };
        let ops_addr = self.ops_addr();
        let ops_stop = CancellationToken::new();
        let ops = tokio::spawn(platform::ops::serve(self.listener, ready, ops_stop.clone()));

        let relay_stop = CancellationToken::new();
        let relay = Relay::new(
            self.pool.clone(),
            self.broker.clone(),
            self.settings.database.url_with_schema(),
            self.settings.database.schema.clone(),
            self.settings.messaging.relay(),
        );
        let relay = tokio::spawn(relay.run(relay_stop.clone()));

        let consumers = Consumers {
            pool: self.pool.clone(),
            broker: self.broker.clone(),
            names: self.names.clone(),
            service: self.service.to_owned(),
            schema: self.settings.database.schema.clone(),
            handler: self.handler.clone(),
            switches: self.switches.clone(),
            settings: self.settings.messaging.consumer(),
        };
        let queues = self.topology.consumed_queues(&self.names);
        tracing::info!(service = self.service, ops = %ops_addr, "service started");
        let consumer_stop = CancellationToken::new();
        let consuming = tokio::spawn(consumers.run(queues, consumer_stop.clone()));

        shutdown.cancelled().await;
        tracing::info!(service = self.service, "shutting down");
        draining.store(true, Ordering::SeqCst);
        consumer_stop.cancel();
        let _ = consuming.await;
        relay_stop.cancel();
        let _ = relay.await;
        self.broker.close().await;
        ops_stop.cancel();
        let _ = ops.await;
        tracing::info!(service = self.service, "stopped");
        Ok(())
    }
}
