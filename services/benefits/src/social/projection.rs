//! The social projection, from events only (issue 10 §5): pension, unemployment and
//! work-injury enrollment periods from enrollment's social-line events, the months paid here
//! with their pension personal-account credit from collection's `contribution-settled`, and
//! what a transfer-in certificate carried over. Kept apart from the medical tables so that
//! medical eligibility and person-info are unchanged.

use crate::domain::money::{self, fen};
use crate::projection::{SOCIAL, month, permanent, person_id};
use contracts::collection::events as ce;
use contracts::enrollment::events as e;
use contracts::ids::YearMonth;
use contracts::{InsuranceType, Line};
use deadpool_postgres::Transaction;
use messaging::{Handled, HandlerError, Incoming};
use rust_decimal::Decimal;
use std::collections::BTreeMap;
use uuid::Uuid;

/// Makes the person known without touching what the medical projection keeps (category and
/// the medical flags are only set when the row is new).
async fn person(
    tx: &Transaction<'_>,
    person: Uuid,
    id_number: &str,
    name: Option<&str>,
    category: Option<&str>,
) -> Result<(), HandlerError> {
    tx.execute(
        "insert into persons (person_id, id_number, name, category)
         values ($1, $2, coalesce($3, ''), coalesce($4, 'employee'))
         on conflict (person_id) do update set name = coalesce($3, persons.name), updated_at = now()",
        &[&person, &id_number, &name, &category],
    )
    .await?;
    Ok(())
}

/// The share of a settled pension line credited to the personal account, from the policy in
/// force for the month: the employee's share and a person payer's (flexible worker) by the
/// policy's factors, never the employer's.
async fn account_factors(
    tx: &Transaction<'_>,
    m: chrono::NaiveDate,
) -> Result<(Decimal, Decimal), HandlerError> {
    let r = tx
        .query_opt(
            "select employee_account_share, person_account_share from pension_policies
             where effective_from <= $1 order by effective_from desc limit 1",
            &[&m],
        )
        .await?;
    Ok(r.map_or((Decimal::ZERO, Decimal::ZERO), |r| (r.get(0), r.get(1))))
}

async fn contribution_settled(tx: &Transaction<'_>, msg: &Incoming) -> Result<(), HandlerError> {
    let ev: ce::ContributionSettled = msg.decode()?;
    let m = month("month", &ev.month)?;
    let assessment: Uuid = ev
        .assessment_id
        .parse()
        .map_err(|_| permanent(format!("assessment_id '{}' is not a UUID", ev.assessment_id)))?;
    let (employee, own) = account_factors(tx, m).await?;
    // Per person and type: the month is paid, and what it credits to the pension account
    // (the items are the month's totals over the assessment's runs).
    let mut months: BTreeMap<(Uuid, InsuranceType), Decimal> = BTreeMap::new();
    for item in ev
        .items
        .iter()
        .filter(|i| i.insurance_type.line() == Line::Social)
    {
        let amount = money::parse(&item.amount, 2).map_err(|err| permanent(format!("item amount: {err}")))?;
        let factor = match (item.insurance_type, item.share.as_str()) {
            (InsuranceType::Pension, "employee") => employee,
            (InsuranceType::Pension, "person") => own,
            _ => Decimal::ZERO,
        };
        *months
            .entry((person_id(&item.person_id)?, item.insurance_type))
            .or_default() += fen(amount * factor);
    }
    for ((person, t), credit) in months {
        tx.execute(
            "insert into contribution_months (person_id, insurance_type, month, assessment_id, account_credit, paid_at)
             values ($1, $2, $3, $4, $5, $6)
             on conflict (person_id, insurance_type, month) do update set
                 account_credit = excluded.account_credit, assessment_id = excluded.assessment_id",
            &[&person, &t.as_str(), &m, &assessment, &credit, &ev.settled_at],
        )
        .await?;
    }
    Ok(())
}

/// Applies one social-line event to the social projection.
pub async fn apply(tx: &Transaction<'_>, msg: &Incoming) -> Result<Handled, HandlerError> {
    match (msg.service.as_str(), msg.name.as_str()) {
        ("enrollment", "person-enrolled") => {
            let ev: e::PersonEnrolled = msg.decode()?;
            let p = person_id(&ev.person_id)?;
            person(tx, p, &ev.id_number, Some(&ev.name), Some(&ev.category)).await?;
            SOCIAL
                .open(
                    tx,
                    p,
                    &ev.insurance_types,
                    month("effective_month", &ev.effective_month)?,
                )
                .await?;
        }
        ("enrollment", "staff-added") => {
            let ev: e::StaffAdded = msg.decode()?;
            let from = month("month", &ev.month)?;
            for s in &ev.persons {
                let p = person_id(&s.person_id)?;
                person(tx, p, &s.id_number, None, Some("employee")).await?;
                SOCIAL.open(tx, p, &ev.insurance_types, from).await?;
            }
        }
        ("enrollment", "transferred-in") => {
            let ev: e::TransferredIn = msg.decode()?;
            let p = person_id(&ev.person_id)?;
            person(tx, p, &ev.id_number, None, ev.category.as_deref()).await?;
            SOCIAL
                .open(
                    tx,
                    p,
                    &ev.insurance_types,
                    month("effective_month", &ev.effective_month)?,
                )
                .await?;
            let months = i32::try_from(ev.contribution_months.unwrap_or(0))
                .map_err(|_| permanent("contribution_months out of range".into()))?;
            let balance = match &ev.pension_account_balance {
                Some(b) => {
                    money::parse(b, 2).map_err(|err| permanent(format!("pension_account_balance: {err}")))?
                }
                None => Decimal::ZERO,
            };
            for t in SOCIAL.of(&ev.insurance_types) {
                let balance = if t == InsuranceType::Pension {
                    balance
                } else {
                    Decimal::ZERO
                };
                tx.execute(
                    "insert into carried_contributions (person_id, insurance_type, certificate_id, months, account_balance)
                     values ($1, $2, $3, $4, $5) on conflict do nothing",
                    &[&p, &t.as_str(), &ev.certificate_id, &months, &balance],
                )
                .await?;
            }
        }
        ("enrollment", "staff-removed") => {
            let ev: e::StaffRemoved = msg.decode()?;
            let from = month("month", &ev.month)?;
            for s in &ev.persons {
                SOCIAL
                    .end(tx, person_id(&s.person_id)?, &ev.insurance_types, from, "removed")
                    .await?;
            }
        }
        ("enrollment", "enrollment-suspended") | ("enrollment", "enrollment-terminated") => {
            let ev: e::EnrollmentStatusChanged = msg.decode()?;
            let reason = msg.name.trim_start_matches("enrollment-").to_owned();
            SOCIAL
                .end(
                    tx,
                    person_id(&ev.person_id)?,
                    &ev.insurance_types,
                    month("month", &ev.month)?,
                    &reason,
                )
                .await?;
        }
        ("enrollment", "transferred-out") => {
            use chrono::Datelike;
            let ev: e::TransferredOut = msg.decode()?;
            let issued = ev.certificate.issued_at;
            let next = YearMonth::new(issued.year(), issued.month())
                .ok()
                .and_then(YearMonth::next)
                .ok_or_else(|| permanent("certificate issued_at out of range".into()))?;
            SOCIAL
                .end(
                    tx,
                    person_id(&ev.person_id)?,
                    &ev.certificate.insurance_types,
                    next.first_day(),
                    "transferred-out",
                )
                .await?;
        }
        ("collection", "contribution-settled") => contribution_settled(tx, msg).await?,
        _ => {}
    }
    Ok(Handled::default())
}

/// The enrollment and collection events of the social line benefits consumes.
pub fn bindings() -> Vec<String> {
    let line = Line::Social;
    [
        "person-enrolled",
        "staff-added",
        "staff-removed",
        "enrollment-suspended",
        "enrollment-terminated",
        "transferred-out",
        "transferred-in",
    ]
    .iter()
    .map(|name| format!("{line}.enrollment.{name}"))
    .chain(std::iter::once(format!("{line}.collection.contribution-settled")))
    .collect()
}

/// A person's contribution months in `t` (carried over plus paid here) and pension account
/// balance (carried over plus credited here).
pub async fn contributions(
    tx: &Transaction<'_>,
    person: Uuid,
    t: InsuranceType,
) -> Result<(i32, Decimal), HandlerError> {
    let r = tx
        .query_one(
            "select (coalesce((select sum(months) from carried_contributions where person_id = $1 and insurance_type = $2), 0)
                     + (select count(*) from contribution_months where person_id = $1 and insurance_type = $2))::integer,
                    (coalesce((select sum(account_balance) from carried_contributions where person_id = $1 and insurance_type = $2), 0)
                     + coalesce((select sum(account_credit) from contribution_months where person_id = $1 and insurance_type = $2), 0))::numeric(14, 2)",
            &[&person, &t.as_str()],
        )
        .await?;
    Ok((r.get(0), r.get(1)))
}

/// Whether the person has ever been enrolled in `t`.
pub async fn enrolled(tx: &Transaction<'_>, person: Uuid, t: InsuranceType) -> Result<bool, HandlerError> {
    Ok(tx
        .query_opt(
            "select 1 from social_enrollments where person_id = $1 and insurance_type = $2 limit 1",
            &[&person, &t.as_str()],
        )
        .await?
        .is_some())
}
