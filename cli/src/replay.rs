//! `subscriber provision NAME --replay-from T` (issue 13 §5): a subscriber provisioned after
//! the fact first receives the events that happened since `T`, from the events archive (the
//! stream `insurance.events.archive`), in their original order and each once, then the live
//! ones, with no gap and no duplicate between the two.
//!
//! Live events reach subscribers only through each business line's hold queue and shovel
//! (`messaging::freeze::data_sharing`), so "what the subscriber would have received" is what
//! the archive holds of the medical and social lines, matching its bindings. How the two are
//! joined:
//!
//! 1. The subscriber's queue is declared, unbound, with an exchange of its own in front
//!    (`subscriber.<name>`, topic, bound to the queue with `#`, so that every event keeps its
//!    routing key). Its intake queue (`subscriber.<name>.intake`, quorum) is bound to the
//!    subscribers' exchange with the subscriber's bindings: from now on every live event for
//!    it waits there.
//! 2. A marker (`<line>.insurancectl.replay-marker`, carrying this run's cut id) is published
//!    to the events exchange for each line. It lands in the archive and, through the line's
//!    hold queue and shovel, in the intake queue. Once both markers have come through, every
//!    event of a line ahead of its marker in the hold queue is in the intake queue (hold
//!    queue and shovel are first in, first out): an event of the archive that is before the
//!    marker and not in the intake queue went to the subscribers before step 1.
//! 3. The archive is read from `T` up to the markers; what matches the bindings, happened at
//!    or after `T` and is not in the intake queue is published to the subscriber's exchange.
//! 4. The intake queue's messages follow, in their order (any the archive already gave are
//!    dropped, by `message_id`), each acknowledged once the subscriber's queue confirmed it.
//! 5. The hand-over: this tool cancels its consumer of the intake queue, moves what had been
//!    delivered to it, and puts a dynamic shovel (`subscriber-<name>-intake`, `on-confirm`)
//!    from the intake queue to the subscriber's exchange in its place. The shovel starts at
//!    the first message the tool did not take, so nothing is given twice or skipped, and the
//!    line shovels are never touched: data sharing goes on for everyone meanwhile.
//!
//! So a subscriber provisioned with a replay keeps that intake queue and shovel: its live
//! events take one hop more than other subscribers' (intake queue, shovel, its exchange, its
//! queue). `subscriber provision` again changes the intake queue's bindings, and `subscriber
//! remove` deletes all of it. Joining the live flow without that hop would need a moment in
//! which nothing reaches the subscribers' exchange; the only such switch the broker has is to
//! remove the line shovels, and a shovel removed under traffic gives the events it had in
//! flight a second time.
//!
//! A line whose data sharing a freeze holds lets its marker through only at the thaw: the run
//! waits for it (`--replay-wait`), because replaying that line's held events from the archive
//! would give them to the new subscriber before the thaw gives them to everyone else.
//!
//! Markers stay in the archive (a later replay skips them) and reach subscribers bound to
//! `#` or `<line>.#`; their type is `insurancectl.replay-marker.v1`.
//!
//! What could still go wrong, in principle: the broker does not order two publishers' messages
//! the same way in two queues, so an event published by a service at the very moment a marker
//! is published could be ahead of the marker in the archive and behind it in the hold queue.
//! The archive then gives it, and its later copy from the intake queue is dropped by id
//! (step 4), as long as that copy comes before the hand-over, which it does unless the two
//! queues disagree by longer than the whole catch-up.

use crate::subscriber::{Plan, topic_matches};
use anyhow::{Context, anyhow, bail};
use chrono::{DateTime, Utc};
use contracts::Line;
use futures_util::StreamExt;
use lapin::message::Delivery;
use lapin::options::{
    BasicAckOptions, BasicCancelOptions, BasicConsumeOptions, BasicQosOptions, ConfirmSelectOptions,
    ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable, LongString};
use lapin::{Channel, Consumer, ExchangeKind};
use messaging::broker::{bounded, publish_confirmed};
use messaging::management::{Api, local_shovel};
use messaging::{Broker, Names};
use serde::Serialize;
use std::collections::{BTreeSet, HashSet};
use std::time::Duration;
use tokio::time::Instant;
use uuid::Uuid;

/// The marker's event name (routing key `<line>.insurancectl.<MARKER>`).
pub const MARKER: &str = "replay-marker";
pub const MARKER_TYPE: &str = "insurancectl.replay-marker.v1";
/// The header carrying a marker's cut id.
const CUT_HEADER: &str = "x-replay-cut";
/// Publishes in flight to the subscriber's queue before their confirms are awaited.
const WINDOW: usize = 256;

/// Publishes to the subscriber's queue (through its own exchange) in windows of confirms,
/// and acknowledges each intake message only after everything before it was confirmed.
struct Sink<'c> {
    ch: &'c Channel,
    exchange: String,
    timeout: Duration,
    confirms: Vec<lapin::PublisherConfirm>,
    acks: Vec<Delivery>,
}

impl Sink<'_> {
    async fn give(&mut self, key: &str, d: &Delivery) -> anyhow::Result<()> {
        let opts = lapin::options::BasicPublishOptions {
            mandatory: true,
            ..Default::default()
        };
        let confirm = bounded(
            "basic.publish",
            self.timeout,
            self.ch.basic_publish(
                self.exchange.as_str().into(),
                key.into(),
                opts,
                &d.data,
                as_published(d),
            ),
        )
        .await
        .context("giving an event to the subscriber's queue")?;
        self.confirms.push(confirm);
        if self.confirms.len() >= WINDOW {
            self.flush().await?;
        }
        Ok(())
    }

    /// `d` is acknowledged in its queue at the next flush.
    fn settle_later(&mut self, d: Delivery) {
        self.acks.push(d);
    }

    async fn flush(&mut self) -> anyhow::Result<()> {
        for confirm in self.confirms.drain(..) {
            messaging::broker::confirmed(self.timeout, confirm)
                .await
                .context("the subscriber's queue did not take an event")?;
        }
        for d in self.acks.drain(..) {
            bounded("basic.ack", self.timeout, d.ack(BasicAckOptions::default())).await?;
        }
        Ok(())
    }
}

/// What the catch-up did, for the summary.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Replayed {
    pub from: DateTime<Utc>,
    /// Events given from the archive.
    pub from_archive: u64,
    /// Events that arrived while it caught up, given after them.
    pub while_catching_up: u64,
    /// `ce-time` of the first and last event given from the archive.
    pub first: Option<String>,
    pub last: Option<String>,
    /// How long the whole catch-up took, hand-over included.
    pub took_ms: u64,
}

pub fn marker_key(line: Line) -> String {
    format!("{line}.insurancectl.{MARKER}")
}

fn is_marker(routing_key: &str) -> bool {
    routing_key.ends_with(&format!(".insurancectl.{MARKER}"))
}

/// The business line a routing key belongs to; `None` for `common` and anything else, which
/// never reach subscribers.
fn business_line(routing_key: &str) -> Option<Line> {
    let first = routing_key.split('.').next()?;
    Line::BUSINESS.into_iter().find(|l| l.as_str() == first)
}

fn header(d: &Delivery, name: &str) -> Option<String> {
    let v = d.properties.headers().as_ref()?.inner().get(name)?;
    Some(messaging::envelope::value_to_string(v))
}

fn message_id(d: &Delivery) -> Option<String> {
    d.properties.message_id().as_ref().map(|s| s.as_str().to_owned())
}

/// When the event happened: `ce-time`, else the `timestamp` property (seconds).
fn happened_at(d: &Delivery) -> Option<DateTime<Utc>> {
    if let Some(t) =
        header(d, contracts::headers::CE_TIME).and_then(|t| DateTime::parse_from_rfc3339(&t).ok())
    {
        return Some(t.with_timezone(&Utc));
    }
    let secs = i64::try_from((*d.properties.timestamp())?).ok()?;
    DateTime::from_timestamp(secs, 0)
}

/// The event's properties without what the broker added on the way (the stream's offset, a
/// quorum queue's delivery count): the subscriber gets the event as it was published.
fn as_published(d: &Delivery) -> lapin::BasicProperties {
    let props = d.properties.clone();
    match props.headers().clone() {
        Some(headers) => {
            let mut kept = FieldTable::default();
            for (k, v) in headers.inner() {
                if !matches!(k.as_str(), "x-stream-offset" | "x-delivery-count") {
                    kept.insert(k.clone(), v.clone());
                }
            }
            props.with_headers(kept)
        }
        None => props,
    }
}

fn quorum() -> FieldTable {
    let mut args = FieldTable::default();
    args.insert(
        "x-queue-type".into(),
        AMQPValue::LongString(LongString::from("quorum")),
    );
    args
}

fn durable() -> QueueDeclareOptions {
    QueueDeclareOptions {
        durable: true,
        ..Default::default()
    }
}

/// Everything one catch-up needs, and what it has changed so far (to undo it on failure).
pub struct CatchUp<'a> {
    pub api: &'a Api,
    pub names: &'a Names,
    pub vhost: &'a str,
    pub broker: &'a Broker,
    pub plan: &'a Plan,
    pub from: DateTime<Utc>,
    pub wait: Duration,
    /// Notes for the operator while it waits (written to stderr by the caller).
    pub notes: Vec<String>,
}

impl<'a> CatchUp<'a> {
    pub fn new(
        api: &'a Api,
        names: &'a Names,
        vhost: &'a str,
        broker: &'a Broker,
        plan: &'a Plan,
        from: DateTime<Utc>,
        wait: Duration,
    ) -> Self {
        CatchUp {
            api,
            names,
            vhost,
            broker,
            plan,
            from,
            wait,
            notes: Vec::new(),
        }
    }

    /// Runs steps 1–5 of the module's description. On failure it deletes what it declared,
    /// the subscriber's queue included (it was new): nothing is left changed.
    pub async fn run(&mut self) -> anyhow::Result<Replayed> {
        let result = self.steps().await;
        if result.is_err() {
            self.undo().await;
        }
        result
    }

    async fn undo(&mut self) {
        let names = self.names;
        let name = &self.plan.name;
        let _ = self
            .api
            .delete_shovel(self.vhost, &crate::subscriber::intake_shovel(names, name))
            .await;
        let Ok(ch) = self.broker.channel().await else {
            return;
        };
        let mut queues = crate::subscriber::queues(names, name);
        queues.push(crate::subscriber::intake_queue(names, name));
        let exchanges = [crate::subscriber::own_exchange(names, name)];
        // Best effort: what was never declared is simply not there.
        let _ = messaging::topology::delete(&ch, &queues, &exchanges, self.broker.timeout()).await;
        let _ = ch.close(200, "done".into()).await;
    }

    async fn steps(&mut self) -> anyhow::Result<Replayed> {
        let timeout = self.broker.timeout();
        let ch = self.broker.channel().await?;
        bounded(
            "confirm.select",
            timeout,
            ch.confirm_select(ConfirmSelectOptions::default()),
        )
        .await?;
        let plan = self.plan;
        let started = Instant::now();
        let intake = crate::subscriber::intake_queue(self.names, &plan.name);
        let exchange = crate::subscriber::own_exchange(self.names, &plan.name);

        // 1. The intake queue takes the live events; the subscriber's queue is fed through an
        //    exchange of its own, which keeps each event's routing key.
        bounded(
            "queue.declare",
            timeout,
            ch.queue_declare(intake.as_str().into(), durable(), quorum()),
        )
        .await?;
        bounded(
            "exchange.declare",
            timeout,
            ch.exchange_declare(
                exchange.as_str().into(),
                ExchangeKind::Topic,
                ExchangeDeclareOptions {
                    durable: true,
                    ..Default::default()
                },
                FieldTable::default(),
            ),
        )
        .await?;
        self.bind(&ch, &plan.queue, &exchange, "#").await?;
        let mut intake_keys: Vec<String> = plan.bindings.clone();
        intake_keys.extend(Line::BUSINESS.into_iter().map(marker_key));
        for key in &intake_keys {
            self.bind(&ch, &intake, &plan.bound_to, key).await?;
        }
        let sch = self.broker.channel().await?;
        // Unlimited: nothing is acknowledged before the archive has been read, and the markers
        // must not wait behind a full window.
        bounded("basic.qos", timeout, sch.basic_qos(0, BasicQosOptions::default())).await?;
        let mut live = bounded(
            "basic.consume",
            timeout,
            sch.basic_consume(
                intake.as_str().into(),
                "".into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            ),
        )
        .await?;

        // 2. The markers.
        let cut = Uuid::now_v7().to_string();
        for line in Line::BUSINESS {
            let body = serde_json::json!({
                "subscriber": plan.name, "cut": cut, "replay_from": self.from.to_rfc3339(),
            });
            let mut headers = std::collections::BTreeMap::new();
            headers.insert(CUT_HEADER.to_owned(), cut.clone());
            let props = messaging::envelope::properties(
                Uuid::now_v7(),
                MARKER_TYPE,
                None,
                None,
                crate::APP_ID,
                headers,
            );
            publish_confirmed(
                &ch,
                timeout,
                &self.names.events_exchange(),
                &marker_key(line),
                true,
                &serde_json::to_vec(&body)?,
                props,
            )
            .await
            .with_context(|| format!("publishing the {line} replay marker"))?;
        }
        let mut held: Vec<Delivery> = Vec::new();
        let mut held_ids: HashSet<String> = HashSet::new();
        let mut through: BTreeSet<&'static str> = BTreeSet::new();
        let deadline = Instant::now() + self.wait;
        let mut next_note = Instant::now() + Duration::from_secs(10);
        while through.len() < Line::BUSINESS.len() {
            let now = Instant::now();
            if now >= deadline {
                let missing: Vec<&str> = Line::BUSINESS
                    .iter()
                    .map(|l| l.as_str())
                    .filter(|l| !through.contains(l))
                    .collect();
                bail!(
                    "the replay marker of line(s) {} did not reach the subscribers within {} s: is that \
                     line's data sharing held by a freeze (`insurancectl freeze status`) or its shovel \
                     missing? Nothing was changed; run it again after the thaw, or with a longer \
                     --replay-wait",
                    missing.join(", "),
                    self.wait.as_secs()
                );
            }
            if now >= next_note {
                self.notes.push(format!(
                    "waiting for the markers of {} (is data sharing held?)",
                    Line::BUSINESS
                        .iter()
                        .map(|l| l.as_str())
                        .filter(|l| !through.contains(l))
                        .collect::<Vec<_>>()
                        .join(", ")
                ));
                next_note = now + Duration::from_secs(30);
            }
            let Some(d) = next_within(&mut live, next_note.min(deadline), false).await? else {
                continue;
            };
            if is_marker(d.routing_key.as_str())
                && header(&d, CUT_HEADER).as_deref() == Some(&cut)
                && let Some(line) = business_line(d.routing_key.as_str())
            {
                through.insert(line.as_str());
            }
            if let Some(id) = message_id(&d) {
                held_ids.insert(id);
            }
            held.push(d);
        }

        // 3. The archive, from `from` up to the markers.
        let ach = self.broker.channel().await?;
        bounded(
            "basic.qos",
            timeout,
            ach.basic_qos(500, BasicQosOptions::default()),
        )
        .await?;
        let mut args = FieldTable::default();
        let secs = u64::try_from(self.from.timestamp()).unwrap_or(0);
        args.insert("x-stream-offset".into(), AMQPValue::Timestamp(secs));
        let archive_name = self.names.events_archive();
        let mut archive = bounded(
            "basic.consume",
            timeout,
            ach.basic_consume(
                archive_name.as_str().into(),
                "".into(),
                BasicConsumeOptions::default(),
                args,
            ),
        )
        .await?;
        let mut sink = Sink {
            ch: &ch,
            exchange: exchange.clone(),
            timeout,
            confirms: Vec::new(),
            acks: Vec::new(),
        };
        let mut done: BTreeSet<&'static str> = BTreeSet::new();
        let mut given: HashSet<String> = HashSet::new();
        let mut out = Replayed {
            from: self.from,
            from_archive: 0,
            while_catching_up: 0,
            first: None,
            last: None,
            took_ms: 0,
        };
        while done.len() < Line::BUSINESS.len() {
            // Both markers are in the archive already (confirmed), so this only waits for
            // reading; a silent archive means it is not what this tool thinks it is.
            let d = next_within(&mut archive, Instant::now() + timeout, false)
                .await?
                .ok_or_else(|| {
                    anyhow!(
                        "the archive {archive_name} gave nothing for {} s before its replay markers: \
                         nothing was changed",
                        timeout.as_secs()
                    )
                })?;
            bounded("basic.ack", timeout, d.ack(BasicAckOptions::default())).await?;
            let key = d.routing_key.as_str().to_owned();
            let Some(line) = business_line(&key) else {
                continue;
            };
            if is_marker(&key) {
                if header(&d, CUT_HEADER).as_deref() == Some(&cut) {
                    done.insert(line.as_str());
                }
                continue;
            }
            if done.contains(line.as_str()) {
                continue;
            }
            let Some(id) = message_id(&d) else { continue };
            let Some(at) = happened_at(&d) else { continue };
            if at < self.from
                || held_ids.contains(&id)
                || !plan.bindings.iter().any(|b| topic_matches(b, &key))
                || !given.insert(id)
            {
                continue;
            }
            sink.give(&key, &d).await?;
            out.from_archive += 1;
            let at = at.to_rfc3339();
            out.first.get_or_insert_with(|| at.clone());
            out.last = Some(at);
        }
        let _ = bounded(
            "basic.cancel",
            timeout,
            ach.basic_cancel(archive.tag(), BasicCancelOptions::default()),
        )
        .await;
        let _ = ach.close(200, "done".into()).await;

        // 4. What arrived while it caught up, in its order, and what keeps arriving until the
        //    hand-over.
        for d in held.drain(..) {
            forward(&mut sink, d, &mut given, &mut out).await?;
        }
        sink.flush().await?;

        // 5. The hand-over: no more markers into the intake queue, the tool's consumer
        //    cancelled and everything delivered to it moved, then the intake shovel.
        for line in Line::BUSINESS {
            bounded(
                "queue.unbind",
                timeout,
                ch.queue_unbind(
                    intake.as_str().into(),
                    plan.bound_to.as_str().into(),
                    marker_key(line).as_str().into(),
                    FieldTable::default(),
                ),
            )
            .await?;
        }
        bounded(
            "basic.cancel",
            timeout,
            sch.basic_cancel(live.tag(), BasicCancelOptions::default()),
        )
        .await?;
        // Deliveries come before the cancel-ok on the channel: they are all here by now.
        while let Some(d) = next_within(&mut live, Instant::now() + Duration::from_millis(100), true).await? {
            forward(&mut sink, d, &mut given, &mut out).await?;
        }
        sink.flush().await?;
        drop(sink);
        self.api
            .put_shovel(
                self.vhost,
                &crate::subscriber::intake_shovel(self.names, &plan.name),
                &intake_shovel_definition(self.names, &plan.name, self.vhost),
            )
            .await
            .context("starting the intake shovel (is the rabbitmq_shovel plugin enabled?)")?;
        out.took_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        let _ = sch.close(200, "done".into()).await;
        let _ = ch.close(200, "done".into()).await;
        Ok(out)
    }

    async fn bind(&self, ch: &Channel, queue: &str, exchange: &str, key: &str) -> anyhow::Result<()> {
        bounded(
            "queue.bind",
            self.broker.timeout(),
            ch.queue_bind(
                queue.into(),
                exchange.into(),
                key.into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            ),
        )
        .await?;
        Ok(())
    }
}

/// Moves one message of the intake queue to the subscriber's queue (unless it is a marker or
/// the archive gave it already); it is acknowledged there once that is confirmed.
async fn forward(
    sink: &mut Sink<'_>,
    d: Delivery,
    given: &mut HashSet<String>,
    out: &mut Replayed,
) -> anyhow::Result<()> {
    let key = d.routing_key.as_str().to_owned();
    let fresh = message_id(&d).is_none_or(|id| given.insert(id));
    if fresh && !is_marker(&key) {
        sink.give(&key, &d).await?;
        out.while_catching_up += 1;
    }
    sink.settle_later(d);
    Ok(())
}

/// The next delivery, or `None` when none came by `until` (or, once it was cancelled, when
/// the consumer has ended).
async fn next_within(
    consumer: &mut Consumer,
    until: Instant,
    cancelled: bool,
) -> anyhow::Result<Option<Delivery>> {
    match tokio::time::timeout_at(until, consumer.next()).await {
        Err(_) => Ok(None),
        Ok(None) if cancelled => Ok(None),
        Ok(None) => bail!("the broker ended the consumer"),
        Ok(Some(Err(e))) => Err(anyhow!(e).context("consuming")),
        Ok(Some(Ok(d))) => Ok(Some(d)),
    }
}

/// The intake shovel of subscriber `name`: its intake queue into its own exchange, keeping each
/// event's routing key and properties, acknowledged at the source after the queue confirmed.
pub fn intake_shovel_definition(names: &Names, name: &str, vhost: &str) -> serde_json::Value {
    local_shovel(
        vhost,
        &crate::subscriber::intake_queue(names, name),
        &crate::subscriber::own_exchange(names, name),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markers_are_per_line_and_recognised() {
        assert_eq!(marker_key(Line::Medical), "medical.insurancectl.replay-marker");
        assert!(is_marker("social.insurancectl.replay-marker"));
        assert!(!is_marker("social.enrollment.person-enrolled"));
        assert_eq!(business_line("medical.collection.x"), Some(Line::Medical));
        assert_eq!(business_line("common.card-issuance.card-arrived"), None);
        assert_eq!(business_line("garbage"), None);
    }
}
