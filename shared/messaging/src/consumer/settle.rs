//! Carries out an outcome on the broker (reply, retry tier, parking lot), then acks. Every
//! publish here waits for its confirm before the original is acked, so nothing is lost
//! between the two; all of it goes over the line's publishing connection, never the one the
//! queue is consumed on.

use super::decode::{ORIGINAL_EXCHANGE, ORIGINAL_ROUTING_KEY, original_routing_key};
use super::run::Outcome;
use super::{Ctx, Handler};
use crate::broker::{Broker, BrokerError, bounded, publish_confirmed};
use crate::envelope::{field_table, properties};
use crate::names::Names;
use crate::topology::ConsumedQueue;
use contracts::{ErrorBody, ErrorCode, MessageKind, Reply, headers as h};
use lapin::Channel;
use lapin::message::Delivery;
use lapin::options::{BasicAckOptions, ConfirmSelectOptions};
use std::collections::BTreeMap;
use std::time::Duration;
use tokio::sync::Mutex;
use uuid::Uuid;

/// A confirm-mode channel on a publishing connection, shared by a queue's message tasks and
/// reopened when it breaks.
pub(crate) struct PublishChannel {
    broker: Broker,
    channel: Mutex<Option<Channel>>,
}

impl PublishChannel {
    pub(crate) fn new(broker: Broker) -> Self {
        PublishChannel {
            broker,
            channel: Mutex::new(None),
        }
    }

    pub(crate) async fn get(&self) -> Result<Channel, BrokerError> {
        let mut guard = self.channel.lock().await;
        if let Some(ch) = guard.as_ref()
            && ch.status().connected()
        {
            return Ok(ch.clone());
        }
        let ch = self.broker.channel().await?;
        bounded(
            "confirm.select",
            self.broker.timeout(),
            ch.confirm_select(ConfirmSelectOptions::default()),
        )
        .await?;
        *guard = Some(ch.clone());
        Ok(ch)
    }

    pub(crate) async fn close(&self) {
        if let Some(ch) = self.channel.lock().await.take() {
            let _ = bounded(
                "channel.close",
                self.broker.timeout(),
                ch.close(200, "stopped".into()),
            )
            .await;
        }
    }
}

/// Settles `delivery`: carries out `outcome`, then acks (or, when that could not be done,
/// returns the message to the queue). Returns the outcome's label for metrics and logs.
pub(crate) async fn settle<H: Handler>(
    ctx: &Ctx<H>,
    out: &PublishChannel,
    queue: &ConsumedQueue,
    delivery: &Delivery,
    headers: &BTreeMap<String, String>,
    outcome: Outcome,
) {
    let timeout = ctx.consume_broker(queue.line).timeout();
    if matches!(outcome, Outcome::Requeue) {
        crate::broker::requeue(&delivery.acker, timeout).await;
        return;
    }
    match carry_out(ctx, out, queue, delivery, headers, outcome).await {
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
            crate::broker::requeue(&delivery.acker, timeout).await;
        }
    }
}

async fn carry_out<H: Handler>(
    ctx: &Ctx<H>,
    out: &PublishChannel,
    queue: &ConsumedQueue,
    delivery: &Delivery,
    headers: &BTreeMap<String, String>,
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
        .or_insert_with(|| original_routing_key(delivery, headers));
    forward
        .entry(ORIGINAL_EXCHANGE.into())
        .or_insert_with(|| delivery.exchange.to_string());
    let reply = match outcome {
        Outcome::Requeue => return Ok(()),
        Outcome::Done { reply, .. } => reply,
        Outcome::Retry(reason) => {
            let retries: u32 = headers
                .get(h::RETRY_COUNT)
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            let tiers = &ctx.settings.retry_tiers;
            if retries >= ctx.settings.max_retries || tiers.is_empty() {
                park(
                    out,
                    queue,
                    delivery,
                    forward,
                    &format!("retries exhausted: {reason}"),
                    ErrorCode::Internal,
                )
                .await?;
                // The sender is told too: it was not lost, it waits for an operator.
                Some(Reply::rejected(ErrorBody::new(
                    ErrorCode::Internal,
                    format!("retries exhausted; parked for an operator: {reason}"),
                )))
            } else {
                forward.insert(h::RETRY_COUNT.into(), (retries + 1).to_string());
                let delay = tiers[(retries as usize).min(tiers.len() - 1)];
                tracing::warn!(retries = retries + 1, ?delay, %reason, "sending to a retry tier");
                metrics::counter!("messages_retried_total", "queue" => queue.name.clone()).increment(1);
                republish(out, &Names::retry_tier(&queue.name, delay), delivery, forward).await?;
                None
            }
        }
        Outcome::Park { reason, code, reply } => {
            park(out, queue, delivery, forward, &reason, code).await?;
            reply
        }
    };
    if let (Some(r), Some(to), MessageKind::Command) = (reply, reply_to, queue.kind) {
        reply_until_confirmed(ctx, out, &to, correlation.as_deref(), &r, Some(REPLY_PATIENCE)).await?;
    }
    Ok(())
}

/// How long a reply the broker refused (a nack, a channel that closed) is tried again, on a
/// fresh channel, before its command goes back to the queue. Returned at once, the command
/// would come straight back, be found done in the inbox, fail the same way and use up the
/// queue's delivery limit within a second: the soak saw four commands parked so, their effects
/// committed and no reply ever sent, while a broker node rejoined the cluster.
const REPLY_PATIENCE: Duration = Duration::from_secs(30);

/// Publishes `reply` until the broker confirms it, on a fresh channel after each failure, with
/// backoff: for `patience` at most (`None`: until it is confirmed), never past the hard stop.
pub(crate) async fn reply_until_confirmed<H: Handler>(
    ctx: &Ctx<H>,
    out: &PublishChannel,
    reply_to: &str,
    correlation: Option<&str>,
    reply: &Reply,
    patience: Option<Duration>,
) -> Result<(), BrokerError> {
    let started = std::time::Instant::now();
    let mut attempt = 0u32;
    loop {
        let Err(e) = send_reply(ctx, out, reply_to, correlation, reply).await else {
            return Ok(());
        };
        attempt += 1;
        if patience.is_some_and(|p| started.elapsed() >= p) || ctx.hard_stop.is_cancelled() {
            return Err(e);
        }
        if attempt % 10 == 1 {
            tracing::warn!(?correlation, error = %e, attempt, "a reply was not confirmed; sending it again on a fresh channel");
        }
        out.close().await;
        tokio::select! {
            _ = tokio::time::sleep(crate::broker::backoff(attempt, Duration::from_secs(5))) => {}
            _ = ctx.hard_stop.cancelled() => return Err(e),
        }
    }
}

async fn park(
    out: &PublishChannel,
    queue: &ConsumedQueue,
    delivery: &Delivery,
    mut headers: BTreeMap<String, String>,
    reason: &str,
    code: ErrorCode,
) -> Result<(), BrokerError> {
    headers.insert(h::PARKED_REASON.into(), reason.to_owned());
    headers.insert(h::PARKED_FROM.into(), queue.name.clone());
    headers.insert(h::PARKED_AT.into(), chrono::Utc::now().to_rfc3339());
    headers.insert(h::PARKED_CODE.into(), code.as_str().into());
    tracing::warn!(%reason, %code, "parking message");
    metrics::counter!("messages_parked_total", "queue" => queue.name.clone()).increment(1);
    republish(out, &Names::parking(&queue.name), delivery, headers).await
}

/// Publishes a copy of `delivery` straight to `target` queue (default exchange) and waits
/// for the confirm, so that the original can be acked safely.
async fn republish(
    out: &PublishChannel,
    target: &str,
    delivery: &Delivery,
    headers: BTreeMap<String, String>,
) -> Result<(), BrokerError> {
    let props = delivery
        .properties
        .clone()
        .with_headers(field_table(&headers))
        .with_delivery_mode(2);
    let ch = out.get().await?;
    publish_confirmed(&ch, out.broker.timeout(), "", target, true, &delivery.data, props).await
}

/// Replies are not domain messages: they go straight to `reply_to` after the commit. If that
/// fails the command is redelivered, found in the inbox, and the stored reply is sent again.
pub(crate) async fn send_reply<H: Handler>(
    ctx: &Ctx<H>,
    out: &PublishChannel,
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
        out.broker.app_id(),
        Default::default(),
    );
    let ch = out.get().await?;
    // Not mandatory: a requester that went away is not a reason to retry forever.
    publish_confirmed(&ch, out.broker.timeout(), "", reply_to, false, &body, props).await
}
