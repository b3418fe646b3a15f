//! Transactional outbox and its relay (DESIGN.md §4).
//!
//! A service inserts what it will send inside the transaction that changes its tables (the
//! consumer loop does it for a handler's [`Outgoing`] messages). The [`Relay`] is woken in
//! process after such a commit, or by `NOTIFY` from other writers (polling as a fallback),
//! publishes batches per line in id order with publisher confirms and `mandatory`, treats a
//! returned message as a failure of that row alone, marks rows published only after their
//! confirm, backs a failing row off on its own and quarantines it after too many attempts.

use crate::broker::{Broker, BrokerError, backoff, bounded};
use crate::envelope::{Envelope, properties_at};
use crate::names::Names;
use crate::pools::LinePools;
use contracts::{Line, headers as h};
use deadpool_postgres::GenericClient;
use futures_util::future::join_all;
use lapin::Channel;
use lapin::options::{BasicPublishOptions, ConfirmSelectOptions};
use platform::db::DatabaseSettings;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// A message to be published by the relay.
#[derive(Debug, Clone)]
pub struct Outgoing {
    pub message_id: Uuid,
    pub exchange: String,
    pub routing_key: String,
    pub message_type: String,
    pub correlation_id: Option<String>,
    pub headers: BTreeMap<String, String>,
    pub body: serde_json::Value,
}

impl Outgoing {
    /// An event `<service>.<name>.v<version>` on `line`, caused by the message `cause`:
    /// carries its correlation id, channel and operator, and the current trace context.
    pub fn event(
        names: &Names,
        line: Line,
        service: &str,
        name: &str,
        version: u32,
        body: serde_json::Value,
        cause: Option<&Envelope>,
    ) -> Self {
        let message_id = Uuid::now_v7();
        let mut headers = BTreeMap::new();
        match cause {
            Some(c) => crate::trace::continue_from(&mut headers, &c.headers),
            None => crate::trace::inject_or_start(&mut headers),
        }
        if let Some(c) = cause {
            if let Some(ch) = c.channel {
                headers.insert(h::CHANNEL.into(), ch.as_str().into());
            }
            if let Some(op) = &c.operator {
                headers.insert(h::OPERATOR.into(), op.clone());
            }
        }
        Outgoing {
            message_id,
            exchange: names.events_exchange(),
            routing_key: format!("{line}.{service}.{name}"),
            message_type: format!("{service}.{name}.v{version}"),
            correlation_id: cause.map(Envelope::correlation),
            headers,
            body,
        }
    }
}

/// The channel the relay listens on for "there is something new" for `schema`.
pub fn notify_channel(schema: &str) -> String {
    format!("{schema}_outbox")
}

/// Inserts messages into the outbox of the current schema, inside the caller's transaction,
/// and wakes every relay of the schema (in any process) when that transaction commits.
pub async fn enqueue(
    tx: &impl GenericClient,
    notify: &str,
    messages: &[Outgoing],
) -> Result<(), tokio_postgres::Error> {
    if messages.is_empty() {
        return Ok(());
    }
    insert(tx, messages).await?;
    self::notify(tx, notify).await
}

/// Inserts messages into the outbox in one statement, without a `NOTIFY`: the consumer loop
/// wakes its own process's relay after the commit, which spares every transaction the
/// commit-time lock that `NOTIFY` takes.
pub async fn insert(tx: &impl GenericClient, messages: &[Outgoing]) -> Result<(), tokio_postgres::Error> {
    if messages.is_empty() {
        return Ok(());
    }
    let stmt = tx
        .prepare_cached(
            "insert into outbox (message_id, exchange, routing_key, message_type, correlation_id, headers, body)
             select * from unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[], $6::jsonb[], $7::jsonb[])",
        )
        .await?;
    let ids: Vec<Uuid> = messages.iter().map(|m| m.message_id).collect();
    let exchanges: Vec<&str> = messages.iter().map(|m| m.exchange.as_str()).collect();
    let keys: Vec<&str> = messages.iter().map(|m| m.routing_key.as_str()).collect();
    let types: Vec<&str> = messages.iter().map(|m| m.message_type.as_str()).collect();
    let correlations: Vec<Option<&str>> = messages.iter().map(|m| m.correlation_id.as_deref()).collect();
    let headers: Vec<serde_json::Value> = messages
        .iter()
        .map(|m| serde_json::to_value(&m.headers).unwrap_or_default())
        .collect();
    let bodies: Vec<&serde_json::Value> = messages.iter().map(|m| &m.body).collect();
    tx.execute(
        &stmt,
        &[&ids, &exchanges, &keys, &types, &correlations, &headers, &bodies],
    )
    .await?;
    Ok(())
}

/// Wakes the relay when the current transaction commits.
pub async fn notify(tx: &impl GenericClient, channel: &str) -> Result<(), tokio_postgres::Error> {
    tx.execute("select pg_notify($1, '')", &[&channel]).await?;
    Ok(())
}

/// In-process wake-ups of the relay, one per line.
#[derive(Clone, Default)]
pub struct RelayWakes {
    lines: Arc<HashMap<Line, Notify>>,
}

impl RelayWakes {
    pub fn new() -> Self {
        RelayWakes {
            lines: Arc::new(Line::ALL.into_iter().map(|l| (l, Notify::new())).collect()),
        }
    }

    pub fn wake_all(&self) {
        self.lines.values().for_each(Notify::notify_one);
    }

    fn get(&self, line: Line) -> Option<&Notify> {
        self.lines.get(&line)
    }
}

/// Since when each line's relay has been failing (`None`: healthy), for `/readyz`.
#[derive(Clone, Default)]
pub struct RelayStatus {
    failing_since: Arc<Mutex<HashMap<Line, Instant>>>,
}

impl RelayStatus {
    fn set(&self, line: Line, ok: bool) {
        let mut map = self.failing_since.lock().expect("relay status lock");
        if ok {
            map.remove(&line);
        } else {
            map.entry(line).or_insert_with(Instant::now);
        }
    }

    /// Lines whose relay has failed without a success for longer than `after`.
    pub fn failing_longer_than(&self, after: Duration) -> Vec<(Line, Duration)> {
        let map = self.failing_since.lock().expect("relay status lock");
        let mut out: Vec<(Line, Duration)> = map
            .iter()
            .map(|(l, since)| (*l, since.elapsed()))
            .filter(|(_, d)| *d > after)
            .collect();
        out.sort_by_key(|(l, _)| l.as_str());
        out
    }
}

#[derive(Debug, Clone)]
pub struct RelayConfig {
    pub batch_size: i64,
    pub poll_interval: Duration,
    pub max_backoff: Duration,
    /// Attempts after which a row that is always returned or refused is quarantined.
    pub max_attempts: i32,
}

impl Default for RelayConfig {
    fn default() -> Self {
        RelayConfig {
            batch_size: 500,
            poll_interval: Duration::from_secs(1),
            max_backoff: Duration::from_secs(10),
            max_attempts: 10,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    #[error(transparent)]
    Broker(#[from] BrokerError),
    #[error("outbox database access failed")]
    Db(#[from] tokio_postgres::Error),
    #[error("could not get a database connection")]
    Pool(#[from] deadpool_postgres::PoolError),
}

/// Publishes the outbox of one schema: one loop per line, each with its own database pool,
/// publishing connection and wake-up, so that one line's backlog never waits in front of
/// the other's (DESIGN.md §4).
pub struct Relay {
    pools: LinePools,
    brokers: HashMap<Line, Broker>,
    /// For the LISTEN connection (pooled connections drop notifications).
    database: DatabaseSettings,
    config: RelayConfig,
    wakes: RelayWakes,
    status: RelayStatus,
    lag_recorded: Mutex<HashMap<Line, Instant>>,
}

impl Relay {
    pub fn new(
        pools: LinePools,
        brokers: HashMap<Line, Broker>,
        database: DatabaseSettings,
        config: RelayConfig,
        wakes: RelayWakes,
        status: RelayStatus,
    ) -> Self {
        Relay {
            pools,
            brokers,
            database,
            config,
            wakes,
            status,
            lag_recorded: Mutex::new(HashMap::new()),
        }
    }

    /// Runs until `shutdown`, then publishes what is left once more (flush) and returns.
    pub async fn run(self, shutdown: CancellationToken) {
        let listener = tokio::spawn(listen(
            self.database.clone(),
            notify_channel(&self.database.schema),
            self.wakes.clone(),
            shutdown.clone(),
        ));
        let this = Arc::new(self);
        let mut loops = tokio::task::JoinSet::new();
        for line in Line::ALL {
            if this.brokers.contains_key(&line) {
                loops.spawn(this.clone().line_loop(line, shutdown.clone()));
            }
        }
        while loops.join_next().await.is_some() {}
        listener.abort();
    }

    async fn line_loop(self: Arc<Self>, line: Line, shutdown: CancellationToken) {
        let wake = self.wakes.get(line).expect("a wake per line");
        let mut channel: Option<Channel> = None;
        let mut failures = 0u32;
        loop {
            match self.drain(line, &mut channel).await {
                Ok(_) => {
                    failures = 0;
                    self.status.set(line, true);
                }
                Err(e) => {
                    channel = None;
                    failures += 1;
                    self.status.set(line, false);
                    metrics::counter!("outbox_publish_failures_total", "schema" => self.database.schema.clone(), "line" => line.as_str())
                        .increment(1);
                    let wait = backoff(failures, self.config.max_backoff);
                    tracing::warn!(%line, error = %e, cause = ?std::error::Error::source(&e), ?wait, "outbox relay failed; backing off");
                    tokio::select! {
                        _ = tokio::time::sleep(wait) => continue,
                        _ = shutdown.cancelled() => break,
                    }
                }
            }
            tokio::select! {
                _ = wake.notified() => {}
                _ = tokio::time::sleep(self.config.poll_interval) => {}
                _ = shutdown.cancelled() => break,
            }
        }
        // Flush: whatever was committed before shutdown goes out now if the broker allows.
        if let Err(e) = self.drain(line, &mut channel).await {
            tracing::warn!(%line, error = %e, "final outbox flush failed; the rows stay for the next start");
        }
        // Closed here, before the runtime closes the connection, so shutdown is quiet.
        if let (Some(ch), Some(broker)) = (channel.take(), self.brokers.get(&line)) {
            let _ = bounded(
                "channel.close",
                broker.timeout(),
                ch.close(200, "relay stopped".into()),
            )
            .await;
        }
    }

    /// Publishes batches of `line` until nothing is due. Returns how many were published.
    pub async fn drain(&self, line: Line, channel: &mut Option<Channel>) -> Result<usize, RelayError> {
        let mut total = 0;
        loop {
            let (taken, published) = self.publish_batch(line, channel).await?;
            total += published;
            if taken < self.config.batch_size as usize {
                // The lag gauges cost a scan: at most every few seconds, not after every wake.
                let due = {
                    let mut last = self.lag_recorded.lock().expect("lag lock");
                    let due = last
                        .get(&line)
                        .is_none_or(|t| t.elapsed() >= Duration::from_secs(5));
                    if due {
                        last.insert(line, Instant::now());
                    }
                    due
                };
                if due {
                    self.record_lag(line).await;
                }
                return Ok(total);
            }
        }
    }

    async fn record_lag(&self, line: Line) {
        if let Ok(client) = self.pools.get(line).get().await
            && let Ok(row) = client
                .query_one(
                    "select count(*) filter (where failed_at is null),
                            coalesce(extract(epoch from now() - min(created_at) filter (where failed_at is null)), 0)::float8,
                            count(*) filter (where failed_at is not null)
                     from outbox where published_at is null and line = $1",
                    &[&line.as_str()],
                )
                .await
        {
            let pending: i64 = row.get(0);
            let age: f64 = row.get(1);
            let quarantined: i64 = row.get(2);
            let labels = [("schema", self.database.schema.clone()), ("line", line.as_str().to_owned())];
            metrics::gauge!("outbox_pending", &labels).set(pending as f64);
            metrics::gauge!("outbox_lag_seconds", &labels).set(age);
            metrics::gauge!("outbox_quarantined", &labels).set(quarantined as f64);
        }
    }

    /// One batch: returns (rows taken, rows published). A row the broker returns or refuses
    /// waits on its own backoff and is quarantined after `max_attempts`; the rest go on.
    async fn publish_batch(
        &self,
        line: Line,
        channel: &mut Option<Channel>,
    ) -> Result<(usize, usize), RelayError> {
        let broker = self.brokers.get(&line).expect("a broker per relayed line");
        let mut client = self.pools.get(line).get().await?;
        let tx = client.transaction().await?;
        // SKIP LOCKED lets several replicas relay side by side without double work.
        let select = tx
            .prepare_cached(
                "select id, message_id, exchange, routing_key, message_type, correlation_id, headers, body, created_at
                 from outbox
                 where line = $1 and published_at is null and failed_at is null
                   and (next_attempt_at is null or next_attempt_at <= now())
                 order by id limit $2 for update skip locked",
            )
            .await?;
        let rows = tx
            .query(&select, &[&line.as_str(), &self.config.batch_size])
            .await?;
        if rows.is_empty() {
            return Ok((0, 0));
        }
        if channel.as_ref().is_none_or(|c| !c.status().connected()) {
            let ch = broker.channel().await?;
            bounded(
                "confirm.select",
                broker.timeout(),
                ch.confirm_select(ConfirmSelectOptions::default()),
            )
            .await?;
            *channel = Some(ch);
        }
        let ch = channel.as_ref().expect("channel set above");
        let timeout = broker.timeout();
        // Pipelined: publish the whole batch, then wait for all confirms.
        let mut pending = Vec::with_capacity(rows.len());
        let mut channel_error: Option<(i64, BrokerError)> = None;
        for row in &rows {
            let id: i64 = row.get(0);
            let message_id: Uuid = row.get(1);
            let exchange: String = row.get(2);
            let routing_key: String = row.get(3);
            let message_type: String = row.get(4);
            let correlation_id: Option<String> = row.get(5);
            let headers: serde_json::Value = row.get(6);
            let body: serde_json::Value = row.get(7);
            let created_at: chrono::DateTime<chrono::Utc> = row.get(8);
            let headers: BTreeMap<String, String> = serde_json::from_value(headers).unwrap_or_default();
            let props = properties_at(
                created_at,
                message_id,
                &message_type,
                correlation_id.as_deref(),
                None,
                broker.app_id(),
                headers,
            );
            let payload = serde_json::to_vec(&body).unwrap_or_default();
            // mandatory: an event that no queue receives is a topology error, not a success.
            let opts = BasicPublishOptions {
                mandatory: true,
                ..Default::default()
            };
            match bounded(
                "basic.publish",
                timeout,
                ch.basic_publish(
                    exchange.as_str().into(),
                    routing_key.as_str().into(),
                    opts,
                    &payload,
                    props,
                ),
            )
            .await
            {
                Ok(confirm) => pending.push((id, routing_key, confirm)),
                Err(e) => {
                    channel_error = Some((id, e));
                    break;
                }
            }
        }
        let results = join_all(pending.into_iter().map(|(id, key, confirm)| async move {
            let outcome = crate::broker::confirmed(timeout, confirm)
                .await
                .map_err(|e| match e {
                    BrokerError::Returned(why) => BrokerError::Returned(format!("{key}: {why}")),
                    other => other,
                });
            (id, outcome)
        }))
        .await;
        // Only the rows whose confirm arrived are published.
        let published: Vec<i64> = results
            .iter()
            .filter(|(_, r)| r.is_ok())
            .map(|(id, _)| *id)
            .collect();
        let mut row_failures: Vec<(i64, String)> = Vec::new();
        for (id, r) in results {
            match r {
                Ok(()) => {}
                // The broker judged this row: it alone backs off.
                Err(e @ (BrokerError::Returned(_) | BrokerError::Nacked)) => {
                    row_failures.push((id, e.to_string()))
                }
                // The channel broke: the first row it broke on takes the attempt.
                Err(e) => {
                    if channel_error.is_none() {
                        channel_error = Some((id, e));
                    }
                }
            }
        }
        if let Some((id, e)) = &channel_error {
            row_failures.push((*id, format!("{e}: {:?}", std::error::Error::source(e))));
        }
        if !published.is_empty() {
            let mark = tx
                .prepare_cached("update outbox set published_at = now() where id = any($1)")
                .await?;
            tx.execute(&mark, &[&published]).await?;
        }
        for (id, why) in &row_failures {
            let row = tx
                .query_one(
                    "update outbox set attempts = attempts + 1, last_error = $2,
                            next_attempt_at = now() + make_interval(secs => least(300, power(2, attempts))),
                            failed_at = case when attempts + 1 >= $3 then now() end
                     where id = $1
                     returning failed_at is not null, routing_key",
                    &[id, why, &self.config.max_attempts],
                )
                .await?;
            let quarantined: bool = row.get(0);
            let key: String = row.get(1);
            if quarantined {
                metrics::counter!("outbox_quarantined_total", "schema" => self.database.schema.clone(), "line" => line.as_str())
                    .increment(1);
                tracing::error!(id, routing_key = %key, reason = %why, "outbox row quarantined after too many attempts; see insurancectl outbox failed");
            } else {
                tracing::warn!(id, routing_key = %key, reason = %why, "outbox row not accepted; it backs off on its own");
            }
        }
        tx.commit().await?;
        metrics::counter!("messages_published_total", "schema" => self.database.schema.clone(), "line" => line.as_str())
            .increment(published.len() as u64);
        match channel_error {
            Some((_, e)) => Err(e.into()),
            None => Ok((rows.len(), published.len())),
        }
    }
}

/// A row the relay gave up on.
#[derive(Debug, Clone, serde::Serialize)]
pub struct QuarantinedRow {
    pub id: i64,
    pub message_id: Uuid,
    pub routing_key: String,
    pub message_type: String,
    pub attempts: i32,
    pub last_error: Option<String>,
    pub created_at: chrono::DateTime<chrono::Utc>,
    pub failed_at: chrono::DateTime<chrono::Utc>,
}

/// Quarantined rows of the current schema, oldest first. (These operator functions take a
/// plain client, so that the command-line tool needs no pool.)
pub async fn quarantined(
    client: &impl tokio_postgres::GenericClient,
    limit: i64,
) -> Result<Vec<QuarantinedRow>, tokio_postgres::Error> {
    let rows = client
        .query(
            "select id, message_id, routing_key, message_type, attempts, last_error, created_at, failed_at
             from outbox where failed_at is not null and published_at is null order by id limit $1",
            &[&limit],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| QuarantinedRow {
            id: r.get(0),
            message_id: r.get(1),
            routing_key: r.get(2),
            message_type: r.get(3),
            attempts: r.get(4),
            last_error: r.get(5),
            created_at: r.get(6),
            failed_at: r.get(7),
        })
        .collect())
}

/// Puts quarantined rows (one, or all) back in the relay's hands with a fresh attempt count,
/// and wakes the relays of `schema`. Returns how many.
pub async fn retry_quarantined(
    client: &impl tokio_postgres::GenericClient,
    schema: &str,
    id: Option<i64>,
) -> Result<u64, tokio_postgres::Error> {
    let n = client
        .execute(
            "update outbox set failed_at = null, attempts = 0, next_attempt_at = null
             where failed_at is not null and published_at is null and ($1::bigint is null or id = $1)",
            &[&id],
        )
        .await?;
    client
        .execute("select pg_notify($1, '')", &[&notify_channel(schema)])
        .await?;
    Ok(n)
}

/// Deletes published outbox rows and inbox rows older than `horizon`, in batches. Rows not
/// yet published (quarantined ones included) are never deleted. Returns (outbox, inbox).
pub async fn prune(
    client: &impl tokio_postgres::GenericClient,
    horizon: Duration,
) -> Result<(u64, u64), tokio_postgres::Error> {
    let secs = horizon.as_secs_f64();
    let mut outbox = 0;
    loop {
        let n = client
            .execute(
                "delete from outbox where id in (
                     select id from outbox
                     where published_at is not null and published_at < now() - make_interval(secs => $1)
                     limit 10000)",
                &[&secs],
            )
            .await?;
        outbox += n;
        if n < 10000 {
            break;
        }
    }
    let mut inbox = 0;
    loop {
        let n = client
            .execute(
                "delete from inbox where message_id in (
                     select message_id from inbox
                     where received_at < now() - make_interval(secs => $1)
                     limit 10000)",
                &[&secs],
            )
            .await?;
        inbox += n;
        if n < 10000 {
            break;
        }
    }
    Ok((outbox, inbox))
}

/// Keeps a LISTEN connection open and pokes `wake` on every notification; reconnects with
/// backoff. Polling in the relay covers the gaps while it is down.
async fn listen(database: DatabaseSettings, channel: String, wake: RelayWakes, shutdown: CancellationToken) {
    let mut attempt = 0u32;
    while !shutdown.is_cancelled() {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let connect = tokio::time::timeout(
            Duration::from_secs(10),
            platform::db::connect_one(&database, Some(tx)),
        );
        match connect.await {
            Ok(Ok((client, driver))) => {
                let quoted = format!("listen \"{}\"", channel.replace('"', "\"\""));
                if client.batch_execute(&quoted).await.is_ok() {
                    attempt = 0;
                    wake.wake_all();
                    loop {
                        tokio::select! {
                            m = rx.recv() => match m { Some(_) => wake.wake_all(), None => break },
                            _ = shutdown.cancelled() => break,
                        }
                    }
                }
                drop(client);
                driver.abort();
            }
            Ok(Err(e)) => tracing::debug!(error = %format!("{e:#}"), "outbox LISTEN connection failed"),
            Err(_) => tracing::debug!("outbox LISTEN connection timed out"),
        }
        attempt += 1;
        tokio::select! {
            _ = tokio::time::sleep(backoff(attempt, Duration::from_secs(5))) => {}
            _ = shutdown.cancelled() => {}
        }
    }
}
