//! A stand-in for the tax authority (税务部门), for tests and `make run`.
//!
//! It does what the real authority does through the suite's interfaces and nothing more: it
//! consumes its own subscription queue (`subscriber.tax-authority`, bound to the assessment
//! events) with its own broker user, and reports what it "collected" with `record-payment`
//! commands. Which assessments are paid in full, partly, late or not at all is decided by a
//! hash of the assessment id, so a run is repeatable. Like the services, it outlives a broker
//! outage: it reconnects with backoff and resumes where the queue left off.

use contracts::collection::events::ContributionAssessed;
use futures_util::StreamExt;
use lapin::message::Delivery;
use lapin::options::{BasicAckOptions, BasicConsumeOptions, BasicNackOptions, BasicQosOptions};
use lapin::types::FieldTable;
use messaging::Names;
use messaging::broker::{Broker, BrokerConfig, backoff, bounded};
use messaging::client::{ClientError, Command, CommandClient};
use rust_decimal::Decimal;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

#[derive(Debug, Clone)]
pub struct SimConfig {
    /// AMQP URL with the tax authority's own credentials.
    pub amqp_url: String,
    pub prefix: String,
    /// The subscriber name (`subscriber.<name>` queue).
    pub subscriber: String,
    /// Shares of assessments paid in full on time, in part, late (in full, after `late_by`);
    /// the rest is not paid at all. Each between 0 and 1; their sum at most 1.
    pub full: f64,
    pub partial: f64,
    pub late: f64,
    pub late_by: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    PayInFull,
    PayHalf,
    PayLate,
    DoNotPay,
}

/// FNV-1a: a stable, dependency-free hash so that decisions repeat across runs.
fn fnv(s: &str) -> u64 {
    s.bytes().fold(0xcbf29ce484222325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100000001b3)
    })
}

pub fn decide(assessment_id: &str, cfg: &SimConfig) -> Decision {
    let x = (fnv(assessment_id) % 10_000) as f64 / 10_000.0;
    if x < cfg.full {
        Decision::PayInFull
    } else if x < cfg.full + cfg.partial {
        Decision::PayHalf
    } else if x < cfg.full + cfg.partial + cfg.late {
        Decision::PayLate
    } else {
        Decision::DoNotPay
    }
}

/// What the simulator did, for tests and logs.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Stats {
    pub events: u64,
    pub paid: u64,
    pub rejected: u64,
    pub unpaid: u64,
}

/// The payment command for an assessment event under `decision`, if any.
pub fn payment_for(event: &ContributionAssessed, decision: Decision) -> Option<Command> {
    let amount: Decimal = event.amount.parse().ok()?;
    // Adjustments that lower what is due are refunds, not payments: nothing to report.
    if amount <= Decimal::ZERO {
        return None;
    }
    let pay = match decision {
        Decision::PayInFull | Decision::PayLate => amount,
        Decision::PayHalf => {
            (amount / Decimal::TWO).round_dp_with_strategy(2, rust_decimal::RoundingStrategy::ToZero)
        }
        Decision::DoNotPay => return None,
    };
    let cst = chrono::FixedOffset::east_opt(8 * 3600)?;
    let body = serde_json::json!({
        "assessment_id": event.assessment_id,
        "amount": format!("{pay:.2}"),
        "paid_at": chrono::Utc::now().with_timezone(&cst).to_rfc3339(),
        // One receipt per assessment run: a redelivered event reports the same receipt.
        "tax_receipt_no": format!("SIM{:016X}", fnv(&format!("{}/{}", event.assessment_id, event.run_id))),
    });
    let mut cmd = Command::new(event.line, "collection", "record-payment", &body);
    cmd.channel = Some(contracts::Channel::Tax);
    cmd.operator = Some("tax-authority-sim".into());
    Some(cmd)
}

/// Longest pause between two reconnection attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(10);
/// How often an idle consumer checks that its channel is still open.
const LIVENESS_CHECK: Duration = Duration::from_secs(2);
/// How long a payment command may wait for its reply before the event is returned.
const REPLY_WAIT: Duration = Duration::from_secs(30);

/// Why a session with the broker ended.
enum Ended {
    /// `shutdown` was cancelled: stop for good.
    Shutdown,
    /// The connection, channel or consumer failed: reconnect with backoff.
    Lost(anyhow::Error),
}

/// Consumes the subscription until `shutdown`; returns what it did.
///
/// A lost broker connection does not end it: it reconnects with backoff and consumes again,
/// as the services do. An event whose payment was not confirmed by a reply is not acked, so
/// it is redelivered and reported again with the same receipt number (the service's
/// idempotency key for payments); nothing is paid twice and nothing is skipped.
pub async fn run(cfg: SimConfig, shutdown: CancellationToken) -> anyhow::Result<Stats> {
    let mut stats = Stats::default();
    let mut attempt = 0u32;
    loop {
        match session(&cfg, &shutdown, &mut stats, &mut attempt).await {
            Ended::Shutdown => break,
            Ended::Lost(e) => {
                let delay = backoff(attempt, MAX_BACKOFF);
                attempt = attempt.saturating_add(1);
                tracing::warn!(
                    error = format!("{e:#}"),
                    ?delay,
                    attempt,
                    "broker lost; reconnecting"
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

/// One connection's worth of work: connect, consume, pay; ends on shutdown or a failure.
async fn session(
    cfg: &SimConfig,
    shutdown: &CancellationToken,
    stats: &mut Stats,
    attempt: &mut u32,
) -> Ended {
    let broker_cfg = BrokerConfig {
        url: cfg.amqp_url.clone(),
        prefix: cfg.prefix.clone(),
        timeout_ms: 10_000,
        tls: Default::default(),
    };
    let timeout = broker_cfg.timeout();
    let broker = Broker::new(broker_cfg.clone(), "tax-authority-sim");
    let connected = tokio::select! {
        _ = shutdown.cancelled() => return Ended::Shutdown,
        c = connect(&broker, broker_cfg, &cfg.prefix, &cfg.subscriber, timeout) => c,
    };
    let (client, ch, mut consumer) = match connected {
        Ok(parts) => parts,
        Err(e) => {
            broker.close().await;
            return Ended::Lost(e);
        }
    };
    *attempt = 0;
    let ended = consume(cfg, shutdown, stats, &client, &ch, &mut consumer, timeout).await;
    client.close().await;
    broker.close().await;
    ended
}

async fn connect(
    broker: &Broker,
    broker_cfg: BrokerConfig,
    prefix: &str,
    subscriber: &str,
    timeout: Duration,
) -> anyhow::Result<(CommandClient, lapin::Channel, lapin::Consumer)> {
    let client = CommandClient::connect(broker_cfg, "tax-authority-sim").await?;
    match subscribe(broker, prefix, subscriber, timeout).await {
        Ok((ch, consumer)) => Ok((client, ch, consumer)),
        Err(e) => {
            // Half a session is no session: close the client's connection too.
            client.close().await;
            Err(e)
        }
    }
}

async fn subscribe(
    broker: &Broker,
    prefix: &str,
    subscriber: &str,
    timeout: Duration,
) -> anyhow::Result<(lapin::Channel, lapin::Consumer)> {
    let queue = Names::new(prefix.to_owned()).subscriber_queue(subscriber);
    let ch = broker.channel().await?;
    bounded("basic.qos", timeout, ch.basic_qos(32, BasicQosOptions::default())).await?;
    let consumer = bounded(
        "basic.consume",
        timeout,
        ch.basic_consume(
            queue.as_str().into(),
            "tax-authority-sim".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        ),
    )
    .await?;
    tracing::info!(%queue, "tax authority simulator consuming");
    Ok((ch, consumer))
}

async fn settle(timeout: Duration, delivery: &Delivery, ack: bool) -> anyhow::Result<()> {
    let done = if ack {
        bounded(
            "basic.ack",
            timeout,
            delivery.acker.ack(BasicAckOptions::default()),
        )
        .await?
    } else {
        let requeue = BasicNackOptions {
            requeue: true,
            ..Default::default()
        };
        bounded("basic.nack", timeout, delivery.acker.nack(requeue)).await?
    };
    // `false`: the channel the delivery came on is gone; the broker redelivers it anyway.
    anyhow::ensure!(done, "the delivery's channel is closed; it will be redelivered");
    Ok(())
}

async fn consume(
    cfg: &SimConfig,
    shutdown: &CancellationToken,
    stats: &mut Stats,
    client: &CommandClient,
    ch: &lapin::Channel,
    consumer: &mut lapin::Consumer,
    timeout: Duration,
) -> Ended {
    let lost = |e: anyhow::Error| Ended::Lost(e);
    let mut check = tokio::time::interval(LIVENESS_CHECK);
    loop {
        let delivery = tokio::select! {
            _ = shutdown.cancelled() => return Ended::Shutdown,
            // A connection that died without a word (no close frame) is noticed here too.
            _ = check.tick() => {
                if !ch.status().connected() {
                    return lost(anyhow::anyhow!("the channel closed"));
                }
                continue;
            }
            d = consumer.next() => match d {
                Some(Ok(d)) => d,
                Some(Err(e)) => return lost(e.into()),
                None => return lost(anyhow::anyhow!("the consumer was cancelled")),
            },
        };
        stats.events += 1;
        let event: Option<ContributionAssessed> = serde_json::from_slice(&delivery.data).ok();
        let Some(event) = event else {
            // Not an assessment (another bound event type): nothing to pay.
            if let Err(e) = settle(timeout, &delivery, true).await {
                return lost(e);
            }
            continue;
        };
        let decision = decide(&event.assessment_id, cfg);
        let Some(cmd) = payment_for(&event, decision) else {
            stats.unpaid += 1;
            if let Err(e) = settle(timeout, &delivery, true).await {
                return lost(e);
            }
            continue;
        };
        if decision == Decision::PayLate {
            tokio::select! {
                _ = tokio::time::sleep(cfg.late_by) => {}
                _ = shutdown.cancelled() => {
                    let _ = settle(timeout, &delivery, false).await;
                    return Ended::Shutdown;
                }
            }
        }
        let send = client.send(&cmd, REPLY_WAIT);
        tokio::pin!(send);
        let sent = loop {
            tokio::select! {
                _ = shutdown.cancelled() => {
                    // A payment already sent is waited for (briefly), so that its report is
                    // counted and its event acked instead of reported again on the next start.
                    match tokio::time::timeout(timeout, &mut send).await {
                        Ok(Ok(reply)) if reply.is_ok() => {
                            stats.paid += 1;
                            let _ = settle(timeout, &delivery, true).await;
                        }
                        _ => {
                            let _ = settle(timeout, &delivery, false).await;
                        }
                    }
                    return Ended::Shutdown;
                }
                // The delivery cannot be acked on a dead channel: stop waiting for the reply,
                // the event comes back on the next connection.
                _ = check.tick() => {
                    if !ch.status().connected() {
                        return lost(anyhow::anyhow!("the channel closed while a payment was out"));
                    }
                }
                r = &mut send => break r,
            }
        };
        match sent {
            Ok(reply) if reply.is_ok() => {
                stats.paid += 1;
                tracing::info!(assessment = %event.assessment_id, ?decision, line = %event.line, "payment reported");
            }
            Ok(reply) => {
                tracing::warn!(assessment = %event.assessment_id, error = ?reply.error, "payment refused");
                stats.rejected += 1;
            }
            Err(ClientError::NoReply(wait)) => {
                // The service is slow or down: return the event, report it again later.
                tracing::warn!(?wait, "no reply to the payment; the event will be redelivered");
                if let Err(e) = settle(timeout, &delivery, false).await {
                    return lost(e);
                }
                continue;
            }
            Err(e) => {
                // Not acked: the event comes back and the same receipt is reported again,
                // over a new connection (this client's is broken).
                let _ = settle(timeout, &delivery, false).await;
                return lost(anyhow::Error::new(e).context("payment not delivered"));
            }
        }
        if let Err(e) = settle(timeout, &delivery, true).await {
            return lost(e);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use contracts::Line;

    fn cfg(full: f64, partial: f64, late: f64) -> SimConfig {
        SimConfig {
            amqp_url: String::new(),
            prefix: String::new(),
            subscriber: "tax-authority".into(),
            full,
            partial,
            late,
            late_by: Duration::ZERO,
        }
    }

    #[test]
    fn decisions_follow_the_configured_shares_and_repeat() {
        let c = cfg(0.6, 0.2, 0.1);
        let ids: Vec<String> = (0..5000).map(|i| format!("assessment-{i}")).collect();
        let count = |d: Decision| ids.iter().filter(|id| decide(id, &c) == d).count() as f64 / 5000.0;
        assert!((count(Decision::PayInFull) - 0.6).abs() < 0.03);
        assert!((count(Decision::PayHalf) - 0.2).abs() < 0.03);
        assert!((count(Decision::PayLate) - 0.1).abs() < 0.03);
        assert!((count(Decision::DoNotPay) - 0.1).abs() < 0.03);
        assert_eq!(decide("x", &c), decide("x", &c));
        assert!(
            ids.iter()
                .all(|id| decide(id, &cfg(1.0, 0.0, 0.0)) == Decision::PayInFull)
        );
    }

    #[test]
    fn half_payments_round_down_to_the_fen_and_refunds_are_not_paid() {
        let event = ContributionAssessed {
            assessment_id: "a".into(),
            run_id: "r".into(),
            kind: "initial".into(),
            payer_kind: "person".into(),
            payer_id: "p".into(),
            month: "2024-03".into(),
            lines: vec![],
            amount: "362.77".into(),
            total_due: "362.77".into(),
            deadline: "2024-04-20".parse().unwrap(),
            line: Line::Medical,
            batch_debit: false,
        };
        let cmd = payment_for(&event, Decision::PayHalf).unwrap();
        let body: serde_json::Value = serde_json::from_slice(&cmd.body).unwrap();
        assert_eq!(body["amount"], "181.38");
        assert!(
            body["tax_receipt_no"].as_str().unwrap().len() <= 64,
            "fits the service's limit"
        );
        assert_eq!(cmd.routing_key(), "medical.collection.record-payment");
        assert!(payment_for(&event, Decision::DoNotPay).is_none());
        let refund = ContributionAssessed {
            amount: "-10.00".into(),
            ..event
        };
        assert!(payment_for(&refund, Decision::PayInFull).is_none());
    }
}
