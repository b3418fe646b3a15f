//! The soak's side of the broker: commands published with confirms (and published again with
//! the same message id until confirmed), replies taken from a durable quorum queue, so that
//! neither survives less than the services' own messages when a node goes down.

use contracts::{Line, Reply, ReplyStatus};
use futures_util::StreamExt;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicQosOptions, ConfirmSelectOptions, QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use messaging::broker::{Broker, BrokerConfig, backoff, publish_confirmed};
use messaging::client::Command;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// Where every reply of the soak goes.
pub const REPLY_QUEUE: &str = "soak.replies";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A request of the traffic.
    Normal,
    /// Bytes that are no command, sent on purpose: each must end in a parking lot.
    Malformed,
}

/// One command the soak sent.
#[derive(Clone, Debug)]
pub struct Sent {
    pub id: Uuid,
    pub op: &'static str,
    pub line: Line,
    pub key: String,
    pub body: Vec<u8>,
    pub channel: Option<String>,
    pub kind: Kind,
    /// Since the start of the soak.
    pub at: Duration,
}

/// One reply received.
#[derive(Clone, Debug)]
pub struct Got {
    pub reply: Reply,
    pub at: Duration,
}

impl Got {
    /// What must be the same in every final reply to one command: status, result, error code.
    pub fn essence(&self) -> String {
        let r = &self.reply;
        format!(
            "{:?} {} {}",
            r.status,
            r.result.as_ref().map(|v| v.to_string()).unwrap_or_default(),
            r.error.as_ref().map(|e| e.code.to_string()).unwrap_or_default()
        )
    }

    pub fn is_final(&self) -> bool {
        self.reply.status != ReplyStatus::Deferred
    }
}

#[derive(Default)]
pub struct Book {
    pub sent: Vec<Sent>,
    pub index: HashMap<Uuid, usize>,
    pub replies: HashMap<Uuid, Vec<Got>>,
    /// Resends of a command under its own message id (duplicates injected).
    pub duplicates: Vec<Uuid>,
    /// Publishes that had to be repeated before the broker confirmed them.
    pub republished: u64,
    /// Replies whose correlation id names no command of this soak.
    pub strangers: u64,
    /// Commands the broker returned: no queue for their routing key.
    pub unroutable: u64,
}

pub struct Wire {
    broker: Broker,
    publisher: tokio::sync::Mutex<Option<lapin::Channel>>,
    pub book: Mutex<Book>,
    arrived: Notify,
    started: Instant,
}

impl Wire {
    pub fn new(url_list: &str, started: Instant) -> Arc<Wire> {
        let config = BrokerConfig {
            url: url_list.to_owned(),
            prefix: String::new(),
            timeout_ms: 5_000,
            tls: Default::default(),
        };
        Arc::new(Wire {
            broker: Broker::new(config, "soak"),
            publisher: tokio::sync::Mutex::new(None),
            book: Mutex::new(Book::default()),
            arrived: Notify::new(),
            started,
        })
    }

    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    /// Takes replies until `stop`, reconnecting (to another node if need be) whenever the
    /// channel goes away. Acked after they are in the book.
    pub async fn read_replies(self: Arc<Self>, stop: CancellationToken) {
        let mut attempt = 0;
        while !stop.is_cancelled() {
            match self.consume_once(&stop).await {
                Ok(()) => attempt = 0,
                Err(e) => {
                    eprintln!("soak: reply consumer lost ({e}); reconnecting");
                    attempt += 1;
                    tokio::select! {
                        _ = tokio::time::sleep(backoff(attempt, Duration::from_secs(3))) => {}
                        _ = stop.cancelled() => return,
                    }
                }
            }
        }
    }

    async fn consume_once(&self, stop: &CancellationToken) -> anyhow::Result<()> {
        let ch = self.broker.channel().await?;
        let mut args = FieldTable::default();
        args.insert("x-queue-type".into(), AMQPValue::LongString("quorum".into()));
        ch.queue_declare(
            REPLY_QUEUE.into(),
            QueueDeclareOptions {
                durable: true,
                ..Default::default()
            },
            args,
        )
        .await?;
        ch.basic_qos(500, BasicQosOptions::default()).await?;
        let mut deliveries = ch
            .basic_consume(
                REPLY_QUEUE.into(),
                "soak-replies".into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await?;
        loop {
            let d = tokio::select! {
                d = deliveries.next() => d,
                _ = stop.cancelled() => return Ok(()),
            };
            let Some(d) = d else {
                anyhow::bail!("the reply consumer was cancelled by the broker");
            };
            let d = d?;
            self.take(
                d.properties.correlation_id().as_ref().map(|c| c.to_string()),
                &d.data,
            );
            d.acker.ack(BasicAckOptions::default()).await?;
        }
    }

    fn take(&self, correlation: Option<String>, data: &[u8]) {
        let at = self.elapsed();
        let mut book = self.book.lock().expect("book");
        let id = correlation.and_then(|c| c.parse::<Uuid>().ok());
        match (id, serde_json::from_slice::<Reply>(data)) {
            (Some(id), Ok(reply)) if book.index.contains_key(&id) => {
                book.replies.entry(id).or_default().push(Got { reply, at });
            }
            _ => book.strangers += 1,
        }
        drop(book);
        self.arrived.notify_waiters();
    }

    /// Publishes until the broker confirms it: the same message id each time, so a publish
    /// that did arrive before its confirm was lost is one command to the service.
    async fn publish(&self, key: &str, body: &[u8], props: lapin::BasicProperties) {
        let mut attempt = 0;
        loop {
            let ch = {
                let mut guard = self.publisher.lock().await;
                match guard.as_ref().filter(|c| c.status().connected()) {
                    Some(c) => Ok(c.clone()),
                    None => match self.broker.channel().await {
                        Ok(c) => match c.confirm_select(ConfirmSelectOptions::default()).await {
                            Ok(()) => {
                                *guard = Some(c.clone());
                                Ok(c)
                            }
                            Err(e) => Err(anyhow::Error::from(e)),
                        },
                        Err(e) => Err(e.into()),
                    },
                }
            };
            let sent = match ch {
                Ok(ch) => match publish_confirmed(
                    &ch,
                    Duration::from_secs(10),
                    "insurance.commands",
                    key,
                    true,
                    body,
                    props.clone(),
                )
                .await
                {
                    // No queue is bound for it: publishing again would not change that.
                    Err(messaging::broker::BrokerError::Returned(why)) => {
                        eprintln!("soak: {key} reaches no queue ({why})");
                        self.book.lock().expect("book").unroutable += 1;
                        return;
                    }
                    other => other.map_err(anyhow::Error::from),
                },
                Err(e) => Err(e),
            };
            match sent {
                Ok(()) => return,
                Err(e) => {
                    attempt += 1;
                    self.book.lock().expect("book").republished += 1;
                    if attempt % 10 == 1 {
                        eprintln!("soak: publish of {key} not confirmed ({e}); again");
                    }
                    *self.publisher.lock().await = None;
                    tokio::time::sleep(backoff(attempt, Duration::from_secs(2))).await;
                }
            }
        }
    }

    fn props(&self, id: Uuid, message_type: &str, channel: Option<&str>) -> lapin::BasicProperties {
        let mut headers = BTreeMap::new();
        if let Some(c) = channel {
            headers.insert(contracts::headers::CHANNEL.to_owned(), c.to_owned());
        }
        messaging::envelope::properties(
            id,
            message_type,
            Some(&id.to_string()),
            Some(REPLY_QUEUE),
            "soak",
            headers,
        )
    }

    /// Sends `cmd` (recorded under `op`) and returns its id once the broker has it.
    pub async fn send(&self, op: &'static str, cmd: &Command) -> Uuid {
        let id = cmd.message_id.unwrap_or_else(Uuid::now_v7);
        let channel = cmd.channel.map(|c| c.as_str().to_owned());
        let key = cmd.routing_key();
        self.record(Sent {
            id,
            op,
            line: cmd.line,
            key: key.clone(),
            body: cmd.body.clone(),
            channel: channel.clone(),
            kind: Kind::Normal,
            at: self.elapsed(),
        });
        let props = self.props(
            id,
            &format!("{}.{}.v1", cmd.service, cmd.name),
            channel.as_deref(),
        );
        self.publish(&key, &cmd.body, props).await;
        id
    }

    /// Sends `body` as if it were command `key`: a message that cannot be read.
    pub async fn send_malformed(&self, line: Line, key: &str, body: &[u8]) -> Uuid {
        let id = Uuid::now_v7();
        self.record(Sent {
            id,
            op: "malformed",
            line,
            key: key.to_owned(),
            body: body.to_vec(),
            channel: Some("counter".into()),
            kind: Kind::Malformed,
            at: self.elapsed(),
        });
        let name = key.rsplit('.').next().unwrap_or("x");
        let service = key.split('.').nth(1).unwrap_or("x");
        let props = self.props(id, &format!("{service}.{name}.v1"), Some("counter"));
        self.publish(key, body, props).await;
        id
    }

    /// Publishes an earlier command again, under its own message id.
    pub async fn resend(&self, id: Uuid) -> bool {
        let Some(s) = ({
            let book = self.book.lock().expect("book");
            book.index.get(&id).map(|i| book.sent[*i].clone())
        }) else {
            return false;
        };
        if s.kind != Kind::Normal {
            return false;
        }
        self.book.lock().expect("book").duplicates.push(id);
        let mut parts = s.key.splitn(3, '.');
        let (_, service, name) = (
            parts.next(),
            parts.next().unwrap_or(""),
            parts.next().unwrap_or(""),
        );
        let props = self.props(id, &format!("{service}.{name}.v1"), s.channel.as_deref());
        self.publish(&s.key, &s.body, props).await;
        true
    }

    fn record(&self, s: Sent) {
        let mut book = self.book.lock().expect("book");
        let at = book.sent.len();
        book.index.insert(s.id, at);
        book.sent.push(s);
    }

    /// The first reply to `id` (a receipt or final), waiting up to `wait`.
    pub async fn first_reply(&self, id: Uuid, wait: Duration) -> Option<Reply> {
        self.reply_where(id, wait, |_| true).await
    }

    /// The final reply to `id`, waiting up to `wait` (a held request's comes at the thaw).
    pub async fn final_reply(&self, id: Uuid, wait: Duration) -> Option<Reply> {
        self.reply_where(id, wait, Got::is_final).await
    }

    async fn reply_where(&self, id: Uuid, wait: Duration, pick: impl Fn(&Got) -> bool) -> Option<Reply> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let notified = self.arrived.notified();
            if let Some(g) = self
                .book
                .lock()
                .expect("book")
                .replies
                .get(&id)
                .and_then(|v| v.iter().find(|g| pick(g)))
            {
                return Some(g.reply.clone());
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return None;
            }
        }
    }

    /// Sends and waits for the first reply.
    pub async fn request(&self, op: &'static str, cmd: &Command, wait: Duration) -> (Uuid, Option<Reply>) {
        let id = self.send(op, cmd).await;
        (id, self.first_reply(id, wait).await)
    }

    /// Normal commands still without a final reply.
    pub fn unanswered(&self) -> Vec<Sent> {
        let book = self.book.lock().expect("book");
        book.sent
            .iter()
            .filter(|s| s.kind == Kind::Normal)
            .filter(|s| {
                !book
                    .replies
                    .get(&s.id)
                    .is_some_and(|v| v.iter().any(Got::is_final))
            })
            .cloned()
            .collect()
    }

    pub async fn close(&self) {
        self.broker.close().await;
    }
}
