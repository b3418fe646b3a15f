//! The one consumer loop (DESIGN.md §4). Services only write [`Handler`]s.
//!
//! One message, top to bottom, through the files of this module:
//! - [`supervise`]: one task per consumed queue keeps a channel and a `basic.consume` alive,
//!   and stops consuming while the line is paused or the database is unreachable;
//! - [`decode`]: the envelope, routing key and body are read once, into an [`Incoming`];
//! - [`dispatch`]: messages with the same ordering key run one after another in arrival
//!   order, different keys in parallel;
//! - [`run`]: handler, outbox rows and inbox row in one transaction, under a timeout, with
//!   panics caught and errors sorted into reply / park / retry / wait for the database;
//! - [`settle`]: the outcome carried out on the broker (reply, retry tier, parking lot), then
//!   the ack.

mod decode;
pub(crate) mod dispatch;
pub(crate) mod run;
pub(crate) mod settle;
mod supervise;

pub use decode::{ORIGINAL_EXCHANGE, ORIGINAL_ROUTING_KEY, decode_parts};

use crate::broker::Broker;
use crate::envelope::Envelope;
use crate::freeze::{Freeze, FreezeSettings};
use crate::health::DbHealth;
use crate::lines::LineSwitches;
use crate::outbox::RelayWakes;
use crate::pools::LinePools;
use crate::topology::ConsumedQueue;
use async_trait::async_trait;
use contracts::{ErrorBody, ErrorCode, Line, MessageKind};
use deadpool_postgres::Transaction;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

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
    /// When the service took the message in, on its clock. A request held during a freeze
    /// keeps its arrival time: at thaw it is judged as of then (a payment on time, an
    /// enrollment's dates).
    pub received_at: chrono::DateTime<chrono::Utc>,
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
    pub outgoing: Vec<crate::outbox::Outgoing>,
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
    /// May succeed if tried again soon (serialization failure, deadlock, lock or statement
    /// timeout, an event that arrived before the one it follows): retried in process, then
    /// through the delay tiers, then parked.
    #[error("transient failure: {0}")]
    Transient(#[source] anyhow::Error),
    /// A dependency is unreachable (connection refused or lost, I/O, connect timeout): the
    /// message waits in process until the database is back, using up no retries, and the
    /// service stops taking new messages meanwhile.
    #[error("dependency unavailable: {0}")]
    Unavailable(#[source] anyhow::Error),
}

/// How a Postgres error is treated: the one place that sorts them (DESIGN.md §4).
fn classify(e: tokio_postgres::Error) -> HandlerError {
    use tokio_postgres::error::SqlState;
    if let Some(db) = e.as_db_error() {
        let code = db.code();
        if *code == SqlState::UNIQUE_VIOLATION {
            let what = db.constraint().unwrap_or("a unique constraint").to_owned();
            return HandlerError::Rejected(ErrorBody::new(
                ErrorCode::Conflict,
                format!("conflicts with an existing record ({what})"),
            ));
        }
        if *code == SqlState::T_R_SERIALIZATION_FAILURE
            || *code == SqlState::T_R_DEADLOCK_DETECTED
            || *code == SqlState::LOCK_NOT_AVAILABLE
            || *code == SqlState::QUERY_CANCELED
        {
            return HandlerError::Transient(e.into());
        }
        // The server going away: shutdown, restart, too many connections, recovery.
        if *code == SqlState::ADMIN_SHUTDOWN
            || *code == SqlState::CRASH_SHUTDOWN
            || *code == SqlState::CANNOT_CONNECT_NOW
            || *code == SqlState::TOO_MANY_CONNECTIONS
            || code.code().starts_with("08")
        {
            return HandlerError::Unavailable(e.into());
        }
        return HandlerError::Permanent(e.into());
    }
    if is_connection_error(&e) {
        HandlerError::Unavailable(e.into())
    } else {
        // No SQLSTATE and not the connection: a row count or a column that does not decode.
        // Trying again in a minute gives the same answer.
        HandlerError::Permanent(e.into())
    }
}

/// Closed connections, I/O errors and connect timeouts carry no SQLSTATE.
fn is_connection_error(e: &tokio_postgres::Error) -> bool {
    if e.is_closed() {
        return true;
    }
    let mut source: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(e);
    while let Some(s) = source {
        if s.is::<std::io::Error>() {
            return true;
        }
        source = s.source();
    }
    let text = e.to_string();
    text.starts_with("error connecting") || text.contains("timeout") || text.contains("timed out")
}

impl From<tokio_postgres::Error> for HandlerError {
    fn from(e: tokio_postgres::Error) -> Self {
        classify(e)
    }
}

impl From<deadpool_postgres::PoolError> for HandlerError {
    fn from(e: deadpool_postgres::PoolError) -> Self {
        use deadpool_postgres::PoolError;
        match e {
            PoolError::Backend(pg) => classify(pg),
            // Every connection of the line is busy: the line is loaded, not down.
            PoolError::Timeout(deadpool_postgres::TimeoutType::Wait) => HandlerError::Transient(e.into()),
            other => HandlerError::Unavailable(other.into()),
        }
    }
}

#[async_trait]
pub trait Handler: Send + Sync + 'static {
    /// Handles one message inside `tx`. Writes made through `tx` commit together with the
    /// inbox row and the outgoing messages; on any error they are rolled back.
    async fn handle(&self, tx: &Transaction<'_>, msg: &Incoming) -> Result<Handled, HandlerError>;

    /// Messages with the same key run one after another in arrival order. The contracts
    /// name the key of every command and event; a service overrides this only for messages
    /// of its own that the contracts do not know.
    fn ordering_key(&self, msg: &Incoming) -> Option<String> {
        contracts::ordering::key_of(&msg.service, &msg.name, &msg.body)
    }

    /// The payer kind a command concerns (`employer`, `flexible`, ...), for freeze orders
    /// scoped by payer kind; services where that matters override this.
    fn payer_kind(&self, _msg: &Incoming) -> Option<String> {
        None
    }

    /// The payer kind of a command whose body does not say it (one that names a person or an
    /// assessment), from the service's own tables. The gate asks only while an order in
    /// force on the command's line is scoped by payer kind, so ordinary traffic never pays
    /// for the lookup.
    async fn payer_kind_lookup(&self, _db: &deadpool_postgres::Client, _msg: &Incoming) -> Option<String> {
        None
    }
}

#[derive(Debug, Clone)]
pub struct ConsumerSettings {
    /// Unacknowledged deliveries per consumer: the most messages held per queue, running or
    /// waiting behind an earlier message with the same ordering key.
    pub prefetch: u16,
    /// In-process attempts for a transient failure before the retry tiers.
    pub in_process_attempts: u32,
    /// Trips through the retry tiers before a message is parked.
    pub max_retries: u32,
    /// Delay of each retry tier, in order; the last one repeats.
    pub retry_tiers: Vec<Duration>,
    /// How long in-flight messages may take to finish at shutdown or pause.
    pub drain_deadline: Duration,
    /// The longest a handler (with its transaction) may run before it is settled as failed.
    pub handler_timeout: Duration,
}

impl Default for ConsumerSettings {
    fn default() -> Self {
        ConsumerSettings {
            prefetch: 32,
            in_process_attempts: 3,
            max_retries: 5,
            retry_tiers: crate::topology::DEFAULT_RETRY_TIERS_MS
                .iter()
                .map(|ms| Duration::from_millis(*ms))
                .collect(),
            drain_deadline: Duration::from_secs(15),
            handler_timeout: Duration::from_secs(60),
        }
    }
}

/// Consumers of one service: one supervised task per consumed queue.
pub struct Consumers<H: Handler> {
    pub pools: LinePools,
    /// The connection each line consumes on (acks only: nothing is published on it).
    pub consume: HashMap<Line, Broker>,
    /// The connection each line publishes replies, retries and parked messages on.
    pub publish: HashMap<Line, Broker>,
    pub service: String,
    pub handler: Arc<H>,
    pub switches: LineSwitches,
    pub health: DbHealth,
    pub wakes: RelayWakes,
    pub settings: ConsumerSettings,
    pub freeze: Freeze,
    pub freeze_settings: FreezeSettings,
    pub names: crate::Names,
}

pub(crate) struct Ctx<H: Handler> {
    pub(crate) pools: LinePools,
    pub(crate) consume: HashMap<Line, Broker>,
    pub(crate) publish: HashMap<Line, Broker>,
    pub(crate) service: String,
    pub(crate) handler: Arc<H>,
    pub(crate) health: DbHealth,
    pub(crate) wakes: RelayWakes,
    pub(crate) settings: ConsumerSettings,
    pub(crate) freeze: Freeze,
    pub(crate) names: crate::Names,
    /// Cancelled when in-flight work must give up (drain deadline passed).
    pub(crate) hard_stop: CancellationToken,
}

impl<H: Handler> Ctx<H> {
    pub(crate) fn consume_broker(&self, line: Line) -> &Broker {
        self.consume.get(&line).expect("a consume connection per line")
    }

    pub(crate) fn publish_broker(&self, line: Line) -> &Broker {
        self.publish.get(&line).expect("a publish connection per line")
    }
}

impl<H: Handler> Consumers<H> {
    /// Runs until `shutdown`; returns after every in-flight message is finished and acked
    /// (or the drain deadline passed: those are redelivered and deduplicated).
    pub async fn run(self, queues: Vec<ConsumedQueue>, shutdown: CancellationToken) {
        let ctx = Arc::new(Ctx {
            pools: self.pools,
            consume: self.consume,
            publish: self.publish,
            service: self.service,
            handler: self.handler,
            health: self.health,
            wakes: self.wakes,
            settings: self.settings,
            freeze: self.freeze,
            names: self.names,
            hard_stop: CancellationToken::new(),
        });
        let mut tasks = JoinSet::new();
        tasks.spawn(crate::freeze::supervisor::supervise(
            ctx.clone(),
            queues.clone(),
            self.switches.clone(),
            self.freeze_settings,
            shutdown.clone(),
        ));
        tasks.spawn(crate::freeze::control::consume_control(
            ctx.clone(),
            queues.clone(),
            shutdown.clone(),
        ));
        for q in queues {
            tasks.spawn(supervise::supervise(
                ctx.clone(),
                q,
                self.switches.clone(),
                shutdown.clone(),
            ));
        }
        while tasks.join_next().await.is_some() {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pool_wait_timeouts_are_load_not_outage() {
        let e = deadpool_postgres::PoolError::Timeout(deadpool_postgres::TimeoutType::Wait);
        assert!(matches!(HandlerError::from(e), HandlerError::Transient(_)));
        let e = deadpool_postgres::PoolError::Timeout(deadpool_postgres::TimeoutType::Create);
        assert!(matches!(HandlerError::from(e), HandlerError::Unavailable(_)));
    }
}
