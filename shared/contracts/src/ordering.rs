//! The ordering key of every command and event (DESIGN.md §4 "Ordering").
//!
//! Messages with the same key are handled one after another in arrival order; messages with
//! different keys (or none) run in parallel. The key names the aggregate a message changes:
//! a person (ID number), an employer (credit code), an assessment, a month's run, a batch.
//! Queries have no key: they change nothing, so their order does not matter.
//!
//! The table is data, next to the contract types it describes, so the consumer loop stays
//! generic; `every_message_type_names_its_key` fails when a type is added to the schemas
//! without a line here.

use serde_json::Value;

/// Where a message's ordering key comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeySource {
    /// `<aggregate>:<value of the body's top-level field>`.
    Field {
        aggregate: &'static str,
        field: &'static str,
    },
    /// `<aggregate>:<value of body[outer][inner]>`.
    Nested {
        aggregate: &'static str,
        outer: &'static str,
        inner: &'static str,
    },
    /// One key for every message of this name (a line-wide run that must not overlap itself).
    Fixed(&'static str),
    /// No ordering needed (queries).
    None,
}

use KeySource::{Field, Fixed, Nested, None as Unordered};

const PERSON: &str = "person";
const EMPLOYER: &str = "employer";
/// The benefits service's `psn_no` (the person id enrollment gave).
const INSURED: &str = "insured";
/// A benefits reimbursement claim.
const CLAIM: &str = "claim";
/// A filing 备案 (cross-region care, chronic disease, special drug).
const FILING: &str = "filing";
/// A retirement application (social-line benefits).
const RETIREMENT: &str = "retirement";
/// A benefit payment batch to the bank.
const BATCH: &str = "benefit-batch";

/// `(service, name)` → key source, for commands (`name` = command) and events (`name` =
/// event, `service` = publisher).
pub const TABLE: &[(&str, &str, KeySource)] = &[
    // enrollment commands
    (
        "enrollment",
        "enroll-person",
        Field {
            aggregate: PERSON,
            field: "id_number",
        },
    ),
    (
        "enrollment",
        "register-employer",
        Field {
            aggregate: EMPLOYER,
            field: "credit_code",
        },
    ),
    (
        "enrollment",
        "add-staff",
        Field {
            aggregate: EMPLOYER,
            field: "employer_credit_code",
        },
    ),
    (
        "enrollment",
        "remove-staff",
        Field {
            aggregate: EMPLOYER,
            field: "employer_credit_code",
        },
    ),
    (
        "enrollment",
        "suspend",
        Field {
            aggregate: PERSON,
            field: "id_number",
        },
    ),
    (
        "enrollment",
        "terminate",
        Field {
            aggregate: PERSON,
            field: "id_number",
        },
    ),
    (
        "enrollment",
        "change-contact",
        Field {
            aggregate: PERSON,
            field: "id_number",
        },
    ),
    (
        "enrollment",
        "transfer-out",
        Field {
            aggregate: PERSON,
            field: "id_number",
        },
    ),
    (
        "enrollment",
        "transfer-in",
        Nested {
            aggregate: PERSON,
            outer: "certificate",
            inner: "id_number",
        },
    ),
    ("enrollment", "get-person", Unordered),
    // enrollment events
    (
        "enrollment",
        "employer-registered",
        Field {
            aggregate: EMPLOYER,
            field: "credit_code",
        },
    ),
    (
        "enrollment",
        "person-enrolled",
        Field {
            aggregate: PERSON,
            field: "id_number",
        },
    ),
    (
        "enrollment",
        "staff-added",
        Field {
            aggregate: EMPLOYER,
            field: "employer_credit_code",
        },
    ),
    (
        "enrollment",
        "staff-removed",
        Field {
            aggregate: EMPLOYER,
            field: "employer_credit_code",
        },
    ),
    (
        "enrollment",
        "enrollment-suspended",
        Field {
            aggregate: PERSON,
            field: "id_number",
        },
    ),
    (
        "enrollment",
        "enrollment-terminated",
        Field {
            aggregate: PERSON,
            field: "id_number",
        },
    ),
    (
        "enrollment",
        "contact-changed",
        Field {
            aggregate: PERSON,
            field: "id_number",
        },
    ),
    (
        "enrollment",
        "transferred-out",
        Nested {
            aggregate: PERSON,
            outer: "certificate",
            inner: "id_number",
        },
    ),
    (
        "enrollment",
        "transferred-in",
        Field {
            aggregate: PERSON,
            field: "id_number",
        },
    ),
    // collection commands
    ("collection", "set-policy", Fixed("policy")),
    ("collection", "get-policy", Unordered),
    ("collection", "declare-wages", Fixed("wages")),
    (
        "collection",
        "assess-month",
        Field {
            aggregate: "assessment-run",
            field: "month",
        },
    ),
    (
        "collection",
        "record-payment",
        Field {
            aggregate: "assessment",
            field: "assessment_id",
        },
    ),
    ("collection", "detect-arrears", Fixed("arrears")),
    (
        "collection",
        "start-batch-debit",
        Field {
            aggregate: "batch-debit",
            field: "month",
        },
    ),
    (
        "collection",
        "record-debit-results",
        Field {
            aggregate: "batch",
            field: "batch_id",
        },
    ),
    (
        "collection",
        "set-debit-agreement",
        Field {
            aggregate: PERSON,
            field: "id_number",
        },
    ),
    ("collection", "employer-statement", Unordered),
    ("collection", "contribution-history", Unordered),
    ("collection", "list-arrears", Unordered),
    // collection events
    ("collection", "policy-changed", Fixed("policy")),
    (
        "collection",
        "base-determined",
        Field {
            aggregate: PERSON,
            field: "id_number",
        },
    ),
    (
        "collection",
        "contribution-assessed",
        Field {
            aggregate: "assessment",
            field: "assessment_id",
        },
    ),
    (
        "collection",
        "payment-recorded",
        Field {
            aggregate: "assessment",
            field: "assessment_id",
        },
    ),
    (
        "collection",
        "contribution-settled",
        Field {
            aggregate: "assessment",
            field: "assessment_id",
        },
    ),
    (
        "collection",
        "overpayment-detected",
        Field {
            aggregate: "assessment",
            field: "assessment_id",
        },
    ),
    (
        "collection",
        "arrears-detected",
        Field {
            aggregate: "assessment",
            field: "assessment_id",
        },
    ),
    (
        "collection",
        "arrears-cleared",
        Field {
            aggregate: "assessment",
            field: "assessment_id",
        },
    ),
    (
        "collection",
        "batch-debit-requested",
        Field {
            aggregate: "batch",
            field: "batch_id",
        },
    ),
    (
        "collection",
        "debit-failed",
        Field {
            aggregate: "assessment",
            field: "assessment_id",
        },
    ),
    // benefits: one insured person's visits, settlements and account in arrival order (an
    // account drawn on by a relative under mutual aid is also locked in the transaction).
    (
        "benefits",
        "register-visit",
        Field {
            aggregate: INSURED,
            field: "psn_no",
        },
    ),
    (
        "benefits",
        "admit",
        Field {
            aggregate: INSURED,
            field: "psn_no",
        },
    ),
    (
        "benefits",
        "cancel-visit",
        Field {
            aggregate: INSURED,
            field: "psn_no",
        },
    ),
    (
        "benefits",
        "discharge",
        Field {
            aggregate: INSURED,
            field: "psn_no",
        },
    ),
    (
        "benefits",
        "upload-fees",
        Field {
            aggregate: INSURED,
            field: "psn_no",
        },
    ),
    (
        "benefits",
        "cancel-fees",
        Field {
            aggregate: INSURED,
            field: "psn_no",
        },
    ),
    (
        "benefits",
        "settle",
        Field {
            aggregate: INSURED,
            field: "psn_no",
        },
    ),
    (
        "benefits",
        "cancel-settlement",
        Field {
            aggregate: INSURED,
            field: "psn_no",
        },
    ),
    (
        "benefits",
        "reverse",
        Field {
            aggregate: INSURED,
            field: "psn_no",
        },
    ),
    (
        "benefits",
        "authorise-mutual-aid",
        Field {
            aggregate: INSURED,
            field: "psn_no",
        },
    ),
    (
        "benefits",
        "revoke-mutual-aid",
        Field {
            aggregate: INSURED,
            field: "psn_no",
        },
    ),
    ("benefits", "set-benefit-policy", Fixed("benefit-policy")),
    ("benefits", "person-info", Unordered),
    ("benefits", "eligibility", Unordered),
    ("benefits", "pre-settle", Unordered),
    ("benefits", "account-balance", Unordered),
    ("benefits", "account-statement", Unordered),
    ("benefits", "reconcile-totals", Unordered),
    ("benefits", "reconcile-details", Unordered),
    ("benefits", "reconcile-service", Unordered),
    // A claim is submitted in the person's order (it reads the year's deductible and caps);
    // its later steps in the claim's (an approval locks the person's row for the year's
    // figures, so it cannot overlap a settlement of the same person).
    (
        "benefits",
        "submit-claim",
        Field {
            aggregate: INSURED,
            field: "psn_no",
        },
    ),
    (
        "benefits",
        "review-claim",
        Field {
            aggregate: CLAIM,
            field: "claim_id",
        },
    ),
    (
        "benefits",
        "add-claim-documents",
        Field {
            aggregate: CLAIM,
            field: "claim_id",
        },
    ),
    (
        "benefits",
        "record-claim-payment",
        Field {
            aggregate: CLAIM,
            field: "claim_id",
        },
    ),
    ("benefits", "claim-status", Unordered),
    (
        "benefits",
        "claim-status-changed",
        Field {
            aggregate: INSURED,
            field: "psn_no",
        },
    ),
    (
        "benefits",
        "claim-payment-ordered",
        Field {
            aggregate: INSURED,
            field: "psn_no",
        },
    ),
    (
        "benefits",
        "settlement-completed",
        Field {
            aggregate: INSURED,
            field: "psn_no",
        },
    ),
    (
        "benefits",
        "settlement-cancelled",
        Field {
            aggregate: INSURED,
            field: "psn_no",
        },
    ),
    (
        "benefits",
        "account-debited",
        Field {
            aggregate: INSURED,
            field: "psn_no",
        },
    ),
    // Filings (issue 10 §1): a new filing in the person's order (it is read by the person's
    // settlements); its review and revocation in the filing's; the events in the person's.
    (
        "benefits",
        "file-cross-region",
        Field {
            aggregate: INSURED,
            field: "psn_no",
        },
    ),
    (
        "benefits",
        "file-chronic-disease",
        Field {
            aggregate: INSURED,
            field: "psn_no",
        },
    ),
    (
        "benefits",
        "file-special-drug",
        Field {
            aggregate: INSURED,
            field: "psn_no",
        },
    ),
    (
        "benefits",
        "review-filing",
        Field {
            aggregate: FILING,
            field: "filing_id",
        },
    ),
    (
        "benefits",
        "revoke-filing",
        Field {
            aggregate: FILING,
            field: "filing_id",
        },
    ),
    ("benefits", "filing-status", Unordered),
    (
        "benefits",
        "filing-recorded",
        Field {
            aggregate: INSURED,
            field: "psn_no",
        },
    ),
    (
        "benefits",
        "filing-approved",
        Field {
            aggregate: INSURED,
            field: "psn_no",
        },
    ),
    (
        "benefits",
        "filing-rejected",
        Field {
            aggregate: INSURED,
            field: "psn_no",
        },
    ),
    (
        "benefits",
        "filing-revoked",
        Field {
            aggregate: INSURED,
            field: "psn_no",
        },
    ),
    // Social-line benefits (issue 10 §5): a person's applications and awards in order; one
    // payment run at a time; a batch's results after the batch.
    (
        "benefits",
        "apply-retirement",
        Field {
            aggregate: PERSON,
            field: "id_number",
        },
    ),
    (
        "benefits",
        "review-retirement",
        Field {
            aggregate: RETIREMENT,
            field: "application_id",
        },
    ),
    ("benefits", "retirement-status", Unordered),
    (
        "benefits",
        "grant-benefit",
        Field {
            aggregate: PERSON,
            field: "id_number",
        },
    ),
    ("benefits", "run-benefit-payments", Fixed("benefit-payment-run")),
    (
        "benefits",
        "record-benefit-payments",
        Field {
            aggregate: BATCH,
            field: "batch_id",
        },
    ),
    ("benefits", "batch-status", Unordered),
    (
        "benefits",
        "retirement-applied",
        Field {
            aggregate: PERSON,
            field: "id_number",
        },
    ),
    (
        "benefits",
        "retirement-approved",
        Field {
            aggregate: PERSON,
            field: "id_number",
        },
    ),
    (
        "benefits",
        "retirement-rejected",
        Field {
            aggregate: PERSON,
            field: "id_number",
        },
    ),
    (
        "benefits",
        "benefit-awarded",
        Field {
            aggregate: PERSON,
            field: "id_number",
        },
    ),
    (
        "benefits",
        "benefit-payment-failed",
        Field {
            aggregate: PERSON,
            field: "id_number",
        },
    ),
    (
        "benefits",
        "benefit-payment-batch-ordered",
        Field {
            aggregate: BATCH,
            field: "batch_id",
        },
    ),
    (
        "benefits",
        "benefit-payments-recorded",
        Field {
            aggregate: BATCH,
            field: "batch_id",
        },
    ),
    // The freeze machinery's messages, whichever service publishes them (`freeze` stands
    // for every publisher): one order at a time per service, and a receipt's outcome.
    ("control", "freeze", Fixed("control")),
    ("freeze", "freeze-started", Fixed("freeze")),
    ("freeze", "freeze-ended", Fixed("freeze")),
    (
        "freeze",
        "deferred-request-processed",
        Nested {
            aggregate: "receipt",
            outer: "receipt",
            inner: "id",
        },
    ),
];

/// The key source of `(service, name)`, if the contract names one.
pub fn source(service: &str, name: &str) -> Option<KeySource> {
    let find = |service: &str| {
        TABLE
            .iter()
            .find(|(s, n, _)| *s == service && *n == name)
            .map(|(_, _, k)| *k)
    };
    find(service)
        .or_else(|| {
            (service == crate::card::SERVICE)
                .then(|| crate::card::ordering_source(name))
                .flatten()
        })
        .or_else(|| {
            (service == crate::notification::SERVICE)
                .then(|| crate::notification::ordering_source(name))
                .flatten()
        })
        .or_else(|| find("freeze"))
}

fn text(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// The ordering key of a message, or `None` when it may run in parallel with anything.
///
/// A message of an unknown type, or one whose key field is missing, gets no key: it will be
/// rejected by its handler anyway, and holding it back would only delay that reply.
pub fn key_of(service: &str, name: &str, body: &Value) -> Option<String> {
    match source(service, name)? {
        Field { aggregate, field } => text(body.get(field)).map(|v| format!("{aggregate}:{v}")),
        Nested {
            aggregate,
            outer,
            inner,
        } => text(body.get(outer).and_then(|o| o.get(inner))).map(|v| format!("{aggregate}:{v}")),
        Fixed(k) => Some(k.to_owned()),
        Unordered => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn every_message_type_names_its_key() {
        let mut missing = Vec::new();
        for file in crate::schema::all().keys() {
            let stem = file.trim_end_matches(".json");
            let Some((service, rest)) = stem.split_once('.') else {
                continue;
            };
            let name = if let Some(n) = rest.strip_suffix(".command") {
                n
            } else if let Some((n, v)) = rest.rsplit_once(".v")
                && v.chars().all(|c| c.is_ascii_digit())
            {
                n
            } else {
                continue; // results and the reply are not consumed
            };
            if source(service, name).is_none() {
                missing.push(format!("{service}.{name}"));
            }
        }
        assert!(missing.is_empty(), "no ordering key named for {missing:?}");
    }

    #[test]
    fn keys_name_the_aggregate() {
        let person = json!({"id_number": "420102199001011234"});
        assert_eq!(
            key_of("enrollment", "enroll-person", &person).as_deref(),
            Some("person:420102199001011234")
        );
        // The same person through another command shares the key.
        assert_eq!(
            key_of("enrollment", "change-contact", &person),
            key_of("enrollment", "enroll-person", &person)
        );
        let transfer = json!({"certificate": {"id_number": "420102199001011234"}});
        assert_eq!(
            key_of("enrollment", "transfer-in", &transfer),
            key_of("enrollment", "enroll-person", &person)
        );
        assert_eq!(key_of("enrollment", "get-person", &person), None);
        assert_eq!(key_of("enrollment", "enroll-person", &json!({})), None);
        assert_eq!(key_of("enrollment", "no-such-command", &person), None);
        assert_eq!(
            key_of("collection", "detect-arrears", &json!({})).as_deref(),
            Some("arrears")
        );
    }
}
