//! Events, routing key `<line>.collection.<name>`, type `collection.<name>.v1`.

use crate::line::{InsuranceType, Line};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

pub trait CollectionEvent: Serialize {
    const NAME: &'static str;
    const VERSION: u32 = 1;
}

macro_rules! event {
    ($ty:ident, $name:literal) => {
        impl CollectionEvent for $ty {
            const NAME: &'static str = $name;
        }
    };
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct PolicyChanged {
    pub region: String,
    pub insurance_type: InsuranceType,
    pub effective_from: String,
    pub version: i64,
    pub reason: String,
    pub line: Line,
}
event!(PolicyChanged, "policy-changed");

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct DeterminedBase {
    pub insurance_type: InsuranceType,
    pub base: String,
    pub source: crate::collection::commands::BaseSource,
    pub clamp: crate::collection::commands::BaseClamp,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct BaseDetermined {
    pub person_id: String,
    pub id_number: String,
    pub year: i32,
    pub bases: Vec<DeterminedBase>,
    pub line: Line,
}
event!(BaseDetermined, "base-determined");

/// One line item of an assessment, summed over the payer's persons for one insurance type
/// and share (employer / employee / person).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct AssessedLine {
    pub insurance_type: InsuranceType,
    /// `employer`, `employee` (withheld by the employer) or `person`.
    pub share: String,
    pub persons: i64,
    pub amount: String,
}

/// Per payer per month per line. A later run for the same month that changes the amount due
/// (late enrollment, wage change) publishes an `adjustment` with the delta lines (补差).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ContributionAssessed {
    pub assessment_id: String,
    pub run_id: String,
    /// `initial` or `adjustment`.
    pub kind: String,
    /// `employer` or `person` (flexible workers, retirees, residents pay alone).
    pub payer_kind: String,
    /// Credit code or person id.
    pub payer_id: String,
    pub month: String,
    pub lines: Vec<AssessedLine>,
    /// What this run adds to the amount due (may be negative for an adjustment).
    pub amount: String,
    /// The amount due for the month after this run.
    pub total_due: String,
    pub deadline: chrono::NaiveDate,
    pub line: Line,
    /// Collected by bank batch debit (a flexible worker with a signed agreement): the
    /// deadline is the debit day, by which the funds must be on the card.
    #[serde(default)]
    pub batch_debit: bool,
}
event!(ContributionAssessed, "contribution-assessed");

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct PaymentRecorded {
    pub assessment_id: String,
    pub payer_kind: String,
    pub payer_id: String,
    pub month: String,
    pub amount: String,
    pub paid_at: chrono::DateTime<chrono::FixedOffset>,
    pub tax_receipt_no: String,
    /// `tax` or `bank-debit`.
    pub channel: String,
    pub paid_total: String,
    pub outstanding: String,
    pub line: Line,
    /// Whether the payment was made by the deadline, judged by `paid_at` in China Standard
    /// Time (not by when the money reached the fund). Absent in older messages.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_time: Option<bool>,
}
event!(PaymentRecorded, "payment-recorded");

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ContributionSettled {
    pub assessment_id: String,
    pub payer_kind: String,
    pub payer_id: String,
    pub month: String,
    pub total: String,
    pub settled_at: chrono::DateTime<chrono::FixedOffset>,
    pub line: Line,
    /// What the settled month holds per person, insurance type and share (summed over the
    /// assessment's runs): the benefits service derives paid months and personal-account
    /// credits from it. Empty in older messages.
    #[serde(default)]
    pub items: Vec<SettledItem>,
}
event!(ContributionSettled, "contribution-settled");

/// One person's part of a settled month, for one insurance type and share.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct SettledItem {
    pub person_id: String,
    pub insurance_type: InsuranceType,
    /// `employer`, `employee` (withheld by the employer) or `person`.
    pub share: String,
    pub amount: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct OverpaymentDetected {
    pub assessment_id: String,
    pub payer_kind: String,
    pub payer_id: String,
    pub month: String,
    pub excess: String,
    pub tax_receipt_no: String,
    pub line: Line,
}
event!(OverpaymentDetected, "overpayment-detected");

/// Unpaid after the deadline: the benefits service suspends coverage on this.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ArrearsDetected {
    pub assessment_id: String,
    pub payer_kind: String,
    pub payer_id: String,
    pub month: String,
    pub outstanding: String,
    pub deadline: chrono::NaiveDate,
    /// Person ids covered by this assessment (for an employer: its staff that month).
    pub persons: Vec<String>,
    pub line: Line,
    /// From when benefits are affected: the 1st of the month after the missed deadline, or
    /// the policy's start date if later (Wuhan: 2022-04-01). Absent when the arrears do not
    /// affect benefits (system-caused) and in older messages.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub benefits_affected_from: Option<chrono::NaiveDate>,
    /// The system caused the delay ("除系统影响外": the deadline fell in a freeze of the
    /// line): the arrears are recorded but never affect benefits.
    #[serde(default)]
    pub system_caused: bool,
}
event!(ArrearsDetected, "arrears-detected");

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ArrearsCleared {
    pub assessment_id: String,
    pub payer_kind: String,
    pub payer_id: String,
    pub month: String,
    pub persons: Vec<String>,
    pub cleared_at: chrono::DateTime<chrono::FixedOffset>,
    pub line: Line,
    /// The payment that cleared the arrears was made by the deadline and only reached the
    /// fund late: the month was never in arrears (benefits restored from the start).
    #[serde(default)]
    pub paid_on_time: bool,
}
event!(ArrearsCleared, "arrears-cleared");

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct DebitItem {
    pub assessment_id: String,
    pub person_id: String,
    pub amount: String,
}

/// The outgoing batch to the bank, on the debit day.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct BatchDebitRequested {
    pub batch_id: String,
    pub month: String,
    pub item_count: i64,
    pub total: String,
    pub items: Vec<DebitItem>,
    pub line: Line,
}
event!(BatchDebitRequested, "batch-debit-requested");

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct DebitFailed {
    pub batch_id: String,
    pub assessment_id: String,
    pub person_id: String,
    pub amount: String,
    pub reason: String,
    pub line: Line,
}
event!(DebitFailed, "debit-failed");
