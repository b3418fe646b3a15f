//! Applies the orders on the service's clock, once per tick:
//! - re-reads the orders when they changed (any replica may have stored them);
//! - closes the event gate of a line that an order over the whole line holds, and opens it
//!   again when none does; the other line's gates are never touched;
//! - claims and publishes `freeze-started` / `freeze-ended` (once per order and line, whatever
//!   the number of replicas);
//! - keeps the gauges: mode per line and channel, backlog size, oldest held request;
//! - at thaw (the oldest held request of a line is no longer held by any order), closes both
//!   gates of the line, processes its backlog in arrival order (different ordering keys in
//!   parallel, the same key one after another), then opens the gates again. One replica
//!   drains a line at a time (an advisory lock); the others keep the line's gates closed.

use super::store::{self, Held, StoredOrder};
use super::{Freeze, FreezeSettings};
use crate::consumer::dispatch::Keyed;
use crate::consumer::run::{Mode, Outcome, conclude, run_as};
use crate::consumer::settle::{PublishChannel, reply_until_confirmed, send_reply};
use crate::consumer::{Ctx, Handler, Incoming};
use crate::envelope::Envelope;
use crate::lines::LineSwitches;
use crate::outbox::{self, Outgoing};
use crate::topology::ConsumedQueue;
use chrono::{DateTime, Utc};
use contracts::freeze::{Decision, FreezeEnded, FreezeMode, FreezeStarted, OrderState, cst};
use contracts::{Channel, ErrorBody, ErrorCode, Line, MessageKind, Reply, headers as h};
use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

const CHANNELS: [Channel; 8] = [
    Channel::Online,
    Channel::Mobile,
    Channel::Kiosk,
    Channel::Counter,
    Channel::Bank,
    Channel::Tax,
    Channel::Institution,
    Channel::DataSharing,
];

pub(crate) async fn supervise<H: Handler>(
    ctx: Arc<Ctx<H>>,
    queues: Vec<ConsumedQueue>,
    switches: LineSwitches,
    settings: FreezeSettings,
    shutdown: CancellationToken,
) {
    let freeze = ctx.freeze.clone();
    let mut lines: Vec<Line> = queues.iter().map(|q| q.line).collect();
    lines.sort();
    lines.dedup();
    let command_queue: HashMap<Line, ConsumedQueue> = queues
        .iter()
        .filter(|q| q.kind == MessageKind::Command)
        .map(|q| (q.line, q.clone()))
        .collect();
    let mut version: Option<Option<DateTime<Utc>>> = None;
    let mut last_refresh: Option<Instant> = None;
    let mut published: HashSet<(String, String, String)> = HashSet::new();
    let mut loaded_transitions = false;
    let mut drains: HashMap<Line, tokio::task::JoinHandle<()>> = HashMap::new();
    let mut resends: HashMap<Line, tokio::task::JoinHandle<()>> = HashMap::new();
    while !shutdown.is_cancelled() {
        let refresh_due = last_refresh.is_none_or(|t| t.elapsed() >= settings.refresh());
        if refresh_due {
            last_refresh = Some(Instant::now());
            match reload(&ctx, &freeze, &mut version).await {
                Ok(()) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "reading the freeze orders failed; keeping the last ones")
                }
            }
            if !loaded_transitions
                && let Ok(client) = ctx.pools.get(Line::Common).get().await
                && let Ok(t) = store::transitions(&client).await
            {
                published.extend(t);
                loaded_transitions = true;
            }
        }
        if let Err(e) = publish_transitions(&ctx, &freeze, &lines, &mut published).await {
            tracing::warn!(error = %e, "publishing freeze transitions failed; will try again");
        }
        let stats = backlog_stats(&ctx).await;
        // Lines with final replies to send again: asked on the common pool with the rest of the
        // supervisor's reads, so that a line's pool is only used when there is work.
        let unconfirmed = if refresh_due {
            unconfirmed_lines(&ctx).await
        } else {
            Vec::new()
        };
        for &line in &lines {
            let (pending, oldest) = stats.get(&line).copied().unwrap_or((0, None));
            gauges(&freeze, line, pending, oldest);
            if let Some(t) = drains.get(&line)
                && t.is_finished()
            {
                drains.remove(&line);
                freeze.set_draining(line, false);
                switches.set_frozen(line, MessageKind::Command, false);
            }
            let draining = drains.contains_key(&line);
            if !draining
                && pending > 0
                && let Some(q) = command_queue.get(&line)
                && oldest_is_released(&ctx, &freeze, line).await
            {
                // Thaw: nothing new of the line is consumed until what was held is done.
                freeze.set_draining(line, true);
                switches.set_frozen(line, MessageKind::Command, true);
                switches.set_frozen(line, MessageKind::Event, true);
                let (ctx, freeze, q, settings, stop) = (
                    ctx.clone(),
                    freeze.clone(),
                    q.clone(),
                    settings.clone(),
                    shutdown.clone(),
                );
                drains.insert(
                    line,
                    tokio::spawn(async move { drain(&ctx, &freeze, &q, &settings, &stop).await }),
                );
            }
            if !drains.contains_key(&line) {
                switches.set_frozen(line, MessageKind::Event, freeze.events_paused(line));
            }
            resends.retain(|_, t| !t.is_finished());
            if unconfirmed.contains(&line) && !drains.contains_key(&line) && !resends.contains_key(&line) {
                let (ctx, stop) = (ctx.clone(), shutdown.clone());
                resends.insert(
                    line,
                    tokio::spawn(async move { resend_unconfirmed(&ctx, line, &stop).await }),
                );
            }
        }
        if version.is_some() {
            freeze.mark_loaded();
        }
        tokio::select! {
            _ = tokio::time::sleep(settings.tick()) => {}
            _ = freeze.poked() => { last_refresh = None; }
            _ = shutdown.cancelled() => {}
        }
    }
    for (_, t) in drains.into_iter().chain(resends) {
        let _ = t.await;
    }
}

async fn reload<H: Handler>(
    ctx: &Ctx<H>,
    freeze: &Freeze,
    version: &mut Option<Option<DateTime<Utc>>>,
) -> Result<(), anyhow::Error> {
    let client = ctx.pools.get(Line::Common).get().await?;
    let v = store::version(&client).await?;
    if version.as_ref() == Some(&v) {
        return Ok(());
    }
    let n = freeze.read_orders(&client).await?;
    tracing::info!(orders = n, "freeze orders read");
    *version = Some(v);
    Ok(())
}

/// `freeze-started` once an order is in force (or has been: a service that was down for a
/// whole order still reports it), `freeze-ended` once it ended, was lifted or cancelled
/// after it started; each once per order and consumed line the order covers.
async fn publish_transitions<H: Handler>(
    ctx: &Ctx<H>,
    freeze: &Freeze,
    lines: &[Line],
    published: &mut HashSet<(String, String, String)>,
) -> Result<(), anyhow::Error> {
    let now = freeze.now();
    for stored in freeze.stored().iter() {
        for &line in lines {
            if !stored.order.covers_line(line, &ctx.service) {
                continue;
            }
            let state = stored.state(now);
            let key = |what: &str| (stored.order.id.clone(), line.as_str().to_owned(), what.to_owned());
            let started = published.contains(&key("started"));
            let begun = !matches!(state, OrderState::Scheduled | OrderState::Cancelled)
                || (state == OrderState::Cancelled && started);
            if begun && !started {
                announce(ctx, stored, line, "started", now).await?;
                published.insert(key("started"));
            }
            let over = matches!(
                state,
                OrderState::Ended | OrderState::Lifted | OrderState::Cancelled
            );
            if over && published.contains(&key("started")) && !published.contains(&key("ended")) {
                announce(ctx, stored, line, "ended", now).await?;
                published.insert(key("ended"));
            }
        }
    }
    Ok(())
}

async fn announce<H: Handler>(
    ctx: &Ctx<H>,
    stored: &StoredOrder,
    line: Line,
    what: &str,
    now: DateTime<Utc>,
) -> Result<(), anyhow::Error> {
    let mut client = ctx.pools.get(Line::Common).get().await?;
    let tx = client.transaction().await?;
    if !store::claim_transition(&tx, &stored.order.id, line, what).await? {
        tx.rollback().await?;
        return Ok(());
    }
    let o = &stored.order;
    let (name, body) = if what == "started" {
        let e = FreezeStarted {
            order: o.id.clone(),
            service: ctx.service.clone(),
            line,
            mode: o.mode,
            starts_at: o.starts_at,
            ends_at: o.ends_at,
            reason: o.reason.clone(),
            announcement: o.announcement.clone(),
        };
        ("freeze-started", serde_json::to_value(e)?)
    } else {
        let how = match stored.state(now) {
            OrderState::Cancelled => "cancelled",
            OrderState::Lifted => "lifted",
            _ => "planned",
        };
        let ended_at = stored
            .effective()
            .and_then(|e| e.ends_at)
            .unwrap_or_else(|| now.with_timezone(&cst()));
        let e = FreezeEnded {
            order: o.id.clone(),
            service: ctx.service.clone(),
            line,
            how: how.into(),
            ended_at,
        };
        ("freeze-ended", serde_json::to_value(e)?)
    };
    let mut out = Outgoing::event(&ctx.names, line, &ctx.service, name, 1, body, None);
    out.message_type = format!("freeze.{name}.v1");
    outbox::insert(&tx, std::slice::from_ref(&out)).await?;
    tx.commit().await?;
    ctx.wakes.wake_all();
    tracing::info!(order = %o.id, %line, what, "freeze {what}");
    Ok(())
}

async fn unconfirmed_lines<H: Handler>(ctx: &Ctx<H>) -> Vec<Line> {
    let Ok(client) = ctx.pools.get(Line::Common).get().await else {
        return Vec::new();
    };
    store::unconfirmed_lines(&client, REPLY_GRACE_SECS)
        .await
        .unwrap_or_else(|e| {
            tracing::warn!(error = %e, "reading the unconfirmed final replies failed");
            Vec::new()
        })
}

async fn backlog_stats<H: Handler>(ctx: &Ctx<H>) -> HashMap<Line, (i64, Option<DateTime<Utc>>)> {
    let Ok(client) = ctx.pools.get(Line::Common).get().await else {
        return HashMap::new();
    };
    match store::stats(&client).await {
        Ok(rows) => rows.into_iter().map(|(l, n, o)| (l, (n, o))).collect(),
        Err(e) => {
            tracing::warn!(error = %e, "reading the backlog size failed");
            HashMap::new()
        }
    }
}

fn gauges(freeze: &Freeze, line: Line, pending: i64, oldest: Option<DateTime<Utc>>) {
    let now = freeze.now();
    metrics::gauge!("freeze_backlog", "line" => line.as_str()).set(pending as f64);
    let age = oldest.map_or(0.0, |o| (now - o).num_milliseconds().max(0) as f64 / 1000.0);
    metrics::gauge!("freeze_backlog_oldest_seconds", "line" => line.as_str()).set(age);
    let book = freeze.book();
    for ch in CHANNELS {
        // 0 open, 1 intake-only, 2 suspended: the strictest order in force on the channel.
        let mode = book
            .iter()
            .filter(|o| {
                o.in_force(now)
                    && o.covers_line(line, freeze.service())
                    && (o.scope.channels.is_empty() || o.scope.channels.contains(&ch))
            })
            .map(|o| match o.mode {
                FreezeMode::IntakeOnly => 1.0,
                FreezeMode::Suspended => 2.0,
            })
            .fold(0.0, f64::max);
        metrics::gauge!("freeze_mode", "line" => line.as_str(), "channel" => ch.as_str()).set(mode);
    }
    metrics::gauge!("freeze_events_paused", "line" => line.as_str()).set(if freeze.events_paused(line) {
        1.0
    } else {
        0.0
    });
}

/// The envelope a held request arrived with.
fn envelope_of(held: &Held) -> Envelope {
    Envelope {
        message_id: held.message_id,
        correlation_id: held.correlation_id.clone(),
        reply_to: held.reply_to.clone(),
        message_type: Some(held.message_type.clone()),
        timestamp: None,
        app_id: held.app_id.clone(),
        channel: held.headers.get(h::CHANNEL).and_then(|c| c.parse().ok()),
        operator: held.headers.get(h::OPERATOR).cloned(),
        headers: held.headers.clone(),
    }
}

/// The request a held row was, as the consumer loop would have decoded it.
fn incoming(held: &Held) -> Option<Incoming> {
    let (line, service, name) = contracts::envelope::parse_routing_key(&held.routing_key)?;
    let body = serde_json::from_slice(&held.body).ok()?;
    Some(Incoming {
        envelope: envelope_of(held),
        line,
        kind: MessageKind::Command,
        name: name.to_owned(),
        service: service.to_owned(),
        body,
        received_at: held.received_at,
    })
}

/// Whether no order holds a request like `held` any more (the thaw has come for it).
fn released(freeze: &Freeze, held: &Held, msg: Option<&Incoming>, payer: Option<&str>) -> bool {
    if held.order_id == crate::consumer::run::THAW {
        return true;
    }
    let Some(msg) = msg else { return true };
    matches!(
        freeze.decide(held.line, msg.envelope.channel, &msg.name, payer),
        Decision::Open
    )
}

async fn oldest_is_released<H: Handler>(ctx: &Ctx<H>, freeze: &Freeze, line: Line) -> bool {
    let Ok(client) = ctx.pools.get(line).get().await else {
        return false;
    };
    let Ok(first) = store::pending(&client, line, 0, 1).await else {
        return false;
    };
    let Some(held) = first.first() else { return false };
    let msg = incoming(held);
    let payer = msg.as_ref().and_then(|m| ctx.handler.payer_kind(m));
    released(freeze, held, msg.as_ref(), payer.as_deref())
}

/// A held request with its decoded form.
type Item = (Held, Option<Incoming>);

/// Processes `line`'s backlog in arrival order until it is empty or its oldest request is
/// held again, under the line's advisory lock.
async fn drain<H: Handler>(
    ctx: &Arc<Ctx<H>>,
    freeze: &Freeze,
    queue: &ConsumedQueue,
    settings: &FreezeSettings,
    shutdown: &CancellationToken,
) {
    let line = queue.line;
    // The lock lives on a connection of its own for the whole drain.
    let Ok(lock) = ctx.pools.get(line).get().await else {
        return;
    };
    let key = format!("freeze-drain:{}:{line}", ctx.service);
    let got: bool = match lock
        .query_one("select pg_try_advisory_lock(hashtext($1))", &[&key])
        .await
    {
        Ok(r) => r.get(0),
        Err(_) => false,
    };
    if !got {
        // Another replica drains; this one keeps the line closed until it is done.
        tokio::select! {
            _ = tokio::time::sleep(settings.tick()) => {}
            _ = shutdown.cancelled() => {}
        }
        return;
    }
    let started = Instant::now();
    let out = Arc::new(Replies::new(ctx.publish_broker(line).clone()));
    let mut done = 0u64;
    tracing::info!(%line, "thaw: processing the backlog in arrival order");
    'batches: while !shutdown.is_cancelled() {
        let batch = {
            let Ok(client) = ctx.pools.get(line).get().await else {
                break;
            };
            match store::pending(&client, line, 0, settings.drain_batch.max(1)).await {
                Ok(b) => b,
                Err(e) => {
                    tracing::warn!(error = %e, "reading the backlog failed; trying again");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    continue;
                }
            }
        };
        if batch.is_empty() {
            break;
        }
        let mut keyed: Keyed<Item> = Keyed::default();
        let mut running: JoinSet<(Option<String>, bool)> = JoinSet::new();
        let mut ready: std::collections::VecDeque<(Option<String>, Item)> = Default::default();
        let mut stop_after = false;
        for held in batch {
            let msg = incoming(&held);
            let payer = msg.as_ref().and_then(|m| ctx.handler.payer_kind(m));
            if !released(freeze, &held, msg.as_ref(), payer.as_deref()) {
                // Held again by an order still in force: what came after it waits too.
                stop_after = true;
                break;
            }
            let key = msg.as_ref().and_then(|m| ctx.handler.ordering_key(m));
            if let Some(item) = keyed.admit(key.as_deref(), (held, msg)) {
                ready.push_back((key, item));
            }
        }
        loop {
            while running.len() < settings.drain_concurrency.max(1)
                && let Some((key, (held, msg))) = ready.pop_front()
            {
                let (ctx, out, q) = (ctx.clone(), out.clone(), queue.clone());
                running.spawn(async move {
                    let ok = process(&ctx, &out, &q, &held, msg.as_ref()).await;
                    (key, ok)
                });
            }
            let Some(r) = running.join_next().await else { break };
            let (key, ok) = r.unwrap_or((None, false));
            if !ok {
                // Shutdown or a hard stop: what is left stays in the backlog.
                running.abort_all();
                break 'batches;
            }
            done += 1;
            if let Some(k) = key
                && let Some(next) = keyed.finished(&k)
            {
                ready.push_front((Some(k), next));
            }
        }
        out.flush(ctx, line).await;
        if stop_after {
            break;
        }
    }
    out.flush(ctx, line).await;
    let _ = lock
        .execute("select pg_advisory_unlock(hashtext($1))", &[&key])
        .await;
    out.channel.close().await;
    let secs = started.elapsed().as_secs_f64();
    tracing::info!(%line, processed = done, seconds = secs, "thaw: backlog processed");
    metrics::counter!("freeze_backlog_processed_total", "line" => line.as_str()).increment(done);
}

/// One held request at thaw; `false` when it must be left for later (shutdown).
async fn process<H: Handler>(
    ctx: &Ctx<H>,
    out: &Replies,
    queue: &ConsumedQueue,
    held: &Held,
    msg: Option<&Incoming>,
) -> bool {
    let Some(msg) = msg else {
        // Stored from a delivery that decoded once; a row that no longer does is concluded
        // as failed rather than blocking the line.
        tracing::error!(receipt = %held.receipt_id, "a held request does not decode; concluding it as failed");
        return fail(ctx, out, held, None, "the held request could not be read again").await;
    };
    let mut retries = 0u32;
    loop {
        match run_as(ctx, queue, msg, &held.body, Mode::Thaw(held)).await {
            Outcome::Done { reply, .. } => {
                if let (Some(r), Some(to)) = (reply, held.reply_to.as_deref()) {
                    return final_reply(ctx, out, to, held, &r).await;
                }
                return true;
            }
            Outcome::Requeue => return false,
            Outcome::Retry(reason) => {
                retries += 1;
                if retries > ctx.settings.max_retries {
                    return fail(ctx, out, held, Some(msg), &format!("retries exhausted: {reason}")).await;
                }
                let wait = crate::broker::backoff(retries, Duration::from_secs(10));
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {}
                    _ = ctx.hard_stop.cancelled() => return false,
                }
            }
            Outcome::Park { reason, .. } => return fail(ctx, out, held, Some(msg), &reason).await,
        }
    }
}

/// Concludes a held request that cannot be processed with an `INTERNAL` reply, so that the
/// backlog moves on and the person is told.
async fn fail<H: Handler>(
    ctx: &Ctx<H>,
    out: &Replies,
    held: &Held,
    msg: Option<&Incoming>,
    reason: &str,
) -> bool {
    tracing::error!(receipt = %held.receipt_id, %reason, "held request failed at thaw");
    let reply = Reply::rejected(ErrorBody::new(
        ErrorCode::Internal,
        format!("the request held during the freeze could not be processed: {reason}"),
    ));
    let fallback;
    let msg = match msg {
        Some(m) => m,
        None => {
            fallback = Incoming {
                envelope: envelope_of(held),
                line: held.line,
                kind: MessageKind::Command,
                name: held.routing_key.rsplit('.').next().unwrap_or_default().to_owned(),
                service: ctx.service.clone(),
                body: serde_json::Value::Null,
                received_at: held.received_at,
            };
            &fallback
        }
    };
    loop {
        let r: Result<bool, anyhow::Error> = async {
            let mut client = ctx.pools.get(held.line).get().await?;
            let tx = client.transaction().await?;
            let first = conclude(ctx, &tx, msg, held, &reply, true).await?;
            tx.commit().await?;
            Ok(first)
        }
        .await;
        match r {
            Ok(_) => break,
            Err(e) => {
                tracing::warn!(error = %format!("{e:#}"), "could not store a failed held request; trying again");
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                    _ = ctx.hard_stop.cancelled() => return false,
                }
            }
        }
    }
    ctx.wakes.wake_all();
    if let Some(to) = held.reply_to.as_deref() {
        return final_reply(ctx, out, to, held, &reply).await;
    }
    true
}

/// A held request's final reply, published until the broker confirms it. Its command was
/// acked when it was taken in, so no redelivery would send the reply again: a publish lost
/// with a broker node (the soak saw seven, killed at a thaw) must be sent again, on a fresh
/// channel (to another node if need be). `false` at a hard stop.
async fn final_reply<H: Handler>(ctx: &Ctx<H>, out: &Replies, to: &str, held: &Held, reply: &Reply) -> bool {
    let corr = held.correlation_id.as_deref();
    if reply_until_confirmed(ctx, &out.channel, to, corr, reply, None)
        .await
        .is_err()
    {
        return false;
    }
    out.confirmed(ctx, held.line, held.seq).await;
    true
}

/// Where a drain publishes its final replies, and the held requests whose reply the broker
/// confirmed, recorded in the backlog in batches (one statement per batch, not per request).
/// A batch lost with the process is sent once more by [`resend_unconfirmed`]: a repeat the
/// requester matches by correlation id.
struct Replies {
    channel: PublishChannel,
    pending: std::sync::Mutex<Vec<i64>>,
}

/// Confirmed replies recorded at once.
const CONFIRMED_BATCH: usize = 200;

impl Replies {
    fn new(broker: crate::broker::Broker) -> Self {
        Replies {
            channel: PublishChannel::new(broker),
            pending: Default::default(),
        }
    }

    /// `seq`'s reply was confirmed; records the batch when it is full.
    async fn confirmed<H: Handler>(&self, ctx: &Ctx<H>, line: Line, seq: i64) {
        let full = {
            let mut p = self.pending.lock().expect("pending lock");
            p.push(seq);
            p.len() >= CONFIRMED_BATCH
        };
        if full {
            self.flush(ctx, line).await;
        }
    }

    /// Records the confirmed replies so far, a few times if the database does not answer.
    async fn flush<H: Handler>(&self, ctx: &Ctx<H>, line: Line) {
        let seqs = std::mem::take(&mut *self.pending.lock().expect("pending lock"));
        if seqs.is_empty() {
            return;
        }
        for attempt in 1..=3u32 {
            let r: Result<(), anyhow::Error> = async {
                let client = ctx.pools.get(line).get().await?;
                store::replies_confirmed(&client, &seqs).await?;
                Ok(())
            }
            .await;
            match r {
                Ok(()) => return,
                Err(e) if attempt == 3 => {
                    tracing::warn!(replies = seqs.len(), error = %format!("{e:#}"), "could not record confirmed final replies; they will be sent again")
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(200 * u64::from(attempt))).await,
            }
        }
    }
}

/// How long after its processing a held request's unconfirmed reply is left to the drain that
/// processed it (on this replica or another) before it is sent again.
const REPLY_GRACE_SECS: f64 = 30.0;

/// Sends again the final replies of `line`'s held requests that were processed and never
/// confirmed: the service (or its broker node) stopped between the thaw's commit and the
/// broker's confirm. Each is sent as stored, to the queue and with the correlation id it came
/// with, until none is left or one is refused (the next round tries again).
async fn resend_unconfirmed<H: Handler>(ctx: &Ctx<H>, line: Line, shutdown: &CancellationToken) {
    let rows = match ctx.pools.get(line).get().await {
        Ok(client) => match store::unconfirmed(&client, line, REPLY_GRACE_SECS, 200).await {
            Ok(rows) => rows,
            Err(e) => {
                tracing::warn!(error = %e, "reading the unconfirmed final replies failed");
                return;
            }
        },
        Err(_) => return,
    };
    if rows.is_empty() {
        return;
    }
    let out = Replies::new(ctx.publish_broker(line).clone());
    let mut sent = 0u64;
    for row in &rows {
        if shutdown.is_cancelled() {
            break;
        }
        match &row.reply {
            Some(reply) => {
                if let Err(e) = send_reply(
                    ctx,
                    &out.channel,
                    &row.reply_to,
                    row.correlation_id.as_deref(),
                    reply,
                )
                .await
                {
                    tracing::warn!(receipt = %row.receipt_id, error = %e, "sending an unconfirmed final reply again failed; the next round tries again");
                    break;
                }
                sent += 1;
            }
            None => {
                tracing::error!(receipt = %row.receipt_id, "the stored final reply of a held request does not read; it cannot be sent again");
            }
        }
        out.confirmed(ctx, line, row.seq).await;
    }
    out.flush(ctx, line).await;
    out.channel.close().await;
    if sent > 0 {
        tracing::info!(%line, sent, "final replies of held requests that were never confirmed sent again");
        metrics::counter!("freeze_replies_resent_total", "line" => line.as_str()).increment(sent);
    }
}

/// For `freeze status`: per consumed line, what holds it now.
pub(crate) async fn line_status<H: Handler>(
    ctx: &Ctx<H>,
    lines: &BTreeSet<Line>,
) -> Vec<contracts::freeze::LineStatus> {
    let stats = backlog_stats(ctx).await;
    let freeze = &ctx.freeze;
    let now = freeze.now();
    let book = freeze.book();
    lines
        .iter()
        .map(|&line| {
            let in_force: Vec<&contracts::freeze::FreezeOrder> = book
                .iter()
                .filter(|o| o.in_force(now) && o.covers_line(line, &ctx.service))
                .collect();
            let whole = in_force.iter().filter(|o| o.pauses_events(line, &ctx.service));
            let strictest = whole
                .map(|o| o.mode)
                .max_by_key(|m| matches!(m, FreezeMode::Suspended));
            let mode = if freeze.is_draining(line) {
                "draining".to_owned()
            } else if let Some(m) = strictest {
                m.as_str().to_owned()
            } else if !in_force.is_empty() {
                "partial".to_owned()
            } else {
                "open".to_owned()
            };
            let (backlog, oldest) = stats.get(&line).copied().unwrap_or((0, None));
            contracts::freeze::LineStatus {
                line,
                mode,
                events_paused: freeze.events_paused(line),
                data_sharing_held: freeze.data_sharing_held(line),
                backlog,
                oldest_held: oldest.map(|t| t.with_timezone(&cst())),
                orders_in_force: in_force.iter().map(|o| o.id.clone()).collect(),
            }
        })
        .collect()
}
