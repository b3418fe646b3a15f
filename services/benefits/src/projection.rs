//! The eligibility projection, from events only (benefits never reads another service's
//! tables): enrollment periods from enrollment's events, paid months, arrears and
//! personal-account credits from collection's.
//!
//! Payment facts carry no foreign key to the person: a month's payment may arrive before the
//! enrollment event (different ordering keys). An enrollment change for a person not yet
//! known is transient: it waits in the retry tiers for the event it follows.

use crate::domain::money::{self, fen};
use contracts::collection::events as ce;
use contracts::enrollment::events as e;
use contracts::ids::YearMonth;
use contracts::{InsuranceType, Line};
use deadpool_postgres::Transaction;
use messaging::{Handled, HandlerError, Incoming};
use rust_decimal::Decimal;
use uuid::Uuid;

pub(crate) fn permanent(what: String) -> HandlerError {
    HandlerError::Permanent(anyhow::anyhow!(what))
}

pub(crate) fn month(field: &str, s: &str) -> Result<chrono::NaiveDate, HandlerError> {
    YearMonth::parse(s)
        .map(|m| m.first_day())
        .map_err(|err| permanent(format!("event field {field}: {err}")))
}

pub(crate) fn person_id(s: &str) -> Result<Uuid, HandlerError> {
    s.parse()
        .map_err(|_| permanent(format!("event person_id '{s}' is not a UUID")))
}

async fn upsert_person(
    tx: &Transaction<'_>,
    person: Uuid,
    id_number: &str,
    name: Option<&str>,
    category: Option<&str>,
    minimum_years_met: Option<bool>,
    first_enrollment: Option<bool>,
) -> Result<(), HandlerError> {
    tx.execute(
        "insert into persons (person_id, id_number, name, category, minimum_years_met, first_enrollment)
         values ($1, $2, coalesce($3, ''), coalesce($4, 'employee'), coalesce($5, true), coalesce($6, false))
         on conflict (person_id) do update set
             name = coalesce($3, persons.name),
             category = coalesce($4, persons.category),
             minimum_years_met = coalesce($5, persons.minimum_years_met),
             first_enrollment = coalesce($6, persons.first_enrollment),
             updated_at = now()",
        &[
            &person,
            &id_number,
            &name,
            &category,
            &minimum_years_met,
            &first_enrollment,
        ],
    )
    .await?;
    Ok(())
}

/// The personal-account share of a settled line: the employee's own share in full (national
/// rule since 2021: the individual 2 % goes to the account); no employer share and no share of
/// a flexible worker's or retiree's payment (PLACEHOLDER: policy may assign one).
/// The enrollment periods one line's events keep: the medical ones (`enrollments`, what
/// eligibility is judged on) or the social ones (`social_enrollments`, issue 10 §5), by the
/// same rules.
#[derive(Clone, Copy)]
pub(crate) struct Periods {
    table: &'static str,
    line: Line,
}

pub(crate) const MEDICAL: Periods = Periods {
    table: "enrollments",
    line: Line::Medical,
};

pub(crate) const SOCIAL: Periods = Periods {
    table: "social_enrollments",
    line: Line::Social,
};

impl Periods {
    /// The insurance types of this line among `types`.
    pub(crate) fn of<'a>(&self, types: &'a [InsuranceType]) -> impl Iterator<Item = InsuranceType> + 'a {
        let line = self.line;
        types.iter().copied().filter(move |t| t.line() == line)
    }

    /// Ends the open period at the month before `from`; periods starting at or after `from`
    /// are replaced.
    pub(crate) async fn close(
        &self,
        tx: &Transaction<'_>,
        person: Uuid,
        t: InsuranceType,
        from: chrono::NaiveDate,
        reason: &str,
    ) -> Result<(), HandlerError> {
        tx.execute(
            &format!(
                "delete from {} where person_id = $1 and insurance_type = $2 and to_month is null and from_month >= $3",
                self.table
            ),
            &[&person, &t.as_str(), &from],
        )
        .await?;
        tx.execute(
            &format!(
                "update {} set to_month = ($3::date - interval '1 month')::date, end_reason = $4
                 where person_id = $1 and insurance_type = $2 and to_month is null and from_month < $3",
                self.table
            ),
            &[&person, &t.as_str(), &from, &reason],
        )
        .await?;
        Ok(())
    }

    /// A period from `from` for each type of this line among `types`.
    pub(crate) async fn open(
        &self,
        tx: &Transaction<'_>,
        person: Uuid,
        types: &[InsuranceType],
        from: chrono::NaiveDate,
    ) -> Result<(), HandlerError> {
        for t in self.of(types) {
            self.close(tx, person, t, from, "replaced").await?;
            tx.execute(
                &format!(
                    "insert into {} (person_id, insurance_type, from_month) values ($1, $2, $3)
                     on conflict (person_id, insurance_type, from_month) do update set to_month = null, end_reason = null",
                    self.table
                ),
                &[&person, &t.as_str(), &from],
            )
            .await?;
        }
        Ok(())
    }

    /// Ends the periods of this line's types among `types` (a person not yet known waits
    /// in the retry tiers for the event it follows).
    pub(crate) async fn end(
        &self,
        tx: &Transaction<'_>,
        person: Uuid,
        types: &[InsuranceType],
        from: chrono::NaiveDate,
        reason: &str,
    ) -> Result<(), HandlerError> {
        let known = tx
            .query_opt("select 1 from persons where person_id = $1", &[&person])
            .await?
            .is_some();
        if !known {
            return Err(HandlerError::Transient(anyhow::anyhow!(
                "person {person} is not yet known to benefits; waiting for the event it follows"
            )));
        }
        for t in self.of(types) {
            self.close(tx, person, t, from, reason).await?;
        }
        Ok(())
    }
}

fn account_share(t: InsuranceType, share: &str) -> Decimal {
    match (t, share) {
        (InsuranceType::EmployeeMedical, "employee") => Decimal::ONE,
        _ => Decimal::ZERO,
    }
}

async fn contribution_settled(tx: &Transaction<'_>, msg: &Incoming) -> Result<(), HandlerError> {
    let ev: ce::ContributionSettled = msg.decode()?;
    let m = month("month", &ev.month)?;
    let assessment: Uuid = ev
        .assessment_id
        .parse()
        .map_err(|_| permanent(format!("assessment_id '{}' is not a UUID", ev.assessment_id)))?;
    // Older messages without items: a person payer's own month.
    let mut items = ev.items.clone();
    if items.is_empty() && ev.payer_kind == "person" {
        items.push(ce::SettledItem {
            person_id: ev.payer_id.clone(),
            insurance_type: InsuranceType::EmployeeMedical,
            share: "person".into(),
            amount: "0.00".into(),
        });
    }
    for item in &items {
        if item.insurance_type.line() != Line::Medical {
            continue;
        }
        let person = person_id(&item.person_id)?;
        tx.execute(
            "insert into paid_months (person_id, insurance_type, month, assessment_id, paid_at)
             values ($1, $2, $3, $4, $5) on conflict do nothing",
            &[
                &person,
                &item.insurance_type.as_str(),
                &m,
                &assessment,
                &ev.settled_at,
            ],
        )
        .await?;
        let amount = money::parse(&item.amount, 2).map_err(|err| permanent(format!("item amount: {err}")))?;
        let share = fen(amount * account_share(item.insurance_type, &item.share));
        if share.is_zero() {
            continue;
        }
        // Credit what this month's share adds to what earlier settlements of the same
        // assessment credited (an adjustment settled later credits only the difference).
        let reference = format!("assessment:{assessment}:{}:{}", item.insurance_type, item.share);
        let credited: Decimal = tx
            .query_one(
                "select coalesce(sum(amount), 0) from account_entries where person_id = $1 and reference = $2",
                &[&person, &reference],
            )
            .await?
            .get(0);
        let delta = share - credited;
        if !delta.is_zero() {
            tx.execute(
                "insert into account_entries (person_id, kind, amount, reference, message_id)
                 values ($1, 'credit', $2, $3, $4)",
                &[&person, &delta, &reference, &msg.envelope.message_id],
            )
            .await?;
        }
    }
    Ok(())
}

async fn arrears_detected(tx: &Transaction<'_>, msg: &Incoming) -> Result<(), HandlerError> {
    let ev: ce::ArrearsDetected = msg.decode()?;
    // System-caused arrears (a freeze) never affect benefits; nor do those without a date.
    let Some(from) = ev.benefits_affected_from.filter(|_| !ev.system_caused) else {
        return Ok(());
    };
    let assessment: Uuid = ev
        .assessment_id
        .parse()
        .map_err(|_| permanent(format!("assessment_id '{}' is not a UUID", ev.assessment_id)))?;
    let m = month("month", &ev.month)?;
    for p in &ev.persons {
        tx.execute(
            "insert into arrears (assessment_id, person_id, month, affected_from) values ($1, $2, $3, $4)
             on conflict do nothing",
            &[&assessment, &person_id(p)?, &m, &from],
        )
        .await?;
    }
    Ok(())
}

async fn arrears_cleared(tx: &Transaction<'_>, msg: &Incoming) -> Result<(), HandlerError> {
    let ev: ce::ArrearsCleared = msg.decode()?;
    let assessment: Uuid = ev
        .assessment_id
        .parse()
        .map_err(|_| permanent(format!("assessment_id '{}' is not a UUID", ev.assessment_id)))?;
    let cst = chrono::FixedOffset::east_opt(8 * 3600).expect("a valid offset");
    let day = ev.cleared_at.with_timezone(&cst).date_naive();
    let retroactive: bool = tx
        .query_opt(
            "select arrears_restore_retroactive from benefit_policies
             where insutype = '310' and superseded_by is null and effective_from <= $1
               and (effective_to is null or effective_to >= $1)
             order by effective_from desc limit 1",
            &[&day],
        )
        .await?
        .map(|r| r.get(0))
        .unwrap_or(false);
    // Paid by the deadline and only late to reach the fund: never in arrears.
    let whole_gap = retroactive || ev.paid_on_time;
    let updated = tx
        .execute(
            "update arrears set cleared_at = $2,
                 restored_from = case when $3 then affected_from else greatest(affected_from, $4) end
             where assessment_id = $1 and cleared_at is null",
            &[&assessment, &ev.cleared_at, &whole_gap, &day],
        )
        .await?;
    if updated == 0 {
        let seen = tx
            .query_opt("select 1 from arrears where assessment_id = $1", &[&assessment])
            .await?
            .is_some();
        if !seen {
            // Cleared before detected here, or arrears that never affected benefits
            // (system-caused): nothing blocks, nothing to restore.
            tracing::debug!(%assessment, "arrears-cleared without benefit-affecting arrears");
        }
    }
    Ok(())
}

/// Applies one event to the projection.
pub async fn apply(tx: &Transaction<'_>, msg: &Incoming) -> Result<Handled, HandlerError> {
    match (msg.service.as_str(), msg.name.as_str()) {
        ("enrollment", "person-enrolled") => {
            let ev: e::PersonEnrolled = msg.decode()?;
            let person = person_id(&ev.person_id)?;
            let from = month("effective_month", &ev.effective_month)?;
            upsert_person(
                tx,
                person,
                &ev.id_number,
                Some(&ev.name),
                Some(&ev.category),
                Some(ev.minimum_years_met),
                Some(ev.category == "flexible"),
            )
            .await?;
            MEDICAL.open(tx, person, &ev.insurance_types, from).await?;
        }
        ("enrollment", "staff-added") => {
            let ev: e::StaffAdded = msg.decode()?;
            let from = month("month", &ev.month)?;
            for p in &ev.persons {
                let person = person_id(&p.person_id)?;
                upsert_person(
                    tx,
                    person,
                    &p.id_number,
                    None,
                    Some("employee"),
                    None,
                    Some(false),
                )
                .await?;
                MEDICAL.open(tx, person, &ev.insurance_types, from).await?;
            }
        }
        ("enrollment", "transferred-in") => {
            // The contribution history moves with the person: not a first enrollment.
            let ev: e::TransferredIn = msg.decode()?;
            let person = person_id(&ev.person_id)?;
            let from = month("effective_month", &ev.effective_month)?;
            let category = ev.category.clone().unwrap_or_else(|| "flexible".into());
            upsert_person(
                tx,
                person,
                &ev.id_number,
                None,
                Some(&category),
                None,
                Some(false),
            )
            .await?;
            MEDICAL.open(tx, person, &ev.insurance_types, from).await?;
        }
        ("enrollment", "staff-removed") => {
            let ev: e::StaffRemoved = msg.decode()?;
            let from = month("month", &ev.month)?;
            for p in &ev.persons {
                MEDICAL
                    .end(tx, person_id(&p.person_id)?, &ev.insurance_types, from, "removed")
                    .await?;
            }
        }
        ("enrollment", "enrollment-suspended") | ("enrollment", "enrollment-terminated") => {
            let ev: e::EnrollmentStatusChanged = msg.decode()?;
            let reason = if msg.name == "enrollment-suspended" {
                "suspended"
            } else {
                "terminated"
            };
            MEDICAL
                .end(
                    tx,
                    person_id(&ev.person_id)?,
                    &ev.insurance_types,
                    month("month", &ev.month)?,
                    reason,
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
            MEDICAL
                .end(
                    tx,
                    person_id(&ev.person_id)?,
                    &ev.certificate.insurance_types,
                    next.first_day(),
                    "transferred-out",
                )
                .await?;
        }
        ("enrollment", "contact-changed") => {
            let ev: e::ContactChanged = msg.decode()?;
            tx.execute(
                "update persons set name = $2, updated_at = now() where person_id = $1",
                &[&person_id(&ev.person_id)?, &ev.name],
            )
            .await?;
        }
        ("card-issuance", _) => card_event(tx, msg).await?,
        ("collection", "contribution-settled") => contribution_settled(tx, msg).await?,
        ("collection", "arrears-detected") => arrears_detected(tx, msg).await?,
        ("collection", "arrears-cleared") => arrears_cleared(tx, msg).await?,
        _ => {}
    }
    Ok(Handled::default())
}

/// Every card-issuance event carries the card's state after it; the last one is kept (the
/// events of one person's card arrive in order: their ordering key is the ID number).
async fn card_event(tx: &Transaction<'_>, msg: &Incoming) -> Result<(), HandlerError> {
    let ev: contracts::card::events::CardEvent = msg.decode()?;
    tx.execute(
        "insert into card_status (id_number, application_id, state, in_production, step, action)
         values ($1, $2, $3, $4, $5, $6)
         on conflict (id_number) do update set application_id = excluded.application_id,
             state = excluded.state, in_production = excluded.in_production, step = excluded.step,
             action = excluded.action, updated_at = now()",
        &[
            &ev.id_number,
            &ev.application_id,
            &ev.state,
            &ev.in_production,
            &ev.step,
            &ev.action,
        ],
    )
    .await?;
    Ok(())
}

/// The card-issuance events benefits consumes (line `common`: the card serves both lines).
pub fn card_bindings() -> Vec<String> {
    vec![format!("{}.{}.*", Line::Common, contracts::card::SERVICE)]
}

/// The enrollment and collection events benefits consumes on `line`.
pub fn bindings(line: Line) -> Vec<String> {
    let enrollment = [
        "person-enrolled",
        "staff-added",
        "staff-removed",
        "enrollment-suspended",
        "enrollment-terminated",
        "transferred-out",
        "transferred-in",
        "contact-changed",
    ]
    .iter()
    .map(|name| format!("{line}.enrollment.{name}"));
    let collection = ["contribution-settled", "arrears-detected", "arrears-cleared"]
        .iter()
        .map(|name| format!("{line}.collection.{name}"));
    enrollment.chain(collection).collect()
}
