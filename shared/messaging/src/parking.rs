//! Operator access to parking lots: list, show and replay parked messages.
//!
//! Listing reads messages without removing them (get, then return them all unacked).
//! Replay republishes a parked message to the queue it was parked from, with its original
//! `message_id` (so the inbox still deduplicates) and routing key, then removes it.

use crate::broker::{Broker, BrokerError, bounded, publish_confirmed};
use crate::consumer::ORIGINAL_ROUTING_KEY;
use crate::envelope::{death_routing_key, field_table, headers_of};
use contracts::headers as h;
use lapin::options::{BasicAckOptions, BasicGetOptions, ConfirmSelectOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use serde::Serialize;
use std::collections::BTreeMap;

#[derive(Debug, Clone, Serialize)]
pub struct ParkedMessage {
    pub message_id: Option<String>,
    pub message_type: Option<String>,
    pub routing_key: Option<String>,
    pub parked_from: Option<String>,
    pub reason: Option<String>,
    pub code: Option<String>,
    pub parked_at: Option<String>,
    pub headers: BTreeMap<String, String>,
    pub body: String,
}

fn describe(d: &lapin::message::BasicGetMessage) -> ParkedMessage {
    let headers = headers_of(&d.delivery.properties);
    ParkedMessage {
        message_id: d.delivery.properties.message_id().as_ref().map(|s| s.to_string()),
        message_type: d.delivery.properties.kind().as_ref().map(|s| s.to_string()),
        // Ours when the consumer loop parked it; the broker's x-death when the queue's
        // delivery limit did (a crash loop), so that both can be replayed.
        routing_key: headers
            .get(ORIGINAL_ROUTING_KEY)
            .cloned()
            .or_else(|| death_routing_key(&d.delivery.properties)),
        // Parked by the consumer loop, or dead-lettered by the queue's delivery limit.
        parked_from: headers
            .get(h::PARKED_FROM)
            .or_else(|| headers.get("x-first-death-queue"))
            .cloned(),
        reason: headers.get(h::PARKED_REASON).cloned(),
        code: headers.get(h::PARKED_CODE).cloned(),
        parked_at: headers.get(h::PARKED_AT).cloned(),
        body: String::from_utf8_lossy(&d.delivery.data).into_owned(),
        headers,
    }
}

/// How many messages wait in `queue`.
pub async fn depth(broker: &Broker, queue: &str) -> Result<u32, BrokerError> {
    Ok(inspect(broker, queue).await?.0)
}

/// Messages waiting in `queue` and consumers reading it (a passive declare; an error when the
/// queue does not exist).
pub async fn inspect(broker: &Broker, queue: &str) -> Result<(u32, u32), BrokerError> {
    let ch = broker.channel().await?;
    let opts = QueueDeclareOptions {
        passive: true,
        ..Default::default()
    };
    let q = bounded(
        "queue.declare",
        broker.timeout(),
        ch.queue_declare(queue.into(), opts, FieldTable::default()),
    )
    .await?;
    let _ = bounded("channel.close", broker.timeout(), ch.close(200, "done".into())).await;
    Ok((q.message_count(), q.consumer_count()))
}

/// Lists up to `limit` parked messages of `parking_queue` without removing them.
pub async fn list(
    broker: &Broker,
    parking_queue: &str,
    limit: usize,
) -> Result<Vec<ParkedMessage>, BrokerError> {
    let ch = broker.channel().await?;
    let mut out = Vec::new();
    let mut tags = Vec::new();
    while out.len() < limit {
        match bounded(
            "basic.get",
            broker.timeout(),
            ch.basic_get(parking_queue.into(), BasicGetOptions::default()),
        )
        .await?
        {
            Some(m) => {
                out.push(describe(&m));
                tags.push(m.delivery.acker.clone());
            }
            None => break,
        }
    }
    for acker in tags {
        crate::broker::requeue(&acker, broker.timeout()).await;
    }
    let _ = bounded("channel.close", broker.timeout(), ch.close(200, "done".into())).await;
    Ok(out)
}

/// Replays parked messages (all, or the one with `message_id`) to the queue each was parked
/// from. Returns how many were replayed.
pub async fn replay(
    broker: &Broker,
    parking_queue: &str,
    message_id: Option<&str>,
) -> Result<usize, BrokerError> {
    let timeout = broker.timeout();
    let total = depth(broker, parking_queue).await? as usize;
    let ch = broker.channel().await?;
    bounded(
        "confirm.select",
        timeout,
        ch.confirm_select(ConfirmSelectOptions::default()),
    )
    .await?;
    let mut keep = Vec::new();
    let mut replayed = 0;
    for _ in 0..total {
        let Some(m) = bounded(
            "basic.get",
            timeout,
            ch.basic_get(parking_queue.into(), BasicGetOptions::default()),
        )
        .await?
        else {
            break;
        };
        let info = describe(&m);
        let wanted = message_id.is_none_or(|id| info.message_id.as_deref() == Some(id));
        let Some(target) = info.parked_from.clone().filter(|_| wanted) else {
            keep.push(m.delivery.acker.clone());
            continue;
        };
        let mut headers = info.headers.clone();
        // The key it was sent with travels on, so the consumer reads it as the original.
        if let Some(key) = &info.routing_key {
            headers.insert(ORIGINAL_ROUTING_KEY.into(), key.clone());
        }
        // The replayed message starts afresh: no parking marks, no dead-letter history.
        let parking_marks = [
            h::PARKED_REASON,
            h::PARKED_FROM,
            h::PARKED_AT,
            h::PARKED_CODE,
            h::RETRY_COUNT,
        ];
        headers.retain(|k, _| {
            !parking_marks.contains(&k.as_str())
                && k != "x-death"
                && k != "x-delivery-count"
                && !k.starts_with("x-first-death-")
                && !k.starts_with("x-last-death-")
        });
        let props = m.delivery.properties.clone().with_headers(field_table(&headers));
        match publish_confirmed(&ch, timeout, "", &target, true, &m.delivery.data, props).await {
            Ok(()) => {
                bounded(
                    "basic.ack",
                    timeout,
                    m.delivery.acker.ack(BasicAckOptions::default()),
                )
                .await?;
                replayed += 1;
            }
            Err(e) => {
                tracing::warn!(error = %e, queue = %target, "replay not confirmed; the message stays parked");
                keep.push(m.delivery.acker.clone());
            }
        }
    }
    for acker in keep {
        crate::broker::requeue(&acker, timeout).await;
    }
    let _ = bounded("channel.close", timeout, ch.close(200, "done".into())).await;
    Ok(replayed)
}
