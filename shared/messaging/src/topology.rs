//! Topology declaration (DESIGN.md §2). Declarations are idempotent: every service declares
//! the shared exchanges and the archive, then its own queues, at start-up.

use crate::broker::{BrokerError, bounded};
use crate::names::Names;
use contracts::{Line, MessageKind};
use lapin::options::{
    ExchangeDeclareOptions, ExchangeDeleteOptions, QueueBindOptions, QueueDeclareOptions, QueueDeleteOptions,
};
use lapin::types::{AMQPValue, FieldTable, LongString};
use lapin::{Channel, ExchangeKind};
use std::time::Duration;

/// What a service consumes, per line.
#[derive(Debug, Clone)]
pub struct ServiceTopology {
    pub service: String,
    /// Lines whose commands this service handles (`<line>.<service>.*`).
    pub command_lines: Vec<Line>,
    /// Per line, the event routing keys (topic patterns) the service consumes.
    pub event_bindings: Vec<(Line, Vec<String>)>,
    pub settings: QueueSettings,
}

#[derive(Debug, Clone)]
pub struct QueueSettings {
    /// Deliveries after which a quorum queue dead-letters a message to its parking lot
    /// (RabbitMQ 3.10 has no default: without it a crash loop never ends).
    pub delivery_limit: i64,
    /// Retention of the events archive stream (RabbitMQ duration, e.g. `7D`).
    pub archive_max_age: String,
    /// The delay of each retry tier, in milliseconds.
    pub retry_tiers_ms: Vec<u64>,
}

/// 1 s, 10 s, 1 min, 10 min: quick enough for a deadlock, patient enough for a failover.
pub const DEFAULT_RETRY_TIERS_MS: [u64; 4] = [1_000, 10_000, 60_000, 600_000];

impl Default for QueueSettings {
    fn default() -> Self {
        QueueSettings {
            delivery_limit: 20,
            archive_max_age: "7D".into(),
            retry_tiers_ms: DEFAULT_RETRY_TIERS_MS.to_vec(),
        }
    }
}

impl QueueSettings {
    pub fn retry_tiers(&self) -> Vec<Duration> {
        self.retry_tiers_ms
            .iter()
            .map(|ms| Duration::from_millis(*ms))
            .collect()
    }
}

/// A queue a service consumes, with the line it belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumedQueue {
    pub name: String,
    pub line: Line,
    pub kind: MessageKind,
}

fn s(v: &str) -> AMQPValue {
    AMQPValue::LongString(LongString::from(v))
}

fn durable() -> QueueDeclareOptions {
    QueueDeclareOptions {
        durable: true,
        ..Default::default()
    }
}

impl ServiceTopology {
    pub fn consumed_queues(&self, names: &Names) -> Vec<ConsumedQueue> {
        let mut out: Vec<ConsumedQueue> = self
            .command_lines
            .iter()
            .map(|&line| ConsumedQueue {
                name: names.command_queue(&self.service, line),
                line,
                kind: MessageKind::Command,
            })
            .collect();
        out.extend(self.event_bindings.iter().map(|(line, _)| ConsumedQueue {
            name: names.event_queue(&self.service, *line),
            line: *line,
            kind: MessageKind::Event,
        }));
        out
    }

    /// Every queue name this service owns (consumed queues, their parking and retry queues,
    /// the control queue): what a test tears down.
    pub fn owned_queues(&self, names: &Names) -> Vec<String> {
        let mut out = Vec::new();
        let mut work: Vec<String> = self.consumed_queues(names).into_iter().map(|q| q.name).collect();
        work.push(names.control_queue(&self.service));
        for q in work {
            out.push(Names::parking(&q));
            out.extend(
                self.settings
                    .retry_tiers()
                    .into_iter()
                    .map(|d| Names::retry_tier(&q, d)),
            );
            out.push(q);
        }
        out
    }

    /// Declares the shared exchanges and archive, then this service's queues and bindings.
    pub async fn declare(&self, ch: &Channel, names: &Names, timeout: Duration) -> Result<(), BrokerError> {
        declare_shared(ch, names, &self.settings, timeout).await?;
        for q in self.consumed_queues(names) {
            declare_work_queue(ch, &q.name, &self.settings, timeout).await?;
            match q.kind {
                MessageKind::Command => {
                    let key = format!("{}.{}.*", q.line, self.service);
                    bind(ch, &q.name, &names.commands_exchange(), &key, timeout).await?;
                }
                MessageKind::Event => {
                    let keys = self
                        .event_bindings
                        .iter()
                        .filter(|(l, _)| *l == q.line)
                        .flat_map(|(_, k)| k);
                    for key in keys {
                        bind(ch, &q.name, &names.events_exchange(), key, timeout).await?;
                    }
                }
            }
        }
        let control = names.control_queue(&self.service);
        declare_work_queue(ch, &control, &self.settings, timeout).await?;
        bind(
            ch,
            &control,
            &names.control_exchange(),
            &format!("{}.#", self.service),
            timeout,
        )
        .await?;
        bind(ch, &control, &names.control_exchange(), "all.#", timeout).await?;
        Ok(())
    }
}

async fn bind(
    ch: &Channel,
    queue: &str,
    exchange: &str,
    key: &str,
    timeout: Duration,
) -> Result<(), BrokerError> {
    bounded(
        "queue.bind",
        timeout,
        ch.queue_bind(
            queue.into(),
            exchange.into(),
            key.into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        ),
    )
    .await
}

/// The three topic exchanges and the events archive stream every service relies on.
pub async fn declare_shared(
    ch: &Channel,
    names: &Names,
    settings: &QueueSettings,
    timeout: Duration,
) -> Result<(), BrokerError> {
    for ex in [
        names.commands_exchange(),
        names.events_exchange(),
        names.control_exchange(),
        names.subscribers_exchange(),
    ] {
        // durable: the exchanges are the suite's addresses and must survive broker restarts.
        let opts = ExchangeDeclareOptions {
            durable: true,
            ..Default::default()
        };
        bounded(
            "exchange.declare",
            timeout,
            ch.exchange_declare(
                ex.as_str().into(),
                ExchangeKind::Topic,
                opts,
                FieldTable::default(),
            ),
        )
        .await?;
    }
    let mut args = FieldTable::default();
    args.insert("x-queue-type".into(), s("stream"));
    // Events older than this are dropped from the archive; new subscribers replay from it.
    args.insert("x-max-age".into(), s(&settings.archive_max_age));
    let archive = names.events_archive();
    bounded(
        "queue.declare",
        timeout,
        ch.queue_declare(archive.as_str().into(), durable(), args),
    )
    .await?;
    // The archive receives every event, so every event routes somewhere: a `mandatory`
    // publish that comes back means the topology itself is missing.
    bind(ch, &archive, &names.events_exchange(), "#", timeout).await
}

/// The data-sharing hold queue of each business line (`freeze::data_sharing`), bound to the
/// line's events. Declared by the operator tooling with the first subscriber, together with
/// the line's shovel (a hold queue without its shovel would keep every event).
pub async fn declare_data_sharing(ch: &Channel, names: &Names, timeout: Duration) -> Result<(), BrokerError> {
    for line in Line::BUSINESS {
        let hold = names.data_sharing_hold(line);
        let mut args = FieldTable::default();
        args.insert("x-queue-type".into(), s("quorum"));
        bounded(
            "queue.declare",
            timeout,
            ch.queue_declare(hold.as_str().into(), durable(), args),
        )
        .await?;
        bind(ch, &hold, &names.events_exchange(), &format!("{line}.#"), timeout).await?;
    }
    Ok(())
}

/// Every queue [`declare_work_queue`] declares for `queue`: itself, its parking lot and each
/// retry tier (what a test or an operator removes with it).
pub fn work_queue_names(queue: &str, settings: &QueueSettings) -> Vec<String> {
    let mut names = vec![queue.to_owned(), Names::parking(queue)];
    names.extend(
        settings
            .retry_tiers()
            .into_iter()
            .map(|d| Names::retry_tier(queue, d)),
    );
    names
}

/// A consumed quorum queue, its parking lot and its retry tiers.
pub async fn declare_work_queue(
    ch: &Channel,
    queue: &str,
    settings: &QueueSettings,
    timeout: Duration,
) -> Result<(), BrokerError> {
    let parking = Names::parking(queue);
    let mut pargs = FieldTable::default();
    pargs.insert("x-queue-type".into(), s("quorum"));
    bounded(
        "queue.declare",
        timeout,
        ch.queue_declare(parking.as_str().into(), durable(), pargs),
    )
    .await?;

    // Retry tiers: quorum queues without consumers whose queue-level TTL returns every
    // message after the tier's delay, at least once, through the default exchange to the
    // work queue. A per-message TTL in one queue would only expire messages at its head.
    for delay in settings.retry_tiers() {
        let mut rargs = FieldTable::default();
        rargs.insert("x-queue-type".into(), s("quorum"));
        rargs.insert(
            "x-message-ttl".into(),
            AMQPValue::LongLongInt(delay.as_millis() as i64),
        );
        rargs.insert("x-dead-letter-exchange".into(), s(""));
        rargs.insert("x-dead-letter-routing-key".into(), s(queue));
        rargs.insert("x-dead-letter-strategy".into(), s("at-least-once"));
        rargs.insert("x-overflow".into(), s("reject-publish"));
        bounded(
            "queue.declare",
            timeout,
            ch.queue_declare(Names::retry_tier(queue, delay).as_str().into(), durable(), rargs),
        )
        .await?;
    }

    let mut args = FieldTable::default();
    args.insert("x-queue-type".into(), s("quorum"));
    args.insert(
        "x-delivery-limit".into(),
        AMQPValue::LongLongInt(settings.delivery_limit),
    );
    args.insert("x-dead-letter-exchange".into(), s(""));
    args.insert("x-dead-letter-routing-key".into(), s(&parking));
    // At-least-once dead-lettering (3.10+) needs reject-publish overflow.
    args.insert("x-dead-letter-strategy".into(), s("at-least-once"));
    args.insert("x-overflow".into(), s("reject-publish"));
    bounded(
        "queue.declare",
        timeout,
        ch.queue_declare(queue.into(), durable(), args),
    )
    .await?;
    Ok(())
}

/// Deletes queues and exchanges (test teardown, operator clean-up). Goes on past a failure
/// so that one missing queue does not leave the rest behind; returns the first error.
pub async fn delete(
    ch: &Channel,
    queues: &[String],
    exchanges: &[String],
    timeout: Duration,
) -> Result<(), BrokerError> {
    let mut first = None;
    for q in queues {
        let r = bounded(
            "queue.delete",
            timeout,
            ch.queue_delete(q.as_str().into(), QueueDeleteOptions::default()),
        )
        .await;
        first = first.or(r.err());
    }
    for e in exchanges {
        let r = bounded(
            "exchange.delete",
            timeout,
            ch.exchange_delete(e.as_str().into(), ExchangeDeleteOptions::default()),
        )
        .await;
        first = first.or(r.err());
    }
    first.map_or(Ok(()), Err)
}
