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

/// What a service consumes and sends on the broker, without a handler or a database: each
/// service crate's `topology()`. The runtime declares it at start-up ([`ServiceTopology`],
/// from `ServiceSpec::topology`) and `insurancectl topology export` writes the same for a
/// deployment, so the two cannot differ.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceTopologySpec {
    pub service: &'static str,
    /// Lines whose commands this service handles (`<line>.<service>.*`).
    pub command_lines: Vec<Line>,
    /// Per line, the event routing keys (topic patterns) the service consumes.
    pub event_bindings: Vec<(Line, Vec<String>)>,
    /// The commands the service sends itself (a schedule): the only routing keys its broker
    /// user may publish on the commands exchange.
    pub sends: Vec<SentCommands>,
}

/// Commands `<line>.<service>.<command>` for every line and command named.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SentCommands {
    pub lines: Vec<Line>,
    pub service: &'static str,
    pub commands: Vec<&'static str>,
}

impl SentCommands {
    pub fn routing_keys(&self) -> Vec<String> {
        self.lines
            .iter()
            .flat_map(|line| {
                self.commands
                    .iter()
                    .map(move |c| format!("{line}.{}.{c}", self.service))
            })
            .collect()
    }
}

/// What a service consumes, per line, with the settings of its queues.
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

/// A queue argument's value, as declared (`x-message-ttl` 1000, `x-overflow` `reject-publish`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QueueArgument {
    Str(String),
    Int(i64),
}

impl QueueArgument {
    fn amqp(&self) -> AMQPValue {
        match self {
            QueueArgument::Str(v) => s(v),
            QueueArgument::Int(v) => AMQPValue::LongLongInt(*v),
        }
    }
}

/// A durable queue and its arguments, in the order they are declared; `x-queue-type` first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueDeclaration {
    pub name: String,
    pub arguments: Vec<(&'static str, QueueArgument)>,
}

impl QueueDeclaration {
    fn new(name: impl Into<String>, queue_type: &str) -> Self {
        QueueDeclaration {
            name: name.into(),
            arguments: vec![("x-queue-type", QueueArgument::Str(queue_type.to_owned()))],
        }
    }

    fn with(mut self, key: &'static str, value: QueueArgument) -> Self {
        self.arguments.push((key, value));
        self
    }

    fn with_str(self, key: &'static str, value: &str) -> Self {
        self.with(key, QueueArgument::Str(value.to_owned()))
    }

    /// `quorum` or `stream`.
    pub fn queue_type(&self) -> &str {
        match self.arguments.iter().find(|(k, _)| *k == "x-queue-type") {
            Some((_, QueueArgument::Str(t))) => t,
            _ => "classic",
        }
    }

    fn field_table(&self) -> FieldTable {
        let mut args = FieldTable::default();
        for (key, value) in &self.arguments {
            args.insert((*key).into(), value.amqp());
        }
        args
    }
}

/// A consumed (or control) queue with the exchange and keys it is bound with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkQueue {
    pub name: String,
    pub exchange: String,
    pub binding_keys: Vec<String>,
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
    pub fn new(spec: &ServiceTopologySpec, settings: QueueSettings) -> Self {
        ServiceTopology {
            service: spec.service.to_owned(),
            command_lines: spec.command_lines.clone(),
            event_bindings: spec.event_bindings.clone(),
            settings,
        }
    }

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

    /// The queues this service consumes and its control queue, each with its bindings, in
    /// the order [`ServiceTopology::declare`] declares them.
    pub fn work_queues(&self, names: &Names) -> Vec<WorkQueue> {
        let mut out: Vec<WorkQueue> = self
            .consumed_queues(names)
            .into_iter()
            .map(|q| match q.kind {
                MessageKind::Command => WorkQueue {
                    exchange: names.commands_exchange(),
                    binding_keys: vec![format!("{}.{}.*", q.line, self.service)],
                    name: q.name,
                },
                MessageKind::Event => WorkQueue {
                    exchange: names.events_exchange(),
                    binding_keys: self
                        .event_bindings
                        .iter()
                        .filter(|(l, _)| *l == q.line)
                        .flat_map(|(_, k)| k.iter().cloned())
                        .collect(),
                    name: q.name,
                },
            })
            .collect();
        out.push(WorkQueue {
            name: names.control_queue(&self.service),
            exchange: names.control_exchange(),
            binding_keys: vec![format!("{}.#", self.service), "all.#".to_owned()],
        });
        out
    }

    /// Declares the shared exchanges and archive, then this service's queues and bindings.
    pub async fn declare(&self, ch: &Channel, names: &Names, timeout: Duration) -> Result<(), BrokerError> {
        declare_shared(ch, names, &self.settings, timeout).await?;
        for q in self.work_queues(names) {
            declare_work_queue(ch, &q.name, &self.settings, timeout).await?;
            for key in &q.binding_keys {
                bind(ch, &q.name, &q.exchange, key, timeout).await?;
            }
        }
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

/// The shared topic exchanges every service declares.
pub fn shared_exchanges(names: &Names) -> Vec<String> {
    vec![
        names.commands_exchange(),
        names.events_exchange(),
        names.control_exchange(),
        names.subscribers_exchange(),
    ]
}

/// The events archive stream: every event, for `archive_max_age`.
pub fn archive_declaration(names: &Names, settings: &QueueSettings) -> QueueDeclaration {
    // Events older than this are dropped from the archive; new subscribers replay from it.
    QueueDeclaration::new(names.events_archive(), "stream").with_str("x-max-age", &settings.archive_max_age)
}

/// The archive's binding key on the events exchange.
pub const ARCHIVE_BINDING: &str = "#";

async fn declare_queue(ch: &Channel, queue: &QueueDeclaration, timeout: Duration) -> Result<(), BrokerError> {
    bounded(
        "queue.declare",
        timeout,
        ch.queue_declare(queue.name.as_str().into(), durable(), queue.field_table()),
    )
    .await
    .map(|_| ())
}

/// The topic exchanges and the events archive stream every service relies on.
pub async fn declare_shared(
    ch: &Channel,
    names: &Names,
    settings: &QueueSettings,
    timeout: Duration,
) -> Result<(), BrokerError> {
    for ex in shared_exchanges(names) {
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
    let archive = archive_declaration(names, settings);
    declare_queue(ch, &archive, timeout).await?;
    // The archive receives every event, so every event routes somewhere: a `mandatory`
    // publish that comes back means the topology itself is missing.
    bind(
        ch,
        &archive.name,
        &names.events_exchange(),
        ARCHIVE_BINDING,
        timeout,
    )
    .await
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

/// What [`declare_work_queue`] declares for `queue`, in order: its parking lot, each retry
/// tier, then the queue itself.
pub fn work_queue_declarations(queue: &str, settings: &QueueSettings) -> Vec<QueueDeclaration> {
    let parking = Names::parking(queue);
    let mut out = vec![QueueDeclaration::new(parking.as_str(), "quorum")];
    // Retry tiers: quorum queues without consumers whose queue-level TTL returns every
    // message after the tier's delay, at least once, through the default exchange to the
    // work queue. A per-message TTL in one queue would only expire messages at its head.
    for delay in settings.retry_tiers() {
        out.push(
            QueueDeclaration::new(Names::retry_tier(queue, delay), "quorum")
                .with("x-message-ttl", QueueArgument::Int(delay.as_millis() as i64))
                .with_str("x-dead-letter-exchange", "")
                .with_str("x-dead-letter-routing-key", queue)
                .with_str("x-dead-letter-strategy", "at-least-once")
                .with_str("x-overflow", "reject-publish"),
        );
    }
    out.push(
        QueueDeclaration::new(queue, "quorum")
            .with("x-delivery-limit", QueueArgument::Int(settings.delivery_limit))
            .with_str("x-dead-letter-exchange", "")
            .with_str("x-dead-letter-routing-key", &parking)
            // At-least-once dead-lettering (3.10+) needs reject-publish overflow.
            .with_str("x-dead-letter-strategy", "at-least-once")
            .with_str("x-overflow", "reject-publish"),
    );
    out
}

/// A consumed quorum queue, its parking lot and its retry tiers.
pub async fn declare_work_queue(
    ch: &Channel,
    queue: &str,
    settings: &QueueSettings,
    timeout: Duration,
) -> Result<(), BrokerError> {
    for q in work_queue_declarations(queue, settings) {
        declare_queue(ch, &q, timeout).await?;
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> ServiceTopologySpec {
        ServiceTopologySpec {
            service: "svc",
            command_lines: vec![Line::Medical, Line::Social],
            event_bindings: vec![(
                Line::Common,
                vec!["common.other.happened".into(), "common.*.x".into()],
            )],
            sends: vec![SentCommands {
                lines: vec![Line::Medical, Line::Social],
                service: "svc",
                commands: vec!["tick", "tock"],
            }],
        }
    }

    #[test]
    fn a_service_binds_its_commands_events_and_control_queue() {
        let names = Names::new("t1.");
        let t = ServiceTopology::new(&spec(), QueueSettings::default());
        let queues: Vec<(String, String, Vec<String>)> = t
            .work_queues(&names)
            .into_iter()
            .map(|q| (q.name, q.exchange, q.binding_keys))
            .collect();
        let q = |n: &str, e: &str, k: &[&str]| {
            let keys = k.iter().map(|k| k.to_string()).collect();
            (n.to_owned(), e.to_owned(), keys)
        };
        assert_eq!(
            queues,
            vec![
                q(
                    "t1.svc.medical.commands",
                    "t1.insurance.commands",
                    &["medical.svc.*"]
                ),
                q(
                    "t1.svc.social.commands",
                    "t1.insurance.commands",
                    &["social.svc.*"]
                ),
                q(
                    "t1.svc.common.events",
                    "t1.insurance.events",
                    &["common.other.happened", "common.*.x"]
                ),
                q("t1.svc.control", "t1.insurance.control", &["svc.#", "all.#"]),
            ]
        );
        // What a test tears down is what is declared.
        let mut declared: Vec<String> = t
            .work_queues(&names)
            .iter()
            .flat_map(|q| work_queue_declarations(&q.name, &t.settings))
            .map(|d| d.name)
            .collect();
        let mut owned = t.owned_queues(&names);
        declared.sort();
        owned.sort();
        assert_eq!(declared, owned);
        assert_eq!(
            spec().sends[0].routing_keys(),
            [
                "medical.svc.tick",
                "medical.svc.tock",
                "social.svc.tick",
                "social.svc.tock"
            ]
        );
    }

    #[test]
    fn a_work_queue_parks_after_its_delivery_limit_and_retries_through_its_tiers() {
        let settings = QueueSettings {
            delivery_limit: 3,
            archive_max_age: "1D".into(),
            retry_tiers_ms: vec![500, 60_000],
        };
        let d = work_queue_declarations("q", &settings);
        let names: Vec<&str> = d.iter().map(|d| d.name.as_str()).collect();
        assert_eq!(names, ["q.parking", "q.retry.500ms", "q.retry.1m", "q"]);
        let mut sorted = names.iter().map(|n| n.to_string()).collect::<Vec<_>>();
        sorted.sort();
        let mut listed = work_queue_names("q", &settings);
        listed.sort();
        assert_eq!(sorted, listed);
        assert!(d.iter().all(|d| d.queue_type() == "quorum"));
        let arg = |d: &QueueDeclaration, k: &str| {
            d.arguments
                .iter()
                .find(|(key, _)| *key == k)
                .map(|(_, v)| v.clone())
        };
        assert_eq!(arg(&d[3], "x-delivery-limit"), Some(QueueArgument::Int(3)));
        assert_eq!(
            arg(&d[3], "x-dead-letter-routing-key"),
            Some(QueueArgument::Str("q.parking".into()))
        );
        assert_eq!(arg(&d[1], "x-message-ttl"), Some(QueueArgument::Int(500)));
        assert_eq!(
            arg(&d[2], "x-dead-letter-routing-key"),
            Some(QueueArgument::Str("q".into()))
        );
        assert_eq!(d[0].arguments.len(), 1);
        let archive = archive_declaration(&Names::default(), &settings);
        assert_eq!(
            (archive.name.as_str(), archive.queue_type()),
            ("insurance.events.archive", "stream")
        );
        assert_eq!(arg(&archive, "x-max-age"), Some(QueueArgument::Str("1D".into())));
        // The AMQP table carries every argument.
        assert_eq!(d[3].field_table().inner().len(), 6);
    }
}
