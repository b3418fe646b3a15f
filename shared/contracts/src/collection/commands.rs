//! Commands, routing key `<line>.collection.<name>`, and their `ok` results.

use crate::line::InsuranceType;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// When a month's contributions are due (DOMAIN.md §4 calendar).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum DeadlineRuleDto {
    /// Wuhan: finish before the last `n` working days of the collection month.
    LastWorkingDays { n: u32 },
    /// Day `day` of the collection month (Jinan before the change: the 15th).
    DayOfFollowingMonth { day: u32 },
    /// End of the collection month (Jinan after the change).
    EndOfFollowingMonth {},
    /// Bank batch debit starts on day `day` (Wuhan flexible workers: the 20th).
    DebitDay { day: u32 },
}

/// Which month a month's contributions are collected in (policy data per region).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum DeadlineMonthDto {
    /// Month M is paid within M (Wuhan, Jinan).
    SameMonth,
    /// Month M is collected in M+1 (Hangzhou); what a rule without the field means.
    #[default]
    NextMonth,
}

/// `set-policy`: a new version of one policy rule (region × insurance type × period).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SetPolicy {
    pub region: String,
    pub insurance_type: String,
    pub effective_from: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub effective_to: Option<String>,
    pub standard_base: String,
    pub floor: String,
    pub cap: String,
    pub employer_rate: String,
    pub employee_rate: String,
    pub flexible_rate: String,
    #[serde(default = "zero")]
    pub retiree_monthly_premium: String,
    #[serde(default)]
    pub retiree_pays_rate: bool,
    pub deadline: DeadlineRuleDto,
    /// The batch-debit day of flexible workers with a signed bank agreement (Wuhan: the 20th).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flexible_deadline: Option<DeadlineRuleDto>,
    /// Which month the deadline rules are applied to; absent: `next_month`.
    #[serde(default)]
    pub deadline_month: DeadlineMonthDto,
    /// Working days a payment takes to reach the fund (Wuhan: 5); arrears wait for them.
    #[serde(default)]
    pub arrival_working_days: u8,
    /// The day from which arrears affect benefits at all (Wuhan: 2022-04-01).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub benefits_affected_from: Option<chrono::NaiveDate>,
    /// What a resident pays per year (yuan), instead of a monthly rate: required for
    /// `resident_medical`, charged once per person and year in the first month covered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub yearly_premium: Option<String>,
    /// When the yearly premium is collected; required with `yearly_premium`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub collection_period: Option<CollectionPeriodDto>,
    /// `YYYY-MM`, a month of the period after its first: the rule's standard base, floor and
    /// cap are in use only from then (Hangzhou 2020: from July); the months before are
    /// assessed on the preceding rule's figures and settled up when that month is assessed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub in_use_from: Option<String>,
    pub reason: String,
}

/// The collection period of a yearly premium (集中缴费期), as days of the year `MM-DD`: it
/// opens on `opens` in the year before the coverage year and closes on the next `closes`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CollectionPeriodDto {
    pub opens: String,
    pub closes: String,
}

fn zero() -> String {
    "0.00".into()
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct SetPolicyResult {
    /// The version of the new rule (older open-ended rules are closed as versions of their own).
    pub version: i64,
    /// Contribution bases of the rule's period re-derived from the declared wages (a new floor
    /// or cap applied to them).
    #[serde(default)]
    pub bases_rederived: i64,
    /// Months already assessed in the rule's period that were re-assessed, as adjustments.
    #[serde(default)]
    pub months_reassessed: i64,
}

/// A policy rule as it is in force: the figures of `set-policy`, without its reason.
/// Amounts are yuan, rates fractions (`0.08`), both as decimal strings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PolicyRuleView {
    pub region: String,
    pub insurance_type: InsuranceType,
    pub effective_from: String,
    /// Absent (or null) while no successor is published.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub effective_to: Option<String>,
    pub standard_base: String,
    pub floor: String,
    pub cap: String,
    pub employer_rate: String,
    pub employee_rate: String,
    pub flexible_rate: String,
    pub retiree_monthly_premium: String,
    pub retiree_pays_rate: bool,
    pub deadline: DeadlineRuleDto,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flexible_deadline: Option<DeadlineRuleDto>,
    #[serde(default)]
    pub deadline_month: DeadlineMonthDto,
    #[serde(default)]
    pub arrival_working_days: u8,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub benefits_affected_from: Option<chrono::NaiveDate>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub yearly_premium: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub collection_period: Option<CollectionPeriodDto>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub in_use_from: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct GetPolicyResult {
    pub version: i64,
    pub rule: PolicyRuleView,
}

/// `get-policy`: the rule in force for a region, type and month, with its version.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GetPolicy {
    pub region: String,
    pub insurance_type: String,
    pub month: String,
}

/// One person's wage evidence (monthly yuan amounts).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WageDeclaration {
    pub id_number: String,
    /// Own previous-year average monthly wage (first choice).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_year_average: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_year_average: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_month: Option<String>,
    /// A flexible worker's chosen band, where policy allows one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chosen_base: Option<String>,
}

/// `declare-wages`: an employer declares its employees' wages for a contribution year (or a
/// flexible worker their own); bases are determined for every insurance type of the line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DeclareWages {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub employer_credit_code: Option<String>,
    pub year: i32,
    pub wages: Vec<WageDeclaration>,
}

/// Which figure a contribution base was taken from (kept for statements and appeals).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum BaseSource {
    PreviousYearAverage,
    CurrentYearAverage,
    CurrentMonth,
    StandardBase,
    ChosenBand,
}

/// Whether the policy's floor or cap changed the figure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum BaseClamp {
    None,
    RaisedToFloor,
    LoweredToCap,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct BaseView {
    pub id_number: String,
    pub insurance_type: InsuranceType,
    pub year: i32,
    pub base: String,
    pub source: BaseSource,
    pub clamp: BaseClamp,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct DeclareWagesResult {
    pub bases: Vec<BaseView>,
}

/// `assess-month` (核定): assess every covered person of the line for `month`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AssessMonth {
    pub month: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct AssessMonthResult {
    pub run_id: String,
    pub month: String,
    /// Payers whose amount due changed in this run (new assessments and adjustments).
    pub payers_assessed: i64,
    pub items_written: i64,
    /// The change in the total due for the month made by this run (0.00 for a repeat).
    pub total_change: String,
    /// Persons covered in the month but without a base or policy rule (not assessed).
    pub skipped: i64,
    /// Rules this run brought into use (their `in_use_from` month reached): before the month
    /// itself was assessed, the bases of their periods were re-derived under their figures
    /// and the months assessed before were re-assessed, as adjustments (多退少补).
    #[serde(default)]
    pub rules_brought_into_use: i64,
    #[serde(default)]
    pub bases_rederived: i64,
    #[serde(default)]
    pub months_reassessed: i64,
}

/// `record-payment`: what the tax authority received for an assessment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RecordPayment {
    pub assessment_id: String,
    pub amount: String,
    pub paid_at: chrono::DateTime<chrono::FixedOffset>,
    /// The tax receipt number: the idempotency key of the payment itself.
    pub tax_receipt_no: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct AssessmentStatus {
    pub assessment_id: String,
    pub payer_kind: String,
    pub payer_id: String,
    pub month: String,
    pub due: String,
    pub paid: String,
    pub outstanding: String,
    /// `open`, `partially-paid`, `settled`, `overpaid`.
    pub status: String,
    pub deadline: chrono::NaiveDate,
    pub in_arrears: bool,
}

/// `detect-arrears`: at the deadline, unpaid months become arrears (also run on a schedule).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DetectArrears {
    /// The date to judge deadlines by; today when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub as_of: Option<chrono::NaiveDate>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct DetectArrearsResult {
    pub newly_in_arrears: i64,
}

/// `start-batch-debit` (批扣): on the debit day, the outgoing batch for flexible workers'
/// open assessments of `month`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StartBatchDebit {
    pub month: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct BatchDebitResult {
    pub batch_id: String,
    pub item_count: i64,
    pub total: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DebitItemResult {
    pub assessment_id: String,
    pub ok: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// `record-debit-results`: the bank's per-item results for a batch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RecordDebitResults {
    pub batch_id: String,
    pub debited_at: chrono::DateTime<chrono::FixedOffset>,
    pub results: Vec<DebitItemResult>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct DebitResultsSummary {
    pub batch_id: String,
    pub debited: i64,
    pub failed: i64,
}

/// `employer-statement`: an employer's assessment for a month, person by person.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EmployerStatement {
    pub employer_credit_code: String,
    pub month: String,
}

/// One person's share of an employer's assessment, per insurance type and share.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct StatementLine {
    pub id_number: String,
    /// The insurance type's code (`employee_medical`, `pension`, …).
    pub insurance_type: String,
    /// `employer` or `employee`.
    pub share: String,
    /// The base the amount was computed on; absent for a fixed premium.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base: Option<String>,
    pub amount: String,
}

/// The employer's own share of one insurance type: its rate on the sum of its employees'
/// bases, rounded once. `rounding` is what reconciles it with the per-person employer lines
/// (each rounded on its own), so that lines plus roundings add up to what is due.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct EmployerShareLine {
    pub insurance_type: String,
    /// The employer's base: the sum of its employees' bases.
    pub base: String,
    pub amount: String,
    pub rounding: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct EmployerStatementResult {
    pub assessment: AssessmentStatus,
    pub lines: Vec<StatementLine>,
    /// One per insurance type with an employer share.
    #[serde(default)]
    pub employer_shares: Vec<EmployerShareLine>,
}

/// `set-debit-agreement`: a flexible worker signs (or ends) a bank batch-debit agreement
/// (批扣协议) from a month on. Only flexible workers with a signed agreement are debited on
/// the debit day; everyone else pays by the ordinary deadline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SetDebitAgreement {
    pub id_number: String,
    /// `true`: signed; `false`: ended.
    pub signed: bool,
    /// First month the agreement (or its end) applies to, `YYYY-MM`.
    pub from_month: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bank: Option<String>,
    /// The card's financial account the bank debits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct SetDebitAgreementResult {
    pub person_id: String,
    pub signed: bool,
    pub from_month: String,
}

/// `contribution-history` (缴费信息查询): a person's assessed and paid months.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ContributionHistory {
    pub id_number: String,
}

/// `list-arrears`: payers in arrears on the line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ListArrears {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub month: Option<String>,
}

/// One month of one insurance type in a person's contribution history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ContributionMonth {
    pub month: String,
    /// The insurance type's code (`employee_medical`, `pension`, …).
    pub insurance_type: String,
    /// `employer` or `person`.
    pub payer_kind: String,
    pub payer_id: String,
    /// What the employer owes for this person; absent when the person pays alone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub employer_share: Option<String>,
    /// What the person owes (withheld by the employer, or paid alone).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub own_share: Option<String>,
    /// Whether the month's assessment is paid in full.
    pub paid: bool,
    pub in_arrears: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ContributionHistoryResult {
    pub person_id: String,
    pub months: Vec<ContributionMonth>,
    /// What transfer-in certificates carried from other regions (转移接续), merged into the
    /// history: months credited there and the pension account moved with the person.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub carried: Vec<CarriedContributions>,
    /// Months paid here plus months carried in, per insurance type.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub total_months: std::collections::BTreeMap<String, u32>,
}

/// One certificate's carried history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct CarriedContributions {
    pub certificate_id: String,
    pub from_region: String,
    pub insurance_types: Vec<String>,
    /// From when the person is insured here (`YYYY-MM`).
    pub effective_month: String,
    /// Absent when the certificate did not say.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub months: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pension_account_balance: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ListArrearsResult {
    pub arrears: Vec<AssessmentStatus>,
}
