//! Events, routing key `common.card-issuance.<name>`, type `card-issuance.<name>.v1`.
//!
//! Every step of an application is one event, all with the same body ([`CardEvent`]): the
//! person's ID number, the card's state as benefits needs it (`activated` / in progress /
//! `failed`), the insurance types and lines the person is enrolled in, and the card's
//! number, bank and financial account once known. Two of them are requests to the bank:
//! `bank-account-requested` and `card-production-requested`.

use crate::line::{InsuranceType, Line};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

pub const NAMES: &[&str] = &[
    "card-applied",
    "photo-approved",
    "photo-rejected",
    "bank-account-requested",
    "bank-account-opened",
    "bank-account-failed",
    "card-production-requested",
    "card-produced",
    "card-production-failed",
    "card-shipped",
    "card-arrived",
    "card-data-error-reported",
    "application-rolled-back",
    "card-picked-up",
    "card-activated",
    "card-loss-reported",
    "card-loss-lifted",
    "card-replaced",
    "card-renewed",
    "card-cancelled",
];

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct CardEvent {
    pub application_id: String,
    pub id_number: String,
    /// `first`, `instant`, `replacement` or `renewal`.
    pub kind: String,
    /// The step this event records (`info-collected`, `photo-approved`, ...).
    pub step: String,
    /// The card's state after it: `in-progress`, `action-pending`, `failed`,
    /// `picked-up-not-activated`, `activated`, `lost-temporarily`, `lost`, `cancelled`.
    pub state: String,
    /// Whether the bank account or the card is still being made (Baotou: the hospital
    /// admits by the old procedure meanwhile).
    pub in_production: bool,
    pub insurance_types: Vec<InsuranceType>,
    /// The lines of those insurance types (the card serves both).
    pub lines: Vec<Line>,
    /// The name printed on the card.
    pub name: String,
    pub bank: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub financial_account: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub card_number: Option<String>,
    /// Why it failed or what was reported.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// What the person is to do (Chinese).
    #[serde(default)]
    pub action: String,
    /// How many times this application asked the bank for the current step (1, then 2 after
    /// a rollback ...): lets the bank tell a repeat from a redelivery.
    #[serde(default)]
    pub attempt: i32,
    pub occurred_at: chrono::DateTime<chrono::FixedOffset>,
}
