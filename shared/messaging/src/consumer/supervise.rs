//! One task per consumed queue: keeps a channel and a consumer on the line's consume
//! connection, reconnects with backoff, and opens or closes the gate:
//! - the line paused: stop consuming, finish what is in flight, release the channel;
//! - the database unreachable: stop consuming (the queue shows no consumer, `/readyz` says
//!   why), hold what is in flight until it is back, then consume again by itself.

use super::decode::{Decoded, decode};
use super::dispatch::Keyed;
use super::run::{Outcome, run};
use super::settle::{PublishChannel, settle};
use super::{Ctx, Handler};
use crate::broker::{BrokerError, backoff, bounded};
use crate::envelope::headers_of;
use crate::lines::LineSwitches;
use crate::topology::ConsumedQueue;
use contracts::{ErrorBody, ErrorCode, MessageKind, Reply};
use futures_util::StreamExt;
use lapin::message::Delivery;
use lapin::options::{BasicCancelOptions, BasicConsumeOptions, BasicQosOptions};
use lapin::types::FieldTable;
use lapin::{Channel, Consumer};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;
use uuid::Uuid;

pub(crate) async fn supervise<H: Handler>(
    ctx: Arc<Ctx<H>>,
    queue: ConsumedQueue,
    switches: LineSwitches,
    shutdown: CancellationToken,
) {
    let mut paused = switches.watch(queue.line, queue.kind);
    let mut db = ctx.health.watch();
    let out = Arc::new(PublishChannel::new(ctx.publish_broker(queue.line).clone()));
    let mut failures = 0u32;
    // The orders first: a replica started during a freeze comes up frozen.
    tokio::select! {
        _ = ctx.freeze.loaded() => {}
        _ = shutdown.cancelled() => { out.close().await; return },
    }
    loop {
        // Wait while the line is paused or the database is down (nothing in flight here).
        while *paused.borrow_and_update() || !*db.borrow_and_update() {
            tokio::select! {
                r = paused.changed() => if r.is_err() { return },
                r = db.changed() => if r.is_err() { return },
                _ = shutdown.cancelled() => { out.close().await; return },
            }
        }
        if shutdown.is_cancelled() {
            break;
        }
        match consume(&ctx, &queue, &out, &mut paused, &mut db, &shutdown).await {
            Ok(()) => failures = 0,
            Err(e) => {
                failures += 1;
                let wait = backoff(failures, Duration::from_secs(10));
                tracing::warn!(queue = %queue.name, error = %e, ?wait, "consumer failed; reconnecting");
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {}
                    _ = shutdown.cancelled() => break,
                }
            }
        }
    }
    out.close().await;
}

/// A delivery waiting for, or holding, its ordering key.
struct Job {
    delivery: Delivery,
    decoded: Decoded,
}

enum State<C = Consumer> {
    Consuming(String, C),
    /// `basic.cancel` sent: deliveries already on their way are still taken.
    Cancelling(C),
    Idle,
}

impl<C> State<C> {
    /// Consuming → Cancelling, giving the tag to cancel; any other state is left as it is. A
    /// cancelling consumer in particular is kept until its stream ends: deliveries the broker
    /// sent before the cancel-ok are in it, and dropping it would leave them unacknowledged on
    /// the channel, never processed and never redelivered while the channel lives (a database
    /// outage keeps the channel open).
    fn stop(&mut self) -> Option<String> {
        if !matches!(self, State::Consuming(..)) {
            return None;
        }
        match std::mem::replace(self, State::Idle) {
            State::Consuming(tag, consumer) => {
                *self = State::Cancelling(consumer);
                Some(tag)
            }
            _ => unreachable!("checked above"),
        }
    }
}

async fn start(ctx: &Ctx<impl Handler>, queue: &ConsumedQueue, ch: &Channel) -> Result<State, BrokerError> {
    let tag = format!("{}-{}", ctx.service, Uuid::now_v7());
    let consumer = bounded(
        "basic.consume",
        ctx.consume_broker(queue.line).timeout(),
        ch.basic_consume(
            queue.name.as_str().into(),
            tag.as_str().into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        ),
    )
    .await?;
    tracing::info!(queue = %queue.name, "consuming");
    Ok(State::Consuming(tag, consumer))
}

async fn next_delivery(state: &mut State) -> Option<lapin::Result<Delivery>> {
    match state {
        State::Consuming(_, c) | State::Cancelling(c) => c.next().await,
        State::Idle => std::future::pending().await,
    }
}

/// Consumes `queue` until shutdown or pause (Ok) or a broker failure (Err).
async fn consume<H: Handler>(
    ctx: &Arc<Ctx<H>>,
    queue: &ConsumedQueue,
    out: &Arc<PublishChannel>,
    paused: &mut watch::Receiver<bool>,
    db: &mut watch::Receiver<bool>,
    shutdown: &CancellationToken,
) -> Result<(), BrokerError> {
    let broker = ctx.consume_broker(queue.line);
    let timeout = broker.timeout();
    let ch = broker.channel().await?;
    bounded(
        "basic.qos",
        timeout,
        ch.basic_qos(ctx.settings.prefetch, BasicQosOptions::default()),
    )
    .await?;
    let mut state = start(ctx, queue, &ch).await?;
    let mut keyed: Keyed<Job> = Keyed::default();
    let mut inflight: JoinSet<()> = JoinSet::new();
    let mut keys: HashMap<tokio::task::Id, Option<String>> = HashMap::new();
    let spawn = |inflight: &mut JoinSet<()>,
                 keys: &mut HashMap<tokio::task::Id, Option<String>>,
                 key: Option<String>,
                 job: Job| {
        let (ctx, out, q) = (ctx.clone(), out.clone(), queue.clone());
        let handle = inflight.spawn(async move { process(&ctx, &out, &q, job).await });
        keys.insert(handle.id(), key);
    };
    let result = loop {
        let is_paused = *paused.borrow();
        let open = !is_paused && *db.borrow();
        if !open && let Some(tag) = state.stop() {
            let why = if is_paused {
                "line paused or frozen"
            } else {
                "database unreachable"
            };
            tracing::warn!(queue = %queue.name, why, "stopping consumption");
            bounded(
                "basic.cancel",
                timeout,
                ch.basic_cancel(tag.as_str().into(), BasicCancelOptions::default()),
            )
            .await?;
        }
        if is_paused && matches!(state, State::Idle) && inflight.is_empty() {
            break Ok(());
        }
        if open && matches!(state, State::Idle) {
            state = start(ctx, queue, &ch).await?;
        }
        metrics::gauge!("messages_waiting_for_key", "queue" => queue.name.clone())
            .set(keyed.waiting() as f64);
        tokio::select! {
            _ = shutdown.cancelled() => break Ok(()),
            r = paused.changed() => if r.is_err() { break Ok(()) },
            r = db.changed() => if r.is_err() { break Ok(()) },
            Some(done) = inflight.join_next_with_id(), if !inflight.is_empty() => {
                let id = match &done { Ok((id, ())) => *id, Err(e) => e.id() };
                if let Err(e) = done {
                    tracing::error!(queue = %queue.name, error = %e, "message task failed");
                }
                if let Some(Some(key)) = keys.remove(&id)
                    && let Some(next) = keyed.finished(&key)
                {
                    spawn(&mut inflight, &mut keys, Some(key), next);
                }
            }
            d = next_delivery(&mut state) => match d {
                Some(Ok(delivery)) => {
                    let decoded = decode(queue, &delivery, ctx.freeze.now());
                    let key = match &decoded {
                        Decoded::Ok(incoming) => ctx.handler.ordering_key(incoming),
                        Decoded::Malformed(_) => None,
                    };
                    if let Some(job) = keyed.admit(key.as_deref(), Job { delivery, decoded }) {
                        spawn(&mut inflight, &mut keys, key, job);
                    }
                }
                Some(Err(e)) => break Err(BrokerError::Amqp { op: "basic.consume", source: e }),
                None => match state {
                    State::Cancelling(_) => state = State::Idle,
                    _ => break Err(BrokerError::Returned("consumer was cancelled by the broker".into())),
                },
            }
        }
    };
    // Stop new deliveries; what waits behind a key never started: give it back at once. Then
    // finish what is in flight, within the deadline.
    if let State::Consuming(tag, _) = &state {
        let _ = bounded(
            "basic.cancel",
            timeout,
            ch.basic_cancel(tag.as_str().into(), BasicCancelOptions::default()),
        )
        .await;
    }
    for job in keyed.take_waiting() {
        crate::broker::requeue(&job.delivery.acker, timeout).await;
    }
    let deadline = tokio::time::sleep(ctx.settings.drain_deadline);
    tokio::pin!(deadline);
    while !inflight.is_empty() {
        tokio::select! {
            _ = inflight.join_next() => {}
            _ = &mut deadline => {
                tracing::warn!(queue = %queue.name, left = inflight.len(), "drain deadline passed; unfinished messages will be redelivered");
                // Messages held for the database give up and go back to the queue.
                ctx.hard_stop.cancel();
                let grace = tokio::time::sleep(Duration::from_secs(2));
                tokio::pin!(grace);
                while !inflight.is_empty() {
                    tokio::select! {
                        _ = inflight.join_next() => {}
                        _ = &mut grace => { inflight.abort_all(); break }
                    }
                }
                break;
            }
        }
    }
    let _ = bounded("channel.close", timeout, ch.close(200, "consumer stopped".into())).await;
    tracing::info!(queue = %queue.name, "stopped consuming");
    result
}

async fn process<H: Handler>(ctx: &Ctx<H>, out: &PublishChannel, queue: &ConsumedQueue, job: Job) {
    let started = Instant::now();
    let Job { delivery, decoded } = job;
    let span = tracing::info_span!(
        "message",
        queue = %queue.name,
        message_id = tracing::field::Empty,
        r#type = tracing::field::Empty,
        correlation_id = tracing::field::Empty,
        outcome = tracing::field::Empty,
    );
    // Before the span is first entered: a parent set later is refused and the span would
    // start a trace of its own (tests/tests/traces.rs).
    if let Decoded::Ok(incoming) = &decoded {
        crate::trace::set_parent_from(&span, &incoming.envelope.headers);
    }
    async {
        let span = tracing::Span::current();
        let (outcome, headers) = match &decoded {
            Decoded::Ok(incoming) => {
                let env = &incoming.envelope;
                span.record("message_id", tracing::field::display(env.message_id));
                span.record("correlation_id", tracing::field::display(env.correlation()));
                if let Some(t) = &env.message_type {
                    span.record("type", t.as_str());
                }
                (run(ctx, queue, incoming, &delivery.data).await, &env.headers)
            }
            Decoded::Malformed(reason) => (
                Outcome::Park {
                    reply: (queue.kind == MessageKind::Command).then(|| {
                        Reply::rejected(ErrorBody::new(ErrorCode::MalformedMessage, reason.clone()))
                    }),
                    reason: reason.clone(),
                    code: ErrorCode::MalformedMessage,
                },
                &headers_of(&delivery.properties),
            ),
        };
        let label = match &outcome {
            Outcome::Done { duplicate: true, .. } => "duplicate",
            Outcome::Done { reply: Some(r), .. } if !r.is_ok() => "rejected",
            Outcome::Done { .. } => "ok",
            Outcome::Park { .. } => "parked",
            Outcome::Retry(_) => "retried",
            Outcome::Requeue => "requeued",
        };
        span.record("outcome", label);
        settle(ctx, out, queue, &delivery, headers, outcome).await;
        metrics::counter!("messages_consumed_total", "queue" => queue.name.clone(), "outcome" => label)
            .increment(1);
        metrics::histogram!("handler_seconds", "queue" => queue.name.clone())
            .record(started.elapsed().as_secs_f64());
        tracing::info!(elapsed_ms = started.elapsed().as_millis() as u64, "handled");
    }
    .instrument(span)
    .await
}

#[cfg(test)]
mod tests {
    use super::State;

    #[test]
    fn stopping_cancels_a_consumer_once_and_keeps_a_cancelling_one() {
        let mut state: State<u32> = State::Consuming("tag-1".into(), 7);
        assert_eq!(state.stop().as_deref(), Some("tag-1"));
        assert!(matches!(state, State::Cancelling(7)));
        // The gate is still closed at the next turn of the loop: the cancelling consumer (and
        // the deliveries in it) stays until its stream ends.
        assert_eq!(state.stop(), None);
        assert!(
            matches!(state, State::Cancelling(7)),
            "the cancelling consumer was dropped"
        );
        let mut idle: State<u32> = State::Idle;
        assert_eq!(idle.stop(), None);
        assert!(matches!(idle, State::Idle));
    }
}
