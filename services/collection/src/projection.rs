//! Collection's own projection of who is covered by what, month by month, built from
//! enrollment events (collection never reads enrollment's tables).
//!
//! Coverage is a set of periods per person and insurance type. An event that logically
//! follows one not yet seen (a removal before the enrollment) is a transient failure: it goes
//! through the delayed retry queue until its predecessor has arrived, and is parked only if it
//! never does.

use contracts::enrollment::events as e;
use contracts::ids::YearMonth;
use contracts::{InsuranceType, Line};
use deadpool_postgres::Transaction;
use messaging::{Handled, HandlerError, Incoming};
use rust_decimal::Decimal;
use uuid::Uuid;

fn permanent(what: String) -> HandlerError {
    HandlerError::Permanent(anyhow::anyhow!(what))
}

fn month(field: &str, s: &str) -> Result<chrono::NaiveDate, HandlerError> {
    YearMonth::parse(s)
        .map(|m| m.first_day())
        .map_err(|err| HandlerError::Permanent(anyhow::anyhow!("event field {field}: {err}")))
}

fn person_id(s: &str) -> Result<Uuid, HandlerError> {
    s.parse()
        .map_err(|_| HandlerError::Permanent(anyhow::anyhow!("event person_id '{s}' is not a UUID")))
}

fn not_yet(what: String) -> HandlerError {
    HandlerError::Transient(anyhow::anyhow!("{what}; waiting for the event it follows"))
}

/// `minimum_years_met`: a retiree's fact from `person-enrolled`; `None` keeps what is known.
async fn upsert_person(
    tx: &Transaction<'_>,
    person: Uuid,
    id_number: &str,
    category: Option<&str>,
    minimum_years_met: Option<bool>,
) -> Result<(), HandlerError> {
    tx.execute(
        "insert into persons (person_id, id_number, category, minimum_years_met)
         values ($1, $2, coalesce($3, 'employee'), coalesce($4, true))
         on conflict (person_id) do update set category = coalesce($3, persons.category),
             minimum_years_met = coalesce($4, persons.minimum_years_met), updated_at = now()",
        &[&person, &id_number, &category, &minimum_years_met],
    )
    .await?;
    Ok(())
}

/// Ends the open period at the month before `from` (periods starting at or after `from` are
/// replaced); returns whether there was one.
async fn close(
    tx: &Transaction<'_>,
    person: Uuid,
    t: InsuranceType,
    from: chrono::NaiveDate,
) -> Result<bool, HandlerError> {
    let replaced = tx
        .execute(
            "delete from coverage where person_id = $1 and insurance_type = $2 and to_month is null and from_month >= $3",
            &[&person, &t.as_str(), &from],
        )
        .await?;
    let ended = tx
        .execute(
            "update coverage set to_month = ($3::date - interval '1 month')::date
             where person_id = $1 and insurance_type = $2 and to_month is null and from_month < $3",
            &[&person, &t.as_str(), &from],
        )
        .await?;
    Ok(replaced + ended > 0)
}

async fn open(
    tx: &Transaction<'_>,
    person: Uuid,
    t: InsuranceType,
    category: &str,
    employer: Option<&str>,
    from: chrono::NaiveDate,
) -> Result<(), HandlerError> {
    close(tx, person, t, from).await?;
    tx.execute(
        "insert into coverage (person_id, insurance_type, line, category, employer_credit_code, from_month)
         values ($1, $2, $3, $4, $5, $6)",
        &[
            &person,
            &t.as_str(),
            &t.line().as_str(),
            &category,
            &employer,
            &from,
        ],
    )
    .await?;
    Ok(())
}

async fn known(tx: &Transaction<'_>, person: Uuid) -> Result<bool, HandlerError> {
    Ok(tx
        .query_opt("select 1 from persons where person_id = $1", &[&person])
        .await?
        .is_some())
}

/// Applies one enrollment event to the projection.
pub async fn apply(tx: &Transaction<'_>, msg: &Incoming) -> Result<Handled, HandlerError> {
    match msg.name.as_str() {
        "person-enrolled" => {
            let ev: e::PersonEnrolled = msg.decode()?;
            let person = person_id(&ev.person_id)?;
            let from = month("effective_month", &ev.effective_month)?;
            upsert_person(
                tx,
                person,
                &ev.id_number,
                Some(&ev.category),
                Some(ev.minimum_years_met),
            )
            .await?;
            for t in ev.insurance_types {
                open(
                    tx,
                    person,
                    t,
                    &ev.category,
                    ev.employer_credit_code.as_deref(),
                    from,
                )
                .await?;
            }
        }
        "staff-added" => {
            let ev: e::StaffAdded = msg.decode()?;
            let from = month("month", &ev.month)?;
            for p in &ev.persons {
                let person = person_id(&p.person_id)?;
                upsert_person(tx, person, &p.id_number, Some("employee"), None).await?;
                for t in &ev.insurance_types {
                    open(tx, person, *t, "employee", Some(&ev.employer_credit_code), from).await?;
                }
            }
        }
        "transferred-in" => {
            let ev: e::TransferredIn = msg.decode()?;
            let person = person_id(&ev.person_id)?;
            let from = month("effective_month", &ev.effective_month)?;
            let category = ev.category.clone().unwrap_or_else(|| "flexible".into());
            upsert_person(tx, person, &ev.id_number, Some(&category), None).await?;
            let certificate: Uuid = ev
                .certificate_id
                .parse()
                .map_err(|_| permanent(format!("certificate_id '{}' is not a UUID", ev.certificate_id)))?;
            let balance = ev
                .pension_account_balance
                .as_deref()
                .map(|b| b.parse::<Decimal>())
                .transpose()
                .map_err(|e| permanent(format!("pension_account_balance: {e}")))?;
            let types: Vec<&str> = ev.insurance_types.iter().map(|t| t.as_str()).collect();
            let months = ev.contribution_months.map(|m| m as i32);
            tx.execute(
                "insert into carried_contributions (certificate_id, person_id, line, insurance_types, from_region,
                     effective_month, months, pension_account_balance)
                 values ($1, $2, $3, $4, $5, $6, $7, $8) on conflict (certificate_id) do nothing",
                &[
                    &certificate,
                    &person,
                    &ev.line.as_str(),
                    &types,
                    &ev.from_region,
                    &from,
                    &months,
                    &balance,
                ],
            )
            .await?;
            for t in ev.insurance_types {
                open(tx, person, t, &category, ev.employer_credit_code.as_deref(), from).await?;
            }
        }
        "staff-removed" => {
            let ev: e::StaffRemoved = msg.decode()?;
            let from = month("month", &ev.month)?;
            for p in &ev.persons {
                end(tx, person_id(&p.person_id)?, &ev.insurance_types, from).await?;
            }
        }
        // Both carry the same body (newtype events serialise as their content).
        "enrollment-suspended" | "enrollment-terminated" => {
            let ev: e::EnrollmentStatusChanged = msg.decode()?;
            end(
                tx,
                person_id(&ev.person_id)?,
                &ev.insurance_types,
                month("month", &ev.month)?,
            )
            .await?;
        }
        "transferred-out" => {
            let ev: e::TransferredOut = msg.decode()?;
            // Covered through the month of the transfer; not from the next one.
            let issued = YearMonth::new(ev.certificate.issued_at.year(), ev.certificate.issued_at.month())
                .ok()
                .and_then(YearMonth::next)
                .ok_or_else(|| {
                    HandlerError::Permanent(anyhow::anyhow!("certificate issued_at out of range"))
                })?;
            end(
                tx,
                person_id(&ev.person_id)?,
                &ev.certificate.insurance_types,
                issued.first_day(),
            )
            .await?;
        }
        // Nothing to project: contact changes, employer registrations.
        _ => {}
    }
    Ok(Handled::default())
}

use chrono::Datelike;

/// Ends coverage from `from` on; the person must be known (else the enrollment is still on
/// its way).
async fn end(
    tx: &Transaction<'_>,
    person: Uuid,
    types: &[InsuranceType],
    from: chrono::NaiveDate,
) -> Result<(), HandlerError> {
    if !known(tx, person).await? {
        return Err(not_yet(format!("person {person} is not yet known to collection")));
    }
    for t in types {
        close(tx, person, *t, from).await?;
    }
    Ok(())
}

/// The enrollment events collection consumes on `line`.
pub fn bindings(line: Line) -> Vec<String> {
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
    .collect()
}
