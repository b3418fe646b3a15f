//! The consumer of a service's control queue (`<service>.control`, bound to
//! `insurance.control` with `all.#` and `<service>.#`). The queue is durable and shared by
//! the service's replicas: whichever replica takes an order stores it in the schema, and
//! every replica reads it from there (at start, on its own change at once, others within
//! `refresh_ms`). An order sent while the service is down waits in the queue.
//!
//! Every control message is answered on `reply_to` (with `correlation_id`), so the
//! command-line client collects one answer per service: `ok` with what was done, `rejected`
//! with why (an unknown order, an invalid one), or, for `status`, the service's
//! [`FreezeStatus`](contracts::freeze::FreezeStatus). A message that is not a control message
//! is parked with the reason and answered `MALFORMED_MESSAGE`.

use super::store;
use super::supervisor::line_status;
use crate::broker::{BrokerError, backoff, bounded, publish_confirmed};
use crate::consumer::settle::PublishChannel;
use crate::consumer::{Ctx, Handler};
use crate::envelope::{field_table, headers_of, properties};
use crate::names::Names;
use crate::topology::ConsumedQueue;
use contracts::freeze::{ControlMessage, FreezeStatus, cst};
use contracts::{ErrorBody, ErrorCode, Line, Reply, headers as h};
use futures_util::StreamExt;
use lapin::message::Delivery;
use lapin::options::{BasicAckOptions, BasicConsumeOptions, BasicQosOptions};
use lapin::types::FieldTable;
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

pub(crate) async fn consume_control<H: Handler>(
    ctx: Arc<Ctx<H>>,
    queues: Vec<ConsumedQueue>,
    shutdown: CancellationToken,
) {
    let lines: BTreeSet<Line> = queues.iter().map(|q| q.line).collect();
    let queue = ctx.names.control_queue(&ctx.service);
    let out = PublishChannel::new(ctx.publish_broker(Line::Common).clone());
    let mut failures = 0u32;
    while !shutdown.is_cancelled() {
        match consume(&ctx, &queue, &out, &lines, &shutdown).await {
            Ok(()) => break,
            Err(e) => {
                failures += 1;
                let wait = backoff(failures, Duration::from_secs(10));
                tracing::warn!(%queue, error = %e, ?wait, "control consumer failed; reconnecting");
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {}
                    _ = shutdown.cancelled() => break,
                }
            }
        }
    }
    out.close().await;
}

async fn consume<H: Handler>(
    ctx: &Ctx<H>,
    queue: &str,
    out: &PublishChannel,
    lines: &BTreeSet<Line>,
    shutdown: &CancellationToken,
) -> Result<(), BrokerError> {
    let broker = ctx.consume_broker(Line::Common);
    let timeout = broker.timeout();
    let ch = broker.channel().await?;
    bounded("basic.qos", timeout, ch.basic_qos(1, BasicQosOptions::default())).await?;
    let tag = format!("{}-control-{}", ctx.service, Uuid::now_v7());
    let mut consumer = bounded(
        "basic.consume",
        timeout,
        ch.basic_consume(
            queue.into(),
            tag.as_str().into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        ),
    )
    .await?;
    loop {
        let delivery = tokio::select! {
            _ = shutdown.cancelled() => break,
            d = consumer.next() => d,
        };
        let delivery = match delivery {
            Some(Ok(d)) => d,
            Some(Err(e)) => {
                return Err(BrokerError::Amqp {
                    op: "basic.consume",
                    source: e,
                });
            }
            None => return Err(BrokerError::Returned("control consumer was cancelled".into())),
        };
        let (reply, park) = answer(ctx, lines, &delivery).await;
        if let Some(reason) = park {
            let mut headers = headers_of(&delivery.properties);
            headers.insert(h::PARKED_REASON.into(), reason.clone());
            headers.insert(h::PARKED_FROM.into(), queue.to_owned());
            headers.insert(h::PARKED_AT.into(), chrono::Utc::now().to_rfc3339());
            headers.insert(h::PARKED_CODE.into(), ErrorCode::MalformedMessage.as_str().into());
            let props = delivery
                .properties
                .clone()
                .with_headers(field_table(&headers))
                .with_delivery_mode(2);
            let pch = out_channel(out).await?;
            publish_confirmed(
                &pch,
                timeout,
                "",
                &Names::parking(queue),
                true,
                &delivery.data,
                props,
            )
            .await?;
            tracing::warn!(%reason, "control message parked");
        }
        if let Some(to) = delivery.properties.reply_to().as_ref() {
            let correlation = delivery
                .properties
                .correlation_id()
                .as_ref()
                .map(|c| c.to_string())
                .or_else(|| delivery.properties.message_id().as_ref().map(|m| m.to_string()));
            let _ =
                crate::consumer::settle::send_reply(ctx, out, to.as_str(), correlation.as_deref(), &reply)
                    .await;
        }
        bounded(
            "basic.ack",
            timeout,
            delivery.acker.ack(BasicAckOptions::default()),
        )
        .await?;
    }
    let _ = bounded("channel.close", timeout, ch.close(200, "stopped".into())).await;
    Ok(())
}

async fn out_channel(out: &PublishChannel) -> Result<lapin::Channel, BrokerError> {
    out.get().await
}

/// The reply to one control message, and the reason to park it if it is not one.
async fn answer<H: Handler>(
    ctx: &Ctx<H>,
    lines: &BTreeSet<Line>,
    delivery: &Delivery,
) -> (Reply, Option<String>) {
    let msg: ControlMessage = match serde_json::from_slice(&delivery.data) {
        Ok(m) => m,
        Err(e) => {
            let why = format!("not a control message: {e}");
            return (
                Reply::rejected(ErrorBody::new(ErrorCode::MalformedMessage, why.clone())),
                Some(why),
            );
        }
    };
    loop {
        match apply(ctx, lines, &msg).await {
            Ok(reply) => return (reply, None),
            Err(e) => {
                // The database is away: wait and try again (the message stays unacked).
                tracing::warn!(error = %format!("{e:#}"), "storing a control message failed; trying again");
                if !ctx.health.wait_up(&ctx.hard_stop).await {
                    return (
                        Reply::rejected(ErrorBody::new(ErrorCode::Internal, "the service is stopping")),
                        None,
                    );
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
    }
}

fn not_found(id: &str) -> Reply {
    Reply::rejected(ErrorBody::new(ErrorCode::NotFound, format!("no freeze order '{id}'")).with_field("id"))
}

async fn apply<H: Handler>(
    ctx: &Ctx<H>,
    lines: &BTreeSet<Line>,
    msg: &ControlMessage,
) -> anyhow::Result<Reply> {
    let freeze = &ctx.freeze;
    let client = ctx.pools.get(Line::Common).get().await?;
    let done = |what: &str, id: &str| {
        Reply::ok(
            serde_json::json!({"service": ctx.service, "action": msg.action(), "id": id, "result": what}),
        )
    };
    let reply = match msg {
        ControlMessage::Order { order } => {
            if let Err(e) = order.validate() {
                return Ok(Reply::rejected(
                    ErrorBody::new(ErrorCode::InvalidField, e.to_string()).with_field("order"),
                ));
            }
            let stored = store::upsert(&client, order).await?;
            tracing::info!(order = %order.id, result = stored.as_str(), "freeze order stored");
            done(stored.as_str(), &order.id)
        }
        ControlMessage::Lift { id } => {
            if !store::lift(&client, id, freeze.now()).await? {
                return Ok(not_found(id));
            }
            done("lifted", id)
        }
        ControlMessage::Extend { id, until } => {
            if !store::extend(&client, id, *until).await? {
                return Ok(not_found(id));
            }
            done("extended", id)
        }
        ControlMessage::Cancel { id } => {
            if !store::cancel(&client, id, freeze.now()).await? {
                return Ok(not_found(id));
            }
            done("cancelled", id)
        }
        ControlMessage::Receipt { id } => {
            let found = match Uuid::parse_str(id) {
                Ok(uuid) => store::receipt(&client, &ctx.service, uuid).await?,
                Err(_) => {
                    return Ok(Reply::rejected(
                        ErrorBody::new(
                            ErrorCode::InvalidField,
                            format!("'{id}' is not a receipt id (a UUID)"),
                        )
                        .with_field("id"),
                    ));
                }
            };
            return Ok(match found {
                Some(r) => Reply::ok(serde_json::to_value(r)?),
                None => Reply::rejected(
                    ErrorBody::new(
                        ErrorCode::NotFound,
                        format!("no receipt '{id}' in {}", ctx.service),
                    )
                    .with_field("id"),
                ),
            });
        }
        ControlMessage::Status {} => {
            let now = freeze.now();
            let status = FreezeStatus {
                service: ctx.service.clone(),
                now: now.with_timezone(&cst()),
                lines: line_status(ctx, lines).await,
                orders: freeze.stored().iter().map(|o| o.held(now)).collect(),
            };
            return Ok(Reply::ok(serde_json::to_value(status)?));
        }
    };
    // Read back at once here; the other replicas read it within their refresh interval.
    freeze.read_orders(&client).await?;
    freeze.poke();
    Ok(reply)
}

/// Publishes one control message to `insurance.control` (for the command-line client and
/// tests): `target` is `all` or a service name.
pub async fn publish(
    ch: &lapin::Channel,
    names: &Names,
    timeout: Duration,
    target: &str,
    msg: &ControlMessage,
    reply_to: Option<&str>,
    app_id: &str,
) -> Result<Uuid, BrokerError> {
    let id = Uuid::now_v7();
    let body = serde_json::to_vec(msg).expect("a control message serialises");
    let props = properties(
        id,
        "control.freeze.v1",
        None,
        reply_to,
        app_id,
        Default::default(),
    );
    let key = format!("{target}.freeze.{}", msg.action());
    publish_confirmed(ch, timeout, &names.control_exchange(), &key, true, &body, props).await?;
    Ok(id)
}
