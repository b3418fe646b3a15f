//! Social-line benefits (human-resources bureau, issue 10 §5): retirement approval 退休审核
//! with the pension computed from policy data, unemployment and periodic work-injury benefit
//! awards, and the monthly payment run to the bank with control totals.
//!
//! Commands: routing key `social.benefits.<name>`; events: `social.benefits.<name>`, type
//! `benefits.<name>.v1`. Ordering key: the ID number for applications and awards, the
//! batch id for a payment run and the bank's results. Money is a decimal string with two
//! places (yuan, rounded half up to the fen); months are `YYYY-MM`.

use crate::benefits::events::BenefitsEvent;
use crate::schema::{Body, Registry};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

macro_rules! event {
    ($ty:ident, $name:literal) => {
        impl BenefitsEvent for $ty {
            const NAME: &'static str = $name;
        }
    };
}

/// `apply-retirement` (退休申请): a person asks to retire; the application waits for review.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ApplyRetirement {
    pub id_number: String,
    /// `worker` 工人 or `cadre` 干部: decides a woman's retirement age (50 / 55); a man's is
    /// the same for both.
    pub position: String,
    /// When the agency received the application (ISO 8601 with offset), for one taken in on
    /// paper and entered later; the message's arrival when absent. Not after the arrival.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub applied_at: Option<String>,
}

/// `review-retirement` (退休审核): `approve` judges the application on age and contribution
/// years from policy data (approved with the pension, or rejected with the specific reason);
/// `reject` refuses it for a reason the reviewer gives (documents, identity).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ReviewRetirement {
    pub application_id: String,
    /// `approve` or `reject`.
    pub action: String,
    pub reviewer: String,
    /// Required for `reject`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// `retirement-status`: an application as it stands.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RetirementQuery {
    pub application_id: String,
}

/// How the monthly pension was computed (all from policy data and the projection).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct PensionFigures {
    /// The average monthly wage the basic pension is computed from (计发基数).
    pub average_wage: String,
    /// The person's average contribution index (平均缴费指数).
    pub contribution_index: String,
    /// Contribution months counted (here and carried over by transfer).
    pub contribution_months: i32,
    /// 基础养老金 = average_wage × (1 + index) / 2 × months / 12 × 1 %.
    pub basic_pension: String,
    /// The pension personal account's balance at retirement.
    pub account_balance: String,
    /// 计发月数 for the retirement age.
    pub divisor_months: i32,
    /// 个人账户养老金 = account_balance / divisor_months.
    pub account_pension: String,
    /// basic_pension + account_pension, each rounded half up to the fen.
    pub monthly_pension: String,
    /// The policy version the figures come from.
    pub policy_id: i64,
}

/// An application as it stands (the `ok` result of every retirement command).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct RetirementResult {
    pub application_id: String,
    pub psn_no: String,
    /// Masked (`4201**********123X`).
    pub certno: String,
    /// `applied`, `approved` or `rejected`.
    pub status: String,
    /// `male` or `female`, from the ID number's gender digit.
    pub gender: String,
    pub position: String,
    pub retirement_age: i32,
    /// The day the person reaches the retirement age (from the ID number's birth date).
    pub reaches_age_on: chrono::NaiveDate,
    pub applied_at: chrono::DateTime<chrono::FixedOffset>,
    /// Contribution months known to benefits when last judged.
    pub contribution_months: i32,
    /// The policy minimum (180: 15 years).
    pub minimum_months: i32,
    /// Rejected: `under-age`, `insufficient-contribution-years`, `not-enrolled` or
    /// `reviewer` (refused by the reviewer).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason_code: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pension: Option<PensionFigures>,
    /// Approved: the first month paid (`YYYY-MM`), and the rule that decided it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from_month: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_rule: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub award_id: Option<String>,
}

/// `grant-benefit`: an unemployment benefit 失业保险金 or a periodic work-injury benefit
/// 工伤定期待遇 as decided (the amount is the decision's; the months are checked against the
/// person's insurance and, for unemployment, the entitlement of their contribution years).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GrantBenefit {
    pub id_number: String,
    /// `unemployment` or `work-injury`.
    pub kind: String,
    pub monthly_amount: String,
    pub from_month: String,
    /// Required for unemployment; absent for a work-injury benefit paid until changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to_month: Option<String>,
    /// The decision's reference (认定书 / 核定表 number).
    pub decision_ref: String,
    pub reviewer: String,
}

/// An award (pension, unemployment, work injury): what the monthly run pays.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct AwardResult {
    pub award_id: String,
    pub psn_no: String,
    pub certno: String,
    /// `pension`, `unemployment` or `work-injury`.
    pub kind: String,
    pub monthly_amount: String,
    pub from_month: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to_month: Option<String>,
    /// Unemployment: the months the contribution years entitle to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entitled_months: Option<i32>,
}

/// `run-benefit-payments`: the month's payment run of one kind: one batch to the bank with
/// every month owed up to `month` (back months included). A repeat for the same month and
/// kind gives the same batch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RunBenefitPayments {
    pub month: String,
    /// `pension`, `unemployment` or `work-injury`.
    pub kind: String,
}

/// One payment of a batch: an award's months owed, in one transfer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct PaymentItem {
    pub item_id: String,
    pub award_id: String,
    pub psn_no: String,
    /// Whose social security card's financial account receives it.
    pub id_number: String,
    /// The months paid (`YYYY-MM`), back months first.
    pub months: Vec<String>,
    pub amount: String,
    /// The card as benefits knows it from card issuance (`none` when it knows of no card).
    pub card_state: String,
    /// `ordered`, `paid` or `failed`.
    pub status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// A payment batch as it stands.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct BatchResult {
    pub batch_id: String,
    pub month: String,
    pub kind: String,
    /// `ordered` (with the bank), `reported` (the bank's results recorded), or `empty`.
    pub status: String,
    /// Control totals: items and their sum.
    pub item_count: i64,
    pub total: String,
    pub paid_count: i64,
    pub paid_total: String,
    pub failed_count: i64,
    pub failed_total: String,
    pub items: Vec<PaymentItem>,
}

/// `batch-status`: a batch as it stands.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BatchQuery {
    pub batch_id: String,
}

/// The bank's result for one item.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ItemResult {
    pub item_id: String,
    /// `paid` or `failed`.
    pub outcome: String,
    /// Must equal the item's amount.
    pub amount: String,
    pub bank_ref: String,
    /// Why it failed (required when `failed`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// `record-benefit-payments`: the bank's results for a batch, with the control totals it
/// received; both must match the batch, and every item is answered exactly once.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RecordBenefitPayments {
    pub batch_id: String,
    pub item_count: i64,
    pub total: String,
    pub results: Vec<ItemResult>,
}

/// A retirement application was taken in.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct RetirementApplied {
    pub application_id: String,
    pub psn_no: String,
    pub id_number: String,
    pub position: String,
    pub applied_at: chrono::DateTime<chrono::FixedOffset>,
}
event!(RetirementApplied, "retirement-applied");

/// A retirement was approved: the pension and from when it is paid.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct RetirementApproved {
    pub application_id: String,
    pub award_id: String,
    pub psn_no: String,
    pub id_number: String,
    pub reaches_age_on: chrono::NaiveDate,
    pub from_month: String,
    pub start_rule: String,
    pub pension: PensionFigures,
    pub reviewer: String,
    pub at: chrono::DateTime<chrono::FixedOffset>,
}
event!(RetirementApproved, "retirement-approved");

/// A retirement was rejected, with the specific reason.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct RetirementRejected {
    pub application_id: String,
    pub psn_no: String,
    pub id_number: String,
    pub reason_code: String,
    pub reason: String,
    pub reviewer: String,
    pub at: chrono::DateTime<chrono::FixedOffset>,
}
event!(RetirementRejected, "retirement-rejected");

/// A benefit was awarded (a pension at approval, an unemployment or work-injury benefit).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct BenefitAwarded {
    pub award_id: String,
    pub psn_no: String,
    pub id_number: String,
    pub kind: String,
    pub monthly_amount: String,
    pub from_month: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to_month: Option<String>,
    /// The application or decision it comes from.
    pub source_ref: String,
}
event!(BenefitAwarded, "benefit-awarded");

/// A payment batch for the bank (合作银行): the bank pays each item into the person's card
/// financial account and answers `record-benefit-payments` with the control totals.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct BenefitPaymentBatchOrdered {
    pub batch_id: String,
    pub month: String,
    pub kind: String,
    pub item_count: i64,
    pub total: String,
    pub items: Vec<PaymentItem>,
}
event!(BenefitPaymentBatchOrdered, "benefit-payment-batch-ordered");

/// The bank's results of a batch were recorded.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct BenefitPaymentsRecorded {
    pub batch_id: String,
    pub month: String,
    pub kind: String,
    pub paid_count: i64,
    pub paid_total: String,
    pub failed_count: i64,
    pub failed_total: String,
}
event!(BenefitPaymentsRecorded, "benefit-payments-recorded");

/// One payment failed: its months are owed again and go into the next run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct BenefitPaymentFailed {
    pub batch_id: String,
    pub item_id: String,
    pub award_id: String,
    pub psn_no: String,
    pub id_number: String,
    pub kind: String,
    pub months: Vec<String>,
    pub amount: String,
    pub reason: String,
}
event!(BenefitPaymentFailed, "benefit-payment-failed");

fn entry<T: Body>(out: &mut impl Registry, name: &str) {
    out.add::<T>(format!("{name}.json"));
}

/// The social-line benefits schemas, registered from `benefits::schema_entries`.
pub fn schema_entries(out: &mut impl Registry) {
    entry::<ApplyRetirement>(out, "benefits.apply-retirement.command");
    entry::<RetirementResult>(out, "benefits.apply-retirement.result");
    entry::<ReviewRetirement>(out, "benefits.review-retirement.command");
    entry::<RetirementResult>(out, "benefits.review-retirement.result");
    entry::<RetirementQuery>(out, "benefits.retirement-status.command");
    entry::<RetirementResult>(out, "benefits.retirement-status.result");
    entry::<GrantBenefit>(out, "benefits.grant-benefit.command");
    entry::<AwardResult>(out, "benefits.grant-benefit.result");
    entry::<RunBenefitPayments>(out, "benefits.run-benefit-payments.command");
    entry::<BatchResult>(out, "benefits.run-benefit-payments.result");
    entry::<RecordBenefitPayments>(out, "benefits.record-benefit-payments.command");
    entry::<BatchResult>(out, "benefits.record-benefit-payments.result");
    entry::<BatchQuery>(out, "benefits.batch-status.command");
    entry::<BatchResult>(out, "benefits.batch-status.result");
    entry::<RetirementApplied>(out, "benefits.retirement-applied.v1");
    entry::<RetirementApproved>(out, "benefits.retirement-approved.v1");
    entry::<RetirementRejected>(out, "benefits.retirement-rejected.v1");
    entry::<BenefitAwarded>(out, "benefits.benefit-awarded.v1");
    entry::<BenefitPaymentBatchOrdered>(out, "benefits.benefit-payment-batch-ordered.v1");
    entry::<BenefitPaymentsRecorded>(out, "benefits.benefit-payments-recorded.v1");
    entry::<BenefitPaymentFailed>(out, "benefits.benefit-payment-failed.v1");
}
