//! Outage announcements from freeze orders (DOMAIN.md §7, §8): every order this service holds
//! (the control exchange gives every service every order sent to `all`) gets three phases,
//! `before` (`announce_lead_hours` ahead of the start, or at once when the order comes later),
//! `start` and `end` (when the end is known: its `ends_at`, a lift, an extension). A due phase
//! is a bulk send to every contact enrolled on a line of the order's scope: the contacts are
//! walked in recipient order, `announcement_batch` per transaction, the cursor stored with the
//! queued rows, so a restart resumes after the last recipient queued, and the unique
//! (source, recipient, template) never lets a person have the same announcement twice. The
//! sender's `submits_per_second` is the throttle.

use crate::NotifySettings;
use crate::templates::Templates;
use chrono::{DateTime, Duration as Span, FixedOffset, Utc};
use contracts::Line;
use contracts::freeze::FreezeOrder;
use deadpool_postgres::Pool;
use messaging::freeze::Freeze;
use std::collections::BTreeMap;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

pub async fn run(pool: Pool, freeze: Freeze, notify: NotifySettings, shutdown: CancellationToken) {
    let templates = Templates::built_in();
    while !shutdown.is_cancelled() {
        if let Err(e) = plan(&pool, &freeze, &notify, &templates).await {
            tracing::warn!(error = %e, "could not plan announcements");
        }
        match expand(&pool, &freeze, &notify, &templates, &shutdown).await {
            Ok(true) => continue,
            Ok(false) => {}
            Err(e) => tracing::warn!(error = %e, "could not queue announcements"),
        }
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = tokio::time::sleep(Duration::from_millis(250)) => {}
        }
    }
}

fn lines_of(order: &FreezeOrder) -> Vec<Line> {
    if order.scope.lines.is_empty() {
        Line::BUSINESS.to_vec()
    } else {
        order.scope.lines.clone()
    }
}

fn line_zh(lines: &[Line]) -> &'static str {
    match lines {
        [Line::Medical] => "医疗保障",
        [Line::Social] => "社会保险",
        _ => "医疗保障和社会保险",
    }
}

fn stamp(t: DateTime<FixedOffset>) -> String {
    t.format("%Y年%m月%d日%H:%M").to_string()
}

/// The text of one phase, with the signature and hotline of the order's first line.
fn text(
    templates: &Templates,
    notify: &NotifySettings,
    order: &FreezeOrder,
    phase: &str,
    ends_at: Option<DateTime<FixedOffset>>,
) -> anyhow::Result<String> {
    let lines = lines_of(order);
    let (signature, hotline) = match lines.first() {
        Some(Line::Medical) => (&notify.signature_medical, &notify.hotline_medical),
        _ => (&notify.signature_social, &notify.hotline_social),
    };
    let announcement = if order.announcement.trim().is_empty() {
        order.reason.clone()
    } else {
        order.announcement.trim().to_owned()
    };
    // The templates end the order's sentence themselves.
    let announcement = announcement.trim_end_matches(['。', '.', '；', ';']).to_owned();
    let vars = BTreeMap::from([
        ("signature", signature.clone()),
        ("hotline", hotline.clone()),
        ("announcement", announcement),
        ("starts_at", stamp(order.starts_at)),
        ("ends_at", ends_at.map(stamp).unwrap_or_default()),
        ("line_name", line_zh(&lines).to_owned()),
    ]);
    let template = match (phase, order.mode) {
        ("start", contracts::freeze::FreezeMode::Suspended) => "announcement-start-suspended".to_owned(),
        _ => format!("announcement-{phase}"),
    };
    Ok(templates.render(&template, &vars)?.text)
}

/// Keeps one row per phase of every order in step with the order: created when it becomes
/// known, moved while nothing of it has been queued (an extension moves the end), dropped
/// when the order is cancelled before it was sent. A row that already says so is not
/// rewritten (this runs every 250 ms).
async fn plan(
    pool: &Pool,
    freeze: &Freeze,
    notify: &NotifySettings,
    templates: &Templates,
) -> anyhow::Result<()> {
    let db = pool.get().await?;
    let now = freeze.now();
    for stored in freeze.stored().iter() {
        let id = stored.order.id.as_str();
        let Some(order) = stored.effective() else {
            db.execute(
                "delete from announcements where order_id = $1 and queued = 0",
                &[&id],
            )
            .await?;
            continue;
        };
        let lines: Vec<String> = lines_of(&order).iter().map(|l| l.as_str().to_owned()).collect();
        let starts = order.starts_at.with_timezone(&Utc);
        let ends = order.ends_at.map(|e| e.with_timezone(&Utc));
        let mut phases: Vec<(&str, DateTime<Utc>)> = Vec::new();
        if now < starts {
            let before = (starts - Span::hours(notify.announce_lead_hours)).max(now);
            phases.push(("before", before));
        }
        if ends.is_none_or(|e| now < e) {
            phases.push(("start", starts));
        }
        if let Some(e) = ends {
            phases.push(("end", e));
        }
        for (phase, due) in phases {
            let body = text(templates, notify, &order, phase, order.ends_at)?;
            db.execute(
                "insert into announcements (order_id, phase, due_at, lines, text) values ($1, $2, $3, $4, $5)
                 on conflict (order_id, phase) do update set due_at = excluded.due_at, lines = excluded.lines,
                     text = excluded.text
                 where announcements.queued = 0 and not announcements.complete
                   and (announcements.due_at, announcements.lines, announcements.text)
                       is distinct from (excluded.due_at, excluded.lines, excluded.text)",
                &[&id, &phase, &due, &lines, &body],
            )
            .await?;
        }
    }
    Ok(())
}

/// Queues one batch of every due phase; `true` when more remain (the caller goes on at once).
async fn expand(
    pool: &Pool,
    freeze: &Freeze,
    notify: &NotifySettings,
    templates: &Templates,
    shutdown: &CancellationToken,
) -> anyhow::Result<bool> {
    let mut db = pool.get().await?;
    let now = freeze.now();
    let due = db
        .query(
            "select order_id, phase from announcements where not complete and due_at <= $1 order by due_at, order_id",
            &[&now],
        )
        .await?;
    let mut more = false;
    for row in due {
        if shutdown.is_cancelled() {
            break;
        }
        let (order, phase): (String, String) = (row.get(0), row.get(1));
        let tx = db.transaction().await?;
        let Some(a) = tx
            .query_opt(
                "select cursor, lines, text from announcements
                 where order_id = $1 and phase = $2 and not complete for update skip locked",
                &[&order, &phase],
            )
            .await?
        else {
            continue;
        };
        let (cursor, lines, body): (String, Vec<String>, String) = (a.get(0), a.get(1), a.get(2));
        let source = format!("announcement:{order}:{phase}");
        let template = format!("announcement-{phase}");
        let version = templates.get(&template).map_or(1, |t| t.version);
        let batch = notify.announcement_batch.max(1);
        let r = tx
            .query_one(
                "with picked as (
                     select recipient, phone, lines from contacts
                     where recipient > $1 and lines && $2::text[] and phone is not null
                     order by recipient limit $3),
                 queued as (
                     insert into notifications (notification_id, recipient, phone, line, category, template,
                         template_version, text, source, not_before)
                     select uuid_v7(), p.recipient, p.phone,
                            (select l from unnest(p.lines) l where l = any($2::text[]) order by l limit 1),
                            'announcement', $4, $8, $5, $6, $7
                     from picked p
                     on conflict (source, recipient, template) do nothing
                     returning 1)
                 select (select count(*) from picked), (select max(recipient) from picked), (select count(*) from queued)",
                &[&cursor, &lines, &batch, &template, &body, &source, &now, &version],
            )
            .await?;
        let (picked, last, queued): (i64, Option<String>, i64) = (r.get(0), r.get(1), r.get(2));
        let complete = picked < batch;
        tx.execute(
            "update announcements set cursor = coalesce($3, cursor), queued = queued + $4, complete = $5
             where order_id = $1 and phase = $2",
            &[&order, &phase, &last, &queued, &complete],
        )
        .await?;
        tx.commit().await?;
        metrics::counter!("notification_announcement_queued_total", "order" => order.clone(), "phase" => phase.clone())
            .increment(queued as u64);
        if complete {
            tracing::info!(order, phase, "announcement queued to every recipient");
        } else {
            more = true;
        }
    }
    Ok(more)
}
