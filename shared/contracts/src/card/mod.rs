//! Card-issuance service contract (社会保障卡, DOMAIN.md §6): commands sent on the `common`
//! line (`common.card-issuance.<command>`), their results, and the events of every step of
//! an application, which benefits and notification read.
//!
//! Command fields are plain strings on purpose, as in the other services: a bad ID number
//! comes back as `INVALID_ID_NUMBER` on its field, not as a decoding failure.

pub mod commands;
pub mod events;

use crate::ordering::KeySource;
use crate::schema::{Body, Registry};

pub const SERVICE: &str = "card-issuance";

/// The commands, in the order the README documents them.
pub const COMMANDS: &[&str] = &[
    "apply-card",
    "review-photo",
    "record-bank-account",
    "record-production",
    "record-shipment",
    "record-arrival",
    "report-data-error",
    "roll-back",
    "pick-up-card",
    "activate-card",
    "issue-instantly",
    "report-loss",
    "lift-loss",
    "replace-card",
    "renew-card",
    "get-card-status",
];

/// Every command and event of this service is about one person's card: the key is the
/// person's ID number, so the steps of one application are handled in arrival order. The
/// status query changes nothing and has no key.
pub fn ordering_source(name: &str) -> Option<KeySource> {
    let person = KeySource::Field {
        aggregate: "person",
        field: "id_number",
    };
    if name == "get-card-status" {
        return Some(KeySource::None);
    }
    (COMMANDS.contains(&name) || events::NAMES.contains(&name)).then_some(person)
}

/// The card schemas, for `crate::schema::all`.
pub fn schema_entries(out: &mut impl Registry) {
    use commands as c;
    use events as e;
    fn entry<T: Body>(out: &mut impl Registry, name: &str) {
        out.add::<T>(format!("{SERVICE}.{name}.json"));
    }
    entry::<c::ApplyCard>(out, "apply-card.command");
    entry::<c::ReviewPhoto>(out, "review-photo.command");
    entry::<c::RecordBankAccount>(out, "record-bank-account.command");
    entry::<c::RecordProduction>(out, "record-production.command");
    entry::<c::RecordShipment>(out, "record-shipment.command");
    entry::<c::RecordArrival>(out, "record-arrival.command");
    entry::<c::ReportDataError>(out, "report-data-error.command");
    entry::<c::RollBack>(out, "roll-back.command");
    entry::<c::PickUpCard>(out, "pick-up-card.command");
    entry::<c::ActivateCard>(out, "activate-card.command");
    entry::<c::IssueInstantly>(out, "issue-instantly.command");
    entry::<c::ReportLoss>(out, "report-loss.command");
    entry::<c::LiftLoss>(out, "lift-loss.command");
    entry::<c::ReplaceCard>(out, "replace-card.command");
    entry::<c::RenewCard>(out, "renew-card.command");
    entry::<c::GetCardStatus>(out, "get-card-status.command");
    for name in COMMANDS {
        entry::<c::CardStatusView>(out, &format!("{name}.result"));
    }
    for name in e::NAMES {
        entry::<e::CardEvent>(out, &format!("{name}.v1"));
    }
}
