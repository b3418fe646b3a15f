//! Events, routing key `<line>.enrollment.<name>`, type `enrollment.<name>.v1`.
//! Fields are only ever added (with a serde default); a breaking change is a `v2` type.

use super::commands::ParticipationCertificate;
use crate::line::{InsuranceType, Line};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Names every enrollment event, with its schema version.
pub trait EnrollmentEvent: Serialize {
    const NAME: &'static str;
    const VERSION: u32 = 1;
}

macro_rules! event {
    ($ty:ident, $name:literal) => {
        impl EnrollmentEvent for $ty {
            const NAME: &'static str = $name;
        }
    };
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct EmployerRegistered {
    pub employer_id: String,
    pub credit_code: String,
    pub name: String,
    pub line: Line,
    /// The employer's contact phone (for notification); absent in events before it was added.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contact_phone: Option<String>,
}
event!(EmployerRegistered, "employer-registered");

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct PersonEnrolled {
    pub person_id: String,
    pub id_number: String,
    pub name: String,
    pub category: String,
    pub insurance_types: Vec<InsuranceType>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub employer_credit_code: Option<String>,
    pub effective_month: String,
    pub line: Line,
    /// Retirees: whether the minimum contribution years are met. Older messages lack it and
    /// mean met (how every retiree was assessed then); always true for other categories.
    #[serde(default = "met")]
    pub minimum_years_met: bool,
    /// The mobile number given at enrollment (for notification); absent in older events.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone: Option<String>,
}
event!(PersonEnrolled, "person-enrolled");

fn met() -> bool {
    true
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct StaffPerson {
    pub person_id: String,
    pub id_number: String,
    /// The person's mobile number (for notification); absent in older events.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct StaffAdded {
    pub employer_credit_code: String,
    pub persons: Vec<StaffPerson>,
    pub insurance_types: Vec<InsuranceType>,
    pub month: String,
    pub line: Line,
}
event!(StaffAdded, "staff-added");

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct StaffRemoved {
    pub employer_credit_code: String,
    pub persons: Vec<StaffPerson>,
    pub insurance_types: Vec<InsuranceType>,
    pub month: String,
    pub line: Line,
}
event!(StaffRemoved, "staff-removed");

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct EnrollmentStatusChanged {
    pub person_id: String,
    pub id_number: String,
    pub insurance_types: Vec<InsuranceType>,
    pub reason: String,
    pub month: String,
    pub line: Line,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct EnrollmentSuspended(pub EnrollmentStatusChanged);
event!(EnrollmentSuspended, "enrollment-suspended");

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct EnrollmentTerminated(pub EnrollmentStatusChanged);
event!(EnrollmentTerminated, "enrollment-terminated");

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ContactChanged {
    pub person_id: String,
    pub id_number: String,
    pub name: String,
    pub phone: String,
    /// Which fields changed.
    pub changed: Vec<String>,
    pub line: Line,
}
event!(ContactChanged, "contact-changed");

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct TransferredOut {
    pub person_id: String,
    pub certificate: ParticipationCertificate,
    pub line: Line,
}
event!(TransferredOut, "transferred-out");

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct TransferredIn {
    pub person_id: String,
    pub certificate_id: String,
    pub id_number: String,
    pub insurance_types: Vec<InsuranceType>,
    pub from_region: String,
    pub effective_month: String,
    pub line: Line,
    /// Added after v1 shipped (serde default): the category the person was accepted as.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub category: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub employer_credit_code: Option<String>,
    /// Added for social-line benefits (serde default): the contribution months and the
    /// pension personal account balance the certificate carries over, so that benefits
    /// counts contribution years from events only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contribution_months: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pension_account_balance: Option<String>,
}
event!(TransferredIn, "transferred-in");
