//! Commands, routing key `<line>.enrollment.<name>`, and their `ok` results.

use crate::line::InsuranceType;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// `enroll-person`: a person's enrollment in one or more insurance types of the line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EnrollPerson {
    pub id_number: String,
    pub name: String,
    pub phone: String,
    /// `employee`, `flexible`, `resident` or `retiree`.
    pub category: String,
    /// Insurance types of the line the command was sent on.
    pub insurance_types: Vec<String>,
    /// Required for `employee`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub employer_credit_code: Option<String>,
    /// `YYYY-MM`.
    pub effective_month: String,
    /// Retirees only: whether the minimum contribution years are met (then only the fixed
    /// large-amount premium is owed; before that the retiree pays as a flexible worker).
    /// Absent for a retiree means met, as every retiree was assessed before the field existed;
    /// refused for other categories.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub minimum_years_met: Option<bool>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct EnrollmentView {
    pub insurance_type: InsuranceType,
    /// `active`, `suspended` or `terminated`.
    pub status: String,
    pub effective_month: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub employer_credit_code: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct EnrollPersonResult {
    pub person_id: String,
    pub enrollments: Vec<EnrollmentView>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Contact {
    pub name: String,
    pub phone: String,
}

/// `register-employer`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RegisterEmployer {
    pub credit_code: String,
    pub name: String,
    pub contact: Contact,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct RegisterEmployerResult {
    pub employer_id: String,
    pub credit_code: String,
}

/// One employee in an `add-staff` declaration. A person not yet known is registered.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StaffMember {
    pub id_number: String,
    /// Required when the person is not yet registered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone: Option<String>,
}

/// `add-staff` (增员): the employer declares new staff for the line's insurance types.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AddStaff {
    pub employer_credit_code: String,
    pub persons: Vec<StaffMember>,
    pub insurance_types: Vec<String>,
    /// `YYYY-MM` from which the employer pays for them.
    pub month: String,
}

/// `remove-staff` (减员): staff who left; their enrollments become `suspended`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RemoveStaff {
    pub employer_credit_code: String,
    pub id_numbers: Vec<String>,
    pub insurance_types: Vec<String>,
    pub month: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct StaffChangeResult {
    pub employer_credit_code: String,
    pub persons: Vec<String>,
    pub insurance_types: Vec<InsuranceType>,
    pub month: String,
}

/// `suspend` and `terminate`: change the status of a person's enrollments.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ChangeEnrollmentStatus {
    pub id_number: String,
    pub insurance_types: Vec<String>,
    pub reason: String,
    /// `YYYY-MM` from which the change applies.
    pub month: String,
}

/// `change-contact` (变更): any subset of the person's contact data; history keeps the old.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ChangeContact {
    pub id_number: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bank_account: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ChangeContactResult {
    pub person_id: String,
    /// The fields that changed (`name`, `phone`, `bank_account`); empty for a repeat.
    pub changed: Vec<String>,
}

/// `transfer-out` (转出): ends the enrollments here and issues a participation certificate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TransferOut {
    pub id_number: String,
    pub insurance_types: Vec<String>,
    /// Region code (6 digits) the person moves to.
    pub to_region: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// Participation certificate (参保凭证) carried from the old region to the new one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ParticipationCertificate {
    pub certificate_id: String,
    pub id_number: String,
    pub name: String,
    pub insurance_types: Vec<InsuranceType>,
    pub from_region: String,
    pub to_region: String,
    /// Where the contribution history can be fetched (collection service reference).
    pub contribution_history_ref: String,
    pub issued_at: chrono::DateTime<chrono::FixedOffset>,
    /// Contribution months credited in the issuing region (缴费月数), for each type listed;
    /// absent in older certificates (then nothing is carried over).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contribution_months: Option<u32>,
    /// The pension personal account's balance moved with the person (yuan, two places).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pension_account_balance: Option<String>,
}

/// `transfer-in` (转入): accepts a certificate issued elsewhere.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TransferIn {
    pub certificate: ParticipationCertificate,
    pub phone: String,
    pub category: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub employer_credit_code: Option<String>,
    pub effective_month: String,
}

/// `get-person`: status per insurance type and every version of the record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GetPerson {
    pub id_number: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct HistoryVersion {
    pub version: i32,
    /// What happened, e.g. `enrolled`, `contact-changed`, `suspended`.
    pub change: String,
    /// The person's record and enrollments after this change.
    pub snapshot: serde_json::Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operator: Option<String>,
    pub message_id: String,
    pub changed_at: chrono::DateTime<chrono::FixedOffset>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct PersonView {
    pub person_id: String,
    pub id_number: String,
    pub name: String,
    pub phone: String,
    pub category: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bank_account: Option<String>,
    pub enrollments: Vec<EnrollmentView>,
    pub history: Vec<HistoryVersion>,
}
