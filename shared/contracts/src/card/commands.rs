//! Commands, routing key `common.card-issuance.<name>`, and their `ok` result: every command
//! answers with the person-visible status of the card after it ([`CardStatusView`]).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// `apply-card`: information collected (信息采集) for a first card. The person must be known
/// from enrollment's events with an active enrollment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ApplyCard {
    pub id_number: String,
    /// The name printed on the card; defaults to the name enrollment knows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The cooperating bank (合作银行) that opens the financial account, e.g. `ICBC`.
    pub bank: String,
}

/// `review-photo`: the photo collected and reviewed (照片采集/审核). Approval sends the bank
/// account request; a rejection fails the application with the reason.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ReviewPhoto {
    pub id_number: String,
    pub approved: bool,
    /// Required when not approved (背景不符, 未露耳, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// `record-bank-account`: the bank's answer to `bank-account-requested` (channel `bank`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RecordBankAccount {
    pub id_number: String,
    pub application_id: String,
    pub opened: bool,
    /// The card's financial account (金融账户), when opened.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub financial_account: Option<String>,
    /// Why it failed, when not opened.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// `record-production`: the card factory's answer to `card-production-requested`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RecordProduction {
    pub id_number: String,
    pub application_id: String,
    pub produced: bool,
    /// The social security card number (社会保障卡卡号), when produced.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub card_number: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// `record-shipment`: the produced card handed to logistics (物流).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RecordShipment {
    pub id_number: String,
    pub application_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tracking_number: Option<String>,
}

/// `record-arrival`: the card arrived at the branch where it is picked up (到达网点).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RecordArrival {
    pub id_number: String,
    pub application_id: String,
    /// The branch's name, shown to the person.
    pub branch: String,
}

/// `report-data-error`: the data on the card face is wrong (卡面信息有误). It is corrected
/// through the agency, or through the hospital and then the bureau.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ReportDataError {
    pub id_number: String,
    /// What is wrong (姓名有误, ...).
    pub reason: String,
    /// `agency` or `hospital`.
    pub correction_via: String,
}

/// `roll-back` (回退): the agency rolls a failed application back to the step it can be
/// redone from; the service knows that step from the failure.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RollBack {
    pub id_number: String,
    /// A corrected name for the card face (after a data error).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub corrected_name: Option<String>,
}

/// Who is at the counter for the person.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Representative {
    /// `self`, `agent` (代领/代办) or `guardian` (监护人, for a minor).
    pub by: String,
    /// The agent's or guardian's ID number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id_number: Option<String>,
}

/// `pick-up-card` (领卡). Documents shown: `id_card` (the holder's), `agent_id_card`,
/// `household_register` (户口簿), `hospital_form` (instant issuance only).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PickUpCard {
    pub id_number: String,
    pub representative: Representative,
    pub documents: Vec<String>,
    /// Activate the social-security function at once (at the bank, on pick-up).
    #[serde(default)]
    pub activate: bool,
}

/// `activate-card` (激活) after a pick-up without activation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ActivateCard {
    pub id_number: String,
    /// `bank`, `agency` or `hospital` (the hospital's insurance office, 医院医保办).
    pub place: String,
    pub representative: Representative,
    pub documents: Vec<String>,
}

/// `issue-instantly` (即时制卡) at a bank branch, for a patient who needs the card now: the
/// branch opens the account and prints the card on the spot; no shipping. Never by an agent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct IssueInstantly {
    pub id_number: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub bank: String,
    pub branch: String,
    pub financial_account: String,
    pub card_number: String,
    pub representative: Representative,
    /// `id_card`, `household_register` and `hospital_form` are all required.
    pub documents: Vec<String>,
    #[serde(default)]
    pub activate: bool,
}

/// `report-loss` (挂失): `temporary` (临时挂失, e.g. by phone) or `formal` (正式挂失).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ReportLoss {
    pub id_number: String,
    pub kind: String,
}

/// `lift-loss` (解挂): the card is found again; only a temporary loss report is lifted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LiftLoss {
    pub id_number: String,
}

/// `replace-card` (补卡) after a formal loss report: a new card on the same account.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ReplaceCard {
    pub id_number: String,
}

/// `renew-card` (换卡): `damage` or `data-change`. The old card is withdrawn and a new one
/// is made on the same financial account.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RenewCard {
    pub id_number: String,
    pub reason: String,
    /// The new name for the card face, for `data-change`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// `get-card-status`: what the person sees (query by ID number).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GetCardStatus {
    pub id_number: String,
}

/// One step of an application, when it happened.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct StepView {
    pub step: String,
    pub at: chrono::DateTime<chrono::FixedOffset>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// The status a person sees, and every command's result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct CardStatusView {
    pub id_number: String,
    pub application_id: String,
    /// `first`, `instant`, `replacement` or `renewal`.
    pub kind: String,
    /// The last step reached (`info-collected` … `activated`).
    pub step: String,
    /// `in-progress`, `action-pending`, `failed`, `picked-up-not-activated`, `activated`,
    /// `lost-temporarily`, `lost` or `cancelled`.
    pub state: String,
    /// `orange` (in progress or action pending), `red` (failed, action needed), `green`
    /// (activated), `grey` (cancelled).
    pub colour: String,
    /// The status in words (Chinese), as shown to the person.
    pub text: String,
    /// What to do next (Chinese); empty when nothing.
    pub action: String,
    /// The date of the last step (China Standard Time).
    pub last_step_on: chrono::NaiveDate,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub bank: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub financial_account: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub card_number: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub branch: Option<String>,
    pub steps: Vec<StepView>,
}
