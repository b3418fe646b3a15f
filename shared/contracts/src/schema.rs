//! JSON Schemas generated from the contract types. `schemas/` holds the committed copies;
//! the `schemas_do_not_drift` test fails when they differ from what the types generate.
//! Regenerate with `UPDATE_SCHEMAS=1 cargo test -p contracts schemas_do_not_drift`.
//!
//! The same list gives [`body_types`], every body's decoder, which the fuzz targets and the
//! property tests run (`fuzz/`, `shared/decoder-checks`): a type registered for its schema
//! is fuzzed too.

use crate::collection::{commands as cc, events as ce};
use crate::enrollment::{commands as c, events as e};
use schemars::{JsonSchema, schema_for};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::collections::BTreeMap;

/// What a registered type is: it has a schema and goes both ways over the wire.
pub trait Body: JsonSchema + DeserializeOwned + Serialize {}
impl<T: JsonSchema + DeserializeOwned + Serialize> Body for T {}

/// Where [`register`] puts every type, under its file name: the schemas ([`all`]) or the
/// decoders ([`body_types`]).
pub trait Registry {
    fn add<T: Body>(&mut self, file: String);
}

impl Registry for BTreeMap<String, serde_json::Value> {
    fn add<T: Body>(&mut self, file: String) {
        let schema = serde_json::to_value(schema_for!(T)).expect("a schema serialises");
        self.insert(file, schema);
    }
}

fn entry<T: Body>(out: &mut impl Registry, name: &str) {
    out.add::<T>(format!("{name}.json"));
}

/// File name → schema, for every message body and the reply. Names follow the wire:
/// `<service>.<command>.command`, `<service>.<command>.result` (one per command, even where
/// commands share a result type), `<service>.<event>.v<N>` (the event's `type` property).
pub fn all() -> BTreeMap<String, serde_json::Value> {
    let mut out = BTreeMap::new();
    register(&mut out);
    out
}

/// Why a body could not go through [`BodyType::decode`].
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    /// Not this type: what a consumer answers `MALFORMED_MESSAGE`.
    #[error("does not decode: {0}")]
    Decode(serde_json::Error),
    /// Decoded, but the value cannot be written back (never expected).
    #[error("decoded but does not encode: {0}")]
    Encode(serde_json::Error),
}

/// One registered type's decoder.
#[derive(Debug, Clone)]
pub struct BodyType {
    /// The registry's file name, e.g. `enrollment.enroll-person.command.json`.
    pub file: String,
    /// Decodes a JSON body as a consumer does (`serde_json::from_value`, as
    /// `messaging::Incoming::decode`) and writes the value back to JSON.
    pub decode: fn(serde_json::Value) -> Result<serde_json::Value, BodyError>,
}

fn decode_as<T: Body>(body: serde_json::Value) -> Result<serde_json::Value, BodyError> {
    let value: T = serde_json::from_value(body).map_err(BodyError::Decode)?;
    serde_json::to_value(&value).map_err(BodyError::Encode)
}

struct Decoders(BTreeMap<String, BodyType>);

impl Registry for Decoders {
    fn add<T: Body>(&mut self, file: String) {
        let decode = decode_as::<T>;
        self.0.insert(file.clone(), BodyType { file, decode });
    }
}

/// Every registered type's decoder, by file name: the same names as [`all`].
pub fn body_types() -> Vec<BodyType> {
    let mut out = Decoders(BTreeMap::new());
    register(&mut out);
    out.0.into_values().collect()
}

/// Every message body and the reply, under its file name.
pub fn register(out: &mut impl Registry) {
    entry::<crate::Reply>(out, "reply");
    crate::card::schema_entries(out);
    crate::notification::schema_entries(out);
    entry::<crate::freeze::ControlMessage>(out, "control.freeze.command");
    entry::<crate::freeze::FreezeStatus>(out, "control.freeze-status.result");
    entry::<crate::freeze::Timetable>(out, "control.timetable");
    entry::<crate::freeze::ReceiptRecord>(out, "control.receipt.result");
    entry::<crate::freeze::FreezeStarted>(out, "freeze.freeze-started.v1");
    entry::<crate::freeze::FreezeEnded>(out, "freeze.freeze-ended.v1");
    entry::<crate::freeze::DeferredRequestProcessed>(out, "freeze.deferred-request-processed.v1");
    entry::<c::EnrollPerson>(out, "enrollment.enroll-person.command");
    entry::<c::RegisterEmployer>(out, "enrollment.register-employer.command");
    entry::<c::AddStaff>(out, "enrollment.add-staff.command");
    entry::<c::RemoveStaff>(out, "enrollment.remove-staff.command");
    entry::<c::ChangeEnrollmentStatus>(out, "enrollment.suspend.command");
    entry::<c::ChangeEnrollmentStatus>(out, "enrollment.terminate.command");
    entry::<c::ChangeContact>(out, "enrollment.change-contact.command");
    entry::<c::TransferOut>(out, "enrollment.transfer-out.command");
    entry::<c::TransferIn>(out, "enrollment.transfer-in.command");
    entry::<c::GetPerson>(out, "enrollment.get-person.command");
    entry::<c::EnrollPersonResult>(out, "enrollment.enroll-person.result");
    entry::<c::RegisterEmployerResult>(out, "enrollment.register-employer.result");
    entry::<c::StaffChangeResult>(out, "enrollment.add-staff.result");
    entry::<c::StaffChangeResult>(out, "enrollment.remove-staff.result");
    entry::<c::EnrollPersonResult>(out, "enrollment.suspend.result");
    entry::<c::EnrollPersonResult>(out, "enrollment.terminate.result");
    entry::<c::ChangeContactResult>(out, "enrollment.change-contact.result");
    entry::<c::ParticipationCertificate>(out, "enrollment.transfer-out.result");
    entry::<c::EnrollPersonResult>(out, "enrollment.transfer-in.result");
    entry::<c::PersonView>(out, "enrollment.get-person.result");
    entry::<e::EmployerRegistered>(out, "enrollment.employer-registered.v1");
    entry::<e::PersonEnrolled>(out, "enrollment.person-enrolled.v1");
    entry::<e::StaffAdded>(out, "enrollment.staff-added.v1");
    entry::<e::StaffRemoved>(out, "enrollment.staff-removed.v1");
    entry::<e::EnrollmentSuspended>(out, "enrollment.enrollment-suspended.v1");
    entry::<e::EnrollmentTerminated>(out, "enrollment.enrollment-terminated.v1");
    entry::<e::ContactChanged>(out, "enrollment.contact-changed.v1");
    entry::<e::TransferredOut>(out, "enrollment.transferred-out.v1");
    entry::<e::TransferredIn>(out, "enrollment.transferred-in.v1");
    entry::<cc::SetPolicy>(out, "collection.set-policy.command");
    entry::<cc::SetPolicyResult>(out, "collection.set-policy.result");
    entry::<cc::GetPolicy>(out, "collection.get-policy.command");
    entry::<cc::GetPolicyResult>(out, "collection.get-policy.result");
    entry::<cc::DeclareWages>(out, "collection.declare-wages.command");
    entry::<cc::DeclareWagesResult>(out, "collection.declare-wages.result");
    entry::<cc::AssessMonth>(out, "collection.assess-month.command");
    entry::<cc::AssessMonthResult>(out, "collection.assess-month.result");
    entry::<cc::RecordPayment>(out, "collection.record-payment.command");
    entry::<cc::AssessmentStatus>(out, "collection.record-payment.result");
    entry::<cc::DetectArrears>(out, "collection.detect-arrears.command");
    entry::<cc::DetectArrearsResult>(out, "collection.detect-arrears.result");
    entry::<cc::StartBatchDebit>(out, "collection.start-batch-debit.command");
    entry::<cc::BatchDebitResult>(out, "collection.start-batch-debit.result");
    entry::<cc::RecordDebitResults>(out, "collection.record-debit-results.command");
    entry::<cc::DebitResultsSummary>(out, "collection.record-debit-results.result");
    entry::<cc::SetDebitAgreement>(out, "collection.set-debit-agreement.command");
    entry::<cc::SetDebitAgreementResult>(out, "collection.set-debit-agreement.result");
    entry::<cc::EmployerStatement>(out, "collection.employer-statement.command");
    entry::<cc::EmployerStatementResult>(out, "collection.employer-statement.result");
    entry::<cc::ContributionHistory>(out, "collection.contribution-history.command");
    entry::<cc::ContributionHistoryResult>(out, "collection.contribution-history.result");
    entry::<cc::ListArrears>(out, "collection.list-arrears.command");
    entry::<cc::ListArrearsResult>(out, "collection.list-arrears.result");
    entry::<ce::PolicyChanged>(out, "collection.policy-changed.v1");
    entry::<ce::BaseDetermined>(out, "collection.base-determined.v1");
    entry::<ce::ContributionAssessed>(out, "collection.contribution-assessed.v1");
    entry::<ce::PaymentRecorded>(out, "collection.payment-recorded.v1");
    entry::<ce::ContributionSettled>(out, "collection.contribution-settled.v1");
    entry::<ce::OverpaymentDetected>(out, "collection.overpayment-detected.v1");
    entry::<ce::ArrearsDetected>(out, "collection.arrears-detected.v1");
    entry::<ce::ArrearsCleared>(out, "collection.arrears-cleared.v1");
    entry::<ce::BatchDebitRequested>(out, "collection.batch-debit-requested.v1");
    entry::<ce::DebitFailed>(out, "collection.debit-failed.v1");
    crate::benefits::schema_entries(out);
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    #[test]
    fn every_schema_has_a_decoder() {
        let decoders: Vec<String> = super::body_types().into_iter().map(|t| t.file).collect();
        let schemas: Vec<String> = super::all().into_keys().collect();
        assert_eq!(decoders, schemas);
    }

    #[test]
    fn schemas_do_not_drift() {
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("schemas");
        let update = std::env::var_os("UPDATE_SCHEMAS").is_some();
        if update {
            std::fs::create_dir_all(&dir).unwrap();
        }
        let generated = super::all();
        let mut drifted = Vec::new();
        for (file, schema) in &generated {
            let text = serde_json::to_string_pretty(schema).unwrap() + "\n";
            let path = dir.join(file);
            if update {
                std::fs::write(&path, &text).unwrap();
            } else if std::fs::read_to_string(&path).ok().as_deref() != Some(text.as_str()) {
                drifted.push(file.clone());
            }
        }
        let committed: Vec<String> = std::fs::read_dir(&dir)
            .map(|rd| {
                rd.filter_map(|e| e.ok()?.file_name().into_string().ok())
                    .collect()
            })
            .unwrap_or_default();
        let stale: Vec<&String> = committed.iter().filter(|f| !generated.contains_key(*f)).collect();
        assert!(
            drifted.is_empty() && stale.is_empty(),
            "schemas drifted from the contract types: changed {drifted:?}, stale {stale:?}; \
             regenerate with UPDATE_SCHEMAS=1 cargo test -p contracts schemas_do_not_drift"
        );
    }
}
