//! One message through its handler: handler, outbox rows and inbox row in one transaction,
//! under a timeout, with a panic caught; errors sorted once into what happens next.
//!
//! The inbox row is written last, in the same statement that stores the reply, so the common
//! path costs no extra round trip: a duplicate finds the row at that insert (it waits for a
//! concurrent first delivery to commit) and its effects are rolled back. When a handler
//! fails, the inbox is looked at before the failure is acted on, so a repeat of a message
//! that already took effect is answered from the inbox even if its handler is not
//! idempotent.

use super::{Ctx, Handler, HandlerError, Incoming};
use crate::broker::backoff;
use crate::inbox::{self, Recorded};
use crate::outbox;
use crate::topology::ConsumedQueue;
use contracts::{ErrorBody, ErrorCode, MessageKind, Reply};
use futures_util::FutureExt;
use std::panic::AssertUnwindSafe;
use std::time::Duration;

pub(crate) enum Outcome {
    /// Committed (new, or a duplicate answered from the inbox); reply if any.
    Done {
        reply: Option<Reply>,
        duplicate: bool,
    },
    Park {
        reason: String,
        code: ErrorCode,
        reply: Option<Reply>,
    },
    Retry(String),
    /// Given up on at a hard stop (shutdown deadline): back to the queue, unprocessed.
    Requeue,
}

enum Failure {
    Handler(HandlerError),
    Panicked(String),
    TimedOut(Duration),
}

impl From<HandlerError> for Failure {
    fn from(e: HandlerError) -> Self {
        Failure::Handler(e)
    }
}

impl From<tokio_postgres::Error> for Failure {
    fn from(e: tokio_postgres::Error) -> Self {
        Failure::Handler(e.into())
    }
}

/// A connection error while the health check says the database is up is believed this many
/// times (a cut connection, a failover), then treated as an ordinary transient failure, so a
/// message cannot wait forever on a fault only it sees.
const UNAVAILABLE_WHILE_UP: u32 = 10;

fn internal_reply() -> Reply {
    Reply::rejected(ErrorBody::new(
        ErrorCode::Internal,
        "the service could not process this message; it was parked for an operator",
    ))
}

fn park_internal(reason: String, kind: MessageKind) -> Outcome {
    Outcome::Park {
        reason,
        code: ErrorCode::Internal,
        reply: (kind == MessageKind::Command).then(internal_reply),
    }
}

pub(crate) async fn run<H: Handler>(
    ctx: &Ctx<H>,
    queue: &ConsumedQueue,
    msg: &Incoming,
    raw: &[u8],
) -> Outcome {
    let mut attempt = 0u32;
    let mut unavailable_while_up = 0u32;
    let mut waits = 0u32;
    loop {
        let failure = match attempt_once(ctx, queue, msg, raw).await {
            Ok(outcome) => return outcome,
            Err(f) => f,
        };
        // A failure of a message that already took effect is a repeat, not a failure.
        if let Some(outcome) = answer_if_repeat(ctx, queue, msg, raw).await {
            return outcome;
        }
        match failure {
            Failure::Handler(HandlerError::Unavailable(e)) if unavailable_while_up < UNAVAILABLE_WHILE_UP => {
                if ctx.health.is_up() {
                    unavailable_while_up += 1;
                }
                waits += 1;
                ctx.health.report_failure();
                tracing::warn!(error = %format!("{e:#}"), "database unavailable; holding the message until it is back");
                if !ctx.health.wait_up(&ctx.hard_stop).await {
                    return Outcome::Requeue;
                }
                let pause = backoff(waits.min(5), Duration::from_secs(2));
                tokio::select! {
                    _ = tokio::time::sleep(pause) => {}
                    _ = ctx.hard_stop.cancelled() => return Outcome::Requeue,
                }
            }
            Failure::Handler(HandlerError::Transient(e) | HandlerError::Unavailable(e)) => {
                attempt += 1;
                if attempt >= ctx.settings.in_process_attempts {
                    return Outcome::Retry(format!("{e:#}"));
                }
                let wait = backoff(attempt, Duration::from_secs(2));
                tracing::debug!(error = %format!("{e:#}"), attempt, ?wait, "transient failure; retrying in process");
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {}
                    _ = ctx.hard_stop.cancelled() => return Outcome::Requeue,
                }
            }
            Failure::Handler(HandlerError::Permanent(e)) => {
                tracing::error!(error = ?e, "handler failed permanently; parking the message");
                return park_internal(format!("{e:#}"), msg.kind);
            }
            Failure::Handler(HandlerError::Rejected(body)) => {
                // Only events reach here (command rejections are committed as replies).
                return Outcome::Park {
                    reason: body.to_string(),
                    code: body.code,
                    reply: None,
                };
            }
            Failure::Panicked(why) => {
                tracing::error!(%why, "handler panicked; parking the message");
                return park_internal(format!("handler panicked: {why}"), msg.kind);
            }
            Failure::TimedOut(limit) => {
                tracing::error!(?limit, "handler exceeded its time; parking the message");
                return park_internal(format!("handler exceeded its time limit of {limit:?}"), msg.kind);
            }
        }
    }
}

/// Looks the message up in the inbox after a failure.
async fn answer_if_repeat<H: Handler>(
    ctx: &Ctx<H>,
    queue: &ConsumedQueue,
    msg: &Incoming,
    raw: &[u8],
) -> Option<Outcome> {
    let client = ctx.pools.get(queue.line).get().await.ok()?;
    let found = inbox::lookup(&client, msg.envelope.message_id, &message_type(msg), raw)
        .await
        .ok()??;
    Some(recorded_outcome(found, msg.kind))
}

fn message_type(msg: &Incoming) -> String {
    msg.envelope.message_type.clone().unwrap_or_default()
}

fn recorded_outcome(r: Recorded, kind: MessageKind) -> Outcome {
    match r {
        Recorded::New(reply) => Outcome::Done {
            reply,
            duplicate: false,
        },
        Recorded::Repeat(reply) => Outcome::Done {
            reply,
            duplicate: true,
        },
        Recorded::Conflict(why) => match kind {
            // Not stored: the first message keeps its id and its reply.
            MessageKind::Command => Outcome::Done {
                reply: Some(Reply::rejected(ErrorBody::new(ErrorCode::Conflict, why))),
                duplicate: false,
            },
            MessageKind::Event => Outcome::Park {
                reason: why,
                code: ErrorCode::Conflict,
                reply: None,
            },
        },
    }
}

async fn attempt_once<H: Handler>(
    ctx: &Ctx<H>,
    queue: &ConsumedQueue,
    msg: &Incoming,
    raw: &[u8],
) -> Result<Outcome, Failure> {
    let mut client = ctx
        .pools
        .get(queue.line)
        .get()
        .await
        .map_err(HandlerError::from)?;
    let cancel = client.cancel_token();
    let limit = ctx.settings.handler_timeout;
    match tokio::time::timeout(limit, transact(ctx, queue, msg, raw, &mut client)).await {
        Ok(r) => r,
        Err(_) => {
            // The statement may still run on the server (a lock wait): cancel it, and keep
            // the connection out of the pool, whatever state its session is in.
            tokio::spawn(async move {
                let _ = cancel.cancel_query(tokio_postgres::NoTls).await;
            });
            drop(deadpool_postgres::Object::take(client));
            Err(Failure::TimedOut(limit))
        }
    }
}

async fn transact<H: Handler>(
    ctx: &Ctx<H>,
    queue: &ConsumedQueue,
    msg: &Incoming,
    raw: &[u8],
    client: &mut deadpool_postgres::Object,
) -> Result<Outcome, Failure> {
    let message_type = message_type(msg);
    let id = msg.envelope.message_id;
    let tx = client.transaction().await?;
    let handled = match AssertUnwindSafe(ctx.handler.handle(&tx, msg))
        .catch_unwind()
        .await
    {
        Ok(r) => r,
        Err(panic) => {
            let why = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "a panic without a message".into());
            return Err(Failure::Panicked(why));
        }
    };
    match handled {
        Ok(handled) => {
            outbox::insert(&tx, &handled.outgoing).await?;
            let reply = (msg.kind == MessageKind::Command)
                .then(|| Reply::ok(handled.result.unwrap_or(serde_json::Value::Null)));
            let recorded = inbox::record(&tx, id, &queue.name, &message_type, raw, reply.as_ref()).await?;
            if matches!(recorded, Recorded::New(_)) {
                tx.commit().await?;
                if !handled.outgoing.is_empty() || handled.wrote_outbox {
                    ctx.wakes.wake_all();
                }
            } else {
                tx.rollback().await?;
            }
            Ok(recorded_outcome(recorded, msg.kind))
        }
        Err(HandlerError::Rejected(body)) if msg.kind == MessageKind::Command => {
            tx.rollback().await?;
            tracing::info!(code = %body.code, field = ?body.field, "command rejected");
            let reply = Reply::rejected(body);
            // Stored on its own, so that a repeat gets the same rejection.
            let recorded = inbox::record(&*client, id, &queue.name, &message_type, raw, Some(&reply)).await?;
            Ok(recorded_outcome(recorded, msg.kind))
        }
        Err(other) => Err(Failure::Handler(other)),
    }
}
