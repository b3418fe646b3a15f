//! Benefits service contract: eligibility, real-time settlement shaped like the NHSA
//! interface (field names as the NHSA specification spells them, so that a hospital system
//! maps onto them one to one), the personal account and daily reconciliation.
//!
//! Money is a decimal string with two places (`"123.45"`); `insutype` is the NHSA code
//! (`310` employee medical, `390` resident medical, `330` large-amount medical).

pub mod commands;
pub mod events;
pub mod filings;
pub mod social;

pub const SERVICE: &str = "benefits";

use crate::schema::{Body, Registry};

fn entry<T: Body>(out: &mut impl Registry, name: &str) {
    out.add::<T>(format!("{name}.json"));
}

/// The benefits service's schemas, registered from `schema::all`.
pub fn schema_entries(out: &mut impl Registry) {
    use commands as c;
    use events as e;
    entry::<c::PersonInfo>(out, "benefits.person-info.command");
    entry::<c::PersonInfoResult>(out, "benefits.person-info.result");
    entry::<c::Eligibility>(out, "benefits.eligibility.command");
    entry::<c::EligibilityResult>(out, "benefits.eligibility.result");
    entry::<c::RegisterVisit>(out, "benefits.register-visit.command");
    entry::<c::VisitResult>(out, "benefits.register-visit.result");
    entry::<c::RegisterVisit>(out, "benefits.admit.command");
    entry::<c::VisitResult>(out, "benefits.admit.result");
    entry::<c::CancelVisit>(out, "benefits.cancel-visit.command");
    entry::<c::VisitResult>(out, "benefits.cancel-visit.result");
    entry::<c::Discharge>(out, "benefits.discharge.command");
    entry::<c::VisitResult>(out, "benefits.discharge.result");
    entry::<c::UploadFees>(out, "benefits.upload-fees.command");
    entry::<c::UploadFeesResult>(out, "benefits.upload-fees.result");
    entry::<c::CancelFees>(out, "benefits.cancel-fees.command");
    entry::<c::CancelFeesResult>(out, "benefits.cancel-fees.result");
    entry::<c::Settle>(out, "benefits.pre-settle.command");
    entry::<c::SetlInfo>(out, "benefits.pre-settle.result");
    entry::<c::Settle>(out, "benefits.settle.command");
    entry::<c::SetlInfo>(out, "benefits.settle.result");
    entry::<c::CancelSettlement>(out, "benefits.cancel-settlement.command");
    entry::<c::CancelSettlementResult>(out, "benefits.cancel-settlement.result");
    entry::<c::Reverse>(out, "benefits.reverse.command");
    entry::<c::ReverseResult>(out, "benefits.reverse.result");
    entry::<c::AuthoriseMutualAid>(out, "benefits.authorise-mutual-aid.command");
    entry::<c::MutualAidResult>(out, "benefits.authorise-mutual-aid.result");
    entry::<c::AuthoriseMutualAid>(out, "benefits.revoke-mutual-aid.command");
    entry::<c::MutualAidResult>(out, "benefits.revoke-mutual-aid.result");
    entry::<c::AccountQuery>(out, "benefits.account-balance.command");
    entry::<c::AccountBalance>(out, "benefits.account-balance.result");
    entry::<c::AccountQuery>(out, "benefits.account-statement.command");
    entry::<c::AccountStatement>(out, "benefits.account-statement.result");
    entry::<c::ReconcileTotals>(out, "benefits.reconcile-totals.command");
    entry::<c::ReconcileTotalsResult>(out, "benefits.reconcile-totals.result");
    entry::<c::ReconcileDetails>(out, "benefits.reconcile-details.command");
    entry::<c::ReconcileDetailsResult>(out, "benefits.reconcile-details.result");
    entry::<c::ReconcileService>(out, "benefits.reconcile-service.command");
    entry::<c::ReconcileServiceResult>(out, "benefits.reconcile-service.result");
    entry::<c::SetBenefitPolicy>(out, "benefits.set-benefit-policy.command");
    entry::<c::SetBenefitPolicyResult>(out, "benefits.set-benefit-policy.result");
    entry::<c::SubmitClaim>(out, "benefits.submit-claim.command");
    entry::<c::ClaimResult>(out, "benefits.submit-claim.result");
    entry::<c::ReviewClaim>(out, "benefits.review-claim.command");
    entry::<c::ClaimResult>(out, "benefits.review-claim.result");
    entry::<c::AddClaimDocuments>(out, "benefits.add-claim-documents.command");
    entry::<c::ClaimResult>(out, "benefits.add-claim-documents.result");
    entry::<c::ClaimQuery>(out, "benefits.claim-status.command");
    entry::<c::ClaimResult>(out, "benefits.claim-status.result");
    entry::<c::RecordClaimPayment>(out, "benefits.record-claim-payment.command");
    entry::<c::ClaimResult>(out, "benefits.record-claim-payment.result");
    entry::<e::SettlementCompleted>(out, "benefits.settlement-completed.v1");
    entry::<e::SettlementCancelled>(out, "benefits.settlement-cancelled.v1");
    entry::<e::AccountDebited>(out, "benefits.account-debited.v1");
    entry::<e::ClaimStatusChanged>(out, "benefits.claim-status-changed.v1");
    entry::<e::ClaimPaymentOrdered>(out, "benefits.claim-payment-ordered.v1");
    social::schema_entries(out);
    filings::schema_entries(out);
}
