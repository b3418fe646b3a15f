//! A stand-in for the cooperating bank (合作银行) and its card factory, for tests and
//! `make run`.
//!
//! It consumes its own queue (`subscriber.bank`, declared by the simulator and bound to
//! card issuance's `bank-account-requested` and `card-production-requested` events) and
//! answers through the broker, on the `bank` channel, after a delay: `record-bank-account`,
//! then `record-production`, `record-shipment` and `record-arrival`. Which requests fail is
//! decided by a hash of the seed, the application, the step and the attempt, so a run with
//! the same seed fails the same requests; a rollback (a new attempt) is decided afresh. Like
//! the tax-authority simulator it outlives a broker outage: it reconnects with backoff, and a
//! request whose answers were not all confirmed is not acked, so it comes back.
//!
//! It also pays approved reimbursement claims into the card's financial account (benefits'
//! `claim-payment-ordered`, answered with `record-claim-payment` on the medical line): paid
//! when benefits knows the card as activated (the financial account is activated with the
//! card), failed with the reason otherwise.
//!
//! And it pays social-line benefit batches (benefits' `benefit-payment-batch-ordered`:
//! pensions, unemployment and work-injury benefits), answered with one
//! `record-benefit-payments` on the social line that echoes the batch's control totals: each
//! item paid into an activated card's financial account, failed with the reason otherwise.

use contracts::benefits::events::ClaimPaymentOrdered;
use contracts::benefits::social::BenefitPaymentBatchOrdered;
use contracts::card::events::CardEvent;
use contracts::{Channel, Line};
use futures_util::StreamExt;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicNackOptions, BasicQosOptions, QueueBindOptions,
    QueueDeclareOptions,
};
use lapin::types::FieldTable;
use messaging::Names;
use messaging::broker::{Broker, BrokerConfig, backoff, bounded};
use messaging::client::{Command, CommandClient};
use serde_json::json;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

pub const SUBSCRIBER: &str = "bank";
const SERVICE: &str = contracts::card::SERVICE;

#[derive(Debug, Clone)]
pub struct SimConfig {
    pub amqp_url: String,
    pub prefix: String,
    pub seed: u64,
    /// Share of account openings that fail (0..=1).
    pub fail_account: f64,
    /// Share of productions that fail (0..=1).
    pub fail_production: f64,
    /// Pause before each answer (account, production, shipment, arrival).
    pub delay: Duration,
    /// The branch cards arrive at.
    pub branch: String,
}

/// FNV-1a: stable across runs and platforms.
fn fnv(s: &str) -> u64 {
    s.bytes().fold(0xcbf29ce484222325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100000001b3)
    })
}

/// Whether the bank fails this request: the same seed, application, step and attempt give
/// the same answer.
pub fn fails(cfg: &SimConfig, application_id: &str, step: &str, attempt: i32) -> bool {
    let share = match step {
        "account" => cfg.fail_account,
        _ => cfg.fail_production,
    };
    let x = (fnv(&format!("{}/{application_id}/{step}/{attempt}", cfg.seed)) % 10_000) as f64 / 10_000.0;
    x < share
}

/// A number of `digits` digits derived from `key`.
fn digits(key: &str, digits: u32) -> String {
    let n = fnv(key) % 10u64.pow(digits);
    format!("{n:0width$}", width = digits as usize)
}

/// The answers to one request, in order.
pub fn answers(cfg: &SimConfig, routing_key: &str, ev: &CardEvent) -> Vec<Command> {
    let cmd = |name: &str, body: serde_json::Value| {
        let mut c = Command::new(Line::Common, SERVICE, name, &body);
        c.channel = Some(Channel::Bank);
        c.operator = Some("bank-sim".into());
        c
    };
    // The same answer to the same request has the same message id: a request redelivered
    // after a lost connection gets the stored reply instead of a second effect.
    let idempotent = |mut c: Command| {
        let key = format!(
            "bank-sim/{}/{}/{}/{}",
            cfg.seed, ev.application_id, ev.attempt, c.name
        );
        c.message_id = Some(uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_OID, key.as_bytes()));
        c
    };
    let cmd = |name: &str, body: serde_json::Value| idempotent(cmd(name, body));
    let app = &ev.application_id;
    let base = json!({"id_number": ev.id_number, "application_id": app});
    let with = |extra: serde_json::Value| {
        let mut b = base.clone();
        for (k, v) in extra.as_object().expect("an object") {
            b[k] = v.clone();
        }
        b
    };
    if routing_key.ends_with(".bank-account-requested") {
        let body = if fails(cfg, app, "account", ev.attempt) {
            with(json!({"opened": false, "reason": "身份信息与银行核验不一致"}))
        } else {
            with(
                json!({"opened": true, "financial_account": format!("6222{}", digits(&format!("acct/{app}"), 15))}),
            )
        };
        vec![cmd("record-bank-account", body)]
    } else if routing_key.ends_with(".card-production-requested") {
        if fails(cfg, app, "production", ev.attempt) {
            return vec![cmd(
                "record-production",
                with(json!({"produced": false, "reason": "芯片写入失败"})),
            )];
        }
        let number = format!("K{}", digits(&format!("card/{app}/{}", ev.attempt), 8));
        vec![
            cmd(
                "record-production",
                with(json!({"produced": true, "card_number": number})),
            ),
            cmd(
                "record-shipment",
                with(
                    json!({"tracking_number": format!("SF{}", digits(&format!("ship/{app}/{}", ev.attempt), 12))}),
                ),
            ),
            cmd("record-arrival", with(json!({"branch": cfg.branch}))),
        ]
    } else {
        vec![]
    }
}

/// The bank's answer to a claim payment order: one `record-claim-payment`, with a message id
/// of the claim, so a redelivered order is answered once.
pub fn claim_answer(cfg: &SimConfig, order: &ClaimPaymentOrdered) -> Command {
    let bank_ref = format!("PAY{}", digits(&format!("claim/{}", order.claim_id), 12));
    let body = if order.card_state == "activated" {
        json!({"claim_id": order.claim_id, "outcome": "paid", "amount": order.amount, "bank_ref": bank_ref})
    } else {
        let reason = if order.card_state == "none" {
            "无社保卡金融账户".to_owned()
        } else {
            format!("社保卡金融账户未激活（卡状态 {}）", order.card_state)
        };
        json!({"claim_id": order.claim_id, "outcome": "failed", "amount": order.amount, "bank_ref": bank_ref,
               "reason": reason})
    };
    let mut c = Command::new(
        Line::Medical,
        contracts::benefits::SERVICE,
        "record-claim-payment",
        &body,
    );
    c.channel = Some(Channel::Bank);
    c.operator = Some("bank-sim".into());
    let key = format!("bank-sim/{}/claim/{}", cfg.seed, order.claim_id);
    c.message_id = Some(uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_OID, key.as_bytes()));
    c
}

/// The bank's answer to a benefit payment batch: the results of every item, with the control
/// totals as received, under a message id of the batch (a redelivered batch is answered once).
pub fn batch_answer(cfg: &SimConfig, batch: &BenefitPaymentBatchOrdered) -> Command {
    let results: Vec<serde_json::Value> = batch
        .items
        .iter()
        .map(|i| {
            let bank_ref = format!("BEN{}", digits(&format!("item/{}", i.item_id), 12));
            if i.card_state == "activated" {
                json!({"item_id": i.item_id, "outcome": "paid", "amount": i.amount, "bank_ref": bank_ref})
            } else {
                let reason = if i.card_state == "none" {
                    "无社保卡金融账户".to_owned()
                } else {
                    format!("社保卡金融账户未激活（卡状态 {}）", i.card_state)
                };
                json!({"item_id": i.item_id, "outcome": "failed", "amount": i.amount, "bank_ref": bank_ref,
                       "reason": reason})
            }
        })
        .collect();
    let body = json!({"batch_id": batch.batch_id, "item_count": batch.item_count, "total": batch.total,
                      "results": results});
    let mut c = Command::new(
        Line::Social,
        contracts::benefits::SERVICE,
        "record-benefit-payments",
        &body,
    );
    c.channel = Some(Channel::Bank);
    c.operator = Some("bank-sim".into());
    let key = format!("bank-sim/{}/benefit-batch/{}", cfg.seed, batch.batch_id);
    c.message_id = Some(uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_OID, key.as_bytes()));
    c
}

/// The routing key of the social-line benefit batches the bank pays.
pub fn benefit_batches() -> String {
    format!(
        "{}.{}.benefit-payment-batch-ordered",
        Line::Social,
        contracts::benefits::SERVICE
    )
}

/// The routing key of the claim payment orders the bank pays (benefits is on the medical
/// line).
pub fn claim_orders() -> String {
    format!(
        "{}.{}.claim-payment-ordered",
        Line::Medical,
        contracts::benefits::SERVICE
    )
}

#[derive(Debug, Default)]
pub struct Stats {
    pub requests: AtomicU64,
    pub answered: AtomicU64,
    pub refused: AtomicU64,
}

const MAX_BACKOFF: Duration = Duration::from_secs(10);
const REPLY_WAIT: Duration = Duration::from_secs(30);

/// Declares the simulator's queue and its bindings (idempotent).
pub async fn declare(ch: &lapin::Channel, names: &Names, timeout: Duration) -> anyhow::Result<String> {
    let queue = names.subscriber_queue(SUBSCRIBER);
    bounded(
        "queue.declare",
        timeout,
        ch.queue_declare(
            queue.as_str().into(),
            QueueDeclareOptions {
                // Survives a broker restart; requests wait for the bank.
                durable: true,
                ..Default::default()
            },
            FieldTable::default(),
        ),
    )
    .await?;
    let keys = ["bank-account-requested", "card-production-requested"]
        .map(|event| format!("common.{SERVICE}.{event}"))
        .into_iter()
        .chain([claim_orders(), benefit_batches()]);
    for key in keys {
        bounded(
            "queue.bind",
            timeout,
            ch.queue_bind(
                queue.as_str().into(),
                names.events_exchange().as_str().into(),
                key.as_str().into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            ),
        )
        .await?;
    }
    Ok(queue)
}

/// Consumes until `shutdown`, reconnecting after a lost connection.
pub async fn run(cfg: SimConfig, shutdown: CancellationToken) -> anyhow::Result<Arc<Stats>> {
    let stats = Arc::new(Stats::default());
    let mut attempt = 0u32;
    while !shutdown.is_cancelled() {
        match session(&cfg, &shutdown, &stats).await {
            Ok(()) => break,
            Err(e) => {
                attempt = attempt.saturating_add(1);
                let delay = backoff(attempt, MAX_BACKOFF);
                tracing::warn!(
                    error = format!("{e:#}"),
                    ?delay,
                    "bank simulator lost the broker; reconnecting"
                );
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    _ = tokio::time::sleep(delay) => {}
                }
            }
        }
    }
    Ok(stats)
}

async fn session(cfg: &SimConfig, shutdown: &CancellationToken, stats: &Arc<Stats>) -> anyhow::Result<()> {
    let broker_cfg = BrokerConfig {
        url: cfg.amqp_url.clone(),
        prefix: cfg.prefix.clone(),
        timeout_ms: 10_000,
        tls: Default::default(),
    };
    let timeout = broker_cfg.timeout();
    let broker = Broker::new(broker_cfg.clone(), "bank-sim");
    let result = async {
        let client = Arc::new(CommandClient::connect(broker_cfg, "bank-sim").await?);
        let ch = broker.channel().await?;
        let queue = declare(&ch, &Names::new(cfg.prefix.clone()), timeout).await?;
        bounded("basic.qos", timeout, ch.basic_qos(32, BasicQosOptions::default())).await?;
        let mut consumer = bounded(
            "basic.consume",
            timeout,
            ch.basic_consume(
                queue.as_str().into(),
                "bank-sim".into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            ),
        )
        .await?;
        tracing::info!(%queue, "bank simulator consuming");
        let mut tasks = tokio::task::JoinSet::new();
        let ended = loop {
            let delivery = tokio::select! {
                _ = shutdown.cancelled() => break Ok(()),
                d = consumer.next() => match d {
                    Some(Ok(d)) => d,
                    Some(Err(e)) => break Err(anyhow::Error::new(e)),
                    None => break Err(anyhow::anyhow!("the consumer was cancelled")),
                },
            };
            stats.requests.fetch_add(1, Ordering::Relaxed);
            let (cfg, client, stats, stop) = (cfg.clone(), client.clone(), stats.clone(), shutdown.clone());
            // Each request on its own: one card's delays do not hold up another's.
            tasks.spawn(async move {
                let key = delivery.routing_key.as_str();
                let cmds = if key.ends_with(".benefit-payment-batch-ordered") {
                    serde_json::from_slice::<BenefitPaymentBatchOrdered>(&delivery.data)
                        .ok()
                        .map(|batch| vec![batch_answer(&cfg, &batch)])
                        .unwrap_or_default()
                } else if key.ends_with(".claim-payment-ordered") {
                    serde_json::from_slice::<ClaimPaymentOrdered>(&delivery.data)
                        .ok()
                        .map(|order| vec![claim_answer(&cfg, &order)])
                        .unwrap_or_default()
                } else {
                    serde_json::from_slice::<CardEvent>(&delivery.data)
                        .ok()
                        .map(|ev| answers(&cfg, key, &ev))
                        .unwrap_or_default()
                };
                let mut done = true;
                for cmd in &cmds {
                    tokio::select! {
                        _ = stop.cancelled() => { done = false; break; }
                        _ = tokio::time::sleep(cfg.delay) => {}
                    }
                    match client.send(cmd, REPLY_WAIT).await {
                        Ok(r) if r.is_ok() => {
                            stats.answered.fetch_add(1, Ordering::Relaxed);
                            tracing::info!(command = %cmd.name, "bank answered");
                        }
                        Ok(r) => {
                            // Stale (the application moved on): nothing to retry.
                            stats.refused.fetch_add(1, Ordering::Relaxed);
                            tracing::warn!(command = %cmd.name, error = ?r.error, "bank answer refused");
                        }
                        Err(e) => {
                            tracing::warn!(command = %cmd.name, error = %e, "bank answer not delivered; the request comes back");
                            done = false;
                            break;
                        }
                    }
                }
                // Answers repeat with the same content, and a repeat of an answer already
                // taken is refused as stale: redelivery is safe.
                let _ = if done {
                    delivery.acker.ack(BasicAckOptions::default()).await
                } else {
                    delivery
                        .acker
                        .nack(BasicNackOptions {
                            requeue: true,
                            ..Default::default()
                        })
                        .await
                };
            });
            while tasks.try_join_next().is_some() {}
        };
        while tasks.join_next().await.is_some() {}
        let _ = bounded("channel.close", timeout, ch.close(200, "bye".into())).await;
        if let Ok(c) = Arc::try_unwrap(client) {
            c.close().await;
        }
        ended
    }
    .await;
    broker.close().await;
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(seed: u64, fail: f64) -> SimConfig {
        SimConfig {
            amqp_url: String::new(),
            prefix: String::new(),
            seed,
            fail_account: fail,
            fail_production: fail,
            delay: Duration::ZERO,
            branch: "网点".into(),
        }
    }

    #[test]
    fn failures_follow_the_share_and_repeat_for_the_same_seed() {
        let ids: Vec<String> = (0..4000).map(|i| format!("app-{i}")).collect();
        let share =
            |c: &SimConfig| ids.iter().filter(|id| fails(c, id, "account", 1)).count() as f64 / 4000.0;
        assert!((share(&cfg(7, 0.2)) - 0.2).abs() < 0.03);
        assert_eq!(share(&cfg(7, 0.0)), 0.0);
        assert_eq!(share(&cfg(7, 1.0)), 1.0);
        let a: Vec<bool> = ids
            .iter()
            .map(|id| fails(&cfg(7, 0.5), id, "account", 1))
            .collect();
        let b: Vec<bool> = ids
            .iter()
            .map(|id| fails(&cfg(7, 0.5), id, "account", 1))
            .collect();
        let other: Vec<bool> = ids
            .iter()
            .map(|id| fails(&cfg(8, 0.5), id, "account", 1))
            .collect();
        assert_eq!(a, b, "same seed, same failures");
        assert_ne!(a, other, "another seed, other failures");
        let retried: Vec<bool> = ids
            .iter()
            .map(|id| fails(&cfg(7, 0.5), id, "account", 2))
            .collect();
        assert_ne!(a, retried, "a rollback's new attempt is decided afresh");
    }

    #[test]
    fn a_benefit_batch_is_answered_once_with_its_control_totals() {
        use contracts::benefits::social::PaymentItem;
        let item = |id: &str, state: &str, amount: &str| PaymentItem {
            item_id: id.into(),
            award_id: "a".into(),
            psn_no: "p".into(),
            id_number: "11010519491231002X".into(),
            months: vec!["2024-04".into()],
            amount: amount.into(),
            card_state: state.into(),
            status: "ordered".into(),
            reason: None,
        };
        let batch = BenefitPaymentBatchOrdered {
            batch_id: "b1".into(),
            month: "2024-04".into(),
            kind: "pension".into(),
            item_count: 2,
            total: "3000.00".into(),
            items: vec![item("i1", "activated", "1000.00"), item("i2", "none", "2000.00")],
        };
        let c = batch_answer(&cfg(1, 0.0), &batch);
        assert_eq!(
            (c.line, c.name.as_str()),
            (Line::Social, "record-benefit-payments")
        );
        let body: serde_json::Value = serde_json::from_slice(&c.body).unwrap();
        assert_eq!(
            (&body["item_count"], &body["total"]),
            (&json!(2), &json!("3000.00"))
        );
        assert_eq!(body["results"][0]["outcome"], "paid");
        assert_eq!(body["results"][1]["outcome"], "failed");
        assert_eq!(body["results"][1]["reason"], "无社保卡金融账户");
        assert_eq!(batch_answer(&cfg(1, 0.0), &batch).message_id, c.message_id);
    }

    #[test]
    fn production_is_answered_with_the_card_then_shipping_then_arrival() {
        let ev = CardEvent {
            application_id: "a1".into(),
            id_number: "11010519491231002X".into(),
            kind: "first".into(),
            step: "bank-account-opened".into(),
            state: "in-progress".into(),
            in_production: true,
            insurance_types: vec![],
            lines: vec![],
            name: "张三".into(),
            bank: "ICBC".into(),
            financial_account: Some("6222".into()),
            card_number: None,
            reason: None,
            action: String::new(),
            attempt: 1,
            occurred_at: "2024-03-01T10:00:00+08:00".parse().unwrap(),
        };
        let c = cfg(1, 0.0);
        let names: Vec<String> = answers(&c, "common.card-issuance.card-production-requested", &ev)
            .iter()
            .map(|c| c.name.clone())
            .collect();
        assert_eq!(names, ["record-production", "record-shipment", "record-arrival"]);
        let failed = answers(
            &cfg(1, 1.0),
            "common.card-issuance.card-production-requested",
            &ev,
        );
        assert_eq!(failed.len(), 1);
        let body: serde_json::Value = serde_json::from_slice(&failed[0].body).unwrap();
        assert_eq!(body["produced"], false);
        let acct = answers(&c, "common.card-issuance.bank-account-requested", &ev);
        let body: serde_json::Value = serde_json::from_slice(&acct[0].body).unwrap();
        assert_eq!(body["opened"], true);
        assert_eq!(body["financial_account"].as_str().unwrap().len(), 19);
        assert_eq!(acct[0].channel, Some(Channel::Bank));
        assert!(answers(&c, "common.card-issuance.card-applied", &ev).is_empty());
        // The same request is answered with the same message ids (idempotent redelivery).
        let again = answers(&c, "common.card-issuance.bank-account-requested", &ev);
        assert_eq!(again[0].message_id, acct[0].message_id);
        assert!(acct[0].message_id.is_some());
    }
}
