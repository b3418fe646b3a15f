//! The one consumer loop (DESIGN.md §4): decode → inbox → handler in a transaction → outbox
//! rows → commit → reply → ack. Services only write [`Handler`]s.
//!
//! Errors are sorted once, here: a rejection is the sender's to fix (reply `rejected`, nothing
//! changes, the rejection is stored so a repeat gets it again); a permanent failure parks the
//! message with its reason; a transient failure is retried in process, then through the
//! delayed retry queue, then parked.

use crate::broker::{Broker, BrokerError, backoff, bounded, publish_confirmed};
use crate::envelope::{Envelope, field_table, headers_of, properties};
use crate::inbox;
use crate::lines::LineSwitches;
use crate::names::Names;
use crate::outbox::{self, Outgoing};
use crate::topology::ConsumedQueue;
use async_trait::async_trait;
use contracts::envelope::parse_routing_key;
use contracts::{ErrorBody, ErrorCode, Line, MessageKind, Reply, headers as h};
use deadpool_postgres::{Pool, Transaction};
use futures_util::StreamExt;
use lapin::Channel;
use lapin::message::Delivery;
use lapin::options::{
    BasicAckOptions, BasicCancelOptions, BasicConsumeOptions, BasicNackOptions, BasicQosOptions,
    ConfirmSelectOptions,
};
use lapin::types::FieldTable;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;
use uuid::Uuid;

/// A decoded message handed to a handler.
#[derive(Debug, Clone)]
pub struct Incoming {
    pub envelope: Envelope,
    pub line: Line,
    pub kind: MessageKind,
    /// The command or event name from the routing key (`enroll-person`, `person-enrolled`).
    pub name: String,
    /// The service the routing key addresses (for events: the publisher).
    pub service: String,
    pub body: serde_json::Value,
}

impl Incoming {
    /// Decodes the body into a command or event type; a failure is `MALFORMED_MESSAGE`.
    pub fn decode<T: serde::de::DeserializeOwned>(&self) -> Result<T, HandlerError> {
        serde_json::from_value(self.body.clone()).map_err(|e| {
            HandlerError::Rejected(ErrorBody::new(
                ErrorCode::MalformedMessage,
                format!("body does not match {}: {e}", self.name),
            ))
        })
    }
}

/// What a handler produced: the reply's `result` (commands) and messages to publish.
#[derive(Debug, Default)]
pub struct Handled {
    pub result: Option<serde_json::Value>,
    pub outgoing: Vec<Outgoing>,
    /// Set by handlers that wrote outbox rows themselves (set-based SQL), so the relay is
    /// woken at commit as it is for `outgoing`.
    pub wrote_outbox: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum HandlerError {
    /// The sender's mistake: replied `rejected`, nothing changes.
    #[error("rejected: {0}")]
    Rejected(ErrorBody),
    /// Retrying will not help: the message is parked with this reason.
    #[error("permanent failure: {0}")]
    Permanent(#[source] anyhow::Error),
    /// May succeed later (serialization failure, deadlock, lost connection).
    #[error("transient failure: {0}")]
    Transient(#[source] anyhow::Error),
}

impl From<tokio_postgres::Error> for HandlerError {
    fn from(e: tokio_postgres::Error) -> Self {
        use tokio_postgres::error::SqlState;
        let transient = e.is_closed()
            || match e.code() {
                None => true, // I/O and connection errors carry no SQLSTATE
                Some(c) => {
                    *c == SqlState::T_R_SERIALIZATION_FAILURE
                        || *c == SqlState::T_R_DEADLOCK_DETECTED
                        || *c == SqlState::ADMIN_SHUTDOWN
                        || *c == SqlState::CANNOT_CONNECT_NOW
                        || c.code().starts_with("08")
                }
            };
        if transient {
            HandlerError::Transient(e.into())
        } else {
            HandlerError::Permanent(e.into())
        }
    }
}

impl From<deadpool_postgres::PoolError> for HandlerError {
    fn from(e: deadpool_postgres::PoolError) -> Self {
        HandlerError::Transient(e.into())
    }
}

#[async_trait]
pub trait Handler: Send + Sync + 'static {
    /// Handles one message inside `tx`. Writes made through `tx` commit together with the
    /// inbox row and the outgoing messages; on any error they are rolled back.
    async fn handle(&self, tx: &Transaction<'_>, msg: &Incoming) -> Result<Handled, HandlerError>;
}

#[derive(Debug, Clone)]
pub struct ConsumerSettings {
    /// Unacknowledged deliveries per consumer = messages handled concurrently per queue.
    pub prefetch: u16,
    /// In-process attempts for a transient failure before the retry queue.
    pub in_process_attempts: u32,
    /// Trips through the delayed retry queue before a message is parked.
    pub max_retries: u32,
    /// How long a transiently failing message waits in the retry queue.
    pub retry_delay: Duration,
    /// How long in-flight messages may take to finish at shutdown or pause.
    pub drain_deadline: Duration,
}

impl Default for ConsumerSettings {
    fn default() -> Self {
        ConsumerSettings {
            prefetch: 16,
            in_process_attempts: 3,
            max_retries: 5,
            retry_delay: Duration::from_secs(5),
            drain_deadline: Duration::from_secs(20),
        }
    }
}

/// Consumers of one service: one supervised task per consumed queue.
pub struct Consumers<H: Handler> {
    pub pool: Pool,
    pub broker: Broker,
    pub names: Names,
    pub service: String,
    pub schema: String,
    pub handler: Arc<H>,
    pub switches: LineSwitches,
    pub settings: ConsumerSettings,
}

struct Ctx<H: Handler> {
    pool: Pool,
    broker: Broker,
    service: String,
    notify: String,
    handler: Arc<H>,
    settings: ConsumerSettings,
}

impl<H: Handler> Consumers<H> {
    /// Runs until `shutdown`; returns after every in-flight message is finished and acked.
    pub async fn run(self, queues: Vec<ConsumedQueue>, shutdown: CancellationToken) {
        let ctx = Arc::new(Ctx {
            pool: self.pool,
            broker: self.broker,
            service: self.service,
            notify: outbox::notify_channel(&self.schema),
            handler: self.handler,
            settings: self.settings,
        });
        let mut tasks = JoinSet::new();
        for q in queues {
            tasks.spawn(supervise(ctx.clone(), q, self.switches.clone(), shutdown.clone()));
        }
        while tasks.join_next().await.is_some() {}
    }
}

async fn supervise<H: Handler>(
    ctx: Arc<Ctx<H>>,
    queue: ConsumedQueue,
    switches: LineSwitches,
    shutdown: CancellationToken,
) {
    let mut paused = switches.watch(queue.line);
    let mut failures = 0u32;
    loop {
        // Wait while the line is paused.
        while *paused.borrow_and_update() {
            tokio::select! {
                r = paused.changed() => if r.is_err() { return },
                _ = shutdown.cancelled() => return,
            }
        }
        if shutdown.is_cancelled() {
            return;
        }
        match consume(&ctx, &queue, &mut paused, &shutdown).await {
            Ok(()) => failures = 0,
            Err(e) => {
                failures += 1;
                let wait = backoff(failures, Duration::from_secs(10));
                tracing::warn!(queue = %queue.name, error = %e, ?wait, "consumer failed; reconnecting");
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {}
                    _ = shutdown.cancelled() => return,
                }
            }
        }
    }
}

/// Consumes `queue` until shutdown or pause (Ok) or a broker failure (Err).
async fn consume<H: Handler>(
    ctx: &Arc<Ctx<H>>,
    queue: &ConsumedQueue,
    paused: &mut tokio::sync::watch::Receiver<bool>,
    shutdown: &CancellationToken,
) -> Result<(), BrokerError> {
    let timeout = ctx.broker.timeout();
    let ch = ctx.broker.channel().await?;
    bounded(
        "basic.qos",
        timeout,
        ch.basic_qos(ctx.settings.prefetch, BasicQosOptions::default()),
    )
    .await?;
    // Confirms on this channel cover the reply, retry and parking publishes.
    bounded(
        "confirm.select",
        timeout,
        ch.confirm_select(ConfirmSelectOptions::default()),
    )
    .await?;
    let tag = format!("{}-{}", ctx.service, Uuid::now_v7());
    let mut consumer = bounded(
        "basic.consume",
        timeout,
        ch.basic_consume(
            queue.name.as_str().into(),
            tag.as_str().into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        ),
    )
    .await?;
    tracing::info!(queue = %queue.name, "consuming");
    let mut inflight = JoinSet::new();
    let result = loop {
        tokio::select! {
            _ = shutdown.cancelled() => break Ok(()),
            r = paused.changed() => {
                if r.is_err() || *paused.borrow() { break Ok(()) }
            }
            Some(done) = inflight.join_next(), if !inflight.is_empty() => {
                if let Err(e) = done { tracing::error!(error = %e, "message task panicked"); }
            }
            d = consumer.next() => match d {
                Some(Ok(delivery)) => {
                    let ctx = ctx.clone();
                    let ch = ch.clone();
                    let q = queue.clone();
                    inflight.spawn(async move { process(&ctx, &ch, &q, delivery).await });
                }
                Some(Err(e)) => break Err(BrokerError::Amqp { op: "basic.consume", source: e }),
                None => break Err(BrokerError::Returned("consumer was cancelled by the broker".into())),
            }
        }
    };
    // Stop new deliveries, finish what is in flight, then close: unstarted prefetched
    // deliveries go back to the queue.
    let _ = bounded(
        "basic.cancel",
        timeout,
        ch.basic_cancel(tag.as_str().into(), BasicCancelOptions::default()),
    )
    .await;
    let deadline = tokio::time::sleep(ctx.settings.drain_deadline);
    tokio::pin!(deadline);
    while !inflight.is_empty() {
        tokio::select! {
            _ = inflight.join_next() => {}
            _ = &mut deadline => {
                tracing::warn!(queue = %queue.name, left = inflight.len(), "drain deadline passed; unfinished messages will be redelivered");
                inflight.abort_all();
                break;
            }
        }
    }
    let _ = bounded("channel.close", timeout, ch.close(200, "consumer stopped".into())).await;
    tracing::info!(queue = %queue.name, "stopped consuming");
    result
}

enum Outcome {
    /// Committed (new, or a duplicate answered from the inbox); reply if any.
    Done {
        reply: Option<Reply>,
        duplicate: bool,
    },
    Park {
        reason: String,
        code: ErrorCode,
        reply: Option<Reply>,
    },
    Retry(String),
}

async fn process<H: Handler>(ctx: &Ctx<H>, ch: &Channel, queue: &ConsumedQueue, delivery: Delivery) {
    let started = Instant::now();
    let headers = headers_of(&delivery.properties);
    let span = tracing::info_span!(
        "message",
        queue = %queue.name,
        message_id = tracing::field::Empty,
        r#type = tracing::field::Empty,
        correlation_id = tracing::field::Empty,
        outcome = tracing::field::Empty,
    );
    crate::trace::set_parent_from(&span, &headers);
    async {
        let outcome = handle_delivery(ctx, queue, &delivery, &headers).await;
        let label = match &outcome {
            Outcome::Done { duplicate: true, .. } => "duplicate",
            Outcome::Done { reply: Some(r), .. } if !r.is_ok() => "rejected",
            Outcome::Done { .. } => "ok",
            Outcome::Park { .. } => "parked",
            Outcome::Retry(_) => "retried",
        };
        tracing::Span::current().record("outcome", label);
        let settled = settle(ctx, ch, queue, &delivery, &headers, outcome).await;
        let timeout = ctx.broker.timeout();
        match settled {
            Ok(()) => match bounded(
                "basic.ack",
                timeout,
                delivery.acker.ack(BasicAckOptions::default()),
            )
            .await
            {
                Ok(true) => {}
                Ok(false) => {
                    tracing::warn!("ack was not delivered; the message will be redelivered and deduplicated")
                }
                Err(e) => {
                    tracing::warn!(error = %e, "ack failed; the message will be redelivered and deduplicated")
                }
            },
            Err(e) => {
                tracing::warn!(error = %e, "could not settle the message; returning it to the queue");
                let requeue = BasicNackOptions {
                    requeue: true,
                    ..Default::default()
                };
                let _ = bounded("basic.nack", timeout, delivery.acker.nack(requeue)).await;
            }
        }
        metrics::counter!("messages_consumed_total", "queue" => queue.name.clone(), "outcome" => label)
            .increment(1);
        metrics::histogram!("handler_seconds", "queue" => queue.name.clone())
            .record(started.elapsed().as_secs_f64());
        tracing::info!(elapsed_ms = started.elapsed().as_millis() as u64, "handled");
    }
    .instrument(span)
    .await
}

fn rejected(code: ErrorCode, msg: impl Into<String>) -> Reply {
    Reply::rejected(ErrorBody::new(code, msg))
}

async fn handle_delivery<H: Handler>(
    ctx: &Ctx<H>,
    queue: &ConsumedQueue,
    delivery: &Delivery,
    headers: &std::collections::BTreeMap<String, String>,
) -> Outcome {
    let span = tracing::Span::current();
    let envelope = match Envelope::from_properties(&delivery.properties) {
        Ok(e) => e,
        Err(e) => {
            let reason = format!("bad envelope: {e}");
            return Outcome::Park {
                reply: Some(rejected(ErrorCode::MalformedMessage, &reason)),
                reason,
                code: ErrorCode::MalformedMessage,
            };
        }
    };
    span.record("message_id", tracing::field::display(envelope.message_id));
    span.record("correlation_id", tracing::field::display(envelope.correlation()));
    if let Some(t) = &envelope.message_type {
        span.record("type", t.as_str());
    }
    // A replayed or retried message arrives through the default exchange: its original
    // routing key travels in a header.
    let routing_key = headers
        .get(ORIGINAL_ROUTING_KEY)
        .cloned()
        .unwrap_or_else(|| delivery.routing_key.to_string());
    let Some((line, service, name)) = parse_routing_key(&routing_key) else {
        let reason = format!("routing key '{routing_key}' is not <line>.<service>.<name>");
        return Outcome::Park {
            reply: Some(rejected(ErrorCode::MalformedMessage, &reason)),
            reason,
            code: ErrorCode::MalformedMessage,
        };
    };
    let body: serde_json::Value = match serde_json::from_slice(&delivery.data) {
        Ok(v) => v,
        Err(e) => {
            let reason = format!("body is not JSON: {e}");
            return Outcome::Park {
                reply: Some(rejected(ErrorCode::MalformedMessage, &reason)),
                reason,
                code: ErrorCode::MalformedMessage,
            };
        }
    };
    let incoming = Incoming {
        envelope,
        line,
        kind: queue.kind,
        name: name.to_owned(),
        service: service.to_owned(),
        body,
    };

    let mut attempt = 0;
    loop {
        attempt += 1;
        match run_handler(ctx, queue, &incoming).await {
            Ok(outcome) => return outcome,
            Err(HandlerError::Transient(e)) if attempt < ctx.settings.in_process_attempts => {
                let wait = backoff(attempt, Duration::from_secs(2));
                tracing::debug!(error = %e, attempt, ?wait, "transient failure; retrying in process");
                tokio::time::sleep(wait).await;
            }
            Err(HandlerError::Transient(e)) => return Outcome::Retry(format!("{e:#}")),
            Err(HandlerError::Permanent(e)) => {
                tracing::error!(error = ?e, "handler failed permanently; parking the message");
                return Outcome::Park {
                    reason: format!("{e:#}"),
                    code: ErrorCode::Internal,
                    reply: Some(rejected(
                        ErrorCode::Internal,
                        "the service could not process this message; it was parked for an operator",
                    )),
                };
            }
            Err(HandlerError::Rejected(body)) => {
                // Only events reach here (command rejections are committed as replies).
                return Outcome::Park {
                    reason: body.to_string(),
                    code: body.code,
                    reply: None,
                };
            }
        }
    }
}

async fn run_handler<H: Handler>(
    ctx: &Ctx<H>,
    queue: &ConsumedQueue,
    msg: &Incoming,
) -> Result<Outcome, HandlerError> {
    let mut client = ctx.pool.get().await?;
    let mut tx = client.transaction().await?;
    let message_type = msg.envelope.message_type.clone().unwrap_or_default();
    if let Some(stored) = inbox::claim(&tx, msg.envelope.message_id, &queue.name, &message_type).await? {
        tx.commit().await?;
        return Ok(Outcome::Done {
            reply: stored,
            duplicate: true,
        });
    }
    let savepoint = tx.savepoint("handler").await?;
    let result = ctx.handler.handle(&savepoint, msg).await;
    let reply = match result {
        Ok(handled) => {
            savepoint.commit().await?;
            outbox::enqueue(&tx, &ctx.notify, &handled.outgoing).await?;
            if handled.wrote_outbox {
                outbox::notify(&tx, &ctx.notify).await?;
            }
            (msg.kind == MessageKind::Command)
                .then(|| Reply::ok(handled.result.unwrap_or(serde_json::Value::Null)))
        }
        Err(HandlerError::Rejected(body)) if msg.kind == MessageKind::Command => {
            savepoint.rollback().await?;
            tracing::info!(code = %body.code, field = ?body.field, "command rejected");
            Some(Reply::rejected(body))
        }
        Err(other) => return Err(other),
    };
    if let Some(r) = &reply {
        inbox::store_reply(&tx, msg.envelope.message_id, r).await?;
    }
    tx.commit().await?;
    Ok(Outcome::Done {
        reply,
        duplicate: false,
    })
}

pub const ORIGINAL_ROUTING_KEY: &str = "x-original-routing-key";
pub const ORIGINAL_EXCHANGE: &str = "x-original-exchange";

/// Carries out an outcome on the broker; the caller acks afterwards.
async fn settle<H: Handler>(
    ctx: &Ctx<H>,
    ch: &Channel,
    queue: &ConsumedQueue,
    delivery: &Delivery,
    headers: &std::collections::BTreeMap<String, String>,
    outcome: Outcome,
) -> Result<(), BrokerError> {
    let reply_to = delivery.properties.reply_to().as_ref().map(|s| s.to_string());
    let correlation = delivery
        .properties
        .correlation_id()
        .as_ref()
        .map(|s| s.to_string())
        .or_else(|| delivery.properties.message_id().as_ref().map(|s| s.to_string()));
    let mut forward = headers.clone();
    forward
        .entry(ORIGINAL_ROUTING_KEY.into())
        .or_insert_with(|| delivery.routing_key.to_string());
    forward
        .entry(ORIGINAL_EXCHANGE.into())
        .or_insert_with(|| delivery.exchange.to_string());
    match outcome {
        Outcome::Done { reply, .. } => {
            if let (Some(r), Some(to), MessageKind::Command) = (reply, reply_to, queue.kind) {
                send_reply(ctx, ch, &to, correlation.as_deref(), &r).await?;
            }
        }
        Outcome::Retry(reason) => {
            let retries: u32 = headers
                .get(h::RETRY_COUNT)
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            if retries >= ctx.settings.max_retries {
                park(
                    ctx,
                    ch,
                    queue,
                    delivery,
                    forward,
                    &format!("retries exhausted: {reason}"),
                    ErrorCode::Internal,
                )
                .await?;
            } else {
                forward.insert(h::RETRY_COUNT.into(), (retries + 1).to_string());
                tracing::warn!(retries = retries + 1, %reason, "sending to the delayed retry queue");
                let expiration = ctx.settings.retry_delay.as_millis().to_string();
                republish(
                    ctx,
                    ch,
                    &Names::retry(&queue.name),
                    delivery,
                    forward,
                    Some(&expiration),
                )
                .await?;
            }
        }
        Outcome::Park { reason, code, reply } => {
            park(ctx, ch, queue, delivery, forward, &reason, code).await?;
            if let (Some(r), Some(to), MessageKind::Command) = (reply, reply_to, queue.kind) {
                send_reply(ctx, ch, &to, correlation.as_deref(), &r).await?;
            }
        }
    }
    Ok(())
}

async fn park<H: Handler>(
    ctx: &Ctx<H>,
    ch: &Channel,
    queue: &ConsumedQueue,
    delivery: &Delivery,
    mut headers: std::collections::BTreeMap<String, String>,
    reason: &str,
    code: ErrorCode,
) -> Result<(), BrokerError> {
    headers.insert(h::PARKED_REASON.into(), reason.to_owned());
    headers.insert(h::PARKED_FROM.into(), queue.name.clone());
    headers.insert(h::PARKED_AT.into(), chrono::Utc::now().to_rfc3339());
    headers.insert(h::PARKED_CODE.into(), code.as_str().into());
    tracing::warn!(%reason, %code, "parking message");
    metrics::counter!("messages_parked_total", "queue" => queue.name.clone()).increment(1);
    republish(ctx, ch, &Names::parking(&queue.name), delivery, headers, None).await
}

/// Publishes a copy of `delivery` straight to `target` queue (default exchange) and waits
/// for the confirm, so that the original can be acked safely.
async fn republish<H: Handler>(
    ctx: &Ctx<H>,
    ch: &Channel,
    target: &str,
    delivery: &Delivery,
    headers: std::collections::BTreeMap<String, String>,
    expiration: Option<&str>,
) -> Result<(), BrokerError> {
    let mut props = delivery
        .properties
        .clone()
        .with_headers(field_table(&headers))
        .with_delivery_mode(2);
    if let Some(ms) = expiration {
        props = props.with_expiration(ms.into());
    }
    publish_confirmed(ch, ctx.broker.timeout(), "", target, true, &delivery.data, props).await
}

/// Replies are not domain messages: they go straight to `reply_to` after the commit. If that
/// fails the command is redelivered, found in the inbox, and the stored reply is sent again.
async fn send_reply<H: Handler>(
    ctx: &Ctx<H>,
    ch: &Channel,
    reply_to: &str,
    correlation: Option<&str>,
    reply: &Reply,
) -> Result<(), BrokerError> {
    let body = serde_json::to_vec(reply).unwrap_or_default();
    let message_type = format!("{}.reply.v1", ctx.service);
    let props = properties(
        Uuid::now_v7(),
        &message_type,
        correlation,
        None,
        ctx.broker.app_id(),
        Default::default(),
    );
    // Not mandatory: a requester that went away is not a reason to retry forever.
    publish_confirmed(ch, ctx.broker.timeout(), "", reply_to, false, &body, props).await
}
