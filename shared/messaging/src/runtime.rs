//! The shape every service binary shares (STYLE.md: `build` then `run_until_stopped`).
//!
//! `build` creates the schema, runs the messaging and service migrations, declares the
//! topology and binds the ops port; `run_until_stopped` runs the consumers, the outbox relay
//! and the ops server under one cancellation token. Shutdown order (DESIGN.md §6): not ready
//! → consumers cancelled and in-flight work finished and acked → relay flushed → broker
//! closed.

use crate::broker::{Broker, BrokerConfig, backoff};
use crate::consumer::{ConsumerSettings, Consumers, Handler};
use crate::health::DbHealth;
use crate::lines::LineSwitches;
use crate::names::Names;
use crate::outbox::{Relay, RelayConfig, RelayStatus, RelayWakes};
use crate::pools::LinePools;
use crate::topology::{QueueSettings, ServiceTopology, ServiceTopologySpec};
use anyhow::Context;
use contracts::Line;
use deadpool_postgres::Pool;
use platform::db::DatabaseSettings;
use platform::ops::{OpsSettings, ReadyCheck};
use serde::Deserialize;
use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
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
    /// Delay of each retry tier (each a queue of its own), in order.
    pub retry_tiers_ms: Vec<u64>,
    /// The longest one handler with its transaction may run.
    pub handler_timeout_ms: u64,
    pub archive_max_age: String,
    pub outbox_batch_size: i64,
    pub outbox_poll_ms: u64,
    /// Attempts after which an outbox row the broker keeps refusing is quarantined.
    pub outbox_max_attempts: i32,
    /// How long published outbox rows and inbox rows are kept: longer than any redelivery,
    /// client retry or freeze (a repeat after that is processed as new).
    pub retention_hours: u64,
    pub retention_interval_ms: u64,
    /// Everything of a shutdown after SIGTERM, inside Kubernetes' 30 s grace period.
    pub shutdown_deadline_ms: u64,
    /// `/readyz` fails once a line's relay has failed without a success for this long.
    pub relay_unhealthy_after_ms: u64,
    pub health_interval_ms: u64,
    /// How long start-up waits for the database and the broker (0: for ever). A service
    /// never exits because a dependency is away; it waits, not ready, and says so.
    pub startup_wait_ms: u64,
    /// Freezing a line: the drill clock, tick and refresh intervals, thaw batches.
    pub freeze: crate::freeze::FreezeSettings,
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
            retry_tiers_ms: q.retry_tiers_ms,
            handler_timeout_ms: c.handler_timeout.as_millis() as u64,
            archive_max_age: q.archive_max_age,
            outbox_batch_size: r.batch_size,
            outbox_poll_ms: r.poll_interval.as_millis() as u64,
            outbox_max_attempts: r.max_attempts,
            retention_hours: 24 * 90,
            retention_interval_ms: 3_600_000,
            shutdown_deadline_ms: 25_000,
            relay_unhealthy_after_ms: 30_000,
            health_interval_ms: 1_000,
            startup_wait_ms: 0,
            freeze: Default::default(),
        }
    }
}

impl MessagingSettings {
    /// The `messaging` section of a service's `configuration/base.yaml` (given as text),
    /// defaults for what it leaves out: what a deployment runs with unless it overrides it.
    pub fn from_base_yaml(base_yaml: &str) -> anyhow::Result<Self> {
        #[derive(Deserialize)]
        struct Section {
            #[serde(default)]
            messaging: MessagingSettings,
        }
        let s: Section = platform::config::from_yaml_str(base_yaml)?;
        Ok(s.messaging)
    }

    pub fn consumer(&self) -> ConsumerSettings {
        ConsumerSettings {
            prefetch: self.prefetch.max(1),
            in_process_attempts: self.in_process_attempts.max(1),
            max_retries: self.max_retries,
            retry_tiers: self.queues().retry_tiers(),
            drain_deadline: Duration::from_millis(self.drain_deadline_ms),
            handler_timeout: Duration::from_millis(self.handler_timeout_ms.max(1)),
        }
    }

    pub fn queues(&self) -> QueueSettings {
        QueueSettings {
            delivery_limit: self.delivery_limit,
            archive_max_age: self.archive_max_age.clone(),
            retry_tiers_ms: self.retry_tiers_ms.clone(),
        }
    }

    pub fn relay(&self) -> RelayConfig {
        RelayConfig {
            batch_size: self.outbox_batch_size.max(1),
            poll_interval: Duration::from_millis(self.outbox_poll_ms.max(10)),
            max_backoff: Duration::from_secs(10),
            max_attempts: self.outbox_max_attempts.max(1),
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

/// What every service's `main` does, so that a new service writes only its settings and
/// `build`: telemetry first, then the (lazy) `build` future, then run until SIGTERM or SIGINT.
pub async fn serve<H, Fut>(
    service: &str,
    telemetry: &platform::telemetry::TelemetrySettings,
    build: Fut,
) -> anyhow::Result<()>
where
    H: Handler,
    Fut: Future<Output = anyhow::Result<ServiceRuntime<H>>>,
{
    serve_with(service, telemetry, build, |_, _| async {}).await
}

/// `serve` with a background task beside the consumers (a scheduler, a sender): it is given
/// the built runtime and the shutdown token, and is awaited after the runtime has stopped.
pub async fn serve_with<H, Fut, B, BFut>(
    service: &str,
    telemetry: &platform::telemetry::TelemetrySettings,
    build: Fut,
    background: B,
) -> anyhow::Result<()>
where
    H: Handler,
    Fut: Future<Output = anyhow::Result<ServiceRuntime<H>>>,
    B: FnOnce(&ServiceRuntime<H>, tokio_util::sync::CancellationToken) -> BFut,
    BFut: Future<Output = ()> + Send + 'static,
{
    let _telemetry = platform::telemetry::init(service, telemetry)?;
    let app = build.await?;
    let shutdown = tokio_util::sync::CancellationToken::new();
    tokio::spawn(platform::shutdown::on_signal(shutdown.clone()));
    let task = tokio::spawn(background(&app, shutdown.clone()));
    let result = app.run_until_stopped(shutdown.clone()).await;
    // A runtime that stopped on an error stops the background task too.
    shutdown.cancel();
    let _ = task.await;
    result
}

/// A service's embedded migrations, recorded in its own history table (`<schema>_schema_history`).
pub fn migrations(mut runner: refinery::Runner, history_table: &str) -> refinery::Runner {
    runner.set_migration_table_name(history_table);
    runner
}

/// What distinguishes one service: its topology (name, what it consumes and sends: the
/// service crate's `topology()`), its handler and migrations.
pub struct ServiceSpec<H: Handler> {
    pub topology: ServiceTopologySpec,
    pub handler: H,
    pub migrations: refinery::Runner,
}

pub struct ServiceRuntime<H: Handler> {
    settings: ServiceSettings,
    service: &'static str,
    handler: Arc<H>,
    topology: ServiceTopology,
    pools: LinePools,
    consume: HashMap<Line, Broker>,
    publish: HashMap<Line, Broker>,
    names: Names,
    switches: LineSwitches,
    freeze: crate::freeze::Freeze,
    listener: TcpListener,
}

/// Retries a start-up step with backoff until it succeeds or `wait` (0: no limit) runs out.
async fn patiently<T, F, Fut>(what: &str, wait: Duration, mut step: F) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = anyhow::Result<T>>,
{
    let started = Instant::now();
    let mut attempt = 0u32;
    loop {
        match step().await {
            Ok(v) => return Ok(v),
            Err(e) if wait.is_zero() || started.elapsed() < wait => {
                attempt += 1;
                let pause = backoff(attempt, Duration::from_secs(10));
                tracing::warn!(error = %format!("{e:#}"), ?pause, "{what} failed; waiting and trying again");
                tokio::time::sleep(pause).await;
            }
            Err(e) => return Err(e.context(format!("{what} (gave up after {wait:?})"))),
        }
    }
}

impl<H: Handler> ServiceRuntime<H> {
    pub async fn build(settings: ServiceSettings, spec: ServiceSpec<H>) -> anyhow::Result<Self> {
        let wait = Duration::from_millis(settings.messaging.startup_wait_ms);
        let pools = patiently("connecting to Postgres", wait, || {
            LinePools::connect(&settings.database)
        })
        .await?;
        // Refinery runners are consumed by a run: migrate once, retrying only the connection.
        patiently("reaching Postgres for migrations", wait, || async {
            platform::db::connect(&settings.database).await.map(|_| ())
        })
        .await?;
        platform::db::migrate(&settings.database, vec![crate::migrations(), spec.migrations]).await?;
        let names = Names::new(settings.broker.prefix.clone());
        let service = spec.topology.service;
        let topology = ServiceTopology::new(&spec.topology, settings.messaging.queues());
        // Declared on a connection of its own, closed afterwards.
        let admin = Broker::for_role(settings.broker.clone(), service, "declare");
        patiently("declaring the topology", wait, || async {
            let ch = admin.channel().await.context("connecting to RabbitMQ")?;
            topology
                .declare(&ch, &names, admin.timeout())
                .await
                .context("declaring the topology")?;
            let _ =
                crate::broker::bounded("channel.close", admin.timeout(), ch.close(200, "declared".into()))
                    .await;
            Ok(())
        })
        .await?;
        admin.close().await;
        let listener = platform::ops::bind(&settings.ops)
            .await
            .context("binding the ops port")?;
        let per_line = |role: &str| -> HashMap<Line, Broker> {
            Line::ALL
                .into_iter()
                .map(|l| {
                    let b = Broker::for_role(settings.broker.clone(), service, &format!("{role}-{l}"));
                    (l, b)
                })
                .collect()
        };
        Ok(ServiceRuntime {
            service,
            handler: Arc::new(spec.handler),
            topology,
            pools,
            consume: per_line("consume"),
            publish: per_line("publish"),
            names,
            switches: LineSwitches::default(),
            freeze: crate::freeze::Freeze::new(service, settings.messaging.freeze.clock.clock()),
            listener,
            settings,
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

    /// The freeze orders this service holds, on its clock (for handlers' deadlines, tests).
    pub fn freeze(&self) -> crate::freeze::Freeze {
        self.freeze.clone()
    }

    /// A pool for work that belongs to no line (start-up seeding, tests' assertions).
    pub fn pool(&self) -> Pool {
        self.pools.get(Line::Common).clone()
    }

    pub fn pools(&self) -> LinePools {
        self.pools.clone()
    }

    pub fn names(&self) -> &Names {
        &self.names
    }

    pub fn topology(&self) -> &ServiceTopology {
        &self.topology
    }

    pub async fn run_until_stopped(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let m = self.settings.messaging.clone();
        let draining = Arc::new(AtomicBool::new(false));
        let health = DbHealth::default();
        let status = RelayStatus::default();
        let wakes = RelayWakes::new();
        let consumed_lines: Vec<Line> = {
            let mut l: Vec<Line> = self
                .topology
                .consumed_queues(&self.names)
                .iter()
                .map(|q| q.line)
                .collect();
            l.dedup();
            l
        };

        let background = CancellationToken::new();
        let health_task = tokio::spawn(health.clone().run(
            self.settings.database.clone(),
            Duration::from_millis(m.health_interval_ms.max(50)),
            background.clone(),
        ));

        // Never waits on anything: every answer is read from state kept by the parts.
        let ready: ReadyCheck = {
            let (health, status, draining) = (health.clone(), status.clone(), draining.clone());
            let consume: Vec<(Line, Broker)> = consumed_lines
                .iter()
                .map(|l| (*l, self.consume[l].clone()))
                .collect();
            let unhealthy_after = Duration::from_millis(m.relay_unhealthy_after_ms);
            Arc::new(move || {
                let (health, status, draining, consume) =
                    (health.clone(), status.clone(), draining.clone(), consume.clone());
                Box::pin(async move {
                    let mut why = Vec::new();
                    if draining.load(Ordering::SeqCst) {
                        why.push("draining".to_owned());
                    }
                    if !health.is_up() {
                        why.push("database is not reachable".to_owned());
                    }
                    for (line, b) in &consume {
                        if !b.is_connected().await {
                            why.push(format!("{line} consume connection is not open"));
                        }
                    }
                    for (line, d) in status.failing_longer_than(unhealthy_after) {
                        why.push(format!("{line} outbox relay failing for {}s", d.as_secs()));
                    }
                    if why.is_empty() {
                        Ok(())
                    } else {
                        Err(why.join("; "))
                    }
                })
            })
        };
        let ops_addr = self.ops_addr();
        let ops_stop = CancellationToken::new();
        let ops = tokio::spawn(platform::ops::serve(self.listener, ready, ops_stop.clone()));

        let relay_stop = CancellationToken::new();
        let relay = Relay::new(
            self.pools.clone(),
            self.publish.clone(),
            self.settings.database.clone(),
            m.relay(),
            wakes.clone(),
            status,
        );
        let relay = tokio::spawn(relay.run(relay_stop.clone()));

        let data_sharing = tokio::spawn(crate::freeze::data_sharing::run(
            self.freeze.clone(),
            self.names.clone(),
            m.freeze.data_sharing.clone(),
            self.settings.broker.url.clone(),
            m.freeze.tick(),
            background.clone(),
        ));

        let retention = tokio::spawn(retention(
            self.pools.get(Line::Common).clone(),
            Duration::from_secs(m.retention_hours.max(1) * 3600),
            Duration::from_millis(m.retention_interval_ms.max(1000)),
            self.pools.clone(),
            background.clone(),
        ));

        let consumers = Consumers {
            pools: self.pools.clone(),
            consume: self.consume.clone(),
            publish: self.publish.clone(),
            service: self.service.to_owned(),
            handler: self.handler.clone(),
            switches: self.switches.clone(),
            health: health.clone(),
            wakes,
            settings: m.consumer(),
            freeze: self.freeze.clone(),
            freeze_settings: m.freeze.clone(),
            names: self.names.clone(),
        };
        let queues = self.topology.consumed_queues(&self.names);
        tracing::info!(service = self.service, ops = %ops_addr, "service started");
        let consumer_stop = CancellationToken::new();
        let consuming = tokio::spawn(consumers.run(queues, consumer_stop.clone()));

        shutdown.cancelled().await;
        tracing::info!(service = self.service, "shutting down");
        draining.store(true, Ordering::SeqCst);
        let deadline = Duration::from_millis(m.shutdown_deadline_ms.max(1000));
        let (publish, consume) = (self.publish.clone(), self.consume.clone());
        let orderly = async {
            consumer_stop.cancel();
            let _ = consuming.await;
            relay_stop.cancel();
            let _ = relay.await;
            for b in publish.values().chain(consume.values()) {
                b.close().await;
            }
        };
        if tokio::time::timeout(deadline, orderly).await.is_err() {
            tracing::warn!(
                ?deadline,
                "shutdown deadline passed; unfinished messages will be redelivered"
            );
        }
        background.cancel();
        let _ = health_task.await;
        let _ = retention.await;
        let _ = data_sharing.await;
        ops_stop.cancel();
        let _ = ops.await;
        tracing::info!(service = self.service, "stopped");
        Ok(())
    }
}

/// How long a database connection may stay idle in a pool before it is closed.
const IDLE_CONNECTION: Duration = Duration::from_secs(30);

/// Prunes published outbox rows and old inbox rows every `interval`, records the pools' use
/// per line and closes connections idle for longer than [`IDLE_CONNECTION`].
async fn retention(
    pool: Pool,
    horizon: Duration,
    interval: Duration,
    pools: LinePools,
    stop: CancellationToken,
) {
    let mut last_prune: Option<Instant> = None;
    while !stop.is_cancelled() {
        pools.record_metrics();
        pools.close_idle(IDLE_CONNECTION);
        if last_prune.is_none_or(|t| t.elapsed() >= interval) {
            last_prune = Some(Instant::now());
            if let Ok(client) = pool.get().await {
                match crate::outbox::prune(&**client, horizon).await {
                    Ok((o, i)) if o + i > 0 => tracing::info!(outbox = o, inbox = i, "pruned old rows"),
                    Ok(_) => {}
                    Err(e) => tracing::warn!(error = %e, "pruning old rows failed; will try again"),
                }
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(5)) => {}
            _ = stop.cancelled() => {}
        }
    }
}
