//! The benefits service's filings (备案, medical line) and social-line benefits (退休审核,
//! awards, the monthly payments, social line): what each event tells the person.
//!
//! Social-line events name the person by ID number; filings only by `psn_no` (the person id
//! enrollment gave), which the contacts projection maps to the person. What a later event
//! needs and only an earlier one carries is kept here, from the events alone: what a filing
//! is for (`filing-recorded`), and the items of a payment batch
//! (`benefit-payment-batch-ordered`), whose paid items the bank's results give only as totals.

use crate::handlers::{NotificationHandler, cst, day, short_ref, zh_reason};
use crate::store;
use contracts::Line;
use contracts::benefits::filings as f;
use contracts::benefits::social as s;
use deadpool_postgres::Transaction;
use messaging::{Handled, HandlerError, Incoming};
use std::collections::BTreeMap;

type HResult = Result<Handled, HandlerError>;

/// The social-line benefits events read.
pub const SOCIAL: &[&str] = &[
    "retirement-applied",
    "retirement-approved",
    "retirement-rejected",
    "benefit-awarded",
    "benefit-payment-batch-ordered",
    "benefit-payment-failed",
    "benefit-payments-recorded",
];

/// The filings events read.
pub const FILINGS: &[&str] = &[
    "filing-recorded",
    "filing-approved",
    "filing-rejected",
    "filing-revoked",
];

/// A benefit's name in the texts.
fn kind_zh(kind: &str) -> &str {
    match kind {
        "pension" => "基本养老金",
        "unemployment" => "失业保险金",
        "work-injury" => "工伤保险定期待遇",
        other => other,
    }
}

/// Months as the texts give them: one (`2024-05`), a run (`2024-03至2024-05`), or a list.
pub fn months_zh(months: &[String]) -> String {
    let index = |m: &str| -> Option<i32> {
        let (y, mo) = m.split_once('-')?;
        Some(y.parse::<i32>().ok()? * 12 + mo.parse::<i32>().ok()?)
    };
    match months {
        [] => String::new(),
        [one] => one.clone(),
        [first, .., last] => {
            let run = months
                .windows(2)
                .all(|w| matches!((index(&w[0]), index(&w[1])), (Some(a), Some(b)) if b == a + 1));
            if run {
                format!("{first}至{last}")
            } else {
                months.join("、")
            }
        }
    }
}

/// What a filing is for, from `filing-recorded`'s kind and subject (`work-posting 370100`,
/// `I10`, `<drug> at <institution>`).
pub fn filing_zh(kind: &str, subject: &str, late: bool) -> String {
    let mut out = match kind {
        "cross-region" => {
            let mut words = subject.split_whitespace();
            let kind = match words.next().unwrap_or("") {
                "long-term-residence" => "异地长期居住",
                "work-posting" => "常驻异地工作",
                "retirement-elsewhere" => "异地安置",
                "referral" => "转外就医",
                other => other,
            };
            match words.next() {
                Some(region) => format!("异地就医（{kind}，就医地{region}）"),
                None => format!("异地就医（{kind}）"),
            }
        }
        "chronic-disease" if subject.is_empty() => "门诊慢特病".to_owned(),
        "chronic-disease" => format!("门诊慢特病（{subject}）"),
        "special-drug" => match subject.split_once(" at ") {
            Some((drug, institution)) => format!("特治特药（药品{drug}，定点机构{institution}）"),
            None => "特治特药".to_owned(),
        },
        other => other.to_owned(),
    };
    if late {
        out.push_str("补登记");
    }
    out
}

fn validity_zh(from: &str, to: Option<&str>) -> String {
    match to {
        Some(to) => format!("有效期{from}至{to}"),
        None => format!("有效期自{from}起"),
    }
}

impl NotificationHandler {
    pub(crate) async fn on_social(&self, tx: &Transaction<'_>, msg: &Incoming) -> HResult {
        let source = msg.envelope.message_id.to_string();
        let at = msg.received_at;
        let line = Line::Social;
        match msg.name.as_str() {
            "retirement-applied" => {
                let ev: s::RetirementApplied = msg.decode()?;
                let vars = BTreeMap::from([
                    ("applied_at", day(ev.applied_at.with_timezone(&cst()))),
                    ("application", short_ref(&ev.application_id)),
                ]);
                let r = format!("person:{}", ev.id_number);
                self.tell(tx, &r, line, "retirement-applied", vars, &source, at)
                    .await?;
            }
            "retirement-approved" => {
                let ev: s::RetirementApproved = msg.decode()?;
                let vars = BTreeMap::from([
                    ("application", short_ref(&ev.application_id)),
                    ("pension", ev.pension.monthly_pension.clone()),
                    ("basic", ev.pension.basic_pension.clone()),
                    ("account", ev.pension.account_pension.clone()),
                    ("from_month", ev.from_month.clone()),
                ]);
                let r = format!("person:{}", ev.id_number);
                self.tell(tx, &r, line, "retirement-approved", vars, &source, at)
                    .await?;
            }
            "retirement-rejected" => {
                let ev: s::RetirementRejected = msg.decode()?;
                let vars = BTreeMap::from([
                    ("application", short_ref(&ev.application_id)),
                    ("reason", zh_reason(&ev.reason)),
                ]);
                let r = format!("person:{}", ev.id_number);
                self.tell(tx, &r, line, "retirement-rejected", vars, &source, at)
                    .await?;
            }
            "benefit-awarded" => {
                // A pension is awarded with its retirement's approval, which told it already.
                let ev: s::BenefitAwarded = msg.decode()?;
                if ev.kind == "pension" {
                    return Ok(Handled::default());
                }
                let period = match &ev.to_month {
                    Some(to) => format!("自{}至{to}", ev.from_month),
                    None => format!("自{}起", ev.from_month),
                };
                let vars = BTreeMap::from([
                    ("kind", kind_zh(&ev.kind).to_owned()),
                    ("amount", ev.monthly_amount.clone()),
                    ("period", period),
                ]);
                let r = format!("person:{}", ev.id_number);
                self.tell(tx, &r, line, "benefit-awarded", vars, &source, at)
                    .await?;
            }
            "benefit-payment-batch-ordered" => {
                // Kept until the bank's results come: nothing is told yet.
                let ev: s::BenefitPaymentBatchOrdered = msg.decode()?;
                let (mut ids, mut recipients, mut months, mut amounts) =
                    (Vec::new(), Vec::new(), Vec::new(), Vec::new());
                for i in &ev.items {
                    ids.push(i.item_id.clone());
                    recipients.push(format!("person:{}", i.id_number));
                    months.push(months_zh(&i.months));
                    amounts.push(i.amount.clone());
                }
                tx.execute(
                    "insert into benefit_items (batch_id, item_id, recipient, kind, months, amount)
                     select $1, u.item_id, u.recipient, $2, u.months, u.amount
                     from unnest($3::text[], $4::text[], $5::text[], $6::text[]) as u(item_id, recipient, months, amount)
                     on conflict (batch_id, item_id) do nothing",
                    &[&ev.batch_id, &ev.kind, &ids, &recipients, &months, &amounts],
                )
                .await?;
            }
            "benefit-payment-failed" => {
                let ev: s::BenefitPaymentFailed = msg.decode()?;
                tx.execute(
                    "update benefit_items set failed = true where batch_id = $1 and item_id = $2",
                    &[&ev.batch_id, &ev.item_id],
                )
                .await?;
                let vars = BTreeMap::from([
                    ("months", months_zh(&ev.months)),
                    ("kind", kind_zh(&ev.kind).to_owned()),
                    ("amount", ev.amount.clone()),
                    ("reason", zh_reason(&ev.reason)),
                ]);
                let r = format!("person:{}", ev.id_number);
                self.tell(tx, &r, line, "benefit-payment-failed", vars, &source, at)
                    .await?;
            }
            "benefit-payments-recorded" => {
                let ev: s::BenefitPaymentsRecorded = msg.decode()?;
                self.tell_paid(tx, &ev, at).await?;
            }
            _ => {}
        }
        Ok(Handled::default())
    }

    /// Every item of the batch the bank paid: one SMS each, queued in one statement (a
    /// month's pension run is one batch for every pensioner). The results are recorded with
    /// their failures in one transaction at benefits, so the failed items' events come first
    /// on the batch's key; if fewer have come than the results count, this waits for them
    /// (a transient failure: retried), rather than tell a failed payment as paid.
    async fn tell_paid(
        &self,
        tx: &Transaction<'_>,
        ev: &s::BenefitPaymentsRecorded,
        at: chrono::DateTime<chrono::Utc>,
    ) -> Result<(), HandlerError> {
        let row = tx
            .query_one(
                "select count(*) filter (where not failed), count(*) filter (where failed)
                 from benefit_items where batch_id = $1",
                &[&ev.batch_id],
            )
            .await?;
        let (paid, failed): (i64, i64) = (row.get(0), row.get(1));
        if paid + failed == 0 {
            // The batch was ordered before this service kept batches: nobody can be named.
            tracing::info!(batch = %ev.batch_id, "results of a batch whose items are not known; nobody told");
            return Ok(());
        }
        if failed < ev.failed_count {
            return Err(HandlerError::Transient(anyhow::anyhow!(
                "batch {}: {} failed items recorded, {} known here; waiting for their events",
                ev.batch_id,
                ev.failed_count,
                failed
            )));
        }
        let (signature, hotline) = self.signature(Line::Social);
        let template = "benefit-paid";
        // The text with the per-item placeholders left in, filled per row below.
        let vars = BTreeMap::from([
            ("signature", signature.to_owned()),
            ("hotline", hotline.to_owned()),
            ("kind", kind_zh(&ev.kind).to_owned()),
            ("months", "{months}".to_owned()),
            ("amount", "{amount}".to_owned()),
        ]);
        let r = self
            .templates
            .render(template, &vars)
            .map_err(|e| HandlerError::Permanent(anyhow::anyhow!("{e}")))?;
        let queued = store::queue_paid_items(tx, &ev.batch_id, &r, at).await?;
        tracing::info!(batch = %ev.batch_id, queued, "paid benefits told");
        Ok(())
    }

    pub(crate) async fn on_filing(&self, tx: &Transaction<'_>, msg: &Incoming) -> HResult {
        let source = msg.envelope.message_id.to_string();
        let at = msg.received_at;
        let line = Line::Medical;
        let b = &msg.body;
        let psn_no = crate::handlers::text(b, "psn_no");
        let Some(r) = self.person_by_id(tx, &psn_no).await? else {
            tracing::info!(psn_no, event = %msg.name, "a filing of a person with no contact; nothing sent");
            return Ok(Handled::default());
        };
        let filing_id = crate::handlers::text(b, "filing_id");
        if msg.name == "filing-recorded" {
            let ev: f::FilingRecorded = msg.decode()?;
            let description = filing_zh(&ev.kind, &ev.subject, ev.late);
            let validity = validity_zh(&ev.valid_from, ev.valid_to.as_deref());
            tx.execute(
                "insert into filings (filing_id, recipient, description, validity) values ($1, $2, $3, $4)
                 on conflict (filing_id) do update set description = excluded.description, validity = excluded.validity",
                &[&ev.filing_id, &r, &description, &validity],
            )
            .await?;
            // Approved at once (the simple procedure): its `filing-approved` tells it.
            if ev.status == "submitted" {
                let vars = BTreeMap::from([("filing", description), ("filing_id", short_ref(&ev.filing_id))]);
                self.tell(tx, &r, line, "filing-submitted", vars, &source, at)
                    .await?;
            }
            return Ok(Handled::default());
        }
        // What the filing is for, as recorded; a filing recorded before this service kept
        // them is named by its kind.
        let kept = tx
            .query_opt(
                "select description, validity from filings where filing_id = $1",
                &[&filing_id],
            )
            .await?;
        let (description, validity) = match kept {
            Some(row) => (row.get::<_, String>(0), row.get::<_, String>(1)),
            None => (
                filing_zh(&crate::handlers::text(b, "kind"), "", false),
                "有效期以经办机构登记为准".to_owned(),
            ),
        };
        let mut vars = BTreeMap::from([("filing", description), ("filing_id", short_ref(&filing_id))]);
        let template = match msg.name.as_str() {
            "filing-approved" => {
                vars.insert("validity", validity);
                "filing-approved"
            }
            "filing-rejected" => {
                vars.insert("reason", zh_reason(&crate::handlers::text(b, "reason")));
                "filing-rejected"
            }
            _ => {
                vars.insert("reason", zh_reason(&crate::handlers::text(b, "reason")));
                "filing-revoked"
            }
        };
        self.tell(tx, &r, line, template, vars, &source, at).await?;
        Ok(Handled::default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn months_read_as_one_a_run_or_a_list() {
        let m = |v: &[&str]| months_zh(&v.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        assert_eq!(m(&["2024-05"]), "2024-05");
        assert_eq!(m(&["2024-11", "2024-12", "2025-01"]), "2024-11至2025-01");
        assert_eq!(m(&["2024-03", "2024-05"]), "2024-03、2024-05");
    }

    #[test]
    fn filings_are_named_from_their_subject() {
        assert_eq!(
            filing_zh("cross-region", "work-posting 370100", false),
            "异地就医（常驻异地工作，就医地370100）"
        );
        assert_eq!(
            filing_zh("cross-region", "long-term-residence 370100", true),
            "异地就医（异地长期居住，就医地370100）补登记"
        );
        assert_eq!(filing_zh("chronic-disease", "I10", false), "门诊慢特病（I10）");
        assert_eq!(
            filing_zh("special-drug", "XJ01 at H42010000001", false),
            "特治特药（药品XJ01，定点机构H42010000001）"
        );
        assert_eq!(filing_zh("chronic-disease", "", false), "门诊慢特病");
    }
}
