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
use crate::freeze::store::{self, Held};
use crate::inbox::{self, Recorded};
use crate::outbox;
use crate::topology::ConsumedQueue;
use chrono::{DateTime, Utc};
use contracts::freeze::{Decision, DeferredRequestProcessed, cst};
use contracts::{ErrorBody, ErrorCode, MessageKind, Receipt, Reply, Suspension};
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

/// How a message goes through its transaction.
#[derive(Clone, Copy)]
pub(crate) enum Mode<'a> {
    /// Processed now.
    Live,
    /// Taken into the backlog during an intake-only freeze and answered `deferred`.
    Hold {
        order: &'a str,
        resumes_at: Option<DateTime<Utc>>,
    },
    /// A held request processed at thaw: its final reply replaces the receipt.
    Thaw(&'a Held),
}

/// The gate of a frozen line, then the message's transaction.
pub(crate) async fn run<H: Handler>(
    ctx: &Ctx<H>,
    queue: &ConsumedQueue,
    msg: &Incoming,
    raw: &[u8],
) -> Outcome {
    if msg.kind == MessageKind::Command {
        let mut payer = ctx.handler.payer_kind(msg);
        if payer.is_none()
            && ctx.freeze.payer_scoped(msg.line)
            && let Ok(db) = ctx.pools.get(msg.line).get().await
        {
            payer = ctx.handler.payer_kind_lookup(&db, msg).await;
        }
        let decision = ctx
            .freeze
            .decide(msg.line, msg.envelope.channel, &msg.name, payer.as_deref());
        match decision {
            Decision::Open if ctx.freeze.is_draining(msg.line) && !contracts::freeze::is_query(&msg.name) => {
                // The line's backlog is being processed: join it, behind what was held.
                return run_as(
                    ctx,
                    queue,
                    msg,
                    raw,
                    Mode::Hold {
                        order: THAW,
                        resumes_at: Some(ctx.freeze.now()),
                    },
                )
                .await;
            }
            Decision::Open => {}
            Decision::Defer { order, resumes_at } => {
                return run_as(
                    ctx,
                    queue,
                    msg,
                    raw,
                    Mode::Hold {
                        order: &order,
                        resumes_at,
                    },
                )
                .await;
            }
            Decision::Refuse {
                order,
                resumes_at,
                redirect_to,
                announcement,
            } => {
                // A repeat of a command that already took effect keeps its reply.
                if let Some(outcome) = answer_if_repeat(ctx, queue, msg, raw).await {
                    return outcome;
                }
                metrics::counter!("freeze_refused_total", "line" => msg.line.as_str()).increment(1);
                let reply = Reply::suspended(Suspension {
                    order,
                    resumes_at: resumes_at.map(|t| t.with_timezone(&cst())),
                    announcement,
                    use_channel: redirect_to,
                });
                return Outcome::Done {
                    reply: Some(reply),
                    duplicate: false,
                };
            }
        }
    }
    run_as(ctx, queue, msg, raw, Mode::Live).await
}

/// The order id of requests that arrived while their line's backlog was processed.
pub(crate) const THAW: &str = "thaw";

pub(crate) async fn run_as<H: Handler>(
    ctx: &Ctx<H>,
    queue: &ConsumedQueue,
    msg: &Incoming,
    raw: &[u8],
    mode: Mode<'_>,
) -> Outcome {
    let mut attempt = 0u32;
    let mut unavailable_while_up = 0u32;
    let mut waits = 0u32;
    loop {
        let failure = match attempt_once(ctx, queue, msg, raw, mode).await {
            Ok(outcome) => return outcome,
            Err(f) => f,
        };
        // A failure of a message that already took effect is a repeat, not a failure (at
        // thaw the inbox row is the receipt: the backlog row says whether it is done).
        if !matches!(mode, Mode::Thaw(_))
            && let Some(outcome) = answer_if_repeat(ctx, queue, msg, raw).await
        {
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
    mode: Mode<'_>,
) -> Result<Outcome, Failure> {
    let mut client = ctx
        .pools
        .get(queue.line)
        .get()
        .await
        .map_err(HandlerError::from)?;
    let cancel = client.cancel_token();
    let limit = ctx.settings.handler_timeout;
    let work = async {
        match mode {
            Mode::Live => transact(ctx, queue, msg, raw, &mut client).await,
            Mode::Hold { order, resumes_at } => hold(queue, msg, raw, &mut client, order, resumes_at).await,
            Mode::Thaw(held) => thaw(ctx, msg, &mut client, held).await,
        }
    };
    match tokio::time::timeout(limit, work).await {
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
        Err(panic) => return Err(Failure::Panicked(panic_text(&*panic))),
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

/// Takes a command into the backlog: inbox row (with the `deferred` reply) first, so that a
/// repeat finds it and gets the same receipt, then the backlog row, in one transaction.
async fn hold(
    queue: &ConsumedQueue,
    msg: &Incoming,
    raw: &[u8],
    client: &mut deadpool_postgres::Object,
    order: &str,
    resumes_at: Option<DateTime<Utc>>,
) -> Result<Outcome, Failure> {
    let message_type = message_type(msg);
    let env = &msg.envelope;
    let receipt_id = uuid::Uuid::now_v7();
    let reply = Reply::deferred(Receipt {
        id: receipt_id.to_string(),
        received_at: Some(msg.received_at.with_timezone(&cst())),
        resumes_at: resumes_at.map(|t| t.with_timezone(&cst())),
    });
    let tx = client.transaction().await?;
    let recorded = inbox::record(&tx, env.message_id, &queue.name, &message_type, raw, Some(&reply)).await?;
    if !matches!(recorded, Recorded::New(_)) {
        tx.rollback().await?;
        return Ok(recorded_outcome(recorded, msg.kind));
    }
    let held = Held {
        seq: 0,
        receipt_id,
        line: msg.line,
        queue: queue.name.clone(),
        order_id: order.to_owned(),
        message_id: env.message_id,
        message_type,
        routing_key: format!("{}.{}.{}", msg.line, msg.service, msg.name),
        reply_to: env.reply_to.clone(),
        correlation_id: env.correlation_id.clone(),
        app_id: env.app_id.clone(),
        headers: env.headers.clone(),
        body: raw.to_vec(),
        received_at: msg.received_at,
        resumes_at,
    };
    store::hold(&tx, &held).await?;
    tx.commit().await?;
    metrics::counter!("freeze_held_total", "line" => msg.line.as_str()).increment(1);
    tracing::info!(receipt = %receipt_id, order, "command taken into the backlog");
    Ok(recorded_outcome(recorded, msg.kind))
}

/// A held request at thaw: the handler as of the request's arrival, its outgoing messages,
/// the final reply in the inbox and the backlog, and `deferred-request-processed`, in one
/// transaction. A rejection is stored the same way in a transaction of its own.
async fn thaw<H: Handler>(
    ctx: &Ctx<H>,
    msg: &Incoming,
    client: &mut deadpool_postgres::Object,
    held: &Held,
) -> Result<Outcome, Failure> {
    let tx = client.transaction().await?;
    let handled = match AssertUnwindSafe(ctx.handler.handle(&tx, msg))
        .catch_unwind()
        .await
    {
        Ok(r) => r,
        Err(panic) => return Err(Failure::Panicked(panic_text(&*panic))),
    };
    match handled {
        Ok(handled) => {
            let reply = Reply::ok(handled.result.unwrap_or(serde_json::Value::Null));
            outbox::insert(&tx, &handled.outgoing).await?;
            if !conclude(ctx, &tx, msg, held, &reply, false).await? {
                tx.rollback().await?;
                return Ok(Outcome::Done {
                    reply: None,
                    duplicate: true,
                });
            }
            tx.commit().await?;
            ctx.wakes.wake_all();
            Ok(Outcome::Done {
                reply: Some(reply),
                duplicate: false,
            })
        }
        Err(HandlerError::Rejected(body)) => {
            tx.rollback().await?;
            let reply = Reply::rejected(body);
            let tx = client.transaction().await?;
            let first = conclude(ctx, &tx, msg, held, &reply, false).await?;
            tx.commit().await?;
            ctx.wakes.wake_all();
            Ok(Outcome::Done {
                reply: first.then_some(reply),
                duplicate: !first,
            })
        }
        Err(other) => Err(Failure::Handler(other)),
    }
}

/// Stores the final reply of a held request and publishes its outcome; `false` when another
/// replica already did.
pub(crate) async fn conclude<H: Handler>(
    ctx: &Ctx<H>,
    client: &impl deadpool_postgres::GenericClient,
    msg: &Incoming,
    held: &Held,
    reply: &Reply,
    failed: bool,
) -> Result<bool, tokio_postgres::Error> {
    if !store::processed(client, held.seq, reply, failed).await? {
        return Ok(false);
    }
    store::finalize_inbox(client, held.message_id, reply).await?;
    let event = DeferredRequestProcessed {
        receipt: Receipt {
            id: held.receipt_id.to_string(),
            received_at: Some(held.received_at.with_timezone(&cst())),
            resumes_at: held.resumes_at.map(|t| t.with_timezone(&cst())),
        },
        service: ctx.service.clone(),
        line: held.line,
        command: msg.name.clone(),
        message_id: held.message_id,
        channel: msg.envelope.channel,
        processed_at: ctx.freeze.now().with_timezone(&cst()),
        reply: reply.clone(),
        subject: ctx.handler.ordering_key(msg),
    };
    let mut out = outbox::Outgoing::event(
        &ctx.names,
        held.line,
        &ctx.service,
        "deferred-request-processed",
        1,
        serde_json::to_value(&event).expect("an event serialises"),
        Some(&msg.envelope),
    );
    out.message_type = "freeze.deferred-request-processed.v1".into();
    outbox::insert(client, std::slice::from_ref(&out)).await?;
    Ok(true)
}

fn panic_text(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".into())
}
