//! The monthly payment run (issue 10 §5): one batch per month and kind to the bank, with
//! every month owed up to the run's month (back months of a late-approved or back-paid award,
//! and months whose payment failed), and control totals (count and sum). The bank answers
//! `record-benefit-payments` with the totals it received, checked against the batch; failed
//! items are reported and their months owed again. A repeated run gives the same batch.

use super::month;
use crate::domain::money::text;
use crate::handlers::{BenefitsHandler, HResult, conflict, invalid, money, ok, uuid};
use contracts::benefits::social as s;
use deadpool_postgres::Transaction;
use messaging::{HandlerError, Incoming};
use rust_decimal::Decimal;
use std::collections::HashMap;
use uuid::Uuid;

const KINDS: [&str; 3] = ["pension", "unemployment", "work-injury"];

fn months_text(ms: &[chrono::NaiveDate]) -> Vec<String> {
    ms.iter().map(|m| m.format("%Y-%m").to_string()).collect()
}

async fn load(tx: &Transaction<'_>, batch: Uuid, lock: bool) -> Result<s::BatchResult, HandlerError> {
    let sql = format!(
        "select batch_id, month, kind, status, item_count, total, paid_count, paid_total, failed_count, failed_total
         from benefit_batches where batch_id = $1 {}",
        if lock { "for update" } else { "" }
    );
    let b = tx
        .query_opt(&sql, &[&batch])
        .await?
        .ok_or_else(|| crate::handlers::not_found("batch_id", "no payment batch with this id"))?;
    let items = tx
        .query(
            "select item_id, award_id, person_id, id_number, months, amount, card_state, status, reason
             from benefit_batch_items where batch_id = $1 order by seq",
            &[&batch],
        )
        .await?
        .iter()
        .map(|r| s::PaymentItem {
            item_id: r.get::<_, Uuid>(0).to_string(),
            award_id: r.get::<_, Uuid>(1).to_string(),
            psn_no: r.get::<_, Uuid>(2).to_string(),
            id_number: r.get(3),
            months: months_text(&r.get::<_, Vec<chrono::NaiveDate>>(4)),
            amount: text(r.get(5)),
            card_state: r.get(6),
            status: r.get(7),
            reason: r.get(8),
        })
        .collect();
    Ok(s::BatchResult {
        batch_id: b.get::<_, Uuid>(0).to_string(),
        month: b.get::<_, chrono::NaiveDate>(1).format("%Y-%m").to_string(),
        kind: b.get(2),
        status: b.get(3),
        item_count: b.get(4),
        total: text(b.get(5)),
        paid_count: b.get(6),
        paid_total: text(b.get(7)),
        failed_count: b.get(8),
        failed_total: text(b.get(9)),
        items,
    })
}

pub async fn run(h: &BenefitsHandler, tx: &Transaction<'_>, msg: &Incoming) -> HResult {
    let cmd: s::RunBenefitPayments = msg.decode()?;
    let m = month("month", &cmd.month)?.first_day();
    if !KINDS.contains(&cmd.kind.as_str()) {
        return Err(invalid(
            "kind",
            format!("'{}' is not a benefit kind ({})", cmd.kind, KINDS.join(", ")),
        ));
    }
    // One batch per month and kind: the first run claims it, a repeat reads it back.
    let batch_id = Uuid::now_v7();
    let claimed = tx
        .execute(
            "insert into benefit_batches (batch_id, month, kind, status, item_count, total, ordered_at)
             values ($1, $2, $3, 'ordered', 0, 0, $4) on conflict (month, kind) do nothing",
            &[&batch_id, &m, &cmd.kind, &msg.received_at],
        )
        .await?;
    if claimed == 0 {
        let existing: Uuid = tx
            .query_one(
                "select batch_id from benefit_batches where month = $1 and kind = $2",
                &[&m, &cmd.kind],
            )
            .await?
            .get(0);
        return ok(&load(tx, existing, false).await?, vec![]);
    }
    // Every month owed up to the run's month: in the award's months, not paid or ordered by an
    // item that stands (a failed item's months are owed again). Set-based: one statement
    // orders the items, one the months they pay.
    tx.execute(
        "insert into benefit_batch_items (batch_id, seq, award_id, person_id, id_number, months, amount, card_state, status)
         select $1, row_number() over (order by o.award_id), o.award_id, o.person_id, o.id_number, o.months,
                o.monthly_amount * cardinality(o.months), coalesce(c.state, 'none'), 'ordered'
         from (select a.award_id, a.person_id, a.id_number, a.monthly_amount,
                      array_agg(m::date order by m) as months
               from benefit_awards a
               cross join lateral generate_series(a.from_month, least(coalesce(a.to_month, $2), $2), interval '1 month') m
               where a.kind = $3 and a.from_month <= $2
                 and not exists (select 1 from benefit_award_months am
                                 join benefit_batch_items i on i.item_id = am.item_id
                                 where am.award_id = a.award_id and am.month = m::date and i.status <> 'failed')
               group by a.award_id, a.person_id, a.id_number, a.monthly_amount) o
         left join card_status c on c.id_number = o.id_number",
        &[&batch_id, &m, &cmd.kind],
    )
    .await?;
    tx.execute(
        "insert into benefit_award_months (award_id, month, item_id)
         select i.award_id, unnest(i.months), i.item_id from benefit_batch_items i where i.batch_id = $1",
        &[&batch_id],
    )
    .await?;
    tx.execute(
        "update benefit_batches b set item_count = t.n, total = t.total,
             status = case when t.n = 0 then 'empty' else 'ordered' end
         from (select count(*) as n, coalesce(sum(amount), 0)::numeric(14, 2) as total
               from benefit_batch_items where batch_id = $1) t
         where b.batch_id = $1",
        &[&batch_id],
    )
    .await?;
    let batch = load(tx, batch_id, false).await?;
    let mut out = Vec::new();
    if batch.item_count > 0 {
        out.push(h.social_event(
            &s::BenefitPaymentBatchOrdered {
                batch_id: batch.batch_id.clone(),
                month: batch.month.clone(),
                kind: batch.kind.clone(),
                item_count: batch.item_count,
                total: batch.total.clone(),
                items: batch.items.clone(),
            },
            msg,
        ));
    }
    ok(&batch, out)
}

pub async fn record(h: &BenefitsHandler, tx: &Transaction<'_>, msg: &Incoming) -> HResult {
    let cmd: s::RecordBenefitPayments = msg.decode()?;
    let batch_id = uuid("batch_id", &cmd.batch_id)?;
    let total = money("total", &cmd.total)?;
    let batch = load(tx, batch_id, true).await?;
    if batch.status != "ordered" {
        return Err(conflict(
            "batch_id",
            format!("the batch is {}: its results are already recorded", batch.status),
        ));
    }
    // Control totals first: the bank must have received the batch as sent.
    if cmd.item_count != batch.item_count {
        return Err(conflict(
            "item_count",
            format!("the batch has {} items, not {}", batch.item_count, cmd.item_count),
        ));
    }
    if text(total) != batch.total {
        return Err(conflict(
            "total",
            format!("the batch totals {}, not {}", batch.total, text(total)),
        ));
    }
    if i64::try_from(cmd.results.len()).unwrap_or(i64::MAX) != batch.item_count {
        return Err(invalid(
            "results",
            format!(
                "{} results for {} items: every item is answered once",
                cmd.results.len(),
                batch.item_count
            ),
        ));
    }
    let items: HashMap<&str, &s::PaymentItem> = batch.items.iter().map(|i| (i.item_id.as_str(), i)).collect();
    let mut seen = std::collections::HashSet::new();
    let mut sum = Decimal::ZERO;
    for (i, r) in cmd.results.iter().enumerate() {
        let field = |f: &str| format!("results[{i}].{f}");
        let Some(item) = items.get(r.item_id.as_str()) else {
            return Err(invalid(&field("item_id"), "not an item of this batch"));
        };
        if !seen.insert(r.item_id.as_str()) {
            return Err(invalid(&field("item_id"), "answered twice"));
        }
        if !["paid", "failed"].contains(&r.outcome.as_str()) {
            return Err(invalid(
                &field("outcome"),
                format!("'{}' is not an outcome (paid, failed)", r.outcome),
            ));
        }
        let amount = money(&field("amount"), &r.amount)?;
        if text(amount) != item.amount {
            return Err(conflict(
                &field("amount"),
                format!("the item is {}, not {}", item.amount, text(amount)),
            ));
        }
        if r.bank_ref.trim().is_empty() {
            return Err(invalid(&field("bank_ref"), "the bank's reference is required"));
        }
        if r.outcome == "failed" && r.reason.as_deref().is_none_or(|x| x.trim().is_empty()) {
            return Err(invalid(&field("reason"), "a failed payment needs its reason"));
        }
        sum += amount;
    }
    if text(sum) != batch.total {
        return Err(conflict(
            "results",
            format!(
                "the results add up to {}, the batch to {}",
                text(sum),
                batch.total
            ),
        ));
    }
    let ids: Vec<Uuid> = cmd
        .results
        .iter()
        .map(|r| r.item_id.parse().expect("checked against the batch"))
        .collect();
    let outcomes: Vec<&str> = cmd.results.iter().map(|r| r.outcome.as_str()).collect();
    let refs: Vec<&str> = cmd.results.iter().map(|r| r.bank_ref.as_str()).collect();
    let reasons: Vec<Option<&str>> = cmd.results.iter().map(|r| r.reason.as_deref()).collect();
    tx.execute(
        "update benefit_batch_items i set status = r.outcome, bank_ref = r.bank_ref,
             reason = case when r.outcome = 'failed' then r.reason end
         from unnest($2::uuid[], $3::text[], $4::text[], $5::text[]) as r(item_id, outcome, bank_ref, reason)
         where i.batch_id = $1 and i.item_id = r.item_id",
        &[&batch_id, &ids, &outcomes, &refs, &reasons],
    )
    .await?;
    tx.execute(
        "update benefit_batches b set status = 'reported', reported_at = $2,
             paid_count = t.pc, paid_total = t.pt, failed_count = t.fc, failed_total = t.ft
         from (select count(*) filter (where status = 'paid') as pc,
                      coalesce(sum(amount) filter (where status = 'paid'), 0)::numeric(14, 2) as pt,
                      count(*) filter (where status = 'failed') as fc,
                      coalesce(sum(amount) filter (where status = 'failed'), 0)::numeric(14, 2) as ft
               from benefit_batch_items where batch_id = $1) t
         where b.batch_id = $1",
        &[&batch_id, &msg.received_at],
    )
    .await?;
    let batch = load(tx, batch_id, false).await?;
    let mut out: Vec<_> = batch
        .items
        .iter()
        .filter(|i| i.status == "failed")
        .map(|i| {
            h.social_event(
                &s::BenefitPaymentFailed {
                    batch_id: batch.batch_id.clone(),
                    item_id: i.item_id.clone(),
                    award_id: i.award_id.clone(),
                    psn_no: i.psn_no.clone(),
                    id_number: i.id_number.clone(),
                    kind: batch.kind.clone(),
                    months: i.months.clone(),
                    amount: i.amount.clone(),
                    reason: i.reason.clone().unwrap_or_default(),
                },
                msg,
            )
        })
        .collect();
    out.push(h.social_event(
        &s::BenefitPaymentsRecorded {
            batch_id: batch.batch_id.clone(),
            month: batch.month.clone(),
            kind: batch.kind.clone(),
            paid_count: batch.paid_count,
            paid_total: batch.paid_total.clone(),
            failed_count: batch.failed_count,
            failed_total: batch.failed_total.clone(),
        },
        msg,
    ));
    ok(&batch, out)
}

pub async fn status(tx: &Transaction<'_>, msg: &Incoming) -> HResult {
    let cmd: s::BatchQuery = msg.decode()?;
    ok(&load(tx, uuid("batch_id", &cmd.batch_id)?, false).await?, vec![])
}
