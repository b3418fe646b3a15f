//! Events, routing key `medical.benefits.<name>`, type `benefits.<name>.v1`.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

pub trait BenefitsEvent: Serialize {
    const NAME: &'static str;
    const VERSION: u32 = 1;
}

macro_rules! event {
    ($ty:ident, $name:literal) => {
        impl BenefitsEvent for $ty {
            const NAME: &'static str = $name;
        }
    };
}

/// A settlement was booked (2207 / 2304): the split as the institution was told it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct SettlementCompleted {
    pub setl_id: String,
    pub msgid: String,
    pub mdtrt_id: String,
    pub psn_no: String,
    pub insutype: String,
    pub fixmedins_code: String,
    pub setl_time: chrono::DateTime<chrono::FixedOffset>,
    pub medfee_sumamt: String,
    pub fund_pay_sumamt: String,
    pub hifp_pay: String,
    pub hifob_pay: String,
    pub hifmi_pay: String,
    pub acct_pay: String,
    pub acct_mulaid_pay: String,
    pub psn_cash_pay: String,
    /// Public finance's part under a policy override (inside `fund_pay_sumamt`).
    #[serde(default)]
    pub oth_pay: String,
    /// The rule that decided the split (`policy:<id>` or `override:<id>`).
    #[serde(default)]
    pub rule: String,
    /// The filings that changed the terms (`filing:<id>`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub filings: Vec<String>,
}
event!(SettlementCompleted, "settlement-completed");

/// A settlement was cancelled (2208 / 2305) or reversed (2601): fund, account and annual
/// totals are restored by exactly what it booked.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct SettlementCancelled {
    pub setl_id: String,
    pub msgid: String,
    pub mdtrt_id: String,
    pub psn_no: String,
    pub insutype: String,
    pub fixmedins_code: String,
    /// `cancel` (2208 / 2305) or `reversal` (2601).
    pub how: String,
    pub medfee_sumamt: String,
    pub fund_pay_sumamt: String,
    pub acct_pay: String,
    pub acct_mulaid_pay: String,
}
event!(SettlementCancelled, "settlement-cancelled");

/// A personal account paid for a settlement: the person's own (`settlement`) or a
/// relative's under family mutual aid (`mutual-aid`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct AccountDebited {
    /// The account debited.
    pub psn_no: String,
    /// The person whose care was paid (differs from `psn_no` for mutual aid).
    pub beneficiary_psn_no: String,
    pub setl_id: String,
    pub kind: String,
    pub amount: String,
    pub balc: String,
}
event!(AccountDebited, "account-debited");

/// Every step of a reimbursement claim (submitted, under review, documents needed, approved,
/// rejected, paid, payment failed): `amount` is the reimbursement (estimated until approved).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ClaimStatusChanged {
    pub claim_id: String,
    pub psn_no: String,
    pub insutype: String,
    /// `outpatient`, `inpatient` or `maternity`.
    pub kind: String,
    pub status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub medfee_sumamt: String,
    pub amount: String,
    pub at: chrono::DateTime<chrono::FixedOffset>,
}
event!(ClaimStatusChanged, "claim-status-changed");

/// An approved claim to be paid into the person's card financial account: the bank pays and
/// answers `record-claim-payment`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ClaimPaymentOrdered {
    pub claim_id: String,
    pub psn_no: String,
    /// Whose card account receives it.
    pub id_number: String,
    pub amount: String,
    /// The card as benefits knows it from card-issuance (`none` when it knows of no card).
    pub card_state: String,
}
event!(ClaimPaymentOrdered, "claim-payment-ordered");
