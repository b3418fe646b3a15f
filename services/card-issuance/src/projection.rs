//! Who may apply for a card: persons and their insurance types, kept from enrollment's events
//! (never read from enrollment's tables). A death or emigration cancels the person's card.

use crate::store;
use contracts::enrollment::events as e;
use contracts::{InsuranceType, Line};
use deadpool_postgres::Transaction;
use messaging::{Handled, HandlerError, Incoming};

pub fn bindings(line: Line) -> Vec<String> {
    [
        "person-enrolled",
        "staff-added",
        "staff-removed",
        "enrollment-suspended",
        "enrollment-terminated",
        "contact-changed",
        "transferred-out",
        "transferred-in",
    ]
    .iter()
    .map(|name| format!("{line}.enrollment.{name}"))
    .collect()
}

/// What an event means for the card, beyond the projection.
pub enum Effect {
    None,
    /// Death or emigration: cancel the person's card.
    Cancel {
        id_number: String,
        reason: String,
    },
}

async fn set_types(
    tx: &Transaction<'_>,
    id_number: &str,
    types: &[InsuranceType],
    status: &str,
    reason: Option<&str>,
) -> Result<(), HandlerError> {
    for t in types {
        store::set_enrollment(tx, id_number, *t, status, reason).await?;
    }
    Ok(())
}

pub async fn apply(tx: &Transaction<'_>, msg: &Incoming) -> Result<Effect, HandlerError> {
    if msg.service != "enrollment" {
        return Ok(Effect::None);
    }
    match msg.name.as_str() {
        "person-enrolled" => {
            let ev: e::PersonEnrolled = msg.decode()?;
            store::upsert_person(
                tx,
                &ev.id_number,
                &ev.person_id,
                Some(&ev.name),
                Some(&ev.category),
            )
            .await?;
            set_types(tx, &ev.id_number, &ev.insurance_types, "active", None).await?;
        }
        "staff-added" => {
            let ev: e::StaffAdded = msg.decode()?;
            for p in &ev.persons {
                store::upsert_person(tx, &p.id_number, &p.person_id, None, Some("employee")).await?;
                set_types(tx, &p.id_number, &ev.insurance_types, "active", None).await?;
            }
        }
        "staff-removed" => {
            let ev: e::StaffRemoved = msg.decode()?;
            for p in &ev.persons {
                store::upsert_person(tx, &p.id_number, &p.person_id, None, None).await?;
                set_types(
                    tx,
                    &p.id_number,
                    &ev.insurance_types,
                    "suspended",
                    Some("staff removed"),
                )
                .await?;
            }
        }
        "enrollment-suspended" => {
            let ev: e::EnrollmentSuspended = msg.decode()?;
            let ev = ev.0;
            store::upsert_person(tx, &ev.id_number, &ev.person_id, None, None).await?;
            set_types(
                tx,
                &ev.id_number,
                &ev.insurance_types,
                "suspended",
                Some(&ev.reason),
            )
            .await?;
        }
        "enrollment-terminated" => {
            let ev: e::EnrollmentTerminated = msg.decode()?;
            let ev = ev.0;
            store::upsert_person(tx, &ev.id_number, &ev.person_id, None, None).await?;
            set_types(
                tx,
                &ev.id_number,
                &ev.insurance_types,
                "terminated",
                Some(&ev.reason),
            )
            .await?;
            if crate::domain::cancels_card(&ev.reason) {
                return Ok(Effect::Cancel {
                    id_number: ev.id_number,
                    reason: ev.reason,
                });
            }
        }
        "contact-changed" => {
            let ev: e::ContactChanged = msg.decode()?;
            store::upsert_person(tx, &ev.id_number, &ev.person_id, Some(&ev.name), None).await?;
        }
        "transferred-out" => {
            let ev: e::TransferredOut = msg.decode()?;
            let c = &ev.certificate;
            store::upsert_person(tx, &c.id_number, &ev.person_id, Some(&c.name), None).await?;
            set_types(
                tx,
                &c.id_number,
                &c.insurance_types,
                "terminated",
                Some("transferred out"),
            )
            .await?;
        }
        "transferred-in" => {
            let ev: e::TransferredIn = msg.decode()?;
            store::upsert_person(tx, &ev.id_number, &ev.person_id, None, ev.category.as_deref()).await?;
            set_types(tx, &ev.id_number, &ev.insurance_types, "active", None).await?;
        }
        _ => {}
    }
    Ok(Effect::None)
}

/// Nothing to publish for a projection-only event.
pub fn handled() -> Handled {
    Handled::default()
}
