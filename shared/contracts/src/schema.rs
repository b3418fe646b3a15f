//! JSON Schemas generated from the contract types. `schemas/` holds the committed copies;
//! the `schemas_do_not_drift` test fails when they differ from what the types generate.
//! Regenerate with `UPDATE_SCHEMAS=1 cargo test -p contracts schemas_do_not_drift`.

use crate::collection::{commands as cc, events as ce};
use crate::enrollment::{commands as c, events as e};
use schemars::{JsonSchema, schema_for};
use std::collections::BTreeMap;

fn entry<T: JsonSchema>(out: &mut BTreeMap<String, serde_json::Value>, name: &str) {
    let schema = serde_json::to_value(schema_for!(T)).expect("a schema serialises");
    out.insert(format!("{name}.json"), schema);
}

/// File name → schema, for every message body and the reply. Names follow the wire:
/// `<service>.<command>.command`, `<service>.<command>.result` (one per command, even where
/// commands share a result type), `<service>.<event>.v<N>` (the event's `type` property).
pub fn all() -> BTreeMap<String, serde_json::Value> {
    let mut out = BTreeMap::new();
    entry::<crate::Reply>(&mut out, "reply");
    crate::card::schema_entries(&mut out);
    crate::notification::schema_entries(&mut out);
    entry::<crate::freeze::ControlMessage>(&mut out, "control.freeze.command");
    entry::<crate::freeze::FreezeStatus>(&mut out, "control.freeze-status.result");
    entry::<crate::freeze::Timetable>(&mut out, "control.timetable");
    entry::<crate::freeze::ReceiptRecord>(&mut out, "control.receipt.result");
    entry::<crate::freeze::FreezeStarted>(&mut out, "freeze.freeze-started.v1");
    entry::<crate::freeze::FreezeEnded>(&mut out, "freeze.freeze-ended.v1");
    entry::<crate::freeze::DeferredRequestProcessed>(&mut out, "freeze.deferred-request-processed.v1");
    entry::<c::EnrollPerson>(&mut out, "enrollment.enroll-person.command");
    entry::<c::RegisterEmployer>(&mut out, "enrollment.register-employer.command");
    entry::<c::AddStaff>(&mut out, "enrollment.add-staff.command");
    entry::<c::RemoveStaff>(&mut out, "enrollment.remove-staff.command");
    entry::<c::ChangeEnrollmentStatus>(&mut out, "enrollment.suspend.command");
    entry::<c::ChangeEnrollmentStatus>(&mut out, "enrollment.terminate.command");
    entry::<c::ChangeContact>(&mut out, "enrollment.change-contact.command");
    entry::<c::TransferOut>(&mut out, "enrollment.transfer-out.command");
    entry::<c::TransferIn>(&mut out, "enrollment.transfer-in.command");
    entry::<c::GetPerson>(&mut out, "enrollment.get-person.command");
    entry::<c::EnrollPersonResult>(&mut out, "enrollment.enroll-person.result");
    entry::<c::RegisterEmployerResult>(&mut out, "enrollment.register-employer.result");
    entry::<c::StaffChangeResult>(&mut out, "enrollment.add-staff.result");
    entry::<c::StaffChangeResult>(&mut out, "enrollment.remove-staff.result");
    entry::<c::EnrollPersonResult>(&mut out, "enrollment.suspend.result");
    entry::<c::EnrollPersonResult>(&mut out, "enrollment.terminate.result");
    entry::<c::ChangeContactResult>(&mut out, "enrollment.change-contact.result");
    entry::<c::ParticipationCertificate>(&mut out, "enrollment.transfer-out.result");
    entry::<c::EnrollPersonResult>(&mut out, "enrollment.transfer-in.result");
    entry::<c::PersonView>(&mut out, "enrollment.get-person.result");
    entry::<e::EmployerRegistered>(&mut out, "enrollment.employer-registered.v1");
    entry::<e::PersonEnrolled>(&mut out, "enrollment.person-enrolled.v1");
    entry::<e::StaffAdded>(&mut out, "enrollment.staff-added.v1");
    entry::<e::StaffRemoved>(&mut out, "enrollment.staff-removed.v1");
    entry::<e::EnrollmentSuspended>(&mut out, "enrollment.enrollment-suspended.v1");
    entry::<e::EnrollmentTerminated>(&mut out, "enrollment.enrollment-terminated.v1");
    entry::<e::ContactChanged>(&mut out, "enrollment.contact-changed.v1");
    entry::<e::TransferredOut>(&mut out, "enrollment.transferred-out.v1");
    entry::<e::TransferredIn>(&mut out, "enrollment.transferred-in.v1");
    entry::<cc::SetPolicy>(&mut out, "collection.set-policy.command");
    entry::<cc::SetPolicyResult>(&mut out, "collection.set-policy.result");
    entry::<cc::GetPolicy>(&mut out, "collection.get-policy.command");
    entry::<cc::GetPolicyResult>(&mut out, "collection.get-policy.result");
    entry::<cc::DeclareWages>(&mut out, "collection.declare-wages.command");
    entry::<cc::DeclareWagesResult>(&mut out, "collection.declare-wages.result");
    entry::<cc::AssessMonth>(&mut out, "collection.assess-month.command");
    entry::<cc::AssessMonthResult>(&mut out, "collection.assess-month.result");
    entry::<cc::RecordPayment>(&mut out, "collection.record-payment.command");
    entry::<cc::AssessmentStatus>(&mut out, "collection.record-payment.result");
    entry::<cc::DetectArrears>(&mut out, "collection.detect-arrears.command");
    entry::<cc::DetectArrearsResult>(&mut out, "collection.detect-arrears.result");
    entry::<cc::StartBatchDebit>(&mut out, "collection.start-batch-debit.command");
    entry::<cc::BatchDebitResult>(&mut out, "collection.start-batch-debit.result");
    entry::<cc::RecordDebitResults>(&mut out, "collection.record-debit-results.command");
    entry::<cc::DebitResultsSummary>(&mut out, "collection.record-debit-results.result");
    entry::<cc::SetDebitAgreement>(&mut out, "collection.set-debit-agreement.command");
    entry::<cc::SetDebitAgreementResult>(&mut out, "collection.set-debit-agreement.result");
    entry::<cc::EmployerStatement>(&mut out, "collection.employer-statement.command");
    entry::<cc::EmployerStatementResult>(&mut out, "collection.employer-statement.result");
    entry::<cc::ContributionHistory>(&mut out, "collection.contribution-history.command");
    entry::<cc::ContributionHistoryResult>(&mut out, "collection.contribution-history.result");
    entry::<cc::ListArrears>(&mut out, "collection.list-arrears.command");
    entry::<cc::ListArrearsResult>(&mut out, "collection.list-arrears.result");
    entry::<ce::PolicyChanged>(&mut out, "collection.policy-changed.v1");
    entry::<ce::BaseDetermined>(&mut out, "collection.base-determined.v1");
    entry::<ce::ContributionAssessed>(&mut out, "collection.contribution-assessed.v1");
    entry::<ce::PaymentRecorded>(&mut out, "collection.payment-recorded.v1");
    entry::<ce::ContributionSettled>(&mut out, "collection.contribution-settled.v1");
    entry::<ce::OverpaymentDetected>(&mut out, "collection.overpayment-detected.v1");
    entry::<ce::ArrearsDetected>(&mut out, "collection.arrears-detected.v1");
    entry::<ce::ArrearsCleared>(&mut out, "collection.arrears-cleared.v1");
    entry::<ce::BatchDebitRequested>(&mut out, "collection.batch-debit-requested.v1");
    entry::<ce::DebitFailed>(&mut out, "collection.debit-failed.v1");
    crate::benefits::schema_entries(&mut out);
    out
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

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
