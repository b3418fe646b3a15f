//! Filings 备案 that change how settlements and claims settle (issue 10 §1): cross-region
//! care 异地就医, outpatient chronic and special disease 门诊慢特病, special drugs 特治特药.
//!
//! Commands: routing key `medical.benefits.<name>`; events: `medical.benefits.<name>`, type
//! `benefits.<name>.v1`. Ordering key: the person (`psn_no`) for a new filing and every
//! event; the filing (`filing_id`) for its review and revocation. Dates are `yyyy-MM-dd`
//! (China time).
//!
//! A filing is `submitted` (waiting for full review), `approved` (in force from `valid_from`
//! to `valid_to`), `rejected` or `revoked`. Only an approved filing valid on the day care
//! began changes a settlement; the settlement then names it in `filings`.

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

/// `file-cross-region` (异地就医备案): care at the institutions of `region` settles with the
/// ratio policy gives the filing type. Approved at once. `valid_from` may lie in the past only
/// for care inside a settlement stop, filed within the late-filing window after it (补登记).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FileCrossRegion {
    pub psn_no: String,
    /// `long-term-residence` 异地长期居住, `work-posting` 常驻异地工作,
    /// `retirement-elsewhere` 异地安置, `referral` 转外就医.
    pub filing_type: String,
    /// The region code (6 digits, e.g. `370100` Jinan) the care is in; not the insured region.
    pub region: String,
    pub valid_from: String,
    /// Open-ended when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub valid_to: Option<String>,
    /// The referring institution, for a referral (informative).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub referred_by: Option<String>,
}

/// `file-chronic-disease` (门诊慢特病备案): a disease of the policy's list (ICD-10 code or
/// prefix). By the simple procedure approved at once; a disease the policy excludes from it
/// waits for full review (`review-filing`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FileChronicDisease {
    pub psn_no: String,
    pub disease_code: String,
    pub valid_from: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub valid_to: Option<String>,
    /// Document references (diagnosis certificate, records), for the review.
    #[serde(default)]
    pub documents: Vec<String>,
}

/// `file-special-drug` (特治特药备案): one drug (catalogue code) at one named institution.
/// Approved at once.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FileSpecialDrug {
    pub psn_no: String,
    pub med_list_codg: String,
    pub fixmedins_code: String,
    pub valid_from: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub valid_to: Option<String>,
}

/// `review-filing`: the full review of a submitted filing, `approve` or `reject` (the reason
/// required).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ReviewFiling {
    pub filing_id: String,
    pub action: String,
    pub reviewer: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// `revoke-filing`: a submitted or approved filing ends; settlements after it use the
/// ordinary terms.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RevokeFiling {
    pub filing_id: String,
    pub reason: String,
}

/// `filing-status`: a filing as it stands.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FilingQuery {
    pub filing_id: String,
}

/// A filing, as every filing command answers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct FilingResult {
    pub filing_id: String,
    pub psn_no: String,
    /// `cross-region`, `chronic-disease` or `special-drug`.
    pub kind: String,
    /// Cross-region: the filing type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filing_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disease_code: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disease_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub med_list_codg: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fixmedins_code: Option<String>,
    pub valid_from: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub valid_to: Option<String>,
    /// `simple` (approved at once) or `full-review`.
    pub procedure: String,
    /// `submitted`, `approved`, `rejected` or `revoked`.
    pub status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_reason: Option<String>,
    /// Filed late 补登记, for care inside a settlement stop.
    #[serde(default)]
    pub late: bool,
}

/// A filing was recorded (any procedure).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct FilingRecorded {
    pub filing_id: String,
    pub psn_no: String,
    pub kind: String,
    pub procedure: String,
    pub status: String,
    pub valid_from: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub valid_to: Option<String>,
    /// The type, region, disease or drug the filing is for, as text (`work-posting 370100`).
    pub subject: String,
    #[serde(default)]
    pub late: bool,
    pub at: chrono::DateTime<chrono::FixedOffset>,
}
event!(FilingRecorded, "filing-recorded");

/// A filing was approved (at once, or by its reviewer).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct FilingApproved {
    pub filing_id: String,
    pub psn_no: String,
    pub kind: String,
    /// `simple` or the reviewer.
    pub by: String,
    pub at: chrono::DateTime<chrono::FixedOffset>,
}
event!(FilingApproved, "filing-approved");

/// A filing under full review was rejected.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct FilingRejected {
    pub filing_id: String,
    pub psn_no: String,
    pub kind: String,
    pub reviewer: String,
    pub reason: String,
    pub at: chrono::DateTime<chrono::FixedOffset>,
}
event!(FilingRejected, "filing-rejected");

/// A filing was revoked.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct FilingRevoked {
    pub filing_id: String,
    pub psn_no: String,
    pub kind: String,
    pub reason: String,
    pub at: chrono::DateTime<chrono::FixedOffset>,
}
event!(FilingRevoked, "filing-revoked");

fn entry<T: Body>(out: &mut impl Registry, name: &str) {
    out.add::<T>(format!("{name}.json"));
}

/// The filings' schemas, registered from `benefits::schema_entries`.
pub fn schema_entries(out: &mut impl Registry) {
    entry::<FileCrossRegion>(out, "benefits.file-cross-region.command");
    entry::<FilingResult>(out, "benefits.file-cross-region.result");
    entry::<FileChronicDisease>(out, "benefits.file-chronic-disease.command");
    entry::<FilingResult>(out, "benefits.file-chronic-disease.result");
    entry::<FileSpecialDrug>(out, "benefits.file-special-drug.command");
    entry::<FilingResult>(out, "benefits.file-special-drug.result");
    entry::<ReviewFiling>(out, "benefits.review-filing.command");
    entry::<FilingResult>(out, "benefits.review-filing.result");
    entry::<RevokeFiling>(out, "benefits.revoke-filing.command");
    entry::<FilingResult>(out, "benefits.revoke-filing.result");
    entry::<FilingQuery>(out, "benefits.filing-status.command");
    entry::<FilingResult>(out, "benefits.filing-status.result");
    entry::<FilingRecorded>(out, "benefits.filing-recorded.v1");
    entry::<FilingApproved>(out, "benefits.filing-approved.v1");
    entry::<FilingRejected>(out, "benefits.filing-rejected.v1");
    entry::<FilingRevoked>(out, "benefits.filing-revoked.v1");
}
