//! Queued messages to the provider, receipts back to states: queued → sending → submitted →
//! delivered / failed / expired. Claims are `for update skip locked`, so replicas share the
//! work; a claim that was never answered (a crash, a lost connection) goes back to the queue
//! after `response_timeout_ms` plus 5 s. Throttling pauses the sends and does not count as an
//! attempt; a temporary failure is retried `max_attempts` times, later each time.

use crate::sms::{Outcome, Provider, Receipt, SmsSettings, SubmitError};
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
}

pub async fn run(
    pool: Pool,
    freeze: Freeze,
    provider: Arc<dyn Provider>,
    receipts: mpsc::UnboundedReceiver<Receipt>,
    sms: SmsSettings,
    shutdown: CancellationToken,
) {
    let receipts_task = tokio::spawn(apply_receipts(pool.clone(), receipts, shutdown.clone()));
    let paused_until = Arc::new(AtomicI64::new(0));
    let mut inflight: JoinSet<()> = JoinSet::new();
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
        let room = window.saturating_sub(inflight.len()).max(1) as i64;
        let claimed = match claim(&pool, &freeze, room.min(sms.batch.max(1))).await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %e, "could not claim messages");
                Vec::new()
            }
        };
        if claimed.is_empty() {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = tokio::time::sleep(Duration::from_millis(sms.poll_ms.max(10))) => {}
                Some(_) = inflight.join_next(), if !inflight.is_empty() => {}
            }
            continue;
        }
        for c in claimed {
            if let Some(p) = pace.as_mut() {
                p.tick().await;
            }
            while inflight.len() >= window {
                inflight.join_next().await;
            }
            let (pool, provider, sms, paused) =
                (pool.clone(), provider.clone(), sms.clone(), paused_until.clone());
            inflight.spawn(async move {
                let result = provider.submit(&c.phone, &c.text).await;
                if let Err(SubmitError::Throttled(_)) = &result {
                    let until = Utc::now().timestamp_millis() + sms.throttle_backoff_ms as i64;
                    paused.fetch_max(until, Ordering::Relaxed);
                }
                if let Err(e) = settle(&pool, &sms, &c, result).await {
                    tracing::warn!(error = %e, notification = %c.id, "could not record a submit; it is retried after the claim times out");
                }
            });
        }
    }
    // Let the submits in flight finish (their responses are recorded), briefly.
    let _ = tokio::time::timeout(Duration::from_secs(5), async {
        while inflight.join_next().await.is_some() {}
    })
    .await;
    receipts_task.abort();
}

/// Opted-out reminders are dropped, then a batch of due messages is claimed.
async fn claim(pool: &Pool, freeze: &Freeze, limit: i64) -> anyhow::Result<Vec<Claimed>> {
    let db = pool.get().await?;
    let now = freeze.now();
    db.execute(
        "update notifications n set state = 'opted-out'
         where state = 'queued' and category = 'reminder' and not_before <= $1
           and exists (select 1 from opt_outs o where 'person:' || o.id_number = n.recipient and o.category = 'reminder')",
        &[&now],
    )
    .await?;
    let rows = db
        .query(
            "update notifications set state = 'sending', claimed_at = now(), attempts = attempts + 1
             where notification_id in (
                 select notification_id from notifications
                 where state = 'queued' and not_before <= $1
                 order by not_before, notification_id
                 limit $2 for update skip locked)
             returning notification_id, phone, text, attempts",
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
        })
        .collect())
}

async fn settle(
    pool: &Pool,
    sms: &SmsSettings,
    c: &Claimed,
    result: Result<Vec<String>, SubmitError>,
) -> anyhow::Result<()> {
    let mut db = pool.get().await?;
    let tx = db.transaction().await?;
    match result {
        Ok(ids) => {
            for id in &ids {
                tx.execute(
                    "insert into sms_parts (smsc_id, notification_id) values ($1, $2)
                     on conflict (smsc_id) do update set notification_id = excluded.notification_id, state = 'submitted'",
                    &[id, &c.id],
                )
                .await?;
            }
            tx.execute(
                "update notifications set state = 'submitted', parts = $2, submitted_at = now(), reason = null
                 where notification_id = $1 and state = 'sending'",
                &[&c.id, &(ids.len() as i32)],
            )
            .await?;
            metrics::counter!("notification_sms_submitted_total").increment(1);
            metrics::counter!("notification_sms_parts_total").increment(ids.len() as u64);
        }
        Err(SubmitError::Throttled(why)) => {
            let later = Utc::now() + chrono::Duration::milliseconds(sms.throttle_backoff_ms as i64);
            tx.execute(
                "update notifications set state = 'queued', attempts = attempts - 1, not_before = greatest(not_before, $2), reason = $3
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
                "update notifications set state = 'queued', not_before = greatest(not_before, $2), reason = $3
                 where notification_id = $1 and state = 'sending'",
                &[&c.id, &later, &why],
            )
            .await?;
            metrics::counter!("notification_sms_retries_total").increment(1);
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
    tx.commit().await?;
    Ok(())
}

/// Claims nobody answered go back to the queue; submitted messages without a receipt for
/// too long are expired; the queue depth is measured.
async fn housekeeping(pool: &Pool, sms: &SmsSettings) -> anyhow::Result<()> {
    let db = pool.get().await?;
    let stale = (sms.response_timeout_ms + 5000) as f64 / 1000.0;
    let back = db
        .execute(
            "update notifications set state = 'queued', claimed_at = null
             where state = 'sending' and claimed_at < now() - make_interval(secs => $1)",
            &[&stale],
        )
        .await?;
    if back > 0 {
        tracing::info!(count = back, "unanswered claims back in the queue");
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

/// Each receipt settles its part; the message is delivered when all its parts are, failed or
/// expired when one of them is. A receipt can overtake the recording of its submit: it is
/// tried again for a few seconds.
async fn apply_receipts(
    pool: Pool,
    mut receipts: mpsc::UnboundedReceiver<Receipt>,
    shutdown: CancellationToken,
) {
    loop {
        let r = tokio::select! {
            _ = shutdown.cancelled() => break,
            r = receipts.recv() => match r { Some(r) => r, None => break },
        };
        let pool = pool.clone();
        tokio::spawn(async move {
            for attempt in 0..50 {
                match apply_receipt(&pool, &r).await {
                    Ok(true) => return,
                    Ok(false) => tokio::time::sleep(Duration::from_millis(100 + 20 * attempt)).await,
                    Err(e) => {
                        tracing::warn!(error = %e, id = %r.id, "could not record a receipt");
                        tokio::time::sleep(Duration::from_millis(500)).await;
                    }
                }
            }
            tracing::warn!(id = %r.id, "a receipt for a part that was never recorded");
        });
    }
}

async fn apply_receipt(pool: &Pool, r: &Receipt) -> anyhow::Result<bool> {
    let mut db = pool.get().await?;
    let tx = db.transaction().await?;
    let state = match r.outcome {
        Outcome::Delivered => "delivered",
        Outcome::Failed => "failed",
        Outcome::Expired => "expired",
    };
    let Some(row) = tx
        .query_opt(
            "update sms_parts set state = $2 where smsc_id = $1 returning notification_id",
            &[&r.id, &state],
        )
        .await?
    else {
        return Ok(false);
    };
    let id: Uuid = row.get(0);
    // Lock the message, then judge it from all its parts.
    tx.query_one(
        "select 1 from notifications where notification_id = $1 for update",
        &[&id],
    )
    .await?;
    let row = tx
        .query_one(
            "select count(*) filter (where state = 'delivered'),
                    count(*) filter (where state = 'failed'),
                    count(*) filter (where state = 'expired'),
                    count(*)
             from sms_parts where notification_id = $1",
            &[&id],
        )
        .await?;
    let (delivered, failed, expired, total): (i64, i64, i64, i64) =
        (row.get(0), row.get(1), row.get(2), row.get(3));
    let parts: i32 = tx
        .query_one(
            "select parts from notifications where notification_id = $1",
            &[&id],
        )
        .await?
        .get(0);
    let final_state = if failed > 0 {
        Some("failed")
    } else if expired > 0 {
        Some("expired")
    } else if delivered == total && total >= i64::from(parts) && parts > 0 {
        Some("delivered")
    } else {
        None
    };
    if let Some(s) = final_state {
        let n = tx
            .execute(
                "update notifications set state = $2, delivered_at = case when $2 = 'delivered' then now() end,
                        reason = case when $2 = 'delivered' then null else $3 end
                 where notification_id = $1 and state in ('submitted', 'sending')",
                &[&id, &s, &r.detail],
            )
            .await?;
        if n > 0 {
            match s {
                "delivered" => metrics::counter!("notification_sms_delivered_total").increment(1),
                other => {
                    metrics::counter!("notification_sms_failed_total", "why" => other.to_owned()).increment(1)
                }
            }
        }
    }
    tx.commit().await?;
    Ok(true)
}
