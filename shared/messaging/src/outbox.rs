//! Transactional outbox and its relay (DESIGN.md §4).
//!
//! A service inserts what it will send with [`enqueue`] inside the transaction that changes
//! its tables. The [`Relay`] is woken by `NOTIFY` (polling as a fallback), publishes batches
//! in id order with publisher confirms and `mandatory`, treats a returned message as a
//! failure, marks rows published only after the confirm, and backs off on failure.

use crate::broker::{Broker, BrokerError, backoff, bounded};
use crate::envelope::{Envelope, properties};
use crate::names::Names;
use contracts::{Line, headers as h};
use deadpool_postgres::{GenericClient, Pool};
use futures_util::future::join_all;
use lapin::Channel;
use lapin::options::{BasicPublishOptions, ConfirmSelectOptions};
use std::collections::BTreeMap;
use std::time::Duration;
use tokio_postgres::AsyncMessage;
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
/// and wakes the relay when that transaction commits.
pub async fn enqueue(
    tx: &impl GenericClient,
    notify: &str,
    messages: &[Outgoing],
) -> Result<(), tokio_postgres::Error> {
    if messages.is_empty() {
        return Ok(());
    }
    let stmt = tx
        .prepare_cached(
            "insert into outbox (message_id, exchange, routing_key, message_type, correlation_id, headers, body)
             values ($1, $2, $3, $4, $5, $6, $7)",
        )
        .await?;
    for m in messages {
        let headers = serde_json::to_value(&m.headers).unwrap_or_default();
        tx.execute(
            &stmt,
            &[
                &m.message_id,
                &m.exchange,
                &m.routing_key,
                &m.message_type,
                &m.correlation_id,
                &headers,
                &m.body,
            ],
        )
        .await?;
    }
    self::notify(tx, notify).await
}

/// Wakes the relay when the current transaction commits.
pub async fn notify(tx: &impl GenericClient, channel: &str) -> Result<(), tokio_postgres::Error> {
    tx.execute("select pg_notify($1, '')", &[&channel]).await?;
    Ok(())
}

#[derive(Debug, Clone)]
pub struct RelayConfig {
    pub batch_size: i64,
    pub poll_interval: Duration,
    pub max_backoff: Duration,
}

impl Default for RelayConfig {
    fn default() -> Self {
        RelayConfig {
            batch_size: 500,
            poll_interval: Duration::from_secs(1),
            max_backoff: Duration::from_secs(10),
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

/// Publishes the outbox of one schema.
pub struct Relay {
    pool: Pool,
    broker: Broker,
    /// Connection string for the LISTEN connection (pooled connections drop notifications).
    listen_url: String,
    schema: String,
    config: RelayConfig,
}

impl Relay {
    pub fn new(pool: Pool, broker: Broker, listen_url: String, schema: String, config: RelayConfig) -> Self {
        Relay {
            pool,
            broker,
            listen_url,
            schema,
            config,
        }
    }

    /// Runs until `shutdown`, then publishes what is left once more (flush) and returns.
    pub async fn run(self, shutdown: CancellationToken) {
        let wake = std::sync::Arc::new(tokio::sync::Notify::new());
        let listener = tokio::spawn(listen(
            self.listen_url.clone(),
            notify_channel(&self.schema),
            wake.clone(),
            shutdown.clone(),
        ));
        let mut channel: Option<Channel> = None;
        let mut failures = 0u32;
        loop {
            match self.drain(&mut channel).await {
                Ok(_) => failures = 0,
                Err(e) => {
                    channel = None;
                    failures += 1;
                    metrics::counter!("outbox_publish_failures_total", "schema" => self.schema.clone())
                        .increment(1);
                    let wait = backoff(failures, self.config.max_backoff);
                    tracing::warn!(error = %e, cause = ?std::error::Error::source(&e), ?wait, "outbox relay failed; backing off");
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
        if let Err(e) = self.drain(&mut channel).await {
            tracing::warn!(error = %e, "final outbox flush failed; the rows stay for the next start");
        }
        // Closed here, before the runtime closes the connection, so shutdown is quiet.
        if let Some(ch) = channel.take() {
            let _ = bounded(
                "channel.close",
                self.broker.timeout(),
                ch.close(200, "relay stopped".into()),
            )
            .await;
        }
        listener.abort();
    }

    /// Publishes batches until the outbox is empty. Returns how many were published.
    pub async fn drain(&self, channel: &mut Option<Channel>) -> Result<usize, RelayError> {
        let mut total = 0;
        loop {
            let n = self.publish_batch(channel).await?;
            total += n;
            if n < self.config.batch_size as usize {
                self.record_lag().await;
                return Ok(total);
            }
        }
    }

    async fn record_lag(&self) {
        if let Ok(client) = self.pool.get().await
            && let Ok(row) = client
                .query_one(
                    "select count(*), coalesce(extract(epoch from now() - min(created_at)), 0)::float8
                     from outbox where published_at is null",
                    &[],
                )
                .await
        {
            let pending: i64 = row.get(0);
            let age: f64 = row.get(1);
            metrics::gauge!("outbox_pending", "schema" => self.schema.clone()).set(pending as f64);
            metrics::gauge!("outbox_lag_seconds", "schema" => self.schema.clone()).set(age);
        }
    }

    async fn publish_batch(&self, channel: &mut Option<Channel>) -> Result<usize, RelayError> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        // SKIP LOCKED lets several replicas relay side by side without double work.
        let rows = tx
            .query(
                "select id, message_id, exchange, routing_key, message_type, correlation_id, headers, body
                 from outbox where published_at is null order by id limit $1 for update skip locked",
                &[&self.config.batch_size],
            )
            .await?;
        if rows.is_empty() {
            return Ok(0);
        }
        if channel.as_ref().is_none_or(|c| !c.status().connected()) {
            let ch = self.broker.channel().await?;
            bounded(
                "confirm.select",
                self.broker.timeout(),
                ch.confirm_select(ConfirmSelectOptions::default()),
            )
            .await?;
            *channel = Some(ch);
        }
        let ch = channel.as_ref().expect("channel set above");
        let timeout = self.broker.timeout();
        // Pipelined: publish the whole batch, then wait for all confirms.
        let mut pending = Vec::with_capacity(rows.len());
        for row in &rows {
            let id: i64 = row.get(0);
            let message_id: Uuid = row.get(1);
            let exchange: String = row.get(2);
            let routing_key: String = row.get(3);
            let message_type: String = row.get(4);
            let correlation_id: Option<String> = row.get(5);
            let headers: serde_json::Value = row.get(6);
            let body: serde_json::Value = row.get(7);
            let headers: BTreeMap<String, String> = serde_json::from_value(headers).unwrap_or_default();
            let props = properties(
                message_id,
                &message_type,
                correlation_id.as_deref(),
                None,
                self.broker.app_id(),
                headers,
            );
            let payload = serde_json::to_vec(&body).unwrap_or_default();
            // mandatory: an event that no queue receives is a topology error, not a success.
            let opts = BasicPublishOptions {
                mandatory: true,
                ..Default::default()
            };
            let confirm = bounded(
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
            .await?;
            pending.push((id, routing_key, confirm));
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
        let published: Vec<i64> = results
            .iter()
            .filter(|(_, r)| r.is_ok())
            .map(|(id, _)| *id)
            .collect();
        let first_error = results.into_iter().find_map(|(id, r)| r.err().map(|e| (id, e)));
        tx.execute(
            "update outbox set published_at = now() where id = any($1)",
            &[&published],
        )
        .await?;
        if let Some((id, e)) = &first_error {
            tx.execute(
                "update outbox set attempts = attempts + 1, last_error = $2 where id = $1",
                &[id, &e.to_string()],
            )
            .await?;
        }
        tx.commit().await?;
        metrics::counter!("messages_published_total", "schema" => self.schema.clone())
            .increment(published.len() as u64);
        match first_error {
            Some((_, e)) => Err(e.into()),
            None => Ok(published.len()),
        }
    }
}

/// Keeps a LISTEN connection open and pokes `wake` on every notification; reconnects with
/// backoff. Polling in the relay covers the gaps while it is down.
async fn listen(
    url: String,
    channel: String,
    wake: std::sync::Arc<tokio::sync::Notify>,
    shutdown: CancellationToken,
) {
    let mut attempt = 0u32;
    while !shutdown.is_cancelled() {
        match tokio_postgres::connect(&url, tokio_postgres::NoTls).await {
            Ok((client, mut conn)) => {
                let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
                let driver = tokio::spawn(async move {
                    let mut stream = futures_util::stream::poll_fn(move |cx| conn.poll_message(cx));
                    use futures_util::StreamExt;
                    while let Some(msg) = stream.next().await {
                        match msg {
                            Ok(AsyncMessage::Notification(_)) => {
                                if tx.send(()).is_err() {
                                    break;
                                }
                            }
                            Ok(_) => {}
                            Err(_) => break,
                        }
                    }
                });
                let quoted = format!("listen \"{}\"", channel.replace('"', "\"\""));
                if client.batch_execute(&quoted).await.is_ok() {
                    attempt = 0;
                    wake.notify_one();
                    loop {
                        tokio::select! {
                            m = rx.recv() => match m { Some(()) => wake.notify_one(), None => break },
                            _ = shutdown.cancelled() => break,
                        }
                    }
                }
                driver.abort();
            }
            Err(e) => tracing::debug!(error = %e, "outbox LISTEN connection failed"),
        }
        attempt += 1;
        tokio::select! {
            _ = tokio::time::sleep(backoff(attempt, Duration::from_secs(5))) => {}
            _ = shutdown.cancelled() => {}
        }
    }
}
