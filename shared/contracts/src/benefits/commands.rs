//! Commands, routing key `medical.benefits.<name>`, and their `ok` results. One command per
//! NHSA transaction (its number in the doc comment); bodies and results use the NHSA field
//! names. Fields are plain strings: a bad value comes back as `INVALID_FIELD` naming it.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// `person-info` (1101): who the person is, their insurance types with status, whether each
/// covers care on `begntime`, and the personal account balance.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PersonInfo {
    /// `01` e-voucher (its content: the `psn_no`), `02` resident ID card, `03` social
    /// security card (its number is the ID number).
    pub mdtrt_cert_type: String,
    pub mdtrt_cert_no: String,
    /// The card's serial number (03); not checked until the card service reports.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub card_sn: Option<String>,
    /// When care starts (ISO 8601 with offset); now when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub begntime: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct BaseInfo {
    pub psn_no: String,
    /// `01`: resident ID card.
    pub psn_cert_type: String,
    /// Masked (`4201**********123X`).
    pub certno: String,
    pub psn_name: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct InsuInfo {
    pub insutype: String,
    /// `employee`, `flexible`, `retiree`, `resident`.
    pub psn_type: String,
    /// `1` insured 正常参保, `2` suspended 暂停参保, `4` terminated 终止参保.
    pub psn_insu_stas: String,
    /// First month of the enrollment (`YYYY-MM`).
    pub psn_insu_date: String,
    /// Whether care on `begntime` is covered under this insurance type.
    pub eligible: bool,
    /// Why not (`not-enrolled`, `waiting-period`, `not-yet-paid`, `arrears`, `suspended`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_eligible_reason: Option<String>,
    /// The month judged (`YYYY-MM`).
    pub month: String,
    /// The personal account balance (the same for every type).
    pub balc: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct PersonInfoResult {
    pub baseinfo: BaseInfo,
    pub insuinfo: Vec<InsuInfo>,
    /// Social security card status: until the card service reports, "no card information".
    pub card_note: String,
}

/// `eligibility`: the covered months of one person and insurance type (back office and
/// tests), over `from`..=`to` (`YYYY-MM`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Eligibility {
    pub psn_no: String,
    pub insutype: String,
    pub from: String,
    pub to: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct MonthEligibility {
    pub month: String,
    pub eligible: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_eligible_reason: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct EligibilityResult {
    pub psn_no: String,
    pub insutype: String,
    pub months: Vec<MonthEligibility>,
}

/// `register-visit` (2201, outpatient) and `admit` (2401, inpatient).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RegisterVisit {
    /// The institution's message id (institution code + time + sequence): a repeat returns
    /// the same `mdtrt_id`.
    pub msgid: String,
    pub fixmedins_code: String,
    pub psn_no: String,
    pub insutype: String,
    pub mdtrt_cert_type: String,
    pub mdtrt_cert_no: String,
    /// Outpatient or inpatient number at the institution.
    pub ipt_otp_no: String,
    /// Start of the visit or admission (ISO 8601 with offset).
    pub begntime: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dept_code: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub atddr_no: Option<String>,
    /// Register as self-paid 自费 when the person is not eligible (otherwise `NOT_ELIGIBLE`).
    #[serde(default)]
    pub self_pay: bool,
    /// The diagnosis (ICD-10, NHSA `dise_codg`): policy overrides are judged on it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dise_codg: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct VisitResult {
    pub mdtrt_id: String,
    pub psn_no: String,
    pub ipt_otp_no: String,
    /// `outpatient` or `inpatient`.
    pub kind: String,
    /// `registered`, `admitted`, `discharged` or `cancelled`.
    pub status: String,
    /// The fund pays nothing for this visit (registered self-paid).
    pub self_pay: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// `cancel-visit` (2202): an outpatient registration (or admission) without a settlement.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CancelVisit {
    pub mdtrt_id: String,
    pub psn_no: String,
}

/// `discharge` (2402).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Discharge {
    pub mdtrt_id: String,
    pub psn_no: String,
    pub endtime: String,
    /// The main discharge diagnosis (ICD-10): replaces the admission's for the settlement.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dscg_maindiag_code: Option<String>,
}

/// One fee detail line (2204 / 2301 `feedetail`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FeeDetail {
    /// Unique within the visit.
    pub feedetl_sn: String,
    /// Catalogue code 医保目录编码.
    pub med_list_codg: String,
    pub cnt: String,
    pub pric: String,
    /// Must equal `cnt × pric` rounded to the fen.
    pub det_item_fee_sumamt: String,
    pub fee_ocur_time: String,
}

/// `upload-fees` (2204 outpatient / 2301 inpatient).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct UploadFees {
    pub mdtrt_id: String,
    pub psn_no: String,
    pub feedetail: Vec<FeeDetail>,
}

/// A line as the catalogue splits it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct FeeResult {
    pub feedetl_sn: String,
    pub det_item_fee_sumamt: String,
    /// Out of the catalogue: all self-paid 全自费.
    pub fulamt_ownpay_amt: String,
    /// Above the catalogue's price limit 超限价.
    pub overlmt_amt: String,
    /// The catalogue's self-pay share 先行自付.
    pub preselfpay_amt: String,
    /// In scope 符合范围.
    pub inscp_scp_amt: String,
    pub selfpay_prop: String,
    /// `1` category A 甲类, `2` category B 乙类, `3` self-paid 丙类.
    pub chrgitm_lv: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct UploadFeesResult {
    pub mdtrt_id: String,
    pub result: Vec<FeeResult>,
}

/// `cancel-fees` (2205 / 2302): the lines named, or all unsettled lines for `"0000"`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CancelFees {
    pub mdtrt_id: String,
    pub psn_no: String,
    pub feedetl_sn: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct CancelFeesResult {
    pub mdtrt_id: String,
    pub cancelled: Vec<String>,
}

/// `pre-settle` (2206 / 2303: computed, nothing booked) and `settle` (2207 / 2304).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Settle {
    /// The idempotency key of a settlement: a repeat returns the same `setl_id`.
    pub msgid: String,
    pub fixmedins_code: String,
    pub mdtrt_id: String,
    pub psn_no: String,
    pub mdtrt_cert_type: String,
    pub mdtrt_cert_no: String,
    /// The institution's own total of the uploaded lines; must match.
    pub medfee_sumamt: String,
    /// `1`: the personal account pays what it may; `0`: it does not.
    pub acct_used_flag: String,
    pub insutype: String,
    /// `1`: an interim settlement 中途结算 of an inpatient still in hospital (the lines uploaded
    /// so far; the stay's deductible is borne once, by the first settlement of the stay);
    /// `0` or absent: the settlement of a discharged inpatient or of an outpatient visit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mid_setl_flag: Option<String>,
}

/// The settlement's split (NHSA `setlinfo`):
/// `medfee_sumamt = fund_pay_sumamt + acct_pay + acct_mulaid_pay + psn_cash_pay`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct SetlInfo {
    /// Absent for a pre-settlement.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub setl_id: Option<String>,
    pub mdtrt_id: String,
    pub psn_no: String,
    pub insutype: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub setl_time: Option<chrono::DateTime<chrono::FixedOffset>>,
    pub medfee_sumamt: String,
    pub fulamt_ownpay_amt: String,
    pub overlmt_selfpay: String,
    pub preselfpay_amt: String,
    pub inscp_scp_amt: String,
    /// Deductible 起付线 borne by the person in this settlement.
    pub act_pay_dedc: String,
    /// Pooled fund 统筹基金.
    pub hifp_pay: String,
    /// Reimbursement ratio applied by the pooled fund.
    pub pool_prop_selfpay: String,
    /// Large-amount fund 大额医疗 (employees, 310).
    pub hifob_pay: String,
    /// Serious-illness insurance 大病保险 (residents, 390).
    pub hifmi_pay: String,
    pub fund_pay_sumamt: String,
    pub acct_pay: String,
    pub acct_mulaid_pay: String,
    pub psn_cash_pay: String,
    /// The person's own account balance after this settlement.
    pub balc: String,
    /// The self-paid registration (the fund paid nothing).
    pub self_pay: bool,
    /// An interim settlement 中途结算: the stay goes on, and its later settlements bear no
    /// second deductible.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub mid_setl_flag: bool,
    /// Paid by public finance under a policy override (NHSA `oth_pay`, inside
    /// `fund_pay_sumamt`).
    #[serde(default = "zero")]
    pub oth_pay: String,
    /// The rule that decided the split: `policy:<id>` (the ordinary policy version) or
    /// `override:<id>` (a policy override).
    #[serde(default)]
    pub rule: String,
    /// The filings 备案 that changed the terms (`filing:<id>`: cross-region care, chronic
    /// disease, special drug); absent when none did.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub filings: Vec<String>,
}

fn zero() -> String {
    "0.00".into()
}

/// `cancel-settlement` (2208 / 2305).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CancelSettlement {
    pub msgid: String,
    pub setl_id: String,
    pub mdtrt_id: String,
    pub psn_no: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct CancelSettlementResult {
    pub setl_id: String,
    pub mdtrt_id: String,
    /// `cancelled`.
    pub status: String,
    pub fund_pay_sumamt: String,
    pub acct_pay: String,
    pub acct_mulaid_pay: String,
    pub balc: String,
}

/// `reverse` (2601): undo the transaction with message id `omsgid` whose outcome the
/// institution does not know (a timeout).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Reverse {
    pub msgid: String,
    pub psn_no: String,
    /// The original transaction number (`2207`, `2304`).
    pub oinfno: String,
    pub omsgid: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ReverseResult {
    pub omsgid: String,
    /// Whether a booked settlement was undone (false: nothing had been booked, and a late
    /// original with `omsgid` will be refused).
    pub reversed: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub setl_id: Option<String>,
}

/// `authorise-mutual-aid` / `revoke-mutual-aid` 家庭共济: `psn_no` lets `relative_psn_no`
/// draw on `psn_no`'s personal account.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AuthoriseMutualAid {
    pub psn_no: String,
    pub relative_psn_no: String,
    /// `spouse`, `parent`, `child`, … (recorded, not judged).
    #[serde(default)]
    pub relation: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct MutualAidResult {
    pub psn_no: String,
    pub relative_psn_no: String,
    pub authorised: bool,
}

/// `account-balance` / `account-statement`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AccountQuery {
    pub psn_no: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct AccountBalance {
    pub psn_no: String,
    pub balc: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct AccountEntry {
    pub entry_id: i64,
    /// `credit`, `settlement`, `mutual-aid`, `reversal`.
    pub kind: String,
    /// Signed: credits positive, debits negative.
    pub amount: String,
    pub balc: String,
    pub reference: String,
    pub booked_at: chrono::DateTime<chrono::FixedOffset>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct AccountStatement {
    pub psn_no: String,
    pub balc: String,
    pub entries: Vec<AccountEntry>,
}

/// `reconcile-totals` (3201): the institution's totals for its settlements of one
/// insurance type over `stmt_begndate`..=`stmt_enddate` (settlement dates, China time).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ReconcileTotals {
    pub fixmedins_code: String,
    pub insutype: String,
    pub stmt_begndate: String,
    pub stmt_enddate: String,
    pub medfee_sumamt: String,
    pub fund_pay_sumamt: String,
    pub acct_pay: String,
    pub fixmedins_setl_cnt: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Totals {
    pub medfee_sumamt: String,
    pub fund_pay_sumamt: String,
    pub acct_pay: String,
    pub setl_cnt: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ReconcileTotalsResult {
    /// `0` balanced 平, `1` not balanced 不平.
    pub stmt_rslt: String,
    pub stmt_rslt_dscr: String,
    /// The service's own totals.
    pub ours: Totals,
    /// Institution's minus ours, per field that differs.
    pub differences: Vec<Difference>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Difference {
    pub field: String,
    pub theirs: String,
    pub ours: String,
}

/// One settlement as the institution has it (3202).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DetailLine {
    pub setl_id: String,
    pub medfee_sumamt: String,
    pub fund_pay_sumamt: String,
    pub acct_pay: String,
    /// `0` settled, `1` cancelled.
    pub refd_setl_flag: String,
}

/// `reconcile-details` (3202).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ReconcileDetails {
    pub fixmedins_code: String,
    pub insutype: String,
    pub stmt_begndate: String,
    pub stmt_enddate: String,
    pub details: Vec<DetailLine>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct DetailDifference {
    pub setl_id: String,
    /// `missing-here` (the institution has it, we do not), `missing-there`, `amounts-differ`,
    /// `status-differs`.
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub theirs: Option<DetailLine>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ours: Option<DetailLine>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ReconcileDetailsResult {
    pub stmt_rslt: String,
    pub checked: i64,
    pub differences: Vec<DetailDifference>,
}

/// `reconcile-service`: across the whole service, per insurance type, the account money
/// settlements say they took equals the ledger's debits net of reversals.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ReconcileService {}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ServiceTotals {
    pub insutype: String,
    pub settlements: i64,
    pub medfee_sumamt: String,
    pub fund_pay_sumamt: String,
    /// Own account plus mutual aid, from the settlements.
    pub acct_paid: String,
    /// Net debits in the ledger for those settlements.
    pub ledger_debits: String,
    pub balanced: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ReconcileServiceResult {
    pub balanced: bool,
    pub per_insutype: Vec<ServiceTotals>,
}

/// One row of a benefit policy: deductible (inpatient: per admission) and ratio by visit
/// kind and institution level.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PolicyRatio {
    /// `outpatient` or `inpatient`.
    pub kind: String,
    /// `1`, `2` or `3`.
    pub hosp_lv: String,
    pub deductible: String,
    /// Between 0 and 1, at most 4 decimals (`0.85`).
    pub ratio: String,
}

/// `set-benefit-policy`: a new version of the settlement policy of one insurance type from
/// `effective_from` (a rule with the same start is replaced; an open-ended older one is
/// closed the day before, as a new version of it).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SetBenefitPolicy {
    /// `310` or `390`.
    pub insutype: String,
    /// `yyyy-MM-dd`.
    pub effective_from: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub effective_to: Option<String>,
    pub annual_cap: String,
    pub outpatient_deductible: String,
    pub large_ratio: String,
    pub large_cap: String,
    pub account_allowed: bool,
    pub arrears_restore_retroactive: bool,
    /// Days after care began within which a reimbursement claim is made (extended by
    /// settlement stops); no deadline when absent (the notices give none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub claim_window_days: Option<u32>,
    /// Where the figures come from (a notice, or `placeholder`).
    pub source: String,
    pub reason: String,
    /// Every (kind, level) pair exactly once.
    pub ratios: Vec<PolicyRatio>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct SetBenefitPolicyResult {
    pub policy_id: i64,
    pub insutype: String,
    pub effective_from: String,
    /// The version with the same start this one replaced.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replaced: Option<i64>,
    /// The new version of an older open-ended rule, closed the day before.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub closed: Option<i64>,
}

/// A document of a reimbursement claim: an uploaded image, or paper mailed later.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ClaimDocument {
    /// `invoice` 发票, `fee-list` 费用清单, `discharge-summary` 出院小结, `card-copy` 社保卡复印件,
    /// `birth-certificate` 出生医学证明, `other`.
    pub kind: String,
    /// Where the uploaded image is (the agency's document store); empty for paper.
    #[serde(default)]
    pub uri: String,
    /// The original comes by post (纸质材料后寄).
    #[serde(default)]
    pub paper_mailed: bool,
}

/// `submit-claim`: manual 手工报销 or maternity 生育 reimbursement of care the person paid in
/// cash, with the fee lines as the institution listed them. The split follows the same rules
/// as a real-time settlement at that institution on the day of care (deductible, ratio by
/// level, annual caps); no personal account is used (the person already paid).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SubmitClaim {
    pub psn_no: String,
    /// `310` or `390` (maternity: `310`, employee medical includes maternity 510).
    pub insutype: String,
    /// `outpatient`, `inpatient` or `maternity`.
    pub kind: String,
    /// Where the care was given.
    pub fixmedins_code: String,
    /// When the care began (ISO 8601 with offset, or `yyyy-MM-dd HH:mm:ss` China time).
    pub begntime: String,
    /// Why it was paid in cash: `settlement-stop`, `no-card`, `emergency`, `other`.
    pub reason: String,
    pub documents: Vec<ClaimDocument>,
    pub feedetail: Vec<FeeDetail>,
    /// Must equal the sum of the lines.
    pub medfee_sumamt: String,
}

/// A claim and its split (the reimbursement is `fund_pay_sumamt`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ClaimResult {
    pub claim_id: String,
    pub psn_no: String,
    pub insutype: String,
    pub kind: String,
    /// `submitted`, `under-review`, `documents-needed`, `approved`, `rejected`, `paid`,
    /// `payment-failed`.
    pub status: String,
    /// Why it was rejected, what documents are needed, or why the payment failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_reason: Option<String>,
    pub documents: usize,
    pub medfee_sumamt: String,
    pub fulamt_ownpay_amt: String,
    pub overlmt_selfpay: String,
    pub preselfpay_amt: String,
    pub inscp_scp_amt: String,
    pub act_pay_dedc: String,
    pub hifp_pay: String,
    pub hifob_pay: String,
    pub hifmi_pay: String,
    /// What the funds reimburse.
    pub fund_pay_sumamt: String,
    /// What stays with the person.
    pub psn_pay: String,
    /// At submission the split is an estimate; it is fixed at approval.
    pub final_split: bool,
    /// The claim's deadline (the policy's claim window after the day care began, extended
    /// by the settlement stops that overlapped it), as judged when it was made; absent when
    /// the policy sets no window.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub submit_by: Option<chrono::DateTime<chrono::FixedOffset>>,
    /// Retroactive reimbursement 追溯报销: care paid in cash during a settlement stop.
    #[serde(default)]
    pub retroactive: bool,
    /// The cross-region filing 备案 the claim's terms came from (`filing:<id>`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub filings: Vec<String>,
    /// Care at an institution of another region without a filing valid on the day: the
    /// policy's reduced ratio for unfiled care elsewhere applied.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub unfiled_elsewhere: bool,
}

/// `review-claim`: a step of the review 审核, by a reviewer of the agency.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ReviewClaim {
    pub claim_id: String,
    /// `start` (submitted → under review), `approve`, `reject` or `request-documents`
    /// (from under review).
    pub action: String,
    /// Required to reject or to ask for documents.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub reviewer: String,
}

/// `add-claim-documents`: the documents the review asked for; the claim goes back under
/// review.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AddClaimDocuments {
    pub claim_id: String,
    pub documents: Vec<ClaimDocument>,
}

/// `claim-status`: a claim as it stands.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ClaimQuery {
    pub claim_id: String,
}

/// `record-claim-payment`: the bank's result of paying an approved claim into the card's
/// financial account.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RecordClaimPayment {
    pub claim_id: String,
    /// `paid` or `failed`.
    pub outcome: String,
    /// Must equal the approved reimbursement.
    pub amount: String,
    /// The bank's reference of the transfer (paid) or of the refusal.
    pub bank_ref: String,
    /// Why it failed (required when `failed`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}
