//! Queued messages to the provider, receipts back to states: queued → sending → submitted →
//! delivered / failed / expired. Claims are `for update skip locked`, so replicas share the
//! work. Throttling pauses the sends and does not count as an attempt; a temporary failure is
//! retried `max_attempts` times, later each time.
//!
//! At most once per message, as far as SMPP allows. SMPP has no idempotent submit: between
//! writing a `submit_sm` and recording its `submit_sm_resp` (a crash, a lost connection, a
//! response that never comes) the SMSC may hold the message and we not know it. So a claimed
//! message is *armed* before anything of it is written: committed with our reference for this
//! attempt (`submit_ref`, sent as `user_message_reference` with every part) and the number of
//! parts. Then:
//! - a claim never armed was never written: after `response_timeout_ms` plus 5 s it goes back
//!   to the queue (a sender died between claiming and arming);
//! - an armed message whose submit was answered is recorded as ever (`submitted`, its parts'
//!   ids); one refused (throttled, temporary, permanent) goes back or fails as ever;
//! - an armed message whose outcome is unknown stays `sending`: a receipt whose id is not
//!   known but which gives back its reference and phone shows that the SMSC took it, records
//!   the part and settles the message like any receipt, and it is never sent again whole. One
//!   that no receipt has named [`unknown_wait`] after it was armed (the SMSC's validity, by
//!   when a message it took reports its final state, plus `receipt_grace_ms`) never reached
//!   the SMSC, and is sent again. One of which some parts are known taken and not all (the
//!   sender died between parts, or the first part's answer was lost) gets only its other
//!   parts, under the same reference and so the same concatenation reference, after
//!   [`resume_wait`].
//!
//! What is left: an SMSC that took a message and never sends its receipt (it does not echo
//! the reference, or receipts are lost) lets that message be sent twice after the wait. That
//! is the side chosen when nothing can be known: a required notice sent twice, rather than
//! never.

use crate::sms::{IncomingReceipt, Outcome, Outgoing, Provider, Receipt, SmsSettings, SubmitError};
use chrono::Utc;
use deadpool_postgres::Pool;
use messaging::freeze::Freeze;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

struct Claimed {
    id: Uuid,
    phone: String,
    text: String,
    attempts: i32,
    /// Parts already taken by the SMSC (a message resumed after a submit cut short): only
    /// the parts after them are sent, under the same reference.
    resume_from: i32,
}

/// How long a message whose submit's outcome is unknown waits for a receipt that names it
/// before it is sent again: the SMSC's validity (`validity_ms`, or `receipt_timeout_ms` when
/// the SMSC's default applies) plus `receipt_grace_ms`, and never less than a live sender
/// waits for a response.
pub fn unknown_wait(sms: &SmsSettings) -> Duration {
    let validity = if sms.validity_ms > 0 {
        sms.validity_ms
    } else {
        sms.receipt_timeout_ms
    };
    Duration::from_millis((validity + sms.receipt_grace_ms).max(sms.response_timeout_ms + 5000))
}

/// How long an armed message some of whose parts are known taken (and not all) waits before
/// the rest are sent: `receipt_grace_ms`, and never less than a live sender waits for a
/// response.
pub fn resume_wait(sms: &SmsSettings) -> Duration {
    Duration::from_millis(sms.receipt_grace_ms.max(sms.response_timeout_ms + 5000))
}

/// A claimed message to arm: its id, the claim's attempt (the claim it belongs to), its parts,
/// and where to say whether it was armed (with its reference).
type ArmRequest = (Uuid, i32, i32, tokio::sync::oneshot::Sender<Option<u16>>);

/// Arms claimed messages in batches, one transaction for every message waiting: each gets a
/// reference and its part count, committed before its submit is written. A message whose
/// claim is no longer this sender's (housekeeping took it back) is not armed, and not sent.
async fn arm_batches(pool: Pool, mut requests: mpsc::UnboundedReceiver<ArmRequest>) {
    let mut batch: Vec<ArmRequest> = Vec::new();
    while requests.recv_many(&mut batch, 500).await > 0 {
        let ids: Vec<Uuid> = batch.iter().map(|r| r.0).collect();
        let attempts: Vec<i32> = batch.iter().map(|r| r.1).collect();
        let parts: Vec<i32> = batch.iter().map(|r| r.2).collect();
        let mut armed: std::collections::HashMap<Uuid, u16> = std::collections::HashMap::new();
        for attempt in 0..5u64 {
            match arm(&pool, &ids, &attempts, &parts).await {
                Ok(a) => {
                    armed = a;
                    break;
                }
                Err(e) => {
                    tracing::warn!(error = %e, count = ids.len(), "could not arm messages; trying again");
                    tokio::time::sleep(Duration::from_millis(200 * (attempt + 1))).await;
                }
            }
        }
        // Not armed (taken back, or the database would not answer): not sent; a claim never
        // armed goes back to the queue.
        for (id, _, _, reply) in batch.drain(..) {
            let _ = reply.send(armed.get(&id).copied());
        }
    }
}

async fn arm(
    pool: &Pool,
    ids: &[Uuid],
    attempts: &[i32],
    parts: &[i32],
) -> anyhow::Result<std::collections::HashMap<Uuid, u16>> {
    let db = pool.get().await?;
    let rows = db
        .query(
            "update notifications n set armed_at = now(), parts = greatest(n.parts, u.parts),
                 submit_ref = case when n.resume_from > 0 and n.submit_ref is not null then n.submit_ref
                                   else (nextval('submit_refs') % 65535)::int + 1 end
             from unnest($1::uuid[], $2::int[], $3::int[]) as u(id, attempts, parts)
             where n.notification_id = u.id and n.state = 'sending' and n.attempts = u.attempts
               and n.armed_at is null
             returning n.notification_id, n.submit_ref",
            &[&ids, &attempts, &parts],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| (r.get::<_, Uuid>(0), r.get::<_, i32>(1) as u16))
        .collect())
}

pub async fn run(
    pool: Pool,
    freeze: Freeze,
    provider: Arc<dyn Provider>,
    receipts: mpsc::UnboundedReceiver<IncomingReceipt>,
    sms: SmsSettings,
    shutdown: CancellationToken,
) {
    let receipts_task = tokio::spawn(apply_receipts(pool.clone(), receipts));
    // Submit outcomes are recorded in batches, one transaction for many messages.
    let (done_tx, done_rx) = mpsc::unbounded_channel::<(Claimed, Result<Vec<String>, SubmitError>)>();
    let settler = tokio::spawn(settle_batches(pool.clone(), sms.clone(), done_rx));
    let (arm_tx, arm_rx) = mpsc::unbounded_channel::<ArmRequest>();
    let armer = tokio::spawn(arm_batches(pool.clone(), arm_rx));
    let paused_until = Arc::new(AtomicI64::new(0));
    let mut inflight: JoinSet<()> = JoinSet::new();
    let mut pending: std::collections::VecDeque<Claimed> = std::collections::VecDeque::new();
    let window = sms.window.max(1);
    let period = (sms.submits_per_second > 0)
        .then(|| Duration::from_secs_f64(1.0 / f64::from(sms.submits_per_second)));
    let mut pace = period.map(|p| {
        let mut i = tokio::time::interval(p);
        i.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        i
    });
    let mut last_housekeeping = tokio::time::Instant::now() - Duration::from_secs(60);
    while !shutdown.is_cancelled() {
        if last_housekeeping.elapsed() > Duration::from_secs(2) {
            last_housekeeping = tokio::time::Instant::now();
            if let Err(e) = housekeeping(&pool, &sms).await {
                tracing::warn!(error = %e, "sender housekeeping failed");
            }
        }
        let pause = paused_until.load(Ordering::Relaxed) - Utc::now().timestamp_millis();
        if pause > 0 {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = tokio::time::sleep(Duration::from_millis(pause as u64)) => {}
            }
        }
        // Claimed a window ahead, so that a full window does not mean one claim per message
        // (claims never armed are harmless: nothing of them is written).
        if pending.len() < window.div_ceil(2) {
            let room = window.saturating_sub(pending.len()).max(1) as i64;
            match claim(&pool, &freeze, room.min(sms.batch.max(1))).await {
                Ok(c) => pending.extend(c),
                Err(e) => tracing::warn!(error = %e, "could not claim messages"),
            }
        }
        if pending.is_empty() {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = tokio::time::sleep(Duration::from_millis(sms.poll_ms.max(10))) => {}
                Some(_) = inflight.join_next(), if !inflight.is_empty() => {}
            }
            continue;
        }
        while let Some(c) = pending.pop_front() {
            if let Some(p) = pace.as_mut() {
                p.tick().await;
            }
            while inflight.len() >= window {
                inflight.join_next().await;
            }
            let (provider, sms, paused, done, armer) = (
                provider.clone(),
                sms.clone(),
                paused_until.clone(),
                done_tx.clone(),
                arm_tx.clone(),
            );
            inflight.spawn(async move {
                // Armed (committed) before anything is written.
                let parts = i32::try_from(provider.parts(&c.phone, &c.text)).unwrap_or(i32::MAX);
                let (tx, rx) = tokio::sync::oneshot::channel();
                if armer.send((c.id, c.attempts, parts, tx)).is_err() {
                    return;
                }
                let Ok(Some(reference)) = rx.await else {
                    return;
                };
                let message = Outgoing {
                    to: &c.phone,
                    text: &c.text,
                    reference: Some(reference),
                    skip: usize::try_from(c.resume_from).unwrap_or(0),
                };
                let result = provider.send(&message).await;
                if let Err(SubmitError::Throttled(_)) = &result {
                    let until = Utc::now().timestamp_millis() + sms.throttle_backoff_ms as i64;
                    paused.fetch_max(until, Ordering::Relaxed);
                }
                let _ = done.send((c, result));
            });
            if pending.len() < window.div_ceil(2) || shutdown.is_cancelled() {
                break;
            }
        }
    }
    // Claimed and not sent: back to the queue at once (never armed, nothing written).
    if !pending.is_empty() {
        let ids: Vec<Uuid> = pending.iter().map(|c| c.id).collect();
        if let Err(e) = release(&pool, &ids).await {
            tracing::warn!(error = %e, count = ids.len(), "could not give claims back; they return to the queue after the claim timeout");
        }
    }
    // Let the submits in flight finish (their responses are recorded), briefly.
    let _ = tokio::time::timeout(Duration::from_secs(5), async {
        while inflight.join_next().await.is_some() {}
    })
    .await;
    drop(done_tx);
    drop(arm_tx);
    let _ = tokio::time::timeout(Duration::from_secs(5), settler).await;
    let _ = tokio::time::timeout(Duration::from_secs(1), armer).await;
    if tokio::time::timeout(Duration::from_secs(10), receipts_task)
        .await
        .is_err()
    {
        tracing::warn!("receipts still unrecorded at shutdown");
    }
}

/// Records submit outcomes as they come, up to 500 per transaction; a batch that cannot be
/// written is retried, and what is never written goes back to the queue when its claim
/// times out.
async fn settle_batches(
    pool: Pool,
    sms: SmsSettings,
    mut done: mpsc::UnboundedReceiver<(Claimed, Result<Vec<String>, SubmitError>)>,
) {
    let mut batch = Vec::new();
    while done.recv_many(&mut batch, 500).await > 0 {
        for attempt in 0..5u64 {
            match settle(&pool, &sms, &batch).await {
                Ok(()) => break,
                Err(e) => {
                    tracing::warn!(error = %e, count = batch.len(), "could not record submits; trying again");
                    tokio::time::sleep(Duration::from_millis(200 * (attempt + 1))).await;
                }
            }
        }
        batch.clear();
    }
}

/// Claims given back unsent: queued again, the claim not counted as an attempt.
async fn release(pool: &Pool, ids: &[Uuid]) -> anyhow::Result<()> {
    pool.get()
        .await?
        .execute(
            "update notifications set state = 'queued', claimed_at = null, attempts = greatest(attempts - 1, 0)
             where notification_id = any($1) and state = 'sending' and armed_at is null",
            &[&ids],
        )
        .await?;
    Ok(())
}

/// A batch of due messages, claimed.
async fn claim(pool: &Pool, freeze: &Freeze, limit: i64) -> anyhow::Result<Vec<Claimed>> {
    let db = pool.get().await?;
    let now = freeze.now();
    // A reminder the person opted out of after it was queued is dropped as it is claimed.
    let rows = db
        .query(
            "with picked as (
                 select notification_id from notifications
                 where state = 'queued' and not_before <= $1
                 order by not_before, notification_id
                 limit $2 for update skip locked),
             claimed as (
                 update notifications n set
                     state = case when n.category = 'reminder' and exists (
                                 select 1 from opt_outs o
                                 where 'person:' || o.id_number = n.recipient and o.category = 'reminder')
                             then 'opted-out' else 'sending' end,
                     claimed_at = now(), armed_at = null, attempts = n.attempts + 1
                 from picked where n.notification_id = picked.notification_id
                 returning n.notification_id, n.phone, n.text, n.attempts, n.state, n.resume_from)
             select notification_id, phone, text, attempts, resume_from from claimed where state = 'sending'",
            &[&now, &limit],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| Claimed {
            id: r.get(0),
            phone: r.get(1),
            text: r.get(2),
            attempts: r.get(3),
            resume_from: r.get(4),
        })
        .collect())
}

async fn settle(
    pool: &Pool,
    sms: &SmsSettings,
    batch: &[(Claimed, Result<Vec<String>, SubmitError>)],
) -> anyhow::Result<()> {
    let mut db = pool.get().await?;
    let tx = db.transaction().await?;
    let (mut part_ids, mut part_of, mut sent, mut sent_parts) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for (c, result) in batch {
        match result {
            Ok(ids) => {
                for id in ids {
                    part_ids.push(id.clone());
                    part_of.push(c.id);
                }
                sent.push(c.id);
                sent_parts.push(ids.len() as i32);
            }
            Err(SubmitError::Throttled(why)) => {
                let later = Utc::now() + chrono::Duration::milliseconds(sms.throttle_backoff_ms as i64);
                tx.execute(
                    "update notifications set state = 'queued', armed_at = null,
                         submit_ref = case when resume_from > 0 then submit_ref end, attempts = attempts - 1,
                         not_before = greatest(not_before, $2), reason = $3
                     where notification_id = $1 and state = 'sending'",
                    &[&c.id, &later, &format!("throttled: {why}")],
                )
                .await?;
                metrics::counter!("notification_sms_throttled_total").increment(1);
            }
            Err(SubmitError::Temporary(why)) if c.attempts < sms.max_attempts => {
                let later =
                    Utc::now() + chrono::Duration::milliseconds(sms.retry_ms as i64 * i64::from(c.attempts));
                tx.execute(
                    "update notifications set state = 'queued', armed_at = null,
                         submit_ref = case when resume_from > 0 then submit_ref end,
                         not_before = greatest(not_before, $2), reason = $3
                     where notification_id = $1 and state = 'sending'",
                    &[&c.id, &later, why],
                )
                .await?;
                metrics::counter!("notification_sms_retries_total").increment(1);
            }
            Err(e @ SubmitError::Unknown(_)) => {
                // In flight, outcome unknown: its receipts will tell (module doc).
                tx.execute(
                    "update notifications set reason = $2 where notification_id = $1 and state = 'sending'",
                    &[&c.id, &e.to_string()],
                )
                .await?;
                metrics::counter!("notification_sms_unknown_total").increment(1);
                tracing::warn!(notification = %c.id, error = %e, "submit outcome unknown; waiting for its receipt");
            }
            Err(SubmitError::Partial { accepted, total, why }) => {
                // The parts taken are recorded (their receipts settle them). The rest unknown:
                // in flight, as above; refused: failed, not sent again whole.
                tx.execute(
                    "insert into sms_parts (smsc_id, notification_id)
                     select unnest($1::text[]), $2
                     on conflict (smsc_id) do update set notification_id = excluded.notification_id,
                         state = case when sms_parts.notification_id = excluded.notification_id
                                      then sms_parts.state else 'submitted' end",
                    &[&accepted, &c.id],
                )
                .await?;
                let taken = c.resume_from + accepted.len() as i32;
                let reason = format!("{taken} of {total} parts taken, then {why}");
                match **why {
                    SubmitError::Unknown(_) => {
                        // Whether the next part was taken, its receipt will tell; the rest
                        // go after `resume_wait` (housekeeping).
                        tx.execute(
                            "update notifications set reason = $2 where notification_id = $1 and state = 'sending'",
                            &[&c.id, &reason],
                        )
                        .await?;
                        metrics::counter!("notification_sms_unknown_total").increment(1);
                    }
                    SubmitError::Throttled(_) | SubmitError::Temporary(_)
                        if c.attempts < sms.max_attempts =>
                    {
                        // The next part was not taken: the rest go later, under the same
                        // reference.
                        let later = Utc::now() + chrono::Duration::milliseconds(sms.retry_ms as i64);
                        tx.execute(
                            "update notifications set state = 'queued', armed_at = null, resume_from = $2,
                                 not_before = greatest(not_before, $3), reason = $4
                             where notification_id = $1 and state = 'sending'",
                            &[&c.id, &taken, &later, &reason],
                        )
                        .await?;
                        metrics::counter!("notification_sms_retries_total").increment(1);
                    }
                    _ => {
                        tx.execute(
                            "update notifications set state = 'failed', reason = $2
                         where notification_id = $1 and state = 'sending'",
                            &[
                                &c.id,
                                &format!("{reason}: not sent again (the phone has the first parts)"),
                            ],
                        )
                        .await?;
                        metrics::counter!("notification_sms_failed_total", "why" => "partial").increment(1);
                    }
                }
                tracing::warn!(notification = %c.id, %reason, "a concatenated message only partly taken");
            }
            Err(e) => {
                tx.execute(
                    "update notifications set state = 'failed', reason = $2 where notification_id = $1 and state = 'sending'",
                    &[&c.id, &e.to_string()],
                )
                .await?;
                metrics::counter!("notification_sms_failed_total", "why" => "submit").increment(1);
                tracing::warn!(notification = %c.id, error = %e, "message failed");
            }
        }
    }
    if !sent.is_empty() {
        // A part its receipt recorded first (it overtook this batch) keeps the receipt's state.
        tx.execute(
            "insert into sms_parts (smsc_id, notification_id)
             select * from unnest($1::text[], $2::uuid[])
             on conflict (smsc_id) do update set notification_id = excluded.notification_id,
                 state = case when sms_parts.notification_id = excluded.notification_id
                              then sms_parts.state else 'submitted' end",
            &[&part_ids, &part_of],
        )
        .await?;
        tx.execute(
            "update notifications n set state = 'submitted', parts = greatest(n.parts, n.resume_from + s.parts),
                 resume_from = 0, submitted_at = now(), reason = null
             from unnest($1::uuid[], $2::int[]) as s(id, parts)
             where n.notification_id = s.id and n.state = 'sending'",
            &[&sent, &sent_parts],
        )
        .await?;
        metrics::counter!("notification_sms_submitted_total").increment(sent.len() as u64);
        metrics::counter!("notification_sms_parts_total").increment(part_ids.len() as u64);
    }
    tx.commit().await?;
    Ok(())
}

/// Claims never armed go back to the queue (nothing of them was written); armed messages
/// whose outcome no receipt has told within [`unknown_wait`] are sent again (none of their
/// parts was taken) or failed (some were); submitted messages without a receipt for too long
/// are expired; the queue depth is measured.
async fn housekeeping(pool: &Pool, sms: &SmsSettings) -> anyhow::Result<()> {
    let db = pool.get().await?;
    let stale = (sms.response_timeout_ms + 5000) as f64 / 1000.0;
    let back = db
        .execute(
            "update notifications set state = 'queued', claimed_at = null
             where state = 'sending' and armed_at is null and claimed_at < now() - make_interval(secs => $1)",
            &[&stale],
        )
        .await?;
    if back > 0 {
        tracing::info!(count = back, "claims never armed back in the queue");
    }
    // Some parts taken, not all (the submit was cut short after them): the rest are sent,
    // under the same reference, once the taken parts' receipts have had time to come.
    let resume = resume_wait(sms).as_secs_f64();
    let resumed = db
        .execute(
            "update notifications n set
                 state = case when n.attempts >= $2 then 'failed' else 'queued' end,
                 resume_from = k.known, armed_at = null, claimed_at = null,
                 reason = k.known || ' of ' || n.parts || ' parts taken (' || coalesce(n.reason, 'the sender stopped')
                          || '); the rest to be sent'
             from (select notification_id, count(*)::int as known from sms_parts group by notification_id) k
             where k.notification_id = n.notification_id and n.state = 'sending'
               and n.armed_at < now() - make_interval(secs => $1) and k.known < n.parts",
            &[&resume, &sms.max_attempts],
        )
        .await?;
    if resumed > 0 {
        tracing::warn!(
            count = resumed,
            "messages only partly taken: their other parts to be sent"
        );
    }
    // Nothing taken that any receipt has named by the wait: never reached the SMSC.
    let wait = unknown_wait(sms).as_secs_f64();
    let unknown = db
        .execute(
            "update notifications n set
                 state = case when n.attempts >= $2 then 'failed' else 'queued' end,
                 reason = 'no answer and no receipt within ' || $1::text || ' s: never reached the SMSC ('
                          || coalesce(n.reason, 'the sender stopped') || ')',
                 armed_at = null, claimed_at = null
             where n.state = 'sending' and n.armed_at < now() - make_interval(secs => $1)
               and not exists (select 1 from sms_parts p where p.notification_id = n.notification_id)",
            &[&wait, &sms.max_attempts],
        )
        .await?;
    if unknown > 0 {
        metrics::counter!("notification_sms_resent_unknown_total").increment(unknown);
        tracing::warn!(
            count = unknown,
            "submits whose outcome no receipt told: sent again"
        );
    }
    let expire = sms.receipt_timeout_ms as f64 / 1000.0;
    let expired = db
        .execute(
            "update notifications set state = 'expired', reason = 'no delivery receipt'
             where state = 'submitted' and submitted_at < now() - make_interval(secs => $1)",
            &[&expire],
        )
        .await?;
    metrics::counter!("notification_sms_expired_total").increment(expired);
    let depth: i64 = db
        .query_one("select count(*) from notifications where state = 'queued'", &[])
        .await?
        .get(0);
    metrics::gauge!("notification_queue_depth").set(depth as f64);
    Ok(())
}

/// The most receipts applied in one transaction.
const RECEIPT_BATCH: usize = 500;

/// The most distinct receipts held unanswered while they cannot be recorded (the database is
/// down). Past it the newest are left unanswered, and the SMSC sends them again later.
const WAITING_MAX: usize = 20_000;

/// Receipts waiting to be recorded, bounded: an unanswered receipt is sent again by the SMSC
/// (`--receipt-resend-ms` in smsc-sim), so during an outage the same receipt keeps arriving.
/// Only its newest copy is kept (the one the SMSC still waits an answer for; the older
/// copies' acks are dropped unsent, which answers nothing), with the most tries of any copy,
/// and at most `max` distinct receipts are kept.
fn keep_newest(todo: &mut Vec<(IncomingReceipt, u32)>, max: usize) {
    let mut tries: std::collections::HashMap<String, u32> = std::collections::HashMap::new();
    for (r, t) in todo.iter() {
        let e = tries.entry(r.receipt.id.clone()).or_default();
        *e = (*e).max(*t);
    }
    let mut kept = Vec::with_capacity(tries.len().min(max));
    for (r, _) in std::mem::take(todo).into_iter().rev() {
        if let Some(t) = tries.remove(&r.receipt.id) {
            kept.push((r, t));
        }
    }
    kept.reverse();
    if kept.len() > max {
        tracing::warn!(
            kept = max,
            left_unanswered = kept.len() - max,
            "too many receipts waiting to be recorded; the newest are left for the SMSC to send again"
        );
        kept.truncate(max);
    }
    *todo = kept;
}

/// Each receipt settles its part; a message is delivered when all its parts are, failed or
/// expired when one of them is. Receipts are applied up to 500 per transaction, and each is
/// acknowledged to the provider (`deliver_sm_resp`) only after the transaction that recorded
/// it committed: a receipt lost between the two (a crash, a lost connection) is one the SMSC
/// still holds and sends again. Applying a receipt twice changes nothing (the part's state is
/// set to the same value, and a message already settled is not touched again).
///
/// A receipt can overtake the recording of its submit: it is kept, unanswered, and tried
/// again for about 10 s; if its submit is recorded meanwhile it is acknowledged after the
/// batch that applied it. A part still unknown after that was never recorded and never will
/// be (its message failed as a whole, or its submit could not be recorded and the message
/// goes back to the queue to be sent with new ids): that receipt is acknowledged all the
/// same, as answering it is the only way to stop the SMSC sending it forever.
async fn apply_receipts(pool: Pool, mut receipts: mpsc::UnboundedReceiver<IncomingReceipt>) {
    let mut waiting: Vec<(IncomingReceipt, u32)> = Vec::new();
    let mut fresh = Vec::new();
    loop {
        // Not stopped by the shutdown token: the channel closes when the SMPP session has
        // ended, and what was handed on is recorded first (its acks are no longer sent: the
        // session is over, and the SMSC will send those receipts again after a rebind).
        let got = tokio::select! {
            n = receipts.recv_many(&mut fresh, RECEIPT_BATCH) => n,
            _ = tokio::time::sleep(Duration::from_millis(200)), if !waiting.is_empty() => 0,
        };
        if got == 0 && fresh.is_empty() && waiting.is_empty() {
            break;
        }
        if got == 0 && receipts.is_closed() {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let mut todo: Vec<(IncomingReceipt, u32)> = std::mem::take(&mut waiting);
        todo.extend(fresh.drain(..).map(|r| (r, 0)));
        keep_newest(&mut todo, WAITING_MAX);
        while !todo.is_empty() {
            let batch: Vec<(IncomingReceipt, u32)> = todo.drain(..todo.len().min(RECEIPT_BATCH)).collect();
            let unknown = match apply_batch(&pool, batch.iter().map(|(r, _)| &r.receipt)).await {
                Ok(unknown) => unknown,
                Err(e) => {
                    tracing::warn!(error = %e, count = batch.len() + todo.len(), "could not record receipts; trying again");
                    waiting = batch;
                    waiting.append(&mut todo);
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    break;
                }
            };
            // Committed: the recorded receipts are answered now.
            for (r, tries) in batch {
                if !unknown.contains(&r.receipt.id) {
                    r.ack.send();
                    continue;
                }
                // A part whose submit failed as a whole (another part of the message was
                // refused) is never recorded: its receipt is given up after ~10 s, or ~1 s
                // once the session is over.
                let step = if receipts.is_closed() { 5 } else { 1 };
                if tries < 50 {
                    waiting.push((r, tries + step));
                } else {
                    tracing::warn!(id = %r.receipt.id, "a receipt for a part that was never recorded; answered and dropped");
                    r.ack.send();
                }
            }
        }
    }
}

/// Applies a batch of receipts in one transaction, committed when this returns `Ok`; the ids
/// of those whose part is not (yet) recorded.
async fn apply_batch<'a>(
    pool: &Pool,
    batch: impl Iterator<Item = &'a Receipt>,
) -> anyhow::Result<std::collections::HashSet<String>> {
    let mut db = pool.get().await?;
    let tx = db.transaction().await?;
    let (mut ids, mut states, mut details) = (Vec::new(), Vec::new(), Vec::new());
    let (mut refs, mut phones) = (Vec::new(), Vec::new());
    for r in batch {
        ids.push(r.id.clone());
        states.push(match r.outcome {
            Outcome::Delivered => "delivered",
            Outcome::Failed => "failed",
            Outcome::Expired => "expired",
        });
        details.push(r.detail.clone());
        refs.push(r.reference.map(i32::from));
        phones.push(r.phone.clone());
    }
    let mut rows = tx
        .query(
            "update sms_parts p set state = r.state
             from unnest($1::text[], $2::text[], $3::text[]) as r(id, state, detail)
             where p.smsc_id = r.id
             returning p.smsc_id, p.notification_id, r.detail",
            &[&ids, &states, &details],
        )
        .await?;
    let mut found: std::collections::HashSet<String> = rows.iter().map(|r| r.get::<_, String>(0)).collect();
    // A part not recorded whose receipt gives back a message's reference and phone: the SMSC
    // took that message though its answer was never recorded (a crash, a lost connection).
    // The part is recorded now, the message is submitted, and it is not sent again.
    let unknown: Vec<usize> = (0..ids.len())
        .filter(|&i| !found.contains(&ids[i]) && refs[i].is_some() && phones[i].is_some())
        .collect();
    if !unknown.is_empty() {
        let pick = |v: &[String]| unknown.iter().map(|&i| v[i].clone()).collect::<Vec<String>>();
        let (u_ids, u_details) = (pick(&ids), pick(&details));
        let u_states: Vec<&str> = unknown.iter().map(|&i| states[i]).collect();
        let u_refs: Vec<i32> = unknown.iter().map(|&i| refs[i].unwrap_or_default()).collect();
        let u_phones: Vec<String> = unknown
            .iter()
            .map(|&i| phones[i].clone().unwrap_or_default())
            .collect();
        let reconciled = tx
            .query(
                "with r(id, state, detail, ref, phone) as (
                     select * from unnest($1::text[], $2::text[], $3::text[], $4::int[], $5::text[])),
                 m as (
                     select distinct on (r.id) r.id, n.notification_id, r.state, r.detail
                     from r join notifications n
                       on n.submit_ref = r.ref and n.state in ('sending', 'queued')
                      and (n.phone = r.phone or r.phone = '86' || n.phone or r.phone = '+86' || n.phone)
                     order by r.id, n.armed_at desc nulls last),
                 ins as (
                     insert into sms_parts (smsc_id, notification_id, state)
                     select id, notification_id, state from m
                     on conflict (smsc_id) do nothing
                     returning smsc_id, notification_id),
                 known as (
                     select i.notification_id,
                            count(*) + (select count(*) from sms_parts p where p.notification_id = i.notification_id) as parts
                     from ins i group by i.notification_id),
                 moved as (
                     update notifications n set
                         state = case when k.parts >= n.parts then 'submitted' else n.state end,
                         resume_from = case when k.parts >= n.parts then 0
                                            when n.state = 'queued' then k.parts::int else n.resume_from end,
                         submitted_at = case when k.parts >= n.parts then coalesce(n.submitted_at, now())
                                             else n.submitted_at end,
                         reason = 'taken by the SMSC, known from its receipt (the submit''s answer was never recorded)'
                     from known k
                     where n.notification_id = k.notification_id and n.state in ('sending', 'queued')
                     returning n.notification_id)
                 select ins.smsc_id, ins.notification_id, m.detail, (select count(*) from moved)
                 from ins join m on m.id = ins.smsc_id",
                &[&u_ids, &u_states, &u_details, &u_refs, &u_phones],
            )
            .await?;
        if !reconciled.is_empty() {
            tracing::info!(
                parts = reconciled.len(),
                "receipts named messages by reference whose submit answers were never recorded"
            );
            metrics::counter!("notification_sms_reconciled_total").increment(reconciled.len() as u64);
        }
        found.extend(reconciled.iter().map(|r| r.get::<_, String>(0)));
        rows.extend(reconciled);
    }
    let mut touched: Vec<Uuid> = Vec::new();
    let mut why: Vec<String> = Vec::new();
    for r in &rows {
        let id: Uuid = r.get(1);
        if !touched.contains(&id) {
            touched.push(id);
            why.push(r.get(2));
        }
    }
    // Each touched message judged from all its parts.
    let settled = tx
        .query(
            "with t(id, why) as (select * from unnest($1::uuid[], $2::text[])),
             agg as (
                 select p.notification_id,
                        count(*) filter (where p.state = 'delivered') as delivered,
                        count(*) filter (where p.state = 'failed') as failed,
                        count(*) filter (where p.state = 'expired') as expired,
                        count(*) as total
                 from sms_parts p join t on t.id = p.notification_id group by p.notification_id)
             update notifications n set
                 state = case when agg.failed > 0 then 'failed' when agg.expired > 0 then 'expired' else 'delivered' end,
                 delivered_at = case when agg.failed = 0 and agg.expired = 0 then now() end,
                 reason = case when agg.failed = 0 and agg.expired = 0 then null else t.why end
             from agg join t on t.id = agg.notification_id
             where n.notification_id = agg.notification_id and n.state in ('submitted', 'sending')
               and (agg.failed > 0 or agg.expired > 0 or (n.parts > 0 and agg.delivered = agg.total and agg.total >= n.parts))
             returning n.state",
            &[&touched, &why],
        )
        .await?;
    tx.commit().await?;
    for r in &settled {
        match r.get::<_, &str>(0) {
            "delivered" => metrics::counter!("notification_sms_delivered_total").increment(1),
            other => {
                metrics::counter!("notification_sms_failed_total", "why" => other.to_owned()).increment(1)
            }
        }
    }
    Ok(ids.into_iter().filter(|id| !found.contains(id)).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sms::Ack;
    use std::sync::Mutex;

    fn receipt(
        id: &str,
        copy: u32,
        acked: &Arc<Mutex<Vec<(String, u32)>>>,
        tries: u32,
    ) -> (IncomingReceipt, u32) {
        let (acked, who) = (acked.clone(), id.to_owned());
        (
            IncomingReceipt {
                receipt: Receipt {
                    id: id.to_owned(),
                    outcome: Outcome::Delivered,
                    detail: "stat:DELIVRD".into(),
                    reference: None,
                    phone: None,
                },
                ack: Ack::new(move || acked.lock().unwrap().push((who, copy))),
            },
            tries,
        )
    }

    #[test]
    fn resent_receipts_are_held_once_each_and_the_wait_is_bounded() {
        let acked = Arc::new(Mutex::new(Vec::new()));
        // During an outage: receipt a arrives three times (the SMSC resends it), b twice.
        let mut todo = vec![
            receipt("a", 1, &acked, 7),
            receipt("b", 1, &acked, 0),
            receipt("a", 2, &acked, 0),
            receipt("c", 1, &acked, 0),
            receipt("a", 3, &acked, 0),
            receipt("b", 2, &acked, 3),
        ];
        keep_newest(&mut todo, 10);
        let held: Vec<(String, u32)> = todo.iter().map(|(r, t)| (r.receipt.id.clone(), *t)).collect();
        assert_eq!(
            held,
            [("c".into(), 0), ("a".into(), 7), ("b".into(), 3)],
            "one copy each, with the most tries of any copy"
        );
        for (r, _) in todo {
            r.ack.send();
        }
        // The copies answered are the newest (the ones the SMSC still waits for).
        assert_eq!(
            *acked.lock().unwrap(),
            [("c".to_owned(), 1), ("a".to_owned(), 3), ("b".to_owned(), 2)]
        );
        // Past the bound, the newest distinct receipts are left for the SMSC to send again.
        let mut todo: Vec<_> = (0..5).map(|i| receipt(&format!("r{i}"), 1, &acked, 0)).collect();
        keep_newest(&mut todo, 3);
        let ids: Vec<String> = todo.iter().map(|(r, _)| r.receipt.id.clone()).collect();
        assert_eq!(ids, ["r0", "r1", "r2"]);
    }
}
